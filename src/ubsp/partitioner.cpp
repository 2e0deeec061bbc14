// The in-memory UBSP partitioner (rules documented in include/liber/ubsp.h).
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/ubsp.h"

namespace liber {

const char* to_string(CloseReason reason) {
  switch (reason) {
    case CloseReason::Count: return "count";
    case CloseReason::Span: return "span";
    case CloseReason::Gap: return "gap";
    case CloseReason::Shift: return "shift";
    case CloseReason::MaxSize: return "max-size";
    case CloseReason::Flush: return "flush";
  }
  return "?";
}

const char* to_string(AddStatus status) {
  switch (status) {
    case AddStatus::Accepted: return "accepted";
    case AddStatus::Duplicate: return "duplicate";
    case AddStatus::LateClosed: return "late-before-closed-partition";
    case AddStatus::LateWindow: return "late-beyond-lateness-window";
    case AddStatus::Bad: return "bad";
  }
  return "?";
}

void PartitionRule::validate() const {
  if (max_size == 0) throw Error(ErrorKind::Config, "partition rule: max size must be >= 1");
  if (max_span < 0 || max_gap < 0 || lateness < 0)
    throw Error(ErrorKind::Config, "partition rule: span, gap and lateness must be >= 0");
  if (shift) {
    if (shift_window == 0 || 2 * shift_window > max_size)
      throw Error(ErrorKind::Config,
                  fmt::format("partition rule: the shift window ({}) must be >= 1 and at most "
                              "half the max size ({})", shift_window, max_size));
    if (!(shift_threshold > 0.0 && shift_threshold <= 1.0))
      throw Error(ErrorKind::Config, "partition rule: the shift threshold must be in (0, 1]");
  }
  if (count == 0 && max_span == 0 && max_gap == 0 && !shift && max_size == 0)
    throw Error(ErrorKind::Config, "partition rule: no condition enabled");
}

std::string PartitionRule::describe() const {
  std::string s = fmt::format("count={} span={} gap={} ", count, max_span, max_gap);
  if (shift)
    s += fmt::format("shift={}:w={}:t={:.4f} ", shift_attribute, shift_window, shift_threshold);
  else
    s += "shift=off ";
  s += fmt::format("max={} late={}", max_size, lateness);
  return s;
}

PartitionRule PartitionRule::parse(std::string_view text) {
  PartitionRule r;
  auto bad = [&](std::string_view why) {
    return Error(ErrorKind::Config, fmt::format("partition rule '{}': {}", text, why));
  };
  auto number = [&](std::string_view key, std::string_view v) {
    int64_t n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size() || n < 0)
      throw bad(fmt::format("{} is not a count: '{}'", key, v));
    return n;
  };
  std::size_t seen = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view field = text.substr(pos, end - pos);
    pos = end + 1;
    const std::size_t eq = field.find('=');
    if (eq == std::string_view::npos) throw bad(fmt::format("'{}' is not key=value", field));
    const std::string_view key = field.substr(0, eq), v = field.substr(eq + 1);
    ++seen;
    if (key == "count") r.count = static_cast<std::size_t>(number(key, v));
    else if (key == "span") r.max_span = number(key, v);
    else if (key == "gap") r.max_gap = number(key, v);
    else if (key == "max") r.max_size = static_cast<std::size_t>(number(key, v));
    else if (key == "late") r.lateness = number(key, v);
    else if (key == "shift") {
      if (v == "off") continue;
      // attribute:w=W:t=T
      const std::size_t w = v.rfind(":w="), t = v.rfind(":t=");
      if (w == std::string_view::npos || t == std::string_view::npos || t < w)
        throw bad(fmt::format("shift is not 'off' or attribute:w=W:t=T: '{}'", v));
      r.shift = true;
      r.shift_attribute = std::string(v.substr(0, w));
      r.shift_window = static_cast<std::size_t>(number("shift window", v.substr(w + 3, t - w - 3)));
      const std::string threshold(v.substr(t + 3));
      char* stop = nullptr;
      r.shift_threshold = std::strtod(threshold.c_str(), &stop);
      if (threshold.empty() || *stop != '\0') throw bad(fmt::format("shift threshold '{}'", threshold));
    } else {
      throw bad(fmt::format("unknown key '{}'", key));
    }
  }
  if (seen != 6) throw bad("expected count, span, gap, shift, max and late");
  r.validate();
  return r;
}

Partitioner::Partitioner(PartitionRule rule, const ItemCatalog* items) : rule_(std::move(rule)) {
  rule_.validate();
  if (rule_.shift) {
    if (!items || !(attr_ = items->attribute(rule_.shift_attribute)))
      throw Error(ErrorKind::Config,
                  fmt::format("the shift rule needs the item attribute '{}', which the catalog "
                              "does not have", rule_.shift_attribute));
    attr_values_ = attr_->vocab.size();
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  max_ts_ = now + 86400;
}

bool Partitioner::is_bad(const Event& e) const {
  return e.ts < 0 || e.ts > max_ts_ || e.user == 0 || e.item == 0;
}

void Partitioner::count_item(std::vector<uint32_t>& counts, uint32_t item, int delta) const {
  if (item >= attr_->rows()) return;
  for (uint32_t code : attr_->row(item))
    if (code) counts[code] = static_cast<uint32_t>(static_cast<int>(counts[code]) + delta);
}

void Partitioner::rebuild(UserState& st) const {
  if (!rule_.shift) return;
  st.attr_counts.assign(attr_values_, 0);
  for (const Event& e : st.cache) count_item(st.attr_counts, e.item, +1);
}

// JS divergence between the head (cache minus its newest W events) and the window.
bool Partitioner::shift_fires(const UserState& st) const {
  const std::size_t n = st.cache.size(), w = rule_.shift_window;
  if (n < 2 * w) return false;
  // Window counts on the stack for small vocabularies.
  thread_local std::vector<uint32_t> window;
  window.assign(attr_values_, 0);
  for (std::size_t i = n - w; i < n; ++i) count_item(window, st.cache[i].item, +1);
  double head_total = 0, window_total = 0;
  for (std::size_t v = 1; v < attr_values_; ++v) {
    head_total += st.attr_counts[v] - window[v];
    window_total += window[v];
  }
  if (head_total <= 0 || window_total <= 0) return false;
  double js = 0;
  for (std::size_t v = 1; v < attr_values_; ++v) {
    const double p = (st.attr_counts[v] - window[v]) / head_total;
    const double q = window[v] / window_total;
    if (p == 0 && q == 0) continue;
    const double m = 0.5 * (p + q);
    if (p > 0) js += 0.5 * p * std::log2(p / m);
    if (q > 0) js += 0.5 * q * std::log2(q / m);
  }
  return js > rule_.shift_threshold;
}

// Closes the first n cache events as the user's next partition.
void Partitioner::close(UserState& st, std::size_t n, CloseReason reason,
                        std::vector<Partition>& out) const {
  Partition p;
  p.user = st.cache.front().user;
  p.seq = st.next_seq++;
  p.reason = reason;
  if (n == st.cache.size()) {
    p.events = std::move(st.cache);
    st.cache.clear();
    st.cache.reserve(std::min(rule_.count ? rule_.count : rule_.max_size, rule_.max_size));
    if (rule_.shift) std::fill(st.attr_counts.begin(), st.attr_counts.end(), 0);
  } else {
    p.events.assign(st.cache.begin(), st.cache.begin() + static_cast<std::ptrdiff_t>(n));
    if (rule_.shift)
      for (const Event& e : p.events) count_item(st.attr_counts, e.item, -1);
    st.cache.erase(st.cache.begin(), st.cache.begin() + static_cast<std::ptrdiff_t>(n));
  }
  p.t_begin = p.events.front().ts;
  p.t_end = p.events.back().ts;
  st.last_end = p.t_end;
  out.push_back(std::move(p));
}

AddStatus Partitioner::add(UserState& st, const Event& e, std::vector<Partition>& closed) const {
  if (is_bad(e)) return AddStatus::Bad;
  if (rule_.shift && st.attr_counts.size() != attr_values_) rebuild(st);
  bool in_order = true;
  if (st.newest_ts != kNoTime && e.ts < st.newest_ts) {
    if (st.last_end != kNoTime && e.ts < st.last_end) return AddStatus::LateClosed;
    if (st.newest_ts - e.ts > rule_.lateness) return AddStatus::LateWindow;
    in_order = false;
  }
  if (in_order) {
    // Exact duplicate still in the cache (equal timestamps sit at the end).
    for (auto it = st.cache.rbegin(); it != st.cache.rend() && it->ts == e.ts; ++it)
      if (it->item == e.item) return AddStatus::Duplicate;
    if (!st.cache.empty()) {
      if (rule_.max_gap > 0 && e.ts - st.cache.back().ts > rule_.max_gap)
        close(st, st.cache.size(), CloseReason::Gap, closed);
      else if (rule_.max_span > 0 && e.ts - st.cache.front().ts > rule_.max_span)
        close(st, st.cache.size(), CloseReason::Span, closed);
    }
    st.cache.push_back(e);
    st.newest_ts = e.ts;
  } else {
    // Late but acceptable: insert after the last event with ts <= e.ts.
    auto pos = std::upper_bound(st.cache.begin(), st.cache.end(), e.ts,
                                [](int64_t ts, const Event& x) { return ts < x.ts; });
    for (auto it = st.cache.begin(); it != st.cache.end(); ++it)
      if (it->ts == e.ts && it->item == e.item) return AddStatus::Duplicate;
    st.cache.insert(pos, e);
  }
  if (rule_.shift) count_item(st.attr_counts, e.item, +1);
  const std::size_t n = st.cache.size();
  if (rule_.count > 0 && n >= rule_.count) {
    close(st, n, CloseReason::Count, closed);
  } else if (n >= rule_.max_size) {
    close(st, n, CloseReason::MaxSize, closed);
  } else if (rule_.shift && shift_fires(st)) {
    close(st, n - rule_.shift_window, CloseReason::Shift, closed);
  }
  return AddStatus::Accepted;
}

bool Partitioner::flush(UserState& st, uint32_t /*user*/, std::vector<Partition>& closed) const {
  if (st.cache.empty()) return false;
  close(st, st.cache.size(), CloseReason::Flush, closed);
  return true;
}

std::vector<Event> time_ordered(std::span<const Event> events) {
  std::vector<Event> out(events.begin(), events.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const Event& a, const Event& b) { return a.ts < b.ts; });
  return out;
}

MemoryRun partition_in_memory(const BehaviorLog& log, std::span<const Event> stream,
                              const PartitionRule& rule) {
  Partitioner part(rule, &log.items);
  MemoryRun run;
  run.users.resize(log.users.size());
  for (const Event& e : stream) {
    if (e.user >= run.users.size()) run.users.resize(e.user + 1);
    const AddStatus s = part.add(run.users[e.user], e, run.partitions);
    ++run.status_counts[static_cast<int>(s)];
  }
  return run;
}

}  // namespace liber
