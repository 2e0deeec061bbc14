// A progress bar for long work (data passes, training epochs, LLM passes): count, rate and
// ETA, as progress lines of the log sink (liber/log.h). On a terminal it redraws at 10 Hz;
// otherwise (CI, logs) it prints a line every ~10%, and at least every 5 minutes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace liber {

// Told of every advance of a long run, with the run's total (0 = unknown): how a caller that
// draws its own progress (the Python package's tqdm) follows the library's work. Called on
// the thread that advanced.
using ProgressCallback = std::function<void(uint64_t advanced, uint64_t total)>;

class ProgressBar {
 public:
  // `enabled`: draw the bar; `observer` is told of every advance either way.
  ProgressBar(std::string label, uint64_t total, std::string unit = "samples",
              bool enabled = true, ProgressCallback observer = {});
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void advance(uint64_t n = 1);
  // Prints the final line (count, elapsed, mean rate); idempotent.
  void finish();

  uint64_t done() const { return done_; }
  double elapsed_seconds() const;

 private:
  void draw(bool final_line);

  std::string label_, unit_;
  uint64_t total_, done_ = 0;
  bool enabled_, tty_, finished_ = false;
  ProgressCallback observer_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// "1.2M", "35.4k", "812" — compact counts for progress lines and tables.
std::string human_count(double value);
// "1h02m", "3m05s", "12s".
std::string human_duration(double seconds);

}  // namespace liber
