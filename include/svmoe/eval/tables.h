// Result tables in the paper's layout, as Markdown (best value bold, second best underlined,
// as the paper marks them) and CSV (mean and std in columns of their own).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace svmoe {

// Which values of a column are better (its best and second best are marked).
enum class Better {
  kNotRanked,       // text, or a value nothing is compared by
  kLower,           // errors, perplexity, entropy
  kHigher,          // accuracy
  kCloserToTarget,  // CMR_k: better the closer to k
};

struct TableColumn {
  TableColumn(std::string column_name, Better column_better = Better::kNotRanked, double column_target = 0.0,
              std::optional<double> column_chance = std::nullopt)
      : name(std::move(column_name)), better(column_better), target(column_target), chance(column_chance) {}

  std::string name;
  Better better;
  double target;                 // kCloserToTarget: the ideal value
  std::optional<double> chance;  // kHigher: values at or below it are never marked
};

struct TableCell {
  std::string text;            // text cells (model, LB)
  std::optional<double> mean;  // metric cells; empty: "-"
  std::optional<double> std;
};

struct Table {
  std::vector<TableColumn> columns;
  std::vector<std::vector<TableCell>> rows;
};

// Metric cells read "mean±std" with `digits` decimals; ties share the mark, and a column whose
// values all tie is not marked (nothing is best).
std::string markdown_table(const Table& table, int digits = 3);
// An HTML <table> with the same marks (<b>, <u>); text is escaped.
std::string html_table(const Table& table, int digits = 3);
// Metric columns become NAME_mean and NAME_std; full precision.
std::string csv_table(const Table& table);

}  // namespace svmoe
