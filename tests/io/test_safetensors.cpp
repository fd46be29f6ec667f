#include "svmoe/io/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;

namespace {

// A hand-made safetensors file: `header` JSON text, then `data_bytes` zero bytes.
void write_raw(const fs::path& path, const std::string& header, std::size_t data_bytes,
               std::uint64_t claimed_length = 0) {
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t length = claimed_length ? claimed_length : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(length >> (8 * i)));
  out << header << std::string(data_bytes, '\0');
}

std::string open_error(const fs::path& path) {
  try {
    SafetensorsFile::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Safetensors, RoundTripsEveryTorchDtypeBitExactly) {
  test::ScratchDir dir;
  torch::manual_seed(0);
  std::vector<NamedTensor> tensors = {
      {"f32", torch::randn({3, 4})},
      {"f16", torch::randn({5}).to(torch::kFloat16)},
      {"bf16", torch::randn({2, 3}).to(torch::kBFloat16)},
      {"f64", torch::randn({2}, torch::kFloat64)},
      {"i64", torch::arange(6, torch::kInt64).view({2, 3})},
      {"i32", torch::tensor({-1, 2, 3}, torch::kInt32)},
      {"i16", torch::tensor({-7, 7}, torch::kInt16)},
      {"i8", torch::tensor({-128, 127}, torch::kInt8)},
      {"u8", torch::tensor({0, 255}, torch::kUInt8)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(3.5f)},
      {"empty", torch::empty({0, 4})},
  };
  write_safetensors(dir / "t.safetensors", tensors, {{"note", "hello"}});
  const SafetensorsFile file = SafetensorsFile::open(dir / "t.safetensors");
  EXPECT_EQ(file.metadata().at("note"), "hello");
  EXPECT_EQ(file.metadata().at("format"), "pt");
  ASSERT_EQ(file.entries().size(), tensors.size());
  for (const auto& t : tensors) {
    const torch::Tensor read = file.tensor(t.name);
    EXPECT_EQ(read.scalar_type(), t.tensor.scalar_type()) << t.name;
    EXPECT_EQ(read.sizes(), t.tensor.sizes()) << t.name;
    EXPECT_TRUE(torch::equal(read, t.tensor)) << t.name;
  }
}

TEST(Safetensors, HeaderIsPaddedAndTensorsAligned) {
  test::ScratchDir dir;
  write_safetensors(dir / "t.safetensors",
                    {{"a", torch::ones({3}, torch::kFloat64)}, {"b", torch::ones({1}, torch::kInt8)}});
  const std::string bytes = read_text_file(dir / "t.safetensors");
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(length % 8, 0u);
  const SafetensorsFile file = SafetensorsFile::open(dir / "t.safetensors");
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(file.tensor("a").data_ptr()) % 8, 0u);
}

TEST(Safetensors, TensorsViewTheFileCopyOnWrite) {
  test::ScratchDir dir;
  write_safetensors(dir / "t.safetensors", {{"a", torch::zeros({4})}});
  {
    const SafetensorsFile file = SafetensorsFile::open(dir / "t.safetensors");
    torch::Tensor a = file.tensor("a");
    a.fill_(7.0f);  // must not reach the file
  }
  EXPECT_TRUE(torch::equal(SafetensorsFile::open(dir / "t.safetensors").tensor("a"), torch::zeros({4})));
}

TEST(Safetensors, ReadsAllFormatDtypesFromAHandWrittenHeader) {
  test::ScratchDir dir;
  const std::string header =
      R"({"a":{"dtype":"U16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[2,4]},)"
      R"("c":{"dtype":"U64","shape":[1],"data_offsets":[4,12]}})";
  write_raw(dir / "t.safetensors", header, 12);
  const SafetensorsFile file = SafetensorsFile::open(dir / "t.safetensors");
  EXPECT_EQ(file.entry("a").dtype, DType::kU16);
  EXPECT_EQ(file.entry("b").dtype, DType::kF8E4M3);
  EXPECT_EQ(file.entry("c").dtype, DType::kU64);
}

TEST(Safetensors, RejectsTruncatedFile) {
  test::ScratchDir dir;
  write_safetensors(dir / "t.safetensors", {{"a", torch::ones({100})}});
  const std::string bytes = read_text_file(dir / "t.safetensors");
  write_file_atomically(dir / "cut.safetensors", bytes.substr(0, bytes.size() - 10));
  const std::string message = open_error(dir / "cut.safetensors");
  EXPECT_NE(message.find("cut.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST(Safetensors, RejectsTinyFile) {
  test::ScratchDir dir;
  write_file_atomically(dir / "t.safetensors", "abc");
  EXPECT_NE(open_error(dir / "t.safetensors").find("fewer than the 8-byte"), std::string::npos);
}

TEST(Safetensors, RejectsHeaderLengthBeyondFile) {
  test::ScratchDir dir;
  write_raw(dir / "t.safetensors", "{}", 0, 4096);
  EXPECT_NE(open_error(dir / "t.safetensors").find("claims 4096 bytes"), std::string::npos);
}

TEST(Safetensors, RejectsHugeHeader) {
  test::ScratchDir dir;
  write_raw(dir / "t.safetensors", "{}", 0, 1ull << 40);
  EXPECT_NE(open_error(dir / "t.safetensors").find("more than the limit"), std::string::npos);
}

TEST(Safetensors, RejectsNonUtf8Header) {
  test::ScratchDir dir;
  write_raw(dir / "t.safetensors", "{\"\xff\xfe\":1}", 0);
  EXPECT_NE(open_error(dir / "t.safetensors").find("UTF-8"), std::string::npos);
}

TEST(Safetensors, RejectsInvalidJson) {
  test::ScratchDir dir;
  write_raw(dir / "t.safetensors", "{\"a\": ", 0);
  EXPECT_NE(open_error(dir / "t.safetensors").find("not valid JSON"), std::string::npos);
}

TEST(Safetensors, RejectsOverlappingOffsets) {
  test::ScratchDir dir;
  write_raw(
      dir / "t.safetensors",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      12);
  EXPECT_NE(open_error(dir / "t.safetensors").find("overlaps"), std::string::npos);
}

TEST(Safetensors, RejectsOffsetsBeyondTheData) {
  test::ScratchDir dir;
  write_raw(dir / "t.safetensors", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
  const std::string message = open_error(dir / "t.safetensors");
  EXPECT_NE(message.find("cover 16 bytes"), std::string::npos) << message;
}

TEST(Safetensors, RejectsHolesAndTrailingBytes) {
  test::ScratchDir dir;
  write_raw(
      dir / "hole.safetensors",
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
      12);
  EXPECT_NE(open_error(dir / "hole.safetensors").find("ends at 4"), std::string::npos);
  write_raw(dir / "trail.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 9);
  EXPECT_NE(open_error(dir / "trail.safetensors").find("trailing"), std::string::npos);
}

TEST(Safetensors, RejectsShapeThatDisagreesWithByteCount) {
  test::ScratchDir dir;
  write_raw(dir / "t.safetensors", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
  const std::string message = open_error(dir / "t.safetensors");
  EXPECT_NE(message.find("needs 3 x 4 bytes"), std::string::npos) << message;
}

TEST(Safetensors, RejectsNegativeAndOverflowingShapes) {
  test::ScratchDir dir;
  write_raw(dir / "neg.safetensors", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0);
  EXPECT_NE(open_error(dir / "neg.safetensors").find("negative"), std::string::npos);
  write_raw(dir / "big.safetensors", R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})",
            0);
  EXPECT_NE(open_error(dir / "big.safetensors").find("impossibly large"), std::string::npos);
}

TEST(Safetensors, RejectsUnknownDtypeAndBadMetadata) {
  test::ScratchDir dir;
  write_raw(dir / "dtype.safetensors", R"({"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", 1);
  EXPECT_THROW(SafetensorsFile::open(dir / "dtype.safetensors"), UnsupportedError);
  write_raw(dir / "meta.safetensors", R"({"__metadata__":{"n":1}})", 0);
  EXPECT_NE(open_error(dir / "meta.safetensors").find("__metadata__"), std::string::npos);
  write_raw(dir / "missing.safetensors", R"({"a":{"dtype":"F32","shape":[1]}})", 4);
  EXPECT_NE(open_error(dir / "missing.safetensors").find("data_offsets"), std::string::npos);
}

TEST(Safetensors, UnknownTensorNameIsAClearError) {
  test::ScratchDir dir;
  write_safetensors(dir / "t.safetensors", {{"a", torch::ones({1})}});
  const SafetensorsFile file = SafetensorsFile::open(dir / "t.safetensors");
  EXPECT_THROW(file.tensor("b"), FormatError);
}

}  // namespace svmoe
