// SHA-256 (FIPS 180-4), for the identity of tokenizers and data files in manifests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace svmoe {

std::string sha256_hex(std::string_view data);
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace svmoe
