#include "svmoe/io/json_fields.h"

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"

namespace svmoe {

nlohmann::json JsonFieldReader::parse() const {
  try {
    return nlohmann::json::parse(read_text_file(file_));
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError("'" + file_.string() + "' is not valid JSON: " + e.what(), hint_);
  }
}

void JsonFieldReader::fail(const std::string& field_path, const std::string& found, const std::string& expected) const {
  throw FormatError("'" + file_.string() + "' has " + field_path + " " + found + "; expected " + expected, hint_);
}

}  // namespace svmoe
