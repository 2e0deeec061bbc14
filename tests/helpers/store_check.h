// The crash tests' final check: a store against the in-memory partitioner over the same
// events (independent of the durable path), user by user.
#pragma once

#include <gtest/gtest.h>

#include <span>

#include "liber/store.h"
#include "liber/ubsp.h"

namespace liber::testing {

// One user's stored partitions (sizes and timestamps) and cache size equal what the
// in-memory run `ref` closed and kept; returns the events the store holds for the user.
inline std::size_t expect_user_matches_partitioner(Store& store, const BehaviorLog& log, const MemoryRun& ref,
                                                   uint32_t u) {
  const std::string user = log.users.ids.key(u);
  std::vector<const Partition*> want;
  for (const Partition& p : ref.partitions)
    if (p.user == u) want.push_back(&p);
  const auto stored = read_partitions(store, user);
  EXPECT_EQ(stored.size(), want.size()) << user;
  for (std::size_t k = 0; k < std::min(stored.size(), want.size()); ++k) {
    EXPECT_EQ(stored[k].events.size(), want[k]->events.size()) << user << " partition " << k;
    for (std::size_t e = 0; e < std::min(stored[k].events.size(), want[k]->events.size()); ++e)
      EXPECT_EQ(stored[k].events[e].ts, want[k]->events[e].ts);
  }
  std::size_t held = 0;
  for (const auto& p : stored) held += p.events.size();
  const auto cache = read_cache(store, user);
  const std::size_t cached = cache ? cache->events.size() : 0;
  EXPECT_EQ(cached, ref.users[u].cache.size()) << user;
  return held + cached;
}

// Every user of the store against partition_in_memory over `events`; returns the events
// the store holds.
inline std::size_t expect_store_matches_partitioner(Store& store, const BehaviorLog& log,
                                                    std::span<const Event> events,
                                                    const PartitionRule& rule) {
  const MemoryRun ref = partition_in_memory(log, events, rule);
  std::size_t held = 0;
  for (uint32_t u = 1; u < log.users.size(); ++u) held += expect_user_matches_partitioner(store, log, ref, u);
  return held;
}

}  // namespace liber::testing
