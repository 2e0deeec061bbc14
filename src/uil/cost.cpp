// The cost report of a learn run: its JSON, sums over runs, the text for the CLI, and the
// naive re-summarisation baseline it is compared with.
#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/uil.h"
#include "liber/uil/keys.h"
#include "liber/uil/work.h"

namespace liber {

namespace uil {

// Prompt tokens of the naive alternative: for each processed (user, partition i), one prompt
// holding all behaviors of partitions 0..i (no previous summary, no truncation).
void naive_cost(const LlmEngine& engine, const BehaviorLog& log, const PromptTemplate& tmpl,
                const std::vector<UserWork>& users,
                const std::vector<std::pair<std::size_t, std::size_t>>& processed,
                std::size_t exact_bytes, CostReport& cost) {
  cost.naive_calls = processed.size();
  if (processed.empty()) return;
  // Rendered size of every partition's behavior block, to choose exact vs block sums.
  std::map<std::pair<std::size_t, std::size_t>, std::string> blocks;
  auto block = [&](std::size_t u, std::size_t p) -> const std::string& {
    auto key = std::make_pair(u, p);
    auto it = blocks.find(key);
    if (it != blocks.end()) return it->second;
    const auto texts = behavior_texts(log, users[u].parts[p].events);
    return blocks.emplace(key, render_behaviors(texts, log.like_threshold, tmpl.behavior)).first->second;
  };
  std::size_t total_bytes = 0;
  for (const auto& [u, p] : processed)
    for (std::size_t j = 0; j <= p; ++j) total_bytes += block(u, j).size() + 1;
  cost.naive_exact = total_bytes <= exact_bytes;
  uint64_t tokens = 0;
  if (cost.naive_exact) {
    for (const auto& [u, p] : processed) {
      std::vector<BehaviorText> all;
      for (std::size_t j = 0; j <= p; ++j) {
        auto t = behavior_texts(log, users[u].parts[j].events);
        std::move(t.begin(), t.end(), std::back_inserter(all));
      }
      tokens += static_cast<uint64_t>(engine.count_tokens(
          render_interest_prompt(tmpl, users[u].description, "", all, log.like_threshold)));
    }
  } else {
    // Estimate: the prompt without behaviors + the sum of each block's tokens.
    std::map<std::pair<std::size_t, std::size_t>, int> block_tokens;
    const int empty_user = engine.count_tokens({{"user", ""}});
    for (const auto& [u, p] : processed) {
      tokens += static_cast<uint64_t>(engine.count_tokens(
          render_interest_prompt(tmpl, users[u].description, "", {}, log.like_threshold)));
      for (std::size_t j = 0; j <= p; ++j) {
        auto key = std::make_pair(u, j);
        auto it = block_tokens.find(key);
        if (it == block_tokens.end())
          it = block_tokens
                   .emplace(key, std::max(0, engine.count_tokens({{"user", block(u, j)}}) -
                                                 empty_user + 1))
                   .first;
        tokens += static_cast<uint64_t>(it->second);
      }
    }
  }
  cost.naive_prompt_tokens = tokens;
}

}  // namespace uil

double CostReport::tokens_per_1k_behaviors() const {
  if (behaviors == 0) return 0;
  return 1000.0 * static_cast<double>(interest_prompt_tokens + completion_tokens -
                                      item_completion_tokens) /
         static_cast<double>(behaviors);
}

double CostReport::naive_ratio() const {
  if (interest_prompt_tokens == 0) return 0;
  return static_cast<double>(naive_prompt_tokens) / static_cast<double>(interest_prompt_tokens);
}

// Labels are copied, counts added (operator+=); JSON holds both.
#define LIBER_COST_LABELS(X) X(variant) X(variant_name)
#define LIBER_COST_FIELDS(X)                                                              \
  X(calls) X(prompt_tokens) X(completion_tokens) X(cached_prompt_tokens) X(interest_calls)  \
  X(interest_prompt_tokens) X(item_calls) X(item_prompt_tokens) X(item_completion_tokens)   \
  X(users) X(partitions_total) X(partitions_already) X(partitions_ok) X(partitions_failed)  \
  X(partitions_from_cache) X(behaviors) X(behaviors_dropped) X(items_total) X(items_already) \
  X(items_ok) X(items_failed) X(wall_s) X(interest_wall_s) X(stopped) X(naive_calls)        \
  X(naive_prompt_tokens) X(naive_exact) X(partitions_verified) X(partitions_rejected)       \
  X(guard_calls) X(guard_prompt_tokens) X(guard_completion_tokens)

std::string CostReport::to_json() const {
  nlohmann::json j;
#define X(f) j[#f] = f;
  LIBER_COST_LABELS(X)
  LIBER_COST_FIELDS(X)
#undef X
  j["rejection_reasons"] = rejection_reasons;
  return j.dump();
}

CostReport CostReport::from_json(std::string_view text) {
  CostReport c;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
#define X(f) if (j.contains(#f)) j.at(#f).get_to(c.f);
    LIBER_COST_LABELS(X)
    LIBER_COST_FIELDS(X)
#undef X
    if (j.contains("rejection_reasons")) j.at("rejection_reasons").get_to(c.rejection_reasons);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Internal, std::string("corrupt state: learn run report: ") + e.what());
  }
  return c;
}

CostReport& CostReport::operator+=(const CostReport& o) {
#define X(f) f = f + o.f;
  LIBER_COST_FIELDS(X)
#undef X
  for (const auto& [kind, n] : o.rejection_reasons) rejection_reasons[kind] += n;
  if (variant.empty()) variant = o.variant, variant_name = o.variant_name;
  return *this;
}
#undef LIBER_COST_FIELDS
#undef LIBER_COST_LABELS

std::string CostReport::summary() const {
  std::string s;
  s += fmt::format("users        {} selected, {} partitions ({} already done)\n", users,
                   partitions_total, partitions_already);
  s += fmt::format("partitions   {} ok ({} from cache), {} failed, {} behaviors ({} dropped to fit)\n",
                   partitions_ok, partitions_from_cache, partitions_failed, behaviors,
                   behaviors_dropped);
  if (partitions_ok > 0) {
    s += fmt::format("verifier     {} verified, {} rejected ({:.1f}% verified)", partitions_verified,
                     partitions_rejected,
                     100.0 * static_cast<double>(partitions_verified) / static_cast<double>(partitions_ok));
    std::string why;
    for (const auto& [kind, n] : rejection_reasons) why += fmt::format("{}{} {}", why.empty() ? "" : ", ", kind, n);
    s += why.empty() ? "\n" : fmt::format("; reasons: {}\n", why);
    s += fmt::format("guard        {} extra candidates, {} prompt + {} completion tokens\n", guard_calls,
                     guard_prompt_tokens, guard_completion_tokens);
  }
  if (items_total > 0 || items_ok + items_failed > 0)
    s += fmt::format("items        {} seen, {} already described, {} ok, {} failed\n",
                     items_total, items_already, items_ok, items_failed);
  s += fmt::format("llm calls    {} ({} interest, {} item)\n", calls, interest_calls, item_calls);
  s += fmt::format("tokens       prompt {} (cached {}), completion {}\n", prompt_tokens,
                   cached_prompt_tokens, completion_tokens);
  s += fmt::format("per 1k beh.  {:.0f} tokens (cascade prompt + completion per 1,000 behaviors)\n",
                   tokens_per_1k_behaviors());
  const double rate = wall_s > 0 ? static_cast<double>(prompt_tokens + completion_tokens) / wall_s : 0;
  s += fmt::format("wall time    {:.1f}s (cascade {:.1f}s), {:.0f} tokens/s\n", wall_s,
                   interest_wall_s, rate);
  s += fmt::format("naive        {} calls, {} prompt tokens ({}) vs cascade {} prompt tokens: "
                   "{:.2f}x\n",
                   naive_calls, naive_prompt_tokens, naive_exact ? "exact" : "block-sum estimate",
                   interest_prompt_tokens, naive_ratio());
  if (stopped) s += "stopped      by request; rerun to continue\n";
  return s;
}

std::vector<CostReport> read_learn_runs(Store& store, std::string_view variant_id) {
  std::vector<CostReport> out;
  store.scan(kProgressFamily, fmt::format("uil.run/{}/", variant_id),
             [&](std::string_view, std::string_view v) {
               out.push_back(CostReport::from_json(v));
               return true;
             });
  return out;
}

}  // namespace liber
