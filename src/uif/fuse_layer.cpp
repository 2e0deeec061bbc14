// The attention fuse layer; see src/include/liber/uif/fuse_layer.h.
#include "liber/uif/fuse_layer.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include <fmt/format.h>

#include "liber/ctr/layers.h"
#include "liber/ctr/vector_ops.h"
#include "liber/error.h"
#include "liber/uif/kernels.h"

namespace liber::uif {

namespace {

// FuseConfig::similarity per sample s: out[s, m * texts + t] = row_unit[rows[s, m], t] .
// item_unit[items[s]] for the visible slots m (unit vectors of width k, so a cosine); the
// rest stays 0. The rows are random reads into a table of megabytes: each sample's are
// prefetched while the one before it is computed.
template <int64_t K>
LIBER_ISA_CLONES void cosines(const int64_t* rows, int64_t row_stride, const int64_t* items,
                              int64_t item_stride, const float* row_unit, const float* item_unit,
                              int64_t b, int64_t m, int64_t texts, int64_t k, float* out) {
  const int64_t per_row = texts * k;
  auto prefetch_sample = [&](int64_t s) {
    if (s >= b || items[s * item_stride] < 0) return;
    ctr::prefetch(item_unit + items[s * item_stride] * k, k * 4);
    for (int64_t i = 0; i < m; ++i)
      if (rows[s * row_stride + i] >= 0)
        ctr::prefetch(row_unit + rows[s * row_stride + i] * per_row, per_row * 4);
  };
  prefetch_sample(0);
  for (int64_t s = 0; s < b; ++s) {
    prefetch_sample(s + 1);
    const int64_t item = items[s * item_stride];
    if (item < 0) continue;
    const float* target = item_unit + item * k;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t row = rows[s * row_stride + i];
      if (row < 0) continue;
      for (int64_t t = 0; t < texts; ++t)
        out[(s * m + i) * texts + t] = ctr::dot<K>(row_unit + row * per_row + t * k, target, k);
    }
  }
}

// The distinct table rows a batch shows, in first-seen order: rows [B, M] (-1 = empty) ->
// used [U], local [B, M] (index into used, -1 = empty), flags [B, 2] (1, 0 when the sample
// has a visible slot, else 0, 1).
// Open addressing over twice the visible slots, so the cost is the batch's, not the
// table's (torch::_unique cost 1.6 ms of a 15 ms fuse step).
struct VisibleRows {
  torch::Tensor used, local, flags;
};

VisibleRows visible_rows(const torch::Tensor& rows) {
  const torch::Tensor r = rows.stride(1) == 1 ? rows : rows.contiguous();
  const int64_t b = r.size(0), m = r.size(1), stride = r.stride(0);
  const int64_t* rp = r.data_ptr<int64_t>();
  std::size_t cap = 16;
  while (cap < 2 * static_cast<std::size_t>(b * m)) cap <<= 1;
  std::vector<int64_t> keys(cap, -1), index(cap);
  std::vector<int64_t> used;
  VisibleRows out{{}, torch::empty({b, m}, torch::kLong), torch::empty({b, 2}, torch::kFloat)};
  int64_t* lp = out.local.data_ptr<int64_t>();
  float* fp = out.flags.data_ptr<float>();
  for (int64_t s = 0; s < b; ++s) {
    bool any = false;
    for (int64_t i = s * m; i < (s + 1) * m; ++i) {
      const int64_t row = rp[s * stride + (i - s * m)];
      lp[i] = -1;
      if (row < 0) continue;
      any = true;
      std::size_t h = static_cast<std::size_t>((static_cast<uint64_t>(row) * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
      while (keys[h] != -1 && keys[h] != row) h = (h + 1) & (cap - 1);
      if (keys[h] == -1) {
        keys[h] = row;
        index[h] = static_cast<int64_t>(used.size());
        used.push_back(row);
      }
      lp[i] = index[h];
    }
    fp[2 * s] = any ? 1.0f : 0.0f;
    fp[2 * s + 1] = any ? 0.0f : 1.0f;
  }
  out.used = torch::tensor(used, torch::kLong);
  return out;
}

}  // namespace

int64_t reduced_width(int64_t rows, int64_t width, int64_t k) {
  if (k <= 0 || k >= width) return width;
  return std::min<int64_t>(k, std::max<int64_t>(rows - 1, 1));
}

namespace {

// reduce_vectors as its fitted parts (mean [1, w], directions [w, r], scales [r]; no
// directions = no reduction) and their application, so a loaded layer reduces new rows
// exactly as its training rows were.
struct Reduction {
  torch::Tensor mean, top, scale;
};

Reduction fit_reduction(const torch::Tensor& vectors, int64_t k) {
  torch::NoGradGuard no_grad;
  const torch::Tensor x = vectors.to(torch::kDouble);
  const int64_t n = x.size(0), w = x.size(1);
  Reduction r;
  r.mean = x.mean(0, /*keepdim=*/true);
  if (k <= 0 || k >= w) {
    r.top = torch::zeros({w, 0}, torch::kDouble);
    r.scale = torch::zeros({0}, torch::kDouble);
    return r;
  }
  torch::Tensor values;
  r.top = principal_directions(x - r.mean, reduced_width(n, w, k), &values);
  r.scale = values.clamp_min(1e-12).sqrt();
  return r;
}

torch::Tensor apply_reduction(const torch::Tensor& vectors, const torch::Tensor& mean,
                              const torch::Tensor& top, const torch::Tensor& scale) {
  torch::NoGradGuard no_grad;
  if (top.size(1) == 0) return vectors.to(torch::kFloat).contiguous().clone();  // owns its memory
  return ((vectors.to(torch::kDouble) - mean).mm(top) / scale).to(torch::kFloat).contiguous();
}

torch::Tensor unit_rows(const torch::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-8); }

}  // namespace

torch::Tensor reduce_vectors(const torch::Tensor& vectors, int64_t k) {
  const Reduction r = fit_reduction(vectors, k);
  return apply_reduction(vectors, r.mean, r.top, r.scale);
}

torch::Tensor principal_directions(const torch::Tensor& centred, int64_t k, torch::Tensor* variances) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = centred.to(torch::kDouble);
  const int64_t n = x.size(0), w = x.size(1);
  k = std::clamp<int64_t>(k <= 0 ? w : k, 1, w);
  // Eigen-decomposition of the w x w covariance (w is the encoder width, ~1e3), in double
  // so the result does not depend on summation order.
  torch::Tensor cov = x.t().mm(x) / static_cast<double>(std::max<int64_t>(n - 1, 1));
  auto [values, vectors_] = torch::linalg::eigh(cov, "L");  // ascending
  torch::Tensor top = vectors_.narrow(1, w - k, k).flip({1});
  // Eigenvectors are defined up to sign: fix it (largest |component| positive) so equal
  // inputs give equal tables across runs and machines.
  torch::Tensor idx = top.abs().argmax(0);
  torch::Tensor sign = top.gather(0, idx.unsqueeze(0)).sign().clamp_min(0) * 2 - 1;
  if (variances) *variances = values.narrow(0, w - k, k).flip({0});
  return top * sign;
}

// Throws Error(Config) for settings the layer cannot run with.
static void check_config(const FuseConfig& c) {
  if (c.fusion != "attention" && c.fusion != "mean")
    throw Error(ErrorKind::Config, fmt::format("unknown fusion '{}' (attention | mean)", c.fusion));
  if (c.slots <= 0 || c.hidden <= 0 || c.fused_dim <= 0)
    throw Error(ErrorKind::Config, "fuse layer: slots, hidden and fused_dim must be positive");
  if (c.query != "item" && c.query != "text" && c.query != "both")
    throw Error(ErrorKind::Config, fmt::format("unknown query '{}' (item | text | both)", c.query));
  if (c.query != "item" && c.fusion != "attention")
    throw Error(ErrorKind::Config, "fuse layer: a text query needs attention fusion");
}

// Frozen item text vectors as a tensor view (no copy: the plug's vector outlives the module).
static torch::Tensor view_of(const std::shared_ptr<const std::vector<float>>& v, int64_t width) {
  const auto n = static_cast<int64_t>(v->size()) / width;
  return torch::from_blob(const_cast<float*>(v->data()), {n, width}, torch::kFloat);
}

FuseLayerImpl::FuseLayerImpl(const FuseTable& t, const FuseConfig& in, int64_t query_dim)
    : attention_(in.fusion == "attention"),
      item_query_(in.query != "text"),
      text_query_(in.query != "item"),
      interaction_(in.interaction && in.fusion == "attention"),
      similarity_(in.similarity),
      needs_items_(in.needs_item_texts()),
      slots_(in.slots),
      hidden_(in.hidden),
      fused_dim_(in.fused_dim) {
  check_config(in);
  if (t.width <= 0 || !t.vectors)
    throw Error(ErrorKind::InvalidInput, "fuse layer: no interest vectors attached");
  const auto rows = static_cast<int64_t>(t.vectors->size()) / t.width;
  if (rows * t.width != static_cast<int64_t>(t.vectors->size()))
    throw Error(ErrorKind::InvalidInput, "fuse layer: vector table size is not rows x width");
  row_width_ = t.width;
  torch::Tensor raw =
      torch::from_blob(const_cast<float*>(t.vectors->data()), {rows, t.width}, torch::kFloat);
  const bool loaded = t.loaded_row_dim > 0;
  const Reduction reduction =
      loaded ? Reduction{torch::zeros({1, t.width}, torch::kDouble),
                         torch::zeros({t.width, t.loaded_row_dim == t.width ? 0 : t.loaded_row_dim}, torch::kDouble),
                         torch::zeros({t.loaded_row_dim == t.width ? 0 : t.loaded_row_dim}, torch::kDouble)}
             : fit_reduction(raw, in.reduced_dim);
  row_mean = register_buffer("row_mean", reduction.mean);
  row_top = register_buffer("row_top", reduction.top);
  row_scale = register_buffer("row_scale", reduction.scale);
  table = register_buffer("table", apply_reduction(raw, row_mean, row_top, row_scale));
  const int64_t r = loaded ? t.loaded_row_dim : table.size(1);

  input_ = register_module("input", torch::nn::Linear(r, hidden_));
  ctr::init_linear(input_);
  slot_embedding_ = register_parameter("slot_embedding", torch::zeros({slots_, hidden_}));
  if (attention_) {
    // Query, key and value as one [3h, h] map (one parameter each for weight and bias: each
    // parameter costs a zero, an accumulate and an optimizer step per training step), each
    // block initialised as its own [h, h] Linear.
    qkv_ = register_module("qkv", torch::nn::Linear(hidden_, 3 * hidden_));
    {
      torch::NoGradGuard init;
      for (int64_t i = 0; i < 3; ++i)
        torch::nn::init::xavier_normal_(qkv_->weight.narrow(0, i * hidden_, hidden_));
      qkv_->bias.zero_();
    }
    target_ = register_module("target", torch::nn::Linear(query_dim, hidden_));
    ctr::init_linear(target_);
  }
  if (needs_items_ && (!t.item_vectors || t.item_width <= 0 ||
                      t.item_vectors->size() % static_cast<std::size_t>(t.item_width) != 0))
    throw Error(ErrorKind::InvalidInput,
                "fuse layer: a text query or similarity needs the item text vectors");
  if (text_query_) {
    item_table = register_buffer(
        "item_table", loaded ? torch::zeros({0, t.loaded_item_dim})
                             : reduce_vectors(view_of(t.item_vectors, t.item_width), in.reduced_dim));
    text_target_ = register_module("text_target", torch::nn::Linear(item_table.size(1), hidden_));
    ctr::init_linear(text_target_);
  }
  int64_t out_in = interaction_ ? 2 * hidden_ : hidden_;
  if (similarity_) {
    texts_ = t.texts;
    if (texts_ < 1 || t.width != texts_ * t.item_width)
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("fuse layer: similarity needs rows of whole text vectors ({} wide "
                              "rows, {} texts of {})",
                              t.width, texts_, t.item_width));
    // Cosines in the item texts' principal subspace (centred on the mean item, top
    // reduced_dim directions, not whitened): the full 384-d gather per slot cost 4x the
    // backbone's step on 2 cores; 64 directions keep the ranking of the cosines.
    torch::NoGradGuard frozen;
    const int64_t d = t.item_width;
    if (loaded) {
      item_mean = register_buffer("item_mean", torch::zeros({1, d}, torch::kDouble));
      item_basis = register_buffer("item_basis", torch::zeros({d, 0}, torch::kDouble));
    } else {
      torch::Tensor items = view_of(t.item_vectors, d).to(torch::kDouble);
      item_mean = register_buffer("item_mean", items.mean(0, /*keepdim=*/true));
      item_basis = register_buffer("item_basis", principal_directions(items - item_mean, in.reduced_dim));
      set_items(view_of(t.item_vectors, d));
      row_unit_ = row_units(raw);
    }
    out_in += slots_ * texts_;
  }
  output_ = register_module("output", torch::nn::Linear(out_in, fused_dim_));
  ctr::init_linear(output_);
  no_history_ = register_parameter("no_history", torch::zeros({fused_dim_}));
}

void FuseLayerImpl::set_rows(const torch::Tensor& raw) {
  table.set_(torch::zeros({0, table.size(1)}));  // the registered buffer too
  row_unit_ = torch::Tensor();
  append_rows(raw);
}

int64_t FuseLayerImpl::append_rows(const torch::Tensor& raw) {
  TORCH_CHECK(raw.dim() == 2 && raw.size(1) == row_width_, "fuse layer: rows must be [P, width]");
  torch::NoGradGuard frozen;
  const int64_t first = table.size(0);
  const torch::Tensor reduced = apply_reduction(raw, row_mean, row_top, row_scale);
  table.set_(first == 0 ? reduced : torch::cat({table, reduced}, 0));
  if (similarity_) {
    const torch::Tensor unit = row_units(raw);
    row_unit_ = row_unit_.defined() && row_unit_.size(0) > 0 ? torch::cat({row_unit_, unit}, 0) : unit;
  }
  return first;
}

torch::Tensor FuseLayerImpl::row_units(const torch::Tensor& raw) const {
  const int64_t p = raw.size(0), d = item_mean.size(1);
  const torch::Tensor chunks = raw.reshape({p * texts_, d}).to(torch::kDouble);
  return unit_rows((chunks - item_mean).mm(item_basis))
      .to(torch::kFloat)
      .view({p, texts_, item_basis.size(1)})
      .contiguous();
}

void FuseLayerImpl::set_items(const torch::Tensor& raw) {
  if (!similarity_) return;  // a text query's item table is a saved buffer
  torch::NoGradGuard frozen;
  TORCH_CHECK(raw.dim() == 2 && raw.size(1) == item_mean.size(1), "fuse layer: items must be [I, item_width]");
  item_unit_ = unit_rows((raw.to(torch::kDouble) - item_mean).mm(item_basis)).to(torch::kFloat).contiguous();
}

torch::Tensor FuseLayerImpl::forward(const ctr::Batch& batch, const torch::Tensor& target) {
  if (!needs_items_) return fuse(batch.side, target);
  return fuse(batch.side.narrow(1, 0, slots_), target, batch.side.select(1, slots_));
}

torch::Tensor FuseLayerImpl::similarities(const torch::Tensor& rows, const torch::Tensor& items) const {
  // Both sides are fixed vectors: nothing to learn here, no graph. One dot product per
  // visible (slot, text) straight from the frozen tables: gathering [B, M, texts, k] first
  // and multiplying cost 8 ms of a 9 ms DeepFM step (fuse_bench), this a fraction of one.
  const int64_t b = rows.size(0), k = item_unit_.size(1);
  torch::Tensor out = torch::zeros({b, slots_ * texts_});
  // Strided views of the batch's side columns are read in place.
  const torch::Tensor r = rows.stride(1) == 1 ? rows : rows.contiguous(), it = items;
  const int64_t* rp = r.data_ptr<int64_t>();
  const int64_t* ip = it.data_ptr<int64_t>();
  const float* ru = row_unit_.data_ptr<float>();
  const float* iu = item_unit_.data_ptr<float>();
  float* op = out.data_ptr<float>();
  ctr::dispatch_width(k, [&]<int64_t K>() {
    cosines<K>(rp, r.stride(0), ip, it.stride(0), ru, iu, b, slots_, texts_, k, op);
  });
  return out;
}

torch::Tensor FuseLayerImpl::fuse(const torch::Tensor& rows, const torch::Tensor& query,
                                  const torch::Tensor& items) {
  const int64_t b = rows.size(0);
  TORCH_CHECK(rows.dim() == 2 && rows.size(1) == slots_, "fuse layer: rows must be [B, slots]");
  // A slot's input is x = relu(input(row)) + slot_embedding[slot]. Every linear map of x
  // splits into a per-row part and a per-slot part, so the maps run once per distinct table
  // row of the batch (U <= B x M, and independent of the table's size) and each slot gathers.
  const VisibleRows visible = visible_rows(rows);
  torch::Tensor pooled;
  if (visible.used.numel() == 0) {  // no sample of the batch has a visible partition
    pooled = torch::zeros({b, interaction_ ? 2 * hidden_ : hidden_});
  } else if (attention_) {
    // The target query in the hidden space: learned embedding, text vector, or both.
    torch::Tensor tq;
    if (item_query_) tq = target_(query);
    if (text_query_) {
      TORCH_CHECK(items.defined() && items.size(0) == b, "fuse layer: a text query needs items");
      torch::Tensor has = items.ge(0).to(torch::kFloat).unsqueeze(1);                 // [B, 1]
      torch::Tensor text = text_target_(item_table.index_select(0, items.clamp_min(0))) * has;
      tq = tq.defined() ? tq + text : text;
    }
    pooled = partition_attention(table, visible.used, input_->weight, input_->bias,
                                 slot_embedding_, qkv_->weight, qkv_->bias, visible.local,
                                 tq);  // [B, h]
    if (interaction_) pooled = torch::cat({pooled, pooled * tq}, 1);
  } else {
    torch::Tensor inputs;
    {
      torch::NoGradGuard frozen;  // the table is a buffer: nothing flows back into it
      inputs = table.index_select(0, visible.used);  // [U, r]
    }
    torch::Tensor a = torch::relu(input_(inputs));  // [U, h]
    torch::Tensor x = ctr::gather_rows(a, visible.local.clamp_min(0).reshape(-1)).view({b, slots_, hidden_});
    torch::Tensor maskf = visible.local.ge(0).to(torch::kFloat).unsqueeze(-1);  // [B, M, 1]
    pooled = ((x + slot_embedding_) * maskf).sum(1) / maskf.sum(1).clamp_min(1.0);
  }
  std::vector<torch::Tensor> parts{pooled};
  if (similarity_) {
    TORCH_CHECK(items.defined() && items.size(0) == b, "fuse layer: similarity needs items");
    parts.push_back(similarities(rows, items));
  }
  parts.push_back(visible.flags);
  // One product with [W | b | no_history]: a sample with a visible partition gets W x + b,
  // one without (its pooled vector and similarities are all 0) exactly the learned no-history
  // vector. (torch::where and its backward cost more than the whole output map.)
  const torch::Tensor weight =
      torch::cat({output_->weight, output_->bias.unsqueeze(1), no_history_.unsqueeze(1)}, 1);
  return torch::cat(parts, 1).mm(weight.t());  // [B, fused]
}

namespace {

class FuseLayerFactory final : public ctr::SideInputFactory {
 public:
  FuseLayerFactory(FuseTable table, FuseConfig config)
      : table_(std::move(table)), config_(std::move(config)) {}
  std::shared_ptr<ctr::SideInputModule> make(int64_t dim) const override {
    return std::make_shared<FuseLayerImpl>(table_, config_, dim);
  }
  bool needs_target() const override { return true; }

 private:
  FuseTable table_;
  FuseConfig config_;
};

}  // namespace

SideInputPlug fuse_plug(const FuseTable& table, const FuseConfig& config) {
  check_config(config);
  if (table.width <= 0 || !table.vectors || table.vectors->size() % table.width != 0)
    throw Error(ErrorKind::InvalidInput, "fuse layer: vector table size is not rows x width");
  const bool text = config.needs_item_texts();
  if (text && (!table.item_vectors || table.item_width <= 0))
    throw Error(ErrorKind::InvalidInput,
                fmt::format("fuse layer: query '{}'{} needs the item text vectors (liber "
                            "encode makes them)",
                            config.query, config.similarity ? " with similarity" : ""));
  SideInputPlug plug;
  plug.name = "liber";
  plug.width = config.slots + (text ? 1 : 0);
  plug.lower = -1;
  plug.upper = static_cast<int32_t>(table.vectors->size() / static_cast<std::size_t>(table.width));
  if (text)
    plug.upper = std::max(plug.upper, static_cast<int32_t>(table.item_vectors->size() /
                                                           static_cast<std::size_t>(table.item_width)));
  plug.factory = std::make_shared<FuseLayerFactory>(table, config);
  return plug;
}

}  // namespace liber::uif

namespace liber {

SideInputPlug fuse_plug(const InterestTable& table, const FuseConfig& config,
                        const ItemTextTable* items) {
  uif::FuseTable t{std::make_shared<const std::vector<float>>(table.rows), table.width(), {}, 0,
                   table.texts};
  if (items && items->dim > 0) {
    t.item_vectors = std::make_shared<const std::vector<float>>(items->rows);
    t.item_width = items->dim;
  }
  return uif::fuse_plug(t, config);
}

}  // namespace liber
