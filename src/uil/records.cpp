// Interest records and item knowledge: JSON values ("v": 1) in their column families.
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/ubsp/codec.h"
#include "liber/uil.h"

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

std::string InterestRecord::to_json() const {
  json j = {{"v", 1},
            {"user", user},
            {"seq", seq},
            {"ok", ok},
            {"error", error},
            {"summary", summary},
            {"shift", shift},
            {"previous", previous_summary},
            {"model", model},
            {"template_version", template_version},
            {"template_hash", template_hash},
            {"prompt_hash", prompt_hash},
            {"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"cached_prompt_tokens", cached_prompt_tokens},
            {"latency_s", latency_s},
            {"attempts", attempts},
            {"behaviors", behaviors},
            {"behaviors_dropped", behaviors_dropped},
            {"from_cache", from_cache},
            {"created_at", created_at}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

InterestRecord InterestRecord::from_json(std::string_view text) {
  const json j = parse_value(text, "interest record");
  InterestRecord r;
  get_to(j, "user", r.user);
  get_to(j, "seq", r.seq);
  get_to(j, "ok", r.ok);
  get_to(j, "error", r.error);
  get_to(j, "summary", r.summary);
  get_to(j, "shift", r.shift);
  get_to(j, "previous", r.previous_summary);
  get_to(j, "model", r.model);
  get_to(j, "template_version", r.template_version);
  get_to(j, "template_hash", r.template_hash);
  get_to(j, "prompt_hash", r.prompt_hash);
  get_to(j, "prompt_tokens", r.prompt_tokens);
  get_to(j, "completion_tokens", r.completion_tokens);
  get_to(j, "cached_prompt_tokens", r.cached_prompt_tokens);
  get_to(j, "latency_s", r.latency_s);
  get_to(j, "attempts", r.attempts);
  get_to(j, "behaviors", r.behaviors);
  get_to(j, "behaviors_dropped", r.behaviors_dropped);
  get_to(j, "from_cache", r.from_cache);
  get_to(j, "created_at", r.created_at);
  return r;
}

std::string ItemKnowledge::to_json() const {
  json j = {{"v", 1},
            {"item", item},
            {"ok", ok},
            {"error", error},
            {"text", text},
            {"model", model},
            {"template_version", template_version},
            {"template_hash", template_hash},
            {"prompt_hash", prompt_hash},
            {"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"attempts", attempts},
            {"latency_s", latency_s}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ItemKnowledge ItemKnowledge::from_json(std::string_view text) {
  const json j = parse_value(text, "item knowledge");
  ItemKnowledge k;
  get_to(j, "item", k.item);
  get_to(j, "ok", k.ok);
  get_to(j, "error", k.error);
  get_to(j, "text", k.text);
  get_to(j, "model", k.model);
  get_to(j, "template_version", k.template_version);
  get_to(j, "template_hash", k.template_hash);
  get_to(j, "prompt_hash", k.prompt_hash);
  get_to(j, "prompt_tokens", k.prompt_tokens);
  get_to(j, "completion_tokens", k.completion_tokens);
  get_to(j, "attempts", k.attempts);
  get_to(j, "latency_s", k.latency_s);
  return k;
}

std::string interest_key(std::string_view user, uint32_t seq) {
  return ubsp::partition_key(user, seq);
}

std::vector<InterestRecord> read_interests(Store& store, std::string_view user) {
  std::vector<InterestRecord> out;
  store.scan(Family::Interests, ubsp::user_key(user), [&](std::string_view, std::string_view v) {
    out.push_back(InterestRecord::from_json(v));
    return true;
  });
  return out;
}

void for_each_interest(Store& store, const std::function<void(const InterestRecord&)>& fn) {
  store.scan(Family::Interests, "", [&](std::string_view, std::string_view v) {
    fn(InterestRecord::from_json(v));
    return true;
  });
}

std::optional<ItemKnowledge> read_item_knowledge(Store& store, std::string_view item) {
  auto v = store.get(Family::ItemKnowledge, item);
  if (!v) return std::nullopt;
  return ItemKnowledge::from_json(*v);
}

void for_each_item_knowledge(Store& store, const std::function<void(const ItemKnowledge&)>& fn) {
  store.scan(Family::ItemKnowledge, "", [&](std::string_view, std::string_view v) {
    fn(ItemKnowledge::from_json(v));
    return true;
  });
}

}  // namespace liber
