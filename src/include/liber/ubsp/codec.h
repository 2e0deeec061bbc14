// Binary encoding of UBSP keys and values (layout documented in include/liber/ubsp.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "liber/common/bytes.h"
#include "liber/common/hash.h"
#include "liber/store.h"
#include "liber/ubsp.h"

namespace liber::ubsp {

inline constexpr uint8_t kValueVersion = 1;

// UBSP's column families (layout in include/liber/ubsp.h); meta and progress are the store's.
inline constexpr Family kEvents{"events"};          // dedup keys of every event seen
inline constexpr Family kCaches{"caches"};          // per-user short-term cache
inline constexpr Family kPartitions{"partitions"};  // closed partitions
inline constexpr Family kLate{"late"};              // events rejected as late, with why
inline constexpr Family kItems{"items"};            // the item catalog, by row
inline constexpr Family kUsers{"users"};            // the user table, by row
inline constexpr Family kDerivedPartitions{"derived_partitions"};  // partition sets but "ubsp"

// Keys (user_key, user_seq_key and user_of_key are common/bytes.h's): events are keyed by
// (user, item, ts), partitions by user_seq_key(user, seq), caches by user_key(user).
void append_event_key(std::string& key, std::string_view user, std::string_view item, int64_t ts);
inline std::string partition_key(std::string_view user, uint32_t seq) {
  return user_seq_key(user, seq);
}

// Events inside values: the encoder takes the external item id of each event.
void put_event(std::string& out, std::string_view item, int64_t ts, int64_t prev_ts, float rating,
               int8_t label);
StoredEvent get_event(ByteReader& r, int64_t prev_ts);

std::string encode_partition(const Partition& p, const ItemCatalog& items);
std::string encode_partition(const StoredPartition& p);  // the same bytes from the stored form
StoredPartition decode_partition(std::string_view key, std::string_view value);
std::string encode_cache(const UserState& st, const ItemCatalog& items);
StoredCache decode_cache(std::string_view key, std::string_view value);

}  // namespace liber::ubsp
