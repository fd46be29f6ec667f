// tokenizer.model files, run by libsentencepiece through svmoe's sentencepiece module (see
// src/text/sentencepiece_module/ for why it is loaded apart with dlopen).
#include <dlfcn.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <fcntl.h>

#include <cerrno>
#include <climits>
#include <cstdlib>

#include "svmoe/text/tokenizer.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"

namespace svmoe {
namespace fs = std::filesystem;
namespace {

constexpr const char* kModuleName = "libsvmoe_sentencepiece.so";

// The module's functions, resolved once per process.
struct SentencePieceModule {
  void* (*load)(const char*, char*, std::size_t);
  void (*free)(void*);
  std::int64_t (*encode)(void*, const char*, std::size_t, std::int32_t*, std::size_t, char*, std::size_t);
  std::int64_t (*decode)(void*, const std::int32_t*, std::size_t, char*, std::size_t, char*, std::size_t);
  std::int32_t (*piece_size)(void*);
  std::int32_t (*bos_id)(void*);
  std::int32_t (*eos_id)(void*);
  int (*is_control)(void*, std::int32_t);
  std::int64_t (*id_to_piece)(void*, std::int32_t, char*, std::size_t);
};

// Where the module may be: $SVMOE_SENTENCEPIECE_MODULE, beside the running executable, in
// ../lib/svmoe from it (an installed layout), then in the build tree.
std::vector<fs::path> module_candidates() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("SVMOE_SENTENCEPIECE_MODULE")) candidates.emplace_back(env);
  char exe[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    const fs::path exe_dir = fs::path(std::string(exe, static_cast<std::size_t>(n))).parent_path();
    candidates.push_back(exe_dir / kModuleName);
    candidates.push_back(exe_dir.parent_path() / kModuleName);
    candidates.push_back(exe_dir.parent_path() / "lib" / "svmoe" / kModuleName);
  }
#ifdef SVMOE_SENTENCEPIECE_MODULE_PATH
  candidates.emplace_back(SVMOE_SENTENCEPIECE_MODULE_PATH);
#endif
  return candidates;
}

extern "C" char** environ;

// Runs `arguments` (argv[0] found on PATH) with stdout and stderr to `log`; its exit status
// (127 if it could not be started).
int run_program(const std::vector<std::string>& arguments, const fs::path& log) {
  std::vector<char*> argv;
  for (const auto& a : arguments) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return 127;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string tail_of_file(const fs::path& path, std::size_t bytes) {
  if (!fs::exists(path)) return {};
  const std::string text = read_text_file(path);
  return text.size() > bytes ? "..." + text.substr(text.size() - bytes) : text;
}

template <typename Function>
void resolve(void* library, const char* name, Function& function) {
  function = reinterpret_cast<Function>(::dlsym(library, name));
  if (function == nullptr) throw Error(std::string("svmoe's sentencepiece module lacks ") + name);
}

const SentencePieceModule& sentencepiece_module() {
  static const SentencePieceModule module = [] {
    std::string tried;
    void* library = nullptr;
    for (const auto& candidate : module_candidates()) {
      if (!fs::exists(candidate)) continue;
      library = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (library != nullptr) break;
      tried += "\n  " + candidate.string() + ": " + ::dlerror();
    }
    if (library == nullptr) {
      throw IoError(
          std::string("cannot load ") + kModuleName + ", which svmoe needs to read tokenizer.model files" + tried,
          "keep it beside the svmoe executable (the build puts it there), set SVMOE_SENTENCEPIECE_MODULE, or "
          "use the model's tokenizer.json");
    }
    SentencePieceModule m{};
    resolve(library, "svmoe_spm_load", m.load);
    resolve(library, "svmoe_spm_free", m.free);
    resolve(library, "svmoe_spm_encode", m.encode);
    resolve(library, "svmoe_spm_decode", m.decode);
    resolve(library, "svmoe_spm_piece_size", m.piece_size);
    resolve(library, "svmoe_spm_bos_id", m.bos_id);
    resolve(library, "svmoe_spm_eos_id", m.eos_id);
    resolve(library, "svmoe_spm_is_control", m.is_control);
    resolve(library, "svmoe_spm_id_to_piece", m.id_to_piece);
    return m;  // the library stays loaded for the life of the process
  }();
  return module;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const fs::path& model_file, bool add_bos, bool add_eos)
      : module_(sentencepiece_module()), add_bos_(add_bos), add_eos_(add_eos), name_(model_file.filename().string()) {
    char error[512] = {0};
    handle_ = module_.load(model_file.c_str(), error, sizeof error);
    if (handle_ == nullptr) {
      throw FormatError("cannot load SentencePiece model '" + model_file.string() + "': " + error,
                        "is it a tokenizer.model written by sentencepiece?");
    }
    pieces_ = module_.piece_size(handle_);
  }
  ~SentencePieceTokenizer() override { module_.free(handle_); }
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens) const override {
    std::vector<std::int32_t> ids(text.size() + 8);
    char error[512] = {0};
    std::int64_t count = module_.encode(handle_, text.data(), text.size(), ids.data(), ids.size(), error, sizeof error);
    if (count > static_cast<std::int64_t>(ids.size())) {
      ids.resize(static_cast<std::size_t>(count));
      count = module_.encode(handle_, text.data(), text.size(), ids.data(), ids.size(), error, sizeof error);
    }
    if (count < 0) throw Error(std::string("sentencepiece failed to encode: ") + error);
    ids.resize(static_cast<std::size_t>(count));
    if (add_special_tokens) {
      const auto bos = bos_id();
      const auto eos = eos_id();
      if (add_bos_ && bos) ids.insert(ids.begin(), *bos);
      if (add_eos_ && eos) ids.push_back(*eos);
    }
    return ids;
  }

  std::string decode(const std::vector<std::int32_t>& ids, bool skip_special_tokens) const override {
    std::vector<std::int32_t> kept;
    for (const auto id : ids) {
      if (id < 0 || id >= pieces_) {
        throw FormatError("token id " + std::to_string(id) + " is outside the vocabulary of " +
                          std::to_string(pieces_));
      }
      if (skip_special_tokens && module_.is_control(handle_, id)) continue;
      kept.push_back(id);
    }
    std::string text(kept.size() * 8 + 16, '\0');
    char error[512] = {0};
    std::int64_t length =
        module_.decode(handle_, kept.data(), kept.size(), text.data(), text.size(), error, sizeof error);
    if (length > static_cast<std::int64_t>(text.size())) {
      text.resize(static_cast<std::size_t>(length));
      length = module_.decode(handle_, kept.data(), kept.size(), text.data(), text.size(), error, sizeof error);
    }
    if (length < 0) throw Error(std::string("sentencepiece failed to decode: ") + error);
    text.resize(static_cast<std::size_t>(length));
    return text;
  }

  std::int64_t vocab_size() const override { return pieces_; }
  std::string piece(std::int32_t id) const override {
    if (id < 0 || id >= pieces_) return {};
    char buffer[256];
    const auto length = module_.id_to_piece(handle_, id, buffer, sizeof buffer);
    if (length < static_cast<std::int64_t>(sizeof buffer)) return buffer;
    std::string long_piece(static_cast<std::size_t>(length) + 1, '\0');
    module_.id_to_piece(handle_, id, long_piece.data(), long_piece.size());
    long_piece.resize(static_cast<std::size_t>(length));
    return long_piece;
  }
  std::optional<std::int32_t> bos_id() const override { return optional_id(module_.bos_id(handle_)); }
  std::optional<std::int32_t> eos_id() const override { return optional_id(module_.eos_id(handle_)); }
  std::string description() const override {
    return name_ + " (SentencePiece, " + std::to_string(pieces_) + " pieces)";
  }

 private:
  static std::optional<std::int32_t> optional_id(std::int32_t id) {
    return id >= 0 ? std::optional<std::int32_t>(id) : std::nullopt;
  }

  const SentencePieceModule& module_;
  void* handle_ = nullptr;
  std::int32_t pieces_ = 0;
  bool add_bos_;
  bool add_eos_;
  std::string name_;
};

}  // namespace

void train_sentencepiece(const SentencePieceTrainOptions& options) {
  // Llama-style special ids, byte fallback and split digits, as the paper's tokenizers have.
  const std::vector<std::string> arguments = {"spm_train",
                                              "--input=" + options.input.string(),
                                              "--model_prefix=" + options.model_prefix.string(),
                                              "--vocab_size=" + std::to_string(options.vocab_size),
                                              "--model_type=" + options.model_type,
                                              "--character_coverage=" + std::to_string(options.character_coverage),
                                              "--input_sentence_size=" + std::to_string(options.input_sentence_size),
                                              "--shuffle_input_sentence=true",
                                              "--byte_fallback=true",
                                              "--split_digits=true",
                                              "--unk_id=0",
                                              "--bos_id=1",
                                              "--eos_id=2",
                                              "--pad_id=-1",
                                              "--num_threads=" + std::to_string(options.threads),
                                              "--random_seed=" + std::to_string(options.seed)};
  fs::path log = options.model_prefix;
  log += ".train.log";
  const int status = run_program(arguments, log);
  if (status != 0) {
    throw Error("sentencepiece training (spm_train) failed with status " + std::to_string(status) + ":\n" +
                    tail_of_file(log, 1500),
                status == 127 ? "install the sentencepiece package (scripts/install-deps.sh does)"
                              : "a vocab_size larger than the corpus supports is the usual cause; lower "
                                "prepare.tokenizer_train.vocab_size");
  }
  fs::remove(log);
}

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const fs::path& tokenizer_model) {
  if (!fs::exists(tokenizer_model)) throw IoError("'" + tokenizer_model.string() + "' does not exist");
  bool add_bos = true;
  bool add_eos = false;
  const auto config_path = tokenizer_model.parent_path() / kTokenizerConfigFile;
  if (fs::exists(config_path)) {
    try {
      const auto config = nlohmann::json::parse(read_text_file(config_path));
      if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean()) add_bos = config["add_bos_token"];
      if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean()) add_eos = config["add_eos_token"];
    } catch (const nlohmann::json::parse_error& e) {
      throw FormatError("'" + config_path.string() + "' is not valid JSON: " + e.what());
    }
  }
  return std::make_unique<SentencePieceTokenizer>(tokenizer_model, add_bos, add_eos);
}

}  // namespace svmoe
