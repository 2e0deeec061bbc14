// The OpenAI-compatible HTTP engine: POST {base_url}/chat/completions and
// {base_url}/embeddings, many transfers in flight on one libcurl multi handle driven from
// the calling thread.
//
// Scheduling: a transfer "slot" is held by a request from the moment it is pulled from the
// RequestSource until it completes, including while it waits out a retry backoff, so at
// most HttpOptions::in_flight requests are outstanding and an outage does not drain the
// source. Whenever a slot frees (and after every completion) the source is asked again.
//
// Retries: connection errors (refused, reset, nothing received, partial reply), timeouts,
// HTTP 429 and HTTP 5xx are retried up to max_retries times. Before retry k (k = 0, 1, ...)
// the request waits U(0, min(backoff_max_s, backoff_base_s * 2^k)) seconds (full jitter);
// a Retry-After header (seconds or HTTP date) replaces that delay, capped at
// max(backoff_max_s, 60 s). The wait is a due time in the scheduler: other transfers keep
// being polled meanwhile. Any other 4xx fails the request at once with the status and the
// server's message. A failed request completes with GenerationResult::error set; run()
// never throws for a single request.
//
// JSON output: when GenerationRequest::json_schema is set the request carries a
// response_format in the configured dialect (see HttpEngineConfig). A 400/422/500 whose
// body mentions "response_format" makes the engine resend the request at once with the next
// dialect (json_object+schema -> json_schema -> none, or json_schema -> json_object+schema ->
// none) and remember the refusal for later requests.

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/http_engine.h"

namespace liber {

const char* to_string(HttpJsonFormat format) {
  switch (format) {
    case HttpJsonFormat::JsonObjectSchema: return "json_object+schema";
    case HttpJsonFormat::JsonSchema: return "json_schema";
    case HttpJsonFormat::None: return "none";
  }
  return "?";
}

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void curl_global() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::size_t append_body(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

std::string strip_trailing_slashes(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// A part of a URL (CURLUPART_*), empty when absent or unparsable.
std::string url_part(const std::string& url, CURLUPart part) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* v = nullptr;
    if (curl_url_get(u, part, &v, 0) == CURLUE_OK && v) out = v;
    curl_free(v);
  }
  curl_url_cleanup(u);
  return out;
}

// `url` with its path replaced by `path` (and no query).
std::string with_path(const std::string& url, const std::string& path) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_PATH, path.c_str(), 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_QUERY, nullptr, 0) == CURLUE_OK) {
    char* v = nullptr;
    if (curl_url_get(u, CURLUPART_URL, &v, 0) == CURLUE_OK && v) out = v;
    curl_free(v);
  }
  curl_url_cleanup(u);
  return out;
}

// The server's own words from an error body: OpenAI's {"error":{"message":...}},
// FastAPI's {"detail":...}, else the raw body (cut short).
std::string server_message(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    if (auto e = j.find("error"); e != j.end()) {
      if (e->is_object() && e->contains("message") && (*e)["message"].is_string())
        return (*e)["message"].get<std::string>();
      if (e->is_string()) return e->get<std::string>();
      return e->dump();
    }
    if (auto d = j.find("detail"); d != j.end())
      return d->is_string() ? d->get<std::string>() : d->dump();
    if (auto m = j.find("message"); m != j.end() && m->is_string()) return m->get<std::string>();
  }
  std::string s = body.substr(0, 500);
  if (body.size() > 500) s += "...";
  return s.empty() ? "(empty body)" : s;
}

bool retryable(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

int json_int(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int>() : 0;
}

struct Job {
  enum class Kind { Chat, Embed };
  Kind kind = Kind::Chat;
  uint64_t tag = 0;
  GenerationRequest request;         // Chat
  std::size_t embed_begin = 0;       // Embed: texts [embed_begin, embed_begin+embed_count)
  std::size_t embed_count = 0;
  HttpJsonFormat format = HttpJsonFormat::None;  // sent with this attempt
  std::string url;
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

class HttpEngineImpl final : public HttpEngine {
 public:
  HttpEngineImpl(const HttpOptions& options, const HttpEngineConfig& config)
      : opt_(options), cfg_(config), rng_(std::random_device{}()) {
    curl_global();
    if (opt_.base_url.empty()) throw Error(ErrorKind::Config, "HTTP engine: base_url is empty");
    base_ = strip_trailing_slashes(opt_.base_url);
    if (url_part(base_, CURLUPART_HOST).empty())
      throw Error(ErrorKind::Config, fmt::format("HTTP engine: base_url '{}' is not a URL",
                                                 opt_.base_url));
    if (opt_.in_flight < 1) opt_.in_flight = 1;
    if (opt_.max_retries < 0) opt_.max_retries = 0;
    if (cfg_.embed_batch < 1) cfg_.embed_batch = 1;
    format_ = cfg_.json_format;
    headers_ = curl_slist_append(headers_, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Accept: application/json");
    headers_ = curl_slist_append(headers_, "Expect:");
    if (!opt_.api_key_env.empty()) {
      if (const char* key = std::getenv(opt_.api_key_env.c_str()); key && *key)
        headers_ = curl_slist_append(headers_, fmt::format("Authorization: Bearer {}", key).c_str());
    }
    multi_ = curl_multi_init();
    if (!multi_ || !headers_) throw Error(ErrorKind::Internal, "HTTP engine: libcurl init failed");
  }

  ~HttpEngineImpl() override {
    if (multi_) curl_multi_cleanup(multi_);
    curl_slist_free_all(headers_);
  }

  // "http:<model>@<host[:port]>" of base_url.
  std::string model_id() const override {
    std::string host = url_part(base_, CURLUPART_HOST);
    if (std::string port = url_part(base_, CURLUPART_PORT); !port.empty()) host += ":" + port;
    return fmt::format("http:{}@{}", opt_.model, host);
  }

  // From GET {base_url}/models when the server states it (vLLM: max_model_len; others:
  // context_length / context_window / n_ctx / meta.n_ctx_train), else
  // HttpEngineConfig::default_context_length. Asked once; llama_cpp.server states none.
  int context_length() const override {
    if (context_length_) return *context_length_;
    int found = 0;
    Outcome o = blocking("GET", base_ + "/models", "");
    if (o.ok) {
      json j = json::parse(o.body, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("data") && j["data"].is_array()) {
        auto from = [](const json& m) {
          for (const char* key : {"max_model_len", "context_length", "context_window",
                                  "max_context_length", "n_ctx"}) {
            if (int v = json_int(m, key); v > 0) return v;
          }
          if (m.contains("meta") && m["meta"].is_object()) {
            if (int v = json_int(m["meta"], "n_ctx"); v > 0) return v;
            if (int v = json_int(m["meta"], "n_ctx_train"); v > 0) return v;
          }
          return 0;
        };
        for (const auto& m : j["data"]) {  // the entry naming our model first
          if (m.is_object() && m.value("id", std::string()) == opt_.model) found = from(m);
        }
        for (const auto& m : j["data"]) {
          if (found > 0) break;
          if (m.is_object()) found = from(m);
        }
      }
    }
    context_length_ = found > 0 ? found : cfg_.default_context_length;
    return *context_length_;
  }

  // Approximate: ceil(chars / 4) over role and content, plus 4 tokens per message for the
  // chat template and 2 for the reply header. With HttpEngineConfig::tokenize_endpoint the
  // text is counted by POST {server root}/extras/tokenize (llama_cpp.server) instead.
  int count_tokens(const std::vector<ChatMessage>& messages) const override {
    std::size_t chars = 0;
    std::string joined;
    for (const auto& m : messages) {
      chars += m.role.size() + m.content.size();
      if (cfg_.tokenize_endpoint) joined += m.role + "\n" + m.content + "\n";
    }
    const int overhead = static_cast<int>(4 * messages.size() + 2);
    if (cfg_.tokenize_endpoint) {
      Outcome o = blocking("POST", with_path(base_, "/extras/tokenize"),
                           json{{"input", joined}}.dump());
      if (o.ok) {
        json j = json::parse(o.body, nullptr, false);
        if (!j.is_discarded() && j.is_object() && j.contains("tokens") && j["tokens"].is_array())
          return static_cast<int>(j["tokens"].size()) + overhead;
      }
    }
    return static_cast<int>((chars + 3) / 4) + overhead;
  }

  void run(RequestSource& source) override {
    Feed feed;
    feed.next = [&]() -> std::unique_ptr<Job> {
      while (auto item = source.next()) {
        auto job = std::make_unique<Job>();
        job->kind = Job::Kind::Chat;
        job->tag = item->first;
        job->request = std::move(item->second);
        job->url = base_ + "/chat/completions";
        job->format = job->request.json_schema.empty() ? HttpJsonFormat::None : format_;
        if (std::string err = build_chat_body(*job); !err.empty()) {
          GenerationResult r;
          r.error = err;
          ++stats_.failed;
          source.complete(job->tag, std::move(r));
          continue;
        }
        return job;
      }
      return nullptr;
    };
    feed.exhausted = [&] { return source.exhausted(); };
    feed.finish = [&](Job& job, const Outcome& o) {
      GenerationResult r = o.ok ? parse_chat(o.body) : GenerationResult{};
      if (!o.ok) r.error = o.error;
      if (!r.error.empty() && o.ok) r.error = fmt::format("POST {}: {}", job.url, r.error);
      r.latency_s = std::chrono::duration<double>(Clock::now() - job.submitted).count();
      ++(r.error.empty() ? stats_.succeeded : stats_.failed);
      source.complete(job.tag, std::move(r));
    };
    drive(feed);
  }

  // POST {base_url}/embeddings in batches of HttpEngineConfig::embed_batch texts. A
  // per-token answer (llama_cpp.server with a model without pooling returns one vector
  // per token) is mean-pooled; `tokens` is then the number of rows, else the request's
  // usage.prompt_tokens for a batch of one and 0 when the server does not say.
  std::vector<EmbeddingResult> embed(const std::vector<std::string>& texts) override {
    std::vector<EmbeddingResult> out(texts.size());
    std::size_t next = 0;
    Feed feed;
    feed.next = [&]() -> std::unique_ptr<Job> {
      if (next >= texts.size()) return nullptr;
      auto job = std::make_unique<Job>();
      job->kind = Job::Kind::Embed;
      job->embed_begin = next;
      job->embed_count = std::min<std::size_t>(cfg_.embed_batch, texts.size() - next);
      next += job->embed_count;
      job->url = base_ + "/embeddings";
      json input = json::array();
      for (std::size_t i = 0; i < job->embed_count; ++i) input.push_back(texts[job->embed_begin + i]);
      job->body = json{{"model", opt_.model}, {"input", std::move(input)}}.dump();
      return job;
    };
    feed.exhausted = [&] { return next >= texts.size(); };
    feed.finish = [&](Job& job, const Outcome& o) {
      std::string err = o.ok ? parse_embeddings(o.body, job, out) : o.error;
      if (!err.empty() && o.ok) err = fmt::format("POST {}: {}", job.url, err);
      if (!err.empty()) {
        for (std::size_t i = 0; i < job.embed_count; ++i) {
          out[job.embed_begin + i] = EmbeddingResult{};
          out[job.embed_begin + i].error = err;
        }
      }
      ++(err.empty() ? stats_.succeeded : stats_.failed);
    };
    drive(feed);
    return out;
  }

  HttpStats stats() const override { return stats_; }
  HttpJsonFormat json_format() const override { return format_; }

 private:
  struct Feed {
    std::function<std::unique_ptr<Job>()> next;  // nullptr when nothing is ready
    std::function<bool()> exhausted;
    std::function<void(Job&, const Outcome&)> finish;
  };

  // Fills job.body from job.request and job.format; returns an error message or "".
  std::string build_chat_body(Job& job) {
    const GenerationRequest& r = job.request;
    json messages = json::array();
    for (const auto& m : r.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
    json b = {{"model", opt_.model},
              {"messages", std::move(messages)},
              {"max_tokens", r.max_tokens},
              {"temperature", std::round(static_cast<double>(r.temperature) * 1e6) / 1e6},
              {"seed", r.seed}};
    if (!r.json_schema.empty() && job.format != HttpJsonFormat::None) {
      json schema = json::parse(r.json_schema, nullptr, false);
      if (schema.is_discarded()) return "json_schema is not valid JSON";
      if (job.format == HttpJsonFormat::JsonObjectSchema)
        b["response_format"] = {{"type", "json_object"}, {"schema", std::move(schema)}};
      else
        b["response_format"] = {{"type", "json_schema"},
                                {"json_schema", {{"name", "out"}, {"schema", std::move(schema)}}}};
    }
    job.body = b.dump();
    return "";
  }

  // The dialect to use after `refused` was refused; remembered engine-wide.
  HttpJsonFormat next_format(HttpJsonFormat refused) {
    if (refused == HttpJsonFormat::JsonObjectSchema) refused_object_ = true;
    if (refused == HttpJsonFormat::JsonSchema) refused_schema_ = true;
    HttpJsonFormat order[2] = {cfg_.json_format, cfg_.json_format == HttpJsonFormat::JsonSchema
                                                     ? HttpJsonFormat::JsonObjectSchema
                                                     : HttpJsonFormat::JsonSchema};
    format_ = HttpJsonFormat::None;
    for (HttpJsonFormat f : order) {
      if (f == HttpJsonFormat::JsonObjectSchema && !refused_object_) { format_ = f; break; }
      if (f == HttpJsonFormat::JsonSchema && !refused_schema_) { format_ = f; break; }
    }
    return format_;
  }

  static GenerationResult parse_chat(const std::string& body) {
    GenerationResult r;
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("choices") || !j["choices"].is_array() ||
        j["choices"].empty() || !j["choices"][0].is_object()) {
      r.error = "malformed chat completion response: " + server_message(body);
      return r;
    }
    const json& c = j["choices"][0];
    if (c.contains("message") && c["message"].is_object()) {
      const json& m = c["message"];
      if (m.contains("content") && m["content"].is_string()) r.text = m["content"].get<std::string>();
    } else if (c.contains("text") && c["text"].is_string()) {
      r.text = c["text"].get<std::string>();
    }
    if (c.contains("finish_reason") && c["finish_reason"].is_string())
      r.truncated = c["finish_reason"].get<std::string>() == "length";
    if (j.contains("usage") && j["usage"].is_object()) {
      const json& u = j["usage"];
      r.prompt_tokens = json_int(u, "prompt_tokens");
      r.completion_tokens = json_int(u, "completion_tokens");
      if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object())
        r.cached_prompt_tokens = json_int(u["prompt_tokens_details"], "cached_tokens");
    }
    return r;
  }

  static std::string parse_embeddings(const std::string& body, const Job& job,
                                      std::vector<EmbeddingResult>& out) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("data") || !j["data"].is_array())
      return "malformed embeddings response: " + server_message(body);
    const json& data = j["data"];
    if (data.size() != job.embed_count)
      return fmt::format("embeddings response has {} items for {} inputs", data.size(),
                         job.embed_count);
    int usage_tokens = 0;
    if (j.contains("usage") && j["usage"].is_object()) usage_tokens = json_int(j["usage"], "prompt_tokens");
    try {
      for (std::size_t k = 0; k < data.size(); ++k) {
        const json& item = data[k];
        std::size_t idx = k;
        if (item.contains("index") && item["index"].is_number_unsigned()) idx = item["index"].get<std::size_t>();
        if (idx >= job.embed_count) return fmt::format("embeddings response index {} out of range", idx);
        const json& e = item.at("embedding");
        EmbeddingResult res;
        if (!e.is_array() || e.empty()) return "embeddings response holds an empty vector";
        if (e[0].is_array()) {  // one row per token: mean-pool
          const std::size_t dim = e[0].size();
          res.vector.assign(dim, 0.0f);
          for (const auto& row : e) {
            if (row.size() != dim) return "embeddings response rows differ in length";
            for (std::size_t d = 0; d < dim; ++d) res.vector[d] += row[d].get<float>();
          }
          for (float& v : res.vector) v /= static_cast<float>(e.size());
          res.tokens = static_cast<int>(e.size());
        } else {
          res.vector = e.get<std::vector<float>>();
          res.tokens = job.embed_count == 1 ? usage_tokens : 0;
        }
        out[job.embed_begin + idx] = std::move(res);
      }
    } catch (const json::exception& ex) {
      return fmt::format("malformed embeddings response: {}", ex.what());
    }
    return "";
  }

  // (Re)starts job's transfer on the multi handle.
  void launch(Job& job) {
    if (!job.easy) {
      job.easy = curl_easy_init();
      if (!job.easy) throw Error(ErrorKind::Internal, "HTTP engine: curl_easy_init failed");
    }
    CURL* e = job.easy;
    curl_easy_reset(e);
    job.response.clear();
    job.errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, job.url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, job.body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(job.body.size()));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &job.response);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, job.errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms());
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms());
    curl_easy_setopt(e, CURLOPT_PRIVATE, &job);
    ++stats_.attempts;
    if (CURLMcode mc = curl_multi_add_handle(multi_, e); mc != CURLM_OK)
      throw Error(ErrorKind::Internal,
                  fmt::format("HTTP engine: curl_multi_add_handle: {}", curl_multi_strerror(mc)));
  }

  long timeout_ms() const { return std::max(1L, std::lround(opt_.timeout_s * 1000)); }
  long connect_timeout_ms() const {
    return std::max(1L, std::lround(std::min(cfg_.connect_timeout_s, opt_.timeout_s) * 1000));
  }

  // Full-jitter delay before retry number `failures` (0-based).
  double backoff_s(int failures) {
    const double cap =
        std::min(opt_.backoff_max_s, opt_.backoff_base_s * std::ldexp(1.0, std::min(failures, 30)));
    if (cap <= 0) return 0;
    return std::uniform_real_distribution<double>(0.0, cap)(rng_);
  }

  // Decides what a finished transfer means: finish the job (ok or error), or put it back
  // in `waiting` with a due time.
  void settle(std::unique_ptr<Job> job, CURLcode rc, std::vector<std::unique_ptr<Job>>& waiting,
              Feed& feed) {
    const auto fail = [&](const std::string& what) {
      Outcome o;
      o.error = fmt::format("POST {}: {}", job->url, what);
      feed.finish(*job, o);
    };
    const auto retry_or_fail = [&](const std::string& what, curl_off_t retry_after) {
      if (job->failures >= opt_.max_retries) {
        fail(fmt::format("{} (gave up after {} attempt{})", what, job->failures + 1,
                         job->failures == 0 ? "" : "s"));
        return;
      }
      double delay = backoff_s(job->failures);
      if (retry_after >= 0)
        delay = std::min(static_cast<double>(retry_after), std::max(opt_.backoff_max_s, 60.0));
      ++job->failures;
      ++stats_.retries;
      job->due = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(delay));
      waiting.push_back(std::move(job));
    };

    if (rc != CURLE_OK) {
      std::string what = curl_easy_strerror(rc);
      if (job->errbuf[0]) what += fmt::format(" ({})", job->errbuf);
      if (retryable(rc)) retry_or_fail(what, -1);
      else fail(what);
      return;
    }
    long status = 0;
    curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      Outcome o;
      o.ok = true;
      o.body = std::move(job->response);
      feed.finish(*job, o);
      return;
    }
    const std::string msg = server_message(job->response);
    if (job->kind == Job::Kind::Chat && job->format != HttpJsonFormat::None &&
        (status == 400 || status == 422 || status == 500) &&
        job->response.find("response_format") != std::string::npos) {
      // The server does not take this response_format dialect: switch, resend now.
      job->format = next_format(job->format);
      ++stats_.format_fallbacks;
      if (std::string err = build_chat_body(*job); !err.empty()) return fail(err);
      job->due = Clock::now();
      waiting.push_back(std::move(job));
      return;
    }
    const std::string what = fmt::format("HTTP {}: {}", status, msg);
    if (status == 429 || status >= 500) {
      curl_off_t retry_after = -1;
      if (curl_easy_getinfo(job->easy, CURLINFO_RETRY_AFTER, &retry_after) != CURLE_OK ||
          retry_after <= 0)
        retry_after = -1;
      retry_or_fail(what, retry_after);
      return;
    }
    fail(what);
  }

  // The scheduler: keeps up to in_flight jobs outstanding (running or backing off) until
  // the feed is exhausted and every job has finished.
  void drive(Feed& feed) {
    const std::size_t slots = static_cast<std::size_t>(opt_.in_flight);
    std::unordered_map<CURL*, std::unique_ptr<Job>> active;
    std::vector<std::unique_ptr<Job>> waiting;
    // Leave the multi handle clean if a callback throws.
    struct Cleanup {
      CURLM* multi;
      std::unordered_map<CURL*, std::unique_ptr<Job>>& active;
      ~Cleanup() {
        for (auto& [e, job] : active) curl_multi_remove_handle(multi, e);
      }
    } cleanup{multi_, active};

    const auto start = [&](std::unique_ptr<Job> job) {
      launch(*job);
      CURL* e = job->easy;
      active.emplace(e, std::move(job));
    };

    while (true) {
      while (active.size() + waiting.size() < slots && !feed.exhausted()) {
        std::unique_ptr<Job> job = feed.next();
        if (!job) break;
        job->submitted = Clock::now();
        start(std::move(job));
      }
      auto now = Clock::now();
      for (std::size_t i = 0; i < waiting.size();) {
        if (waiting[i]->due <= now) {
          std::unique_ptr<Job> job = std::move(waiting[i]);
          waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
          start(std::move(job));
        } else {
          ++i;
        }
      }
      if (active.empty() && waiting.empty()) {
        if (feed.exhausted()) break;
        // Nothing outstanding and nothing ready: the source waits on something else.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        continue;
      }

      int running = 0;
      curl_multi_perform(multi_, &running);
      bool finished_any = false;
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL* e = msg->easy_handle;
        const CURLcode rc = msg->data.result;
        curl_multi_remove_handle(multi_, e);
        auto it = active.find(e);
        if (it == active.end()) continue;
        std::unique_ptr<Job> job = std::move(it->second);
        active.erase(it);
        settle(std::move(job), rc, waiting, feed);
        finished_any = true;
      }
      if (finished_any) continue;  // a slot may be free: refill before waiting

      // Wait for socket activity, at most until the next retry is due.
      long wait_ms = 100;
      now = Clock::now();
      for (const auto& job : waiting) {
        const long ms = static_cast<long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(job->due - now).count());
        wait_ms = std::min(wait_ms, std::max(0L, ms));
      }
      if (!active.empty()) {
        curl_multi_poll(multi_, nullptr, 0, static_cast<int>(wait_ms), nullptr);
      } else if (wait_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      }
    }
  }

  // One blocking request (context length, tokenize); never throws.
  Outcome blocking(const char* method, const std::string& url, const std::string& body) const {
    Outcome o;
    CURL* e = curl_easy_init();
    if (!e) {
      o.error = "curl_easy_init failed";
      return o;
    }
    std::string response;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
    if (std::strcmp(method, "POST") == 0) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, std::min(timeout_ms(), 10000L));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms());
    const CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
      o.error = fmt::format("{} {}: {}", method, url, curl_easy_strerror(rc));
    } else if (status < 200 || status >= 300) {
      o.error = fmt::format("{} {}: HTTP {}: {}", method, url, status, server_message(response));
    } else {
      o.ok = true;
      o.body = std::move(response);
    }
    return o;
  }

  HttpOptions opt_;
  HttpEngineConfig cfg_;
  std::string base_;
  curl_slist* headers_ = nullptr;
  CURLM* multi_ = nullptr;
  std::mt19937_64 rng_;
  HttpJsonFormat format_;
  bool refused_object_ = false;
  bool refused_schema_ = false;
  HttpStats stats_;
  mutable std::optional<int> context_length_;
};

}  // namespace

std::unique_ptr<HttpEngine> make_http_engine(const HttpOptions& options,
                                             const HttpEngineConfig& config) {
  return std::make_unique<HttpEngineImpl>(options, config);
}

std::unique_ptr<LlmEngine> make_http_engine(const HttpOptions& options) {
  return make_http_engine(options, HttpEngineConfig{});
}

}  // namespace liber
