#include "liber/serve/user_view.h"

#include <set>

#include "liber/ubsp.h"
#include "liber/uif.h"
#include "liber/uil.h"

namespace liber::serve {

nlohmann::json user_view(Store& store, std::string_view user, bool vectors) {
  using json = nlohmann::json;
  json out{{"user", user}};
  const auto cache = read_cache(store, user);
  json c{{"size", cache ? cache->events.size() : 0}};
  if (cache && !cache->events.empty()) {
    c["t_begin"] = cache->events.front().ts;
    c["t_end"] = cache->events.back().ts;
  }
  out["cache"] = c;
  std::set<uint32_t> closed;
  json parts = json::array();
  for (const StoredPartition& p : read_partitions(store, user)) {
    closed.insert(p.seq);
    parts.push_back({{"seq", p.seq}, {"t_begin", p.t_begin}, {"t_end", p.t_end},
                     {"size", p.events.size()}, {"reason", to_string(p.reason)}});
  }
  out["partitions"] = parts;
  json variants = json::array();
  if (interests_version(store) >= kInterestsVersion) {
    for (const Variant& v : list_variants(store)) {
      const std::string id = v.id();
      json records = json::array();
      std::set<uint32_t> done;
      for (const InterestRecord& r : read_interests(store, id, user)) {
        if (!r.call_failed()) done.insert(r.seq);  // a failed call: the pipeline retries it
        json j{{"seq", r.seq}, {"ok", r.ok}, {"quality", r.quality}, {"summary", r.summary},
               {"shift", r.shift}, {"reasons", r.reasons}};
        if (!r.error.empty()) j["error"] = r.error;
        if (vectors)
          if (auto kv = read_partition_vector(store, id, user, r.seq)) {
            j["vector"] = kv->values;
            j["encoder"] = kv->encoder;
          }
        records.push_back(std::move(j));
      }
      json pending = json::array();
      if (!v.partitions.derived())
        for (uint32_t seq : closed)
          if (!done.count(seq)) pending.push_back(seq);
      variants.push_back({{"name", v.name}, {"id", id}, {"partitions", v.partitions.name()},
                          {"records", std::move(records)}, {"pending", std::move(pending)}});
    }
  }
  out["variants"] = variants;
  return out;
}

}  // namespace liber::serve
