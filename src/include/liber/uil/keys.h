// UIL's column families (layout in include/liber/uil.h).
#pragma once

#include "liber/store.h"

namespace liber::uil {

inline constexpr Family kInterests{"interests"};            // interest records
inline constexpr Family kItemKnowledge{"item_knowledge"};   // item descriptions
inline constexpr Family kLlmCache{"llm_cache"};             // outputs by prompt hash
// In the meta family: the format of kInterests (kInterestsVersion).
inline constexpr const char* kVersionKey = "uil.version";

}  // namespace liber::uil
