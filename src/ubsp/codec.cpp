#include "liber/ubsp/codec.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "liber/error.h"

namespace liber::ubsp {

void append_event_key(std::string& key, std::string_view user, std::string_view item, int64_t ts) {
  put_lp(key, user);
  put_lp(key, item);
  put_be64(key, static_cast<uint64_t>(ts) ^ (uint64_t{1} << 63));
}

// Tag byte: bits 0-1 = label + 1; bits 2-3 = rating kind (0 NaN, 1 half-steps byte, 2 float).
void put_event(std::string& out, std::string_view item, int64_t ts, int64_t prev_ts, float rating,
               int8_t label) {
  put_lp(out, item);
  put_zigzag(out, ts - prev_ts);
  int kind = 0;
  int half = 0;
  if (!std::isnan(rating)) {
    const float h = rating * 2.0f;
    if (h >= 0.0f && h <= 255.0f && h == std::floor(h)) {
      kind = 1;
      half = static_cast<int>(h);
    } else {
      kind = 2;
    }
  }
  out.push_back(static_cast<char>((label + 1) | (kind << 2)));
  if (kind == 1) {
    out.push_back(static_cast<char>(half));
  } else if (kind == 2) {
    uint32_t bits;
    std::memcpy(&bits, &rating, 4);
    put_be32(out, bits);
  }
}

StoredEvent get_event(ByteReader& r, int64_t prev_ts) {
  StoredEvent e;
  e.item = std::string(r.lp());
  e.ts = prev_ts + r.zigzag();
  const uint8_t tag = r.byte();
  e.label = static_cast<int8_t>(static_cast<int>(tag & 3) - 1);
  const int kind = (tag >> 2) & 3;
  if (kind == 1) {
    e.rating = static_cast<float>(r.byte()) / 2.0f;
  } else if (kind == 2) {
    const uint32_t bits = r.be32();
    std::memcpy(&e.rating, &bits, 4);
  } else {
    e.rating = NAN;
  }
  return e;
}

namespace {

// [version][reason][n][t_begin][events]; item_of gives an event's external item id.
template <typename Events, typename ItemOf>
std::string encode_partition_value(CloseReason reason, int64_t t_begin, const Events& events,
                                   ItemOf item_of) {
  std::string v;
  v.reserve(8 + events.size() * 8);
  v.push_back(static_cast<char>(kValueVersion));
  v.push_back(static_cast<char>(reason));
  put_varint(v, events.size());
  put_zigzag(v, t_begin);
  int64_t prev = t_begin;
  for (const auto& e : events) {
    put_event(v, item_of(e), e.ts, prev, e.rating, e.label);
    prev = e.ts;
  }
  return v;
}

}  // namespace

std::string encode_partition(const Partition& p, const ItemCatalog& items) {
  return encode_partition_value(p.reason, p.t_begin, p.events,
                                [&](const Event& e) -> std::string_view { return items.ids.key(e.item); });
}

std::string encode_partition(const StoredPartition& p) {
  return encode_partition_value(p.reason, p.t_begin, p.events,
                                [](const StoredEvent& e) -> std::string_view { return e.item; });
}

StoredPartition decode_partition(std::string_view key, std::string_view value) {
  StoredPartition p;
  ByteReader k(key, "partition key");
  p.user = std::string(k.lp());
  p.seq = k.be32();
  ByteReader r(value, "partition");
  if (r.byte() != kValueVersion) r.corrupt();
  const uint8_t reason = r.byte();
  if (reason >= kCloseReasonCount) r.corrupt();
  p.reason = static_cast<CloseReason>(reason);
  const uint64_t n = r.varint();
  p.t_begin = r.zigzag();
  int64_t prev = p.t_begin;
  p.events.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    p.events.push_back(get_event(r, prev));
    prev = p.events.back().ts;
  }
  p.t_end = p.events.empty() ? p.t_begin : p.events.back().ts;
  return p;
}

std::string encode_cache(const UserState& st, const ItemCatalog& items) {
  std::string v;
  v.reserve(16 + st.cache.size() * 8);
  v.push_back(static_cast<char>(kValueVersion));
  put_varint(v, st.next_seq);
  put_zigzag(v, st.newest_ts);
  put_zigzag(v, st.last_end);
  put_varint(v, st.cache.size());
  int64_t prev = 0;
  for (const Event& e : st.cache) {
    put_event(v, items.ids.key(e.item), e.ts, prev, e.rating, e.label);
    prev = e.ts;
  }
  return v;
}

StoredCache decode_cache(std::string_view key, std::string_view value) {
  StoredCache c;
  c.user = std::string(user_of_key(key));
  ByteReader r(value, "cache");
  if (r.byte() != kValueVersion) r.corrupt();
  c.next_seq = static_cast<uint32_t>(r.varint());
  c.newest_ts = r.zigzag();
  c.last_end = r.zigzag();
  const uint64_t n = r.varint();
  int64_t prev = 0;
  c.events.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    c.events.push_back(get_event(r, prev));
    prev = c.events.back().ts;
  }
  return c;
}

}  // namespace liber::ubsp
