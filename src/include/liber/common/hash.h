// FNV-1a 64: the content hash of prompts, templates, cache keys and encoded texts. Not
// cryptographic; stable across builds and machines, so stored hashes stay valid.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace liber {

inline constexpr uint64_t kFnvOffset = 1469598103934665603ULL;

constexpr uint64_t fnv1a(std::string_view s, uint64_t h = kFnvOffset) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// The parts hashed in order with a 0x1f separator between them, so ("ab", "c") and
// ("a", "bc") differ.
inline uint64_t fnv1a_fields(std::initializer_list<std::string_view> parts) {
  uint64_t h = kFnvOffset;
  bool first = true;
  for (std::string_view p : parts) {
    if (!first) h = fnv1a("\x1f", h);
    h = fnv1a(p, h);
    first = false;
  }
  return h;
}

// 16 lower-case hex digits.
std::string hex16(uint64_t h);

}  // namespace liber
