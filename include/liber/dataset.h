// CTR samples built from a BehaviorLog by the lineage's protocol (README "Evaluation
// protocol"): label = like, each user's events in time order, per-user chronological split
// (train / validation slice of train / test), features = user attributes, target item id
// and attributes, and the last N item ids before the event.
//
// Storage is columnar and torch-free, so the trainer turns it into tensors once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "liber/data.h"

namespace liber {

// A field with one id per sample (user id, gender, target item id, year...).
struct SparseField {
  std::string name;
  int64_t vocab = 0;  // embedding rows, id 0 = padding/unknown
};

// A field with up to `length` ids per sample, 0-padded (genres, recent history).
struct SequenceField {
  std::string name;
  int64_t vocab = 0;
  int length = 0;
  // Name of the SparseField whose embedding table this field shares ("item_id" for the
  // history), or empty for a table of its own.
  std::string shares_embedding_with;
};

namespace ctr {
class SideInputFactory;  // src/include/liber/ctr/side_input.h (libtorch)
}

// The side-input plug: one optional per-sample input that every backbone consumes the same
// way, as one more field. Each sample carries `width` int32 values (SampleSet::side, each
// in [lower, upper)); the plug's owner supplies the module that turns them, with the
// target item's embedding, into [B, k] floats. CTR knows nothing of what the values mean:
// LIBER's fuse layer (liber/uif.h) is one such plug, its values rows of a table of
// partition vectors.
struct SideInputPlug {
  std::string name;      // for messages: "liber"
  int width = 0;         // values per sample; 0 = no side input
  int32_t lower = 0, upper = 0;  // every value lies in [lower, upper)
  std::shared_ptr<const ctr::SideInputFactory> factory;
  bool enabled() const { return width > 0; }
};

struct FeatureSchema {
  std::vector<SparseField> sparse;
  std::vector<SequenceField> sequences;
  int target_item_field = -1;  // index into `sparse` of the target item id
  int history_field = -1;      // index into `sequences` of the recent-item history
  SideInputPlug side;

  int sparse_index(const std::string& name) const;
  int sequence_index(const std::string& name) const;
};

struct SampleSet {
  std::size_t size() const { return labels.size(); }

  std::vector<int64_t> sparse;     // size() x schema.sparse.size(), row-major
  std::vector<int64_t> sequences;  // size() x sum(sequence lengths), row-major
  std::vector<int32_t> side;       // size() x schema.side.width (empty when no side input)
  std::vector<float> labels;       // 0 / 1
  std::vector<uint32_t> users;     // user id per sample, for gAUC
  std::vector<int64_t> timestamps; // event time per sample (for leakage-safe joins later)
};

struct SplitConfig {
  double test_fraction = 0.1;   // last fraction of each user's events
  double valid_fraction = 0.1;  // last fraction of each user's train part
  int history_length = 10;      // N recent item ids
};

struct CtrDataset {
  std::string name;          // dataset name
  std::string description;   // provenance, printed with every result
  FeatureSchema schema;
  SampleSet train, valid, test;
};

CtrDataset build_ctr_dataset(const BehaviorLog& log, const SplitConfig& config);

// One sample's features, read off a catalog: build_ctr_dataset's samples and a served
// request's (liber serve's /v1/score) are made by this one builder, so they cannot drift.
// Fields, in order: user id, user attributes, target item id, item year (when the catalog
// has years), item attributes, the recent-item history.
class SampleBuilder {
 public:
  // `catalog` (its items and users; events unused) must outlive the builder.
  SampleBuilder(const BehaviorLog& catalog, int history_length);
  const FeatureSchema& schema() const { return schema_; }
  // Appends one sample of catalog rows `user` and `item` (0 = unknown) at `ts`; `history` is
  // the user's earlier items, most recent first (the first history_length are used).
  void append(SampleSet& set, uint32_t user, uint32_t item, int64_t ts,
              std::span<const uint32_t> history, float label) const;

 private:
  struct Column {
    enum Kind { UserId, ItemId, UserAttr, ItemAttr, ItemYear, History } kind;
    const Attribute* attr = nullptr;
  };
  const BehaviorLog& catalog_;
  FeatureSchema schema_;
  std::vector<Column> sparse_, sequences_;  // how each schema field is read
  std::vector<int64_t> year_ids_;           // catalog row -> item_year id
  std::size_t sequence_width_ = 0;
};

// Appends one sparse field to every split: sample i of a split gets value(split, i), an id
// in [0, field.vocab). For a feature computed outside the log (an oracle, a join).
void add_sparse_field(CtrDataset& data, const SparseField& field,
                      const std::function<int64_t(const SampleSet&, std::size_t)>& value);

// Writes the three splits as CSV files (train.csv, valid.csv, test.csv) with one column per
// sparse field, ^-joined id lists for sequence fields, and `label`, so a Python CTR library
// can train on exactly the same samples (bench/fuxictr_din.py does). Then the sample's join
// keys, which are not features: `user` (its external id in `users`, the log's user table)
// and `timestamp` (unix seconds), what liber.join takes to give each sample the partition
// vectors liber's trainer gives it.
void export_ctr_dataset_csv(const CtrDataset& data, const Vocab& users, const std::string& dir);

}  // namespace liber
