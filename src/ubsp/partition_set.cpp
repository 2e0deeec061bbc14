// Partition sets: the store's UBSP partitions, or a set derived from them and stored beside
// them (layout in include/liber/ubsp.h).
#include <charconv>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/ubsp.h"
#include "liber/ubsp/codec.h"

namespace liber {

using namespace ubsp;

namespace {

// Key prefix of one derived set: the set's name, length-prefixed.
std::string set_prefix(const PartitionSet& set) {
  std::string k;
  put_lp(k, set.name());
  return k;
}

}  // namespace

PartitionSet PartitionSet::parse(std::string_view text) {
  if (text == "ubsp") return {};
  if (text.starts_with("first:")) {
    std::size_t n = 0;
    const std::string_view digits = text.substr(6);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec == std::errc() && end == digits.data() + digits.size() && n > 0) {
      PartitionSet s;
      s.first = n;
      return s;
    }
  }
  throw Error(ErrorKind::Config,
              fmt::format("unknown partition set '{}' (ubsp | first:N, N >= 1)", text));
}

std::string PartitionSet::name() const { return first ? fmt::format("first:{}", first) : "ubsp"; }

std::size_t derive_partition_set(Store& store, const PartitionSet& set) {
  if (!set.derived()) return 0;
  const std::string prefix = set_prefix(set);
  auto batch = store.new_batch();
  std::size_t added = 0;
  // A user's behaviors in order: the closed partitions by seq, then the open cache.
  std::string user;
  std::vector<StoredEvent> events;
  auto finish = [&] {
    if (user.empty() || events.size() < set.first) return;
    const std::string key = prefix + user_seq_key(user, 0);
    if (store.get(kDerivedPartitions, key)) return;  // derived once: what was summarised stays
    StoredPartition p;
    p.user = user;
    p.seq = 0;
    p.events.assign(events.begin(), events.begin() + static_cast<std::ptrdiff_t>(set.first));
    p.t_begin = p.events.front().ts;
    p.t_end = p.events.back().ts;
    p.reason = CloseReason::Count;
    batch->put(kDerivedPartitions, key, encode_partition(p));
    ++added;
  };
  // Pass 1, the closed partitions: users they give N behaviors are done; the others'
  // behaviors so far wait for their cache (which follows their last partition).
  std::unordered_map<std::string, std::vector<StoredEvent>> short_of;
  std::unordered_set<std::string> done;
  auto end_user = [&] {
    if (user.empty()) return;
    if (events.size() >= set.first) {
      finish();
      done.insert(user);
    } else {
      short_of[user] = std::move(events);
    }
  };
  for_each_partition(store, [&](const StoredPartition& p) {
    if (p.user != user) {
      end_user();
      user = p.user;
      events.clear();
    }
    if (events.size() < set.first) events.insert(events.end(), p.events.begin(), p.events.end());
  });
  end_user();
  // Pass 2, the open caches complete what the partitions began.
  for_each_cache(store, [&](const StoredCache& c) {
    if (done.contains(c.user)) return;
    user = c.user;
    auto it = short_of.find(c.user);
    events = it == short_of.end() ? std::vector<StoredEvent>() : std::move(it->second);
    events.insert(events.end(), c.events.begin(), c.events.end());
    finish();
  });
  if (batch->count() > 0) store.write(*batch, true);
  return added;
}

void for_each_partition_in(Store& store, const PartitionSet& set,
                           const std::function<void(const StoredPartition&)>& fn) {
  if (!set.derived()) return for_each_partition(store, fn);
  const std::string prefix = set_prefix(set);
  store.scan(kDerivedPartitions, prefix, [&](std::string_view k, std::string_view v) {
    fn(decode_partition(k.substr(prefix.size()), v));
    return true;
  });
}

std::vector<StoredPartition> read_partitions_in(Store& store, const PartitionSet& set,
                                                std::string_view user) {
  if (!set.derived()) return read_partitions(store, user);
  const std::string prefix = set_prefix(set) + user_key(user);
  const std::size_t skip = set_prefix(set).size();
  std::vector<StoredPartition> out;
  store.scan(kDerivedPartitions, prefix, [&](std::string_view k, std::string_view v) {
    out.push_back(decode_partition(k.substr(skip), v));
    return true;
  });
  return out;
}

}  // namespace liber
