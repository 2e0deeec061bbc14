// Training cost of the LIBER input (issue 5's speed goal: a backbone with LIBER trains at
// >= 0.7x the samples/s of the backbone alone). Each case is one optimizer-free train step
// (forward + backward) on a synthetic batch shaped like the ML-1M experiment's content arm:
// 1,024 samples, 16 partition slots filled as in ML-1M (mean 3.3 visible), rows of two 384-d
// texts (liked | other) reduced to 64 by PCA, 3,900 item text vectors; "attention" is the
// experiment's default (target similarity on), "attention-nosim" without it, "mean" the
// ablation, "attention-dense" the default on 0..16 visible partitions (mean 8).
//
//   build/fuse_bench                                   # all cases
//   build/fuse_bench --benchmark_filter=Backbone/deepfm
//
// InterestGru/{fused,plain}: DIEN's two GRUs with the fused kernel and with plain libtorch
// ops (the kernel's gain).
//
// items_per_second is samples/s; the ratio to read is Backbone/<name>/attention (or mean)
// over Backbone/<name>/none from the same run. Backbone/<name>/plumbing is the backbone with
// a side input that does no work: the cost of the extra field alone.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "liber/ctr.h"
#include "liber/ctr/backbone.h"
#include "liber/uif/fuse_layer.h"

namespace {

constexpr int64_t kBatch = 1024, kSlots = 16, kRows = 8000, kTexts = 2, kDim = 384,
                  kWidth = kTexts * kDim, kItems = 3900, kHistory = 10;
constexpr int kThreads = 2;

liber::uif::FuseTable fuse_table() {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> n(0, 1);
  auto table = std::make_shared<std::vector<float>>(static_cast<std::size_t>(kRows * kWidth));
  for (float& v : *table) v = n(rng);
  auto items = std::make_shared<std::vector<float>>(static_cast<std::size_t>(kItems * kDim));
  for (float& v : *items) v = n(rng);
  return {std::move(table), static_cast<int>(kWidth), std::move(items), static_cast<int>(kDim),
          static_cast<int>(kTexts)};
}

// "<fusion>-dense": the same layer on the dense partition mix (partition_rows).
bool dense(const std::string& fusion) { return fusion.ends_with("-dense"); }

liber::FuseConfig fuse_config(const std::string& fusion) {
  liber::FuseConfig c;
  c.slots = static_cast<int>(kSlots);
  c.fusion = fusion == "mean" ? "mean" : "attention";
  c.similarity = fusion != "attention-nosim";
  return c;
}

// Share of ML-1M training samples (users 1-2999, K = 50, one partition per 50 behaviors)
// by how many closed partitions they see, 0..16 (16 = 16 or more): mean 3.3, 27.5% none.
constexpr double kMl1mVisible[kSlots + 1] = {0.275, 0.173, 0.121, 0.089, 0.068, 0.053,
                                             0.042, 0.035, 0.028, 0.023, 0.018, 0.014,
                                             0.012, 0.010, 0.008, 0.006, 0.024};

// Right-aligned visible partitions per sample, drawn as in ML-1M ("ml1m") or uniform on
// 0..16 ("dense", mean 8: users with long histories); with `target`, the target item's text
// row as a last column (the similarity's input).
torch::Tensor partition_rows(bool target, bool dense) {
  std::mt19937_64 rng(11);
  std::discrete_distribution<int64_t> ml1m(std::begin(kMl1mVisible), std::end(kMl1mVisible));
  std::vector<int64_t> rows(static_cast<std::size_t>(kBatch * kSlots), -1);
  for (int64_t s = 0; s < kBatch; ++s) {
    const int64_t visible = dense ? static_cast<int64_t>(rng() % (kSlots + 1)) : ml1m(rng);
    for (int64_t j = kSlots - visible; j < kSlots; ++j)
      rows[static_cast<std::size_t>(s * kSlots + j)] = static_cast<int64_t>(rng() % kRows);
  }
  torch::Tensor t = torch::tensor(rows, torch::kLong).view({kBatch, kSlots});
  if (!target) return t;
  return torch::cat({t, torch::randint(0, kItems, {kBatch, 1}, torch::kLong)}, 1);
}

void FuseLayerStep(benchmark::State& state, const std::string& fusion) {
  liber::set_compute_threads(kThreads);
  torch::manual_seed(1);
  liber::uif::FuseLayer fuse(fuse_table(), fuse_config(fusion), 16);
  const torch::Tensor side = partition_rows(true, dense(fusion));
  const torch::Tensor rows = side.narrow(1, 0, kSlots), items = side.select(1, kSlots);
  const torch::Tensor query = torch::randn({kBatch, 16}, torch::requires_grad());
  const torch::Tensor weight = torch::randn({kBatch, fuse->output_dim()});
  for (auto _ : state) {
    fuse->zero_grad();
    (fuse->fuse(rows, query, items) * weight).sum().backward();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// "plumbing": a side input that does no work, a learned [B, 32] vector per batch with the
// fuse layer's output width: what one more field costs the backbone, apart from the layer.
class ConstantSide : public liber::ctr::SideInputModule {
 public:
  ConstantSide() { value_ = register_parameter("value", torch::zeros({32})); }
  torch::Tensor forward(const liber::ctr::Batch& batch, const torch::Tensor&) override {
    return value_.expand({batch.side.size(0), 32});
  }
  int64_t output_dim() const override { return 32; }

 private:
  torch::Tensor value_;
};
class ConstantSideFactory : public liber::ctr::SideInputFactory {
 public:
  std::shared_ptr<liber::ctr::SideInputModule> make(int64_t) const override {
    return std::make_shared<ConstantSide>();
  }
};

// ML-1M-like fields: user, item, gender, age, occupation, zip, year; genres and history.
liber::FeatureSchema schema(const std::string& fusion) {
  liber::FeatureSchema s;
  s.sparse = {{"user_id", 3000}, {"item_id", 3900}, {"gender", 3}, {"age", 8},
              {"occupation", 22}, {"zip", 3500}, {"year", 90}};
  s.sequences = {{"genres", 19, 6, ""}, {"history", 3900, static_cast<int>(kHistory), "item_id"}};
  s.target_item_field = 1;
  s.history_field = 1;
  if (!fusion.empty()) s.side = liber::uif::fuse_plug(fuse_table(), fuse_config(fusion));
  if (fusion == "plumbing") s.side.factory = std::make_shared<ConstantSideFactory>();
  return s;
}

liber::ctr::Batch batch_for(const liber::FeatureSchema& s, bool dense_rows) {
  torch::manual_seed(3);
  liber::ctr::Batch b;
  std::vector<torch::Tensor> cols;
  for (const auto& f : s.sparse) cols.push_back(torch::randint(1, f.vocab, {kBatch, 1}, torch::kLong));
  b.sparse = torch::cat(cols, 1);
  cols.clear();
  for (const auto& f : s.sequences) cols.push_back(torch::randint(0, f.vocab, {kBatch, f.length}, torch::kLong));
  b.sequences = torch::cat(cols, 1);
  if (s.side.enabled()) b.side = partition_rows(s.side.width > kSlots, dense_rows);
  return b;
}

void BackboneStep(benchmark::State& state, const std::string& backbone, const std::string& fusion) {
  liber::set_compute_threads(kThreads);
  torch::manual_seed(1);
  liber::ModelConfig config;  // the experiment's defaults (configs/experiment-ml-1m.json)
  config.backbone = backbone;
  const liber::FeatureSchema s = schema(fusion);
  auto model = liber::ctr::make_backbone(s, config);
  const liber::ctr::Batch batch = batch_for(s, dense(fusion));
  const torch::Tensor labels = torch::randint(0, 2, {kBatch}).to(torch::kFloat);
  for (auto _ : state) {
    model->zero_grad();
    torch::binary_cross_entropy_with_logits(model->forward(batch), labels).backward();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// DIEN's two GRUs on one batch (the history's 10 steps, 1 in 4 padded): the extractor
// (every state) and the AUGRU (final state, attention-scaled), forward + backward, with the
// fused kernel and with plain libtorch ops (the same parameters and results).
void InterestGruStep(benchmark::State& state, bool fused) {
  liber::set_compute_threads(kThreads);
  torch::manual_seed(1);
  liber::ctr::InterestGru extractor(16, fused), evolution(16, fused);
  const torch::Tensor x = torch::randn({kBatch, kHistory, 16}).requires_grad_();
  const torch::Tensor mask = (torch::rand({kBatch, kHistory}) > 0.25).to(torch::kFloat);
  const torch::Tensor weight = (torch::rand({kBatch, kHistory}) * mask).requires_grad_();
  for (auto _ : state) {
    extractor->zero_grad();
    evolution->zero_grad();
    const torch::Tensor states = extractor(x, mask);
    (states.sum() + evolution->final_state(states, weight).sum()).backward();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void register_all() {
  for (bool fused : {true, false})
    benchmark::RegisterBenchmark(fused ? "InterestGru/fused" : "InterestGru/plain",
                                 [fused](benchmark::State& st) { InterestGruStep(st, fused); })
        ->Unit(benchmark::kMillisecond);
  for (const char* fusion : {"attention", "attention-nosim", "mean", "attention-dense"})
    benchmark::RegisterBenchmark((std::string("FuseLayer/") + fusion).c_str(),
                                 [f = std::string(fusion)](benchmark::State& st) { FuseLayerStep(st, f); })
        ->Unit(benchmark::kMillisecond);
  for (const std::string& backbone : liber::backbone_names())
    for (const char* fusion : {"", "plumbing", "attention", "attention-nosim", "mean", "attention-dense"})
      benchmark::RegisterBenchmark(
          ("Backbone/" + backbone + "/" + (*fusion ? fusion : "none")).c_str(),
          [backbone, f = std::string(fusion)](benchmark::State& st) { BackboneStep(st, backbone, f); })
          ->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
