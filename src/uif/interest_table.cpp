// The interest table (every encoded partition with its time range), its leakage-safe join
// onto CTR samples, and its export for Python.
#include <algorithm>
#include <fstream>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/common/bytes.h"
#include "liber/error.h"
#include "liber/ubsp.h"
#include "liber/uif.h"
#include "liber/uil.h"

namespace liber {

namespace {

// Partitions of a set grouped by user, in (user key, seq) order; `users` (external ids)
// restricts it, read user by user (a served model refreshes one user at a time).
void for_each_user_partitions(
    Store& store, const PartitionSet& set, const std::vector<std::string>& users,
    const std::function<void(const std::string&, std::vector<StoredPartition>&)>& fn) {
  if (!users.empty()) {
    for (const std::string& u : users_in_key_order(users)) {
      std::vector<StoredPartition> parts = read_partitions_in(store, set, u);
      for (StoredPartition& p : parts) p.events.clear();  // the events are not needed here
      if (!parts.empty()) fn(u, parts);
    }
    return;
  }
  std::string user;
  std::vector<StoredPartition> parts;
  for_each_partition_in(store, set, [&](const StoredPartition& p) {
    if (!parts.empty() && p.user != user) {
      fn(user, parts);
      parts.clear();
    }
    user = p.user;
    StoredPartition meta;  // the events are not needed here
    meta.user = p.user;
    meta.seq = p.seq;
    meta.t_begin = p.t_begin;
    meta.t_end = p.t_end;
    parts.push_back(std::move(meta));
  });
  if (!parts.empty()) fn(user, parts);
}

}  // namespace

InterestTable load_interest_table(Store& store, const Variant& variant,
                                  const std::vector<std::string>& users) {
  require_current_interests(store);
  require_current_vectors(store);
  const std::string id = variant.id();
  InterestTable t;
  t.variant = id;
  for_each_user_partitions(store, variant.partitions, users, [&](const std::string& user,
                                                                 std::vector<StoredPartition>& parts) {
    const std::vector<InterestRecord> recs = read_interests(store, id, user);
    std::unordered_map<uint32_t, const InterestRecord*> by_seq;
    for (const auto& r : recs) by_seq[r.seq] = &r;
    for (const StoredPartition& p : parts) {
      auto r = by_seq.find(p.seq);
      if (r == by_seq.end() || !r->second->usable()) continue;  // failed or rejected: no knowledge
      auto v = read_partition_vector(store, id, user, p.seq);
      if (!v) continue;
      if (t.encoder.empty()) {
        t.encoder = v->encoder;
        t.dim = v->dim;
      } else if (v->encoder != t.encoder || v->dim != t.dim) {
        throw Error(ErrorKind::InvalidInput,
                    fmt::format("store {}: partition {}/{} has a vector of encoder {} ({} "
                                "dimensions), others of {} ({}): re-encode with one encoder",
                                store.path().string(), user, p.seq, v->encoder, v->dim,
                                t.encoder, t.dim));
      }
      if (static_cast<int>(v->values.size()) != t.width())
        throw Error(ErrorKind::Internal,
                    fmt::format("corrupt state: vector of {}/{} has {} values, expected {}", user,
                                p.seq, v->values.size(), t.width()));
      PartitionVector pv{user, p.seq, p.t_begin, p.t_end, static_cast<uint32_t>(t.partitions.size())};
      t.partitions.push_back(std::move(pv));
      t.rows.insert(t.rows.end(), v->values.begin(), v->values.end());
    }
  });
  return t;
}

std::vector<std::string> fully_encoded_users(Store& store, const Variant& variant) {
  require_current_interests(store);
  require_current_vectors(store);
  const std::string id = variant.id();
  std::vector<std::string> out;
  for (const std::string& user : learned_users(store, variant)) {
    bool encoded = true;
    for (const InterestRecord& r : read_interests(store, id, user))
      encoded = encoded && (!r.usable() || read_partition_vector(store, id, user, r.seq).has_value());
    if (encoded) out.push_back(user);
  }
  return out;
}

namespace {

// Applies `keep(i)` to every per-sample column of a split.
template <typename Keep>
void filter_samples(SampleSet& set, const FeatureSchema& schema, Keep keep) {
  const std::size_t n = set.size();
  const std::size_t s = schema.sparse.size();
  std::size_t l = 0;
  for (const SequenceField& f : schema.sequences) l += static_cast<std::size_t>(f.length);
  const std::size_t m = schema.side.enabled() ? static_cast<std::size_t>(schema.side.width) : 0;
  std::size_t w = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!keep(i)) continue;
    auto move_row = [&](auto& v, std::size_t width) {
      if (width == 0) return;
      std::copy(v.begin() + i * width, v.begin() + (i + 1) * width, v.begin() + w * width);
    };
    move_row(set.sparse, s);
    move_row(set.sequences, l);
    move_row(set.side, m);
    set.labels[w] = set.labels[i];
    if (!set.users.empty()) set.users[w] = set.users[i];
    if (!set.timestamps.empty()) set.timestamps[w] = set.timestamps[i];
    ++w;
  }
  set.sparse.resize(w * s);
  set.sequences.resize(w * l);
  set.side.resize(w * m);
  set.labels.resize(w);
  if (!set.users.empty()) set.users.resize(w);
  if (!set.timestamps.empty()) set.timestamps.resize(w);
}

}  // namespace

void keep_users(CtrDataset& data, const BehaviorLog& log, const std::vector<std::string>& users) {
  std::vector<char> keep(log.users.ids.size(), 0);
  for (const auto& u : users)
    if (const uint32_t row = log.users.ids.find(u); row != 0) keep[row] = 1;
  for (SampleSet* set : {&data.train, &data.valid, &data.test}) {
    if (set->users.size() != set->size())
      throw Error(ErrorKind::InvalidInput, "keep_users: the samples carry no user ids");
    filter_samples(*set, data.schema, [&](std::size_t i) { return keep[set->users[i]] != 0; });
  }
}

ItemTextTable load_item_text_table(Store& store, const BehaviorLog& log) {
  ItemTextTable t;
  const auto vectors = read_item_text_vectors(store);
  for (const auto& [item, v] : vectors) t.dim = v.dim;
  t.rows.assign(log.items.size() * static_cast<std::size_t>(t.dim), 0.f);
  t.present.assign(log.items.size(), 0);
  for (uint32_t row = 1; row < log.items.size(); ++row) {
    auto v = vectors.find(log.items.ids.key(row));
    if (v == vectors.end() || v->second.dim != t.dim) continue;
    std::copy(v->second.values.begin(), v->second.values.end(),
              t.rows.begin() + static_cast<std::ptrdiff_t>(row * static_cast<std::size_t>(t.dim)));
    t.present[row] = 1;
  }
  return t;
}

PartitionTimeline::PartitionTimeline(const InterestTable& table) {
  std::unordered_map<std::string, std::vector<const PartitionVector*>> parts;
  for (const PartitionVector& p : table.partitions) parts[p.user].push_back(&p);
  for (auto& [user, v] : parts) {
    std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
    auto& out = by_user_[user];
    for (const PartitionVector* p : v) out.emplace_back(p->t_end, static_cast<int32_t>(p->row));
  }
}

std::size_t visible_partitions(std::span<const std::pair<int64_t, int32_t>> by_seq, int64_t ts,
                               std::span<int32_t> out) {
  std::fill(out.begin(), out.end(), -1);
  // From the latest partition back: the last out.size() visible ones, in seq order.
  std::size_t k = 0;
  for (auto p = by_seq.rbegin(); p != by_seq.rend() && k < out.size(); ++p)
    if (p->first < ts) out[out.size() - 1 - k++] = p->second;
  return k;
}

std::size_t PartitionTimeline::visible(std::string_view user, int64_t ts, std::span<int32_t> out) const {
  const auto it = by_user_.find(user);
  if (it == by_user_.end()) {
    std::fill(out.begin(), out.end(), -1);
    return 0;
  }
  return visible_partitions(it->second, ts, out);
}

void attach_interests(CtrDataset& data, const BehaviorLog& log, const InterestTable& table,
                      const FuseConfig& config, const ItemTextTable* items) {
  if (table.dim <= 0 || table.partitions.empty())
    throw Error(ErrorKind::InvalidInput,
                "attach_interests: the interest table is empty (run liber learn and liber encode)");
  SideInputPlug plug = fuse_plug(table, config, items);  // checks the config
  const bool text = config.needs_item_texts();
  if (text && data.schema.target_item_field < 0)
    throw Error(ErrorKind::InvalidInput, "attach_interests: a text query needs a target item field");
  const PartitionTimeline timeline(table);
  const auto m = static_cast<std::size_t>(config.slots);
  const std::size_t width = m + (text ? 1 : 0);
  const std::size_t f = data.schema.sparse.size();
  const auto target = static_cast<std::size_t>(std::max(0, data.schema.target_item_field));
  for (SampleSet* set : {&data.train, &data.valid, &data.test}) {
    const std::size_t n = set->size();
    if (set->users.size() != n || set->timestamps.size() != n)
      throw Error(ErrorKind::InvalidInput,
                  "attach_interests: the samples carry no user ids or timestamps");
    set->side.assign(n * width, -1);
    for (std::size_t i = 0; i < n; ++i) {
      if (text) {
        const auto item = static_cast<std::size_t>(set->sparse[i * f + target]);
        if (item < items->present.size() && items->present[item])
          set->side[i * width + m] = static_cast<int32_t>(item);
      }
      const uint32_t u = set->users[i];
      if (u == 0 || u >= log.users.size()) continue;
      timeline.visible(log.users.ids.key(u), set->timestamps[i],
                       std::span<int32_t>(set->side).subspan(i * width, m));
    }
  }
  data.schema.side = std::move(plug);
}

void export_interest_table(const InterestTable& table, const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(ErrorKind::Io, fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  // .npy version 1.0: magic, version, little-endian header length, a Python dict literal
  // padded with spaces to a multiple of 64 bytes (newline last), then the raw data.
  const std::size_t rows = table.partitions.size(), width = static_cast<std::size_t>(table.width());
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
                                   rows, width);
  const std::size_t prefix = 10;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  const auto npy = dir / "partition_vectors.npy";
  std::ofstream out(npy, std::ios::binary);
  if (!out) throw Error(ErrorKind::Io, fmt::format("cannot write {}", npy.string()));
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t hl = static_cast<uint16_t>(header.size());
  const char hl_bytes[2] = {static_cast<char>(hl & 0xff), static_cast<char>(hl >> 8)};
  out.write(hl_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(table.rows.data()),
            static_cast<std::streamsize>(rows * width * sizeof(float)));
  if (!out) throw Error(ErrorKind::Io, fmt::format("cannot write {}", npy.string()));

  nlohmann::json parts = nlohmann::json::array();
  for (const PartitionVector& p : table.partitions)
    parts.push_back({{"user", p.user}, {"seq", p.seq}, {"t_begin", p.t_begin}, {"t_end", p.t_end}, {"row", p.row}});
  const nlohmann::json index = {{"encoder", table.encoder},
                                {"variant", table.variant},
                                {"dim", table.dim},
                                {"width", table.width()},
                                {"layout", table.layout},
                                {"vectors", "partition_vectors.npy"},
                                {"partitions", parts}};
  const auto json_path = dir / "index.json";
  std::ofstream j(json_path);
  j << index.dump(1) << '\n';
  if (!j) throw Error(ErrorKind::Io, fmt::format("cannot write {}", json_path.string()));
}

}  // namespace liber
