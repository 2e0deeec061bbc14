#include "liber/llm.h"

namespace liber {
namespace {

// A fixed list of independent requests as a RequestSource.
class ListSource : public RequestSource {
 public:
  ListSource(const std::vector<GenerationRequest>& requests,
             const std::function<void(std::size_t, const GenerationResult&)>& on_done)
      : requests_(requests), on_done_(on_done), results_(requests.size()) {}

  std::optional<std::pair<uint64_t, GenerationRequest>> next() override {
    if (next_ >= requests_.size()) return std::nullopt;
    const std::size_t i = next_++;
    return std::make_pair(static_cast<uint64_t>(i), requests_[i]);
  }
  void complete(uint64_t tag, GenerationResult result) override {
    results_[tag] = std::move(result);
    if (on_done_) on_done_(tag, results_[tag]);
  }
  bool exhausted() const override { return next_ >= requests_.size(); }
  std::vector<GenerationResult> take() { return std::move(results_); }

 private:
  const std::vector<GenerationRequest>& requests_;
  const std::function<void(std::size_t, const GenerationResult&)>& on_done_;
  std::vector<GenerationResult> results_;
  std::size_t next_ = 0;
};

}  // namespace

std::vector<GenerationResult> LlmEngine::generate(
    const std::vector<GenerationRequest>& requests,
    const std::function<void(std::size_t, const GenerationResult&)>& on_done) {
  ListSource source(requests, on_done);
  run(source);
  return source.take();
}

}  // namespace liber
