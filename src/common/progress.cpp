#include "liber/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

#include "liber/log.h"

namespace liber {

ProgressBar::ProgressBar(std::string label, uint64_t total, std::string unit, bool enabled,
                         ProgressCallback observer)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled),
      tty_(isatty(STDERR_FILENO) == 1), observer_(std::move(observer)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::advance(uint64_t n) {
  done_ += n;
  if (observer_) observer_(n, total_);
  if (!enabled_ || finished_) return;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    // Redrawing costs a syscall; 10 Hz is plenty for a human.
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    draw(false);
  } else {
    // A log gets a line every 10%, and at least every 5 minutes: an LLM pass of hours would
    // otherwise be silent for half an hour between deciles.
    const int decile = total_ > 0 ? static_cast<int>(10 * done_ / total_) : last_decile_;
    const bool next_decile = decile > last_decile_ && decile < 10;
    if (next_decile || now - last_draw_ >= std::chrono::minutes(5)) {
      last_decile_ = std::max(last_decile_, decile);
      last_draw_ = now;
      draw(false);
    }
  }
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

void ProgressBar::draw(bool final_line) {
  double secs = elapsed_seconds();
  double rate = secs > 0 ? done_ / secs : 0;
  std::string bar;
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(done_) / total_);
    int width = 24, filled = static_cast<int>(frac * width);
    bar = fmt::format("[{}{}] {:3.0f}% ", std::string(filled, '#'),
                      std::string(width - filled, '.'), 100 * frac);
  }
  std::string tail;
  if (final_line) {
    tail = fmt::format("in {}", human_duration(secs));
  } else if (total_ > 0 && rate > 0) {
    tail = fmt::format("ETA {}", human_duration((total_ - std::min(done_, total_)) / rate));
  }
  // Slow units (LLM partitions) run below 1/s: give those rates two decimals, not "0/s".
  const std::string rate_text = rate < 10 ? fmt::format("{:.2f}", rate) : human_count(rate);
  std::string line = fmt::format("{} {}{}/{} {} {}/s {}", label_, bar, human_count(done_),
                                 total_ ? human_count(total_) : "?", unit_, rate_text, tail);
  log_message(final_line ? LogLevel::ProgressDone : LogLevel::Progress, line);
}

std::string human_count(double v) {
  if (std::fabs(v) >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (std::fabs(v) >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (std::fabs(v) >= 1e4) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::string human_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  auto t = static_cast<long>(std::llround(s));
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

}  // namespace liber
