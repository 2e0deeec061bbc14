// The transport: one libcurl multi handle driven from the calling thread, with retries and
// backoff over one or more servers (least in flight first, ejection and probes), plus
// one-off blocking requests. Separate from the wire format: it moves bodies
// and reads status codes, and only settle() asks openai.cpp to rebuild a refused body.
//
// Scheduling: a transfer "slot" is held by a request from the moment it is pulled from the
// RequestSource until it completes, including while it waits out a retry backoff, so at
// most HttpOptions::in_flight requests per server are outstanding and an outage does not
// drain the source. The source is asked again whenever a server can take a request.
//
// Retries: connection errors (refused, reset, nothing received, partial reply), timeouts,
// HTTP 429 and HTTP 5xx are retried up to max_retries times. Before retry k (k = 0, 1, ...)
// the request waits U(0, min(backoff_max_s, backoff_base_s * 2^k)) seconds (full jitter);
// a Retry-After header (seconds or HTTP date) replaces that delay, capped at
// max(backoff_max_s, 60 s). The wait is a due time in the scheduler: other transfers keep
// being polled meanwhile. Any other 4xx fails the request at once with the status and the
// server's message. A failed request completes with GenerationResult::error set; run()
// never throws for a single request.

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/http/engine.h"
#include "liber/llm/http_engine.h"

namespace liber::llm::http {

namespace {

std::size_t append_body(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
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

}  // namespace

bool HttpEngineImpl::another_in_rotation(int except) const {
  for (std::size_t i = 0; i < endpoints_.size(); ++i)
    if (static_cast<int>(i) != except && !endpoints_[i].ejected) return true;
  return false;
}

int HttpEngineImpl::pick_endpoint(const Job& job) const {
  const auto now = Clock::now();
  // The server that just failed this job waits out its backoff while another is in rotation.
  const bool another_up = another_in_rotation(job.failed_endpoint);
  int best = -1;
  for (int i = 0; i < static_cast<int>(endpoints_.size()); ++i) {
    const Endpoint& e = endpoints_[static_cast<std::size_t>(i)];
    if (i == job.failed_endpoint && another_up) continue;
    // In rotation with a free slot, or ejected, idle and due for its probe.
    const bool usable = e.ejected ? (e.active == 0 && now >= e.probe_at) : e.active < opt_.in_flight;
    if (usable && (best < 0 || e.active < endpoints_[static_cast<std::size_t>(best)].active)) best = i;
  }
  return best;
}

void HttpEngineImpl::endpoint_done(Job& job, bool failed) {
  Endpoint& e = endpoints_[static_cast<std::size_t>(job.endpoint)];
  --e.active;
  if (!failed) {
    e.failures_in_a_row = 0;
    e.ejected = false;
    e.eject_wait_s = 0;
    return;
  }
  ++e.stats.failures;
  job.failed_endpoint = job.endpoint;
  // One server has nowhere else to send its requests: the retry backoff alone paces them.
  if (endpoints_.size() == 1) return;
  if (e.ejected) {
    if (!job.probe) return;  // sent before the ejection
    e.eject_wait_s = std::min(e.eject_wait_s * 2, 8 * opt_.eject_s);  // a failed probe
  } else if (++e.failures_in_a_row >= opt_.eject_after) {
    e.ejected = true;
    e.eject_wait_s = opt_.eject_s;
    ++e.stats.ejections;
  } else {
    return;
  }
  e.probe_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(e.eject_wait_s));
}

void HttpEngineImpl::launch(Job& job, int endpoint) {
  Endpoint& server = endpoints_[static_cast<std::size_t>(endpoint)];
  job.endpoint = endpoint;
  job.probe = server.ejected;
  job.url = server.base + job.path;
  ++server.active;
  ++server.stats.attempts;
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

long HttpEngineImpl::timeout_ms() const {
  return std::max(1L, std::lround(opt_.timeout_s * 1000));
}

long HttpEngineImpl::connect_timeout_ms() const {
  return std::max(1L, std::lround(std::min(cfg_.connect_timeout_s, opt_.timeout_s) * 1000));
}

double HttpEngineImpl::backoff_s(int failures) {
  const double cap =
      std::min(opt_.backoff_max_s, opt_.backoff_base_s * std::ldexp(1.0, std::min(failures, 30)));
  if (cap <= 0) return 0;
  return std::uniform_real_distribution<double>(0.0, cap)(rng_);
}

void HttpEngineImpl::settle(std::unique_ptr<Job> job, CURLcode rc,
                            std::vector<std::unique_ptr<Job>>& waiting, Feed& feed) {
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
    // Another server in rotation takes it at once (pick_endpoint keeps it off the one that
    // failed): the backoff spares that one.
    if (retry_after < 0 && another_in_rotation(job->failed_endpoint)) delay = 0;
    ++job->failures;
    ++stats_.retries;
    job->due = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(delay));
    waiting.push_back(std::move(job));
  };

  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &status);
  // The server does not take this response_format dialect (llama_cpp.server says so with a
  // 500): it is up, and the job is resent in another dialect.
  const bool format_refused = rc == CURLE_OK && job->kind == Job::Kind::Chat &&
                              job->format != HttpJsonFormat::None &&
                              (status == 400 || status == 422 || status == 500) &&
                              job->response.find("response_format") != std::string::npos;
  // The server's health: a connection error, a timeout or a 5xx counts against it; any
  // answer of its own (2xx, 4xx, 429) shows it is up.
  endpoint_done(*job, rc != CURLE_OK ? retryable(rc) : status >= 500 && !format_refused);
  if (rc != CURLE_OK) {
    std::string what = curl_easy_strerror(rc);
    if (job->errbuf[0]) what += fmt::format(" ({})", job->errbuf);
    if (retryable(rc)) retry_or_fail(what, -1);
    else fail(what);
    return;
  }
  if (status >= 200 && status < 300) {
    Outcome o;
    o.ok = true;
    o.body = std::move(job->response);
    feed.finish(*job, o);
    return;
  }
  const std::string msg = server_message(job->response);
  if (format_refused) {
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

void HttpEngineImpl::drive(Feed& feed) {
  const std::size_t slots = static_cast<std::size_t>(opt_.in_flight) * endpoints_.size();
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

  // A job no server can take now (all busy or ejected, or only the one that just failed it)
  // looks again every 20 ms.
  const auto start = [&](std::unique_ptr<Job> job) {
    const int endpoint = pick_endpoint(*job);
    if (endpoint < 0) {
      job->due = Clock::now() + std::chrono::milliseconds(20);
      waiting.push_back(std::move(job));
      return;
    }
    launch(*job, endpoint);
    CURL* e = job->easy;
    active.emplace(e, std::move(job));
  };
  const Job any;
  const auto can_take = [&] { return pick_endpoint(any) >= 0; };

  // Slots held: transfers running and jobs backing off. A job that is due but waits for a
  // server it may use (not the one that just failed it) holds none: another server can
  // take new work meanwhile.
  const auto held = [&] {
    const auto now = Clock::now();
    std::size_t n = active.size();
    for (const auto& job : waiting) n += job->due > now ? 1 : 0;
    return n;
  };

  while (true) {
    while (held() < slots && !feed.exhausted() && can_take()) {
      std::unique_ptr<Job> job = feed.next();
      if (!job) break;
      job->submitted = Clock::now();
      start(std::move(job));
    }
    auto now = Clock::now();
    std::vector<std::unique_ptr<Job>> due;
    for (std::size_t i = 0; i < waiting.size();) {
      if (waiting[i]->due <= now) {
        due.push_back(std::move(waiting[i]));
        waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    for (auto& job : due) start(std::move(job));
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

Outcome HttpEngineImpl::blocking(const char* method, const std::string& url,
                                 const std::string& body) const {
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

}  // namespace liber::llm::http
