// CTR samples built from a BehaviorLog by the lineage's protocol (README "Evaluation
// protocol"): label = like, each user's events in time order, per-user chronological split
// (train / validation slice of train / test), features = user attributes, target item id
// and attributes, and the last N item ids before the event.
//
// Storage is columnar and torch-free, so the trainer turns it into tensors once.
#pragma once

#include <cstdint>
#include <memory>
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

// The LIBER input (UIF): per sample, the vectors of its user's partitions that closed
// strictly before it (SampleSet::partitions, rows of `vectors`), fused by the fuse layer
// into `fused_dim` values that enter the backbone through the dense plug point. Filled by
// attach_interests (liber/uif.h).
struct InterestInput {
  int width = 0;         // floats per partition vector; 0 = no LIBER input
  int slots = 16;        // most recent visible partitions per sample
  int fused_dim = 32;    // fuse layer output
  int hidden = 16;       // fuse layer attention width (bench/fuse_bench: 32 doubles its cost)
  // The frozen vectors are reduced once (PCA fitted on all rows, whitened) to this many
  // dimensions before the fuse layer; 0 keeps them as they are.
  int reduced_dim = 64;
  std::string fusion = "attention";  // attention | mean (the ablation)
  std::shared_ptr<const std::vector<float>> vectors;  // rows x width
};

struct FeatureSchema {
  std::vector<SparseField> sparse;
  std::vector<SequenceField> sequences;
  int target_item_field = -1;  // index into `sparse` of the target item id
  int history_field = -1;      // index into `sequences` of the recent-item history
  // Width of the optional extra dense input per sample: the plug point where the LIBER
  // user-interest vector enters every backbone. 0 = none.
  int dense_dim = 0;
  InterestInput interests;

  int sparse_index(const std::string& name) const;
  int sequence_index(const std::string& name) const;
};

struct SampleSet {
  std::size_t size() const { return labels.size(); }

  std::vector<int64_t> sparse;     // size() x schema.sparse.size(), row-major
  std::vector<int64_t> sequences;  // size() x sum(sequence lengths), row-major
  std::vector<float> dense;        // size() x schema.dense_dim (empty when 0)
  std::vector<int32_t> partitions; // size() x schema.interests.slots rows, -1 = empty
                                   // (empty when schema.interests.width == 0)
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

// Writes the three splits as CSV files (train.csv, valid.csv, test.csv) with one column per
// sparse field, ^-joined id lists for sequence fields, and `label`, so a Python CTR library
// can train on exactly the same samples (bench/fuxictr_din.py does).
void export_ctr_dataset_csv(const CtrDataset& data, const std::string& dir);

}  // namespace liber
