// Variants of interest records, their names in the store, and the upgrade of stores written
// before variants existed (see include/liber/uil.h, "Variants").
#include <algorithm>
#include <cctype>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/common/bytes.h"
#include "liber/common/hash.h"
#include "liber/common/scan.h"
#include "liber/error.h"
#include "liber/log.h"
#include "liber/uil.h"
#include "liber/uil/keys.h"

namespace liber {

namespace {

using nlohmann::json;

constexpr std::string_view kVariantMetaPrefix = "uil.variant/";

std::string variant_meta_key(std::string_view name) {
  return std::string(kVariantMetaPrefix) + std::string(name);
}

void check_name(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 64 &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
                  });
  if (!ok)
    throw Error(ErrorKind::Config,
                fmt::format("variant name '{}': use 1-64 letters, digits, '-' or '_'", name));
}

}  // namespace

std::string Variant::id() const {
  return hex16(fnv1a_fields({partitions.name(), cascade ? "cascade" : "no-cascade", model, template_hash}));
}

std::string Variant::to_json() const {
  return json{{"name", name},
              {"id", id()},
              {"partitions", partitions.name()},
              {"cascade", cascade},
              {"model", model},
              {"template_version", template_version},
              {"template_hash", template_hash}}
      .dump();
}

Variant Variant::from_json(std::string_view text) {
  try {
    const json j = json::parse(text);
    Variant v;
    v.name = j.at("name").get<std::string>();
    v.partitions = PartitionSet::parse(j.at("partitions").get<std::string>());
    v.cascade = j.at("cascade").get<bool>();
    v.model = j.at("model").get<std::string>();
    v.template_version = j.at("template_version").get<std::string>();
    v.template_hash = j.at("template_hash").get<std::string>();
    return v;
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Internal, std::string("corrupt state: variant: ") + e.what());
  }
}

std::optional<Variant> find_variant(Store& store, std::string_view name) {
  const auto v = store.get(kMetaFamily, variant_meta_key(name));
  if (!v) return std::nullopt;
  return Variant::from_json(*v);
}

std::vector<Variant> list_variants(Store& store) {
  std::vector<Variant> out;
  store.scan(kMetaFamily, kVariantMetaPrefix, [&](std::string_view, std::string_view v) {
    out.push_back(Variant::from_json(v));
    return true;
  });
  return out;
}

void register_variant(Store& store, const Variant& variant) {
  check_name(variant.name);
  migrate_interests(store);  // a variant's records need the current format (marks a new store)
  const auto old = find_variant(store, variant.name);
  if (old && old->id() == variant.id()) return;
  if (old)
    log_warning(fmt::format("variant '{}' now stands for {} (partitions {}, {}, model {}, template "
                            "{}); the records of its earlier settings stay under id {}",
                            variant.name, variant.id(), variant.partitions.name(),
                            variant.cascade ? "cascade" : "no cascade", variant.model,
                            variant.template_version, old->id()));
  auto batch = store.new_batch();
  batch->put(kMetaFamily, variant_meta_key(variant.name), variant.to_json());
  store.write(*batch, true);
}

int interests_version(Store& store) {
  if (const auto v = store.get(kMetaFamily, uil::kVersionKey)) return std::stoi(*v);
  return has_keys(store, uil::kInterests) ? 1 : kInterestsVersion;  // none yet: nothing to upgrade
}

void require_current_interests(Store& store) {
  if (interests_version(store) >= kInterestsVersion) return;
  throw Error(ErrorKind::InvalidInput,
              fmt::format("the store at {} keeps its interest records in format 1 (before "
                          "variants); run `liber migrate --store {}` once, which re-keys them by "
                          "variant and loses nothing",
                          store.path().string(), store.path().string()));
}

std::size_t migrate_interests(Store& store) {
  if (store.get(kMetaFamily, uil::kVersionKey)) return 0;
  // Format 1: key = user key + seq, no variant. Every record names its model and template;
  // "cascade" unless no later partition's record carried a previous summary.
  std::vector<std::pair<std::string, InterestRecord>> old;
  store.scan(uil::kInterests, "", [&](std::string_view k, std::string_view v) {
    old.emplace_back(std::string(k), InterestRecord::from_json(v));
    return true;
  });
  bool later = false, carried = false;
  for (const auto& [k, r] : old) {
    later |= r.seq > 0;
    carried |= r.seq > 0 && !r.previous_summary.empty();
  }
  const bool cascade = carried || !later;
  std::map<std::pair<std::string, std::string>, Variant> groups;  // (model, template hash)
  std::map<std::pair<std::string, std::string>, std::size_t> sizes;
  for (const auto& [k, r] : old) {
    Variant& v = groups[{r.model, r.template_hash}];
    v.cascade = cascade;
    v.model = r.model;
    v.template_version = r.template_version;
    v.template_hash = r.template_hash;
    ++sizes[{r.model, r.template_hash}];
  }
  // The largest group takes the plain name, the others the name and their id.
  const std::string base = cascade ? "cascade" : "no-cascade";
  std::pair<std::string, std::string> largest;
  std::size_t most = 0;
  for (const auto& [key, n] : sizes)
    if (n > most) most = n, largest = key;
  auto batch = store.new_batch();  // one batch: the upgrade happens whole or not at all
  for (auto& [key, v] : groups) {
    v.name = key == largest ? base : base + "-" + v.id().substr(0, 8);
    batch->put(kMetaFamily, variant_meta_key(v.name), v.to_json());
  }
  for (auto& [k, r] : old) {
    const Variant& v = groups.at({r.model, r.template_hash});
    r.variant = v.id();
    r.variant_name = v.name;
    batch->del(uil::kInterests, k);
    batch->put(uil::kInterests, interest_key(r.variant, r.user, r.seq), r.to_json());
  }
  // The run reports of format 1 ("uil.run/<ms>") belong to the main variant.
  if (!old.empty()) {
    const std::string main = groups.at(largest).id();
    store.scan(kProgressFamily, "uil.run/", [&](std::string_view k, std::string_view v) {
      const std::string_view rest = k.substr(8);
      if (rest.find('/') != std::string_view::npos) return true;  // already keyed by variant
      batch->del(kProgressFamily, k);
      batch->put(kProgressFamily, fmt::format("uil.run/{}/{}", main, rest), v);
      return true;
    });
  }
  batch->put(kMetaFamily, uil::kVersionKey, std::to_string(kInterestsVersion));
  store.write(*batch, true);
  if (!old.empty())
    log_info(fmt::format("store {}: {} interest records re-keyed by variant ({})",
                         store.path().string(), old.size(), groups.at(largest).name));
  return old.size();
}

}  // namespace liber
