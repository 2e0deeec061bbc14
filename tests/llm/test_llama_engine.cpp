// The llama.cpp engine on the real default model (Gemma 3 270M Q4_K_M). Skipped when the
// model is not installed (scripts/setup.sh assembles it).
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/chat_format.h"
#include "helpers/expect.h"

namespace liber {
namespace {

std::string model_or_empty() {
  try {
    return default_model_path();
  } catch (const Error&) {
    return {};
  }
}

GenerationRequest simple(const std::string& user, int max_tokens = 24) {
  GenerationRequest r;
  r.messages = {{"user", user}};
  r.max_tokens = max_tokens;
  r.temperature = 0;
  return r;
}

class LlamaEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = model_or_empty();
    if (path.empty()) return;
    LlamaOptions o;
    o.model_path = path;
    o.context = 3072;  // 1024 tokens for each of 3 sequences
    o.parallel = 3;
    o.batch = 512;
    // One thread: on a shared 2-core machine ggml's spinning worker threads slow down
    // several-fold under contention (measured: 1 thread 3x faster than 2 at load 5).
    o.threads = 1;
    engine_ = make_llama_engine(o).release();
  }
  static void TearDownTestSuite() {
    delete engine_;
    engine_ = nullptr;
  }
  void SetUp() override {
    if (!engine_) LIBER_SKIP_UNLESS_CI("default model not installed (scripts/setup.sh)");
  }
  static LlmEngine* engine_;
};
LlmEngine* LlamaEngineTest::engine_ = nullptr;

TEST(ChatFormat, FoldsSystemIntoFirstUserTurn) {
  const auto out = llm::fold_system_messages(
      {{"system", "S1"}, {"system", "S2"}, {"user", "U"}, {"assistant", "A"}, {"user", "V"}});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].role, "user");
  EXPECT_EQ(out[0].content, "S1\n\nS2\n\nU");
  EXPECT_EQ(out[1].role, "assistant");
  EXPECT_EQ(out[2].content, "V");
  const auto only = llm::fold_system_messages({{"system", "S"}});
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0].role, "user");
  EXPECT_EQ(only[0].content, "S");
}

TEST_F(LlamaEngineTest, IdentityAndCounts) {
  const std::string id = engine_->model_id();
  EXPECT_TRUE(id.starts_with("gguf:")) << id;
  EXPECT_EQ(id.size(), id.rfind(':') + 9) << id;  // 8 hex digits at the end
  EXPECT_EQ(engine_->context_length(), 1024);
  const int a = engine_->count_tokens({{"user", "Hello"}});
  const int b = engine_->count_tokens({{"system", "Be brief."}, {"user", "Hello"}});
  EXPECT_GT(a, 2);
  EXPECT_GT(b, a);  // the system text is folded into the user turn, not dropped
}

TEST_F(LlamaEngineTest, GeneratesText) {
  const auto res = engine_->generate({simple("Name three colours.", 16)});
  ASSERT_EQ(res.size(), 1u);
  EXPECT_TRUE(res[0].error.empty()) << res[0].error;
  EXPECT_FALSE(res[0].text.empty());
  EXPECT_GT(res[0].prompt_tokens, 0);
  EXPECT_GT(res[0].completion_tokens, 0);
  EXPECT_LE(res[0].completion_tokens, 16);
  EXPECT_GT(res[0].latency_s, 0);
}

TEST_F(LlamaEngineTest, BatchInOrderWithCallbacks) {
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 6; ++i)
    reqs.push_back(simple(fmt::format("Write one sentence about the number {}.", i + 1), 8 + 2 * i));
  std::vector<int> done;
  const auto res = engine_->generate(
      reqs, [&](std::size_t i, const GenerationResult&) { done.push_back(static_cast<int>(i)); });
  ASSERT_EQ(res.size(), 6u);
  EXPECT_EQ(done.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(res[i].error.empty()) << res[i].error;
    EXPECT_GT(res[i].prompt_tokens, 0);
    EXPECT_GT(res[i].completion_tokens, 0);
    EXPECT_LE(res[i].completion_tokens, 8 + 2 * i);
    if (res[i].truncated) EXPECT_EQ(res[i].completion_tokens, 8 + 2 * i);
  }
  // Batching does not change greedy output: the first request alone gives the same text.
  const auto alone = engine_->generate({reqs[0]});
  EXPECT_EQ(alone[0].text, res[0].text);
}

TEST_F(LlamaEngineTest, GrammarConstrainedJson) {
  GenerationRequest r = simple(
      "Summarise the user's taste in one short phrase and name how it shifted. The user watched "
      "Alien, Aliens, Toy Story and Finding Nemo. Answer in JSON.",
      64);
  r.grammar = R"(root ::= "{" ws "\"summary\"" ws ":" ws str ws "," ws "\"shift\"" ws ":" ws str ws "}"
str ::= "\"" [a-zA-Z0-9 ,.'-]{1,30} "\""
ws ::= [ ]?)";
  const auto res = engine_->generate({r});
  ASSERT_TRUE(res[0].error.empty()) << res[0].error;
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(res[0].text)) << res[0].text;
  EXPECT_TRUE(j.contains("summary")) << res[0].text;
  EXPECT_TRUE(j.contains("shift")) << res[0].text;
  EXPECT_FALSE(res[0].truncated);

  GenerationRequest bad = simple("hi", 4);
  bad.grammar = "root ::= (";
  const auto b = engine_->generate({bad});
  EXPECT_FALSE(b[0].error.empty());
}

TEST_F(LlamaEngineTest, SharedPrefixReuse) {
  // A system prompt longer than Gemma's 512-token sliding window, so the copied prefix
  // exercises both the full and the SWA KV caches.
  std::string instructions = "You are a recommender system analyst. ";
  for (int i = 0; i < 60; ++i)
    instructions += fmt::format("Rule {}: describe interests concisely and factually. ", i);
  auto make = [&](const std::string& user, int shared) {
    GenerationRequest r;
    r.messages = {{"system", instructions}, {"user", user}};
    r.shared_prefix_messages = shared;
    r.max_tokens = 16;
    r.temperature = 0;
    return r;
  };
  const auto with = engine_->generate({make("The user watched Alien and Aliens.", 1),
                                       make("The user watched Toy Story and Cars.", 1)});
  ASSERT_TRUE(with[0].error.empty()) << with[0].error;
  ASSERT_TRUE(with[1].error.empty()) << with[1].error;
  EXPECT_GT(with[0].prompt_tokens, 512);
  EXPECT_EQ(with[0].cached_prompt_tokens, 0);  // it evaluated the prefix
  EXPECT_GT(with[1].cached_prompt_tokens, 500);
  EXPECT_LT(with[1].cached_prompt_tokens, with[1].prompt_tokens);
  // The prefix stays cached across runs.
  const auto again = engine_->generate({make("The user watched Alien and Aliens.", 1)});
  EXPECT_EQ(again[0].cached_prompt_tokens, with[1].cached_prompt_tokens);

  const auto without = engine_->generate({make("The user watched Toy Story and Cars.", 0)});
  EXPECT_EQ(without[0].cached_prompt_tokens, 0);
  EXPECT_EQ(without[0].prompt_tokens, with[1].prompt_tokens);
  EXPECT_FALSE(with[1].text.empty());
  EXPECT_EQ(with[1].text, without[0].text);  // greedy: reuse is exact
  EXPECT_EQ(again[0].text, with[0].text);
}

TEST_F(LlamaEngineTest, OverlongPromptIsAnErrorNotACrash) {
  std::string big;
  for (int i = 0; i < 900; ++i) big += fmt::format("item{} ", i);
  std::vector<GenerationRequest> reqs = {simple("Say hi.", 8), simple(big, 8), simple("Say bye.", 8)};
  const auto res = engine_->generate(reqs);
  ASSERT_EQ(res.size(), 3u);
  EXPECT_TRUE(res[0].error.empty());
  EXPECT_TRUE(res[2].error.empty());
  EXPECT_NE(res[1].error.find("exceeds the context of 1024"), std::string::npos) << res[1].error;
  EXPECT_GT(res[1].prompt_tokens, 1024);
  EXPECT_GT(engine_->count_tokens(reqs[1].messages), 1024);
}

TEST_F(LlamaEngineTest, Embeddings) {
  const auto res = engine_->embed({"I love science fiction films.", "Tax law for small businesses.",
                                   "I love science fiction films."});
  ASSERT_EQ(res.size(), 3u);
  for (const auto& r : res) {
    ASSERT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(r.vector.size(), 640u);  // Gemma 3 270M: n_embd = 640
    EXPECT_GT(r.tokens, 1);
    for (float x : r.vector) ASSERT_TRUE(std::isfinite(x));
  }
  auto cosine = [](const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0, na = 0, nb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      d += double(a[i]) * b[i];
      na += double(a[i]) * a[i];
      nb += double(b[i]) * b[i];
    }
    return d / std::sqrt(na * nb);
  };
  // Identical texts in one batch agree up to batch-shape numerics of the quantised matmuls
  // (cosine ~0.9999, not bit-exact); different texts are clearly apart.
  const double same = cosine(res[0].vector, res[2].vector);
  const double diff = cosine(res[0].vector, res[1].vector);
  EXPECT_GT(same, 0.999);
  EXPECT_LT(diff, same - 0.01) << "same " << same << " diff " << diff;
  // A text embedded alone matches its batched vector to the same tolerance.
  const auto alone = engine_->embed({"I love science fiction films."});
  ASSERT_TRUE(alone[0].error.empty());
  EXPECT_GT(cosine(alone[0].vector, res[0].vector), 0.999);
  // Over-long text: an error result, not a crash.
  std::string big;
  for (int i = 0; i < 1500; ++i) big += "word ";
  const auto over = engine_->embed({big});
  EXPECT_NE(over[0].error.find("exceeds"), std::string::npos) << over[0].error;
}

// B is released only after A completed, and its prompt uses A's answer.
class DependentSource : public RequestSource {
 public:
  std::optional<std::pair<uint64_t, GenerationRequest>> next() override {
    if (!a_sent_) {
      a_sent_ = true;
      return std::make_pair(uint64_t{1}, simple("Name one fruit.", 12));
    }
    if (a_done_ && !b_sent_) {
      b_sent_ = true;
      return std::make_pair(uint64_t{2}, simple("Describe this: " + a_text_, 12));
    }
    return std::nullopt;
  }
  void complete(uint64_t tag, GenerationResult r) override {
    order.push_back(tag);
    if (tag == 1) {
      a_done_ = true;
      a_text_ = r.text;
    }
    results[tag] = std::move(r);
  }
  bool exhausted() const override { return b_sent_; }

  std::vector<uint64_t> order;
  std::map<uint64_t, GenerationResult> results;

 private:
  bool a_sent_ = false, a_done_ = false, b_sent_ = false;
  std::string a_text_;
};

TEST_F(LlamaEngineTest, DependentRequestsThroughSource) {
  DependentSource src;
  engine_->run(src);
  ASSERT_EQ(src.order, (std::vector<uint64_t>{1, 2}));
  EXPECT_TRUE(src.results[1].error.empty());
  EXPECT_TRUE(src.results[2].error.empty());
  EXPECT_GT(src.results[2].completion_tokens, 0);
}

// Nothing ready, not exhausted, nothing in flight: an error instead of a hang.
class StuckSource : public RequestSource {
 public:
  std::optional<std::pair<uint64_t, GenerationRequest>> next() override { return std::nullopt; }
  void complete(uint64_t, GenerationResult) override {}
  bool exhausted() const override { return false; }
};

TEST_F(LlamaEngineTest, StuckSourceThrows) {
  StuckSource src;
  try {
    engine_->run(src);
    FAIL() << "expected liber::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Internal);
  }
  // The engine is still usable afterwards.
  EXPECT_TRUE(engine_->generate({simple("Hi.", 4)})[0].error.empty());
}

}  // namespace
}  // namespace liber
