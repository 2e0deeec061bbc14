// GET /v1/users/{id}: what the store knows of one user, as JSON.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "liber/store.h"

namespace liber::serve {

// {"user", "cache": {"size", "t_begin"?, "t_end"?}, "partitions": [{"seq", "t_begin",
// "t_end", "size", "reason"}], "variants": [{"name", "id", "records": [{"seq", "ok",
// "quality", "summary", "shift", "reasons", "error", "vector"?}], "pending": [seq...]}]}.
// `pending` lists the partitions of the variant's set with no record yet, or only a record
// of a failed LLM call (which the pipeline retries). With `vectors`,
// each record with a vector of the current encoder carries it ("vector": floats).
nlohmann::json user_view(Store& store, std::string_view user, bool vectors);

}  // namespace liber::serve
