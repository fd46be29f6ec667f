// libFuzzer target for the safetensors header parser: any byte string must give a header or a
// svmoe::Error, never a crash or an out-of-bounds read (build with -DSVMOE_BUILD_FUZZERS=ON
// and clang; run: build/tests/fuzz/fuzz_safetensors -max_total_time=60).
#include <cstddef>
#include <cstdint>

#include "svmoe/io/safetensors.h"
#include "svmoe/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto header = svmoe::parse_safetensors_header(data, size, "fuzz input");
    for (const auto& entry : header.tensors) {
      // Every accepted entry must lie inside the buffer.
      if (header.data_start + entry.end > size) __builtin_trap();
    }
  } catch (const svmoe::Error&) {
  }
  return 0;
}
