// CRC-32C (Castagnoli): the reflected polynomial 0x82F63B78, initial value and final XOR
// 0xFFFFFFFF (RFC 3720, appendix B.4). TFRecord files (io/tensorboard_events.h) frame records
// with it. Check value: crc32c("123456789") = 0xE3069283.
#pragma once

#include <cstdint>
#include <string_view>

namespace svmoe {

std::uint32_t crc32c(std::string_view bytes);

}  // namespace svmoe
