// The knowledge encoder's stage: embeds every ok interest record (summary and shift) and
// every ok item description that has no vector of the current encoder for its current
// text, in batches, each batch one atomic store write (so a stopped or killed run keeps
// every finished batch and redoes none of it).
#include <chrono>
#include <map>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/progress.h"
#include "liber/common/bytes.h"
#include "liber/common/hash.h"
#include "liber/common/scan.h"
#include "liber/uif.h"
#include "liber/ubsp.h"
#include "liber/uil.h"
#include "liber/uif/keys.h"

namespace liber {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr uint8_t kVectorVersion = 1;
constexpr const char* kEncoderMetaKey = "uif.encoder";
constexpr const char* kVersionKey = "uif.version";

std::string partition_vector_key(std::string_view variant_id, std::string_view user, uint32_t seq) {
  return "p" + interest_key(variant_id, user, seq);
}
std::string item_vector_key(std::string_view item) {
  std::string k(1, 'i');
  k += item;
  return k;
}
std::string item_text_vector_key(std::string_view item) {
  std::string k(1, 't');
  k += item;
  return k;
}

std::string encode_vector(const KnowledgeVector& v) {
  std::string out;
  out.push_back(static_cast<char>(kVectorVersion));
  put_lp(out, v.encoder);
  put_varint(out, static_cast<uint64_t>(v.dim));
  put_be64(out, v.source_hash);
  put_varint(out, v.values.size());
  static_assert(sizeof(float) == 4);
  const std::size_t at = out.size();
  out.resize(at + v.values.size() * 4);
  std::memcpy(out.data() + at, v.values.data(), v.values.size() * 4);  // little-endian hosts
  return out;
}

KnowledgeVector decode_vector(std::string_view value) {
  ByteReader r(value, "knowledge vector");
  if (r.byte() != kVectorVersion) r.corrupt();
  KnowledgeVector v;
  v.encoder = std::string(r.lp());
  v.dim = static_cast<int>(r.varint());
  v.source_hash = r.be64();
  const std::size_t n = r.varint();
  const std::string_view bytes = r.bytes(n * 4);
  v.values.resize(n);
  std::memcpy(v.values.data(), bytes.data(), n * 4);
  if (!r.done()) r.corrupt();
  return v;
}

uint64_t texts_hash(std::string_view a, std::string_view b = {}) { return fnv1a_fields({a, b}); }

struct Job {
  enum Kind { Partition, Item, ItemText };
  std::string key;
  std::vector<std::string> texts;  // 2 (summary, shift) or 1 (item)
  uint64_t hash = 0;
  Kind kind = Partition;
};

// The encoder of the store's existing vectors, if any.
std::optional<std::pair<std::string, int>> stored_encoder(Store& store) {
  auto v = store.get(kMetaFamily, kEncoderMetaKey);
  if (!v) return std::nullopt;
  try {
    const json j = json::parse(*v);
    return std::make_pair(j.at("id").get<std::string>(), j.at("dim").get<int>());
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Internal, fmt::format("corrupt state: {}: {}", kEncoderMetaKey, e.what()));
  }
}

void drop_all_vectors(Store& store) {
  auto batch = store.new_batch();
  store.scan(uif::kVectors, "", [&](std::string_view k, std::string_view) {
    batch->del(uif::kVectors, k);
    return true;
  });
  batch->del(kMetaFamily, kEncoderMetaKey);
  store.write(*batch);
}

}  // namespace

std::optional<KnowledgeVector> read_partition_vector(Store& store, std::string_view variant_id,
                                                     std::string_view user, uint32_t seq) {
  auto v = store.get(uif::kVectors, partition_vector_key(variant_id, user, seq));
  if (!v) return std::nullopt;
  return decode_vector(*v);
}

std::optional<KnowledgeVector> read_item_vector(Store& store, std::string_view item) {
  auto v = store.get(uif::kVectors, item_vector_key(item));
  if (!v) return std::nullopt;
  return decode_vector(*v);
}

std::unordered_map<std::string, KnowledgeVector> read_item_text_vectors(Store& store) {
  std::unordered_map<std::string, KnowledgeVector> out;
  store.scan(uif::kVectors, "t", [&](std::string_view k, std::string_view v) {
    out.emplace(std::string(k.substr(1)), decode_vector(v));
    return true;
  });
  return out;
}

std::string EncodeReport::summary() const {
  std::string s;
  s += fmt::format("encoder      {} ({} dimensions)\n", encoder, dim);
  s += fmt::format("partitions   {} encoded, {} already encoded\n", partitions_encoded,
                   partitions_reused);
  s += fmt::format("items        {} encoded, {} already encoded\n", items_encoded, items_reused);
  s += fmt::format("item texts   {} encoded, {} already encoded\n", item_texts_encoded,
                   item_texts_reused);
  s += fmt::format("texts        {} ({} tokens) in {:.1f}s: {:.1f} texts/s\n", texts, tokens,
                   wall_s, texts_per_s());
  if (truncated > 0)
    s += fmt::format("truncated    {} texts longer than the encoder's window (start kept)\n",
                     truncated);
  if (failed > 0) s += fmt::format("failed       {} texts, first: {}\n", failed, first_error);
  if (stopped) s += "stopped      by request; rerun to continue\n";
  return s;
}

EncodeReport encode_knowledge(Store& store, LlmEngine& encoder, const EncodeOptions& opt) {
  const auto t0 = Clock::now();
  EncodeReport rep;
  rep.encoder = encoder.model_id();
  if (opt.batch == 0) throw Error(ErrorKind::Config, "encode batch must be at least 1");
  migrate_interests(store);
  migrate_vectors(store);

  if (auto have = stored_encoder(store); have && have->first != rep.encoder) {
    if (!opt.replace)
      throw Error(ErrorKind::Config,
                  fmt::format("store {} holds vectors of encoder {} ({} dimensions); this run's "
                              "encoder is {}: vectors of two encoders are not comparable. "
                              "Re-encode everything with --replace, or use the same encoder",
                              store.path().string(), have->first, have->second, rep.encoder));
    drop_all_vectors(store);
  }
  std::optional<int> dim;
  if (auto have = stored_encoder(store)) dim = have->second;

  // What needs a vector: sources without one, or whose text changed since.
  std::vector<Job> jobs;
  auto needs = [&](const std::string& key, uint64_t hash) {
    auto v = store.get(uif::kVectors, key);
    if (!v) return true;
    const KnowledgeVector kv = decode_vector(*v);
    return kv.encoder != rep.encoder || kv.source_hash != hash;
  };
  if (opt.interests) {
    for_each_interest(store, "", [&](const InterestRecord& r) {
      if (!r.usable()) return;  // only verified records become knowledge
      Job j{partition_vector_key(r.variant, r.user, r.seq), {r.summary, r.shift},
            texts_hash(r.summary, r.shift), Job::Partition};
      if (needs(j.key, j.hash)) jobs.push_back(std::move(j));
      else ++rep.partitions_reused;
    });
  }
  if (opt.items) {
    for_each_item_knowledge(store, [&](const ItemKnowledge& k) {
      if (!k.ok) return;
      Job j{item_vector_key(k.item), {k.text}, texts_hash(k.text), Job::Item};
      if (needs(j.key, j.hash)) jobs.push_back(std::move(j));
      else ++rep.items_reused;
    });
  }
  // The catalog's item texts (a store ingested before the catalog was kept has none).
  if (opt.item_texts && has_catalog(store)) {
    const BehaviorLog log = load_behavior_log(store, false);
    for (uint32_t row = 1; row < log.items.size(); ++row) {
      std::string text = item_text(log, row);
      const uint64_t hash = texts_hash(text);
      Job j{item_text_vector_key(log.items.ids.key(row)), {std::move(text)}, hash, Job::ItemText};
      if (needs(j.key, j.hash)) jobs.push_back(std::move(j));
      else ++rep.item_texts_reused;
    }
  }

  std::size_t total_texts = 0;
  for (const Job& j : jobs) total_texts += j.texts.size();
  ProgressBar bar("uif encode", total_texts, "texts", opt.progress_bar, opt.on_progress);
  std::size_t next = 0;
  while (next < jobs.size()) {
    if (opt.stop && opt.stop->load()) {
      rep.stopped = true;
      break;
    }
    // One batch: whole jobs up to opt.batch texts.
    std::vector<std::size_t> members;
    std::vector<std::string> texts;
    while (next < jobs.size() && (texts.empty() || texts.size() + jobs[next].texts.size() <= opt.batch)) {
      members.push_back(next);
      for (const auto& t : jobs[next].texts) texts.push_back(t);
      ++next;
    }
    const std::vector<EmbeddingResult> out = encoder.embed(texts);
    if (out.size() != texts.size())
      throw Error(ErrorKind::Internal, "encoder returned a different number of vectors");
    auto batch = store.new_batch();
    std::size_t at = 0;
    for (std::size_t m : members) {
      const Job& job = jobs[m];
      KnowledgeVector kv;
      kv.encoder = rep.encoder;
      kv.source_hash = job.hash;
      bool good = true;
      for (std::size_t t = 0; t < job.texts.size(); ++t) {
        const EmbeddingResult& e = out[at + t];
        rep.tokens += static_cast<uint64_t>(std::max(0, e.tokens));
        rep.truncated += e.truncated;
        if (!e.error.empty() || e.vector.empty()) {
          if (rep.first_error.empty()) rep.first_error = e.error.empty() ? "empty vector" : e.error;
          good = false;
          continue;
        }
        const int d = static_cast<int>(e.vector.size());
        if (!dim) {
          dim = d;
          batch->put(kMetaFamily, kEncoderMetaKey, json{{"id", rep.encoder}, {"dim", d}}.dump());
        } else if (*dim != d) {
          throw Error(ErrorKind::Config,
                      fmt::format("encoder {} returned a {}-dimensional vector where the store's "
                                  "vectors have {}: refusing to mix dimensions",
                                  rep.encoder, d, *dim));
        }
        kv.values.insert(kv.values.end(), e.vector.begin(), e.vector.end());
      }
      at += job.texts.size();
      rep.texts += job.texts.size();
      if (!good) {
        rep.failed += job.texts.size();
        continue;
      }
      kv.dim = *dim;
      batch->put(uif::kVectors, job.key, encode_vector(kv));
      if (job.kind == Job::Partition) ++rep.partitions_encoded;
      else if (job.kind == Job::Item) ++rep.items_encoded;
      else ++rep.item_texts_encoded;
    }
    store.write(*batch);
    bar.advance(texts.size());
  }
  bar.finish();
  rep.dim = dim.value_or(0);
  rep.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return rep;
}

void require_current_vectors(Store& store) {
  if (store.get(kMetaFamily, kVersionKey)) return;
  if (has_keys(store, uif::kVectors, "p"))
    throw Error(ErrorKind::InvalidInput,
                fmt::format("the store at {} keeps its vectors in format 1 (before variants); "
                            "run `liber migrate --store {}` once, which re-keys them and loses "
                            "nothing",
                            store.path().string(), store.path().string()));
}

std::size_t migrate_vectors(Store& store) {
  if (store.get(kMetaFamily, kVersionKey)) return 0;
  migrate_interests(store);  // the records name the variant each vector belongs to
  // A vector goes to the record whose texts it encodes (its source hash): with several
  // variants on one (user, seq), never to another variant's record.
  std::map<std::pair<std::string, uint32_t>, std::vector<std::pair<std::string, uint64_t>>> records;
  for_each_interest(store, "", [&](const InterestRecord& r) {
    if (r.ok) records[{r.user, r.seq}].emplace_back(r.variant, texts_hash(r.summary, r.shift));
  });
  auto batch = store.new_batch();
  std::size_t moved = 0;
  store.scan(uif::kVectors, "p", [&](std::string_view k, std::string_view v) {
    // Format 1: "p" + user key + seq.
    ByteReader r(k.substr(1), "vector key");
    const std::string user(r.lp());
    const uint32_t seq = r.be32();
    const uint64_t source = decode_vector(v).source_hash;
    batch->del(uif::kVectors, k);
    if (auto it = records.find({user, seq}); it != records.end())
      for (const auto& [variant, hash] : it->second)
        if (hash == source) {
          batch->put(uif::kVectors, partition_vector_key(variant, user, seq), v);
          ++moved;
          break;
        }
    // A vector of no current record's texts is of nothing: dropped (encode makes it anew).
    return true;
  });
  batch->put(kMetaFamily, kVersionKey, std::to_string(kVectorsVersion));
  store.write(*batch, true);
  return moved;
}

}  // namespace liber
