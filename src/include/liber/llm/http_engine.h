// The OpenAI-compatible HTTP engine's extra knobs and counters, beyond the public
// HttpOptions in liber/llm.h: which JSON response-format dialect to send, the context
// length to report when the server does not say, and attempt/retry statistics (used by
// the tests to prove that a 4xx is not retried).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "liber/llm.h"

namespace liber {

// How GenerationRequest::json_schema is sent as "response_format".
enum class HttpJsonFormat {
  // {"type":"json_object","schema":S}: llama_cpp.server (grammar-constrained to S).
  JsonObjectSchema,
  // {"type":"json_schema","json_schema":{"name":"out","schema":S}}: OpenAI, vLLM, SGLang,
  // llama-server.
  JsonSchema,
  // No response_format at all (the instructions alone must ask for JSON).
  None,
};
const char* to_string(HttpJsonFormat format);

struct HttpEngineConfig {
  // First dialect tried. When the server rejects a request (HTTP 400/422, or 500 as
  // llama_cpp.server answers validation errors) with a message mentioning
  // "response_format", the request is resent at once (not counted as a retry) with the
  // other dialect, then with none; the engine remembers what the server refused.
  HttpJsonFormat json_format = HttpJsonFormat::JsonObjectSchema;
  // Reported by context_length() when GET {base_url}/models names no context length
  // (vLLM reports max_model_len; llama_cpp.server reports none).
  int default_context_length = 8192;
  // Connect timeout; the effective value is min(this, HttpOptions::timeout_s).
  double connect_timeout_s = 5;
  // Texts per POST /embeddings.
  int embed_batch = 32;
  // count_tokens() via POST {server root}/extras/tokenize (llama_cpp.server); falls back
  // to the chars/4 approximation when the endpoint fails. Off by default: one blocking
  // round trip per call.
  bool tokenize_endpoint = false;
};

// One server of the engine (HttpOptions::base_url lists them).
struct HttpEndpointStats {
  std::string base_url;
  int64_t attempts = 0;    // transfers sent to it
  int64_t failures = 0;    // of those, connection errors, timeouts and 5xx
  int64_t ejections = 0;   // times it was taken out of rotation
  bool ejected = false;    // out of rotation now
};

struct HttpStats {
  std::vector<HttpEndpointStats> endpoints;  // in base_url order
  int64_t attempts = 0;          // HTTP transfers started (chat + embeddings)
  int64_t retries = 0;           // transfers restarted after a retryable failure
  int64_t format_fallbacks = 0;  // transfers resent with a different response_format
  int64_t succeeded = 0;         // requests (chat) / batches (embeddings) that succeeded
  int64_t failed = 0;            // ... that completed with an error
};

class HttpEngine : public LlmEngine {
 public:
  virtual HttpStats stats() const = 0;
  // The response_format dialect new requests use now (after any fallback).
  virtual HttpJsonFormat json_format() const = 0;
};

std::unique_ptr<HttpEngine> make_http_engine(const HttpOptions& options,
                                             const HttpEngineConfig& config);

}  // namespace liber
