// An event as POST /v1/events and the Kafka source take it, for the tests that send them.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "liber/data.h"

namespace liber::testing {

inline nlohmann::json event_object(const BehaviorLog& log, const Event& e) {
  return {{"user", log.users.ids.key(e.user)}, {"item", log.items.ids.key(e.item)}, {"ts", e.ts},
          {"rating", e.rating}};
}

inline std::string event_json(const BehaviorLog& log, const Event& e) { return event_object(log, e).dump(); }

}  // namespace liber::testing
