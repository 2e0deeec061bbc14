// UIF's column family (layout in include/liber/uif.h).
#pragma once

#include "liber/store.h"

namespace liber::uif {

inline constexpr Family kVectors{"knowledge_vectors"};  // encoder vectors

}  // namespace liber::uif
