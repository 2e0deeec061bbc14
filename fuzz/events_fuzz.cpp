// libFuzzer target: request bodies of events (decode_events) and of score requests
// (decode_score_request), and partition-rule texts
// (PartitionRule::parse), the text liber serve and the store take from outside. Built and
// run by bench/fuzz.sh; any crash, sanitizer report or exception other than liber::Error
// is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "liber/data.h"
#include "liber/error.h"
#include "liber/serve.h"
#include "liber/ubsp.h"

namespace {

struct Catalog {
  liber::ItemCatalog items;
  liber::UserTable users;
  Catalog() {
    for (const char* id : {"1", "2", "42", "i1", "caf\xc3\xa9"}) items.ids.add(id);
    for (const char* id : {"1", "7", "u1"}) users.ids.add(id);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const Catalog catalog;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const liber::DecodedEvents d = liber::decode_events(text, catalog.items, catalog.users, 64);
    // What the decoder promises: every event is either decoded or reported, once.
    if (d.events.size() + d.bad.size() != d.total || d.position.size() != d.events.size())
      __builtin_trap();
    for (const liber::Event& e : d.events)
      if (e.user == 0 || e.user >= catalog.users.size() || e.item == 0 ||
          e.item >= catalog.items.size() || e.ts < 0)
        __builtin_trap();
  } catch (const liber::Error&) {
  }
  try {
    const liber::ScoreRequest r = liber::decode_score_request(
        text, catalog.users, [](std::string_view item) { return catalog.items.ids.find(item) != 0; }, 8);
    // A well-formed request names a known user and 1..8 known items; a bad one says which field.
    if (r.ok() && (catalog.users.ids.find(r.user) == 0 || r.items.empty() || r.items.size() > 8 ||
                   (r.ts && *r.ts < 0)))
      __builtin_trap();
    if (!r.ok() && r.reason.empty()) __builtin_trap();
    for (const std::string& item : r.items)
      if (catalog.items.ids.find(item) == 0) __builtin_trap();
  } catch (const liber::Error&) {
  }
  try {
    const liber::PartitionRule r = liber::PartitionRule::parse(text);
    // A rule that parses describes itself as a text that parses to the same rule.
    if (liber::PartitionRule::parse(r.describe()).describe() != r.describe()) __builtin_trap();
  } catch (const liber::Error&) {
  }
  return 0;
}
