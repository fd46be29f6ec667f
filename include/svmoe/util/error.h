// svmoe's one error hierarchy. Library code throws these; `main` catches them once, prints
// the message and the hint, and exits with the error's code.
#pragma once

#include <stdexcept>
#include <string>

namespace svmoe {

// Process exit codes, documented in README.md.
enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,      // an unexpected error (a bug: please report it)
  kUsage = 2,        // bad command line
  kConfig = 3,       // bad config file, key or value
  kInput = 4,        // a bad input file (malformed checkpoint, tokenizer, data)
  kIo = 5,           // the file system said no (missing file, permissions, disk full)
  kUnsupported = 6,  // a valid input that uses a feature svmoe does not implement
  kMismatch = 7,     // a requested comparison (svmoe forward --compare) found a difference
  kBusy = 8,         // another svmoe process is writing the same directory (util/directory_lock.h)
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, std::string hint = {}) : std::runtime_error(what), hint_(std::move(hint)) {}
  const std::string& hint() const { return hint_; }
  virtual ExitCode exit_code() const { return ExitCode::kFailure; }

 private:
  std::string hint_;
};

class UsageError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return ExitCode::kUsage; }
};

class ConfigError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return ExitCode::kConfig; }
};

// The content of an input file is malformed.
class FormatError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return ExitCode::kInput; }
};

class IoError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return ExitCode::kIo; }
};

class UnsupportedError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return ExitCode::kUnsupported; }
};

// A check the user asked for failed (outputs differ from a reference).
class ComparisonError : public Error {
 public:
  using Error::Error;
  ExitCode exit_code() const override { return ExitCode::kMismatch; }
};

// "what" plus the errno text, for failed system calls.
std::string describe_errno(const std::string& what);

}  // namespace svmoe
