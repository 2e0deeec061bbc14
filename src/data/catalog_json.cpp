// The catalog as one JSON document (liber/data.h: catalog_to_json) and its pieces
// (liber/data/catalog_json.h).
#include "liber/data/catalog_json.h"

#include <fmt/format.h>

#include "liber/error.h"

namespace liber {

using nlohmann::json;

namespace data {

json attributes_json(const std::vector<Attribute>& attributes) {
  json out = json::array();
  for (const Attribute& a : attributes) {
    json values = json::array();
    for (uint32_t c = 1; c < a.vocab.size(); ++c) values.push_back(a.vocab.key(c));
    out.push_back({{"name", a.name}, {"multi", a.multi}, {"values", values}, {"labels", a.labels}});
  }
  return out;
}

std::vector<Attribute> attributes_from_json(const json& j) {
  std::vector<Attribute> out;
  for (const json& a : j) {
    Attribute attr;
    attr.name = a.at("name").get<std::string>();
    attr.multi = a.at("multi").get<bool>();
    for (const json& v : a.at("values")) attr.vocab.add(v.get<std::string>());
    attr.labels = a.at("labels").get<std::unordered_map<std::string, std::string>>();
    out.push_back(std::move(attr));
  }
  return out;
}

json domain_json(const Domain& d) {
  return {{"item", d.item},         {"items", d.items},
          {"item_synonyms", d.item_synonyms}, {"category", d.category},
          {"rating_unit", d.rating_unit},     {"facets", d.facets}};
}

Domain domain_from_json(const json& j) {
  Domain d;
  d.item = j.at("item").get<std::string>();
  d.items = j.at("items").get<std::string>();
  d.item_synonyms = j.at("item_synonyms").get<std::vector<std::string>>();
  d.category = j.at("category").get<std::string>();
  d.rating_unit = j.at("rating_unit").get<std::string>();
  d.facets = j.at("facets").get<std::string>();
  return d;
}

}  // namespace data

namespace {

// Row r's codes of every attribute: [[codes of attribute 0], [codes of attribute 1], ...].
json row_codes(const std::vector<Attribute>& attributes, uint32_t row) {
  json out = json::array();
  for (const Attribute& a : attributes) {
    json codes = json::array();
    if (row < a.rows())
      for (uint32_t c : a.row(row)) codes.push_back(c);
    out.push_back(std::move(codes));
  }
  return out;
}

void push_row_codes(std::vector<Attribute>& attributes, const json& codes) {
  if (codes.size() != attributes.size()) throw std::invalid_argument("a row's codes do not match its attributes");
  for (std::size_t i = 0; i < attributes.size(); ++i) {
    Attribute& a = attributes[i];
    for (const json& c : codes[i]) {
      const auto code = c.get<uint32_t>();
      if (code == 0 || code >= a.vocab.size())
        throw std::invalid_argument(fmt::format("code {} of attribute '{}' is outside its vocabulary", code, a.name));
      a.codes.push_back(code);
    }
    a.offsets.push_back(static_cast<uint32_t>(a.codes.size()));
  }
}

}  // namespace

std::string catalog_to_json(const BehaviorLog& log) {
  json items = json::array(), users = json::array();
  for (uint32_t row = 1; row < log.items.size(); ++row)
    items.push_back({log.items.ids.key(row), row < log.items.titles.size() ? log.items.titles[row] : "",
                     row < log.items.years.size() ? log.items.years[row] : 0,
                     row_codes(log.items.attributes, row)});
  for (uint32_t row = 1; row < log.users.size(); ++row)
    users.push_back({log.users.ids.key(row), row_codes(log.users.attributes, row)});
  const json j = {{"v", 1},
                  {"name", log.name},
                  {"description", log.description},
                  {"like_threshold", log.like_threshold},
                  {"domain", data::domain_json(log.domain)},
                  {"items", {{"attributes", data::attributes_json(log.items.attributes)}, {"rows", items}}},
                  {"users", {{"attributes", data::attributes_json(log.users.attributes)}, {"rows", users}}}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

BehaviorLog catalog_from_json(std::string_view text, const std::string& where) {
  BehaviorLog log;
  try {
    const json j = json::parse(text);
    if (j.at("v").get<int>() != 1)
      throw std::invalid_argument(fmt::format("version {} (this liber reads 1)", j.at("v").dump()));
    log.name = j.at("name").get<std::string>();
    log.description = j.at("description").get<std::string>();
    log.like_threshold = j.at("like_threshold").get<float>();
    log.domain = data::domain_from_json(j.at("domain"));
    log.items.attributes = data::attributes_from_json(j.at("items").at("attributes"));
    log.users.attributes = data::attributes_from_json(j.at("users").at("attributes"));
    // Row 0 is the unknown entity: no codes.
    log.items.titles.emplace_back();
    log.items.years.push_back(0);
    for (Attribute& a : log.items.attributes) a.offsets = {0, 0};
    for (Attribute& a : log.users.attributes) a.offsets = {0, 0};
    for (const json& r : j.at("items").at("rows")) {
      if (log.items.ids.add(r.at(0).get<std::string>()) != log.items.size() - 1)
        throw std::invalid_argument(fmt::format("item '{}' is listed twice", r.at(0).get<std::string>()));
      log.items.titles.push_back(r.at(1).get<std::string>());
      log.items.years.push_back(r.at(2).get<int>());
      push_row_codes(log.items.attributes, r.at(3));
    }
    for (const json& r : j.at("users").at("rows")) {
      if (log.users.ids.add(r.at(0).get<std::string>()) != log.users.size() - 1)
        throw std::invalid_argument(fmt::format("user '{}' is listed twice", r.at(0).get<std::string>()));
      push_row_codes(log.users.attributes, r.at(1));
    }
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Parse, fmt::format("{}: not a liber catalog: {}", where, e.what()));
  }
  return log;
}

}  // namespace liber
