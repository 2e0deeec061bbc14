#include "liber/common/bytes.h"

#include <algorithm>

#include <fmt/format.h>

#include "liber/common/hash.h"
#include "liber/error.h"

namespace liber {

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_be32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xFF));
}
void put_be64(std::string& out, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xFF));
}

void ByteReader::corrupt() const {
  throw Error(ErrorKind::Internal, fmt::format("corrupt state ({})", what_));
}

uint64_t ByteReader::varint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (d_.empty()) corrupt();
    const auto b = static_cast<uint8_t>(d_.front());
    d_.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
  corrupt();
}

uint8_t ByteReader::byte() {
  if (d_.empty()) corrupt();
  const auto b = static_cast<uint8_t>(d_.front());
  d_.remove_prefix(1);
  return b;
}

uint32_t ByteReader::be32() {
  uint32_t v = 0;
  for (char c : bytes(4)) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

uint64_t ByteReader::be64() {
  uint64_t v = 0;
  for (char c : bytes(8)) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

std::string_view ByteReader::bytes(std::size_t n) {
  if (d_.size() < n) corrupt();
  std::string_view out = d_.substr(0, n);
  d_.remove_prefix(n);
  return out;
}

std::string user_key(std::string_view user) {
  std::string k;
  k.reserve(user.size() + 1);
  put_lp(k, user);
  return k;
}

std::string user_seq_key(std::string_view user, uint32_t seq) {
  std::string k = user_key(user);
  put_be32(k, seq);
  return k;
}

std::string_view user_of_key(std::string_view key) {
  ByteReader r(key, "key");
  return r.lp();
}

std::string hex16(uint64_t h) { return fmt::format("{:016x}", h); }

std::vector<std::string> users_in_key_order(const std::vector<std::string>& users) {
  std::vector<std::pair<std::string, std::string>> keyed;  // (key, user)
  for (const std::string& u : users) keyed.emplace_back(user_key(u), u);
  std::sort(keyed.begin(), keyed.end());
  keyed.erase(std::unique(keyed.begin(), keyed.end()), keyed.end());
  std::vector<std::string> out;
  for (auto& [k, u] : keyed) out.push_back(std::move(u));
  return out;
}

}  // namespace liber
