// Loading the model: llama.cpp backend setup and logging, option checks, the GGUF load, the
// model id (file fingerprint) and make_llama_engine. Kept apart from generation and
// embedding, which only use what is loaded here.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <llama.h>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/log.h"
#include "liber/llm/llama/engine.h"

namespace liber {

namespace llm::llama {

namespace {

// llama.cpp logs a lot at load time; keep errors, show everything with LIBER_LLAMA_LOG set.
void log_filter(ggml_log_level level, const char* text, void*) {
  static const bool verbose = [] {
    const char* v = std::getenv("LIBER_LLAMA_LOG");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  static thread_local bool last_was_error = false;
  if (level != GGML_LOG_LEVEL_CONT) last_was_error = level == GGML_LOG_LEVEL_ERROR;
  if (!verbose && !last_was_error) return;
  std::string_view line(text);
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty()) log_message(last_was_error ? LogLevel::Warning : LogLevel::Info, line);
}

void init_llama_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(log_filter, nullptr);
    llama_backend_init();
  });
}

// FNV-1a over the file size and its first and last MiB: cheap, and distinguishes any two
// GGUF files one would realistically confuse (different quantisations, re-exports).
std::string file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::Io, fmt::format("cannot open model file {}", path));
  const uint64_t size = std::filesystem::file_size(path);
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const char* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(data[i]);
      h *= 1099511628211ull;
    }
  };
  mix(reinterpret_cast<const char*>(&size), sizeof size);
  constexpr uint64_t kChunk = 1u << 20;
  std::vector<char> buf(kChunk);
  const uint64_t head = std::min(size, kChunk);
  in.read(buf.data(), static_cast<std::streamsize>(head));
  mix(buf.data(), static_cast<std::size_t>(in.gcount()));
  if (size > kChunk) {
    const uint64_t tail_start = std::max(head, size - kChunk);
    in.seekg(static_cast<std::streamoff>(tail_start));
    in.read(buf.data(), static_cast<std::streamsize>(size - tail_start));
    mix(buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  return fmt::format("{:016x}", h).substr(0, 8);
}

}  // namespace

LlamaEngine::LlamaEngine(const LlamaOptions& options) : options_(options) {
  if (options_.model_path.empty()) options_.model_path = default_model_path();
  if (!std::filesystem::exists(options_.model_path))
    throw Error(ErrorKind::Config,
                fmt::format("model file {} does not exist", options_.model_path));
  if (options_.parallel < 1) throw Error(ErrorKind::Config, "parallel must be >= 1");
  if (options_.context < 64) throw Error(ErrorKind::Config, "context must be >= 64");
  if (options_.batch < 1) throw Error(ErrorKind::Config, "batch must be >= 1");
  if (options_.threads <= 0)
    options_.threads = std::max(1u, std::thread::hardware_concurrency());
  init_llama_once();

  llama_model_params mp = llama_model_default_params();
  model_.reset(llama_model_load_from_file(options_.model_path.c_str(), mp));
  if (!model_)
    throw Error(ErrorKind::Io,
                fmt::format("llama.cpp could not load the GGUF model {} (set LIBER_LLAMA_LOG=1 "
                            "for details)",
                            options_.model_path));
  vocab_ = llama_model_get_vocab(model_.get());
  n_vocab_ = llama_vocab_n_tokens(vocab_);
  model_id_ = fmt::format("gguf:{}:{}", std::filesystem::path(options_.model_path).stem().string(),
                          file_fingerprint(options_.model_path));

  seq_ctx_ = options_.context / options_.parallel;
  const int n_train = llama_model_n_ctx_train(model_.get());
  if (n_train > 0) seq_ctx_ = std::min(seq_ctx_, n_train);
  if (seq_ctx_ < 16)
    throw Error(ErrorKind::Config,
                fmt::format("context {} over {} parallel sequences leaves {} tokens each",
                            options_.context, options_.parallel, seq_ctx_));

  choose_template();
  if (options_.embeddings) ensure_embed_context();
  else ensure_gen_context();
}

}  // namespace llm::llama

std::unique_ptr<LlmEngine> make_llama_engine(const LlamaOptions& options) {
  return std::make_unique<llm::llama::LlamaEngine>(options);
}

}  // namespace liber
