// The CTR backbones and the trainer on a small synthetic dataset whose labels follow a
// learnable rule of the target item and the history.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "liber/ctr.h"
#include "liber/ctr/backbone.h"
#include "liber/ctr/optim.h"
#include "liber/error.h"
#include "liber/metrics.h"
#include "ctr/small_models.h"

namespace liber {
namespace {

using testing::fast_training;
using testing::small_model;

constexpr int64_t kUsers = 200, kItems = 100, kCategories = 10, kHistory = 5;

int64_t category(int64_t item) { return item % kCategories + 1; }

// A side input of no particular meaning (CTR knows none): each sample carries kSideWidth
// codes in [0, kSideCodes); the module embeds them and averages, [B, kSideOut]. With
// needs_target it also adds a projection of the target item's embedding.
constexpr int kSideWidth = 3, kSideCodes = 4, kSideOut = 5;

class CodeSideInput : public ctr::SideInputModule {
 public:
  CodeSideInput(int64_t dim, bool use_target) {
    codes_ = register_module("codes", torch::nn::Embedding(kSideCodes, kSideOut));
    if (use_target) target_ = register_module("target", torch::nn::Linear(dim, kSideOut));
  }
  torch::Tensor forward(const ctr::Batch& batch, const torch::Tensor& target) override {
    torch::Tensor out = codes_(batch.side).mean(1);
    return target_ ? out + target_(target) : out;
  }
  int64_t output_dim() const override { return kSideOut; }

 private:
  torch::nn::Embedding codes_{nullptr};
  torch::nn::Linear target_{nullptr};
};

class CodeSideFactory : public ctr::SideInputFactory {
 public:
  explicit CodeSideFactory(bool use_target) : use_target_(use_target) {}
  std::shared_ptr<ctr::SideInputModule> make(int64_t dim) const override {
    return std::make_shared<CodeSideInput>(dim, use_target_);
  }
  bool needs_target() const override { return use_target_; }

 private:
  bool use_target_;
};

SideInputPlug code_plug(bool use_target = false) {
  return {"codes", kSideWidth, 0, kSideCodes, std::make_shared<CodeSideFactory>(use_target)};
}

FeatureSchema synthetic_schema(bool side) {
  FeatureSchema s;
  s.sparse = {{"user_id", kUsers + 1}, {"item_id", kItems + 1},
              {"item_category", kCategories + 1}, {"gender", 3}};
  s.sequences = {{"history", kItems + 1, static_cast<int>(kHistory), "item_id"},
                 {"genres", kCategories + 1, 2, ""}};
  s.target_item_field = 1;
  s.history_field = 0;
  if (side) s.side = code_plug();
  return s;
}

// Labels: a per-item bias (even items are liked) plus "the target's category is in the
// history". With side_label the labels are independent of the ids and the first side code
// carries them (1 = liked, 2 = not, 10% of them flipped; the other codes are 0 or 3): only
// the side input can explain them.
void fill(SampleSet& set, std::size_t n, bool side, bool side_label, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> user(1, kUsers), item(1, kItems), gender(1, 2);
  std::uniform_int_distribution<int> length(0, kHistory), noise_code(0, 1);
  std::uniform_real_distribution<double> unit(0, 1);
  for (std::size_t i = 0; i < n; ++i) {
    const int64_t u = user(rng), target = item(rng);
    set.sparse.insert(set.sparse.end(), {u, target, category(target), gender(rng)});
    const int len = length(rng);
    bool hit = false;
    for (int j = 0; j < kHistory; ++j) {
      const int64_t h = j < len ? item(rng) : 0;
      hit |= h != 0 && category(h) == category(target);
      set.sequences.push_back(h);
    }
    set.sequences.push_back(category(target));
    set.sequences.push_back(unit(rng) < 0.5 ? category(target + 1) : 0);
    const double logit = 2.5 * (target % 2 == 0 ? 1 : -1) + 1.5 * (hit ? 1 : -1);
    float label = unit(rng) < 1.0 / (1.0 + std::exp(-logit)) ? 1.0f : 0.0f;
    if (side_label) label = unit(rng) < 0.5 ? 1.0f : 0.0f;
    for (int k = 0; side && k < kSideWidth; ++k) {
      const bool says_liked = (label > 0) != (unit(rng) < 0.1);
      set.side.push_back(k == 0 && side_label ? (says_liked ? 1 : 2) : 3 * noise_code(rng));
    }
    set.labels.push_back(label);
    set.users.push_back(static_cast<uint32_t>(u));
    set.timestamps.push_back(static_cast<int64_t>(i));
  }
}

CtrDataset synthetic(bool side = false, bool side_label = false, uint64_t seed = 7) {
  CtrDataset data;
  data.name = "synthetic";
  data.schema = synthetic_schema(side);
  std::mt19937_64 rng(seed);
  fill(data.train, 2000, side, side_label, rng);
  fill(data.valid, 500, side, side_label, rng);
  fill(data.test, 500, side, side_label, rng);
  return data;
}

ctr::Batch first_rows(const SampleSet& set, const FeatureSchema& schema, int64_t rows) {
  const int64_t s = static_cast<int64_t>(schema.sparse.size());
  int64_t l = 0;
  for (const auto& f : schema.sequences) l += f.length;
  ctr::Batch b;
  b.sparse = torch::tensor(std::vector<int64_t>(set.sparse.begin(), set.sparse.begin() + rows * s))
                 .view({rows, s});
  b.sequences = torch::tensor(std::vector<int64_t>(set.sequences.begin(),
                                                   set.sequences.begin() + rows * l))
                    .view({rows, l});
  if (schema.side.enabled()) {
    const int64_t w = schema.side.width;
    b.side = torch::tensor(std::vector<int64_t>(set.side.begin(), set.side.begin() + rows * w))
                 .view({rows, w});
  }
  return b;
}

class Backbones : public ::testing::TestWithParam<std::string> {};

TEST(CtrBackbones, NamesAreTheRegisteredOnes) {
  EXPECT_EQ(backbone_names(), (std::vector<std::string>{"din", "dcnv2", "deepfm", "autoint", "xdeepfm", "dien", "fibinet", "fignn"}));
}

TEST(CtrBackbones, UnknownNameThrowsConfigError) {
  const CtrDataset data = synthetic();
  try {
    ctr::make_backbone(data.schema, small_model("nope"));
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_NE(std::string(e.what()).find("din"), std::string::npos);  // lists valid names
  }
  EXPECT_THROW(train_and_evaluate(data, small_model("nope"), fast_training()), Error);
}

TEST(CtrBackbones, FeatureEmbeddingSharesTablesAndAppendsTheSideInput) {
  torch::manual_seed(1);
  const CtrDataset data = synthetic(/*side=*/true);
  ctr::FeatureEmbedding emb(data.schema, 4);
  // Own rows: four sparse fields + genres; the history reads item_id's rows.
  EXPECT_EQ(emb->table.size(0), (kUsers + 1) + (kItems + 1) + (kCategories + 1) + 3 + (kCategories + 1));
  EXPECT_EQ(emb->num_fields(), 4 + 2 + 1);
  const ctr::Batch b = first_rows(data.train, data.schema, 6);
  ctr::FieldEmbeddings e = emb(b);
  EXPECT_EQ(e.fields.sizes(), (std::vector<int64_t>{6, 7, 4}));
  EXPECT_EQ(e.history.sizes(), (std::vector<int64_t>{6, kHistory, 4}));
  EXPECT_EQ(e.history_mask.sizes(), (std::vector<int64_t>{6, kHistory}));
  // A history item's embedding is the item_id row of the same item.
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t j = 0; j < kHistory; ++j) {
      const int64_t id = b.sequences[r][j].item<int64_t>();
      if (id == 0) {
        EXPECT_EQ(e.history_mask[r][j].item<float>(), 0.0f);
        EXPECT_TRUE(e.history[r][j].eq(0).all().item<bool>());
      } else {
        EXPECT_TRUE(torch::equal(e.history[r][j], emb->table[(kUsers + 1) + id]));
      }
    }
  EXPECT_TRUE(torch::equal(e.target, emb->table.index_select(0, b.sparse.select(1, 1) + (kUsers + 1))));
  // The side input is the last field: its module's output, projected to d.
  ASSERT_TRUE(emb->side);
  EXPECT_TRUE(torch::allclose(e.side, emb->side->forward(b, e.target)));
  EXPECT_TRUE(torch::allclose(e.fields.select(1, 6), emb->side_projection(e.side)));
}

TEST(CtrBackbones, SideInputThatNeedsATargetNeedsATargetField) {
  FeatureSchema s = synthetic_schema(false);
  s.side = code_plug(/*use_target=*/true);
  EXPECT_NO_THROW(ctr::FeatureEmbedding(s, 4));
  s.target_item_field = -1;
  EXPECT_THROW(ctr::FeatureEmbedding(s, 4), Error);
  s.side.factory = nullptr;
  EXPECT_THROW(ctr::FeatureEmbedding(s, 4), Error);
}

TEST(CtrTrainer, SideValuesOutsideTheirRangeAreRefusedWithTheSample) {
  CtrDataset data = synthetic(/*side=*/true);
  data.train.side[3 * kSideWidth + 1] = kSideCodes;  // sample 3
  try {
    train_and_evaluate(data, small_model("din"), fast_training());
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidInput);
    EXPECT_NE(std::string(e.what()).find("train sample 3: side input 'codes' value 4"),
              std::string::npos) << e.what();
  }
}

TEST(CtrBackbones, LayersHaveTheDocumentedShapes) {
  torch::manual_seed(1);
  ctr::MLP mlp(12, std::vector<int>{8, 4}, 0.0, 1);
  EXPECT_EQ(mlp(torch::randn({5, 12})).sizes(), (std::vector<int64_t>{5, 1}));
  ctr::TargetAttention att(6, std::vector<int>{8});
  auto keys = torch::randn({5, 3, 6});
  auto mask = torch::tensor({1.f, 1.f, 0.f}).repeat({5, 1});
  auto out = att(torch::randn({5, 6}), keys, mask);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{5, 6}));
  ctr::CrossNetwork cross(10, 2);
  EXPECT_EQ(cross(torch::randn({5, 10})).sizes(), (std::vector<int64_t>{5, 10}));
  ctr::SelfAttention self(6, 4, 3);
  EXPECT_EQ(self(torch::randn({5, 7, 6})).sizes(), (std::vector<int64_t>{5, 7, 12}));
  // FM equals the explicit pairwise sum.
  auto e = torch::randn({5, 4, 3});
  auto pairs = torch::zeros({5});
  for (int i = 0; i < 4; ++i)
    for (int j = i + 1; j < 4; ++j) pairs += (e.select(1, i) * e.select(1, j)).sum(-1);
  EXPECT_TRUE(torch::allclose(ctr::fm_interaction(e), pairs, 1e-4, 1e-5));
}

// The compressed interaction network against its definition, element by element:
// X_k[h] = sum_{i,j} W_k[h, i * F + j] X_{k-1}[i] * X_0[j] + b_k[h], sum-pooled over d,
// the pooled maps through the output layer.
TEST(CtrBackbones, CompressedInteractionEqualsItsDefinition) {
  torch::manual_seed(3);
  const int64_t b = 3, f = 4, d = 5;
  const std::vector<int> layers{3, 2};
  ctr::CompressedInteraction cin(f, layers);
  const torch::Tensor x0 = torch::randn({b, f, d});
  const torch::Tensor got = cin(x0);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{b}));
  auto params = cin->named_parameters();
  for (int64_t s = 0; s < b; ++s) {
    std::vector<std::vector<std::vector<double>>> x(1);  // x[k][h][c]
    for (int64_t i = 0; i < f; ++i) {
      x[0].emplace_back();
      for (int64_t c = 0; c < d; ++c) x[0][i].push_back(x0[s][i][c].item<double>());
    }
    std::vector<double> pooled;
    for (std::size_t k = 0; k < layers.size(); ++k) {
      const torch::Tensor w = params["cin" + std::to_string(k) + ".weight"], bias = params["cin" + std::to_string(k) + ".bias"];
      const auto& prev = x.back();
      std::vector<std::vector<double>> next(static_cast<std::size_t>(layers[k]), std::vector<double>(static_cast<std::size_t>(d)));
      for (int h = 0; h < layers[k]; ++h)
        for (int64_t c = 0; c < d; ++c) {
          double v = bias[h].item<double>();
          for (std::size_t i = 0; i < prev.size(); ++i)
            for (int64_t j = 0; j < f; ++j)
              v += w[h][static_cast<int64_t>(i) * f + j].item<double>() * prev[i][static_cast<std::size_t>(c)] * x[0][static_cast<std::size_t>(j)][static_cast<std::size_t>(c)];
          next[static_cast<std::size_t>(h)][static_cast<std::size_t>(c)] = v;
        }
      for (const auto& map : next) {
        double sum = 0;
        for (double v : map) sum += v;
        pooled.push_back(sum);
      }
      x.push_back(std::move(next));
    }
    const torch::Tensor w = params["output.weight"];
    double want = params["output.bias"][0].item<double>();
    for (std::size_t p = 0; p < pooled.size(); ++p) want += w[0][static_cast<int64_t>(p)].item<double>() * pooled[p];
    EXPECT_NEAR(got[s].item<double>(), want, 1e-4 * (1 + std::abs(want))) << "sample " << s;
  }
  EXPECT_THROW(ctr::CompressedInteraction(f, std::vector<int>{}), Error);
  EXPECT_THROW(ctr::CompressedInteraction(f, std::vector<int>{3, 0}), Error);
}

// FiBiNet's layers against their definitions: SENET re-weights field f by
// relu(W2 relu(W1 mean_d(e))), the bilinear pair (i, j) is (e_i W_ij) * e_j.
TEST(CtrBackbones, SqueezeExcitationAndBilinearEqualTheirDefinitions) {
  torch::manual_seed(9);
  const int64_t b = 3, f = 4, d = 5;
  const torch::Tensor e = torch::randn({b, f, d});
  ctr::SqueezeExcitation senet(f, 2);
  auto sp = senet->named_parameters();
  const torch::Tensor w1 = sp["squeeze.weight"], w2 = sp["excite.weight"];  // [2, 4], [4, 2]
  ASSERT_EQ(w1.sizes(), (std::vector<int64_t>{2, 4}));
  const torch::Tensor re = senet(e);
  ctr::BilinearInteraction bilinear(f, d);
  const torch::Tensor w = bilinear->named_parameters()["weight"];  // [6, d, d]
  const torch::Tensor pairs = bilinear(e);
  ASSERT_EQ(pairs.sizes(), (std::vector<int64_t>{b, 6, d}));
  for (int64_t s = 0; s < b; ++s) {
    std::vector<double> z(f), hidden(2, 0.0);
    for (int64_t i = 0; i < f; ++i) z[i] = e[s][i].mean().item<double>();
    for (int64_t r = 0; r < 2; ++r) {
      for (int64_t i = 0; i < f; ++i) hidden[r] += w1[r][i].item<double>() * z[i];
      hidden[r] = std::max(0.0, hidden[r]);
    }
    for (int64_t i = 0; i < f; ++i) {
      double a = 0;
      for (int64_t r = 0; r < 2; ++r) a += w2[i][r].item<double>() * hidden[r];
      a = std::max(0.0, a);
      for (int64_t c = 0; c < d; ++c)
        EXPECT_NEAR(re[s][i][c].item<double>(), a * e[s][i][c].item<double>(), 1e-5);
    }
    int64_t p = 0;
    for (int64_t i = 0; i < f; ++i)
      for (int64_t j = i + 1; j < f; ++j, ++p)
        for (int64_t c = 0; c < d; ++c) {
          double v = 0;
          for (int64_t k = 0; k < d; ++k) v += e[s][i][k].item<double>() * w[p][k][c].item<double>();
          v *= e[s][j][c].item<double>();
          EXPECT_NEAR(pairs[s][p][c].item<double>(), v, 1e-4) << s << " pair " << i << "," << j;
        }
  }
}

// libtorch's GRUCell written out (gates r, z, n in weight order): h' = (1 - z) n + z h.
std::vector<double> gru_cell(const torch::Tensor& w_ih, const torch::Tensor& w_hh,
                             const torch::Tensor& b_ih, const torch::Tensor& b_hh,
                             const std::vector<double>& x, const std::vector<double>& h) {
  const int64_t d = static_cast<int64_t>(h.size());
  auto gate = [&](int64_t row, bool hidden_only) {
    double v = b_hh[row].item<double>();
    for (int64_t k = 0; k < d; ++k) v += w_hh[row][k].item<double>() * h[k];
    if (hidden_only) return v;
    v += b_ih[row].item<double>();
    for (int64_t k = 0; k < d; ++k) v += w_ih[row][k].item<double>() * x[k];
    return v;
  };
  auto sigmoid = [](double v) { return 1 / (1 + std::exp(-v)); };
  std::vector<double> out(d);
  for (int64_t c = 0; c < d; ++c) {
    const double r = sigmoid(gate(c, false)), z = sigmoid(gate(d + c, false));
    double xn = b_ih[2 * d + c].item<double>();
    for (int64_t k = 0; k < d; ++k) xn += w_ih[2 * d + c][k].item<double>() * x[k];
    const double n = std::tanh(xn + r * gate(2 * d + c, true));
    out[c] = (1 - z) * n + z * h[c];
  }
  return out;
}

// FiGNN's field graph against its definition, node by node: edge weights a softmax over
// j != i of leaky_relu(w . [e_i, e_j]); each step's message W_in[i] sum_j g_ij W_out[j] h_j
// + b goes through the GRU cell with h_i, and e_i is added back.
TEST(CtrBackbones, FieldGraphEqualsItsDefinition) {
  torch::manual_seed(10);
  const int64_t b = 2, f = 3, d = 4;
  const int steps = 2;
  ctr::FieldGraph graph(f, d, steps);
  const torch::Tensor e = torch::randn({b, f, d});
  const torch::Tensor got = graph(e);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{b, f, d}));
  auto p = graph->named_parameters();
  const torch::Tensor edge = p["edge.weight"];
  for (int64_t s = 0; s < b; ++s) {
    std::vector<std::vector<double>> emb(f, std::vector<double>(d)), g(f, std::vector<double>(f));
    for (int64_t i = 0; i < f; ++i)
      for (int64_t c = 0; c < d; ++c) emb[i][c] = e[s][i][c].item<double>();
    for (int64_t i = 0; i < f; ++i) {
      double total = 0;
      for (int64_t j = 0; j < f; ++j) {
        if (j == i) continue;
        double v = 0;
        for (int64_t c = 0; c < d; ++c)
          v += edge[0][c].item<double>() * emb[i][c] + edge[0][d + c].item<double>() * emb[j][c];
        g[i][j] = std::exp(v > 0 ? v : 0.01 * v);
        total += g[i][j];
      }
      for (int64_t j = 0; j < f; ++j) g[i][j] /= total;
    }
    std::vector<std::vector<double>> h = emb;
    for (int step = 0; step < steps; ++step) {
      const std::string k = std::to_string(step);
      const torch::Tensor w_in = p["w_in" + k], w_out = p["w_out" + k], bias = p["bias" + k];
      std::vector<std::vector<double>> next(f);
      for (int64_t i = 0; i < f; ++i) {
        std::vector<double> aggregate(d, 0.0), message(d);
        for (int64_t j = 0; j < f; ++j)
          for (int64_t c = 0; c < d; ++c)
            for (int64_t k2 = 0; k2 < d; ++k2)
              aggregate[c] += g[i][j] * w_out[j][c][k2].item<double>() * h[j][k2];
        for (int64_t c = 0; c < d; ++c) {
          message[c] = bias[c].item<double>();
          for (int64_t k2 = 0; k2 < d; ++k2) message[c] += w_in[i][c][k2].item<double>() * aggregate[k2];
        }
        next[i] = gru_cell(p["gru.weight_ih"], p["gru.weight_hh"], p["gru.bias_ih"],
                           p["gru.bias_hh"], message, h[i]);
        for (int64_t c = 0; c < d; ++c) next[i][c] += emb[i][c];
      }
      h = next;
    }
    for (int64_t i = 0; i < f; ++i)
      for (int64_t c = 0; c < d; ++c)
        EXPECT_NEAR(got[s][i][c].item<double>(), h[i][c], 1e-4) << s << " node " << i;
  }
  EXPECT_THROW(ctr::FieldGraph(f, d, 0), Error);
}

// DIEN's GRU against a per-sample loop over the present items in time order (the history
// is stored most recent first, 0-padded; a gap id 0 inside it is skipped too): states at
// every position, and the AUGRU's final state with each update gate scaled by its weight.
TEST(CtrBackbones, InterestGruRunsOldestFirstAndSkipsPadding) {
  torch::manual_seed(11);
  const int64_t b = 3, n = 4, d = 3;
  ctr::InterestGru gru(d);
  const torch::Tensor x = torch::randn({b, n, d});
  const torch::Tensor mask = torch::tensor({1.f, 1.f, 1.f, 0.f,  1.f, 0.f, 1.f, 0.f,  0.f, 0.f, 0.f, 0.f}).view({b, n});
  const torch::Tensor weight = torch::rand({b, n}) * mask;
  const torch::Tensor states = gru(x, mask), final = gru->final_state(x, weight);
  ASSERT_EQ(states.sizes(), (std::vector<int64_t>{b, n, d}));
  ASSERT_EQ(final.sizes(), (std::vector<int64_t>{b, d}));
  auto p = gru->named_parameters();
  const torch::Tensor wx = p["input.weight"], bx = p["input.bias"], wh = p["hidden.weight"], bh = p["hidden.bias"];
  auto step = [&](const std::vector<double>& h, int64_t s, int64_t pos, double scale) {
    std::vector<double> g(3 * d);
    for (int64_t r = 0; r < 3 * d; ++r) {
      g[r] = bx[r].item<double>();
      for (int64_t k = 0; k < d; ++k) g[r] += wx[r][k].item<double>() * x[s][pos][k].item<double>();
    }
    std::vector<double> gh(3 * d);
    for (int64_t r = 0; r < 3 * d; ++r) {
      gh[r] = bh[r].item<double>();
      for (int64_t k = 0; k < d; ++k) gh[r] += wh[r][k].item<double>() * h[k];
    }
    std::vector<double> out(d);
    for (int64_t c = 0; c < d; ++c) {
      const double u = scale / (1 + std::exp(-(g[c] + gh[c])));
      const double r = 1 / (1 + std::exp(-(g[d + c] + gh[d + c])));
      const double cand = std::tanh(g[2 * d + c] + r * gh[2 * d + c]);
      out[c] = h[c] + u * (cand - h[c]);
    }
    return out;
  };
  for (int64_t s = 0; s < b; ++s) {
    std::vector<double> h(d, 0.0), evolved(d, 0.0);
    for (int64_t pos = n - 1; pos >= 0; --pos) {
      if (mask[s][pos].item<float>() > 0) {
        h = step(h, s, pos, 1.0);
        evolved = step(evolved, s, pos, weight[s][pos].item<double>());
      }
      for (int64_t c = 0; c < d; ++c)
        EXPECT_NEAR(states[s][pos][c].item<double>(), h[c], 1e-5) << s << " position " << pos;
    }
    for (int64_t c = 0; c < d; ++c) EXPECT_NEAR(final[s][c].item<double>(), evolved[c], 1e-5) << s;
  }
  // A sample without history keeps the zero state.
  EXPECT_EQ(states[2].abs().sum().item<double>(), 0.0);
}

TEST(CtrBackbones, FusedInterestGruMatchesPlainOps) {
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    torch::manual_seed(13);
    ctr::InterestGru fused(6);
    torch::manual_seed(13);
    ctr::InterestGru plain(6, /*allow_fused=*/false);
    const auto x = torch::randn({70, 5, 6});
    const auto mask = (torch::rand({70, 5}) > 0.3).to(torch::kFloat);
    const auto weight = torch::rand({70, 5}) * mask;
    const auto out_weights = torch::randn({70, 5, 6}), final_weights = torch::randn({70, 6});
    torch::Tensor states[2], final[2];
    std::vector<torch::Tensor> grads[2];
    int i = 0;
    for (ctr::InterestGru* gru : {&fused, &plain}) {
      auto xi = x.clone().requires_grad_(), wi = weight.clone().requires_grad_();
      states[i] = (*gru)(xi, mask);
      final[i] = (*gru)->final_state(xi, wi);
      ((states[i] * out_weights).sum() + (final[i] * final_weights).sum()).backward();
      grads[i] = {xi.grad(), wi.grad()};
      for (const auto& p : (*gru)->parameters()) grads[i].push_back(p.grad());
      ++i;
    }
    EXPECT_TRUE(torch::allclose(states[0], states[1], 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(final[0], final[1], 1e-5, 1e-6));
    ASSERT_EQ(grads[0].size(), 6u);
    for (std::size_t j = 0; j < grads[0].size(); ++j) {
      ASSERT_TRUE(grads[0][j].defined()) << "gradient " << j;
      EXPECT_TRUE(torch::allclose(grads[0][j], grads[1][j], 1e-4, 1e-5)) << "gradient " << j;
    }
  }
  at::set_num_threads(1);
}

// DIEN's auxiliary loss exists only in training (and with a positive weight), reaches the
// extractor's parameters by itself, and equals its definition: the state after the older
// item scores the next item (label 1) and the previous sample's item at that position
// (label 0) unless that is the same item.
TEST(CtrBackbones, DienAuxiliaryLossFollowsItsDefinition) {
  torch::manual_seed(12);
  const CtrDataset data = synthetic();
  ModelConfig config = small_model("dien");
  config.auxiliary_loss_weight = 0.5;
  auto model = ctr::make_backbone(data.schema, config);
  ctr::Batch batch = first_rows(data.train, data.schema, 16);
  // Row 1 has row 0's history: its negatives (row 0's items) are its positives, not counted.
  batch.sequences[1].copy_(batch.sequences[0]);
  model->eval();
  model->forward(batch);
  EXPECT_FALSE(model->auxiliary_loss().defined());
  model->train();
  model->forward(batch);
  const torch::Tensor aux = model->auxiliary_loss();
  ASSERT_TRUE(aux.defined());
  aux.backward();
  const torch::Tensor extractor_grad = model->named_parameters()["extractor.hidden.weight"].grad();
  ASSERT_TRUE(extractor_grad.defined());
  EXPECT_GT(extractor_grad.abs().sum().item<double>(), 0.0);

  // The reference, from the model's own embeddings and extractor states.
  torch::NoGradGuard no_grad;
  const ctr::FieldEmbeddings e = model->embedding(batch);
  auto extractor = std::dynamic_pointer_cast<ctr::InterestGruImpl>(model->named_children()["extractor"]);
  ASSERT_TRUE(extractor);
  const torch::Tensor states = extractor->forward(e.history, e.history_mask);
  double sum = 0;
  int count = 0, same = 0;
  const int64_t rows = 16, n = kHistory;
  auto softplus = [](double v) { return std::log1p(std::exp(v)); };
  for (int64_t s = 0; s < rows; ++s) {
    const int64_t other = (s + rows - 1) % rows;  // roll(1): row s takes row s - 1's items
    for (int64_t pos = 0; pos + 1 < n; ++pos) {
      if (e.history_mask[s][pos].item<float>() == 0 || e.history_mask[s][pos + 1].item<float>() == 0) continue;
      const torch::Tensor h = states[s][pos + 1];
      sum += softplus(-(h * e.history[s][pos]).sum().item<double>()), ++count;
      if (e.history_mask[other][pos].item<float>() == 0) continue;
      if (e.history[other][pos].equal(e.history[s][pos])) {  // the same item
        ++same;
        continue;
      }
      sum += softplus((h * e.history[other][pos]).sum().item<double>()), ++count;
    }
  }
  ASSERT_GT(count, 0);
  EXPECT_GT(same, 0);
  EXPECT_NEAR(aux.item<double>(), 0.5 * sum / count, 1e-5);

  config.auxiliary_loss_weight = 0;
  auto without = ctr::make_backbone(data.schema, config);
  without->train();
  without->forward(batch);
  EXPECT_FALSE(without->auxiliary_loss().defined());
}

TEST(CtrBackbones, FusedCompressedInteractionMatchesPlainOps) {
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    torch::manual_seed(14);
    ctr::CompressedInteraction fused(5, std::vector<int>{4, 3});
    torch::manual_seed(14);
    ctr::CompressedInteraction plain(5, std::vector<int>{4, 3}, /*allow_fused=*/false);
    const auto x0 = torch::randn({70, 5, 6});
    const auto weights = torch::randn({70});
    torch::Tensor out[2];
    std::vector<torch::Tensor> grads[2];
    int i = 0;
    for (ctr::CompressedInteraction* cin : {&fused, &plain}) {
      auto xi = x0.clone().requires_grad_();
      out[i] = (*cin)(xi);
      (out[i] * weights).sum().backward();
      grads[i] = {xi.grad()};
      for (const auto& p : (*cin)->parameters()) grads[i].push_back(p.grad());
      ++i;
    }
    EXPECT_TRUE(torch::allclose(out[0], out[1], 1e-5, 1e-5));
    ASSERT_EQ(grads[0].size(), 7u);
    for (std::size_t j = 0; j < grads[0].size(); ++j)
      EXPECT_TRUE(torch::allclose(grads[0][j], grads[1][j], 1e-4, 1e-5)) << "gradient " << j;
  }
  at::set_num_threads(1);
}

TEST(CtrBackbones, TargetAttentionIgnoresMaskedItems) {
  torch::manual_seed(2);
  ctr::TargetAttention att(6, std::vector<int>{8});
  auto q = torch::randn({4, 6});
  auto keys = torch::randn({4, 3, 6});
  auto mask = torch::tensor({1.f, 1.f, 0.f}).repeat({4, 1});
  auto keys2 = keys.clone();
  keys2.select(1, 2).normal_();
  EXPECT_TRUE(torch::allclose(att(q, keys, mask), att(q, keys2, mask)));
}

TEST(CtrBackbones, FusedTargetAttentionMatchesPlainOps) {
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);  // the fused kernels' parallel path
    torch::manual_seed(5);
    ctr::TargetAttention fused(8, std::vector<int>{16});
    torch::manual_seed(5);
    ctr::TargetAttention plain(8, std::vector<int>{16}, 0.0, /*allow_fused=*/false);
    const auto q = torch::randn({70, 8}), k = torch::randn({70, 4, 8});
    const auto mask = (torch::rand({70, 4}) > 0.3).to(torch::kFloat);
    std::vector<torch::Tensor> grads[2];
    torch::Tensor out[2];
    int i = 0;
    for (ctr::TargetAttention* att : {&fused, &plain}) {
      auto qi = q.clone().requires_grad_(), ki = k.clone().requires_grad_();
      out[i] = (*att)(qi, ki, mask);
      (out[i] * torch::arange(8).to(torch::kFloat)).sum().backward();
      grads[i] = {qi.grad(), ki.grad()};
      for (const auto& p : (*att)->parameters()) grads[i].push_back(p.grad());
      ++i;
    }
    EXPECT_TRUE(torch::allclose(out[0], out[1], 1e-5, 1e-6));
    // DIN's formula written out: sum_n mask * (w2 . relu(W1 [q, k, q - k, q * k] + b1) + b2) * k.
    auto params = fused->named_parameters();
    auto qe = q.unsqueeze(1).expand_as(k);
    auto hidden = torch::relu(torch::nn::functional::linear(
        torch::cat({qe, k, qe - k, qe * k}, -1), params["first.weight"], params["first.bias"]));
    auto score = torch::nn::functional::linear(hidden, params["output.weight"],
                                               params["output.bias"]).squeeze(-1) * mask;
    EXPECT_TRUE(torch::allclose(out[0], (score.unsqueeze(-1) * k).sum(1), 1e-4, 1e-5));
    ASSERT_EQ(grads[0].size(), grads[1].size());
    for (std::size_t j = 0; j < grads[0].size(); ++j)
      EXPECT_TRUE(torch::allclose(grads[0][j], grads[1][j], 1e-4, 1e-5)) << "gradient " << j;
  }
  at::set_num_threads(1);
}

TEST(CtrBackbones, FusedSelfAttentionMatchesPlainOps) {
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    torch::manual_seed(8);
    ctr::SelfAttention fused(6, 4, 3);
    torch::manual_seed(8);
    ctr::SelfAttention plain(6, 4, 3, /*allow_fused=*/false);
    const auto x = torch::randn({40, 5, 6});
    const auto weights = torch::randn({40, 5, 12});
    torch::Tensor out[2], input_grad[2];
    std::vector<torch::Tensor> grads[2];
    int i = 0;
    for (ctr::SelfAttention* layer : {&fused, &plain}) {
      auto xi = x.clone().requires_grad_();
      out[i] = (*layer)(xi);
      (out[i] * weights).sum().backward();
      input_grad[i] = xi.grad();
      for (const auto& p : (*layer)->parameters()) grads[i].push_back(p.grad());
      ++i;
    }
    EXPECT_TRUE(torch::allclose(out[0], out[1], 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(input_grad[0], input_grad[1], 1e-4, 1e-5));
    ASSERT_EQ(grads[0].size(), 4u);
    for (std::size_t j = 0; j < grads[0].size(); ++j)
      EXPECT_TRUE(torch::allclose(grads[0][j], grads[1][j], 1e-4, 1e-5)) << "parameter " << j;
  }
  at::set_num_threads(1);
}

TEST(CtrBackbones, FusedAdamMatchesLibtorchAdam) {
  torch::manual_seed(6);
  auto a = torch::randn({37, 5}).requires_grad_();
  auto b = a.detach().clone().requires_grad_();
  ctr::FusedAdam fused({a}, 1e-2);
  torch::optim::Adam reference({b}, torch::optim::AdamOptions(1e-2));
  for (int step = 0; step < 5; ++step) {
    const auto target = torch::randn({37, 5});
    fused.zero_grad();
    reference.zero_grad();
    (a - target).pow(2).sum().backward();
    (b - target).pow(2).sum().backward();
    fused.step();
    reference.step();
  }
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6));
}

TEST_P(Backbones, ForwardGivesOneLogitPerSample) {
  torch::manual_seed(3);
  for (bool side : {false, true}) {
    const CtrDataset data = synthetic(side);
    auto model = ctr::make_backbone(data.schema, small_model(GetParam()));
    const ctr::Batch b = first_rows(data.train, data.schema, 9);
    torch::Tensor logits = model->forward(b);
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{9})) << "side input " << side;
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  }
}

TEST_P(Backbones, LearnsTheSyntheticRule) {
  const CtrDataset data = synthetic();
  const TrainResult r = train_and_evaluate(data, small_model(GetParam()), fast_training());
  EXPECT_EQ(r.backbone, GetParam());
  EXPECT_GE(r.best_epoch, 1);
  EXPECT_LE(r.best_epoch, r.epochs);
  EXPECT_EQ(r.threads, 1);
  EXPECT_GT(r.train_samples_per_s, 0);
  EXPECT_GT(r.test.auc, 0.75) << GetParam();
  EXPECT_GT(r.valid.auc, 0.75) << GetParam();
  EXPECT_LT(r.test.logloss, 0.65) << GetParam();
  EXPECT_FALSE(std::isnan(r.test.gauc));
}

TEST_P(Backbones, SideInputReceivesGradients) {
  torch::manual_seed(4);
  const CtrDataset data = synthetic(true, /*side_label=*/true);
  auto model = ctr::make_backbone(data.schema, small_model(GetParam()));
  ASSERT_TRUE(model->embedding->side_projection);
  const ctr::Batch b = first_rows(data.train, data.schema, 64);
  auto labels = torch::tensor(std::vector<float>(data.train.labels.begin(),
                                                 data.train.labels.begin() + 64));
  torch::binary_cross_entropy_with_logits(model->forward(b), labels).backward();
  for (const torch::Tensor& grad : {model->embedding->side_projection->weight.grad(),
                                    model->embedding->side->named_parameters()["codes.weight"].grad()}) {
    ASSERT_TRUE(grad.defined());
    EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
  }
}

// One side-input module per backbone, whatever its structure (DeepFM's first-order part
// reuses the main embedding's side output instead of building a second module).
TEST_P(Backbones, BuildOneSideInputModule) {
  const CtrDataset data = synthetic(true);
  auto model = ctr::make_backbone(data.schema, small_model(GetParam()));
  int modules = 0;
  for (const auto& item : model->named_modules())
    if (dynamic_cast<CodeSideInput*>(item.value().get())) ++modules;
  EXPECT_EQ(modules, 1) << GetParam();
}

TEST_P(Backbones, LearnsFromTheSideInputAlone) {
  const CtrDataset data = synthetic(true, /*side_label=*/true);
  const TrainResult r = train_and_evaluate(data, small_model(GetParam()), fast_training());
  // The code is right 90% of the time: the best possible AUC is 0.9.
  EXPECT_GT(r.test.auc, 0.85) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(All, Backbones,
                         ::testing::Values("din", "dcnv2", "deepfm", "autoint", "xdeepfm", "dien",
                                           "fibinet", "fignn"),
                         [](const auto& info) { return info.param; });

TEST(CtrTrainer, SameSeedOnOneThreadIsDeterministic) {
  const CtrDataset data = synthetic();
  ModelConfig m = small_model("din");
  m.dropout = 0.1;  // dropout draws from the seeded generator too
  m.embedding_l2 = 1e-4;
  TrainConfig t = fast_training();
  t.max_epochs = 2;
  const TrainResult a = train_and_evaluate(data, m, t);
  const TrainResult b = train_and_evaluate(data, m, t);
  EXPECT_EQ(a.test.auc, b.test.auc);
  EXPECT_EQ(a.test.logloss, b.test.logloss);
  EXPECT_EQ(a.valid.auc, b.valid.auc);
  EXPECT_EQ(a.best_epoch, b.best_epoch);
  t.seed = 43;
  const TrainResult c = train_and_evaluate(data, m, t);
  EXPECT_NE(a.test.logloss, c.test.logloss);
}

TEST(CtrTrainer, WritesTheBestEpochCheckpointAndStopsEarly) {
  const CtrDataset data = synthetic();
  TrainConfig t = fast_training();
  t.max_epochs = 30;
  t.patience = 1;
  t.learning_rate = 5e-2;  // overfits quickly, so validation AUC stops improving
  const std::string path = ::testing::TempDir() + "liber_ctr_checkpoint.pt";
  std::remove(path.c_str());
  t.checkpoint_path = path;
  const TrainResult r = train_and_evaluate(data, small_model("deepfm"), t);
  EXPECT_LT(r.epochs, 30);
  EXPECT_EQ(r.epochs, r.best_epoch + 1);
  // The file on disk holds the best epoch: loading it reproduces the test AUC.
  torch::manual_seed(0);
  auto model = ctr::make_backbone(data.schema, small_model("deepfm"));
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  model->load(archive);
  model->eval();
  torch::NoGradGuard no_grad;
  const ctr::Batch b = first_rows(data.test, data.schema, static_cast<int64_t>(data.test.size()));
  torch::Tensor p = torch::sigmoid(model->forward(b)).contiguous();
  std::vector<float> scores(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
  EXPECT_DOUBLE_EQ(auc(data.test.labels, scores), r.test.auc);
  std::remove(path.c_str());
}

TEST(CtrTrainer, RejectsIdsOutsideTheVocabulary) {
  CtrDataset data = synthetic();
  data.train.sparse[1] = kItems + 5;
  EXPECT_THROW(train_and_evaluate(data, small_model("din"), fast_training()), Error);
}

TEST(CtrTrainer, SetComputeThreads) {
  EXPECT_EQ(set_compute_threads(1), 1);
  EXPECT_EQ(at::get_num_threads(), 1);
  EXPECT_GE(set_compute_threads(0), 1);
  EXPECT_EQ(set_compute_threads(2), 2);  // callable again: the inter-op pool is sized once
  EXPECT_EQ(set_compute_threads(1), 1);
  EXPECT_THROW(set_compute_threads(-1), Error);
}

}  // namespace
}  // namespace liber

namespace liber {
namespace {

// Throughput probe, not run by default (--gtest_also_run_disabled_tests): DIN with batch
// 1024 and embedding 16 on an ML-1M-sized synthetic schema. LIBER_TEST_THREADS sets the
// thread count (default 1).
TEST(CtrTrainer, DISABLED_DinThroughput) {
  constexpr int64_t users = 6040, items = 3706, n = 200000, history = 10, genres = 6;
  CtrDataset data;
  data.schema.sparse = {{"user_id", users + 1}, {"gender", 3},       {"age", 8},
                        {"occupation", 22},     {"zip", 3440},       {"item_id", items + 1},
                        {"item_year", 82}};
  data.schema.sequences = {{"item_genres", 19, static_cast<int>(genres), ""},
                           {"history_item_ids", items + 1, static_cast<int>(history), "item_id"}};
  data.schema.target_item_field = 5;
  data.schema.history_field = 1;
  std::mt19937_64 rng(1);
  auto make = [&](SampleSet& set, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      for (const auto& f : data.schema.sparse)
        set.sparse.push_back(static_cast<int64_t>(rng() % static_cast<uint64_t>(f.vocab - 1)) + 1);
      for (const auto& f : data.schema.sequences)
        for (int j = 0; j < f.length; ++j)
          set.sequences.push_back(rng() % 4 == 0 ? 0 : static_cast<int64_t>(rng() % static_cast<uint64_t>(f.vocab - 1)) + 1);
      set.labels.push_back(set.sparse[set.sparse.size() - 2] % 2 == 0 ? 1.0f : 0.0f);
      set.users.push_back(static_cast<uint32_t>(set.sparse[set.sparse.size() - 7]));
    }
  };
  make(data.train, n);
  make(data.valid, n / 10);
  make(data.test, n / 10);
  ModelConfig m;
  m.backbone = "din";
  m.embedding_dim = 16;
  TrainConfig t;
  t.max_epochs = 2;
  t.batch_size = 1024;
  t.threads = std::getenv("LIBER_TEST_THREADS") ? std::atoi(std::getenv("LIBER_TEST_THREADS")) : 1;
  t.progress = true;
  const TrainResult r = train_and_evaluate(data, m, t);
  std::fprintf(stderr, "DIN: %.0f train samples/s on %d threads (%d epochs, %.2f s)\n",
               r.train_samples_per_s, r.threads, r.epochs, r.train_seconds);
}

}  // namespace
}  // namespace liber
