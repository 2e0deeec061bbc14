// UIF's fuse layer: shapes, masking, gradients, the attention path against a brute-force
// reference, the PCA reduction, and every backbone learning from the LIBER input alone.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "liber/ctr.h"
#include "liber/ctr/backbone.h"
#include "liber/uif/fuse_layer.h"
#include "ctr/small_models.h"

namespace liber {
namespace {

constexpr int64_t kQueryDim = 6;

struct FuseInput {
  uif::FuseTable table;
  FuseConfig config;
};

FuseInput input_of(std::vector<float> table, int width, const std::string& fusion,
                   int slots = 4, int reduced = 0, int hidden = 6) {
  FuseInput in;
  in.table = {std::make_shared<const std::vector<float>>(std::move(table)), width};
  in.config.slots = slots;
  in.config.fused_dim = 5;
  in.config.hidden = hidden;
  in.config.reduced_dim = reduced;
  in.config.fusion = fusion;
  return in;
}

uif::FuseLayer fuse_layer(const FuseInput& in) { return uif::FuseLayer(in.table, in.config, kQueryDim); }

std::vector<float> random_table(int rows, int width, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0, 1);
  std::vector<float> t(static_cast<std::size_t>(rows * width));
  for (float& v : t) v = n(rng);
  return t;
}

// Three samples: two visible partitions; none; four.
torch::Tensor sample_rows() {
  return torch::tensor({-1, -1, 1, 2, -1, -1, -1, -1, 3, 4, 5, 6}, torch::kLong).view({3, 4});
}

std::map<std::string, torch::Tensor> params(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value();
  return out;
}

TEST(FuseLayer, ShapesGradientsAndNoHistory) {
  for (const char* fusion : {"attention", "mean"}) {
    torch::manual_seed(1);
    uif::FuseLayer fuse = fuse_layer(input_of(random_table(7, 10, 2), 10, fusion));
    torch::Tensor query = torch::randn({3, kQueryDim}, torch::requires_grad());
    torch::Tensor out = fuse->fuse(sample_rows(), query);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 5})) << fusion;
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
    // The sample without a visible partition gets the learned "no history" vector.
    auto p = params(*fuse);
    EXPECT_TRUE(torch::equal(out[1], p.at("no_history"))) << fusion;

    (out * torch::randn({3, 5})).sum().backward();
    for (const auto& [name, t] : p) {
      ASSERT_TRUE(t.grad().defined()) << fusion << " " << name;
      EXPECT_GT(t.grad().abs().sum().item<double>(), 0.0) << fusion << " " << name;
    }
    EXPECT_FALSE(fuse->table.requires_grad());  // frozen vectors
    if (std::string(fusion) == "attention") {
      ASSERT_TRUE(query.grad().defined());  // target-aware: the query is trained through it
      EXPECT_GT(query.grad().abs().sum().item<double>(), 0.0);
    } else {
      EXPECT_FALSE(query.grad().defined() && query.grad().abs().sum().item<double>() > 0);
    }
  }
}

TEST(FuseLayer, EmptySlotsDoNotLeakIn) {
  for (const char* fusion : {"attention", "mean"}) {
    torch::manual_seed(2);
    auto table = random_table(7, 10, 3);
    uif::FuseLayer fuse = fuse_layer(input_of(table, 10, fusion));
    torch::Tensor query = torch::randn({3, kQueryDim});
    torch::Tensor before = fuse->fuse(sample_rows(), query);
    // Row 0 is what an empty slot (-1) gathers before masking: changing it must not matter.
    torch::NoGradGuard g;
    fuse->table[0].fill_(100.0f);
    torch::Tensor after = fuse->fuse(sample_rows(), query);
    EXPECT_TRUE(torch::allclose(before, after)) << fusion;
    // A batch in which no sample has a visible partition.
    torch::Tensor none = fuse->fuse(torch::full({2, 4}, -1, torch::kLong), query.narrow(0, 0, 2));
    EXPECT_TRUE(torch::equal(none, params(*fuse).at("no_history").expand({2, 5}))) << fusion;
  }
}

// The attention path recomputed sample by sample over the visible partitions only.
torch::Tensor brute_force(uif::FuseLayer& fuse, const torch::Tensor& rows, const torch::Tensor& query) {
  auto p = params(*fuse);
  auto lin = [&](const std::string& name, const torch::Tensor& x) {
    return torch::matmul(x, p.at(name + ".weight").t()) + p.at(name + ".bias");
  };
  // Query, key and value are the three [h, h] blocks of the one qkv map.
  const int64_t h = p.at("slot_embedding").size(1);
  auto block = [&](int64_t i, const torch::Tensor& x) {
    return torch::matmul(x, p.at("qkv.weight").narrow(0, i * h, h).t()) +
           p.at("qkv.bias").narrow(0, i * h, h);
  };
  const double scale = 1.0 / std::sqrt(static_cast<double>(p.at("slot_embedding").size(1)));
  std::vector<torch::Tensor> outs;
  for (int64_t b = 0; b < rows.size(0); ++b) {
    std::vector<torch::Tensor> xs;
    for (int64_t s = 0; s < rows.size(1); ++s) {
      const int64_t r = rows[b][s].item<int64_t>();
      if (r < 0) continue;
      xs.push_back(torch::relu(lin("input", fuse->table[r])) + p.at("slot_embedding")[s]);
    }
    if (xs.empty()) {
      outs.push_back(p.at("no_history"));
      continue;
    }
    torch::Tensor x = torch::stack(xs);  // [n, h]
    torch::Tensor a = torch::softmax(torch::matmul(block(0, x), block(1, x).t()) * scale, -1);
    torch::Tensor y = x + torch::matmul(a, block(2, x));
    torch::Tensor w = torch::softmax(torch::matmul(y, lin("target", query[b])) * scale, 0);
    outs.push_back(lin("output", torch::matmul(w, y)));
  }
  return torch::stack(outs);
}

// Output and every gradient (parameters and the target query) of the fused kernel against
// the per-sample libtorch reference; hidden 6 runs the generic kernel, 8 and 16 the vector ones.
// Table rows 1 and 8 are shared by two samples, so their gradients add up across samples.
TEST(FuseLayer, AttentionMatchesBruteForce) {
  for (int hidden : {6, 8, 16}) {
    torch::manual_seed(5);
    uif::FuseLayer fuse = fuse_layer(input_of(random_table(9, 10, 4), 10, "attention", 4, 0, hidden));
    torch::Tensor rows = torch::tensor({-1, -1, 1, 2, -1, -1, -1, -1, 3, 4, 5, 6, -1, 8, 1, 7,
                                        8, -1, -1, 0},  // a gap inside the window too
                                       torch::kLong).view({5, 4});
    const torch::Tensor upstream = torch::randn({5, 5}), query0 = torch::randn({5, kQueryDim});
    auto run = [&](bool fast) {
      fuse->zero_grad();
      torch::Tensor query = query0.clone().requires_grad_();
      torch::Tensor out = fast ? fuse->fuse(rows, query) : brute_force(fuse, rows, query);
      (out * upstream).sum().backward();
      std::map<std::string, torch::Tensor> grads;
      for (const auto& [name, t] : params(*fuse)) grads[name] = t.grad().clone();
      grads["(query)"] = query.grad().clone();
      return std::make_pair(out.detach(), grads);
    };
    auto [fast, fast_grads] = run(true);
    auto [slow, slow_grads] = run(false);
    EXPECT_TRUE(torch::allclose(fast, slow, 1e-4, 1e-5)) << hidden << fast << slow;
    for (const auto& [name, g] : slow_grads)
      EXPECT_TRUE(torch::allclose(fast_grads.at(name), g, 1e-4, 1e-5))
          << hidden << " " << name << fast_grads.at(name) << g;
  }
}

// With every principal direction kept the projection is a rotation of the centred vectors:
// the similarity is then the plain cosine of (text - mean item) and (target - mean item).
TEST(FuseLayer, SimilarityIsTheCentredCosineToTheTarget) {
  constexpr int kDim = 5, kTexts = 2, kItems = 7, kRows = 6;
  const std::vector<float> rows_table = random_table(kRows, kTexts * kDim, 21);
  const std::vector<float> items = random_table(kItems, kDim, 22);
  FuseInput in = input_of(rows_table, kTexts * kDim, "attention", 4, 0);
  in.table.item_vectors = std::make_shared<const std::vector<float>>(items);
  in.table.item_width = kDim;
  in.table.texts = kTexts;
  in.config.similarity = true;
  uif::FuseLayer fuse = fuse_layer(in);
  const torch::Tensor rows = torch::tensor({-1, -1, 1, 2, 0, 3, 4, 5, 5, -1, 0, 1}, torch::kLong).view({3, 4});
  const torch::Tensor targets = torch::tensor({3, 6, -1}, torch::kLong);
  const torch::Tensor got = fuse->similarities(rows, targets);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{3, 4 * kTexts}));
  double mean[kDim] = {};
  for (int i = 0; i < kItems; ++i)
    for (int d = 0; d < kDim; ++d) mean[d] += items[i * kDim + d] / kItems;
  for (int s = 0; s < 3; ++s)
    for (int m = 0; m < 4; ++m)
      for (int t = 0; t < kTexts; ++t) {
        const int64_t row = rows[s][m].item<int64_t>(), item = targets[s].item<int64_t>();
        double want = 0;
        if (row >= 0 && item >= 0) {
          double xy = 0, xx = 0, yy = 0;
          for (int d = 0; d < kDim; ++d) {
            const double x = rows_table[(row * kTexts + t) * kDim + d] - mean[d];
            const double y = items[item * kDim + d] - mean[d];
            xy += x * y, xx += x * x, yy += y * y;
          }
          want = xy / std::sqrt(xx * yy);
        }
        EXPECT_NEAR(got[s][m * kTexts + t].item<float>(), want, 1e-5) << s << " " << m << " " << t;
      }
  // And the layer runs with it: the output sees the similarities. A batch's side columns
  // arrive as strided views of one [B, slots + 1] tensor; they are read in place, to the
  // same result.
  const torch::Tensor query = torch::randn({3, kQueryDim});
  const torch::Tensor out = fuse->fuse(rows, query, targets);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 5}));
  const torch::Tensor side = torch::cat({rows, targets.unsqueeze(1)}, 1);
  EXPECT_TRUE(torch::equal(fuse->similarities(side.narrow(1, 0, 4), side.select(1, 4)), got));
  EXPECT_TRUE(torch::equal(fuse->fuse(side.narrow(1, 0, 4), query, side.select(1, 4)), out));
}

TEST(FuseLayer, PcaReductionWhitensAndKeepsOrder) {
  // 200 rows in 12 dimensions with decreasing variance along the first axes.
  std::mt19937_64 rng(6);
  std::normal_distribution<double> n(0, 1);
  torch::Tensor x = torch::zeros({200, 12}, torch::kDouble);
  for (int i = 0; i < 200; ++i)
    for (int j = 0; j < 12; ++j) x[i][j] = n(rng) * (12 - j) + 3.0;
  torch::Tensor r = uif::reduce_vectors(x.to(torch::kFloat), 4).to(torch::kDouble);
  ASSERT_EQ(r.sizes(), (std::vector<int64_t>{200, 4}));
  torch::Tensor cov = r.t().mm(r) / 199.0;
  EXPECT_TRUE(torch::allclose(cov, torch::eye(4, torch::kDouble), 1e-3, 1e-3)) << cov;
  EXPECT_LT(r.mean(0).abs().max().item<double>(), 1e-4);
  // The first component is the highest-variance axis (axis 0, sign fixed positive).
  const double corr = (r.select(1, 0) * (x.select(1, 0) - x.select(1, 0).mean())).sum().item<double>();
  EXPECT_GT(corr, 0.0);
  EXPECT_TRUE(torch::equal(uif::reduce_vectors(x.to(torch::kFloat), 4), uif::reduce_vectors(x.to(torch::kFloat), 4)));
  // k >= width keeps the vectors.
  EXPECT_TRUE(torch::equal(uif::reduce_vectors(x.to(torch::kFloat), 0), x.to(torch::kFloat)));
}

// One sample per user, train / valid / test users disjoint (so no id can carry a taste into
// the test), labelled by the user's taste; only the partition vectors (taste + noise)
// reveal it.
CtrDataset taste_dataset(const std::string& fusion) {
  constexpr int kUsers = 4200, kItems = 50, kWidth = 8, kParts = 3;
  std::mt19937_64 rng(11);
  std::normal_distribution<float> noise(0, 0.5f);
  std::uniform_int_distribution<int> item(1, kItems);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<int> taste(kUsers + 1);
  for (int& t : taste) t = unit(rng) < 0.5 ? 1 : 0;
  std::vector<float> table;
  for (int u = 1; u <= kUsers; ++u)
    for (int p = 0; p < kParts; ++p)
      for (int k = 0; k < kWidth; ++k)
        table.push_back((k == 0 ? 2.0f * taste[u] - 1.0f : 0.0f) + noise(rng));
  CtrDataset d;
  d.name = "taste";
  d.schema.sparse = {{"user_id", kUsers + 1}, {"item_id", kItems + 1}};
  d.schema.sequences = {{"history", kItems + 1, 3, "item_id"}};
  d.schema.target_item_field = 1;
  d.schema.history_field = 0;
  auto fill = [&](SampleSet& s, int first_user, int n) {
    for (int i = 0; i < n; ++i) {
      const int u = first_user + i;
      s.sparse.insert(s.sparse.end(), {u, item(rng)});
      s.sequences.insert(s.sequences.end(), {item(rng), item(rng), 0});
      const int visible = 1 + i % kParts;  // 1..3 partitions visible, right-aligned
      for (int slot = 0; slot < 4; ++slot) {
        const int first = 4 - visible;
        s.side.push_back(slot < first ? -1 : (u - 1) * kParts + (slot - first));
      }
      s.labels.push_back(unit(rng) < (taste[u] ? 0.9 : 0.1) ? 1.0f : 0.0f);
      s.users.push_back(static_cast<uint32_t>(u));
      s.timestamps.push_back(i);
    }
  };
  fill(d.train, 1, 3000);
  fill(d.valid, 3001, 600);
  fill(d.test, 3601, 600);
  const FuseInput in = input_of(std::move(table), kWidth, fusion);
  d.schema.side = uif::fuse_plug(in.table, in.config);
  return d;
}

class FuseBackbones : public ::testing::TestWithParam<std::string> {};

TEST_P(FuseBackbones, LearnTheTasteFromTheLiberInputAlone) {
  const ModelConfig m = testing::small_model(GetParam());
  TrainConfig t = testing::fast_training();
  t.max_epochs = 4;
  for (const char* fusion : {"attention", "mean"}) {
    const TrainResult r = train_and_evaluate(taste_dataset(fusion), m, t);
    // Labels follow the taste with probability 0.9: the best possible AUC is 0.9.
    EXPECT_GT(r.test.auc, 0.8) << GetParam() << " " << fusion;
  }
  // Without the LIBER input the same samples are noise to every field.
  CtrDataset plain = taste_dataset("attention");
  plain.schema.side = {};
  for (SampleSet* s : {&plain.train, &plain.valid, &plain.test}) s->side.clear();
  EXPECT_LT(train_and_evaluate(plain, m, t).test.auc, 0.6) << GetParam();
}

// One fuse layer per backbone: DeepFM's first-order part takes the main embedding's fused
// output instead of fusing the partitions a second time.
TEST_P(FuseBackbones, FuseThePartitionsOnce) {
  const CtrDataset data = taste_dataset("attention");
  auto model = ctr::make_backbone(data.schema, testing::small_model(GetParam()));
  int fuse_layers = 0;
  for (const auto& item : model->named_modules())
    if (dynamic_cast<uif::FuseLayerImpl*>(item.value().get())) ++fuse_layers;
  EXPECT_EQ(fuse_layers, 1) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(All, FuseBackbones, ::testing::Values("din", "dcnv2", "deepfm", "autoint", "xdeepfm", "dien", "fibinet", "fignn"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace liber
