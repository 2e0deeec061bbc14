// The synthetic generator (include/liber/synthetic.h). Its own splitmix64 so the data is the
// same on every standard library.
#include "liber/synthetic.h"

#include <algorithm>
#include <fstream>

#include <fmt/format.h>

#include "liber/error.h"

namespace liber {

namespace {

class Mix {
 public:
  explicit Mix(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_;
};

const char* const kTopicWords[8][12] = {
    {"space", "starship", "galaxy", "orbit", "astronaut", "planet", "comet", "nebula", "rocket",
     "alien", "cosmos", "lunar"},
    {"kitchen", "recipe", "baking", "chef", "pasta", "dessert", "spice", "bread", "soup", "grill",
     "flavor", "feast"},
    {"football", "stadium", "goal", "champion", "league", "runner", "tennis", "boxing", "coach",
     "medal", "race", "olympic"},
    {"guitar", "concert", "melody", "symphony", "band", "singer", "jazz", "piano", "chorus",
     "rhythm", "album", "drum"},
    {"detective", "murder", "heist", "gangster", "police", "robbery", "witness", "prison", "mafia",
     "clue", "thief", "trial"},
    {"forest", "ocean", "mountain", "wildlife", "river", "jungle", "glacier", "desert", "volcano",
     "safari", "reef", "meadow"},
    {"love", "wedding", "kiss", "heart", "romance", "valentine", "bride", "passion", "sweetheart",
     "honeymoon", "affair", "darling"},
    {"battle", "soldier", "army", "tank", "invasion", "general", "trench", "navy", "frontline",
     "siege", "combat", "regiment"}};
const char* const kFiller[] = {"The", "Secret", "Last", "Return", "Night", "Great",
                               "Little", "New", "Story", "Day", "Final", "Lost"};
const char* const kFormats[] = {"short", "feature", "series"};

std::string capitalised(std::string w) {
  if (!w.empty()) w[0] = static_cast<char>(w[0] - ('a' <= w[0] && w[0] <= 'z' ? 32 : 0));
  return w;
}

}  // namespace

int SyntheticTruth::topic_at(const std::string& user, int64_t ts) const {
  auto it = interest.find(user);
  if (it == interest.end() || it->second.empty()) return -1;
  int topic = it->second.front().second;
  for (const auto& [from, t] : it->second) {
    if (from > ts) break;
    topic = t;
  }
  return topic;
}

int SyntheticTruth::match(const std::string& user, const std::string& item, int64_t ts) const {
  auto it = item_topic.find(item);
  return it != item_topic.end() && it->second == topic_at(user, ts) ? 1 : 0;
}

SyntheticTruth write_synthetic(const std::filesystem::path& dir, const SyntheticConfig& c) {
  if (c.users < 1 || c.events_per_user < 1 || c.items < c.topics || c.topics < 2 || c.topics > 8 ||
      c.mean_segment < 10 || c.exposure_in_topic < 0 || c.exposure_in_topic > 1 ||
      c.like_match < 0 || c.like_match > 1 || c.like_other < 0 || c.like_other > 1)
    throw Error(ErrorKind::Config,
                "synthetic: need users, events >= 1, 2-8 topics, items >= topics, mean segment "
                ">= 10 and probabilities in [0, 1]");
  std::filesystem::create_directories(dir);
  Mix rng(c.seed);
  SyntheticTruth truth;
  std::vector<std::vector<int>> by_topic(static_cast<std::size_t>(c.topics));
  {
    std::ofstream items(dir / "items.csv");
    items << "item_id,title,format\n";
    for (int i = 0; i < c.items; ++i) {
      const int topic = static_cast<int>(rng.below(static_cast<uint64_t>(c.topics)));
      std::string title = kFiller[rng.below(std::size(kFiller))];
      // Three distinct words of the topic: the only place the topic shows.
      int picked[3];
      for (int w = 0; w < 3; ++w) {
        int k;
        do k = static_cast<int>(rng.below(12));
        while (std::find(picked, picked + w, k) != picked + w);
        picked[w] = k;
        title += ' ';
        title += capitalised(kTopicWords[topic][k]);
      }
      const std::string id = fmt::format("i{}", i);
      items << id << "," << title << "," << kFormats[rng.below(3)] << "\n";
      truth.item_topic[id] = topic;
      by_topic[static_cast<std::size_t>(topic)].push_back(i);
    }
    if (!items) throw Error(ErrorKind::Io, fmt::format("cannot write {}", (dir / "items.csv").string()));
  }
  std::ofstream events(dir / "events.csv");
  events << "user_id,item_id,timestamp,label\n";
  const double drift = 1.0 / c.mean_segment;
  for (int u = 0; u < c.users; ++u) {
    const std::string user = fmt::format("u{}", u);
    auto& segments = truth.interest[user];
    int topic = static_cast<int>(rng.below(static_cast<uint64_t>(c.topics)));
    int64_t ts = c.start + static_cast<int64_t>(rng.below(3600));
    segments.emplace_back(ts, topic);
    int in_segment = 0;
    for (int e = 0; e < c.events_per_user; ++e, ts += 3600, ++in_segment) {
      if (in_segment >= 10 && rng.unit() < drift) {
        int next;
        do next = static_cast<int>(rng.below(static_cast<uint64_t>(c.topics)));
        while (next == topic);
        topic = next;
        segments.emplace_back(ts, topic);
        in_segment = 0;
      }
      int item;
      const auto& pool = by_topic[static_cast<std::size_t>(topic)];
      if (rng.unit() < c.exposure_in_topic && !pool.empty()) {
        item = pool[rng.below(pool.size())];
      } else {
        item = static_cast<int>(rng.below(static_cast<uint64_t>(c.items)));
      }
      const std::string id = fmt::format("i{}", item);
      const bool match = truth.item_topic[id] == topic;
      const int label = rng.unit() < (match ? c.like_match : c.like_other) ? 1 : 0;
      events << user << "," << id << "," << ts << "," << label << "\n";
    }
  }
  if (!events) throw Error(ErrorKind::Io, fmt::format("cannot write {}", (dir / "events.csv").string()));
  return truth;
}

}  // namespace liber
