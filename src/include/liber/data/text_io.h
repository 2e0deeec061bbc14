// Low-level text helpers shared by the data readers: whole-file reads, a line cursor, field
// splitting without allocation, from_chars number parsing and an RFC-4180-ish CSV record
// reader. Readers parse ~0.5M lines, so nothing here goes through iostreams per field.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace liber::data {

// Reads a whole file. Throws Error(Io) naming the file when it is missing or unreadable.
std::string read_text_file(const std::filesystem::path& path);

// Strips a leading UTF-8 byte-order mark (spreadsheet exports carry one).
inline std::string_view strip_bom(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  return text;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

inline bool is_blank(std::string_view s) { return trim(s).empty(); }

// Walks the lines of an in-memory file; numbers are 1-based, a trailing '\r' is dropped.
class Lines {
 public:
  explicit Lines(std::string_view text) : text_(text) {}
  bool next(std::string_view& line) {
    if (pos_ >= text_.size()) return false;
    std::size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    line = text_.substr(pos_, end - pos_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = end + 1;
    ++number_;
    return true;
  }
  std::size_t number() const { return number_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t number_ = 0;
};

// Splits `s` on `sep` into `out`; returns the real field count, which may exceed
// out.size() (the extra fields are not stored) so callers can report "found N fields".
inline std::size_t split_into(std::string_view s, std::string_view sep,
                              std::span<std::string_view> out) {
  std::size_t n = 0;
  std::size_t start = 0;
  while (true) {
    std::size_t end = s.find(sep, start);
    std::string_view field =
        s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (n < out.size()) out[n] = field;
    ++n;
    if (end == std::string_view::npos) return n;
    start = end + sep.size();
  }
}

inline void split(std::string_view s, char sep, std::vector<std::string_view>& out) {
  out.clear();
  std::size_t start = 0;
  while (true) {
    std::size_t end = s.find(sep, start);
    if (end == std::string_view::npos) {
      out.push_back(s.substr(start));
      return;
    }
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
}

// Whole-field integer parse (surrounding blanks allowed, nothing else).
template <class T>
bool parse_int(std::string_view s, T& out) {
  s = trim(s);
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Whole-field finite float parse.
inline bool parse_float(std::string_view s, float& out) {
  s = trim(s);
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(out);
}

// ISO-8601 date-time "YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|(+|-)HH[:]MM]" to Unix seconds
// (UTC when no offset is given). False when `s` is not of that shape.
bool parse_iso8601(std::string_view s, int64_t& seconds);

// The last "(YYYY)" in a title ("Toy Story (1995)" -> 1995), 0 when none.
int year_from_title(std::string_view title);

// The found text, quoted and cut to a readable length, for "found ..." messages.
std::string excerpt(std::string_view text, std::size_t max_chars = 60);

// 1234567 -> "1,234,567" (locale-independent).
std::string with_commas(std::size_t n);

// True when `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);

// Reads CSV records: fields separated by ',', optionally double-quoted; inside quotes ","
// and line breaks are literal and "" is one quote. Blank lines are skipped.
class CsvReader {
 public:
  explicit CsvReader(std::string_view text) : text_(text) {}
  // Fills `fields` with the next record. Returns false at end of input. On malformed
  // quoting returns true with `error` set (the rest of the record is skipped).
  bool next(std::vector<std::string>& fields, std::string& error);
  // 1-based line on which the last record started.
  std::size_t line() const { return record_line_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;  // line of text_[pos_]
  std::size_t record_line_ = 0;
};

}  // namespace liber::data
