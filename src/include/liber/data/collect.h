// What every reader does the same way: fail-or-skip on a bad line, and turn parsed event
// lines into Events (user limit, unknown items and users, duplicates), so MovieLens and the
// generic format behave identically on bad input.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "liber/data.h"
#include "liber/data/text_io.h"
#include "liber/error.h"

namespace liber::data {

// Notes kept per kind of problem, so one noisy problem leaves room for the others.
inline constexpr std::size_t kNotesPerKind = 5;

// A categorical attribute whose row 0 (the unknown entity) is already present.
inline Attribute make_attribute(std::string name, bool multi) {
  Attribute a;
  a.name = std::move(name);
  a.multi = multi;
  a.push_row({});
  return a;
}

// Handles a malformed line: throws Error::parse, or with skip_bad_lines counts and notes it.
class BadLines {
 public:
  BadLines(std::string file, const ReadOptions& opt, ReadReport& report)
      : file_(std::move(file)), skip_(opt.skip_bad_lines), report_(report) {}

  void operator()(std::size_t line, std::string_view what) {
    if (!skip_) throw Error::parse(file_, line, what);
    ++report_.skipped_bad_lines;
    if (++noted_ <= kNotesPerKind)
      report_.note(fmt::format("{}:{}: {} (line skipped)", file_, line, what));
  }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  bool skip_;
  ReadReport& report_;
  std::size_t noted_ = 0;
};

// Turns parsed event lines into log.events. The item catalog (and the user table, if any)
// must be loaded first: events reference their Vocab ids.
class EventCollector {
 public:
  EventCollector(BehaviorLog& log, const ReadOptions& opt, std::string file, bool user_table)
      : log_(log),
        max_users_(opt.max_users),
        file_(std::move(file)),
        user_table_(user_table),
        table_rows_(log.users.ids.size()) {}

  void add(std::string_view user, std::string_view item, int64_t ts, float rating,
           int8_t label, std::size_t line) {
    if (max_users_ > 0 && !admit(user)) return;
    const uint32_t item_id = log_.items.ids.find(item);
    if (item_id == 0) {
      ++log_.report.unknown_item_events;
      if (++unknown_item_notes_ <= kNotesPerKind)
        log_.report.note(fmt::format("{}:{}: item {} is not in the item catalog; event dropped",
                                     file_, line, excerpt_key(item)));
      return;
    }
    uint32_t user_id;
    if (has_last_user_ && user == last_user_) {
      user_id = last_user_id_;  // events come grouped by user: skip the hash lookup
    } else {
      user_id = log_.users.ids.find(user);
      if (user_id == 0) {
        user_id = log_.users.ids.add(user);
        for (Attribute& a : log_.users.attributes) a.push_row({});  // keep rows aligned
      }
      last_user_.assign(user);
      last_user_id_ = user_id;
      has_last_user_ = true;
    }
    if (user_table_ && user_id >= table_rows_) {
      ++log_.report.unknown_user_events;
      if (++unknown_user_notes_ <= kNotesPerKind)
        log_.report.note(fmt::format(
            "{}:{}: user {} is not in the user table; added with missing attributes", file_,
            line, excerpt_key(user)));
    }
    log_.events.push_back(Event{user_id, item_id, ts, rating, label});
    lines_.push_back(line);
  }

  // Drops later copies of the same (user, item, ts), keeping file order.
  void finish() {
    auto& events = log_.events;
    struct Key {
      uint32_t user, item;
      int64_t ts;
      std::size_t index;
    };
    std::vector<Key> keys(events.size());
    for (std::size_t i = 0; i < events.size(); ++i)
      keys[i] = {events[i].user, events[i].item, events[i].ts, i};
    std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
      if (a.user != b.user) return a.user < b.user;
      if (a.item != b.item) return a.item < b.item;
      if (a.ts != b.ts) return a.ts < b.ts;
      return a.index < b.index;
    });
    std::vector<char> drop(events.size(), 0);
    std::size_t dups = 0;
    for (std::size_t i = 1, first = 0; i < keys.size(); ++i) {
      const Key &a = keys[first], &b = keys[i];
      if (a.user == b.user && a.item == b.item && a.ts == b.ts) {
        drop[b.index] = 1;
        if (++dups <= kNotesPerKind)
          log_.report.note(fmt::format(
              "{}:{}: duplicate of the event on line {} (same user, item and timestamp); "
              "dropped",
              file_, lines_[b.index], lines_[a.index]));
      } else {
        first = i;
      }
    }
    log_.report.duplicate_events += dups;
    if (dups > 0) {
      std::size_t out = 0;
      for (std::size_t i = 0; i < events.size(); ++i)
        if (!drop[i]) events[out++] = events[i];
      events.resize(out);
    }
    lines_.clear();
    lines_.shrink_to_fit();
  }

 private:
  // The first max_users distinct users (by first appearance) are admitted; later ones
  // are dropped without a note, since that is what the option asks for.
  bool admit(std::string_view user) {
    if (has_last_gate_ && user == last_gate_user_) return last_gate_admitted_;
    last_gate_user_.assign(user);
    has_last_gate_ = true;
    std::string key(user);
    if (admitted_.contains(key)) {
      last_gate_admitted_ = true;
    } else if (admitted_.size() < max_users_) {
      admitted_.insert(std::move(key));
      last_gate_admitted_ = true;
    } else {
      last_gate_admitted_ = false;
    }
    return last_gate_admitted_;
  }

  static std::string excerpt_key(std::string_view key) { return excerpt(key, 40); }

  BehaviorLog& log_;
  std::size_t max_users_;
  std::string file_;
  bool user_table_;
  uint32_t table_rows_;
  std::vector<std::size_t> lines_;  // source line of each event, for duplicate notes
  std::string last_user_;
  uint32_t last_user_id_ = 0;
  bool has_last_user_ = false;
  std::string last_gate_user_;
  bool last_gate_admitted_ = false;
  bool has_last_gate_ = false;
  std::unordered_set<std::string> admitted_;
  std::size_t unknown_item_notes_ = 0;
  std::size_t unknown_user_notes_ = 0;
};

// Distinct users among a log's events (the user table may also hold users without any).
inline std::size_t distinct_users(const BehaviorLog& log) {
  std::vector<char> seen(log.users.ids.size(), 0);
  std::size_t n = 0;
  for (const Event& e : log.events)
    if (!seen[e.user]) seen[e.user] = 1, ++n;
  return n;
}

}  // namespace liber::data
