// The OpenAI-compatible HTTP engine against the real server llama-cpp-python ships
// (python -m llama_cpp.server, started per test process by llm_server.h), never a mock.
// Skipped only when liber's venv or the default model is missing (failed under CI).
// The retry rules run against tests/llm/status_server.py, a real HTTP server that answers
// scripted statuses, so what the engine sent is counted on the server's side.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/http_engine.h"
#include "helpers/expect.h"
#include "llm/llm_server.h"

namespace liber {
namespace {

using test::LlmServer;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

GenerationRequest chat(const std::string& user, int max_tokens = 16) {
  GenerationRequest r;
  r.messages = {{"system", "You are a helpful assistant."}, {"user", user}};
  r.shared_prefix_messages = 1;
  r.max_tokens = max_tokens;
  r.temperature = 0.0f;
  return r;
}

class HttpEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    reason_ = LlmServer::unavailable_reason();
    if (!reason_.empty()) return;
    // One process serves both chat and embeddings (--embedding true keeps chat working).
    server_ = new LlmServer({"--embedding", "true"});
    started_ = server_->start(60);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!reason_.empty()) LIBER_SKIP_UNLESS_CI(reason_);
    ASSERT_TRUE(started_) << "llama_cpp.server did not answer GET /v1/models within 60 s; log: "
                          << server_->log_path();
    if (!server_->running()) ASSERT_TRUE(server_->start(60)) << server_->log_path();
  }

  HttpOptions options() const {
    HttpOptions o;
    o.base_url = server_->base_url();
    o.model = "gemma-3-270m";
    o.api_key_env = "LIBER_TEST_NO_SUCH_KEY";
    o.in_flight = 3;
    o.timeout_s = 60;
    o.max_retries = 3;
    o.backoff_base_s = 0.1;
    o.backoff_max_s = 1;
    return o;
  }

  static inline std::string reason_;
  static inline LlmServer* server_ = nullptr;
  static inline bool started_ = false;
};

TEST_F(HttpEngineTest, ChatCompletionReturnsTextAndUsage) {
  auto engine = make_http_engine(options(), HttpEngineConfig{});
  EXPECT_EQ(engine->model_id(), "http:gemma-3-270m@127.0.0.1:" + std::to_string(server_->port()));
  // llama_cpp.server's /v1/models names no context length: the configured default.
  EXPECT_EQ(engine->context_length(), HttpEngineConfig{}.default_context_length);
  const GenerationRequest req = chat("Write one sentence about cats.");
  EXPECT_GT(engine->count_tokens(req.messages), 10);

  const auto results = engine->generate({req});
  ASSERT_EQ(results.size(), 1u);
  const GenerationResult& r = results[0];
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_FALSE(r.text.empty());
  EXPECT_GT(r.prompt_tokens, 5);
  EXPECT_GT(r.completion_tokens, 0);
  EXPECT_LE(r.completion_tokens, 16);
  EXPECT_EQ(r.truncated, r.completion_tokens == 16);
  EXPECT_GT(r.latency_s, 0.0);
  EXPECT_EQ(engine->stats().attempts, 1);
  EXPECT_EQ(engine->stats().succeeded, 1);

  // count_tokens through llama_cpp.server's /extras/tokenize: "user\nhello world\n" is a
  // handful of tokens, plus 4 per message + 2.
  HttpEngineConfig cfg;
  cfg.tokenize_endpoint = true;
  auto counted = make_http_engine(options(), cfg);
  const int n = counted->count_tokens({{"user", "hello world"}});
  EXPECT_GE(n, 3 + 6);
  EXPECT_LE(n, 10 + 6);
}

TEST_F(HttpEngineTest, InFlightRequestsAllCompleteInRequestOrder) {
  auto engine = make_http_engine(options(), HttpEngineConfig{});
  // Prompts of growing length: prompt_tokens must grow with the request index, which
  // proves each result landed in its own request's slot.
  std::vector<GenerationRequest> reqs;
  std::string topic = "Name a color";
  for (int i = 0; i < 5; ++i) {
    reqs.push_back(chat(topic + ".", 8));
    topic += " that you like very much";
  }
  std::vector<int> calls(reqs.size(), 0);
  std::vector<std::size_t> order;
  const auto results = engine->generate(reqs, [&](std::size_t i, const GenerationResult& r) {
    ASSERT_LT(i, calls.size());
    ++calls[i];
    order.push_back(i);
    EXPECT_TRUE(r.error.empty()) << r.error;
  });
  ASSERT_EQ(results.size(), reqs.size());
  EXPECT_EQ(order.size(), reqs.size());
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(calls[i], 1) << i;
    EXPECT_TRUE(results[i].error.empty()) << results[i].error;
    EXPECT_GT(results[i].completion_tokens, 0) << i;
    if (i > 0) EXPECT_GT(results[i].prompt_tokens, results[i - 1].prompt_tokens) << i;
  }
  EXPECT_EQ(engine->stats().attempts, 5);
  EXPECT_EQ(engine->stats().retries, 0);
}

TEST_F(HttpEngineTest, JsonSchemaOutputParsesWithRequiredKeys) {
  // Ask for the json_schema dialect first: llama_cpp.server refuses it (a 500 naming
  // response_format), the engine falls back to json_object+schema, which it grammar-
  // constrains. Grammar sampling over Gemma's 262k vocabulary is slow (~1-3 s per token
  // here), so the schema is one boolean.
  HttpEngineConfig cfg;
  cfg.json_format = HttpJsonFormat::JsonSchema;
  auto engine = make_http_engine(options(), cfg);
  GenerationRequest req = chat("Is a cat an animal? Answer in JSON.", 12);
  req.json_schema =
      R"({"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]})";
  const auto results = engine->generate({req});
  ASSERT_EQ(results.size(), 1u);
  const GenerationResult& r = results[0];
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_FALSE(r.truncated) << r.text;
  const auto j = nlohmann::json::parse(r.text, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.text;
  ASSERT_TRUE(j.is_object()) << r.text;
  ASSERT_TRUE(j.contains("ok")) << r.text;
  EXPECT_TRUE(j["ok"].is_boolean()) << r.text;
  EXPECT_EQ(engine->stats().format_fallbacks, 1);
  EXPECT_EQ(engine->json_format(), HttpJsonFormat::JsonObjectSchema);
  EXPECT_EQ(engine->stats().retries, 0);
}

TEST_F(HttpEngineTest, ClientErrorIsNotRetried) {
  HttpOptions o = options();
  o.base_url = "http://127.0.0.1:" + std::to_string(server_->port()) + "/nope";  // 404
  o.max_retries = 5;
  o.backoff_base_s = 1;
  auto engine = make_http_engine(o, HttpEngineConfig{});
  const auto results = engine->generate({chat("hi", 4), chat("hello", 4)});
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_NE(r.error.find("HTTP 404"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("Not Found"), std::string::npos) << r.error;  // the server's message
    EXPECT_NE(r.error.find(o.base_url + "/chat/completions"), std::string::npos) << r.error;
  }
  EXPECT_EQ(engine->stats().attempts, 2);
  EXPECT_EQ(engine->stats().retries, 0);
  EXPECT_EQ(engine->stats().failed, 2);
}

TEST_F(HttpEngineTest, ServerKilledMidRunAndRestartedCompletes) {
  HttpOptions o = options();
  o.in_flight = 2;
  o.max_retries = 40;
  o.backoff_base_s = 0.1;
  o.backoff_max_s = 1.0;
  auto engine = make_http_engine(o, HttpEngineConfig{});
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 6; ++i) reqs.push_back(chat("Tell me about the number " + std::to_string(i) + ".", 16));

  std::atomic<int> done{0};
  // back_at: when the restarted server answered GET /v1/models (it queues behind the
  // retried completions, so it can come after requests already succeed again).
  double killed_at = 0, back_at = 0;
  bool restarted = false;
  const auto t0 = Clock::now();
  std::thread chaos([&] {
    while (done.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    server_->kill_hard();  // requests in flight now see their connection drop
    killed_at = seconds_since(t0);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    restarted = server_->start(60);
    back_at = seconds_since(t0);
  });
  std::string completions;  // "index@seconds" in completion order
  const auto results = engine->generate(reqs, [&](std::size_t i, const GenerationResult&) {
    completions += " " + std::to_string(i) + "@" + std::to_string(seconds_since(t0)).substr(0, 5);
    done.fetch_add(1);
  });
  const double total = seconds_since(t0);
  chaos.join();
  ASSERT_TRUE(restarted) << server_->log_path();
  ASSERT_EQ(results.size(), reqs.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].error.empty()) << i << ": " << results[i].error;
    EXPECT_GT(results[i].completion_tokens, 0) << i;
  }
  const HttpStats s = engine->stats();
  EXPECT_GE(s.retries, 1);
  EXPECT_EQ(s.succeeded, 6);
  EXPECT_EQ(s.failed, 0);
  std::cout << "[kill/restart] killed at " << killed_at << " s, serving again at " << back_at
            << " s, run finished at " << total << " s; attempts " << s.attempts << ", retries "
            << s.retries << "; completions:" << completions << "\n";
  RecordProperty("killed_at_s", std::to_string(killed_at));
  RecordProperty("back_at_s", std::to_string(back_at));
  RecordProperty("total_s", std::to_string(total));
  RecordProperty("retries", std::to_string(s.retries));
}

TEST_F(HttpEngineTest, EmbeddingsReturnPooledVectors) {
  HttpEngineConfig cfg;
  cfg.embed_batch = 2;  // three texts: two requests
  auto engine = make_http_engine(options(), cfg);
  const std::vector<std::string> texts = {"hello world", "a user who loves science fiction films",
                                          "hello world"};
  const auto out = engine->embed(texts);
  ASSERT_EQ(out.size(), texts.size());
  for (const auto& e : out) {
    ASSERT_TRUE(e.error.empty()) << e.error;
    EXPECT_GT(e.tokens, 0);
    ASSERT_FALSE(e.vector.empty());
    for (float v : e.vector) ASSERT_TRUE(std::isfinite(v));
  }
  EXPECT_EQ(out[0].vector.size(), out[1].vector.size());
  EXPECT_NE(out[0].vector, out[1].vector);
  // Same text, separate requests: the same vector.
  ASSERT_EQ(out[0].vector.size(), out[2].vector.size());
  for (std::size_t d = 0; d < out[0].vector.size(); ++d)
    EXPECT_NEAR(out[0].vector[d], out[2].vector[d], 1e-3f) << d;
  EXPECT_GT(out[1].tokens, out[0].tokens);
  EXPECT_EQ(engine->stats().attempts, 2);
}

// No server: nothing listens on the port. The request fails after max_retries retries
// with an error naming the URL; nothing throws.
TEST(HttpEngineNoServer, ConnectionRefusedGivesErrorNamingUrl) {
  HttpOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(LlmServer::free_port()) + "/v1";
  o.model = "m";
  o.max_retries = 2;
  o.backoff_base_s = 0.01;
  o.backoff_max_s = 0.05;
  auto engine = make_http_engine(o, HttpEngineConfig{});
  std::vector<GenerationResult> results;
  ASSERT_NO_THROW(results = engine->generate({chat("hi", 4)}));
  ASSERT_EQ(results.size(), 1u);
  const std::string& err = results[0].error;
  EXPECT_NE(err.find(o.base_url + "/chat/completions"), std::string::npos) << err;
  EXPECT_NE(err.find("gave up after 3 attempts"), std::string::npos) << err;
  EXPECT_EQ(engine->stats().attempts, 3);
  EXPECT_EQ(engine->stats().retries, 2);

  std::vector<EmbeddingResult> emb;
  ASSERT_NO_THROW(emb = engine->embed({"x"}));
  ASSERT_EQ(emb.size(), 1u);
  EXPECT_NE(emb[0].error.find(o.base_url + "/embeddings"), std::string::npos) << emb[0].error;
  // No server to ask: the default context length.
  EXPECT_EQ(engine->context_length(), 8192);
}

// A socket that accepts connections (the kernel's backlog) but never answers: every
// attempt hits the per-request timeout, is retried, and the request then fails.
TEST(HttpEngineNoServer, TimeoutIsRetriedThenFails) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  HttpOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/v1";
  o.model = "m";
  o.timeout_s = 0.3;
  o.max_retries = 1;
  o.backoff_base_s = 0.01;
  o.backoff_max_s = 0.01;
  o.in_flight = 2;
  auto engine = make_http_engine(o, HttpEngineConfig{});
  const auto results = engine->generate({chat("a", 4), chat("b", 4)});
  ::close(fd);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_NE(r.error.find("Timeout"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("gave up after 2 attempts"), std::string::npos) << r.error;
  }
  EXPECT_EQ(engine->stats().attempts, 4);
  EXPECT_EQ(engine->stats().retries, 2);
}

TEST(HttpEngineNoServer, BadBaseUrlThrowsConfigError) {
  HttpOptions o;
  o.base_url = "";
  EXPECT_THROW(make_http_engine(o), Error);
  o.base_url = "http://127.0.0.1:9/v1, http://127.0.0.1:9/v1/";  // one server twice
  EXPECT_THROW(make_http_engine(o), Error);
  o.base_url = "http://127.0.0.1:9/v1,https://";  // the second is no URL
  EXPECT_THROW(make_http_engine(o), Error);
  o.base_url = "http://127.0.0.1:9/s/429,200/v1, http://127.0.0.1:8/v1";  // a comma in a path
  o.model = "m";
  auto engine = make_http_engine(o, HttpEngineConfig{});
  ASSERT_EQ(engine->stats().endpoints.size(), 2u);
  EXPECT_EQ(engine->stats().endpoints[0].base_url, "http://127.0.0.1:9/s/429,200/v1");
  EXPECT_EQ(engine->model_id(), "http:m@fleet");
}

// ---- Retry rules: 429 and 5xx retried with backoff (Retry-After honoured), other 4xx not.
class HttpRetryRules : public ::testing::Test {
 public:
  static int port() { return server_->port(); }

 protected:
  static void SetUpTestSuite() {
    server_ = LlmServer::scripted().release();
    started_ = server_->start(20);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(started_) << "status_server.py did not start"; }

  // An engine whose requests go to the script `script` (see status_server.py).
  static std::unique_ptr<HttpEngine> engine_for(const std::string& script, int max_retries = 3) {
    HttpOptions o;
    o.base_url = "http://127.0.0.1:" + std::to_string(server_->port()) + "/s/" + script + "/v1";
    o.model = "scripted";
    o.api_key_env = "LIBER_TEST_NO_SUCH_KEY";
    o.in_flight = 1;
    o.timeout_s = 10;
    o.max_retries = max_retries;
    o.backoff_base_s = 0.01;
    o.backoff_max_s = 0.02;
    return make_http_engine(o, HttpEngineConfig{});
  }
  // Arrival times (s) of the requests the server saw for `script`.
  static std::vector<double> arrivals(const std::string& script) {
    const std::string response = server_->get("/count/" + script);
    const auto body = response.find("\r\n\r\n");
    if (body == std::string::npos) return {};
    return nlohmann::json::parse(response.substr(body + 4))["times"].get<std::vector<double>>();
  }

  static inline LlmServer* server_ = nullptr;
  static inline bool started_ = false;
};

TEST_F(HttpRetryRules, TooManyRequestsAndServerErrorsAreRetried) {
  for (const std::string script : {"429,429,200", "500,502,503,200"}) {
    auto engine = engine_for(script);
    const auto results = engine->generate({chat("hi", 4)});
    ASSERT_EQ(results.size(), 1u);
    EXPECT_TRUE(results[0].error.empty()) << script << ": " << results[0].error;
    EXPECT_EQ(results[0].text, "ok") << script;
    const auto statuses = std::count(script.begin(), script.end(), ',') + 1;
    EXPECT_EQ(arrivals(script).size(), static_cast<std::size_t>(statuses)) << script;
    EXPECT_EQ(engine->stats().attempts, statuses) << script;
    EXPECT_EQ(engine->stats().retries, statuses - 1) << script;
    EXPECT_EQ(engine->stats().succeeded, 1) << script;
  }
}

TEST_F(HttpRetryRules, OtherClientErrorsAreNotRetried) {
  for (const std::string script : {"400", "401", "403", "404", "422"}) {
    auto engine = engine_for(script);
    const auto results = engine->generate({chat("hi", 4)});
    ASSERT_EQ(results.size(), 1u);
    EXPECT_NE(results[0].error.find("HTTP " + script), std::string::npos) << results[0].error;
    EXPECT_NE(results[0].error.find("scripted status " + script), std::string::npos)
        << results[0].error;  // the server's own message
    EXPECT_EQ(arrivals(script).size(), 1u) << script;
    EXPECT_EQ(engine->stats().retries, 0) << script;
    EXPECT_EQ(engine->stats().failed, 1) << script;
  }
}

TEST_F(HttpRetryRules, PersistentServerErrorGivesUpAfterMaxRetries) {
  auto engine = engine_for("503", 2);
  const auto results = engine->generate({chat("hi", 4)});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_NE(results[0].error.find("HTTP 503"), std::string::npos) << results[0].error;
  EXPECT_NE(results[0].error.find("gave up after 3 attempts"), std::string::npos) << results[0].error;
  EXPECT_EQ(arrivals("503").size(), 3u);
  EXPECT_EQ(engine->stats().failed, 1);
}

// Retry-After replaces the (here 10-20 ms) backoff: the server sees the second request
// at least a second after the first.
TEST_F(HttpRetryRules, RetryAfterIsHonoured) {
  auto engine = engine_for("429r1,200");
  const auto results = engine->generate({chat("hi", 4)});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].error.empty()) << results[0].error;
  const auto t = arrivals("429r1,200");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_GE(t[1] - t[0], 0.95);
}

// ---- A fleet of servers -------------------------------------------------------------
// Each script path of the scripted server is one "server" of the fleet: what each received
// is counted on the server's side.

std::unique_ptr<HttpEngine> fleet_engine(const std::vector<std::string>& scripts, int in_flight,
                                         int eject_after, double eject_s) {
  HttpOptions o;
  for (const std::string& s : scripts)
    o.base_url += (o.base_url.empty() ? "" : ",") + ("http://127.0.0.1:" +
                  std::to_string(HttpRetryRules::port()) + "/s/" + s + "/v1");
  o.model = "scripted";
  o.api_key_env = "LIBER_TEST_NO_SUCH_KEY";
  o.in_flight = in_flight;
  o.timeout_s = 10;
  o.max_retries = 3;
  o.backoff_base_s = 0.01;
  o.backoff_max_s = 0.02;
  o.eject_after = eject_after;
  o.eject_s = eject_s;
  return make_http_engine(o, HttpEngineConfig{});
}

std::vector<GenerationRequest> chats(int n) {
  return std::vector<GenerationRequest>(static_cast<std::size_t>(n), chat("hi", 4));
}

using HttpFleet = HttpRetryRules;

TEST_F(HttpFleet, SpreadsRequestsByFewestInFlight) {
  // Two servers as slow as each other, two slots each: eight requests, four each.
  auto engine = fleet_engine({"200d100,200d100", "200d100,200d100,200d100"}, 2, 3, 5);
  EXPECT_EQ(engine->model_id(), "http:scripted@fleet");  // the model, whichever servers
  const auto results = engine->generate(chats(8));
  for (const auto& r : results) EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(arrivals("200d100,200d100").size(), 4u);
  EXPECT_EQ(arrivals("200d100,200d100,200d100").size(), 4u);
  const HttpStats s = engine->stats();
  ASSERT_EQ(s.endpoints.size(), 2u);
  EXPECT_EQ(s.endpoints[0].attempts, 4);
  EXPECT_EQ(s.endpoints[1].attempts, 4);
}

TEST_F(HttpFleet, AFailingServerIsEjectedAndItsRequestsSucceedElsewhere) {
  // The second server answers 503 forever: after two failures in a row it gets nothing
  // (beyond what it had in flight then: two slots, so at most one more).
  auto engine = fleet_engine({"200,200,200,200", "503,503,503"}, 2, 2, 60);
  const auto results = engine->generate(chats(20));
  for (const auto& r : results) EXPECT_TRUE(r.error.empty()) << r.error;
  const std::size_t failed = arrivals("503,503,503").size();
  EXPECT_GE(failed, 2u);
  EXPECT_LE(failed, 3u);
  EXPECT_EQ(arrivals("200,200,200,200").size(), 20u);  // every request, the failed ones resent
  const HttpStats s = engine->stats();
  EXPECT_EQ(s.endpoints[1].failures, static_cast<int64_t>(failed));
  EXPECT_EQ(s.endpoints[1].ejections, 1);
  EXPECT_TRUE(s.endpoints[1].ejected);
  EXPECT_EQ(s.retries, static_cast<int64_t>(failed));
  EXPECT_EQ(s.succeeded, 20);
}

TEST_F(HttpFleet, AnEjectedServerIsProbedAndComesBack) {
  // The second server fails twice, then serves: ejected for 0.2 s, probed, back in rotation.
  auto engine = fleet_engine({"200d40,200d40", "503,503,200d40"}, 1, 2, 0.2);
  const auto results = engine->generate(chats(30));  // ~0.8 s on the first server alone
  for (const auto& r : results) EXPECT_TRUE(r.error.empty()) << r.error;
  const HttpStats s = engine->stats();
  EXPECT_EQ(s.endpoints[1].ejections, 1);
  EXPECT_FALSE(s.endpoints[1].ejected);
  EXPECT_GE(arrivals("503,503,200d40").size(), 5u);  // two failures, the probe, and more
  EXPECT_EQ(s.succeeded, 30);
}

TEST_F(HttpFleet, EveryServerDownFailsAfterTheRetries) {
  auto engine = fleet_engine({"503,503,503,503,503", "502,502,502,502,502"}, 1, 10, 60);
  const auto results = engine->generate(chats(1));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_NE(results[0].error.find("gave up after 4 attempts"), std::string::npos) << results[0].error;
  // The retries alternate: each failure goes to the other server.
  EXPECT_EQ(arrivals("503,503,503,503,503").size(), 2u);
  EXPECT_EQ(arrivals("502,502,502,502,502").size(), 2u);
}

}  // namespace
}  // namespace liber
