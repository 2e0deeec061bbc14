// The OpenAI-compatible HTTP engine's class and the types its parts share: POST
// {base_url}/chat/completions and {base_url}/embeddings, many transfers in flight on one
// libcurl multi handle driven from the calling thread, spread over one or more servers.
// Internal to src/llm/http/.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "liber/llm.h"
#include "liber/llm/http_engine.h"

namespace liber::llm::http {

using Clock = std::chrono::steady_clock;

// The server's own words from an error body: OpenAI's {"error":{"message":...}},
// FastAPI's {"detail":...}, else the raw body (cut short). (openai.cpp)
std::string server_message(const std::string& body);

struct Job {
  enum class Kind { Chat, Embed };
  Kind kind = Kind::Chat;
  uint64_t tag = 0;
  GenerationRequest request;         // Chat
  std::size_t embed_begin = 0;       // Embed: texts [embed_begin, embed_begin+embed_count)
  std::size_t embed_count = 0;
  HttpJsonFormat format = HttpJsonFormat::None;  // sent with this attempt
  std::string path;                  // "/chat/completions", "/embeddings"
  std::string url;                   // the server's base_url + path, this attempt
  int endpoint = -1;                 // the server of this attempt
  int failed_endpoint = -1;          // the server of the last failed attempt
  bool probe = false;                // this attempt probes an ejected server
  std::string body;
  int failures = 0;                  // retryable failures so far
  Clock::time_point submitted;
  Clock::time_point due;
  CURL* easy = nullptr;
  std::string response;
  char errbuf[CURL_ERROR_SIZE] = {};

  ~Job() {
    if (easy) curl_easy_cleanup(easy);
  }
};

// How a job ended: the 2xx body, or an error message.
struct Outcome {
  bool ok = false;
  std::string body;
  std::string error;
};

// One server of a fleet and its health (transport.cpp keeps it).
struct Endpoint {
  std::string base;                  // without trailing slashes
  int active = 0;                    // transfers in flight
  int failures_in_a_row = 0;
  bool ejected = false;
  Clock::time_point probe_at;        // when ejected: the next request may probe it
  double eject_wait_s = 0;           // doubles per failed probe
  HttpEndpointStats stats;
};

class HttpEngineImpl final : public HttpEngine {
 public:
  // engine.cpp
  HttpEngineImpl(const HttpOptions& options, const HttpEngineConfig& config);
  ~HttpEngineImpl() override;

  // "http:<model>@<host[:port]>" of base_url.
  std::string model_id() const override;

  // openai.cpp
  // From GET {base_url}/models when the server states it (vLLM: max_model_len; others:
  // context_length / context_window / n_ctx / meta.n_ctx_train), else
  // HttpEngineConfig::default_context_length. Asked once; llama_cpp.server states none.
  int context_length() const override;

  // Approximate: ceil(chars / 4) over role and content, plus 4 tokens per message for the
  // chat template and 2 for the reply header. With HttpEngineConfig::tokenize_endpoint the
  // text is counted by POST {server root}/extras/tokenize (llama_cpp.server) instead.
  int count_tokens(const std::vector<ChatMessage>& messages) const override;

  // engine.cpp
  void run(RequestSource& source) override;

  // POST {base_url}/embeddings in batches of HttpEngineConfig::embed_batch texts. A
  // per-token answer (llama_cpp.server with a model without pooling returns one vector
  // per token) is mean-pooled; `tokens` is then the number of rows, else the request's
  // usage.prompt_tokens for a batch of one and 0 when the server does not say.
  std::vector<EmbeddingResult> embed(const std::vector<std::string>& texts) override;

  HttpStats stats() const override;
  HttpJsonFormat json_format() const override { return format_; }

 private:
  struct Feed {
    std::function<std::unique_ptr<Job>()> next;  // nullptr when nothing is ready
    std::function<bool()> exhausted;
    std::function<void(Job&, const Outcome&)> finish;
  };

  // ---- wire format (openai.cpp) ----
  // Fills job.body from job.request and job.format; returns an error message or "".
  std::string build_chat_body(Job& job);
  // Fills job.body with texts [job.embed_begin, job.embed_begin + job.embed_count).
  void build_embed_body(Job& job, const std::vector<std::string>& texts) const;
  // The dialect to use after `refused` was refused; remembered engine-wide.
  HttpJsonFormat next_format(HttpJsonFormat refused);
  static GenerationResult parse_chat(const std::string& body);
  static std::string parse_embeddings(const std::string& body, const Job& job,
                                      std::vector<EmbeddingResult>& out);

  // ---- transport (transport.cpp) ----
  // The server for job's next attempt: the fewest in flight among those in rotation with a
  // free slot, another than the one that just failed when there is one; an ejected server
  // whose wait is over takes one probe. -1 when none can take it now.
  int pick_endpoint(const Job& job) const;
  // A server other than `except` (-1: none excepted) is in rotation.
  bool another_in_rotation(int except) const;
  // A finished attempt's effect on its server's health.
  void endpoint_done(Job& job, bool failed);
  // (Re)starts job's transfer on the multi handle, on server `endpoint`.
  void launch(Job& job, int endpoint);
  long timeout_ms() const;
  long connect_timeout_ms() const;
  // Full-jitter delay before retry number `failures` (0-based).
  double backoff_s(int failures);
  // Decides what a finished transfer means: finish the job (ok or error), or put it back
  // in `waiting` with a due time.
  void settle(std::unique_ptr<Job> job, CURLcode rc, std::vector<std::unique_ptr<Job>>& waiting,
              Feed& feed);
  // The scheduler: keeps up to in_flight jobs outstanding (running or backing off) until
  // the feed is exhausted and every job has finished.
  void drive(Feed& feed);
  // One blocking request (context length, tokenize); never throws.
  Outcome blocking(const char* method, const std::string& url, const std::string& body) const;

  HttpOptions opt_;
  HttpEngineConfig cfg_;
  std::vector<Endpoint> endpoints_;
  std::string base_;  // the first server's: one-off requests (context length, tokenize)
  curl_slist* headers_ = nullptr;
  CURLM* multi_ = nullptr;
  std::mt19937_64 rng_;
  HttpJsonFormat format_;
  bool refused_object_ = false;
  bool refused_schema_ = false;
  HttpStats stats_;
  mutable std::optional<int> context_length_;
};

}  // namespace liber::llm::http
