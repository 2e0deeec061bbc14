#include "liber/serve/pipeline.h"

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/log.h"

namespace liber::serve {

using Clock = std::chrono::steady_clock;

Pipeline::Pipeline(Store& store, LlmEngine& llm, LlmEngine& encoder, PipelineOptions options)
    : store_(store), llm_(llm), encoder_(encoder), opt_(std::move(options)) {
  opt_.learn.progress_bar = false;
  opt_.encode.progress_bar = false;
  opt_.learn.stop = &halt_;
  opt_.encode.stop = &halt_;
  opt_.batch_users = std::max<std::size_t>(1, opt_.batch_users);
  thread_ = std::thread([this] { loop(); });
}

Pipeline::~Pipeline() { stop(); }

void Pipeline::notify(std::span<const std::string> users, std::size_t partitions,
                      Clock::time_point closed_at) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    state_.partitions_closed += partitions;
    state_.partitions_pending += partitions;
    for (const std::string& u : users) {
      if (!rescan_ && queued_.size() >= opt_.max_users) {
        // Past the bound the ids are not kept: the store still knows what is pending.
        rescan_ = true;
        queued_.clear();
      }
      if (!rescan_) queued_.insert(u);
      first_closed_.try_emplace(u, closed_at);
    }
    if (first_closed_.size() > opt_.max_users) first_closed_.clear();  // freshness samples only
  }
  wake_.notify_all();
}

void Pipeline::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) return;
    stop_ = true;
    halt_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  state_.state = "stopped";
}

void Pipeline::pause() {
  std::unique_lock<std::mutex> lock(mutex_);
  paused_ = true;
  halt_ = true;
  wake_.notify_all();
  idle_.wait(lock, [&] { return !running_; });
}

void Pipeline::resume() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    paused_ = false;
    halt_ = stop_.load();
    rescan_ = true;
  }
  wake_.notify_all();
}

PipelineState Pipeline::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  PipelineState s = state_;
  s.users_queued = queued_.size();
  s.rescan = rescan_;
  s.freshness_s.clear();
  return s;
}

std::vector<double> Pipeline::take_freshness() {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::exchange(state_.freshness_s, {});
}

void Pipeline::loop() {
  // After a failed run: the wait before the next try, doubled each failure up to the bound.
  auto backoff = std::chrono::milliseconds(0);
  bool retry_due = false;
  while (!stop_) {
    std::vector<std::string> users;
    bool all = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (backoff.count() > 0 && !retry_due) {
        wake_.wait_for(lock, backoff, [&] { return stop_.load(); });
        retry_due = true;  // waited it out (or stopping)
        continue;
      }
      wake_.wait_for(lock, std::chrono::seconds(60),
                     [&] { return stop_.load() || (!paused_ && (rescan_ || !queued_.empty())); });
      if (stop_) break;
      if (paused_ || (!rescan_ && queued_.empty())) continue;  // the periodic wake-up
      running_ = true;
      all = rescan_;
      rescan_ = false;
      if (all) {
        queued_.clear();
      } else {
        auto it = queued_.begin();
        for (std::size_t i = 0; i < opt_.batch_users && it != queued_.end(); ++i)
          users.push_back(queued_.extract(it++).value());
      }
    }
    // Whichever way the run ends, pause() may go on.
    auto ended = [this] {
      running_ = false;
      idle_.notify_all();
    };
    try {
      run_once(users, all);
      backoff = std::chrono::milliseconds(0);
      std::lock_guard<std::mutex> lock(mutex_);
      ended();
      state_.backoff_s = 0;
      state_.state = queued_.empty() && !rescan_ ? "idle" : "learning";
    } catch (const std::exception& e) {
      // The engine or encoder failed: its users stay pending, in the store and here.
      backoff = std::min(opt_.max_backoff, std::max(std::chrono::milliseconds(500), backoff * 2));
      retry_due = false;
      std::lock_guard<std::mutex> lock(mutex_);
      ended();
      if (all) rescan_ = true;
      for (std::string& u : users) queued_.insert(std::move(u));
      ++state_.errors;
      state_.last_error = e.what();
      state_.backoff_s = std::chrono::duration<double>(backoff).count();
      state_.state = "retrying";
      log_warning(fmt::format("serve: pipeline: {}; retrying in {:.1f} s", e.what(), state_.backoff_s));
    }
  }
}

// One record of a run, in the figures.
void Pipeline::count_record(const InterestRecord& r, uint64_t& engine_failures, std::string& engine_error) {
  std::lock_guard<std::mutex> lock(mutex_);
  // A call that failed (a server down), not an output the model got wrong: the partition
  // is retried after the back-off.
  if (r.call_failed() && engine_failures++ == 0) engine_error = r.error;
  if (r.ok) ++state_.learned;
  else ++state_.failed;
  if (r.quality == "verified") ++state_.verified;
  if (r.quality == "rejected") ++state_.rejected;
  state_.latest.push_front(r);
  if (state_.latest.size() > PipelineState::kLatest) state_.latest.pop_back();
}

void Pipeline::run_once(std::vector<std::string> users, bool all) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    state_.state = "learning";
  }
  if (opt_.scope) {
    users = opt_.scope(std::move(users), all);
    all = false;
    if (users.empty()) {  // none of them is this worker's now
      std::lock_guard<std::mutex> lock(mutex_);
      state_.state = "idle";
      return;
    }
  }
  const auto start = Clock::now();
  LearnOptions learn = opt_.learn;
  learn.only_users = users;  // empty with `all`: every user
  uint64_t engine_failures = 0;
  std::string engine_error;
  learn.on_record = [this, &engine_failures, &engine_error](const InterestRecord& r) {
    count_record(r, engine_failures, engine_error);
    if (opt_.on_record) opt_.on_record(r);
  };
  const CostReport cost = learn_interests(store_, llm_, learn);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++state_.runs;
    state_.variant = cost.variant;
    state_.llm_calls += cost.calls;
    state_.prompt_tokens += cost.prompt_tokens;
    state_.completion_tokens += cost.completion_tokens;
    state_.state = "encoding";
  }
  const EncodeReport enc = encode_knowledge(store_, encoder_, opt_.encode);
  if (opt_.on_encoded) opt_.on_encoded(users, all);
  const auto now = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    state_.vectors_encoded += enc.partitions_encoded;
    // Freshness: the users of this run whose partitions now all have a record.
    for (const std::string& u : all ? std::vector<std::string>{} : users) {
      const auto it = first_closed_.find(u);
      if (it == first_closed_.end() || it->second > start) continue;  // closed during the run
      state_.freshness_s.push_back(std::chrono::duration<double>(now - it->second).count());
      first_closed_.erase(it);
    }
  }
  recount();
  if (engine_failures > 0)
    throw Error(ErrorKind::Network, fmt::format("{} LLM calls failed ({})", engine_failures, engine_error));
  if (enc.failed > 0)
    throw Error(ErrorKind::Network, fmt::format("{} texts failed to encode ({})", enc.failed, enc.first_error));
}

void Pipeline::recount() {
  uint64_t closed = 0, done = 0;
  for_each_cache(store_, [&](const StoredCache& c) { closed += c.next_seq; });
  std::string variant;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    variant = state_.variant;
  }
  // Done: an ok record, or one the model got wrong (final until the user's next partition,
  // when learn retries it); a call that failed is still pending.
  if (!variant.empty())
    for_each_interest(store_, variant, [&](const InterestRecord& r) {
      done += r.call_failed() ? 0 : 1;
    });
  std::lock_guard<std::mutex> lock(mutex_);
  state_.partitions_closed = closed;
  state_.partitions_pending = closed >= done ? closed - done : 0;
}

}  // namespace liber::serve
