// The item-knowledge phase: one request per item of the learned partitions, retried when
// the text comes back empty (off by default: no stage reads its vectors yet).
#include <deque>
#include <mutex>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/uil.h"
#include "liber/uil/keys.h"
#include "liber/uil/work.h"

namespace liber {

namespace {

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && static_cast<unsigned char>(s[b]) <= ' ') ++b;
  while (e > b && static_cast<unsigned char>(s[e - 1]) <= ' ') --e;
  return std::string(s.substr(b, e - b));
}

// Item knowledge: one request per item, retried when the text comes back empty.
class ItemSource final : public RequestSource {
 public:
  ItemSource(Store& store, LlmEngine& engine, const LearnOptions& opt, const PromptTemplate& tmpl,
             std::vector<std::pair<std::string, BehaviorText>> items, CostReport& cost)
      : store_(store), opt_(opt), tmpl_(tmpl), items_(std::move(items)), cost_(cost),
        model_(engine.model_id()) {
    attempts_.assign(items_.size(), 0);
    records_.resize(items_.size());
  }

  std::optional<std::pair<uint64_t, GenerationRequest>> next() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (opt_.stop && opt_.stop->load()) return std::nullopt;
    std::size_t i;
    if (!retry_.empty()) {
      i = retry_.front();
      retry_.pop_front();
    } else if (next_ < items_.size()) {
      i = next_++;
      ++in_flight_;
    } else {
      return std::nullopt;
    }
    GenerationRequest r;
    r.messages = render_item_prompt(tmpl_, items_[i].second);
    r.shared_prefix_messages = 1;
    r.max_tokens = opt_.item_max_tokens;
    r.temperature = opt_.temperature;
    r.repeat_penalty = opt_.repeat_penalty;
    r.seed = opt_.seed + static_cast<uint64_t>(attempts_[i]) * 7919;
    if (attempts_[i] == 0) records_[i].prompt_hash = prompt_hash(r.messages);
    return std::make_pair(static_cast<uint64_t>(i), std::move(r));
  }

  void complete(uint64_t tag, GenerationResult result) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::size_t i = tag;
    ++cost_.calls;
    ++cost_.item_calls;
    cost_.prompt_tokens += static_cast<uint64_t>(result.prompt_tokens);
    cost_.item_prompt_tokens += static_cast<uint64_t>(result.prompt_tokens);
    cost_.completion_tokens += static_cast<uint64_t>(result.completion_tokens);
    cost_.item_completion_tokens += static_cast<uint64_t>(result.completion_tokens);
    cost_.cached_prompt_tokens += static_cast<uint64_t>(result.cached_prompt_tokens);
    ItemKnowledge& k = records_[i];
    k.attempts = ++attempts_[i];
    k.prompt_tokens += result.prompt_tokens;
    k.completion_tokens += result.completion_tokens;
    k.latency_s += result.latency_s;
    std::string text = result.error.empty() ? trim(result.text) : std::string();
    if (text.empty() && attempts_[i] <= opt_.max_retries && !(opt_.stop && opt_.stop->load())) {
      retry_.push_back(i);
      return;
    }
    --in_flight_;
    k.item = items_[i].first;
    k.model = model_;
    k.template_version = tmpl_.version;
    k.template_hash = tmpl_.hash();
    k.ok = !text.empty();
    k.text = std::move(text);
    if (!k.ok) k.error = result.error.empty() ? "empty output" : "engine: " + result.error;
    auto batch = store_.new_batch();
    batch->put(uil::kItemKnowledge, k.item, k.to_json());
    store_.write(*batch, opt_.sync);
    ++(k.ok ? cost_.items_ok : cost_.items_failed);
  }

  bool exhausted() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (opt_.stop && opt_.stop->load()) return true;
    return next_ >= items_.size() && retry_.empty() && in_flight_ == 0;
  }

 private:
  Store& store_;
  const LearnOptions& opt_;
  const PromptTemplate& tmpl_;
  std::vector<std::pair<std::string, BehaviorText>> items_;
  CostReport& cost_;
  std::string model_;
  mutable std::mutex mu_;
  std::vector<int> attempts_;
  std::vector<ItemKnowledge> records_;
  std::deque<std::size_t> retry_;
  std::size_t next_ = 0, in_flight_ = 0;
};

}  // namespace

namespace uil {

void learn_item_knowledge(Store& store, const BehaviorLog& log, LlmEngine& engine,
                          const LearnOptions& opt, const PromptTemplate& item_tmpl,
                          const std::vector<UserWork>& users, CostReport& cost) {
  std::vector<std::string> ids;
  std::unordered_set<std::string> seen;
  for (const UserWork& w : users)
    for (const StoredPartition& p : w.parts)
      for (const StoredEvent& e : p.events)
        if (seen.insert(e.item).second) ids.push_back(e.item);
  cost.items_total = ids.size();
  const auto have = store.multi_get(uil::kItemKnowledge, ids);
  std::vector<std::pair<std::string, BehaviorText>> todo;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (have[i] && ItemKnowledge::from_json(*have[i]).ok) {
      ++cost.items_already;
      continue;
    }
    StoredEvent e;
    e.item = ids[i];
    auto texts = behavior_texts(log, std::span<const StoredEvent>(&e, 1));
    todo.emplace_back(ids[i], std::move(texts[0]));
  }
  if (!todo.empty()) {
    ItemSource source(store, engine, opt, item_tmpl, std::move(todo), cost);
    engine.run(source);
  }
}

}  // namespace uil

}  // namespace liber
