#include "liber/error.h"

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace liber {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Io: return "io";
    case ErrorKind::Parse: return "parse";
    case ErrorKind::InvalidInput: return "invalid input";
    case ErrorKind::Config: return "config";
    case ErrorKind::Network: return "network";
    case ErrorKind::Checksum: return "checksum";
    case ErrorKind::Internal: return "internal";
    case ErrorKind::Limit: return "limit";
  }
  return "unknown";
}

Error::Error(ErrorKind kind, const std::string& message)
    : std::runtime_error(message), kind_(kind) {}

Error Error::parse(std::string_view file, std::size_t line, std::string_view what) {
  return Error(ErrorKind::Parse, fmt::format("{}:{}: {}", file, line, what));
}

void assertion_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "liber: internal assertion failed: %s (%s:%d)\n", expr, file, line);
  std::abort();
}

}  // namespace liber
