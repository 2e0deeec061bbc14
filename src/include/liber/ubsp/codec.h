// Binary encoding of UBSP keys and values (layout documented in include/liber/ubsp.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "liber/ubsp.h"

namespace liber::ubsp {

inline constexpr uint8_t kValueVersion = 1;

void put_varint(std::string& out, uint64_t v);
inline void put_zigzag(std::string& out, int64_t v) {
  put_varint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}
void put_be32(std::string& out, uint32_t v);
void put_be64(std::string& out, uint64_t v);
inline void put_lp(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

// Reads from a view, advancing it; throws Error(Internal) "corrupt state" on truncation.
class Reader {
 public:
  explicit Reader(std::string_view data, const char* what) : d_(data), what_(what) {}
  uint64_t varint();
  int64_t zigzag() {
    const uint64_t u = varint();
    return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  }
  uint8_t byte();
  uint32_t be32();
  uint64_t be64();
  std::string_view bytes(std::size_t n);
  std::string_view lp() { return bytes(varint()); }
  bool done() const { return d_.empty(); }
  [[noreturn]] void corrupt() const;

 private:
  std::string_view d_;
  const char* what_;
};

// Keys.
std::string user_key(std::string_view user);
void append_event_key(std::string& key, std::string_view user, std::string_view item, int64_t ts);
std::string partition_key(std::string_view user, uint32_t seq);
// Splits a partitions/caches key back into the user id.
std::string_view user_of_key(std::string_view key);

// Events inside values: the encoder takes the external item id of each event.
void put_event(std::string& out, std::string_view item, int64_t ts, int64_t prev_ts, float rating,
               int8_t label);
StoredEvent get_event(Reader& r, int64_t prev_ts);

std::string encode_partition(const Partition& p, const ItemCatalog& items);
StoredPartition decode_partition(std::string_view key, std::string_view value);
std::string encode_cache(const UserState& st, const ItemCatalog& items);
StoredCache decode_cache(std::string_view key, std::string_view value);

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ULL);

}  // namespace liber::ubsp
