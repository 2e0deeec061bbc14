// Vocab, categorical attributes and the read report.
#include <algorithm>

#include "liber/data.h"

namespace liber {

// Id 0 is reserved for unknown/padding, so the key list starts with a placeholder.
Vocab::Vocab() : keys_{std::string()} {}

uint32_t Vocab::add(std::string_view key) {
  if (key.empty()) return 0;  // an empty key is "missing", never a real entity
  auto [it, inserted] = index_.try_emplace(std::string(key), size());
  if (inserted) keys_.emplace_back(key);
  return it->second;
}

uint32_t Vocab::find(std::string_view key) const {
  if (key.empty()) return 0;
  auto it = index_.find(std::string(key));  // short keys stay in SSO: no allocation
  return it == index_.end() ? 0 : it->second;
}

void Attribute::push_row(std::span<const std::string> values) {
  const std::size_t start = codes.size();
  for (const std::string& v : values) {
    if (v.empty()) continue;
    uint32_t code = vocab.add(v);
    // "Comedy|Comedy" is one genre, not two.
    if (std::find(codes.begin() + static_cast<std::ptrdiff_t>(start), codes.end(), code) ==
        codes.end())
      codes.push_back(code);
  }
  offsets.push_back(static_cast<uint32_t>(codes.size()));
}

std::size_t Attribute::max_row_length() const {
  std::size_t longest = 0;
  for (std::size_t r = 0; r + 1 < offsets.size(); ++r)
    longest = std::max<std::size_t>(longest, offsets[r + 1] - offsets[r]);
  return longest;
}

namespace {
template <class Attrs>
const Attribute* find_attribute(const Attrs& attributes, std::string_view name) {
  for (const Attribute& a : attributes)
    if (a.name == name) return &a;
  return nullptr;
}
}  // namespace

const Attribute* ItemCatalog::attribute(std::string_view name) const {
  return find_attribute(attributes, name);
}

const Attribute* UserTable::attribute(std::string_view name) const {
  return find_attribute(attributes, name);
}

void ReadReport::note(std::string message) {
  if (messages.size() < kMaxMessages) messages.push_back(std::move(message));
}

std::string_view Attribute::label(std::string_view value) const {
  if (labels.empty()) return value;
  const auto it = labels.find(std::string(value));
  return it == labels.end() ? value : std::string_view(it->second);
}

}  // namespace liber
