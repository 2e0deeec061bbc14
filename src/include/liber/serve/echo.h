// An id the client sent, as the service's answers quote it back.
#pragma once

#include <string>
#include <string_view>

namespace liber::serve {

// Bounded (64 bytes) and printable: anything but printable ASCII, quotes and backslashes
// becomes '?', so an answer never carries what a client smuggled into an id.
inline std::string echo_id(std::string_view id) {
  std::string out;
  for (char c : id.substr(0, 64)) out += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : '?';
  return out;
}

}  // namespace liber::serve
