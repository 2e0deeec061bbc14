// The library's messages (notices, warnings, progress lines) go to one sink that the app
// sets; the library itself never writes to stdout or stderr. The default sink writes
// "liber: message" lines to stderr, and progress lines redrawn in place on a terminal.
#pragma once

#include <functional>
#include <string_view>

namespace liber {

enum class LogLevel {
  Progress,      // a progress line that the next one replaces (on a terminal)
  ProgressDone,  // the last line of a progress bar
  Info,
  Warning,
};

using LogSink = std::function<void(LogLevel level, std::string_view message)>;

// Replaces the sink (an empty function restores the default); returns the previous one.
// Not synchronised with concurrent log calls: set it before starting work.
LogSink set_log_sink(LogSink sink);

void log_message(LogLevel level, std::string_view message);
inline void log_info(std::string_view message) { log_message(LogLevel::Info, message); }
inline void log_warning(std::string_view message) { log_message(LogLevel::Warning, message); }

}  // namespace liber
