// The catalog's pieces as JSON, shared by the store's catalog record (src/ubsp/catalog.cpp)
// and a saved model's vocabulary (catalog_to_json in liber/data.h).
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "liber/data.h"

namespace liber::data {

// [{"name", "multi", "values": [value of code 1, 2, ...], "labels": {value: text}}]
nlohmann::json attributes_json(const std::vector<Attribute>& attributes);
// The attributes' schema and vocabularies, no rows.
std::vector<Attribute> attributes_from_json(const nlohmann::json& j);
nlohmann::json domain_json(const Domain& d);
Domain domain_from_json(const nlohmann::json& j);

}  // namespace liber::data
