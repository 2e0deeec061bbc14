// The HTTP service in process, on 127.0.0.1 and a free port: what it stores is checked
// against the in-memory partitioner over the same events; limits, tokens and shutdown
// against what the API promises.
#include <gtest/gtest.h>

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/test_ubsp_util.h"
#include "fixtures.h"
#include "helpers/event_json.h"
#include "liber/error.h"
#include "liber/serve.h"
#include "serve/model_fixture.h"
#include "serve/serve_child.h"

namespace liber {
namespace {

using json = nlohmann::json;
using testing::event_json;
using testing::TempDir;
using testing::tiny_log;

constexpr const char* kToken = "s3cret-token";

std::string array_of(const BehaviorLog& log, std::span<const Event> events) {
  std::string s = "[";
  for (std::size_t i = 0; i < events.size(); ++i) s += (i ? "," : "") + event_json(log, events[i]);
  return s + "]";
}

// A store made by ingest (catalog and rule, no events) and the service over it.
class ServiceTest : public ::testing::Test {
 protected:
  TempDir dir{"liber-serve"};
  BehaviorLog log = tiny_log(30, 6, {"A", "B", "C"});
  PartitionRule rule;
  std::unique_ptr<Store> store;
  std::unique_ptr<Service> service;
  std::thread thread;

  void SetUp() override {
    rule.count = 5;
    store = open_rocksdb_store(dir / "store");
    Ingestor(*store, log, rule).ingest({});
  }
  void start(ServeOptions opt = {}) {
    opt.port = 0;
    opt.token = kToken;
    service = std::make_unique<Service>(*store, opt);
    service->bind();
    thread = std::thread([this] { service->run(); });
  }
  void TearDown() override {
    if (service) service->stop();
    if (thread.joinable()) thread.join();
  }
  httplib::Client client(bool token = true) {
    httplib::Client c("127.0.0.1", service->port());
    c.set_read_timeout(10, 0);
    if (token) c.set_bearer_token_auth(kToken);
    return c;
  }
  json post(std::string_view body, int want_status, const char* type = "application/json") {
    auto c = client();
    auto r = c.Post("/v1/events", std::string(body), type);
    EXPECT_TRUE(r) << "no response";
    if (!r) return {};
    EXPECT_EQ(r->status, want_status) << r->body;
    return json::parse(r->body);
  }
  // A stream of events for every user, in time order, with some ties.
  std::vector<Event> stream(int per_user, uint64_t seed) const {
    std::mt19937_64 rng(seed);
    std::vector<Event> out;
    for (uint32_t u = 1; u < log.users.size(); ++u) {
      int64_t ts = 1000;
      for (int i = 0; i < per_user; ++i) {
        ts += static_cast<int64_t>(rng() % 3);  // 0: same second as the previous one
        out.push_back(Event{u, static_cast<uint32_t>(1 + rng() % (log.items.size() - 1)), ts,
                            static_cast<float>(1 + rng() % 5), -1});
      }
    }
    return time_ordered(out);
  }
};

TEST_F(ServiceTest, StoresWhatTheInMemoryPartitionerCloses) {
  start();
  const std::vector<Event> events = stream(23, 7);
  uint64_t accepted = 0, closed = 0, duplicates = 0;
  for (std::size_t i = 0; i < events.size(); i += 7) {
    const auto part = std::span(events).subspan(i, std::min<std::size_t>(7, events.size() - i));
    const json r = post(array_of(log, part), 200);
    accepted += r["accepted"].get<uint64_t>();
    duplicates += r["duplicate"].get<uint64_t>();
    closed += r["partitions_closed"].get<uint64_t>();
  }
  // The reference: the pure partitioner over the same stream.
  const MemoryRun ref = partition_in_memory(log, events, rule);
  EXPECT_EQ(accepted, ref.status_counts[static_cast<int>(AddStatus::Accepted)]);
  EXPECT_EQ(duplicates, ref.status_counts[static_cast<int>(AddStatus::Duplicate)]);
  EXPECT_EQ(closed, ref.partitions.size());
  std::size_t compared = 0;
  for (uint32_t u = 1; u < log.users.size(); ++u) {
    const auto stored = read_partitions(*store, log.users.ids.key(u));
    std::vector<const Partition*> want;
    for (const Partition& p : ref.partitions)
      if (p.user == u) want.push_back(&p);
    ASSERT_EQ(stored.size(), want.size()) << "user " << u;
    for (std::size_t k = 0; k < stored.size(); ++k) {
      ASSERT_EQ(stored[k].events.size(), want[k]->events.size());
      for (std::size_t e = 0; e < stored[k].events.size(); ++e) {
        EXPECT_EQ(stored[k].events[e].item, log.items.ids.key(want[k]->events[e].item));
        EXPECT_EQ(stored[k].events[e].ts, want[k]->events[e].ts);
      }
      ++compared;
    }
    // GET /v1/users/{id} says the same.
    auto c = client();
    auto r = c.Get("/v1/users/" + log.users.ids.key(u));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    const json view = json::parse(r->body);
    ASSERT_EQ(view["partitions"].size(), stored.size());
    for (std::size_t k = 0; k < stored.size(); ++k) {
      EXPECT_EQ(view["partitions"][k]["seq"], stored[k].seq);
      EXPECT_EQ(view["partitions"][k]["size"], stored[k].events.size());
      EXPECT_EQ(view["partitions"][k]["t_end"], stored[k].t_end);
    }
    EXPECT_EQ(view["cache"]["size"], ref.users[u].cache.size());
  }
  EXPECT_GT(compared, 20u);
  // A redelivery of everything (at-least-once clients) changes nothing.
  const json again = post(array_of(log, events), 200);
  EXPECT_EQ(again["accepted"], 0);
  EXPECT_EQ(again["duplicate"], events.size());
  EXPECT_EQ(again["partitions_closed"], 0);
  const std::string metrics = service->metrics();
  EXPECT_NE(metrics.find("liber_events_total{outcome=\"accepted\"} " + std::to_string(accepted)),
            std::string::npos);
  EXPECT_NE(metrics.find("liber_events_total{outcome=\"duplicate\"} " +
                         std::to_string(duplicates + events.size())),
            std::string::npos);
}

TEST_F(ServiceTest, BadEventsAreListedAndTheGoodOnesKept) {
  start();
  const json r = post(R"([{"user":"u1","item":"i1","ts":100},
                          {"user":"nobody","item":"i1","ts":100},
                          {"user":"u1","item":"i2","ts":"soon"},
                          {"user":"u1","item":"i3","ts":101}])", 200);
  EXPECT_EQ(r["events"], 4);
  EXPECT_EQ(r["accepted"], 2);
  EXPECT_EQ(r["bad"], 2);
  ASSERT_EQ(r["errors"].size(), 2u);
  EXPECT_EQ(r["errors"][0]["index"], 1);
  EXPECT_EQ(r["errors"][0]["field"], "user");
  EXPECT_EQ(r["errors"][1]["index"], 2);
  EXPECT_EQ(r["errors"][1]["field"], "ts");
  // Every event bad: 422. Malformed: 400. Neither loses what was stored.
  post(R"([{"user":"nobody","item":"i1","ts":100}])", 422);
  const json bad = post(R"([{"user":"u1", "item":)", 400);
  EXPECT_NE(bad["error"].get<std::string>().find("line 1"), std::string::npos);
  EXPECT_EQ(read_cache(*store, "u1")->events.size(), 2u);
  // Late: older than the user's last closed partition.
  post(R"([{"user":"u1","item":"i4","ts":102},{"user":"u1","item":"i5","ts":103},
           {"user":"u1","item":"i6","ts":104}])", 200);  // closes u1's first partition (K = 5)
  const json late = post(R"([{"user":"u1","item":"i7","ts":50}])", 200);
  EXPECT_EQ(late["late"], 1);
  EXPECT_EQ(late["late_events"][0]["index"], 0);
}

TEST_F(ServiceTest, EveryRouteButHealthNeedsTheToken) {
  start();
  auto anonymous = client(false);
  EXPECT_EQ(anonymous.Get("/healthz")->status, 200);
  EXPECT_EQ(anonymous.Get("/readyz")->status, 200);
  for (const char* path : {"/metrics", "/v1/users/u1"}) {
    auto r = anonymous.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << path;
    EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
  }
  EXPECT_EQ(anonymous.Post("/v1/events", "[]", "application/json")->status, 401);
  // Wrong in the last character, one longer, one shorter, another scheme.
  for (const std::string& header : {std::string("Bearer s3cret-tokeN"), std::string("Bearer s3cret-token!"),
                                    std::string("Bearer s3cret-toke"), std::string("Basic s3cret-token")}) {
    httplib::Client c("127.0.0.1", service->port());
    auto r = c.Get("/metrics", {{"Authorization", header}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << header;
  }
  auto c = client();
  EXPECT_EQ(c.Get("/metrics")->status, 200);
  auto head = c.Head("/v1/users/u1");  // GET's headers, no body
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  EXPECT_NE(head->get_header_value("Content-Length"), "0");
  EXPECT_EQ(c.Get("/metrics")->status, 200);  // the connection is still in step
  EXPECT_EQ(c.Get("/v1/users/nobody")->status, 404);
  EXPECT_EQ(c.Get("/v1/nothing")->status, 404);
  // The token never shows in what the service writes out.
  EXPECT_EQ(service->metrics().find(kToken), std::string::npos);
}

TEST_F(ServiceTest, LimitsAnswerWithTheirStatusAndName) {
  ServeOptions opt;
  opt.limits.max_body_bytes = 4096;
  opt.limits.max_events = 20;
  start(opt);
  auto limit_of = [](const httplib::Result& r) {
    return r && !r->body.empty() ? json::parse(r->body).value("limit", "") : std::string("?");
  };
  auto c = client();
  std::vector<Event> many;
  for (int i = 0; i < 21; ++i) many.push_back(Event{1, 1, 100 + i, 4.0f, -1});
  auto r = c.Post("/v1/events", array_of(log, many), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(limit_of(r), "events_per_request");
  r = c.Post("/v1/events", std::string(5000, ' '), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(limit_of(r), "body_bytes");
  r = c.Post("/v1/events", "user=u1", "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  r = client().Get("/metrics", {{"X-Long", std::string(9000, 'a')}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);  // under the 16 KiB of all headers together
  httplib::Headers headers;
  for (int i = 0; i < 40; ++i) headers.insert({"X-Header-" + std::to_string(i), std::string(500, 'a')});
  r = client().Get("/metrics", headers);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(limit_of(r), "header_bytes");
  EXPECT_EQ(read_cache(*store, "u1"), std::nullopt);  // nothing of the refused requests stored
}

// A raw connection that sends part of a request and waits.
int connect_raw(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(ServiceTest, ConnectionsOverTheCapGet503AndSlowOnesAreClosed) {
  ServeOptions opt;
  opt.threads = 1;
  opt.limits.max_connections = 1;
  opt.limits.read_timeout = std::chrono::milliseconds(1500);
  start(opt);
  // Holds the only connection: its headers never finish.
  const int slow = connect_raw(service->port());
  ASSERT_GE(slow, 0);
  const std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(::send(slow, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto r = client().Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(json::parse(r->body)["limit"], "connections");
  // The slow connection is answered 408 and closed at the read timeout, not held forever.
  char buf[512];
  timeval wait{5, 0};
  ::setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  const auto t0 = std::chrono::steady_clock::now();
  std::string answer;
  for (ssize_t n; (n = ::recv(slow, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(answer.rfind("HTTP/1.1 408", 0), 0u) << answer;
  EXPECT_NE(answer.find("\"limit\":\"read_timeout\""), std::string::npos) << answer;
  EXPECT_LT(waited, 4.9);  // before our own 5 s guard: the server closed it
  ::close(slow);
  // And the thread serves again, once it has let go of the closed connection.
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r = client().Get("/metrics");
    ASSERT_TRUE(r);
    status = r->status;
  }
  EXPECT_EQ(status, 200);
}

TEST_F(ServiceTest, StopFinishesTheRequestInFlight) {
  start();
  std::vector<Event> events = stream(40, 3);
  int64_t acknowledged = -1;  // accepted events, when the request was answered
  std::thread sender([&] {
    auto r = client().Post("/v1/events", array_of(log, events), "application/json");
    if (r && r->status == 200) acknowledged = json::parse(r->body)["accepted"].get<int64_t>();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  service->stop();
  thread.join();
  sender.join();
  // A request the server began is finished and answered; either way what the store holds
  // is the whole request or none of it.
  uint64_t held = 0;
  for (uint32_t u = 1; u < log.users.size(); ++u) {
    const std::string user = log.users.ids.key(u);
    for (const auto& p : read_partitions(*store, user)) held += p.events.size();
    if (auto c = read_cache(*store, user)) held += c->events.size();
  }
  if (acknowledged >= 0) EXPECT_EQ(held, static_cast<uint64_t>(acknowledged));
  else EXPECT_EQ(held, 0u);
}

TEST(ServiceSetup, RefusesAStoreWithoutCatalogAndAMissingToken) {
  TempDir dir{"liber-serve"};
  auto store = open_rocksdb_store(dir / "store");
  ServeOptions opt;
  opt.token = "t";
  EXPECT_THROW(Service(*store, opt), Error);
  BehaviorLog log = tiny_log(3, 2, {});
  Ingestor(*store, log, PartitionRule{}).ingest({});
  opt.token.clear();
  EXPECT_THROW(Service(*store, opt), Error);
  opt.token = "t";
  EXPECT_NO_THROW(Service(*store, opt));
  TempDir files{"liber-token"};
  testing::write_file(files / "token", "abc \n");
  EXPECT_EQ(read_token_file(files / "token"), "abc");
  testing::write_file(files / "empty", "\n");
  EXPECT_THROW(read_token_file(files / "empty"), Error);
  EXPECT_THROW(read_token_file(files / "missing"), Error);
}

// The real binary: SIGTERM while serving -> exit 0 after finishing.
TEST(ServeCommand, SigtermStopsItCleanly) {
  const char* cli = std::getenv("LIBER_TEST_CLI");
  ASSERT_NE(cli, nullptr);
  TempDir dir{"liber-serve"};
  {
    auto store = open_rocksdb_store(dir / "store");
    BehaviorLog log = tiny_log(3, 2, {});
    Ingestor(*store, log, PartitionRule{}).ingest({});
  }
  testing::write_file(dir / "token", std::string(kToken) + "\n");
  const testing::ServeChild child = testing::spawn_serve(
      cli, dir / "store", dir / "token", (dir / "stderr").string(), {"--no-learn"});
  const pid_t pid = child.pid;
  const int port = child.port;
  const std::string err = child.stderr_path;
  ASSERT_GT(port, 0) << testing::read_file(err);
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ::kill(pid, SIGTERM);
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 300 && done == 0; ++i) {
    done = ::waitpid(pid, &status, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (done == 0) ::kill(pid, SIGKILL), ::waitpid(pid, &status, 0);
  ASSERT_NE(done, 0) << "still running 15 s after SIGTERM";
  ASSERT_TRUE(WIFEXITED(status)) << testing::read_file(err);
  EXPECT_EQ(WEXITSTATUS(status), 0) << testing::read_file(err);
  EXPECT_NE(testing::read_file(err).find("stopped"), std::string::npos);
}

}  // namespace
}  // namespace liber

namespace liber {
namespace {

// POST /v1/score against the scorer over the same store and model, and every refusal.
TEST_F(ServiceTest, ScoresAsTheScorerAndRefusesBadRequestsNamingTheField) {
  const std::filesystem::path model = testing::train_small_model(log, rule, dir.path());
  const std::vector<Event> events = stream(12, 3);
  Ingestor(*store, log, rule).deliver(events);
  ServeOptions opt;
  opt.model = model;
  opt.limits.max_items = 4;
  start(opt);
  auto c = client();
  auto score = [&](const json& body, int want) {
    auto r = c.Post("/v1/score", body.dump(), "application/json");
    EXPECT_TRUE(r) << "no response";
    if (!r) return json{};
    EXPECT_EQ(r->status, want) << r->body;
    return json::parse(r->body);
  };
  const std::string user = log.users.ids.key(2);
  const std::vector<std::string> items{log.items.ids.key(1), log.items.ids.key(4), log.items.ids.key(9)};
  const json ok = score({{"user", user}, {"items", items}, {"ts", 1010}}, 200);
  Scorer reference(*store, model);
  const Score want = reference.score(user, items, 1010);
  ASSERT_EQ(ok["scores"].size(), items.size());
  for (std::size_t i = 0; i < items.size(); ++i)
    EXPECT_NEAR(ok["scores"][i].get<double>(), want.probabilities[i], 1e-6);
  EXPECT_EQ(ok["history"], want.history);
  EXPECT_EQ(ok["ts"], 1010);
  EXPECT_EQ(ok["model"]["backbone"], "din");
  EXPECT_TRUE(score({{"user", user}, {"items", items}}, 200)["ts"].is_null());  // after everything

  auto refused = [&](const json& body, int status, const std::string& field) {
    const json r = score(body, status);
    EXPECT_EQ(r.value("field", ""), field) << r.dump();
    EXPECT_FALSE(r.value("error", "").empty());
  };
  refused({{"items", items}}, 422, "user");
  refused({{"user", "nobody"}, {"items", items}}, 422, "user");
  refused({{"user", user}}, 422, "items");
  refused({{"user", user}, {"items", json::array()}}, 422, "items");
  refused({{"user", user}, {"items", {items[0], "no-such-item"}}}, 422, "items[1]");
  refused({{"user", user}, {"items", {items[0], 1.5}}}, 422, "items[1]");
  refused({{"user", user}, {"items", items}, {"ts", 12.5}}, 422, "ts");
  refused({{"user", user}, {"items", items}, {"ts", -3}}, 422, "ts");
  const json many = score({{"user", user}, {"items", {items[0], items[0], items[0], items[0], items[0]}}}, 413);
  EXPECT_EQ(many["limit"], "items_per_request");
  auto bad = c.Post("/v1/score", "{\"user\": ", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("malformed JSON"), std::string::npos) << bad->body;
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("liber_scored_items_total 6"), std::string::npos);
  EXPECT_NE(metrics->body.find("route=\"/v1/score\""), std::string::npos);
}

TEST_F(ServiceTest, ScoringWithoutAModelSaysHowToLoadOne) {
  start();
  auto r = client().Post("/v1/score", R"({"user": "1", "items": ["1"]})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("--score-model"), std::string::npos) << r->body;
}

}  // namespace
}  // namespace liber
