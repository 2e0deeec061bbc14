// Request bodies -> events and score requests; see include/liber/serve.h.
#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/serve.h"
#include "liber/serve/echo.h"

namespace liber {
namespace {

using json = nlohmann::json;

// Line and column (from 1) of byte `offset` in `text`.
std::string place(std::string_view text, std::size_t offset, std::size_t first_line = 1) {
  offset = std::min(offset, text.size());
  std::size_t line = first_line, column = 1;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') ++line, column = 1;
    else ++column;
  }
  return fmt::format("line {}, column {}", line, column);
}

json parse(std::string_view text, std::size_t first_line) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // byte is 1-based and points at the offending character (or one past the end).
    const std::size_t at = e.byte > 0 ? e.byte - 1 : 0;
    std::string what = e.what();
    if (const std::size_t colon = what.rfind(": "); colon != std::string::npos)
      what = what.substr(colon + 2);
    throw Error(ErrorKind::Parse, fmt::format("request body, {}: malformed JSON ({})",
                                              place(text, at, first_line), what));
  } catch (const json::exception& e) {
    // Well-formed but not representable, e.g. a number past double's range (found by
    // fuzz/events_fuzz.cpp: "3e+499").
    std::string what = e.what();
    if (const std::size_t colon = what.rfind("] "); colon != std::string::npos)
      what = what.substr(colon + 2);
    throw Error(ErrorKind::Parse, fmt::format("request body, from line {}: {}", first_line, what));
  }
}

// An id field's text: a string, or an integer written in decimal.
bool id_text(const json& value, std::string& key, std::string& why) {
  if (value.is_string()) key = value.get<std::string>();
  else if (value.is_number_unsigned()) key = std::to_string(value.get<uint64_t>());
  else if (value.is_number_integer()) key = std::to_string(value.get<int64_t>());
  else return why = fmt::format("must be a string or an integer id, not {}", value.type_name()), false;
  return true;
}

class EventReader {
 public:
  EventReader(const ItemCatalog& items, const UserTable& users) : items_(items), users_(users) {
    max_ts_ = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count() +
              86400;
  }

  void read(const json& j, std::size_t index, DecodedEvents& out) const {
    auto fail = [&](std::string field, std::string reason) {
      out.bad.push_back({index, std::move(field), std::move(reason)});
    };
    if (!j.is_object()) return fail("", fmt::format("an event must be a JSON object, not {}", j.type_name()));
    Event e;
    std::string why;
    if (!id(j, "user", users_.ids, e.user, why)) return fail("user", why);
    if (!id(j, "item", items_.ids, e.item, why)) return fail("item", why);
    const auto ts = j.find("ts");
    if (ts == j.end()) return fail("ts", "missing");
    if (!ts->is_number_integer())
      return fail("ts", fmt::format("must be an integer (seconds since the Unix epoch), not {}",
                                    ts->is_number() ? "a fraction" : ts->type_name()));
    if (ts->is_number_unsigned() && ts->get<uint64_t>() > static_cast<uint64_t>(max_ts_))
      return fail("ts", "more than a day in the future");
    e.ts = ts->get<int64_t>();
    if (e.ts < 0) return fail("ts", "before 1970");
    if (e.ts > max_ts_) return fail("ts", "more than a day in the future");
    if (const auto r = j.find("rating"); r != j.end() && !r->is_null()) {
      if (!r->is_number()) return fail("rating", fmt::format("must be a number, not {}", r->type_name()));
      const double v = r->get<double>();
      if (!std::isfinite(v) || std::abs(v) > 1e9) return fail("rating", "out of range");
      e.rating = static_cast<float>(v);
    }
    if (const auto l = j.find("label"); l != j.end() && !l->is_null()) {
      if (l->is_boolean()) e.label = l->get<bool>() ? 1 : 0;
      else if (l->is_number_integer() && (l->get<int64_t>() == 0 || l->get<int64_t>() == 1))
        e.label = static_cast<int8_t>(l->get<int64_t>());
      else return fail("label", "must be 0 or 1");
    }
    out.events.push_back(e);
    out.position.push_back(index);
  }

 private:
  static bool id(const json& j, const char* field, const Vocab& vocab, uint32_t& out,
                 std::string& why) {
    const auto it = j.find(field);
    if (it == j.end()) return why = "missing", false;
    std::string key;
    if (!id_text(*it, key, why)) return false;
    out = vocab.find(key);
    if (out == 0) {
      return why = fmt::format("unknown {} '{}' (not in the store's catalog)", field,
                               serve::echo_id(key)),
             false;
    }
    return true;
  }

  const ItemCatalog& items_;
  const UserTable& users_;
  int64_t max_ts_ = 0;
};

void check_count(std::size_t n, std::size_t max_events) {
  if (n > max_events)
    throw Error(ErrorKind::Limit,
                fmt::format("the request holds more than {} events (limit: events per request)", max_events));
}

}  // namespace

DecodedEvents decode_events(std::string_view body, const ItemCatalog& items,
                            const UserTable& users, std::size_t max_events) {
  DecodedEvents out;
  const EventReader reader(items, users);
  const std::size_t first = body.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) throw Error(ErrorKind::Parse, "request body: no events (empty body)");
  if (body[first] == '[') {
    const json array = parse(body, 1);
    if (!array.is_array()) throw Error(ErrorKind::Parse, "request body: not a JSON array");
    check_count(array.size(), max_events);
    out.total = array.size();
    for (std::size_t i = 0; i < array.size(); ++i) reader.read(array[i], i, out);
    return out;
  }
  // JSON lines.
  std::size_t line = 1;
  for (std::size_t pos = 0; pos < body.size(); ++line) {
    std::size_t end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view text = body.substr(pos, end - pos);
    pos = end + 1;
    if (text.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    check_count(out.total + 1, max_events);
    const json j = parse(text, line);
    if (!j.is_object())
      throw Error(ErrorKind::Parse, fmt::format("request body, line {}: a JSON line must be an event object, not {}",
                                                line, j.type_name()));
    reader.read(j, out.total++, out);
  }
  return out;
}

ScoreRequest decode_score_request(std::string_view body, const UserTable& users,
                                  const std::function<bool(std::string_view)>& known_item,
                                  std::size_t max_items) {
  const json j = parse(body, 1);
  if (!j.is_object())
    throw Error(ErrorKind::Parse, fmt::format("request body: a score request must be a JSON object, not {}",
                                              j.type_name()));
  ScoreRequest out;
  auto fail = [&](std::string field, std::string reason) {
    out.field = std::move(field);
    out.reason = std::move(reason);
    return out;
  };
  const auto user = j.find("user");
  if (user == j.end()) return fail("user", "missing");
  if (!id_text(*user, out.user, out.reason)) return fail("user", out.reason);
  if (users.ids.find(out.user) == 0)
    return fail("user", fmt::format("unknown user '{}' (not in the store's catalog)", serve::echo_id(out.user)));
  const auto items = j.find("items");
  if (items == j.end()) return fail("items", "missing");
  if (!items->is_array()) return fail("items", fmt::format("must be an array of item ids, not {}", items->type_name()));
  if (items->empty()) return fail("items", "empty: nothing to score");
  if (items->size() > max_items)
    throw Error(ErrorKind::Limit, fmt::format("the request holds more than {} items (limit: items per "
                                              "request)", max_items));
  for (std::size_t i = 0; i < items->size(); ++i) {
    std::string key, why;
    const std::string field = fmt::format("items[{}]", i);
    if (!id_text((*items)[i], key, why)) return fail(field, why);
    if (!known_item(key))
      return fail(field, fmt::format("unknown item '{}' (not in the model's vocabulary)", serve::echo_id(key)));
    out.items.push_back(std::move(key));
  }
  if (const auto ts = j.find("ts"); ts != j.end() && !ts->is_null()) {
    if (!ts->is_number_integer())
      return fail("ts", fmt::format("must be an integer (seconds since the Unix epoch), not {}",
                                    ts->is_number() ? "a fraction" : ts->type_name()));
    if (ts->is_number_integer() && !ts->is_number_unsigned() && ts->get<int64_t>() < 0)
      return fail("ts", "before 1970");
    if (ts->is_number_unsigned() && ts->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      return fail("ts", "out of range");
    out.ts = ts->get<int64_t>();
  }
  return out;
}

}  // namespace liber
