// UIF, user interest fusion: the knowledge encoder's vectors and the per-sample view of
// them that the fuse layer consumes.
//
//   encode_knowledge    text -> vector, once per interest record (summary and shift) and
//                       per item description, stored in the knowledge_vectors family keyed
//                       like its source; reruns encode only what is new or changed.
//   load_interest_table every encoded partition of the store: its vector and time range.
//   attach_interests    gives every CTR sample the rows of its user's partitions that
//                       closed strictly before the sample's timestamp (no leakage).
//   export_interest_table  the table as .npy + JSON index for Python CTR frameworks.
//
// The fuse layer itself (attention over a sample's partition rows, target-aware) implements
// CTR's side-input plug (FeatureSchema::side): a libtorch module inside every backbone,
// configured by FuseConfig, trained jointly with it.
//
// Partition content (no LLM): every catalog item's text (item_text: title and attributes)
// is encoded once; a partition's content vector is the mean of its liked items' text vectors
// beside the mean of its other items' (load_content_table), so it exists for every
// partition of every user, at encoder speed, and is the reference the LLM's knowledge must
// beat. Controls with the same structure and no knowledge: random_control, shuffled_control.
//
// knowledge_vectors layout (binary values, version byte 1), format 2 (meta "uif.version"):
//   "p" + interest key (variant id + user key + big-endian seq) -> summary, then shift vector
//   "i" + external item id                          -> item description vector (LLM)
//   "t" + external item id                          -> item text vector (item_text)
//   value: version, encoder id, dim, source hash (of the encoded texts), floats (LE)
// The store's meta family holds "uif.encoder" = {"id", "dim"}: one encoder per store.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "liber/data.h"
#include "liber/dataset.h"
#include "liber/llm.h"
#include "liber/store.h"
#include "liber/uil.h"

namespace liber {

// ---- Knowledge vectors -----------------------------------------------------------------
struct KnowledgeVector {
  std::string encoder;      // LlmEngine::model_id() of the encoder
  int dim = 0;              // floats per encoded text
  uint64_t source_hash = 0; // FNV-1a of the encoded text(s): a changed source is re-encoded
  std::vector<float> values;  // partition: 2 * dim (summary, then shift); item: dim
};

// The vector of the record of variant `variant_id` for (user, seq).
std::optional<KnowledgeVector> read_partition_vector(Store& store, std::string_view variant_id,
                                                     std::string_view user, uint32_t seq);
std::optional<KnowledgeVector> read_item_vector(Store& store, std::string_view item);

struct EncodeOptions {
  bool interests = true;      // every ok interest record (summary and shift)
  bool items = false;         // every ok item description (when learned: learn --item-knowledge)
  bool item_texts = true;     // every catalog item's text (the partition content vectors)
  std::size_t batch = 64;     // texts per embed() call and per atomic store write
  // The store already holds vectors of another encoder (or dimension): false refuses with
  // an error, true deletes them and encodes everything with this one.
  bool replace = false;
  bool progress_bar = false;
  ProgressCallback on_progress;  // texts embedded (and the run's total), after each batch
  const std::atomic<bool>* stop = nullptr;  // finish the current batch, then return
};

struct EncodeReport {
  std::string encoder;
  int dim = 0;
  uint64_t texts = 0, tokens = 0;  // encoded by this run
  uint64_t partitions_encoded = 0, partitions_reused = 0;
  uint64_t items_encoded = 0, items_reused = 0;
  uint64_t item_texts_encoded = 0, item_texts_reused = 0;
  uint64_t truncated = 0;          // texts longer than the encoder's window (start kept)
  uint64_t failed = 0;             // texts the engine could not embed (reported, skipped)
  std::string first_error;
  double wall_s = 0;
  bool stopped = false;
  double texts_per_s() const { return wall_s > 0 ? static_cast<double>(texts) / wall_s : 0; }
  std::string summary() const;  // multi-line, for the CLI
};

// Encodes the records of every variant (and, with options.items, the item descriptions).
// Upgrades a store of format 1 first (migrate_interests, migrate_vectors).
EncodeReport encode_knowledge(Store& store, LlmEngine& encoder, const EncodeOptions& options = {});

// Format 1 keyed partition vectors by user and seq alone; migrate_vectors re-keys them by
// the variant of their (migrated) record, in one atomic batch. Returns how many it moved.
inline constexpr int kVectorsVersion = 2;
// A vector moves only to the record whose texts it encodes (its source hash).
std::size_t migrate_vectors(Store& store);
// Throws Error(InvalidInput) naming the store while its vectors are in format 1.
void require_current_vectors(Store& store);

// ---- The interest table ----------------------------------------------------------------
struct PartitionVector {
  std::string user;
  uint32_t seq = 0;
  int64_t t_begin = 0, t_end = 0;  // timestamps of the partition's first and last behavior
  uint32_t row = 0;                // row of InterestTable::rows
};

struct InterestTable {
  std::string variant;                      // Variant::id() of its records; "content", ...
  std::string encoder;
  int dim = 0;                              // per text
  int texts = 2;                            // vectors per row: a row is width() floats
  std::string layout = "summary|shift";     // what the row's vectors are, in order
  std::vector<PartitionVector> partitions;  // by (user key, seq)
  std::vector<float> rows;                  // partitions.size() x width()
  int width() const { return texts * dim; }
};

// The leakage rule, over one user's partitions as (t_end, row) in seq order: for a sample
// at `ts`, the rows of the partitions whose last behavior is strictly before ts (a partition
// ending in the sample's own second may hold the sample itself), the most recent out.size()
// of them, right-aligned (the last slot is the latest), -1 in empty slots. Returns how many
// slots hold a partition. The trainer, the scorer and the Python package all join with it.
std::size_t visible_partitions(std::span<const std::pair<int64_t, int32_t>> by_seq, int64_t ts,
                               std::span<int32_t> out);

// visible_partitions for samples of any user of a table (attach_interests, the Python join).
class PartitionTimeline {
 public:
  explicit PartitionTimeline(const InterestTable& table);
  // Fills `out`; returns how many slots hold a partition.
  std::size_t visible(std::string_view user, int64_t ts, std::span<int32_t> out) const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // (t_end, row) of each partition of a user, by seq.
  std::unordered_map<std::string, std::vector<std::pair<int64_t, int32_t>>, Hash, std::equal_to<>> by_user_;
};

// Every partition of the variant's set with an ok record of the variant and a vector of the
// current encoder. `users` (external ids) restricts it; empty = all.
InterestTable load_interest_table(Store& store, const Variant& variant,
                                  const std::vector<std::string>& users = {});

// Users with at least one partition whose every closed partition has an interest record
// and, when that record is ok, a vector (external ids, store key order). Failed records
// count as learned: the LLM had its attempts, and the fuse layer simply does not see them
// (requiring success would bias the population towards users the model handles well).
std::vector<std::string> fully_encoded_users(Store& store, const Variant& variant);

// ---- Partition content and the controls ----------------------------------------------
// The encoder's text of catalog row `row`: "Heat (1995). genres: Action, Crime, Thriller."
// (the title with its year once, then every attribute by label).
std::string item_text(const BehaviorLog& log, uint32_t row);
// Every item text vector of the store, by external item id.
std::unordered_map<std::string, KnowledgeVector> read_item_text_vectors(Store& store);

// One row per partition of `set` that has at least one item with a text vector: the mean
// text vector of its liked behaviors (BehaviorLog::like_threshold, or the label) and the
// mean of the others, zeros for an empty half. variant "content", layout "liked|other".
// `users` (external ids) restricts it; empty = all.
InterestTable load_content_table(Store& store, const PartitionSet& set,
                                 const std::vector<std::string>& users = {});
// What a content table is made of besides the partitions: every item text vector and the
// like threshold. Read once to make many tables (a served model refreshes one user at a time).
struct ContentSource {
  std::unordered_map<std::string, KnowledgeVector> items;  // by external item id
  float like_threshold = 4.0f;
  std::string encoder;  // of every item vector (one encoder per store)
  int dim = 0;          // 0: no item text vectors
};
ContentSource load_content_source(Store& store);
InterestTable load_content_table(Store& store, const PartitionSet& set,
                                 const std::vector<std::string>& users, const ContentSource& source);
// The same partitions and times, each row an independent standard-normal vector fixed by
// (user, seq, seed): structure (how many partitions, when they closed) without content.
InterestTable random_control(const InterestTable& table, uint64_t seed);
// The same partitions and times, but user u's k-th partition carries the row of user
// pi(u)'s (k mod n)-th partition, pi a random derangement of the users: real vectors, of
// the wrong user. Throws Error(InvalidInput) with fewer than two users.
InterestTable shuffled_control(const InterestTable& table, uint64_t seed);
// The partitions both tables have (same user, seq), rows a's vectors then b's: the
// "content and LLM" input.
InterestTable join_tables(const InterestTable& a, const InterestTable& b);

// Keeps only the samples of the given users (external ids) in every split.
void keep_users(CtrDataset& data, const BehaviorLog& log, const std::vector<std::string>& users);

// The fuse layer's settings.
struct FuseConfig {
  int slots = 16;        // most recent visible partitions per sample
  int fused_dim = 32;    // fuse layer output
  int hidden = 16;       // attention width (bench/fuse_bench: 32 doubles its cost)
  // The frozen vectors are reduced once (PCA fitted on all rows, whitened) to this many
  // dimensions before the fuse layer; 0 keeps them as they are.
  int reduced_dim = 64;
  std::string fusion = "attention";  // attention | mean (the ablation)
  // The target-aware query: the target item's learned embedding ("item"), its text vector
  // through the encoder ("text", needs the item text table), or their sum ("both").
  std::string query = "item";
  // The output also sees pooled * query (elementwise, attention only): the match between
  // the user's partitions and the target in one product, which the backbone need not learn.
  bool interaction = false;
  // The output also sees, for every slot and every text of its row, the cosine between that
  // text's vector and the target item's text vector, in the encoder's own space (frozen, no
  // parameters): how well each visible partition describes the target. Needs the item text
  // table, like a text query.
  bool similarity = false;
  bool needs_item_texts() const { return query != "item" || similarity; }
};

// Every catalog item's text vector, by the log's item row (CtrDataset item ids are those
// rows); rows without a vector are marked absent.
struct ItemTextTable {
  int dim = 0;
  std::vector<float> rows;      // log.items.size() x dim
  std::vector<uint8_t> present; // per row
};
ItemTextTable load_item_text_table(Store& store, const BehaviorLog& log);

// The fuse layer over `table`'s rows as a side-input plug ("liber"): each sample's values
// are `config.slots` table rows, -1 for an empty slot. Throws Error(Config) for a bad config.
// With a text query or similarity, `items` is required and every sample carries one more
// value: its target item's row of the item text table (-1 when it has none).
SideInputPlug fuse_plug(const InterestTable& table, const FuseConfig& config,
                        const ItemTextTable* items = nullptr);

// Sets data.schema.side = fuse_plug(table, config) and gives every sample of every split the
// rows of its user's partitions whose t_end is strictly before the sample's timestamp: the
// most recent `config.slots`, right-aligned (slot slots-1 = the latest), -1 in empty slots.
// A partition holding the sample's own event, or any later one, is therefore never visible.
// With config.needs_item_texts(), `items` must be given (see fuse_plug).
void attach_interests(CtrDataset& data, const BehaviorLog& log, const InterestTable& table,
                      const FuseConfig& config, const ItemTextTable* items = nullptr);

// Writes <dir>/partition_vectors.npy (float32 [partitions, width]) and <dir>/index.json:
// {"encoder", "dim", "width", "layout": "summary|shift", "partitions": [{"user", "seq",
// "t_begin", "t_end", "row"}]} (README "Using the vectors from Python").
void export_interest_table(const InterestTable& table, const std::filesystem::path& dir);

}  // namespace liber
