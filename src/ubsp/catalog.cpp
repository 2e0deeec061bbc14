// The dataset's item catalog and user table in the store, so that every stage after ingest
// reads the store alone (layout in include/liber/ubsp.h).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/data/catalog_json.h"
#include "liber/error.h"
#include "liber/ubsp.h"
#include "liber/ubsp/codec.h"

namespace liber {

using namespace ubsp;
using data::attributes_from_json;
using data::attributes_json;
using data::domain_from_json;
using data::domain_json;
using nlohmann::json;

namespace {

constexpr const char* kCatalogMetaKey = "catalog";

std::string row_key(uint32_t row) {
  std::string k;
  put_be32(k, row);
  return k;
}

void put_codes(std::string& out, const std::vector<Attribute>& attributes, uint32_t row) {
  for (const Attribute& a : attributes) {
    if (row >= a.rows()) {
      put_varint(out, 0);
      continue;
    }
    const auto codes = a.row(row);
    put_varint(out, codes.size());
    for (uint32_t c : codes) put_varint(out, c);
  }
}

void get_codes(ByteReader& r, std::vector<Attribute>& attributes) {
  for (Attribute& a : attributes) {
    const uint64_t n = r.varint();
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t c = r.varint();
      if (c == 0 || c >= a.vocab.size()) r.corrupt();
      a.codes.push_back(static_cast<uint32_t>(c));
    }
    a.offsets.push_back(static_cast<uint32_t>(a.codes.size()));
  }
}

// Row 0 of every column is the unknown entity: no codes.
void push_empty_row(std::vector<Attribute>& attributes) {
  for (Attribute& a : attributes) a.offsets.push_back(static_cast<uint32_t>(a.codes.size()));
}

// A catalog stored before the domain was: what its reader would choose now.
Domain domain_before_nouns(const BehaviorLog& log) {
  if (log.name == "ml-1m" || log.name == "ml-100k") return movie_domain();
  Domain d;
  d.category = default_category(log.items);
  return d;
}

}  // namespace

void store_catalog(Store& store, const BehaviorLog& log) {
  const json meta = {{"v", 1},
                     {"name", log.name},
                     {"description", log.description},
                     {"like_threshold", log.like_threshold},
                     {"domain", domain_json(log.domain)},
                     {"items", {{"rows", log.items.size()}, {"attributes", attributes_json(log.items.attributes)}}},
                     {"users", {{"rows", log.users.size()}, {"attributes", attributes_json(log.users.attributes)}}}};
  auto batch = store.new_batch();
  // Invalid UTF-8 in a value is replaced, as the readers already do for their text.
  batch->put(kMetaFamily, kCatalogMetaKey, meta.dump(-1, ' ', false, json::error_handler_t::replace));
  // Rows beyond this log's (a re-ingest with a smaller table) would read back as its own.
  for (const Family family : {kItems, kUsers}) {
    const std::size_t rows = family.name == kItems.name ? log.items.size() : log.users.size();
    store.scan(family, "", [&](std::string_view k, std::string_view) {
      if (ByteReader(k, "catalog key").be32() >= rows) batch->del(family, k);
      return true;
    });
  }
  for (uint32_t row = 1; row < log.items.size(); ++row) {
    std::string v(1, static_cast<char>(kValueVersion));
    put_lp(v, log.items.ids.key(row));
    put_lp(v, row < log.items.titles.size() ? std::string_view(log.items.titles[row]) : "");
    put_varint(v, static_cast<uint64_t>(row < log.items.years.size() ? std::max(0, log.items.years[row]) : 0));
    put_codes(v, log.items.attributes, row);
    batch->put(kItems, row_key(row), v);
  }
  for (uint32_t row = 1; row < log.users.size(); ++row) {
    std::string v(1, static_cast<char>(kValueVersion));
    put_lp(v, log.users.ids.key(row));
    put_codes(v, log.users.attributes, row);
    batch->put(kUsers, row_key(row), v);
  }
  store.write(*batch, true);
}

bool has_catalog(Store& store) { return store.get(kMetaFamily, kCatalogMetaKey).has_value(); }

BehaviorLog load_behavior_log(Store& store, bool with_events) {
  const auto meta_text = store.get(kMetaFamily, kCatalogMetaKey);
  if (!meta_text)
    throw Error(ErrorKind::InvalidInput,
                fmt::format("the store at {} holds no item catalog (it was ingested by an older "
                            "liber): run liber ingest on it again with the same data, which adds "
                            "the catalog and changes nothing else",
                            store.path().string()));
  BehaviorLog log;
  try {
    const json meta = json::parse(*meta_text);
    if (meta.at("v").get<int>() != 1) throw Error(ErrorKind::Internal, "catalog version");
    log.name = meta.at("name").get<std::string>();
    log.description = meta.at("description").get<std::string>();
    log.like_threshold = meta.at("like_threshold").get<float>();
    log.items.attributes = attributes_from_json(meta.at("items").at("attributes"));
    log.users.attributes = attributes_from_json(meta.at("users").at("attributes"));
    log.domain = meta.contains("domain") ? domain_from_json(meta.at("domain"))
                                         : domain_before_nouns(log);
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Internal,
                fmt::format("corrupt catalog in the store at {}: {}", store.path().string(), e.what()));
  }
  log.items.titles.emplace_back();
  log.items.years.push_back(0);
  push_empty_row(log.items.attributes);
  push_empty_row(log.users.attributes);
  uint32_t expect = 1;
  store.scan(kItems, "", [&](std::string_view key, std::string_view value) {
    ByteReader k(key, "item key"), r(value, "item");
    if (k.be32() != expect++ || r.byte() != kValueVersion) r.corrupt();
    log.items.ids.add(r.lp());
    log.items.titles.emplace_back(r.lp());
    log.items.years.push_back(static_cast<int>(r.varint()));
    get_codes(r, log.items.attributes);
    return true;
  });
  expect = 1;
  store.scan(kUsers, "", [&](std::string_view key, std::string_view value) {
    ByteReader k(key, "user key"), r(value, "user");
    if (k.be32() != expect++ || r.byte() != kValueVersion) r.corrupt();
    log.users.ids.add(r.lp());
    get_codes(r, log.users.attributes);
    return true;
  });
  if (!with_events) return log;

  // Every accepted event: the closed partitions, then what the caches still hold.
  const auto add = [&](std::string_view user, const StoredEvent& e) {
    Event ev;
    ev.user = log.users.ids.find(user);
    ev.item = log.items.ids.find(e.item);
    ev.ts = e.ts;
    ev.rating = e.rating;
    ev.label = e.label;
    if (ev.user == 0 || ev.item == 0)
      throw Error(ErrorKind::Internal,
                  fmt::format("the store at {} holds an event of user '{}', item '{}' that its "
                              "catalog does not know",
                              store.path().string(), user, e.item));
    log.events.push_back(ev);
  };
  for_each_partition(store, [&](const StoredPartition& p) {
    for (const StoredEvent& e : p.events) add(p.user, e);
  });
  for_each_cache(store, [&](const StoredCache& c) {
    for (const StoredEvent& e : c.events) add(c.user, e);
  });
  return log;
}

}  // namespace liber
