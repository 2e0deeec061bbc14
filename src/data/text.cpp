// Text helpers for the readers: encodings (MovieLens is latin-1, the generic format UTF-8),
// whole-file reads, ISO-8601 timestamps and the CSV record reader.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "liber/data.h"
#include "liber/data/text_io.h"
#include "liber/error.h"

namespace liber {

std::string latin1_to_utf8(std::string_view latin1) {
  std::string out;
  out.reserve(latin1.size() + latin1.size() / 16);
  for (unsigned char c : latin1) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      // Latin-1 byte == code point U+0080..U+00FF: always a 2-byte UTF-8 sequence.
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

namespace {

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when ill-formed; then
// `bad` is the length of its maximal subpart (Unicode's rule for one U+FFFD per subpart).
// The ranges reject overlongs, surrogates and code points above U+10FFFF.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t& bad) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  int need = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c == 0xE0) {
    need = 2, lo = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    need = 2;
  } else if (c == 0xED) {
    need = 2, hi = 0x9F;
  } else if (c == 0xF0) {
    need = 3, lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3;
  } else if (c == 0xF4) {
    need = 3, hi = 0x8F;
  } else {
    bad = 1;
    return 0;
  }
  std::size_t j = i + 1;
  for (int k = 0; k < need; ++k, ++j) {
    if (j >= s.size()) {
      bad = j - i;
      return 0;
    }
    auto d = static_cast<unsigned char>(s[j]);
    unsigned char l = k == 0 ? lo : 0x80, h = k == 0 ? hi : 0xBF;
    if (d < l || d > h) {
      bad = j - i;
      return 0;
    }
  }
  return static_cast<std::size_t>(need) + 1;
}

}  // namespace

std::size_t sanitize_utf8(std::string& text) {
  if (data::is_valid_utf8(text)) return 0;
  std::string out;
  out.reserve(text.size() + 8);
  std::size_t replaced = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t bad = 0;
    std::size_t n = utf8_sequence(text, i, bad);
    if (n > 0) {
      out.append(text, i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++replaced;
      i += bad;
    }
  }
  text = std::move(out);
  return replaced;
}

namespace data {

bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    // ASCII runs dominate real files: skip them 8 bytes at a time.
    while (i + 8 <= text.size()) {
      uint64_t word;
      std::memcpy(&word, text.data() + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= text.size()) break;
    std::size_t bad = 0;
    std::size_t n = utf8_sequence(text, i, bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string read_text_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error(ErrorKind::Io, fmt::format("{}: is a directory, expected a file", path.string()));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f)
    throw Error(ErrorKind::Io,
                fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  std::string text;
  if (std::fseek(f.get(), 0, SEEK_END) == 0) {
    long size = std::ftell(f.get());
    if (size > 0) text.reserve(static_cast<std::size_t>(size));
    std::fseek(f.get(), 0, SEEK_SET);
  }
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) text.append(buf, n);
  if (std::ferror(f.get()))
    throw Error(ErrorKind::Io,
                fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
  return text;
}

namespace {

bool take_digits(std::string_view s, std::size_t& pos, int count, int& value) {
  if (pos + static_cast<std::size_t>(count) > s.size()) return false;
  value = 0;
  for (int k = 0; k < count; ++k) {
    char c = s[pos + static_cast<std::size_t>(k)];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  pos += static_cast<std::size_t>(count);
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

}  // namespace

bool parse_iso8601(std::string_view s, int64_t& seconds) {
  s = trim(s);
  std::size_t p = 0;
  int year, month, day, hour = 0, minute = 0, second = 0;
  if (!take_digits(s, p, 4, year) || p >= s.size() || s[p++] != '-' ||
      !take_digits(s, p, 2, month) || p >= s.size() || s[p++] != '-' ||
      !take_digits(s, p, 2, day))
    return false;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 ||
      day > kDays[month - 1] + (month == 2 && leap(year) ? 1 : 0))
    return false;
  int64_t offset = 0;
  if (p < s.size()) {
    if (s[p] != 'T' && s[p] != 't' && s[p] != ' ') return false;
    ++p;
    if (!take_digits(s, p, 2, hour) || p >= s.size() || s[p++] != ':' ||
        !take_digits(s, p, 2, minute))
      return false;
    if (p < s.size() && s[p] == ':') {
      ++p;
      if (!take_digits(s, p, 2, second)) return false;
      if (p < s.size() && (s[p] == '.' || s[p] == ',')) {  // fraction: dropped
        ++p;
        std::size_t start = p;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') ++p;
        if (p == start) return false;
      }
    }
    if (hour > 23 || minute > 59 || second > 60) return false;
    if (p < s.size()) {
      if (s[p] == 'Z' || s[p] == 'z') {
        ++p;
      } else if (s[p] == '+' || s[p] == '-') {
        int sign = s[p++] == '-' ? -1 : 1;
        int oh, om = 0;
        if (!take_digits(s, p, 2, oh)) return false;
        if (p < s.size() && s[p] == ':') ++p;
        if (p < s.size() && !take_digits(s, p, 2, om)) return false;
        if (oh > 23 || om > 59) return false;
        offset = sign * (oh * 3600 + om * 60);
      } else {
        return false;
      }
    }
    if (p != s.size()) return false;
  }
  seconds = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) *
                86400 +
            hour * 3600 + minute * 60 + second - offset;
  return true;
}

int year_from_title(std::string_view title) {
  title = trim(title);
  if (title.size() < 6) return 0;
  for (std::size_t i = title.size() - 6 + 1; i-- > 0;) {
    if (title[i] != '(' || title[i + 5] != ')') continue;
    int year = 0;
    std::size_t p = i + 1;
    if (take_digits(title, p, 4, year)) return year;
  }
  return 0;
}

std::string excerpt(std::string_view text, std::size_t max_chars) {
  std::string out = "\"";
  std::size_t shown = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    if (shown >= max_chars) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(text[i]);
    std::size_t bad = 0;
    std::size_t n = utf8_sequence(text, i, bad);
    if (n == 0) {
      // Keep messages valid UTF-8 even when the input is not.
      out += fmt::format("\\x{:02X}", c);
      i += 1;
    } else if (c == '\t') {
      out += "\\t";
      i += 1;
    } else if (c < 0x20) {
      out += fmt::format("\\x{:02X}", c);
      i += 1;
    } else {
      out.append(text, i, n);
      i += n;
    }
    ++shown;
  }
  out += '"';
  return out;
}

std::string with_commas(std::size_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

bool CsvReader::next(std::vector<std::string>& fields, std::string& error) {
  fields.clear();
  error.clear();
  // Skip blank lines between records.
  while (pos_ < text_.size()) {
    std::size_t end = text_.find('\n', pos_);
    std::string_view line =
        text_.substr(pos_, end == std::string_view::npos ? std::string_view::npos : end - pos_);
    if (!is_blank(line)) break;
    if (end == std::string_view::npos) {
      pos_ = text_.size();
    } else {
      pos_ = end + 1;
      ++line_;
    }
  }
  if (pos_ >= text_.size()) return false;
  record_line_ = line_;
  const std::size_t record_start = pos_;

  // On a quoting error, resume on the line after the record's first line so one stray
  // quote does not swallow the rest of the file.
  auto fail = [&](std::string message) {
    error = std::move(message);
    std::size_t end = text_.find('\n', record_start);
    pos_ = end == std::string_view::npos ? text_.size() : end + 1;
    line_ = record_line_ + 1;
    return true;
  };

  std::string field;
  while (true) {
    field.clear();
    std::size_t p = pos_;
    while (p < text_.size() && text_[p] == ' ') ++p;
    if (p < text_.size() && text_[p] == '"') {
      pos_ = p + 1;
      while (true) {
        std::size_t q = text_.find('"', pos_);
        if (q == std::string_view::npos)
          return fail(fmt::format(
              "expected a closing '\"' for the quoted field opened on line {}, found end of "
              "file",
              record_line_));
        std::string_view chunk = text_.substr(pos_, q - pos_);
        for (char c : chunk)
          if (c == '\n') ++line_;
        field.append(chunk);
        pos_ = q + 1;
        if (pos_ < text_.size() && text_[pos_] == '"') {  // "" = one literal quote
          field.push_back('"');
          ++pos_;
          continue;
        }
        break;
      }
      while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\r')) ++pos_;
      if (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n')
        return fail(fmt::format("expected ',' or end of line after a closing quote, found {}",
                                excerpt(text_.substr(pos_, 1))));
    } else {
      std::size_t end = text_.find_first_of(",\n", pos_);
      if (end == std::string_view::npos) end = text_.size();
      std::string_view raw = text_.substr(pos_, end - pos_);
      if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
      field.assign(raw);
      pos_ = end;
    }
    fields.push_back(field);
    if (pos_ >= text_.size()) return true;
    if (text_[pos_] == ',') {
      ++pos_;  // a ',' at end of line/file yields a trailing empty field on the next turn
      continue;
    }
    // '\n'
    ++pos_;
    ++line_;
    return true;
  }
}

}  // namespace data
}  // namespace liber
