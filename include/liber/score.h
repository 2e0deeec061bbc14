// Scoring: a trained backbone (with or without LIBER's input) saved to a model directory,
// and the scorer that loads it beside a store and answers "how likely is this user to like
// each of these items now", with the user's partitions visible at the request's time.
//
//   train_model   trains one backbone on a store's data and knowledge and writes DIR:
//                   model.json    what was trained, on what, with which knowledge, and its
//                                 metrics (format below)
//                   catalog.json  the feature vocabulary: items, users and their
//                                 attributes, as trained (catalog_to_json)
//                   weights.pt    the backbone's weights (libtorch serialization), the fuse
//                                 layer's frozen reductions included
//   Scorer        loads DIR over a store. A request's samples are built by the same
//                 SampleBuilder as training's; its history is the user's stored events
//                 before the request's time, its knowledge the user's partitions that
//                 closed strictly before it (the training's leakage rule) and have a
//                 vector now: partitions learned after training count, reduced by the
//                 model's own frozen reductions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "liber/ctr.h"
#include "liber/dataset.h"
#include "liber/store.h"
#include "liber/uif.h"

namespace liber {

// The knowledge a model reads through the fuse layer, by name:
//   ""                  none: the backbone alone
//   "content"           partition content vectors (item texts, no LLM)
//   "<variant>"         the variant's verified, encoded interest records (liber learn)
//   "<variant>+content" both, on the partitions that have both
// Every partition of `users` (external ids; empty = all) that has its vectors. `content`,
// when given, is the store's content source read once (else it is read here).
InterestTable load_knowledge(Store& store, std::string_view knowledge,
                             const std::vector<std::string>& users = {},
                             const ContentSource* content = nullptr);

// model.json.
struct ModelInfo {
  int format = 1;
  ModelConfig model;            // backbone and its hyper-parameters
  int history_length = 10;
  std::string dataset, description;  // the store's dataset
  std::string store;            // the store it was trained on (for people)
  std::string knowledge;        // as load_knowledge names it; "" = none
  std::string variant_id;       // the LLM variant's Variant::id() (the name may move)
  // With knowledge: the fuse layer's settings and the vectors it was trained on.
  FuseConfig fuse;
  std::string encoder, layout;
  int dim = 0, texts = 0;       // per text, texts per row
  int row_dim = 0, item_dim = 0;  // the reduced widths (rows, item texts) of its training
  uint64_t train_samples = 0, partitions = 0;
  Metrics valid, test;
  uint64_t seed = 0;
};

struct ModelTraining {
  std::string knowledge;        // load_knowledge's name; "" = the backbone alone
  ModelConfig model;
  TrainConfig train;            // checkpoint_path is set to DIR/weights.pt
  SplitConfig split;
  FuseConfig fuse = [] {        // the experiment's default: similarity on
    FuseConfig f;
    f.similarity = true;
    return f;
  }();
};

struct TrainedModel {
  ModelInfo info;
  TrainResult result;
};

// Trains config.model on the store's dataset (and knowledge), every user, and writes the
// model directory `dir` (created; its files replaced). Throws Error(InvalidInput) when the
// store has no vectors of the knowledge asked for.
TrainedModel train_model(Store& store, const ModelTraining& config, const std::filesystem::path& dir);

// Reads DIR/model.json; throws Error(Parse/Io) naming the file.
ModelInfo read_model_info(const std::filesystem::path& dir);

struct Score {
  std::vector<float> probabilities;  // one per item, in order
  std::size_t history = 0;           // items in the request's history
  std::size_t partitions = 0;        // visible partitions with knowledge (at most the slots)
};

class Scorer {
 public:
  // Loads `dir` for `store`. Throws Error naming the directory when a file is missing or
  // does not fit, and Error(InvalidInput) when the store's vectors are of another encoder
  // than the model's.
  Scorer(Store& store, const std::filesystem::path& dir);
  ~Scorer();
  Scorer(const Scorer&) = delete;
  Scorer& operator=(const Scorer&) = delete;

  const ModelInfo& info() const;
  // The model's catalog row of an item (0 = the model does not know it).
  uint32_t item_row(std::string_view item) const;
  // Scores `items` (known to the model: item_row != 0) for `user` at `ts` (seconds; none =
  // after everything stored). Safe from several threads.
  Score score(std::string_view user, std::span<const std::string> items,
              std::optional<int64_t> ts = std::nullopt);
  // These users' knowledge changed (a partition closed, a record was encoded): their next
  // request reads it from the store again. Cheap; safe from any thread.
  void invalidate(std::span<const std::string> users);
  void invalidate_all();
  // Table rows held (every user read so far; rows of a refreshed user are appended).
  std::size_t rows() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace liber
