// The service's background pipeline: UIL then UIF over the partitions ingest closes. See
// PipelineOptions in include/liber/serve.h.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "liber/serve.h"

namespace liber::serve {

struct PipelineState {
  std::string state = "starting";  // starting | learning | encoding | idle | retrying | stopped
  uint64_t runs = 0;
  uint64_t partitions_closed = 0;   // in the store (the variant's set)
  uint64_t partitions_pending = 0;  // of those, without an ok record of the variant
  uint64_t users_queued = 0;        // user ids waiting in memory
  bool rescan = false;              // too many to hold: the next run scans every user
  // Totals since start.
  uint64_t learned = 0, verified = 0, rejected = 0, failed = 0;
  uint64_t llm_calls = 0, prompt_tokens = 0, completion_tokens = 0;
  uint64_t vectors_encoded = 0;
  uint64_t errors = 0;
  std::string last_error;
  double backoff_s = 0;
  std::string variant;  // the variant id learned
  std::deque<InterestRecord> latest;  // newest first, at most kLatest
  // Seconds from the request that closed a partition to the end of the run that encoded it.
  std::vector<double> freshness_s;  // since the last take (Pipeline::take_freshness)
  static constexpr std::size_t kLatest = 20;
};

class Pipeline {
 public:
  Pipeline(Store& store, LlmEngine& llm, LlmEngine& encoder, PipelineOptions options);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // `partitions` just closed for these users (the request arrived at `closed_at`). They
  // count as closed and pending at once; the next run's recount makes the figures exact.
  void notify(std::span<const std::string> users, std::size_t partitions,
              std::chrono::steady_clock::time_point closed_at);
  // Finishes the LLM calls in flight (their records are written), then returns.
  void stop();
  // Like stop, but resume() starts it again: a Kafka worker pauses while its partitions
  // move, so no call is in flight for a user another worker is about to own.
  void pause();
  // Runs again, over every user in scope (the scope may have changed while paused).
  void resume();
  PipelineState state() const;
  // The freshness samples since the last call.
  std::vector<double> take_freshness();

 private:
  void loop();
  void run_once(std::vector<std::string> users, bool all);
  void count_record(const InterestRecord& r, uint64_t& engine_failures, std::string& engine_error);
  void recount();

  Store& store_;
  LlmEngine& llm_;
  LlmEngine& encoder_;
  PipelineOptions opt_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::set<std::string> queued_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> first_closed_;
  bool rescan_ = true;  // the first run covers every user
  bool paused_ = false, running_ = false;
  std::condition_variable idle_;  // a run ended
  std::atomic<bool> stop_{false};
  std::atomic<bool> halt_{false};  // stop_ or paused_: the run in hand stops handing out calls
  PipelineState state_;
  std::thread thread_;
};

}  // namespace liber::serve
