// `liber serve`: routes and authentication over the HTTP server (http_server.cpp, which
// enforces the limits); see include/liber/serve.h.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/kafka.h"
#include "liber/log.h"
#include "liber/score.h"
#include "liber/serve.h"
#include "liber/serve/echo.h"
#include "liber/serve/http_server.h"
#include "liber/serve/metrics.h"
#include "liber/serve/pipeline.h"
#include "liber/serve/status_page.h"
#include "liber/serve/user_view.h"

namespace liber {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

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

using serve::HttpRequest;
using serve::HttpResponse;

HttpResponse reply(int status, const json& body) {
  HttpResponse res;
  res.status = status;
  res.body = body.dump();
  return res;
}

json error_body(std::string message, std::string limit = {}, std::string field = {}) {
  json j{{"error", std::move(message)}};
  if (!limit.empty()) j["limit"] = std::move(limit);
  if (!field.empty()) j["field"] = std::move(field);
  return j;
}

// The route a path belongs to, for metrics: the pattern, never the user id.
std::string route_of(const std::string& path) {
  if (path == "/" || path == "/healthz" || path == "/readyz" || path == "/metrics" ||
      path == "/v1/events" || path == "/v1/score" || path == "/v1/status")
    return path;
  if (path.rfind("/v1/users/", 0) == 0) return "/v1/users/{id}";
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
  std::unique_ptr<Scorer> scorer;             // with a model
  std::unique_ptr<KafkaIngest> kafka;         // with a Kafka events topic
  std::thread kafka_thread;
  std::atomic<bool> kafka_stop{false};
  std::unique_ptr<KafkaChangelog> changelog;  // with an output topic
  std::mutex owned_mutex;
  std::set<int32_t> owned;  // the Kafka partitions this worker holds, restored
  std::set<int32_t> ever_owned;  // for /metrics: a partition given up reads 0
  std::unique_ptr<serve::Pipeline> pipeline;  // with an LLM and an encoder
  std::unique_ptr<serve::HttpServer> server;
  int port = -1;
  std::atomic<bool> stopping{false};

  Impl(Store& s, ServeOptions o, LlmEngine* llm, LlmEngine* encoder) : store(s), opt(std::move(o)) {
    if (opt.token.empty())
      throw Error(ErrorKind::Config, "liber serve needs a bearer token (--token-file or --token-env)");
    if (opt.threads < 1) throw Error(ErrorKind::Config, "liber serve: --http-threads must be >= 1");
    if (opt.limits.max_connections < 1)
      throw Error(ErrorKind::Config, "liber serve: --max-connections must be at least 1");
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
    serve::HttpLimits limits;
    limits.max_connections = opt.limits.max_connections;
    limits.max_body_bytes = opt.limits.max_body_bytes;
    limits.max_header_bytes = opt.limits.max_header_bytes;
    limits.read_timeout = opt.limits.read_timeout;
    limits.keep_alive_timeout = opt.limits.read_timeout;
    serve::HttpHandlers handlers;
    handlers.precheck = [this](const HttpRequest& req) { return precheck(req); };
    handlers.handle = [this](const HttpRequest& req) { return handle(req); };
    handlers.done = [this](const HttpRequest& req, const HttpResponse& res, double seconds) {
      metrics.request(route_of(req.path), res.status, seconds);
    };
    server = std::make_unique<serve::HttpServer>(opt.host, opt.port, opt.threads, limits, std::move(handlers));
    if (!opt.model.empty()) {
      scorer = std::make_unique<Scorer>(store, opt.model);
      // A run that encoded vectors: the users' next scores read them.
      opt.pipeline.on_encoded = [this](std::span<const std::string> users, bool all) {
        if (all) scorer->invalidate_all();
        else scorer->invalidate(users);
      };
    }
    if (!opt.kafka.brokers.empty()) {
      if (!opt.kafka.output_topic.empty()) {
        changelog = std::make_unique<KafkaChangelog>(store, opt.kafka);
        opt.pipeline.on_record = [this](const InterestRecord& r) { changelog->publish(r); };
      }
      // A Kafka worker learns only the users of the partitions it holds.
      opt.pipeline.scope = [this](std::vector<std::string> users, bool all) { return owned_users(std::move(users), all); };
    }
    if (llm && encoder) pipeline = std::make_unique<serve::Pipeline>(store, *llm, *encoder, opt.pipeline);
    if (!opt.kafka.brokers.empty()) {
      metrics.describe("liber_kafka_events_total", "counter", "events read from Kafka, by outcome");
      metrics.describe("liber_kafka_lag", "gauge", "messages of a Kafka partition not yet stored");
      metrics.describe("liber_kafka_partition_owned", "gauge", "1 while this worker holds the Kafka partition");
      if (changelog) {
        metrics.describe("liber_kafka_records_total", "counter",
                         "interest records sent to the output topic, by outcome (published, delivered, failed)");
        metrics.describe("liber_kafka_records_restored_total", "counter",
                         "records read from the output topic into the store (partitions taken over)");
      }
      kafka = std::make_unique<KafkaIngest>(
          store, log, opt.kafka,
          [this](std::span<const Event> e, std::vector<AddStatus>* o, const std::function<void(WriteBatch&)>& w) {
            return deliver_from_kafka(e, o, w);
          });
      kafka->on_rebalance([this](const std::vector<int32_t>& p) { assigned(p); },
                          [this](const std::vector<int32_t>& p) { revoked(p); });
    }
  }

  // Of `users` (every user when `all`), those whose events come from a partition held now.
  std::vector<std::string> owned_users(std::vector<std::string> users, bool all) {
    std::set<int32_t> held;
    {
      std::lock_guard<std::mutex> lock(owned_mutex);
      held = owned;
    }
    std::vector<std::string> out;
    if (all) {
      for (int32_t p : held)
        for (std::string& u : kafka_partition_users(store, p)) out.push_back(std::move(u));
      return out;
    }
    for (std::string& u : users)
      if (const auto p = kafka_partition_of(store, u); p && held.count(*p)) out.push_back(std::move(u));
    return out;
  }

  // Partitions assigned: their records come in from the output topic before the pipeline
  // may learn any of their users (else it would learn again what another worker learned).
  void assigned(const std::vector<int32_t>& partitions) {
    for (int32_t p : partitions) {
      bool restored = !changelog;
      while (!restored && !kafka_stop) {
        try {
          changelog->restore(p);
          restored = true;
        } catch (const std::exception& e) {  // the broker away: try again, the partition waits
          log_warning(fmt::format("serve: restoring Kafka partition {}: {}; retrying", p, e.what()));
          std::this_thread::sleep_for(std::chrono::seconds(1));
        }
      }
      if (!restored) return;  // stopping: never learn a partition not restored
      std::lock_guard<std::mutex> lock(owned_mutex);
      owned.insert(p);
    }
    if (pipeline) pipeline->resume();
  }

  // Partitions revoked (their batch in hand is stored): no LLM call stays in flight for
  // their users and every record made is acknowledged before the next owner restores.
  void revoked(const std::vector<int32_t>& partitions) {
    if (pipeline) pipeline->pause();
    if (changelog && !changelog->flush(std::chrono::seconds(30)))
      log_warning("serve: records not acknowledged by the output topic within 30 s; the next owner may learn them again");
    std::lock_guard<std::mutex> lock(owned_mutex);
    for (int32_t p : partitions) owned.erase(p);
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
    metrics.describe("liber_scored_items_total", "counter", "items scored by POST /v1/score");
    metrics.describe("liber_freshness_seconds", "histogram",
                     "from the request that closed a partition to the end of the pipeline run that "
                     "learned and encoded it");
    for (const char* o : {"accepted", "duplicate", "late", "bad"})
      metrics.add("liber_events_total", fmt::format("outcome=\"{}\"", o), 0);
  }

  bool authorized(const HttpRequest& req) const {
    const std::string header = req.header("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.size() <= kBearer.size() || header.compare(0, kBearer.size(), kBearer) != 0) return false;
    return same_secret(std::string_view(header).substr(kBearer.size()), opt.token);
  }

  // Before the body is read: the token, and what the service does not take.
  std::optional<HttpResponse> precheck(const HttpRequest& req) const {
    // The health checks, and the status page: static, its data comes from /v1/status.
    if (req.path == "/healthz" || req.path == "/readyz" || req.path == "/") return std::nullopt;
    if (!authorized(req)) {
      HttpResponse res = reply(401, error_body("missing or wrong bearer token (Authorization: Bearer ...)"));
      res.headers.push_back({"WWW-Authenticate", "Bearer"});
      res.close = true;  // its body, if any, is left unread
      return res;
    }
    const std::string type = req.header("content-type");
    if (req.method == "POST" && (type.rfind("application/x-www-form-urlencoded", 0) == 0 ||
                                 type.rfind("multipart/", 0) == 0)) {
      HttpResponse res = reply(415, error_body(fmt::format("Content-Type {} is not taken: send JSON "
                                                           "(application/json or application/x-ndjson)", type)));
      res.close = true;
      return res;
    }
    return std::nullopt;
  }

  HttpResponse handle(const HttpRequest& req) {
    const std::string& path = req.path;
    const bool get = req.method == "GET" || req.method == "HEAD";  // HEAD: the server drops the body
    if (get && path == "/healthz") {
      HttpResponse res;
      res.content_type = "text/plain";
      res.body = "ok\n";
      return res;
    }
    if (get && path == "/readyz")
      return stopping ? reply(503, json{{"ready", false}, {"why", "shutting down"}})
                      : reply(200, json{{"ready", true}});
    if (get && path == "/metrics") {
      pipeline_metrics();
      kafka_metrics();
      HttpResponse res;
      res.content_type = "text/plain; version=0.0.4";
      res.body = metrics.text();
      return res;
    }
    if (get && path == "/") {
      HttpResponse res;
      res.content_type = "text/html; charset=utf-8";
      res.body = serve::status_page_html();
      res.headers = {{"Cache-Control", "no-store"},
                     {"Content-Security-Policy",
                      "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                      "connect-src 'self'"}};
      return res;
    }
    if (get && path == "/v1/status") return reply(200, status());
    if (req.method == "POST" && path == "/v1/events") return post_events(req);
    if (req.method == "POST" && path == "/v1/score") return post_score(req);
    constexpr std::string_view kUsers = "/v1/users/";
    if (get && path.size() > kUsers.size() && path.compare(0, kUsers.size(), kUsers) == 0 &&
        path.find('/', kUsers.size()) == std::string::npos) {
      const std::string user = path.substr(kUsers.size());
      if (log.users.ids.find(user) == 0)
        return reply(404, error_body(fmt::format("unknown user '{}'", serve::echo_id(user)), "", "user"));
      return reply(200, serve::user_view(store, user, req.param("vectors") == "1"));
    }
    const std::string route = route_of(path);
    return route != "other" ? reply(405, error_body(fmt::format("{} is not allowed on {}", req.method, route)))
                 : reply(404, error_body("no such route"));
  }

  // After a delivery (HTTP or Kafka) is stored: the pipeline and the scorer hear of the
  // users whose partitions closed, and the closes are counted.
  void delivered(std::span<const Event> events, const IngestStats& st, Clock::time_point arrived) {
    if (st.partitions() > 0 && (pipeline || scorer)) {
      std::vector<std::string> users;  // those of the delivery: a superset of who closed one
      for (const Event& e : events) users.push_back(log.users.ids.key(e.user));
      std::sort(users.begin(), users.end());
      users.erase(std::unique(users.begin(), users.end()), users.end());
      if (pipeline) pipeline->notify(users, st.partitions(), arrived);
      if (scorer) scorer->invalidate(users);  // content vectors exist as soon as a partition closes
    }
    for (int r = 0; r < kCloseReasonCount; ++r)
      if (st.closed[r])
        metrics.add("liber_partitions_closed_total",
                    fmt::format("reason=\"{}\"", to_string(static_cast<CloseReason>(r))), st.closed[r]);
  }

  // The Kafka source's deliveries: the same Ingestor, lock and bookkeeping as POST /v1/events.
  IngestStats deliver_from_kafka(std::span<const Event> events, std::vector<AddStatus>* outcomes,
                                 const std::function<void(WriteBatch&)>& with) {
    const auto arrived = Clock::now();
    IngestStats st;
    {
      std::lock_guard<std::mutex> lock(ingest_mutex);
      st = ingestor->deliver(events, outcomes, with);
    }
    uint64_t counts[4] = {0, 0, 0, 0};
    for (AddStatus a : *outcomes)
      ++counts[a == AddStatus::Accepted ? 0 : a == AddStatus::Duplicate ? 1 : a == AddStatus::Bad ? 3 : 2];
    const char* names[4] = {"accepted", "duplicate", "late", "bad"};
    for (int i = 0; i < 4; ++i)
      metrics.add("liber_kafka_events_total", fmt::format("outcome=\"{}\"", names[i]), counts[i]);
    delivered(events, st, arrived);
    return st;
  }

  void kafka_metrics() {
    if (!kafka) return;
    const KafkaStats k = kafka->stats();
    for (const auto& [partition, lag] : k.lag)
      metrics.set("liber_kafka_lag", fmt::format("topic=\"{}\",partition=\"{}\"", opt.kafka.topic, partition),
                  static_cast<double>(lag));
    metrics.set("liber_kafka_messages_bad_total", "", static_cast<double>(k.bad));
    metrics.set("liber_kafka_rebalances_total", "", static_cast<double>(k.rebalances));
    {
      std::lock_guard<std::mutex> lock(owned_mutex);
      for (int32_t p : owned) ever_owned.insert(p);
      for (int32_t p : ever_owned)
        metrics.set("liber_kafka_partition_owned", fmt::format("topic=\"{}\",partition=\"{}\"", opt.kafka.topic, p),
                    owned.count(p) ? 1 : 0);
    }
    if (changelog) {
      const ChangelogStats c = changelog->stats();
      metrics.set("liber_kafka_records_total", "outcome=\"published\"", static_cast<double>(c.published));
      metrics.set("liber_kafka_records_total", "outcome=\"delivered\"", static_cast<double>(c.delivered));
      metrics.set("liber_kafka_records_total", "outcome=\"failed\"", static_cast<double>(c.failed));
      metrics.set("liber_kafka_records_restored_total", "", static_cast<double>(c.restored));
    }
  }

  HttpResponse post_score(const HttpRequest& req) {
    if (!scorer)
      return reply(404, error_body("no model is loaded: start liber serve with --score-model DIR "
                                   "(liber train --store ... --save-model DIR makes one)"));
    ScoreRequest r;
    try {
      r = decode_score_request(req.body, log.users,
                               [this](std::string_view item) { return scorer->item_row(item) != 0; },
                               opt.limits.max_items);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Limit) return reply(413, error_body(e.what(), "items_per_request"));
      return reply(400, error_body(e.what()));
    }
    if (!r.ok()) return reply(422, error_body(fmt::format("{}: {}", r.field, r.reason), "", r.field));
    Score score;
    try {
      score = scorer->score(r.user, r.items, r.ts);
    } catch (const Error& e) {
      log_warning(fmt::format("serve: scoring failed: {}", e.what()));
      return reply(503, error_body(fmt::format("scoring failed: {}", e.what())));
    }
    metrics.add("liber_scored_items_total", "", r.items.size());
    const ModelInfo& m = scorer->info();
    return reply(200, json{{"user", r.user},
                           {"ts", r.ts ? json(*r.ts) : json(nullptr)},
                           {"model", {{"backbone", m.model.backbone}, {"knowledge", m.knowledge}}},
                           {"history", score.history},
                           {"partitions", score.partitions},
                           {"scores", score.probabilities}});
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
    if (scorer) {
      const ModelInfo& m = scorer->info();
      add("items scored", metrics.counter("liber_scored_items_total", ""));
      out["model"] = {{"backbone", m.model.backbone}, {"knowledge", m.knowledge},
                      {"test_auc", m.test.auc}, {"rows", scorer->rows()}};
    }
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

  HttpResponse post_events(const HttpRequest& req) {
    const auto arrived = Clock::now();  // freshness counts from here (the body is read)
    DecodedEvents d;
    try {
      d = decode_events(req.body, log.items, log.users, opt.limits.max_events);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Limit) return reply(413, error_body(e.what(), "events_per_request"));
      return reply(400, error_body(e.what()));
    }
    std::vector<AddStatus> outcomes;
    IngestStats st;
    try {
      std::lock_guard<std::mutex> lock(ingest_mutex);
      st = ingestor->deliver(d.events, &outcomes);
    } catch (const Error& e) {
      log_warning(fmt::format("serve: events not stored: {}", e.what()));
      return reply(503, error_body("the store did not take the events; nothing of this "
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
    delivered(d.events, st, arrived);
    if (!errors.empty()) body["errors"] = errors;
    if (!late.empty()) body["late_events"] = late;
    if (counts[3] > kListed || counts[2] > kListed) body["lists_truncated_at"] = kListed;
    // Every event bad: nothing to store, the request as a whole is unusable.
    return reply(d.total > 0 && counts[3] == d.total ? 422 : 200, body);
  }
};

Service::Service(Store& store, ServeOptions options, LlmEngine* llm, LlmEngine* encoder)
    : impl_(std::make_unique<Impl>(store, std::move(options), llm, encoder)) {}
Service::~Service() { stop(); }

int Service::bind() { return impl_->port = impl_->server->bind(); }

void Service::run() {
  bind();
  if (impl_->kafka && !impl_->kafka_thread.joinable())
    impl_->kafka_thread = std::thread([this] {
      try {
        impl_->kafka->run(impl_->kafka_stop);
      } catch (const std::exception& e) {  // the store refused a batch: stop serving
        log_warning(fmt::format("serve: Kafka source stopped, the service stops: {}", e.what()));
        impl_->server->stop();
      }
    });
  impl_->server->run();
}

void Service::stop() {
  impl_->stopping = true;
  impl_->server->stop();
  impl_->kafka_stop = true;  // the batch in hand is stored with its offsets
  if (impl_->kafka_thread.joinable() && impl_->kafka_thread.get_id() != std::this_thread::get_id()) {
    impl_->kafka_thread.join();
    impl_->kafka.reset();  // has left the group (its revocation paused the pipeline)
  }
  if (impl_->pipeline) impl_->pipeline->stop();  // its calls in flight finish and are recorded
  if (impl_->changelog) impl_->changelog->flush(std::chrono::seconds(10));
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
