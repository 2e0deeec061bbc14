// An ML-1M fixture ingested into a state store: the starting point of the UIL and UIF tests.
#pragma once

#include <filesystem>

#include "fixtures.h"
#include "liber/data.h"
#include "liber/ubsp.h"

namespace liber::testing {

// `users` users with `events` events each (seed 7), ingested into `store` with K = k.
inline BehaviorLog ingest_ml1m_fixture(const fs::path& data, const fs::path& store, int users,
                                       int events, std::size_t k) {
  write_ml1m_fixture(data, users, events, 7);
  BehaviorLog log = read_movielens_1m(data);
  PartitionRule rule;
  rule.count = k;
  ingest_log(store, log, rule, IngestOptions{});
  return log;
}

}  // namespace liber::testing
