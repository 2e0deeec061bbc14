#include "liber/log.h"

#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>

namespace liber {

namespace {

std::mutex& stderr_mutex() {
  static std::mutex m;
  return m;
}

void default_sink(LogLevel level, std::string_view message) {
  static const bool tty = ::isatty(STDERR_FILENO) != 0;
  std::lock_guard lock(stderr_mutex());
  const std::string text(message);
  switch (level) {
    case LogLevel::Progress:
    case LogLevel::ProgressDone:
      // On a terminal a bar redraws one line; in a log every line stays.
      if (tty)
        std::fprintf(stderr, "\r\033[K%s%s", text.c_str(), level == LogLevel::ProgressDone ? "\n" : "");
      else
        std::fprintf(stderr, "%s\n", text.c_str());
      break;
    case LogLevel::Info:
      std::fprintf(stderr, "liber: %s\n", text.c_str());
      break;
    case LogLevel::Warning:
      std::fprintf(stderr, "liber: warning: %s\n", text.c_str());
      break;
  }
  std::fflush(stderr);
}

LogSink& sink() {
  static LogSink s;
  return s;
}

}  // namespace

LogSink set_log_sink(LogSink s) {
  LogSink previous = std::move(sink());
  sink() = std::move(s);
  return previous;
}

void log_message(LogLevel level, std::string_view message) {
  if (const LogSink& s = sink()) s(level, message);
  else default_sink(level, message);
}

}  // namespace liber
