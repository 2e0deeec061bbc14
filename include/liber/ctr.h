// CTR backbones and their one trainer. The public surface is torch-free: a backbone is
// named, configured, trained and evaluated through these structs; the libtorch modules live
// in src/ctr/ behind them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "liber/dataset.h"

namespace liber {

// Hyper-parameters shared by the backbones; each reads the ones it uses.
struct ModelConfig {
  std::string backbone = "din";  // one of backbone_names()
  int embedding_dim = 16;
  std::vector<int> mlp = {200, 80};  // hidden units of the deep part
  double dropout = 0.0;
  // DIN: hidden units of the target-attention MLP.
  std::vector<int> attention_mlp = {64};
  // DCNv2: number of cross layers (full-rank matrix form, parallel to the MLP).
  int cross_layers = 3;
  // AutoInt: self-attention layers, heads, and per-head width.
  int attention_layers = 3;
  int attention_heads = 2;
  int attention_dim = 16;
  // xDeepFM: feature maps of each compressed interaction layer (FuxiCTR's default).
  std::vector<int> cin_layers = {16, 16, 16};
  // DIEN: weight of the auxiliary loss (next item vs another sample's; 0 = off).
  double auxiliary_loss_weight = 1.0;
  // FiBiNet: squeeze-excitation bottleneck ratio (fields / ratio units).
  int senet_reduction = 3;
  // FiGNN: message-passing steps over the field graph.
  int graph_steps = 3;
  // L2 on the embeddings rows that appear in a batch (0 = off).
  double embedding_l2 = 0.0;
};

// The backbones this build knows, in the order the CLI runs them.
std::vector<std::string> backbone_names();

struct TrainConfig {
  int max_epochs = 10;
  int batch_size = 1024;
  double learning_rate = 1e-3;
  int patience = 2;      // epochs without a better validation AUC before stopping
  uint64_t seed = 42;
  int threads = 0;       // compute threads (see set_compute_threads); 0 = all cores
  std::string checkpoint_path;  // best epoch's weights; empty = a temporary file
  bool progress = true;  // progress bar on stderr
};

struct Metrics {
  double auc = 0, logloss = 0, gauc = 0;
};

struct TrainResult {
  std::string backbone;
  Metrics valid;                 // at the best epoch
  Metrics test;                  // of the best epoch's weights
  int epochs = 0;                // epochs run
  int best_epoch = 0;            // 1-based
  double train_samples_per_s = 0;  // over all epochs' training steps
  double train_seconds = 0;
  int threads = 0;
  // The best epoch's prediction for every test sample, in data.test order: what a paired
  // comparison of two models on the same samples needs (metrics.h: paired_bootstrap_auc).
  std::vector<float> test_predictions;
};

// Trains `model` on data.train with early stopping on data.valid AUC, restores the best
// epoch and evaluates it on data.test. Deterministic for config.seed when threads == 1.
TrainResult train_and_evaluate(const CtrDataset& data, const ModelConfig& model,
                               const TrainConfig& config);

namespace ctr {
class Backbone;
class SideInputModule;
}  // namespace ctr

// A trained backbone, for inference: built from the schema and config it was trained
// with, its weights read from the file train_and_evaluate wrote (TrainConfig::
// checkpoint_path). predict() may run from several threads at once.
class CtrModel {
 public:
  CtrModel(const FeatureSchema& schema, const ModelConfig& config);
  // Throws Error(Io) naming the file when it cannot be read or does not fit the model.
  void load(const std::string& weights_path);
  // One probability per sample, in order. Ids are checked against the schema; side-input
  // values are the plug owner's to keep valid (a served plug's rows grow after training).
  std::vector<float> predict(const SampleSet& samples) const;
  // The side input's module (nullptr without one), for the plug's owner.
  ctr::SideInputModule* side_input() const;
  const FeatureSchema& schema() const { return schema_; }

 private:
  FeatureSchema schema_;
  std::shared_ptr<ctr::Backbone> backbone_;
};

// Sets the compute threads (0 = all cores) and returns the count in effect. Debian's
// libtorch runs matrix multiplies on OpenBLAS's own pool and element-wise work on its
// OpenMP pool; both at T threads on T cores oversubscribe (measured 3-4x slower on 2
// cores), so T goes to OpenBLAS and libtorch's pool stays at 1 where OpenBLAS is present.
int set_compute_threads(int threads);

}  // namespace liber
