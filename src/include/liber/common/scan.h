// Small questions asked of a store by more than one stage.
#pragma once

#include <string_view>

#include "liber/store.h"

namespace liber {

// Whether the family holds any key starting with `prefix` (a one-key scan).
inline bool has_keys(Store& store, Family family, std::string_view prefix = {}) {
  bool any = false;
  store.scan(family, prefix, [&](std::string_view, std::string_view) {
    any = true;
    return false;
  });
  return any;
}

}  // namespace liber
