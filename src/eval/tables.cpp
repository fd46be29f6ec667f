#include "svmoe/eval/tables.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "svmoe/util/strings.h"

namespace svmoe {

namespace {

// RFC 4180: a field with a comma, quote or newline is quoted, its quotes doubled.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

// How good a shown value is in its column: larger is better.
double goodness(const TableColumn& column, double shown) {
  switch (column.better) {
    case Better::kNotRanked:
      return 0.0;
    case Better::kLower:
      return -shown;
    case Better::kHigher:
      return shown;
    case Better::kCloserToTarget:
      return -std::abs(shown - column.target);
  }
  return 0.0;
}

// Per cell: "best", "second" or "": per ranked column, the cells of the best and second best
// distinct goodness of the values as printed with `digits` decimals. A column whose values all
// tie gets no mark, and values at or below the column's chance level none either.
std::vector<std::vector<std::string>> rank_marks(const Table& table, int digits) {
  std::vector<std::vector<std::string>> marks(table.rows.size(), std::vector<std::string>(table.columns.size()));
  // Ranked by the value as printed: two models that print the same number tie, as a reader
  // would judge them, even if the unrounded means differ in the fifth digit.
  const auto shown = [&](double value) { return std::stod(fmt::format("{:.{}f}", value, digits)); };
  for (std::size_t c = 0; c < table.columns.size(); ++c) {
    const TableColumn& column = table.columns[c];
    if (column.better == Better::kNotRanked) continue;
    std::set<double> values, levels;
    for (const auto& row : table.rows) {
      if (!row[c].mean) continue;
      const double value = shown(*row[c].mean);
      values.insert(value);
      if (!column.chance || value > *column.chance) levels.insert(goodness(column, value));
    }
    if (values.size() < 2) continue;
    const auto best = levels.rbegin();
    const auto second = levels.size() > 1 ? std::next(best) : levels.rend();
    for (std::size_t r = 0; r < table.rows.size(); ++r) {
      if (!table.rows[r][c].mean) continue;
      const double value = shown(*table.rows[r][c].mean);
      if (column.chance && value <= *column.chance) continue;
      const double level = goodness(column, value);
      if (best != levels.rend() && level == *best)
        marks[r][c] = "best";
      else if (second != levels.rend() && level == *second)
        marks[r][c] = "second";
    }
  }
  return marks;
}

// "mean±std" as the paper's tables print them; a text cell (a model's name, LB yes/no) as
// written; an empty metric as "-".
std::string cell_text(const TableCell& cell, int digits) {
  if (!cell.mean) return cell.text.empty() ? "-" : cell.text;
  std::string text = fmt::format("{:.{}f}", *cell.mean, digits);
  if (cell.std) text += fmt::format("±{:.{}f}", *cell.std, digits);
  return text;
}

}  // namespace

std::string markdown_table(const Table& table, int digits) {
  std::string out = "|";
  for (const auto& column : table.columns) out += " " + column.name + " |";
  out += "\n|";
  for (std::size_t c = 0; c < table.columns.size(); ++c) out += "---|";
  out += "\n";
  const auto marks = rank_marks(table, digits);
  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    out += "|";
    for (std::size_t c = 0; c < table.columns.size(); ++c) {
      std::string text = cell_text(table.rows[r][c], digits);
      if (marks[r][c] == "best") text = "**" + text + "**";
      if (marks[r][c] == "second") text = "<u>" + text + "</u>";
      out += " " + text + " |";
    }
    out += "\n";
  }
  return out;
}

std::string html_table(const Table& table, int digits) {
  std::string out = "<table>\n<tr>";
  for (const auto& column : table.columns) out += "<th>" + html_escape(column.name) + "</th>";
  out += "</tr>\n";
  const auto marks = rank_marks(table, digits);
  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    out += "<tr>";
    for (std::size_t c = 0; c < table.columns.size(); ++c) {
      std::string text = html_escape(cell_text(table.rows[r][c], digits));
      if (marks[r][c] == "best") text = "<b>" + text + "</b>";
      if (marks[r][c] == "second") text = "<u>" + text + "</u>";
      out += (table.rows[r][c].mean ? "<td class=\"num\">" : "<td>") + text + "</td>";
    }
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

// For spreadsheets and plotting scripts, not people: a metric column becomes two, NAME_mean and
// NAME_std, with every digit ({} is the shortest text that reads back as the same double) and
// no marks.
std::string csv_table(const Table& table) {
  std::vector<bool> metric(table.columns.size(), false);
  for (const auto& row : table.rows) {
    for (std::size_t c = 0; c < row.size(); ++c) metric[c] = metric[c] || row[c].mean.has_value();
  }
  std::string out;
  for (std::size_t c = 0; c < table.columns.size(); ++c) {
    if (c > 0) out += ",";
    out += metric[c] ? csv_field(table.columns[c].name + "_mean") + "," + csv_field(table.columns[c].name + "_std")
                     : csv_field(table.columns[c].name);
  }
  out += "\n";
  for (const auto& row : table.rows) {
    for (std::size_t c = 0; c < table.columns.size(); ++c) {
      if (c > 0) out += ",";
      if (metric[c]) {
        out += row[c].mean ? fmt::format("{}", *row[c].mean) : "";
        out += ",";
        out += row[c].std ? fmt::format("{}", *row[c].std) : "";
      } else {
        out += csv_field(row[c].text);
      }
    }
    out += "\n";
  }
  return out;
}

}  // namespace svmoe
