// liber's one exception type. User errors (bad files, bad flags, unreachable network) are
// thrown as liber::Error with a kind and a message that names the file and line where one
// exists; internal invariants use LIBER_ASSERT and abort, since they are bugs, not input.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace liber {

enum class ErrorKind {
  Io,          // a file or directory could not be read or written
  Parse,       // malformed input; message carries file:line
  InvalidInput,// well-formed but unusable input (empty file, unknown feature, ...)
  Config,      // bad option or flag value
  Network,     // download failed
  Checksum,    // downloaded archive does not match its published digest
  Internal,    // should not happen; reported, not asserted, where recovery is possible
  Limit,       // over a configured limit (request size, events per request)
};

const char* to_string(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message);
  ErrorKind kind() const { return kind_; }

  // "FILE:LINE: WHAT" — the one shape every reader uses for a bad line.
  static Error parse(std::string_view file, std::size_t line, std::string_view what);

 private:
  ErrorKind kind_;
};

[[noreturn]] void assertion_failed(const char* expr, const char* file, int line);

}  // namespace liber

#define LIBER_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::liber::assertion_failed(#cond, __FILE__, __LINE__))
