// Interest records and item knowledge: JSON values ("v": 1) in their column families.
#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/common/bytes.h"
#include "liber/common/hash.h"
#include "liber/uil.h"
#include "liber/uil/keys.h"

namespace liber {

namespace {

using nlohmann::json;

json parse_value(std::string_view text, const char* what) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) throw std::runtime_error("not an object");
    return j;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Internal, std::string("corrupt state: ") + what + ": " + e.what());
  }
}

template <typename T>
void get_to(const json& j, const char* key, T& out) {
  if (auto it = j.find(key); it != j.end() && !it->is_null()) it->get_to(out);
}

}  // namespace

// One field list per record type serves both directions: (JSON key, member).
#define LIBER_INTEREST_FIELDS(X)                                                            \
  X("user", user) X("seq", seq) X("variant", variant) X("variant_name", variant_name) X("ok", ok) X("error", error) X("summary", summary)         \
  X("shift", shift) X("previous", previous_summary) X("model", model)                       \
  X("template_version", template_version) X("template_hash", template_hash)                 \
  X("prompt_hash", prompt_hash) X("prompt_tokens", prompt_tokens)                           \
  X("completion_tokens", completion_tokens) X("cached_prompt_tokens", cached_prompt_tokens) \
  X("latency_s", latency_s) X("attempts", attempts) X("behaviors", behaviors)               \
  X("behaviors_dropped", behaviors_dropped) X("from_cache", from_cache)                     \
  X("created_at", created_at) X("quality", quality) X("reasons", reasons)                  \
  X("candidates", candidates)
#define LIBER_ITEM_FIELDS(X)                                                                \
  X("item", item) X("ok", ok) X("error", error) X("text", text) X("model", model)           \
  X("template_version", template_version) X("template_hash", template_hash)                 \
  X("prompt_hash", prompt_hash) X("prompt_tokens", prompt_tokens)                           \
  X("completion_tokens", completion_tokens) X("attempts", attempts) X("latency_s", latency_s)
#define LIBER_PUT(key, member) j[key] = member;
#define LIBER_GET(key, member) get_to(j, key, r.member);

std::string InterestRecord::to_json() const {
  json j = {{"v", 1}};
  LIBER_INTEREST_FIELDS(LIBER_PUT)
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

InterestRecord InterestRecord::from_json(std::string_view text) {
  const json j = parse_value(text, "interest record");
  InterestRecord r;
  LIBER_INTEREST_FIELDS(LIBER_GET)
  return r;
}

std::string ItemKnowledge::to_json() const {
  json j = {{"v", 1}};
  LIBER_ITEM_FIELDS(LIBER_PUT)
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ItemKnowledge ItemKnowledge::from_json(std::string_view text) {
  const json j = parse_value(text, "item knowledge");
  ItemKnowledge r;
  LIBER_ITEM_FIELDS(LIBER_GET)
  return r;
}

#undef LIBER_GET
#undef LIBER_PUT
#undef LIBER_ITEM_FIELDS
#undef LIBER_INTEREST_FIELDS

std::string variant_prefix(std::string_view variant_id) {
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(variant_id.data(), variant_id.data() + variant_id.size(), v, 16);
  if (variant_id.size() != 16 || ec != std::errc() || end != variant_id.data() + variant_id.size())
    throw Error(ErrorKind::InvalidInput, fmt::format("'{}' is not a variant id (16 hex digits)", variant_id));
  std::string k;
  put_be64(k, v);
  return k;
}

std::string interest_key(std::string_view variant_id, std::string_view user, uint32_t seq) {
  return variant_prefix(variant_id) + user_seq_key(user, seq);
}

std::optional<InterestRecord> read_interest(Store& store, std::string_view variant_id,
                                           std::string_view user, uint32_t seq) {
  auto v = store.get(uil::kInterests, interest_key(variant_id, user, seq));
  if (!v) return std::nullopt;
  return InterestRecord::from_json(*v);
}

void put_interest(WriteBatch& batch, const InterestRecord& r) {
  batch.put(uil::kInterests, interest_key(r.variant, r.user, r.seq), r.to_json());
  // A fresh store's first records: without the version they would read as format 1.
  batch.put(kMetaFamily, uil::kVersionKey, std::to_string(kInterestsVersion));
}

std::vector<InterestRecord> read_interests(Store& store, std::string_view variant_id,
                                           std::string_view user) {
  std::vector<InterestRecord> out;
  store.scan(uil::kInterests, variant_prefix(variant_id) + user_key(user),
             [&](std::string_view, std::string_view v) {
               out.push_back(InterestRecord::from_json(v));
               return true;
             });
  return out;
}

void for_each_interest(Store& store, std::string_view variant_id,
                       const std::function<void(const InterestRecord&)>& fn) {
  store.scan(uil::kInterests, variant_id.empty() ? std::string() : variant_prefix(variant_id),
             [&](std::string_view, std::string_view v) {
               fn(InterestRecord::from_json(v));
               return true;
             });
}

std::optional<ItemKnowledge> read_item_knowledge(Store& store, std::string_view item) {
  auto v = store.get(uil::kItemKnowledge, item);
  if (!v) return std::nullopt;
  return ItemKnowledge::from_json(*v);
}

void for_each_item_knowledge(Store& store, const std::function<void(const ItemKnowledge&)>& fn) {
  store.scan(uil::kItemKnowledge, "", [&](std::string_view, std::string_view v) {
    fn(ItemKnowledge::from_json(v));
    return true;
  });
}

}  // namespace liber
