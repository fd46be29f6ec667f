#include "svmoe/io/safetensors.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "svmoe/model/compat.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace {

// The safetensors format (huggingface/safetensors, docs/formats.md): an 8-byte little-endian
// header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end)}, ...,
// "__metadata__": {string: string}}, then the data section the offsets index, little-endian,
// row-major. Everything read from a file is checked before it is trusted: a bad file is a
// FormatError that says what is wrong, never an out-of-bounds read.

// The dtype names the format defines, with their element sizes.
struct DTypeInfo {
  DType dtype;
  const char* name;
  std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, "BOOL", 1},      {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},   {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kI16, "I16", 2}, {DType::kU16, "U16", 2}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2},      {DType::kI32, "I32", 4}, {DType::kU32, "U32", 4}, {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},        {DType::kI64, "I64", 8}, {DType::kU64, "U64", 8},
};

const DTypeInfo& info(DType dtype) {
  for (const auto& i : kDTypes) {
    if (i.dtype == dtype) return i;
  }
  throw Error("internal: unknown safetensors dtype");
}

std::uint64_t read_le64(const std::uint8_t* p) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

[[noreturn]] void corrupt(const std::string& source, const std::string& problem) {
  throw FormatError("'" + source + "' is not a valid safetensors file: " + problem,
                    "the file is damaged or was not written completely; re-download or re-create it");
}

// One header entry: dtype known, shape of non-negative sizes whose product does not overflow,
// offsets that span exactly numel x element size bytes.
TensorEntry parse_entry(const std::string& name, const nlohmann::json& value, const std::string& source) {
  const std::string where = "tensor '" + name + "'";
  if (!value.is_object()) corrupt(source, where + " is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) corrupt(source, where + " has no '" + key + "'");
  }
  TensorEntry entry;
  entry.name = name;
  const auto& dtype = value.at("dtype");
  if (!dtype.is_string()) corrupt(source, where + ": dtype is not a string");
  const auto parsed = parse_dtype(dtype.get<std::string>());
  if (!parsed) {
    throw UnsupportedError(
        "'" + source + "': " + where + " has dtype '" + dtype.get<std::string>() + "', which svmoe does not read",
        "convert the checkpoint to F32, F16 or BF16");
  }
  entry.dtype = *parsed;

  const auto& shape = value.at("shape");
  if (!shape.is_array()) corrupt(source, where + ": shape is not a list");
  std::uint64_t count = 1;
  for (const auto& dim : shape) {
    if (!dim.is_number_unsigned())
      corrupt(source, where + ": shape " + shape.dump() + " has a non-integer or negative size");
    const auto size = dim.get<std::uint64_t>();
    if (size > static_cast<std::uint64_t>(INT64_MAX) || __builtin_mul_overflow(count, size, &count)) {
      corrupt(source, where + ": shape " + shape.dump() + " is impossibly large");
    }
    entry.shape.push_back(static_cast<std::int64_t>(size));
  }

  const auto& offsets = value.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    corrupt(source, where + ": data_offsets must be two non-negative integers, found " + offsets.dump());
  }
  entry.begin = offsets[0].get<std::uint64_t>();
  entry.end = offsets[1].get<std::uint64_t>();
  if (entry.end < entry.begin) corrupt(source, where + ": data_offsets " + offsets.dump() + " end before they begin");
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(count, dtype_size(entry.dtype), &bytes) || bytes != entry.end - entry.begin) {
    corrupt(source, where + ": shape " + shape.dump() + " of " + std::string(dtype_name(entry.dtype)) + " needs " +
                        std::to_string(count) + " x " + std::to_string(dtype_size(entry.dtype)) +
                        " bytes, but data_offsets " + offsets.dump() + " span " +
                        std::to_string(entry.end - entry.begin));
  }
  return entry;
}

}  // namespace

std::string_view dtype_name(DType dtype) { return info(dtype).name; }
std::size_t dtype_size(DType dtype) { return info(dtype).size; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& i : kDTypes) {
    if (name == i.name) return i.dtype;
  }
  return std::nullopt;
}

torch::ScalarType to_torch_dtype(DType dtype) {
  std::optional<torch::ScalarType> type;
  switch (dtype) {
    case DType::kBool:
      type = torch::kBool;
      break;
    case DType::kU8:
      type = torch::kUInt8;
      break;
    case DType::kI8:
      type = torch::kInt8;
      break;
    case DType::kI16:
      type = torch::kInt16;
      break;
    case DType::kI32:
      type = torch::kInt32;
      break;
    case DType::kI64:
      type = torch::kInt64;
      break;
    case DType::kF16:
      type = torch::kFloat16;
      break;
    case DType::kBF16:
      type = torch::kBFloat16;
      break;
    case DType::kF32:
      type = torch::kFloat32;
      break;
    case DType::kF64:
      type = torch::kFloat64;
      break;
    case DType::kU16:
      type = compat::uint16_type();
      break;
    case DType::kU32:
      type = compat::uint32_type();
      break;
    case DType::kU64:
      type = compat::uint64_type();
      break;
    case DType::kF8E4M3:
      type = compat::float8_e4m3_type();
      break;
    case DType::kF8E5M2:
      type = compat::float8_e5m2_type();
      break;
  }
  if (!type) {
    throw UnsupportedError(
        "safetensors dtype " + std::string(dtype_name(dtype)) + " has no tensor type in LibTorch " + TORCH_VERSION,
        "build svmoe against a newer LibTorch, or convert the tensor");
  }
  return *type;
}

DType from_torch_dtype(torch::ScalarType type) {
  for (const auto& i : kDTypes) {
    try {
      if (to_torch_dtype(i.dtype) == type) return i.dtype;
    } catch (const UnsupportedError&) {
    }
  }
  throw UnsupportedError(std::string("tensor type ") + c10::toString(type) + " cannot be stored in safetensors");
}

// The length, then the JSON (bounded, UTF-8, an object), then its entries, then the layout of the
// data section as a whole.
SafetensorsHeader parse_safetensors_header(const std::uint8_t* data, std::size_t size, const std::string& source) {
  if (size < 8) corrupt(source, "it has " + std::to_string(size) + " bytes, fewer than the 8-byte header length");
  const std::uint64_t header_length = read_le64(data);
  if (header_length > kMaxSafetensorsHeaderBytes) {
    corrupt(source, "its header claims " + std::to_string(header_length) + " bytes, more than the limit of " +
                        std::to_string(kMaxSafetensorsHeaderBytes));
  }
  if (header_length > size - 8) {
    corrupt(source, "its header claims " + std::to_string(header_length) + " bytes but the file has only " +
                        std::to_string(size - 8) + " after the length (truncated?)");
  }
  const std::string_view text(reinterpret_cast<const char*>(data + 8), header_length);
  if (!is_valid_utf8(text)) corrupt(source, "its header is not valid UTF-8");
  if (text.empty() || text.front() != '{') corrupt(source, "its header does not start with '{'");

  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    corrupt(source, std::string("its header is not valid JSON (") + e.what() + ")");
  }
  if (!json.is_object()) corrupt(source, "its header is not a JSON object");

  SafetensorsHeader header;
  header.data_start = 8 + header_length;
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) corrupt(source, "__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) corrupt(source, "__metadata__ value '" + m.key() + "' is not a string");
        header.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    header.tensors.push_back(parse_entry(it.key(), it.value(), source));
  }

  // The data section must be covered exactly: no overlaps, no holes, nothing past the end.
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const std::uint64_t data_size = size - header.data_start;
  std::uint64_t expected_begin = 0;
  for (const auto& entry : header.tensors) {
    if (entry.begin != expected_begin) {
      corrupt(source,
              "tensor '" + entry.name + "' starts at byte " + std::to_string(entry.begin) + " of the data, but " +
                  (entry.begin < expected_begin ? "that overlaps the tensor before it"
                                                : "the tensor before it ends at " + std::to_string(expected_begin)));
    }
    expected_begin = entry.end;
  }
  if (expected_begin != data_size) {
    corrupt(source, "the tensors cover " + std::to_string(expected_begin) + " bytes of data but the file holds " +
                        std::to_string(data_size) +
                        (expected_begin > data_size ? " (truncated?)" : " (trailing bytes)"));
  }
  return header;
}

// The file is memory-mapped (util/files.h): tensors are views into it, read from disk only when
// touched, so a multi-GB checkpoint opens at once and the merge reads one tensor at a time.
SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile result;
  result.file_ = MappedFile::open(path);
  result.header_ = parse_safetensors_header(result.file_->data(), result.file_->size(), path.string());
  for (std::size_t i = 0; i < result.header_.tensors.size(); ++i) result.index_[result.header_.tensors[i].name] = i;
  return result;
}

const std::filesystem::path& SafetensorsFile::path() const { return file_->path(); }

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    throw FormatError("'" + path().string() + "' has no tensor named '" + name + "'");
  }
  return header_.tensors[it->second];
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorEntry& e = entry(name);
  const auto type = to_torch_dtype(e.dtype);
  std::uint8_t* address = file_->data() + header_.data_start + e.begin;
  const auto options = torch::TensorOptions().dtype(type).device(torch::kCPU);
  if (e.end == e.begin) return torch::empty(e.shape, options);
  // from_blob needs the data aligned to its element size; the format aligns only the data
  // section's start, so a file written by another tool may need a copy.
  if (reinterpret_cast<std::uintptr_t>(address) % dtype_size(e.dtype) != 0) {
    auto copy = torch::empty(e.shape, options);
    std::memcpy(copy.data_ptr(), address, e.end - e.begin);
    return copy;
  }
  // The tensor holds the mapping alive (a shared_ptr in its deleter): it may outlive this object.
  auto keep_alive = file_;
  return torch::from_blob(
      address, e.shape, [keep_alive](void*) {}, options);
}

std::uint64_t stored_bytes(const torch::Tensor& tensor) {
  return static_cast<std::uint64_t>(tensor.numel()) * tensor.element_size();
}

// Tells the kernel a tensor's pages will not be read again (a tensor consumed by the merge), so a
// checkpoint larger than memory streams through the page cache.
void SafetensorsFile::release(const std::string& name) const {
  const TensorEntry& e = entry(name);
  file_->release(header_.data_start + e.begin, e.end - e.begin);
}

std::uint64_t TensorSpec::bytes() const {
  std::uint64_t count = 1;
  for (const auto d : shape) count *= static_cast<std::uint64_t>(d);
  return count * dtype_size(from_torch_dtype(dtype));
}

SafetensorsWriter::SafetensorsWriter(const std::filesystem::path& path, std::vector<TensorSpec> specs,
                                     std::map<std::string, std::string> metadata)
    : specs_(std::move(specs)) {
  // The header is written first, so every tensor's shape and dtype are announced up front; the
  // tensors then follow in name order (so the same tensors make the same file), each checked against
  // its announcement. The file appears only at commit() (AtomicFileWriter).
  metadata.emplace("format", "pt");  // transformers requires it
  std::sort(specs_.begin(), specs_.end(), [](const TensorSpec& a, const TensorSpec& b) { return a.name < b.name; });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    const TensorSpec& spec = specs_[i];
    if (i > 0 && specs_[i - 1].name == spec.name)
      throw Error("internal: two tensors named '" + spec.name + "' to write");
    if (spec.name == "__metadata__") throw Error("internal: a tensor cannot be named __metadata__");
    header[spec.name] = {{"dtype", dtype_name(from_torch_dtype(spec.dtype))},
                         {"shape", spec.shape},
                         {"data_offsets", {offset, offset + spec.bytes()}}};
    offset += spec.bytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // tensors start 8-byte aligned
  file_ = std::make_unique<AtomicFileWriter>(path);
  std::uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(text.size()) >> (8 * i));
  file_->write(length, 8);
  file_->write(text);
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write(const torch::Tensor& tensor) {
  if (next_ >= specs_.size()) throw Error("internal: more tensors written than announced");
  const TensorSpec& spec = specs_[next_++];
  if (tensor.scalar_type() != spec.dtype || tensor.sizes().vec() != spec.shape) {
    throw Error("internal: tensor '" + spec.name + "' is " + std::string(c10::toString(tensor.scalar_type())) + " " +
                c10::str(tensor.sizes()) + ", not as announced");
  }
  const torch::Tensor cpu = tensor.detach().to(torch::kCPU).contiguous();
  file_->write(cpu.data_ptr(), stored_bytes(cpu));
}

void SafetensorsWriter::commit() {
  if (next_ != specs_.size())
    throw Error("internal: " + std::to_string(specs_.size() - next_) + " tensors not written");
  file_->commit();
}

void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                       std::map<std::string, std::string> metadata) {
  std::vector<TensorSpec> specs;
  std::map<std::string, const torch::Tensor*> by_name;
  for (const auto& t : tensors) {
    specs.push_back({t.name, t.tensor.scalar_type(), t.tensor.sizes().vec()});
    by_name[t.name] = &t.tensor;
  }
  SafetensorsWriter writer(path, std::move(specs), std::move(metadata));
  for (const auto& spec : writer.specs()) writer.write(*by_name.at(spec.name));
  writer.commit();
}

}  // namespace svmoe
