// Byte encoding shared by every stage's keys and values: varints, zigzag, big-endian
// integers (so keys sort numerically), length-prefixed strings, and a reader for them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace liber {

void put_varint(std::string& out, uint64_t v);
inline void put_zigzag(std::string& out, int64_t v) {
  put_varint(out, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}
void put_be32(std::string& out, uint32_t v);
void put_be64(std::string& out, uint64_t v);
inline void put_lp(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

// Reads from a view, advancing it; throws Error(Internal) "corrupt state (<what>)" on
// truncation: stored bytes are liber's own, so a bad one is a bug or a damaged store.
class ByteReader {
 public:
  ByteReader(std::string_view data, const char* what) : d_(data), what_(what) {}
  uint64_t varint();
  int64_t zigzag() {
    const uint64_t u = varint();
    return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  }
  uint8_t byte();
  uint32_t be32();
  uint64_t be64();
  std::string_view bytes(std::size_t n);
  std::string_view lp() { return bytes(varint()); }
  bool done() const { return d_.empty(); }
  std::string_view rest() const { return d_; }
  [[noreturn]] void corrupt() const;

 private:
  std::string_view d_;
  const char* what_;
};

// Keys by user: the length-prefixed external user id, so a prefix scan lists one user's
// rows and "1" never prefixes "10". A (user, seq) key appends the big-endian seq: a
// user's partitions, and everything keyed like them, scan in seq order.
std::string user_key(std::string_view user);
std::string user_seq_key(std::string_view user, uint32_t seq);
// The user id at the front of a user_key / user_seq_key.
std::string_view user_of_key(std::string_view key);
// Distinct `users` in the order a scan of user_keys lists them.
std::vector<std::string> users_in_key_order(const std::vector<std::string>& users);

}  // namespace liber
