// The domain's nouns (liber/data.h): what prompts and the verifier call items and their kind.
#include <string_view>

#include "liber/data.h"

namespace liber {

namespace {

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::string Domain::category_singular() const {
  const std::string& c = category;
  if (ends_with(c, "ies") && c.size() > 3) return c.substr(0, c.size() - 3) + "y";
  if (ends_with(c, "ss")) return c;  // "class"
  if (ends_with(c, "s") && c.size() > 1) return c.substr(0, c.size() - 1);
  return c;
}

std::string Domain::category_plural() const {
  const std::string& c = category;
  if (ends_with(c, "ss")) return c + "es";
  if (ends_with(c, "s")) return c;
  if (ends_with(c, "y") && c.size() > 1 && std::string_view("aeiou").find(c[c.size() - 2]) == std::string_view::npos)
    return c.substr(0, c.size() - 1) + "ies";
  return c + "s";
}

Domain movie_domain() {
  Domain d;
  d.item = "movie";
  d.items = "movies";
  d.item_synonyms = {"film"};
  d.category = "genres";
  d.rating_unit = "stars";
  d.facets = "genre, director and actors, era and country, themes, mood, critical acclaim";
  return d;
}

}  // namespace liber
