// `liber serve`: routes, authentication and limits over cpp-httplib; see include/liber/serve.h.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/log.h"
#include "liber/serve.h"
#include "liber/serve/metrics.h"
#include "liber/serve/pipeline.h"
#include "liber/serve/status_page.h"
#include "liber/serve/user_view.h"

namespace liber {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Set on the thread that answers a connection over the limit (see ConnectionQueue).
thread_local bool over_capacity = false;
// When the request the thread is answering arrived (its first byte was read).
thread_local Clock::time_point request_start;

// cpp-httplib serves one connection per task, on its TaskQueue. This one runs `threads`
// workers and admits at most `capacity` connections (served or waiting). A connection over
// that still gets an answer, a 503 naming the limit (the routing handler sees
// over_capacity), from one overflow thread, or, when even that one is `capacity` behind,
// from the accepting thread itself, which stops accepting meanwhile: back-pressure, and
// never an unbounded queue.
class ConnectionQueue final : public httplib::TaskQueue {
 public:
  ConnectionQueue(std::size_t threads, std::size_t capacity) : capacity_(capacity) {
    for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(jobs_, false); });
    overflow_thread_ = std::thread([this] { work(overflow_, true); });
  }
  ~ConnectionQueue() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mutex_);
    if (active_ + jobs_.size() < capacity_) {
      jobs_.push_back(std::move(fn));
      wake_.notify_all();
      return;
    }
    if (overflow_.size() < capacity_) {
      overflow_.push_back(std::move(fn));
      wake_.notify_all();
      return;
    }
    lock.unlock();
    over_capacity = true;
    fn();
    over_capacity = false;
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
    overflow_thread_.join();
  }

 private:
  void work(std::deque<std::function<void()>>& queue, bool overflow) {
    over_capacity = overflow;
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and every accepted connection was served
        fn = std::move(queue.front());
        queue.pop_front();
        if (!overflow) ++active_;
      }
      fn();
      if (!overflow) {
        std::lock_guard<std::mutex> lock(mutex_);
        --active_;
      }
    }
  }

  const std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_, overflow_;
  std::size_t active_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::thread overflow_thread_;
};

// Constant-time comparison: how long it takes says nothing about where a guess goes wrong.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

json error_body(std::string message, std::string limit = {}, std::string field = {}) {
  json j{{"error", std::move(message)}};
  if (!limit.empty()) j["limit"] = std::move(limit);
  if (!field.empty()) j["field"] = std::move(field);
  return j;
}

// What the errors cpp-httplib answers on its own mean.
std::string status_text(int status) {
  switch (status) {
    case 400: return "malformed HTTP request";
    case 405: return "method not allowed on this route";
    case 408: return "request not received within the read timeout";
    case 414: return "request target over 8,192 bytes";
    case 416: return "range not satisfiable";
    case 431: return "request header over 8,192 bytes";
    default: return fmt::format("HTTP {}", status);
  }
}

// The route a path belongs to, for metrics: the pattern, never the user id.
std::string route_of(const std::string& method, const std::string& path) {
  if (path == "/" || path == "/healthz" || path == "/readyz" || path == "/metrics" ||
      path == "/v1/events" || path == "/v1/status")
    return path;
  if (path.rfind("/v1/users/", 0) == 0) return "/v1/users/{id}";
  (void)method;
  return "other";
}

}  // namespace

struct Service::Impl {
  Store& store;
  ServeOptions opt;
  BehaviorLog log;  // the catalog and user table, no events
  std::unique_ptr<Ingestor> ingestor;
  std::mutex ingest_mutex;  // one delivery at a time: the Ingestor is single-writer
  serve::Metrics metrics;
  std::unique_ptr<serve::Pipeline> pipeline;  // with an LLM and an encoder
  httplib::Server server;
  int port = -1;
  std::atomic<bool> stopping{false};

  Impl(Store& s, ServeOptions o, LlmEngine* llm, LlmEngine* encoder) : store(s), opt(std::move(o)) {
    if (opt.token.empty())
      throw Error(ErrorKind::Config, "liber serve needs a bearer token (--token-file or --token-env)");
    if (opt.threads < 1) throw Error(ErrorKind::Config, "liber serve: --threads must be >= 1");
    if (opt.limits.max_connections < static_cast<std::size_t>(opt.threads))
      throw Error(ErrorKind::Config, "liber serve: --max-connections must be at least --threads");
    if (!has_catalog(store))
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("the store at {} has no catalog: ingest a dataset into it first "
                              "(liber ingest --store {})", store.path().string(), store.path().string()));
    log = load_behavior_log(store, /*with_events=*/false);
    const auto rule_text = store.get(kMetaFamily, "rule");
    if (!rule_text)
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("the store at {} records no partition rule", store.path().string()));
    IngestOptions io;
    io.sync = opt.sync;
    io.stream = "serve";
    ingestor = std::make_unique<Ingestor>(store, log, PartitionRule::parse(*rule_text), io);
    describe_metrics();
    routes();
    if (llm && encoder) pipeline = std::make_unique<serve::Pipeline>(store, *llm, *encoder, opt.pipeline);
  }

  // The pipeline's figures as gauges and counters, read when /metrics is asked for.
  void pipeline_metrics() {
    if (!pipeline) return;
    const serve::PipelineState p = pipeline->state();
    metrics.set("liber_partitions", "state=\"closed\"", static_cast<double>(p.partitions_closed));
    metrics.set("liber_partitions", "state=\"pending\"", static_cast<double>(p.partitions_pending));
    metrics.set("liber_pipeline_users_queued", "", static_cast<double>(p.users_queued));
    metrics.set("liber_pipeline_retrying", "", p.state == "retrying" ? 1 : 0);
    metrics.set("liber_pipeline_errors_total", "", static_cast<double>(p.errors));
    metrics.set("liber_records_total", "result=\"verified\"", static_cast<double>(p.verified));
    metrics.set("liber_records_total", "result=\"rejected\"", static_cast<double>(p.rejected));
    metrics.set("liber_records_total", "result=\"failed\"", static_cast<double>(p.failed));
    metrics.set("liber_llm_calls_total", "", static_cast<double>(p.llm_calls));
    metrics.set("liber_llm_tokens_total", "kind=\"prompt\"", static_cast<double>(p.prompt_tokens));
    metrics.set("liber_llm_tokens_total", "kind=\"completion\"", static_cast<double>(p.completion_tokens));
    metrics.set("liber_vectors_encoded_total", "", static_cast<double>(p.vectors_encoded));
    for (double s : pipeline->take_freshness()) metrics.observe("liber_freshness_seconds", s);
  }

  void describe_metrics() {
    metrics.describe("liber_events_total", "counter", "events received over HTTP, by outcome");
    metrics.describe("liber_partitions_closed_total", "counter",
                     "partitions closed by events received over HTTP, by reason");
    metrics.describe("liber_partitions", "gauge",
                     "partitions in the store, and those still without an ok interest record");
    metrics.describe("liber_pipeline_users_queued", "gauge", "users waiting for the pipeline, in memory");
    metrics.describe("liber_pipeline_retrying", "gauge", "1 while the pipeline waits to retry a failed engine");
    metrics.describe("liber_pipeline_errors_total", "counter", "pipeline runs that failed (engine or encoder)");
    metrics.describe("liber_records_total", "counter", "interest records made by the pipeline, by verdict");
    metrics.describe("liber_llm_calls_total", "counter", "LLM calls made by the pipeline");
    metrics.describe("liber_llm_tokens_total", "counter", "LLM tokens of the pipeline's calls");
    metrics.describe("liber_vectors_encoded_total", "counter", "partition vectors encoded by the pipeline");
    metrics.describe("liber_freshness_seconds", "histogram",
                     "from the request that closed a partition to the end of the pipeline run that "
                     "learned and encoded it");
    for (const char* o : {"accepted", "duplicate", "late", "bad"})
      metrics.add("liber_events_total", fmt::format("outcome=\"{}\"", o), 0);
  }

  bool authorized(const httplib::Request& req) const {
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.size() <= kBearer.size() || header.compare(0, kBearer.size(), kBearer) != 0) return false;
    return same_secret(std::string_view(header).substr(kBearer.size()), opt.token);
  }

  void routes() {
    const ServeLimits& lim = opt.limits;
    server.new_task_queue = [lim, threads = opt.threads] {
      return new ConnectionQueue(static_cast<std::size_t>(threads), lim.max_connections);
    };
    // cpp-httplib's default also sets SO_REUSEPORT, which lets a second process bind the same
    // port and take a share of the connections (seen: two servers on one port, answering
    // in turn). SO_REUSEADDR alone: a restart can rebind at once, a second server cannot.
    server.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    server.set_payload_max_length(lim.max_body_bytes);
    const auto ms = lim.read_timeout.count();
    server.set_read_timeout(ms / 1000, (ms % 1000) * 1000);
    server.set_keep_alive_timeout(std::max<time_t>(1, ms / 1000));

    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      request_start = Clock::now();
      if (over_capacity) {
        res.set_header("Connection", "close");
        reply(res, 503, error_body(fmt::format("too many connections (limit {})",
                                               opt.limits.max_connections), "connections"));
        return httplib::Server::HandlerResponse::Handled;
      }
      // The health checks, and the status page: static, its data comes from /v1/status.
      if (req.path == "/healthz" || req.path == "/readyz" || req.path == "/")
        return httplib::Server::HandlerResponse::Unhandled;
      if (!authorized(req)) {
        res.set_header("WWW-Authenticate", "Bearer");
        res.set_header("Connection", "close");  // its body, if any, is left unread
        reply(res, 401, error_body("missing or wrong bearer token (Authorization: Bearer ...)"));
        return httplib::Server::HandlerResponse::Handled;
      }
      // cpp-httplib parses form bodies itself, capped at 8,192 bytes: events are JSON.
      const std::string type = req.get_header_value("Content-Type");
      if (req.method == "POST" && (type.rfind("application/x-www-form-urlencoded", 0) == 0 ||
                                   type.rfind("multipart/", 0) == 0)) {
        res.set_header("Connection", "close");
        reply(res, 415, error_body(fmt::format("Content-Type {} is not taken: send JSON "
                                               "(application/json or application/x-ndjson)", type)));
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const double s = std::chrono::duration<double>(Clock::now() - request_start).count();
      metrics.request(route_of(req.method, req.path), res.status, s);
    });
    server.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;  // a route's own error
      if (res.status == 413)
        return reply(res, 413, error_body(fmt::format("request body over {} bytes",
                                                      opt.limits.max_body_bytes), "body_bytes"));
      if (res.status == 404) return reply(res, 404, error_body("no such route"));
      reply(res, res.status, error_body(status_text(res.status)));
    });
    server.set_exception_handler(
        [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown error";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          log_warning(fmt::format("serve: {} {}: {}", req.method, req.path, what));
          reply(res, 500, error_body("internal error (see the server's log)"));
        });

    server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok\n", "text/plain");
    });
    server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
      if (stopping) return reply(res, 503, json{{"ready", false}, {"why", "shutting down"}});
      reply(res, 200, json{{"ready", true}});
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      pipeline_metrics();
      res.set_content(metrics.text(), "text/plain; version=0.0.4");
    });
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_header("Content-Security-Policy",
                     "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                     "connect-src 'self'");
      res.set_content(serve::status_page_html(), "text/html; charset=utf-8");
    });
    server.Get("/v1/status", [this](const httplib::Request&, httplib::Response& res) {
      reply(res, 200, status());
    });
    server.Post("/v1/events", [this](const httplib::Request& req, httplib::Response& res) {
      post_events(req, res);
    });
    server.Get(R"(/v1/users/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string user = req.matches[1];
      if (log.users.ids.find(user) == 0)
        return reply(res, 404, error_body(fmt::format("unknown user '{}'", printable(user)), "", "user"));
      reply(res, 200, serve::user_view(store, user, req.get_param_value("vectors") == "1"));
    });
  }

  // The status page's figures and the newest records.
  json status() {
    auto events = [&](const char* outcome) {
      return metrics.counter("liber_events_total", fmt::format("outcome=\"{}\"", outcome));
    };
    json figures = json::array();
    auto add = [&](const std::string& label, const json& value) { figures.push_back({label, value}); };
    add("events accepted", events("accepted"));
    add("duplicates", events("duplicate"));
    add("late", events("late"));
    add("bad", events("bad"));
    json out{{"store", store.path().string()}};
    json latest = json::array();
    if (pipeline) {
      const serve::PipelineState p = pipeline->state();
      add("partitions closed", p.partitions_closed);
      add("partitions pending", p.partitions_pending);
      add("users queued", p.users_queued);
      add("records verified", p.verified);
      add("records rejected", p.rejected);
      add("records failed", p.failed);
      add("LLM calls", p.llm_calls);
      add("LLM tokens", p.prompt_tokens + p.completion_tokens);
      add("vectors encoded", p.vectors_encoded);
      add("pipeline errors", p.errors);
      out["pipeline"] = {{"state", p.state}, {"variant", p.variant}, {"runs", p.runs},
                         {"last_error", p.last_error}, {"backoff_s", p.backoff_s}};
      for (const InterestRecord& r : p.latest)
        latest.push_back({{"user", r.user}, {"seq", r.seq},
                          {"verdict", r.ok ? (r.quality.empty() ? "unverified" : r.quality) : "failed"},
                          {"summary", r.ok ? r.summary.substr(0, 300) : r.error},
                          {"reasons", r.reasons}});
    }
    out["figures"] = figures;
    out["latest"] = latest;
    return out;
  }

  static std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
  }

  void post_events(const httplib::Request& req, httplib::Response& res) {
    DecodedEvents d;
    try {
      d = decode_events(req.body, log.items, log.users, opt.limits.max_events);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Limit) return reply(res, 413, error_body(e.what(), "events_per_request"));
      return reply(res, 400, error_body(e.what()));
    }
    std::vector<AddStatus> outcomes;
    IngestStats st;
    try {
      std::lock_guard<std::mutex> lock(ingest_mutex);
      st = ingestor->deliver(d.events, &outcomes);
    } catch (const Error& e) {
      log_warning(fmt::format("serve: events not stored: {}", e.what()));
      return reply(res, 503, error_body("the store did not take the events; nothing of this "
                                        "request was stored, send it again"));
    }
    json errors = json::array(), late = json::array();
    constexpr std::size_t kListed = 100;
    for (const EventProblem& p : d.bad)
      if (errors.size() < kListed) errors.push_back({{"index", p.index}, {"field", p.field}, {"reason", p.reason}});
    uint64_t counts[4] = {0, 0, 0, d.bad.size()};  // accepted, duplicate, late, bad
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      const AddStatus s = outcomes[i];
      if (s == AddStatus::Accepted) ++counts[0];
      else if (s == AddStatus::Duplicate) ++counts[1];
      else if (s == AddStatus::Bad) {
        ++counts[3];
        if (errors.size() < kListed)
          errors.push_back({{"index", d.position[i]}, {"field", "ts"}, {"reason", "out of range"}});
      } else {
        ++counts[2];
        if (late.size() < kListed)
          late.push_back({{"index", d.position[i]},
                          {"reason", s == AddStatus::LateClosed
                                         ? "older than the user's last closed partition"
                                         : "older than the lateness window allows"}});
      }
    }
    const char* names[4] = {"accepted", "duplicate", "late", "bad"};
    json body{{"events", d.total}};
    for (int i = 0; i < 4; ++i) {
      body[names[i]] = counts[i];
      metrics.add("liber_events_total", fmt::format("outcome=\"{}\"", names[i]), counts[i]);
    }
    body["partitions_closed"] = st.partitions();
    if (pipeline && st.partitions() > 0) {
      std::vector<std::string> users;  // those of the request: a superset of who closed one
      for (const Event& e : d.events) users.push_back(log.users.ids.key(e.user));
      std::sort(users.begin(), users.end());
      users.erase(std::unique(users.begin(), users.end()), users.end());
      pipeline->notify(users, request_start);
    }
    for (int r = 0; r < kCloseReasonCount; ++r)
      if (st.closed[r])
        metrics.add("liber_partitions_closed_total",
                    fmt::format("reason=\"{}\"", to_string(static_cast<CloseReason>(r))), st.closed[r]);
    if (!errors.empty()) body["errors"] = errors;
    if (!late.empty()) body["late_events"] = late;
    if (counts[3] > kListed || counts[2] > kListed) body["lists_truncated_at"] = kListed;
    // Every event bad: nothing to store, the request as a whole is unusable.
    reply(res, d.total > 0 && counts[3] == d.total ? 422 : 200, body);
  }
};

Service::Service(Store& store, ServeOptions options, LlmEngine* llm, LlmEngine* encoder)
    : impl_(std::make_unique<Impl>(store, std::move(options), llm, encoder)) {}
Service::~Service() { stop(); }

int Service::bind() {
  if (impl_->port >= 0) return impl_->port;
  const int port = impl_->opt.port == 0
                       ? impl_->server.bind_to_any_port(impl_->opt.host)
                       : (impl_->server.bind_to_port(impl_->opt.host, impl_->opt.port) ? impl_->opt.port : -1);
  if (port < 0)
    throw Error(ErrorKind::Io, fmt::format("liber serve: cannot listen on {}:{} (in use, or not "
                                           "an address of this machine)",
                                           impl_->opt.host, impl_->opt.port));
  return impl_->port = port;
}

void Service::run() {
  bind();
  impl_->server.listen_after_bind();
}

void Service::stop() {
  impl_->stopping = true;
  impl_->server.stop();
  if (impl_->pipeline) impl_->pipeline->stop();  // its calls in flight finish and are recorded
}

int Service::port() const { return impl_->port; }
std::string Service::metrics() const { return impl_->metrics.text(); }

std::string read_token_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorKind::Config, fmt::format("cannot read the token file {}", file.string()));
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
  if (token.empty()) throw Error(ErrorKind::Config, fmt::format("the token file {} is empty", file.string()));
  return token;
}

std::string read_token_env(std::string_view variable) {
  const std::string name(variable);
  const char* v = std::getenv(name.c_str());
  if (!v || !*v) throw Error(ErrorKind::Config, fmt::format("the environment variable {} (the token) is not set", name));
  return v;
}

}  // namespace liber
