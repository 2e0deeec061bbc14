// The service's background pipeline with the real default LLM and encoder: every closed
// partition learned exactly once, a restart resumes without redoing anything, and an LLM
// server that is down leaves ingest working and the partitions pending until it is back.
#include <gtest/gtest.h>

#include <httplib.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/test_ubsp_util.h"
#include "engine_fixture.h"
#include "fixtures.h"
#include "liber/error.h"
#include "liber/llm/http_engine.h"
#include "liber/serve.h"
#include "serve/model_fixture.h"
#include "llm/llm_server.h"
#include "serve/serve_child.h"

namespace liber {
namespace {

using json = nlohmann::json;
using testing::TempDir;
using testing::tiny_log;

constexpr const char* kToken = "pipeline-token";

// Users 1-4 of `log`, 10 events each, ingested with `rule` (K = 5): 8 closed partitions.
void ingest_eight_partitions(const std::filesystem::path& dir, const BehaviorLog& log,
                             const PartitionRule& rule) {
  auto store = open_rocksdb_store(dir);
  Ingestor ing(*store, log, rule);
  std::vector<Event> events;
  for (uint32_t u = 1; u <= 4; ++u)
    for (int i = 0; i < 10; ++i)
      events.push_back(Event{u, static_cast<uint32_t>(1 + (u * 7 + i) % 40), 1000 + i * 60,
                             static_cast<float>(1 + i % 5), -1});
  ing.ingest(time_ordered(events));
}

class PipelineTest : public ::testing::Test {
 protected:
  TempDir dir{"liber-pipeline"};
  BehaviorLog log = tiny_log(40, 3, {"Drama", "Comedy", "Horror"});
  std::unique_ptr<Store> store;
  std::unique_ptr<Service> service;
  std::thread thread;

  void SetUp() override {
    PartitionRule rule;
    rule.count = 5;
    store = open_rocksdb_store(dir / "store");
    Ingestor(*store, log, rule).ingest({});
  }
  void start(LlmEngine& llm, LlmEngine& encoder, const std::filesystem::path& model = {}) {
    ServeOptions opt;
    opt.model = model;
    opt.port = 0;
    opt.token = kToken;
    opt.pipeline.learn.candidates = 1;  // one call per partition: calls count partitions
    opt.pipeline.learn.max_retries = 0;
    opt.pipeline.learn.max_tokens = 96;
    opt.pipeline.max_backoff = std::chrono::milliseconds(2000);
    service = std::make_unique<Service>(*store, opt, &llm, &encoder);
    service->bind();
    thread = std::thread([this] { service->run(); });
  }
  void stop() {
    if (service) service->stop();
    if (thread.joinable()) thread.join();
    service.reset();
  }
  void TearDown() override { stop(); }

  httplib::Client client() {
    httplib::Client c("127.0.0.1", service->port());
    c.set_bearer_token_auth(kToken);
    c.set_read_timeout(30, 0);
    return c;
  }
  // `n` events of user u from time t0, one a minute, distinct items.
  int post(const std::string& user, int n, int64_t t0, int first_item) {
    json events = json::array();
    for (int i = 0; i < n; ++i)
      events.push_back({{"user", user}, {"item", "i" + std::to_string(first_item + i)},
                        {"ts", t0 + 60 * i}, {"rating", 1 + (i % 5)}});
    auto r = client().Post("/v1/events", events.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return -1;
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body)["partitions_closed"].get<int>();
  }
  // The metric's value in /metrics, or -1.
  double metric(const std::string& series) {
    auto r = client().Get("/metrics");
    if (!r) return -1;
    const auto at = r->body.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::atof(r->body.c_str() + at + series.size() + 2);
  }
  // Waits until no partition is pending and `records` records were made (verified,
  // rejected, or failed: an output the model got wrong); false on timeout.
  bool settle(double records, double timeout_s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      const double learned = metric("liber_records_total{result=\"verified\"}") +
                             metric("liber_records_total{result=\"rejected\"}") +
                             metric("liber_records_total{result=\"failed\"}");
      if (metric("liber_partitions{state=\"pending\"}") == 0 && learned >= records) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }
  std::size_t records_of(const std::string& user) {
    std::size_t n = 0;
    for (const Variant& v : list_variants(*store)) n += read_interests(*store, v.id(), user).size();
    return n;
  }
};

TEST_F(PipelineTest, LearnsEveryClosedPartitionOnceAndResumesWithoutRedoing) {
  LlmEngine& llm = testing::shared_engine();
  LlmEngine& encoder = testing::shared_encoder();
  start(llm, encoder);
  EXPECT_EQ(post("u1", 10, 1000000, 1), 2);
  EXPECT_EQ(post("u2", 7, 1000000, 11), 1);
  ASSERT_TRUE(settle(3, 300)) << service->metrics();
  EXPECT_EQ(metric("liber_partitions{state=\"closed\"}"), 3);
  EXPECT_EQ(metric("liber_llm_calls_total"), 3);  // one per partition, never a re-read
  EXPECT_EQ(records_of("u1"), 2u);
  EXPECT_EQ(records_of("u2"), 1u);
  auto r = client().Get("/v1/users/u1?vectors=1");
  ASSERT_TRUE(r);
  const json view = json::parse(r->body);
  ASSERT_EQ(view["variants"].size(), 1u);
  EXPECT_EQ(view["variants"][0]["records"].size(), 2u);
  EXPECT_TRUE(view["variants"][0]["pending"].empty());
  // The cascade: partition 1's prompt carried partition 0's summary when it was verified.
  const auto records = read_interests(*store, view["variants"][0]["id"].get<std::string>(), "u1");
  ASSERT_EQ(records.size(), 2u);
  if (records[0].usable()) EXPECT_EQ(records[1].previous_summary, records[0].summary);
  // A restart: the first run covers every user and finds nothing to do.
  stop();
  start(llm, encoder);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_TRUE(settle(0, 120));
  EXPECT_EQ(metric("liber_llm_calls_total"), 0);
  EXPECT_EQ(records_of("u1"), 2u);
}

TEST_F(PipelineTest, AnLlmServerDownLeavesIngestAndScoringWorkingAndThePartitionsPending) {
  if (std::string why = test::LlmServer::unavailable_reason(); !why.empty()) {
    if (std::getenv("CI")) FAIL() << why;
    GTEST_SKIP() << why;
  }
  test::LlmServer server;
  HttpOptions h;
  // The server's port is chosen when it first starts; it comes back on the same one.
  ASSERT_TRUE(server.start(120)) << server.log_path();
  h.base_url = server.base_url();
  h.model = "gemma";
  h.max_retries = 1;
  h.backoff_base_s = 0.1;
  h.backoff_max_s = 0.2;
  h.timeout_s = 60;
  server.kill_hard();  // down before the first call
  auto llm = make_http_engine(h);
  PartitionRule rule;
  rule.count = 5;
  start(*llm, testing::shared_encoder(), testing::train_small_model(log, rule, dir.path()));
  auto score = [&] {
    auto s = client().Post("/v1/score", R"({"user": "u2", "items": ["i1", "i2"]})", "application/json");
    EXPECT_TRUE(s);
    if (s) EXPECT_EQ(s->status, 200) << s->body;
  };
  EXPECT_EQ(post("u1", 5, 2000000, 1), 1);
  // Ingest and reads go on while the pipeline fails and backs off.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (metric("liber_pipeline_errors_total") < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GE(metric("liber_pipeline_errors_total"), 1);
  EXPECT_EQ(post("u2", 5, 2000000, 11), 1);
  auto r = client().Get("/v1/users/u2");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  score();  // scoring answers from the store, LLM or not
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (metric("liber_partitions{state=\"pending\"}") != 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(metric("liber_partitions{state=\"pending\"}"), 2);
  // Back up: both partitions get their record, and none is lost.
  ASSERT_TRUE(server.start(120)) << server.log_path();
  ASSERT_TRUE(settle(2, 300)) << service->metrics();
  EXPECT_EQ(records_of("u1"), 1u);
  EXPECT_EQ(records_of("u2"), 1u);
  score();
  // Each record is the model's answer (ok, or an output it got wrong), none a failed call.
  for (const char* user : {"u1", "u2"})
    for (const Variant& v : list_variants(*store))
      for (const InterestRecord& rec : read_interests(*store, v.id(), user))
        EXPECT_NE(rec.error.rfind("engine: ", 0), 0u) << rec.error;
}

}  // namespace
}  // namespace liber

namespace liber {
namespace {

// The real binary with its pipeline on an OpenAI-compatible server (llama_cpp.server, whose
// log counts the calls made), SIGKILLed while it learns: after the last restart every closed
// partition has exactly one record, none of them a failed call, and the calls made exceed
// the partitions only by those in flight at a kill.
TEST(PipelineCrash, KilledWhileLearningEveryPartitionGetsOneRecord) {
  if (std::string why = test::LlmServer::unavailable_reason(); !why.empty()) {
    if (std::getenv("CI")) FAIL() << why;
    GTEST_SKIP() << why;
  }
  const char* cli = std::getenv("LIBER_TEST_CLI");
  ASSERT_NE(cli, nullptr);
  TempDir dir{"liber-pipeline-crash"};
  const BehaviorLog log = tiny_log(40, 4, {"Drama", "Comedy", "Horror"});
  PartitionRule rule;
  rule.count = 5;
  ingest_eight_partitions(dir / "store", log, rule);
  testing::write_file(dir / "token", std::string(kToken) + "\n");
  test::LlmServer server;
  ASSERT_TRUE(server.start(120)) << server.log_path();
  auto calls = [&] {  // completed chat calls in the server's log
    const std::string text = testing::read_file(server.log_path());
    std::size_t n = 0;
    for (std::size_t at = 0; (at = text.find("POST /v1/chat/completions", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  auto spawn = [&](int run) {
    return testing::spawn_serve(cli, dir / "store", dir / "token",
                                (dir / ("stderr." + std::to_string(run))).string(),
                                {"--engine", "http", "--base-url", server.base_url(), "--api-model",
                                 "gemma", "--candidates", "1", "--retries", "0", "--max-tokens",
                                 "96", "--encoder-threads", "1"});
  };
  int kills = 0;
  std::mt19937_64 rng(5);
  for (int run = 0; run < 4; ++run) {
    const testing::ServeChild child = spawn(run);
    ASSERT_GT(child.port, 0) << testing::read_file(child.stderr_path);
    const pid_t pid = child.pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + rng() % 3000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ++kills;
  }
  // The last run: until nothing is pending (its first run covers every user).
  const testing::ServeChild last = spawn(99);
  ASSERT_GT(last.port, 0) << testing::read_file(last.stderr_path);
  const pid_t pid = last.pid;
  auto store_done = [&] {
    auto store = open_rocksdb_store(dir / "store", {.read_only = true});
    std::size_t done = 0;
    for (const Variant& v : list_variants(*store))
      for (uint32_t u = 1; u <= 4; ++u)
        for (const InterestRecord& r : read_interests(*store, v.id(), log.users.ids.key(u)))
          done += (r.ok || r.error.rfind("engine: ", 0) != 0) ? 1 : 0;
    return done;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(400);
  while (store_done() < 8 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testing::read_file(dir / "stderr.99");
  ASSERT_EQ(store_done(), 8u) << testing::read_file(dir / "stderr.99");
  auto store = open_rocksdb_store(dir / "store", {.read_only = true});
  const auto variants = list_variants(*store);
  ASSERT_EQ(variants.size(), 1u);
  for (uint32_t u = 1; u <= 4; ++u)
    EXPECT_EQ(read_interests(*store, variants[0].id(), log.users.ids.key(u)).size(), 2u);
  const std::size_t made = calls();
  std::fprintf(stderr, "pipeline crash test: %d SIGKILLs while learning, 8 partitions, %zu LLM calls\n",
               kills, made);
  EXPECT_GE(made, 8u);
  // At most one call per partition plus those in flight at each kill (the engine's default
  // 8 requests in flight).
  EXPECT_LE(made, 8u + static_cast<std::size_t>(kills) * 8u);
}

}  // namespace
}  // namespace liber

namespace liber {
namespace {

// The HTTP engine over a fleet of two real servers (llama_cpp.server), one SIGKILLed while
// the cascade runs and started again: the run completes, every partition gets exactly one
// record, none of them a failed call, and the calls that completed are one per partition
// (what the killed server had in flight was re-sent to the other one).
TEST(PipelineFleet, AServerKilledMidRunEveryPartitionLearnedOnce) {
  if (std::string why = test::LlmServer::unavailable_reason(); !why.empty()) {
    if (std::getenv("CI")) FAIL() << why;
    GTEST_SKIP() << why;
  }
  TempDir dir{"liber-fleet"};
  const BehaviorLog log = tiny_log(40, 4, {"Drama", "Comedy", "Horror"});
  PartitionRule rule;
  rule.count = 5;
  ingest_eight_partitions(dir / "store", log, rule);
  auto store = open_rocksdb_store(dir / "store");
  test::LlmServer a, b;
  ASSERT_TRUE(a.start(120)) << a.log_path();
  ASSERT_TRUE(b.start(120)) << b.log_path();
  HttpOptions h;
  h.base_url = a.base_url() + "," + b.base_url();
  h.model = "gemma";
  h.api_key_env = "LIBER_TEST_NO_SUCH_KEY";
  h.in_flight = 2;
  h.timeout_s = 120;
  h.max_retries = 5;
  h.backoff_base_s = 0.1;
  h.backoff_max_s = 0.5;
  h.eject_after = 1;
  h.eject_s = 1;
  auto engine = make_http_engine(h, HttpEngineConfig{});
  LearnOptions learn;
  learn.candidates = 1;  // one call per partition: calls count partitions
  learn.max_retries = 0;
  learn.max_tokens = 64;
  std::atomic<int> records{0};
  learn.on_record = [&](const InterestRecord&) { ++records; };
  bool restarted = false;
  std::thread chaos([&] {
    while (records.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    a.kill_hard();  // its requests in flight see their connection drop
    std::this_thread::sleep_for(std::chrono::seconds(2));
    restarted = a.start(120);
  });
  const CostReport cost = learn_interests(*store, *engine, learn);
  chaos.join();
  EXPECT_TRUE(restarted) << a.log_path();
  const HttpStats s = engine->stats();
  std::fprintf(stderr, "fleet test: %lld attempts, %lld retries, %lld succeeded; server A %lld attempts "
                       "(%lld failed, %lld ejections), server B %lld attempts\n",
               static_cast<long long>(s.attempts), static_cast<long long>(s.retries),
               static_cast<long long>(s.succeeded), static_cast<long long>(s.endpoints[0].attempts),
               static_cast<long long>(s.endpoints[0].failures), static_cast<long long>(s.endpoints[0].ejections),
               static_cast<long long>(s.endpoints[1].attempts));
  const auto variants = list_variants(*store);
  ASSERT_EQ(variants.size(), 1u);
  EXPECT_EQ(engine->model_id(), "http:gemma@fleet");
  for (uint32_t u = 1; u <= 4; ++u) {
    const auto recs = read_interests(*store, variants[0].id(), log.users.ids.key(u));
    EXPECT_EQ(recs.size(), 2u) << u;
    for (const InterestRecord& r : recs) EXPECT_FALSE(r.call_failed()) << r.error;
  }
  EXPECT_EQ(cost.calls, 8u);
  EXPECT_EQ(s.succeeded, 8);
  EXPECT_GE(s.endpoints[0].failures, 1);  // the kill was seen
  EXPECT_GE(s.endpoints[1].attempts, 4);
}

}  // namespace
}  // namespace liber
