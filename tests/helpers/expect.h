// Assertion helpers shared by the test suites.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "liber/data.h"
#include "liber/error.h"

namespace liber::testing {

// Runs fn, expects it to throw liber::Error of `kind`, and returns the message ("" and a
// failure when it does not throw).
inline std::string error_of(ErrorKind kind, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected liber::Error(" << to_string(kind) << ")";
  return {};
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

inline bool any_message_contains(const ReadReport& r, const std::string& part) {
  for (const auto& m : r.messages)
    if (contains(m, part)) return true;
  return false;
}

// True under CI (the CI variable set and not "0"/"false"): a missing model or venv there is a
// broken setup, so the LLM suites fail instead of skipping.
inline bool running_in_ci() {
  const char* ci = std::getenv("CI");
  if (!ci || !*ci) return false;
  const std::string v = ci;
  return v != "0" && v != "false";
}

// Runs argv (no shell; each argument passed as is) and returns its exit status and its
// stdout and stderr together.
struct CommandResult {
  int status = -1;  // exit code, or -1 when it did not exit normally
  std::string output;
};
inline CommandResult run_command(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const std::string& a : argv) {
    cmd += " '";
    for (char c : a) cmd += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += "'";
  }
  cmd += " 2>&1";
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace liber::testing

// Skips the test, or fails it under CI (see running_in_ci).
#define LIBER_SKIP_UNLESS_CI(reason)                                               \
  do {                                                                             \
    if (::liber::testing::running_in_ci()) GTEST_FAIL() << "CI is set: " << reason; \
    GTEST_SKIP() << reason;                                                        \
  } while (0)
