// The UIL cascade as a RequestSource (one engine.run for every user), the item-knowledge
// phase, and the cost report with the naive re-summarisation baseline.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/progress.h"
#include "liber/common/bytes.h"
#include "liber/common/hash.h"
#include "liber/uil.h"
#include "liber/uil/keys.h"

namespace liber {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && static_cast<unsigned char>(s[b]) <= ' ') ++b;
  while (e > b && static_cast<unsigned char>(s[e - 1]) <= ' ') --e;
  return std::string(s.substr(b, e - b));
}

// splitmix64, for --sample.
uint64_t mix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

struct UserWork {
  std::string user;
  std::string description;
  std::vector<StoredPartition> parts;        // seq order
  std::map<uint32_t, std::string> ok;        // seq -> summary of an ok record
  std::vector<std::size_t> pending;          // indices into parts without an ok record
  std::size_t next = 0;                      // into pending
};

struct Job {
  std::size_t user = 0;
  std::size_t part = 0;
  int attempt = 0;
  GenerationRequest request;
  InterestRecord record;  // filled as attempts complete
};

std::string cache_key(const std::string& model, const GenerationRequest& r,
                      const std::string& phash) {
  uint64_t h = fnv1a(model);
  h = fnv1a(fmt::format("\x1f{}\x1f{:.4f}\x1f{:.4f}\x1f", r.max_tokens, r.temperature,
                                  r.repeat_penalty), h);
  h = fnv1a(r.grammar, h);
  h = fnv1a("\x1f", h);
  h = fnv1a(phash, h);
  return fmt::format("uil:{:016x}", h);
}

class CascadeSource final : public RequestSource {
 public:
  CascadeSource(Store& store, const BehaviorLog& log, LlmEngine& engine, const LearnOptions& opt,
                const PromptTemplate& tmpl, const Variant& variant, std::vector<UserWork>& users,
                CostReport& cost, ProgressBar* bar)
      : store_(store), log_(log), engine_(engine), opt_(opt), tmpl_(tmpl), variant_(variant),
        variant_id_(variant.id()), users_(users), cost_(cost), bar_(bar), model_(engine.model_id()),
        grammar_(interest_grammar(opt.max_tokens)), schema_(interest_json_schema()) {
    for (std::size_t u = 0; u < users_.size(); ++u)
      if (!users_[u].pending.empty()) ready_.insert(u);
  }

  std::optional<std::pair<uint64_t, GenerationRequest>> next() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped()) return std::nullopt;
    if (!retry_.empty()) {
      const uint64_t tag = retry_.front();
      retry_.pop_front();
      return std::make_pair(tag, jobs_.at(tag).request);
    }
    while (!ready_.empty()) {
      const std::size_t u = *ready_.begin();
      ready_.erase(ready_.begin());
      if (auto req = start(u)) return req;
    }
    return std::nullopt;
  }

  void complete(uint64_t tag, GenerationResult result) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(tag);
    if (it == jobs_.end()) return;
    Job& job = it->second;
    --in_flight_;
    ++cost_.calls;
    ++cost_.interest_calls;
    cost_.prompt_tokens += static_cast<uint64_t>(result.prompt_tokens);
    cost_.interest_prompt_tokens += static_cast<uint64_t>(result.prompt_tokens);
    cost_.completion_tokens += static_cast<uint64_t>(result.completion_tokens);
    cost_.cached_prompt_tokens += static_cast<uint64_t>(result.cached_prompt_tokens);
    InterestRecord& r = job.record;
    r.attempts = job.attempt + 1;
    r.prompt_tokens += result.prompt_tokens;
    r.completion_tokens += result.completion_tokens;
    r.cached_prompt_tokens += result.cached_prompt_tokens;
    r.latency_s += result.latency_s;
    std::string why;
    std::optional<InterestOutput> out;
    if (!result.error.empty()) why = "engine: " + result.error;
    else out = parse_interest_output(result.text, &why);
    if (out) {
      r.ok = true;
      r.error.clear();
      r.summary = std::move(out->summary);
      r.shift = std::move(out->shift);
      finish(job, true);
      jobs_.erase(it);
      return;
    }
    if (result.truncated && why.find("JSON") != std::string::npos) why += " (stopped by max_tokens)";
    if (job.attempt < opt_.max_retries && !stopped()) {
      ++job.attempt;
      job.request.seed = opt_.seed + static_cast<uint64_t>(job.attempt) * 7919;
      retry_.push_back(tag);
      ++in_flight_;
      return;
    }
    r.ok = false;
    r.error = why;
    finish(job, false);
    jobs_.erase(it);
  }

  bool exhausted() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped()) return true;
    return ready_.empty() && retry_.empty() && in_flight_ == 0;
  }

  // (user, part) pairs that got a record in this run, for the naive baseline.
  const std::vector<std::pair<std::size_t, std::size_t>>& processed() const { return processed_; }

 private:
  bool stopped() const {
    if (opt_.stop && opt_.stop->load()) {
      cost_.stopped = true;
      return true;
    }
    return false;
  }

  std::string previous_of(const UserWork& w, uint32_t seq) const {
    if (!variant_.cascade) return {};  // the no-cascade ablation: every partition on its own
    auto it = w.ok.lower_bound(seq);
    if (it == w.ok.begin()) return {};
    return std::prev(it)->second;
  }

  // Prepares user u's next pending partition: a request, or (cache hit / does not fit) a
  // record written at once, after which the loop in next() goes on.
  std::optional<std::pair<uint64_t, GenerationRequest>> start(std::size_t u) {
    UserWork& w = users_[u];
    const std::size_t p = w.pending[w.next];
    const StoredPartition& part = w.parts[p];
    Job job;
    job.user = u;
    job.part = p;
    InterestRecord& r = job.record;
    r.user = w.user;
    r.seq = part.seq;
    r.variant = variant_id_;
    r.variant_name = variant_.name;
    r.model = model_;
    r.template_version = tmpl_.version;
    r.template_hash = tmpl_.hash();
    r.previous_summary = previous_of(w, part.seq);
    r.behaviors = static_cast<uint32_t>(part.events.size());
    const std::vector<BehaviorText> texts = behavior_texts(log_, part.events);
    std::optional<FittedPrompt> fitted =
        fit_interest_prompt(engine_, opt_.max_tokens, tmpl_, w.description, r.previous_summary,
                            texts, log_.like_threshold);
    if (!fitted) {
      const auto full = render_interest_prompt(tmpl_, w.description, r.previous_summary, {},
                                               log_.like_threshold);
      r.prompt_hash = prompt_hash(full);
      r.behaviors_dropped = r.behaviors;
      r.ok = false;
      r.error = fmt::format("prompt does not fit: {} context tokens, {} reserved for the output",
                            engine_.context_length(), opt_.max_tokens);
      finish(job, false);
      return std::nullopt;
    }
    r.behaviors_dropped = static_cast<uint32_t>(fitted->dropped);
    r.prompt_hash = prompt_hash(fitted->messages);
    job.request.messages = std::move(fitted->messages);
    job.request.shared_prefix_messages = 1;
    job.request.max_tokens = opt_.max_tokens;
    job.request.temperature = opt_.temperature;
    job.request.repeat_penalty = opt_.repeat_penalty;
    job.request.seed = opt_.seed;
    job.request.grammar = grammar_;
    job.request.json_schema = schema_;
    if (opt_.use_cache) {
      if (auto hit = store_.get(uil::kLlmCache, cache_key(model_, job.request, r.prompt_hash))) {
        try {
          const json j = json::parse(*hit);
          r.ok = true;
          r.summary = j.at("summary").get<std::string>();
          r.shift = j.at("shift").get<std::string>();
          r.from_cache = true;
          finish(job, true);
          return std::nullopt;
        } catch (const std::exception&) {
          // unreadable cache entry: compute it again
        }
      }
    }
    const uint64_t tag = next_tag_++;
    GenerationRequest req = job.request;
    jobs_.emplace(tag, std::move(job));
    ++in_flight_;
    return std::make_pair(tag, std::move(req));
  }

  // Persists the record (one atomic batch, with the cache entry when ok) and makes the
  // user's next pending partition ready.
  void finish(Job& job, bool ok) {
    InterestRecord& r = job.record;
    r.created_at = unix_now();
    auto batch = store_.new_batch();
    batch->put(uil::kInterests, interest_key(variant_id_, r.user, r.seq), r.to_json());
    if (ok && !r.from_cache && opt_.use_cache) {
      const json c = {{"summary", r.summary}, {"shift", r.shift}, {"model", r.model},
                      {"prompt_hash", r.prompt_hash}};
      batch->put(uil::kLlmCache, cache_key(model_, job.request, r.prompt_hash), c.dump());
    }
    store_.write(*batch, opt_.sync);
    UserWork& w = users_[job.user];
    if (ok) {
      w.ok[r.seq] = r.summary;
      ++cost_.partitions_ok;
      if (r.from_cache) ++cost_.partitions_from_cache;
    } else {
      ++cost_.partitions_failed;
    }
    cost_.behaviors += r.behaviors;
    cost_.behaviors_dropped += r.behaviors_dropped;
    processed_.emplace_back(job.user, job.part);
    if (bar_) bar_->advance();
    if (opt_.on_record) opt_.on_record(r);
    if (++w.next < w.pending.size()) ready_.insert(job.user);
  }

  Store& store_;
  const BehaviorLog& log_;
  LlmEngine& engine_;
  const LearnOptions& opt_;
  const PromptTemplate& tmpl_;
  const Variant& variant_;
  const std::string variant_id_;
  std::vector<UserWork>& users_;
  CostReport& cost_;
  ProgressBar* bar_;
  const std::string model_, grammar_, schema_;
  mutable std::mutex mu_;
  // Users with a partition ready to send, taken lowest index (work order) first: the batch
  // works on the first `parallel` unfinished users, so users complete in order and a run
  // stopped part-way leaves whole users learned, not a first partition of everyone.
  std::set<std::size_t> ready_;
  std::deque<uint64_t> retry_;
  std::unordered_map<uint64_t, Job> jobs_;
  uint64_t next_tag_ = 0;
  std::size_t in_flight_ = 0;  // given out (or queued for retry), not yet completed
  std::vector<std::pair<std::size_t, std::size_t>> processed_;
};

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

std::vector<UserWork> select_users(Store& store, const BehaviorLog& log, const LearnOptions& opt,
                                   const Variant& variant) {
  std::vector<UserWork> all;
  for_each_partition_in(store, variant.partitions, [&](const StoredPartition& p) {
    if (all.empty() || all.back().user != p.user) {
      all.emplace_back();
      all.back().user = p.user;
    }
    all.back().parts.push_back(p);
  });
  if (!opt.only_users.empty()) {
    const std::unordered_set<std::string> only(opt.only_users.begin(), opt.only_users.end());
    std::erase_if(all, [&](const UserWork& w) { return !only.contains(w.user); });
  }
  if (opt.sample > 0 && opt.sample < all.size()) {
    std::vector<std::size_t> idx(all.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    uint64_t state = opt.sample_seed;
    for (std::size_t i = 0; i < opt.sample; ++i) {
      const std::size_t j = i + static_cast<std::size_t>(mix(state) % (idx.size() - i));
      std::swap(idx[i], idx[j]);
    }
    idx.resize(opt.sample);
    std::sort(idx.begin(), idx.end());
    std::vector<UserWork> picked;
    for (std::size_t i : idx) picked.push_back(std::move(all[i]));
    all = std::move(picked);
  } else if (opt.users > 0 && opt.users < all.size()) {
    all.resize(opt.users);
  }
  for (UserWork& w : all) {
    std::sort(w.parts.begin(), w.parts.end(),
              [](const StoredPartition& a, const StoredPartition& b) { return a.seq < b.seq; });
    if (opt.max_partitions > 0 && w.parts.size() > opt.max_partitions)
      w.parts.resize(opt.max_partitions);
    w.description = describe_user(log, w.user);
    for (const InterestRecord& r : read_interests(store, variant.id(), w.user))
      if (r.ok) w.ok[r.seq] = r.summary;
    for (std::size_t i = 0; i < w.parts.size(); ++i)
      if (!w.ok.count(w.parts[i].seq)) w.pending.push_back(i);
  }
  return all;
}

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

}  // namespace

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
  X(naive_prompt_tokens) X(naive_exact)

std::string CostReport::to_json() const {
  nlohmann::json j;
#define X(f) j[#f] = f;
  LIBER_COST_LABELS(X)
  LIBER_COST_FIELDS(X)
#undef X
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
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Internal, std::string("corrupt state: learn run report: ") + e.what());
  }
  return c;
}

CostReport& CostReport::operator+=(const CostReport& o) {
#define X(f) f = f + o.f;
  LIBER_COST_FIELDS(X)
#undef X
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

CostReport learn_interests(Store& store, LlmEngine& engine, const LearnOptions& opt) {
  const auto t0 = Clock::now();
  const BehaviorLog log = load_behavior_log(store, /*with_events=*/false);  // catalog and users
  const PromptTemplate& tmpl = opt.interest_template ? *opt.interest_template : builtin_interest_template();
  const PromptTemplate& item_tmpl = opt.item_template ? *opt.item_template : builtin_item_template();
  if (opt.max_tokens < 8) throw Error(ErrorKind::Config, "max_tokens must be at least 8");
  if (opt.max_tokens >= engine.context_length())
    throw Error(ErrorKind::Config,
                fmt::format("max_tokens {} leaves no room in the {}-token context", opt.max_tokens,
                            engine.context_length()));
  migrate_interests(store);
  Variant variant;
  variant.name = opt.variant;
  variant.partitions = PartitionSet::parse(opt.partitions);
  variant.cascade = opt.cascade;
  variant.model = engine.model_id();
  variant.template_version = tmpl.version;
  variant.template_hash = tmpl.hash();
  register_variant(store, variant);
  derive_partition_set(store, variant.partitions);
  CostReport cost;
  cost.variant = variant.id();
  cost.variant_name = variant.name;
  std::vector<UserWork> users = select_users(store, log, opt, variant);
  cost.users = users.size();
  uint64_t pending = 0;
  for (const UserWork& w : users) {
    cost.partitions_total += w.parts.size();
    pending += w.pending.size();
  }
  cost.partitions_already = cost.partitions_total - pending;

  std::vector<std::pair<std::size_t, std::size_t>> processed;
  {
    std::unique_ptr<ProgressBar> bar;
    if (opt.progress_bar && pending > 0)
      bar = std::make_unique<ProgressBar>("uil cascade", pending, "partitions");
    CascadeSource source(store, log, engine, opt, tmpl, variant, users, cost, bar.get());
    if (pending > 0) engine.run(source);
    if (bar) bar->finish();
    processed = source.processed();
  }
  cost.interest_wall_s = seconds_since(t0);

  if (opt.items && !(opt.stop && opt.stop->load())) {
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

  naive_cost(engine, log, tmpl, users, processed, opt.naive_exact_bytes, cost);
  cost.wall_s = seconds_since(t0);
  if (cost.calls > 0) {
    // The run's cost stays with the store, so reports over several (resumed) runs add up.
    auto batch = store.new_batch();
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    batch->put(kProgressFamily,
               fmt::format("uil.run/{}/{:016d}", cost.variant,
                           std::chrono::duration_cast<std::chrono::milliseconds>(now).count()),
               cost.to_json());
    store.write(*batch, opt.sync);
  }
  return cost;
}

std::vector<std::string> learned_users(Store& store, const Variant& variant) {
  const std::string id = variant.id();
  std::vector<std::string> out;
  std::string user;
  bool complete = true;
  for_each_partition_in(store, variant.partitions, [&](const StoredPartition& p) {
    if (p.user != user) {
      if (!user.empty() && complete) out.push_back(user);
      user = p.user;
      complete = true;
    }
    complete = complete && store.get(uil::kInterests, interest_key(id, p.user, p.seq)).has_value();
  });
  if (!user.empty() && complete) out.push_back(user);
  return out;
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
