// Which users and partitions a learn run takes (sample, first users, a user list, max
// partitions), and which users a variant has learned whole.
#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/uil.h"
#include "liber/uil/keys.h"
#include "liber/uil/work.h"

namespace liber {

namespace {

// splitmix64, for --sample.
uint64_t mix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

namespace uil {

std::vector<UserWork> select_users(Store& store, const BehaviorLog& log, const LearnOptions& opt,
                                   const Variant& variant) {
  std::vector<UserWork> all;
  if (opt.only_users.empty()) {
    for_each_partition_in(store, variant.partitions, [&](const StoredPartition& p) {
      if (all.empty() || all.back().user != p.user) {
        all.emplace_back();
        all.back().user = p.user;
      }
      all.back().parts.push_back(p);
    });
  } else {
    // A few users (the service's new partitions): read theirs, not the whole store. In the
    // store's key order (length, then bytes), as the full scan gives them.
    std::vector<std::string> only = opt.only_users;
    std::sort(only.begin(), only.end(), [](const std::string& a, const std::string& b) {
      return a.size() != b.size() ? a.size() < b.size() : a < b;
    });
    only.erase(std::unique(only.begin(), only.end()), only.end());
    for (const std::string& user : only) {
      std::vector<StoredPartition> parts = read_partitions_in(store, variant.partitions, user);
      if (parts.empty()) continue;
      all.emplace_back();
      all.back().user = user;
      all.back().parts = std::move(parts);
    }
  }
  if (opt.sample > 0 && opt.sample < all.size()) {
    std::vector<std::size_t> idx(all.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    uint64_t state = opt.sample_seed;
    for (std::size_t i = 0; i < opt.sample; ++i) {
      const std::size_t j = i + static_cast<std::size_t>(mix(state) % (idx.size() - i));
      std::swap(idx[i], idx[j]);
    }
    idx.resize(opt.sample);
    std::sort(idx.begin(), idx.end());
    std::vector<UserWork> picked;
    for (std::size_t i : idx) picked.push_back(std::move(all[i]));
    all = std::move(picked);
  } else if (opt.users > 0 && opt.users < all.size()) {
    all.resize(opt.users);
  }
  for (UserWork& w : all) {
    std::sort(w.parts.begin(), w.parts.end(),
              [](const StoredPartition& a, const StoredPartition& b) { return a.seq < b.seq; });
    if (opt.max_partitions > 0 && w.parts.size() > opt.max_partitions)
      w.parts.resize(opt.max_partitions);
    w.description = describe_user(log, w.user);
    for (const InterestRecord& r : read_interests(store, variant.id(), w.user)) {
      if (r.ok) w.done.insert(r.seq);
      if (r.usable()) w.ok[r.seq] = r.summary;  // only verified summaries are carried
    }
    for (std::size_t i = 0; i < w.parts.size(); ++i)
      if (!w.done.count(w.parts[i].seq)) w.pending.push_back(i);
  }
  return all;
}

}  // namespace uil

std::vector<std::string> learned_users(Store& store, const Variant& variant) {
  const std::string id = variant.id();
  std::vector<std::string> out;
  std::string user;
  bool complete = true;
  for_each_partition_in(store, variant.partitions, [&](const StoredPartition& p) {
    if (p.user != user) {
      if (!user.empty() && complete) out.push_back(user);
      user = p.user;
      complete = true;
    }
    complete = complete && store.get(uil::kInterests, interest_key(id, p.user, p.seq)).has_value();
  });
  if (!user.empty() && complete) out.push_back(user);
  return out;
}

}  // namespace liber
