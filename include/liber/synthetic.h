// A synthetic dataset with a planted, text-only signal, in liber's generic format: users
// whose interest drifts between topics over a long history, items whose topic shows only in
// their title (ids are many and each is seen rarely; the one attribute is noise), and a like
// that depends on whether the item's topic is the user's interest at that moment. The
// backbone alone cannot learn it well; partition content vectors (item texts through the
// sentence encoder) can. The truth is returned so an oracle (the true match as a feature)
// bounds what any input can add.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

namespace liber {

struct SyntheticConfig {
  int users = 300;
  int events_per_user = 300;
  int items = 20000;
  int topics = 6;               // at most 8 (each has its own vocabulary)
  int mean_segment = 120;       // events between interest drifts (geometric, >= 10)
  double exposure_in_topic = 1.0 / 3;  // share of exposures drawn from the current interest
  double like_match = 0.7;      // P(like | item topic = current interest)
  double like_other = 0.1;      // P(like | otherwise)
  int64_t start = 1600000000;   // first timestamp; one behavior an hour per user
  uint64_t seed = 1;
};

struct SyntheticTruth {
  std::unordered_map<std::string, int> item_topic;  // external item id -> topic
  // Per user, the interest segments: (first timestamp of the segment, topic), in order.
  std::unordered_map<std::string, std::vector<std::pair<int64_t, int>>> interest;
  int topic_at(const std::string& user, int64_t ts) const;  // -1 for an unknown user
  // 1 when the item's topic is the user's interest at ts, else 0.
  int match(const std::string& user, const std::string& item, int64_t ts) const;
};

// Writes <dir>/events.csv (user_id, item_id, timestamp, label) and <dir>/items.csv (item_id,
// title, format). Deterministic for the config. Throws Error(Config) for a bad config.
SyntheticTruth write_synthetic(const std::filesystem::path& dir, const SyntheticConfig& config);

}  // namespace liber
