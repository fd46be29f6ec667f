// Result tables in the paper's layout, as Markdown (best value bold, second best underlined,
// as the paper marks them) and CSV (mean and std in columns of their own).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace svmoe {

struct TableColumn {
  std::string name;
  bool ranked = false;            // its best and second best values are marked
  bool higher_is_better = false;  // for ranked columns: accuracy, not error
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

// Metric cells read "mean±std" with `digits` decimals; ties share the mark.
std::string markdown_table(const Table& table, int digits = 3);
// An HTML <table> with the same marks (<b>, <u>); text is escaped.
std::string html_table(const Table& table, int digits = 3);
// Metric columns become NAME_mean and NAME_std; full precision.
std::string csv_table(const Table& table);

}  // namespace svmoe
