// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of UTF-8 JSON ({name: {dtype, shape, data_offsets}, "__metadata__":
// {string: string}}), then the tensors' bytes. Reading maps the file and checks every header
// field against the file before any tensor is touched; tensors are views of the mapping.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svmoe {

class MappedFile;
class AtomicFileWriter;

// Every dtype the format defines.
enum class DType { kBool, kU8, kI8, kF8E5M2, kF8E4M3, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64 };

std::string_view dtype_name(DType dtype);  // "F32", ...
std::optional<DType> parse_dtype(std::string_view name);
std::size_t dtype_size(DType dtype);
// Throws UnsupportedError where this LibTorch has no such scalar type.
torch::ScalarType to_torch_dtype(DType dtype);
DType from_torch_dtype(torch::ScalarType type);

struct TensorEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // byte offsets into the data section (after the header)
  std::uint64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<TensorEntry> tensors;  // in order of their data offsets
  std::map<std::string, std::string> metadata;
  std::uint64_t data_start = 0;  // 8 + header length
};

// The largest header accepted (the reference implementation's limit).
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Parses and checks a whole safetensors byte buffer's header. `source` names the file in errors.
SafetensorsHeader parse_safetensors_header(const std::uint8_t* data, std::size_t size, const std::string& source);

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const;
  const std::vector<TensorEntry>& entries() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const TensorEntry& entry(const std::string& name) const;
  // A CPU tensor viewing the mapped file (copy-on-write: writing to it never changes the file).
  // It keeps the mapping alive. Copied only if the bytes are misaligned for the dtype.
  torch::Tensor tensor(const std::string& name) const;
  // Drops the tensor's pages from memory (MappedFile::release): for streaming, after use.
  void release(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  SafetensorsHeader header_;
  std::map<std::string, std::size_t> index_;
};

struct NamedTensor {
  std::string name;
  torch::Tensor tensor;
};

// What a tensor will be, before its values exist.
struct TensorSpec {
  std::string name;
  torch::ScalarType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t bytes() const;
};

// Writes a safetensors file tensor by tensor, so that only one tensor need exist at a time:
// the header comes from the specs (written in name order), then write() each tensor in that
// order (checked against its spec), then commit() (atomic, as write_safetensors).
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::filesystem::path& path, std::vector<TensorSpec> specs,
                    std::map<std::string, std::string> metadata = {});
  ~SafetensorsWriter();
  const std::vector<TensorSpec>& specs() const { return specs_; }  // in the order to write
  void write(const torch::Tensor& tensor);
  void commit();

 private:
  std::unique_ptr<AtomicFileWriter> file_;
  std::vector<TensorSpec> specs_;
  std::size_t next_ = 0;
};

// Writes tensors (any device; stored as they are, dtype kept) atomically. The metadata always
// holds "format": "pt", which transformers requires.
void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                       std::map<std::string, std::string> metadata = {});

// Byte size of a tensor as stored.
std::uint64_t stored_bytes(const torch::Tensor& tensor);

}  // namespace svmoe
