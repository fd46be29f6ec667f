// A C interface to libsentencepiece, built as a module that svmoe loads with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND). Why: Debian's libsentencepiece carries its own copy of
// protobuf (3.14) and exports its symbols, while LibTorch loads the system libprotobuf (3.21);
// in one global symbol namespace one of them binds to the other's code and the process
// crashes or aborts. Loaded locally and deep-bound, sentencepiece keeps its protobuf to itself.
// No C++ type or exception crosses this boundary. Deep binding has one cost: the module sees
// libstdc++'s own std::cerr, not the executable's initialised copy, so sentencepiece code that
// logs (the trainer) must not run here; training runs the spm_train program instead.
#include <sentencepiece_processor.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

void copy_message(const std::string& message, char* error, std::size_t error_size) {
  if (error == nullptr || error_size == 0) return;
  std::strncpy(error, message.c_str(), error_size - 1);
  error[error_size - 1] = '\0';
}

}  // namespace

extern "C" {

void* svmoe_spm_load(const char* path, char* error, std::size_t error_size) {
  try {
    auto* processor = new sentencepiece::SentencePieceProcessor();
    const auto status = processor->Load(path);
    if (!status.ok()) {
      copy_message(status.ToString(), error, error_size);
      delete processor;
      return nullptr;
    }
    return processor;
  } catch (const std::exception& e) {
    copy_message(e.what(), error, error_size);
    return nullptr;
  }
}

void svmoe_spm_free(void* handle) { delete static_cast<sentencepiece::SentencePieceProcessor*>(handle); }

// Writes up to `capacity` ids; returns the number of ids (more than capacity: call again), or -1.
std::int64_t svmoe_spm_encode(void* handle, const char* text, std::size_t length, std::int32_t* ids,
                              std::size_t capacity, char* error, std::size_t error_size) {
  try {
    std::vector<int> pieces;
    const auto status =
        static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(std::string(text, length), &pieces);
    if (!status.ok()) {
      copy_message(status.ToString(), error, error_size);
      return -1;
    }
    for (std::size_t i = 0; i < pieces.size() && i < capacity; ++i) ids[i] = pieces[i];
    return static_cast<std::int64_t>(pieces.size());
  } catch (const std::exception& e) {
    copy_message(e.what(), error, error_size);
    return -1;
  }
}

// Writes up to `capacity` bytes; returns the text's byte length (more than capacity: call again), or -1.
std::int64_t svmoe_spm_decode(void* handle, const std::int32_t* ids, std::size_t count, char* text,
                              std::size_t capacity, char* error, std::size_t error_size) {
  try {
    std::string decoded;
    const std::vector<int> pieces(ids, ids + count);
#ifdef ABSL_TYPES_SPAN_H_  // sentencepiece 0.2 (abseil): Decode(std::vector) is deprecated for the span form
    const auto status =
        static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(absl::MakeConstSpan(pieces), &decoded);
#else
    const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(pieces, &decoded);
#endif
    if (!status.ok()) {
      copy_message(status.ToString(), error, error_size);
      return -1;
    }
    std::memcpy(text, decoded.data(), decoded.size() < capacity ? decoded.size() : capacity);
    return static_cast<std::int64_t>(decoded.size());
  } catch (const std::exception& e) {
    copy_message(e.what(), error, error_size);
    return -1;
  }
}

std::int32_t svmoe_spm_piece_size(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->GetPieceSize();
}
std::int32_t svmoe_spm_bos_id(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->bos_id();
}
std::int32_t svmoe_spm_eos_id(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->eos_id();
}
int svmoe_spm_is_control(void* handle, std::int32_t id) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->IsControl(id) ? 1 : 0;
}

// Copies the piece (NUL-terminated, truncated to capacity); returns its length.
std::int64_t svmoe_spm_id_to_piece(void* handle, std::int32_t id, char* piece, std::size_t capacity) {
  const std::string text = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->IdToPiece(id);
  copy_message(text, piece, capacity);
  return static_cast<std::int64_t>(text.size());
}

}  // extern "C"
