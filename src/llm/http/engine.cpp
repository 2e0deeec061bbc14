// The HTTP engine itself: options and base_url checks, libcurl handles, the model id, and
// run() / embed() as feeds of jobs for the transport, plus the make_http_engine factories.
// What ties the wire format (openai.cpp) to the transport (transport.cpp).
#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <random>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/http/engine.h"
#include "liber/llm/http_engine.h"

namespace liber {

namespace llm::http {

namespace {

void curl_global() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
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

}  // namespace

HttpEngineImpl::HttpEngineImpl(const HttpOptions& options, const HttpEngineConfig& config)
    : opt_(options), cfg_(config), rng_(std::random_device{}()) {
  curl_global();
  if (opt_.base_url.empty()) throw Error(ErrorKind::Config, "HTTP engine: base_url is empty");
  // Servers are split where a comma starts another URL: a comma may sit inside a path.
  const auto next_url = [&](std::size_t from) {
    std::size_t at = from;
    while ((at = opt_.base_url.find(',', at)) != std::string::npos) {
      const std::size_t start = opt_.base_url.find_first_not_of(" \t", at + 1);
      if (start != std::string::npos && (opt_.base_url.compare(start, 7, "http://") == 0 ||
                                         opt_.base_url.compare(start, 8, "https://") == 0))
        return at;
      ++at;
    }
    return opt_.base_url.size();
  };
  for (std::size_t begin = 0; begin <= opt_.base_url.size();) {
    const std::size_t end = next_url(begin);
    std::string url = opt_.base_url.substr(begin, end - begin);
    url.erase(0, url.find_first_not_of(" \t"));
    url.erase(url.find_last_not_of(" \t") + 1);
    begin = end + 1;
    Endpoint e;
    e.base = strip_trailing_slashes(url);
    if (url_part(e.base, CURLUPART_HOST).empty())
      throw Error(ErrorKind::Config, fmt::format("HTTP engine: base_url '{}' is not a URL", url));
    for (const Endpoint& other : endpoints_)
      if (other.base == e.base)
        throw Error(ErrorKind::Config, fmt::format("HTTP engine: base_url lists {} twice", url));
    e.stats.base_url = e.base;
    endpoints_.push_back(std::move(e));
  }
  base_ = endpoints_.front().base;
  if (opt_.eject_after < 1) opt_.eject_after = 1;
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

HttpEngineImpl::~HttpEngineImpl() {
  if (multi_) curl_multi_cleanup(multi_);
  curl_slist_free_all(headers_);
}

std::string HttpEngineImpl::model_id() const {
  // A fleet serves one model whichever servers it has today: its id names the model alone,
  // so servers can join or leave without the variant (and what it learned) changing.
  if (endpoints_.size() > 1) return fmt::format("http:{}@fleet", opt_.model);
  std::string host = url_part(base_, CURLUPART_HOST);
  if (std::string port = url_part(base_, CURLUPART_PORT); !port.empty()) host += ":" + port;
  return fmt::format("http:{}@{}", opt_.model, host);
}

HttpStats HttpEngineImpl::stats() const {
  HttpStats s = stats_;
  for (const Endpoint& e : endpoints_) {
    s.endpoints.push_back(e.stats);
    s.endpoints.back().ejected = e.ejected;
  }
  return s;
}

void HttpEngineImpl::run(RequestSource& source) {
  Feed feed;
  feed.next = [&]() -> std::unique_ptr<Job> {
    while (auto item = source.next()) {
      auto job = std::make_unique<Job>();
      job->kind = Job::Kind::Chat;
      job->tag = item->first;
      job->request = std::move(item->second);
      job->path = "/chat/completions";
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

std::vector<EmbeddingResult> HttpEngineImpl::embed(const std::vector<std::string>& texts) {
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
    job->path = "/embeddings";
    build_embed_body(*job, texts);
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

}  // namespace llm::http

std::unique_ptr<HttpEngine> make_http_engine(const HttpOptions& options,
                                             const HttpEngineConfig& config) {
  return std::make_unique<llm::http::HttpEngineImpl>(options, config);
}

std::unique_ptr<LlmEngine> make_http_engine(const HttpOptions& options) {
  return make_http_engine(options, HttpEngineConfig{});
}

}  // namespace liber
