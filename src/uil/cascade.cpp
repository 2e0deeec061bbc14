// The UIL cascade as a RequestSource: one engine.run for every user's partitions in order,
// each prompt carrying the previous summary, each record stored the moment it completes.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/progress.h"
#include "liber/common/hash.h"
#include "liber/uil.h"
#include "liber/uil/keys.h"
#include "liber/uil/work.h"

namespace liber {

namespace {

using uil::UserWork;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

struct Job {
  std::size_t user = 0;
  std::size_t part = 0;
  int attempt = 0;
  GenerationRequest request;
  InterestRecord record;  // filled as attempts complete
  std::vector<BehaviorText> shown;  // the behaviors the prompt shows (what is verified)
  // The guard: the best candidate so far by the verifier.
  std::optional<InterestOutput> best;
  Verdict best_verdict;
  bool guard = false;  // the request in flight is an extra candidate
  std::string cache_key;  // of the first request (the guard's reseeded ones share it)
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
        grammar_(interest_grammar(opt.max_tokens)), schema_(interest_json_schema()),
        verifier_(log, tmpl) {
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
    if (job.guard) {
      ++cost_.guard_calls;
      cost_.guard_prompt_tokens += static_cast<uint64_t>(result.prompt_tokens);
      cost_.guard_completion_tokens += static_cast<uint64_t>(result.completion_tokens);
    }
    InterestRecord& r = job.record;
    ++r.attempts;  // every call for this record: retries and the guard's candidates
    r.prompt_tokens += result.prompt_tokens;
    r.completion_tokens += result.completion_tokens;
    r.cached_prompt_tokens += result.cached_prompt_tokens;
    r.latency_s += result.latency_s;
    std::string why;
    std::optional<InterestOutput> out;
    if (!result.error.empty()) why = std::string(InterestRecord::kCallFailedPrefix) + result.error;
    else out = parse_interest_output(result.text, &why);
    if (out) {
      if (consider(job, std::move(*out))) {
        retry_.push_back(tag);
        ++in_flight_;
        return;
      }
      finish(job, true);
      jobs_.erase(it);
      return;
    }
    if (job.best) {  // a malformed extra candidate: the best so far stands
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

  // The guard: keeps `out` when the verifier ranks it above the best so far and fills the
  // record from the best. True when another candidate is to be sampled (the best fails and
  // fewer than LearnOptions::candidates were sampled); the request is then reseeded, at a
  // temperature high enough for the candidates to differ.
  bool consider(Job& job, InterestOutput out) {
    Verdict v = verifier_.verify(out, job.record.previous_summary, job.shown);
    InterestRecord& r = job.record;
    ++r.candidates;
    if (!job.best || v.penalty < job.best_verdict.penalty) {
      job.best = std::move(out);
      job.best_verdict = std::move(v);
    }
    r.ok = true;
    r.error.clear();
    r.summary = job.best->summary;
    r.shift = job.best->shift;
    r.quality = job.best_verdict.verified ? "verified" : "rejected";
    r.reasons = job.best_verdict.reasons;
    if (job.best_verdict.verified || r.candidates >= opt_.candidates || stopped()) return false;
    job.guard = true;
    job.request.seed = opt_.seed + 104729ull * static_cast<uint64_t>(r.candidates);
    job.request.temperature = std::max(opt_.temperature, 0.8f);
    return true;
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
    job.shown.assign(texts.begin() + static_cast<std::ptrdiff_t>(fitted->dropped), texts.end());
    r.prompt_hash = prompt_hash(fitted->messages);
    job.request.messages = std::move(fitted->messages);
    job.request.shared_prefix_messages = 1;
    job.request.max_tokens = opt_.max_tokens;
    job.request.temperature = opt_.temperature;
    job.request.repeat_penalty = opt_.repeat_penalty;
    job.request.seed = opt_.seed;
    job.request.grammar = grammar_;
    job.request.json_schema = schema_;
    job.cache_key = cache_key(model_, job.request, r.prompt_hash);
    if (opt_.use_cache) {
      if (auto hit = store_.get(uil::kLlmCache, job.cache_key)) {
        try {
          const json j = json::parse(*hit);
          InterestOutput cached{j.at("summary").get<std::string>(), j.at("shift").get<std::string>()};
          r.from_cache = true;
          if (!consider(job, std::move(cached))) {
            finish(job, true);
            return std::nullopt;
          }
          // A cached output the verifier rejects: the guard samples on (below).
          r.from_cache = false;
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
      batch->put(uil::kLlmCache, job.cache_key, c.dump());
    }
    store_.write(*batch, opt_.sync);
    UserWork& w = users_[job.user];
    if (ok) {
      w.done.insert(r.seq);
      if (r.usable()) w.ok[r.seq] = r.summary;  // a rejected summary is never carried on
      ++cost_.partitions_ok;
      ++(r.usable() ? cost_.partitions_verified : cost_.partitions_rejected);
      for (const std::string& reason : r.reasons) ++cost_.rejection_reasons[std::string(reason_kind(reason))];
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
  const InterestVerifier verifier_;
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

}  // namespace

CostReport learn_interests(Store& store, LlmEngine& engine, const LearnOptions& opt) {
  const auto t0 = Clock::now();
  const BehaviorLog log = load_behavior_log(store, /*with_events=*/false);  // catalog and users
  // The templates with this dataset's nouns: what the records' hashes and the verifier see.
  const PromptTemplate tmpl =
      (opt.interest_template ? *opt.interest_template : builtin_interest_template()).for_domain(log.domain);
  const PromptTemplate item_tmpl =
      (opt.item_template ? *opt.item_template : builtin_item_template()).for_domain(log.domain);
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
  // Records made before the verifier get their verdict first: the cascade carries verified
  // summaries only.
  bool unverified = false;
  for_each_interest(store, variant.id(), [&](const InterestRecord& r) {
    unverified = unverified || (r.ok && r.quality.empty());
  });
  if (unverified) verify_interests(store, variant, &tmpl);
  std::vector<UserWork> users = uil::select_users(store, log, opt, variant);
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
    if ((opt.progress_bar || opt.on_progress) && pending > 0)
      bar = std::make_unique<ProgressBar>("uil cascade", pending, "partitions", opt.progress_bar,
                                          opt.on_progress);
    CascadeSource source(store, log, engine, opt, tmpl, variant, users, cost, bar.get());
    if (pending > 0) engine.run(source);
    if (bar) bar->finish();
    processed = source.processed();
  }
  cost.interest_wall_s = seconds_since(t0);

  if (opt.items && !(opt.stop && opt.stop->load()))
    uil::learn_item_knowledge(store, log, engine, opt, item_tmpl, users, cost);

  uil::naive_cost(engine, log, tmpl, users, processed, opt.naive_exact_bytes, cost);
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

}  // namespace liber
