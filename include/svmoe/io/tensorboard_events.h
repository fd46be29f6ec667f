// TensorBoard event files, what `tensorboard --logdir DIR` reads: a TFRecord file of
// tensorflow.Event protocol buffers (src/io/tensorboard_event.proto, encoded by Debian's
// libprotobuf). Each record is, little-endian,
//   uint64 length | uint32 masked_crc(length's 8 bytes) | data | uint32 masked_crc(data)
// with masked_crc(x) = ((c >> 15) | (c << 17)) + 0xA282EAD8 (mod 2^32), c = CRC-32C(x). The first
// record holds file_version "brain.Event:2"; each later one a step's scalars (float32).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace svmoe {

struct TensorBoardScalar {
  std::string tag;  // "train/loss": TensorBoard groups tags by what precedes the first '/'
  double value;     // written as float32 (Summary.Value.simple_value)
};

class TensorBoardEventWriter {
 public:
  // Starts PATH anew with the file_version record.
  static TensorBoardEventWriter create(const std::filesystem::path& path, double wall_time);
  // Appends to PATH, a file create() started.
  static TensorBoardEventWriter append_to(const std::filesystem::path& path);

  // One event: `scalars` at `step`, flushed to the file (a write that fails is an IoError).
  void write(std::int64_t step, double wall_time, const std::vector<TensorBoardScalar>& scalars);
  const std::filesystem::path& path() const { return path_; }

 private:
  TensorBoardEventWriter(std::filesystem::path path, std::ios::openmode mode);
  void write_record(const std::string& data);

  std::filesystem::path path_;
  std::ofstream out_;
};

// The name TensorBoard looks for (it reads the files whose name holds "tfevents"), unique to
// this process and second: events.out.tfevents.SECONDS.HOST.PID
std::string tensorboard_event_file_name(double wall_time);
bool is_tensorboard_event_file(const std::filesystem::path& path);

// Seconds since the Unix epoch, the events' wall_time.
double unix_time_now();

}  // namespace svmoe
