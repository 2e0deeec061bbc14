// Reading UBSP state back: partitions, caches, late events, JSON export.
#include <cmath>

#include <nlohmann/json.hpp>

#include "liber/ubsp.h"
#include "liber/ubsp/codec.h"

namespace liber {

using namespace ubsp;

namespace {
bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }
}  // namespace

bool StoredPartition::operator==(const StoredPartition& o) const {
  if (user != o.user || seq != o.seq || t_begin != o.t_begin || t_end != o.t_end ||
      reason != o.reason || events.size() != o.events.size())
    return false;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const StoredEvent &a = events[i], &b = o.events[i];
    if (a.item != b.item || a.ts != b.ts || a.label != b.label || !same_float(a.rating, b.rating))
      return false;
  }
  return true;
}

std::vector<StoredPartition> read_partitions(Store& store, std::string_view user) {
  std::vector<StoredPartition> out;
  store.scan(kPartitions, user_key(user), [&](std::string_view k, std::string_view v) {
    out.push_back(decode_partition(k, v));
    return true;
  });
  return out;
}

std::optional<StoredCache> read_cache(Store& store, std::string_view user) {
  const std::string k = user_key(user);
  auto v = store.get(kCaches, k);
  if (!v) return std::nullopt;
  return decode_cache(k, *v);
}

void for_each_partition(Store& store, const std::function<void(const StoredPartition&)>& fn) {
  store.scan(kPartitions, "", [&](std::string_view k, std::string_view v) {
    fn(decode_partition(k, v));
    return true;
  });
}

void for_each_cache(Store& store, const std::function<void(const StoredCache&)>& fn) {
  store.scan(kCaches, "", [&](std::string_view k, std::string_view v) {
    fn(decode_cache(k, v));
    return true;
  });
}

std::vector<StoredLate> read_late(Store& store) {
  std::vector<StoredLate> out;
  store.scan(kLate, "", [&](std::string_view k, std::string_view v) {
    StoredLate l;
    l.user = std::string(user_of_key(k));
    ByteReader r(v, "late");
    const uint8_t reason = r.byte();
    if (reason != static_cast<uint8_t>(AddStatus::LateClosed) &&
        reason != static_cast<uint8_t>(AddStatus::LateWindow))
      r.corrupt();
    l.reason = static_cast<AddStatus>(reason);
    l.event = get_event(r, 0);
    out.push_back(std::move(l));
    return true;
  });
  return out;
}

std::string partition_json(const StoredPartition& p) {
  nlohmann::json j;
  j["user"] = p.user;
  j["seq"] = p.seq;
  j["t_begin"] = p.t_begin;
  j["t_end"] = p.t_end;
  j["reason"] = to_string(p.reason);
  j["size"] = p.events.size();
  nlohmann::json events = nlohmann::json::array();
  for (const StoredEvent& e : p.events) {
    nlohmann::json x;
    x["item"] = e.item;
    x["ts"] = e.ts;
    if (!std::isnan(e.rating)) x["rating"] = e.rating;
    if (e.label >= 0) x["label"] = e.label;
    events.push_back(std::move(x));
  }
  j["events"] = std::move(events);
  return j.dump();
}

}  // namespace liber
