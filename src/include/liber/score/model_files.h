// Pieces of the model directory shared by its writer (model_dir.cpp) and the scorer.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "liber/store.h"
#include "liber/uil.h"

namespace liber::score {

// True when a knowledge name ("content", "<variant>+content") reads partition content.
bool knowledge_uses_content(std::string_view knowledge);
// The LLM variant a knowledge name uses (none for "" and "content"); throws
// Error(InvalidInput) naming the store when it has no such variant.
std::optional<Variant> knowledge_variant(Store& store, std::string_view knowledge);

}  // namespace liber::score
