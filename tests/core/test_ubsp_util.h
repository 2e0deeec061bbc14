// Hand-made behavior logs for the UBSP tests.
#pragma once

#include <string>
#include <vector>

#include "liber/data.h"
#include "liber/ubsp.h"

namespace liber::testing {

// Items "i1".."iN"; item k's genres are given by genre_of(k) ("A", "B", ...).
// Users "u1".."uM".
inline BehaviorLog tiny_log(int n_items, int n_users, const std::vector<std::string>& genre_of) {
  BehaviorLog log;
  log.name = "tiny";
  log.items.titles.assign(1, "");
  log.items.years.assign(1, 0);
  Attribute g;
  g.name = "genres";
  g.multi = true;
  g.push_row({});  // row 0
  for (int i = 1; i <= n_items; ++i) {
    log.items.ids.add("i" + std::to_string(i));
    log.items.titles.push_back("Item " + std::to_string(i));
    log.items.years.push_back(2000);
    std::vector<std::string> v = {genre_of.empty() ? std::string("A")
                                                   : genre_of[(i - 1) % genre_of.size()]};
    g.push_row(v);
  }
  log.items.attributes.push_back(std::move(g));
  for (int u = 1; u <= n_users; ++u) log.users.ids.add("u" + std::to_string(u));
  return log;
}

inline Event ev(uint32_t user, uint32_t item, int64_t ts, float rating = 4.0f) {
  return Event{user, item, ts, rating, -1};
}

inline std::vector<std::size_t> sizes(const std::vector<Partition>& ps) {
  std::vector<std::size_t> out;
  for (const auto& p : ps) out.push_back(p.events.size());
  return out;
}

}  // namespace liber::testing
