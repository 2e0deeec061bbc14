// The llama.cpp engine's class and the types its parts share: one model, one generation
// context with `parallel` sequence slots and continuous batching, plus a (lazily created)
// embedding context. Internal to src/llm/llama/; callers use make_llama_engine (liber/llm.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <llama.h>

#include "liber/llm.h"
#include "liber/llm/llama/batch.h"

namespace liber::llm::llama {

using Clock = std::chrono::steady_clock;

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
  // model.cpp
  explicit LlamaEngine(const LlamaOptions& options);

  std::string model_id() const override { return model_id_; }
  int context_length() const override { return seq_ctx_; }

  int count_tokens(const std::vector<ChatMessage>& messages) const override {
    return static_cast<int>(tokenize(render(messages, true), true, true).size());
  }

  // scheduler.cpp
  void run(RequestSource& source) override;
  // embed.cpp
  std::vector<EmbeddingResult> embed(const std::vector<std::string>& texts) override;
  // The tokens embed() gives the model for `text` (before any truncation).
  std::vector<llama_token> embed_tokens(const std::string& text) const {
    return tokenize(text, true, false);
  }

 private:
  // ---- chat template and tokenizer (chat.cpp) ----
  void choose_template();
  bool is_special_token(const std::string& text) const;
  std::optional<std::string> try_render(const std::vector<ChatMessage>& messages,
                                        bool add_assistant) const;
  std::string render(const std::vector<ChatMessage>& messages, bool add_assistant) const;
  std::vector<llama_token> tokenize(const std::string& text, bool add_special,
                                    bool parse_special) const;
  void append_piece(std::string& text, llama_token token) const;
  // The rendered text of the shared prefix, as it appears at the start of `full`: rendered
  // with a sentinel in place of the first non-prefix message, cut at the sentinel (so a
  // folded system message still yields the shared "<start_of_turn>user\nSYSTEM\n\n").
  std::string prefix_text(const std::vector<ChatMessage>& messages, std::size_t k,
                          const std::string& full) const;

  // ---- sampler (sampler.cpp) ----
  // Builds the slot's sampler chain (and grammar) for a request; returns an error message
  // when the request's grammar does not parse.
  std::string init_sampler(Slot& s, const GenerationRequest& req);
  // Samples from output row `i` with the slot's chain; with a grammar, the unconstrained
  // choice is checked first and the grammar applied to the whole vocabulary only when it is
  // rejected (the grammar over 262k candidates is the expensive part).
  llama_token sample(Slot& s, int i);

  // ---- generation context and scheduler (scheduler.cpp, with the sequence layout) ----
  void ensure_gen_context();
  // Evaluates `tokens` into the prefix sequence (replacing what was there).
  bool eval_prefix(const std::vector<llama_token>& tokens);
  // Sets up a slot for a request; returns an error message when it cannot run.
  std::string start(Slot& s, uint64_t tag, const GenerationRequest& req, GenerationResult& r);
  void finish(Slot& s, RequestSource& source, bool truncated, std::string error = {});

  // ---- embedding context (embed.cpp) ----
  void ensure_embed_context();

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
  int embed_text_tokens_ = 0;      // longest text one sequence may hold
  bool sentence_encoder_ = false;  // the GGUF declares its pooling (see embed.cpp)
  std::unique_ptr<Batch> ebatch_;
};

}  // namespace liber::llm::llama
