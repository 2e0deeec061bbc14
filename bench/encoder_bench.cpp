// The knowledge encoder's throughput: the default sentence encoder (all-MiniLM-L6-v2, GGUF
// F32) beside the previous encoder (Gemma 3 270M Q4_K_M, mean-pooled hidden states) on the
// same texts, in the same run, through LlmEngine::embed as liber encode calls it.
//
//   encoder_bench [--texts N] [--words W] [--threads T]
//
// Texts are interest-summary-like sentences of about W words built from a fixed
// vocabulary (deterministic). Prints texts/s and tokens/s per encoder and their ratio.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "liber/llm.h"

namespace {

std::vector<std::string> make_texts(int n, int words) {
  const char* vocab[] = {"the", "user", "enjoys", "dark", "crime", "dramas", "and", "light",
                         "romantic", "comedies", "from", "the", "nineties", "rates", "science",
                         "fiction", "highly", "dislikes", "horror", "musicals", "westerns",
                         "recently", "moved", "towards", "animated", "family", "films", "with",
                         "strong", "characters", "war", "thrillers", "documentaries"};
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::size_t> pick(0, std::size(vocab) - 1);
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    std::string t;
    for (int w = 0; w < words; ++w) {
      if (w) t += ' ';
      t += vocab[pick(rng)];
    }
    out.push_back(t + ".");
  }
  return out;
}

void measure(const char* name, const std::string& path, const std::vector<std::string>& texts,
             int threads, double* texts_per_s) {
  liber::LlamaOptions o;
  o.model_path = path;
  o.embeddings = true;
  o.threads = threads;
  auto engine = liber::make_llama_engine(o);
  engine->embed({texts[0]});  // warm-up: context creation, first graph
  const auto t0 = std::chrono::steady_clock::now();
  const auto out = engine->embed(texts);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  long tokens = 0, failed = 0;
  for (const auto& r : out) {
    tokens += r.tokens;
    failed += !r.error.empty();
  }
  *texts_per_s = texts.size() / s;
  std::printf("%-34s %5zu texts %7ld tokens %7.2fs %8.1f texts/s %9.0f tokens/s  dim %zu%s\n",
              name, texts.size(), tokens, s, *texts_per_s, tokens / s, out[0].vector.size(),
              failed ? "  (some failed)" : "");
}

}  // namespace

int main(int argc, char** argv) {
  int n = 256, words = 40, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--texts") n = std::atoi(argv[i + 1]);
    else if (a == "--words") words = std::atoi(argv[i + 1]);
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: encoder_bench [--texts N] [--words W] [--threads T]\n");
      return 2;
    }
  }
  const auto texts = make_texts(n, words);
  std::printf("encoder_bench: %d texts of %d words, threads %d (0 = all cores)\n", n, words, threads);
  double minilm = 0, gemma = 0;
  measure("all-MiniLM-L6-v2 (default)", liber::default_encoder_path(), texts, threads, &minilm);
  // The previous default: fewer texts, it is slow.
  const std::vector<std::string> few(texts.begin(), texts.begin() + std::min<std::size_t>(texts.size(), 48));
  measure("gemma-3-270m mean-pooled (before)", liber::default_model_path(), few, threads, &gemma);
  std::printf("ratio: %.1fx the texts/s of the Gemma path\n", minilm / gemma);
}
