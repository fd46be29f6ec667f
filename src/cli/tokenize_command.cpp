// svmoe tokenize: encode text (or decode ids) with a model's tokenizer, to check it against
// Hugging Face tokenizers or sentencepiece.
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "svmoe/text/tokenizer.h"
#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"

namespace svmoe::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::vector<std::string> texts;
  std::string file;
  bool no_special = false;
  bool pieces = false;
  bool decode = false;
};

void encode_line(const Tokenizer& tokenizer, const std::string& text, const TokenizeOptions& options) {
  const auto ids = tokenizer.encode(text, !options.no_special);
  std::vector<std::string> fields;
  for (const auto id : ids) fields.push_back(options.pieces ? tokenizer.piece(id) : std::to_string(id));
  std::cout << join(fields, " ") << "\n";
}

void decode_line(const Tokenizer& tokenizer, const std::string& line) {
  std::vector<std::int32_t> ids;
  std::istringstream in(line);
  std::string field;
  while (in >> field) {
    try {
      std::size_t used = 0;
      ids.push_back(std::stoi(field, &used));
      if (used != field.size()) throw std::invalid_argument(field);
    } catch (const std::exception&) {
      throw UsageError("--decode: '" + field + "' is not a token id", "give whitespace-separated integer ids");
    }
  }
  std::cout << tokenizer.decode(ids) << "\n";
}

void run_tokenize(const TokenizeOptions& options) {
  const auto tokenizer = load_tokenizer(options.tokenizer);
  std::vector<std::string> lines = options.texts;
  if (!options.file.empty()) {
    std::ifstream in(options.file);
    if (!in) throw IoError("cannot open '" + options.file + "'");
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  if (lines.empty()) {
    for (std::string line; std::getline(std::cin, line);) lines.push_back(line);
  }
  for (const auto& line : lines) {
    if (options.decode)
      decode_line(*tokenizer, line);
    else
      encode_line(*tokenizer, line, options);
  }
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto* command = app.add_subcommand("tokenize", "encode text into token ids (one line each), or decode ids");
  auto options = std::make_shared<TokenizeOptions>();
  command->add_option("--tokenizer", options->tokenizer, "model directory, tokenizer.json or tokenizer.model")
      ->required();
  command->add_option("--text", options->texts, "text to encode (repeatable); else --file, else standard input");
  command->add_option("--file", options->file, "encode each line of this file")->check(CLI::ExistingFile);
  command->add_flag("--no-special", options->no_special, "do not add BOS/EOS");
  command->add_flag("--pieces", options->pieces, "print pieces instead of ids");
  command->add_flag("--decode", options->decode, "decode lines of whitespace-separated ids instead");
  command->callback([options] { run_tokenize(*options); });
}

}  // namespace svmoe::cli
