// Partition content vectors (from the item text vectors, no LLM) and the two controls that
// keep a table's structure and drop its knowledge. See include/liber/uif.h.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "liber/common/bytes.h"
#include "liber/common/hash.h"
#include "liber/error.h"
#include "liber/ubsp.h"
#include "liber/uif.h"

namespace liber {

std::string item_text(const BehaviorLog& log, uint32_t row) {
  const ItemCatalog& c = log.items;
  std::string text = row < c.titles.size() ? c.titles[row] : std::string();
  const int year = row < c.years.size() ? c.years[row] : 0;
  if (year > 0 && text.find(std::to_string(year)) == std::string::npos)
    text += fmt::format(" ({})", year);
  if (text.empty()) text = "item " + c.ids.key(row);
  text += ".";
  for (const Attribute& a : c.attributes) {
    if (row >= a.rows()) continue;
    const auto codes = a.row(row);
    if (codes.empty()) continue;
    std::string values;
    for (uint32_t code : codes) {
      if (!values.empty()) values += ", ";
      values += a.label(a.vocab.key(code));
    }
    text += fmt::format(" {}: {}.", a.name, values);
  }
  return text;
}

ContentSource load_content_source(Store& store) {
  ContentSource c;
  c.like_threshold = load_behavior_log(store, false).like_threshold;
  c.items = read_item_text_vectors(store);
  for (const auto& [item, v] : c.items) {
    if (c.encoder.empty()) {
      c.encoder = v.encoder;
      c.dim = v.dim;
    } else if (v.encoder != c.encoder || v.dim != c.dim) {
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("store {}: item {} has a text vector of encoder {} ({} dimensions), "
                              "others of {} ({}): re-encode with one encoder (liber encode --replace)",
                              store.path().string(), item, v.encoder, v.dim, c.encoder, c.dim));
    }
  }
  return c;
}

InterestTable load_content_table(Store& store, const PartitionSet& set,
                                 const std::vector<std::string>& users) {
  return load_content_table(store, set, users, load_content_source(store));
}

InterestTable load_content_table(Store& store, const PartitionSet& set,
                                 const std::vector<std::string>& users, const ContentSource& source) {
  const auto& vectors = source.items;
  InterestTable t;
  t.variant = "content";
  t.layout = "liked|other";
  t.texts = 2;
  t.encoder = source.encoder;
  t.dim = source.dim;
  if (t.dim == 0) return t;  // nothing encoded yet: the caller says what to run
  const auto d = static_cast<std::size_t>(t.dim);
  std::vector<double> liked(d), other(d);
  auto add = [&](const StoredPartition& p) {
    std::fill(liked.begin(), liked.end(), 0.0);
    std::fill(other.begin(), other.end(), 0.0);
    std::size_t n_liked = 0, n_other = 0;
    for (const StoredEvent& e : p.events) {
      auto v = vectors.find(e.item);
      if (v == vectors.end()) continue;
      const bool like = e.label >= 0 ? e.label == 1
                                     : !std::isnan(e.rating) && e.rating >= source.like_threshold;
      auto& sum = like ? liked : other;
      (like ? n_liked : n_other) += 1;
      for (std::size_t i = 0; i < d; ++i) sum[i] += v->second.values[i];
    }
    if (n_liked + n_other == 0) return;
    t.partitions.push_back({p.user, p.seq, p.t_begin, p.t_end, static_cast<uint32_t>(t.partitions.size())});
    for (std::size_t i = 0; i < d; ++i)
      t.rows.push_back(n_liked ? static_cast<float>(liked[i] / static_cast<double>(n_liked)) : 0.f);
    for (std::size_t i = 0; i < d; ++i)
      t.rows.push_back(n_other ? static_cast<float>(other[i] / static_cast<double>(n_other)) : 0.f);
  };
  if (users.empty()) {
    for_each_partition_in(store, set, add);
  } else {  // user by user, in the store's order (a served model refreshes one at a time)
    for (const std::string& u : users_in_key_order(users))
      for (const StoredPartition& p : read_partitions_in(store, set, u)) add(p);
  }
  return t;
}

InterestTable random_control(const InterestTable& table, uint64_t seed) {
  InterestTable t = table;
  t.variant = "random";
  t.layout = "random";
  const auto w = static_cast<std::size_t>(t.width());
  for (const PartitionVector& p : t.partitions) {
    // Fixed by (user, seq, seed): the same partition gets the same vector in every arm.
    std::mt19937_64 rng(fnv1a_fields({p.user, std::to_string(p.seq), std::to_string(seed)}));
    std::normal_distribution<float> normal(0.f, 1.f);
    for (std::size_t i = 0; i < w; ++i) t.rows[p.row * w + i] = normal(rng);
  }
  return t;
}

InterestTable shuffled_control(const InterestTable& table, uint64_t seed) {
  // Each user's rows, in seq order.
  std::vector<std::string> users;
  std::unordered_map<std::string, std::vector<const PartitionVector*>> by_user;
  for (const PartitionVector& p : table.partitions) {
    auto& v = by_user[p.user];
    if (v.empty()) users.push_back(p.user);
    v.push_back(&p);
  }
  if (users.size() < 2)
    throw Error(ErrorKind::InvalidInput,
                fmt::format("shuffled control: the table has {} user(s); it needs two or more",
                            users.size()));
  for (auto& [u, v] : by_user)
    std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
  // A derangement: a random cyclic shift of a random order never maps a user to itself.
  std::vector<std::size_t> order(users.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  const std::size_t shift =
      std::uniform_int_distribution<std::size_t>(1, users.size() - 1)(rng);
  std::unordered_map<std::string, const std::string*> donor;
  for (std::size_t i = 0; i < order.size(); ++i)
    donor[users[order[i]]] = &users[order[(i + shift) % order.size()]];

  InterestTable t = table;
  t.variant = "shuffled";
  const auto w = static_cast<std::size_t>(t.width());
  for (const auto& [user, parts] : by_user) {
    const auto& from = by_user.at(*donor.at(user));
    for (std::size_t k = 0; k < parts.size(); ++k) {
      const PartitionVector* src = from[k % from.size()];
      std::copy_n(table.rows.begin() + static_cast<std::ptrdiff_t>(src->row * w), w,
                  t.rows.begin() + static_cast<std::ptrdiff_t>(parts[k]->row * w));
    }
  }
  return t;
}

InterestTable join_tables(const InterestTable& a, const InterestTable& b) {
  if (a.dim != b.dim || a.encoder != b.encoder)
    throw Error(ErrorKind::InvalidInput,
                fmt::format("join_tables: {} has vectors of {} ({} dimensions), {} of {} ({})",
                            a.variant, a.encoder, a.dim, b.variant, b.encoder, b.dim));
  std::unordered_map<std::string, const PartitionVector*> in_b;
  for (const PartitionVector& p : b.partitions) in_b[p.user + '\n' + std::to_string(p.seq)] = &p;
  InterestTable t;
  t.variant = a.variant + "+" + b.variant;
  t.encoder = a.encoder;
  t.dim = a.dim;
  t.texts = a.texts + b.texts;
  t.layout = a.layout + "|" + b.layout;
  const auto wa = static_cast<std::size_t>(a.width()), wb = static_cast<std::size_t>(b.width());
  for (const PartitionVector& p : a.partitions) {
    auto q = in_b.find(p.user + '\n' + std::to_string(p.seq));
    if (q == in_b.end()) continue;
    PartitionVector j = p;
    j.row = static_cast<uint32_t>(t.partitions.size());
    t.partitions.push_back(j);
    t.rows.insert(t.rows.end(), a.rows.begin() + static_cast<std::ptrdiff_t>(p.row * wa),
                  a.rows.begin() + static_cast<std::ptrdiff_t>((p.row + 1) * wa));
    t.rows.insert(t.rows.end(), b.rows.begin() + static_cast<std::ptrdiff_t>(q->second->row * wb),
                  b.rows.begin() + static_cast<std::ptrdiff_t>((q->second->row + 1) * wb));
  }
  return t;
}

}  // namespace liber
