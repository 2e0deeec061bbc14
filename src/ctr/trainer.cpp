// The one trainer of every backbone: samples become tensors once, each epoch shuffles them
// with a seeded permutation and steps Adam on BCE-with-logits minibatches, validation AUC
// picks the best epoch (its weights are checkpointed to disk) with early stopping, and the
// best epoch's weights are evaluated on the test split.
#include <dlfcn.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "liber/ctr.h"
#include "liber/ctr/backbone.h"
#include "liber/ctr/optim.h"
#include "liber/error.h"
#include "liber/log.h"
#include "liber/metrics.h"
#include "liber/progress.h"

namespace liber {

// ---------------------------------------------------------------------------------------
// Backbone registry

namespace {

using Factory = std::shared_ptr<ctr::Backbone> (*)(const FeatureSchema&, const ModelConfig&);

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> table = {
      {"din", &ctr::make_din},
      {"dcnv2", &ctr::make_dcnv2},
      {"deepfm", &ctr::make_deepfm},
      {"autoint", &ctr::make_autoint},
      {"xdeepfm", &ctr::make_xdeepfm},
      {"dien", &ctr::make_dien},
      {"fibinet", &ctr::make_fibinet},
      {"fignn", &ctr::make_fignn},
  };
  return table;
}

}  // namespace

std::vector<std::string> backbone_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry()) names.push_back(name);
  return names;
}

std::shared_ptr<ctr::Backbone> ctr::make_backbone(const FeatureSchema& schema,
                                                  const ModelConfig& config) {
  for (const auto& [name, factory] : registry())
    if (name == config.backbone) return factory(schema, config);
  std::string valid;
  for (const auto& [name, factory] : registry()) valid += (valid.empty() ? "" : ", ") + name;
  throw Error(ErrorKind::Config,
              "unknown backbone '" + config.backbone + "' (valid: " + valid + ")");
}

// ---------------------------------------------------------------------------------------
// Threads

int set_compute_threads(int threads) {
  if (threads < 0) throw Error(ErrorKind::Config, "thread count must be >= 0");
  int n = threads;
  if (n == 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The inter-op pool can be sized only once per process, before it is used.
  static std::once_flag interop_once;
  std::call_once(interop_once, [n] {
    try {
      at::set_num_interop_threads(n);
    } catch (const std::exception&) {
      // already started by someone else: keep its size
    }
  });
  // Debian's libtorch runs its element-wise kernels on an OpenMP pool and its GEMMs on
  // OpenBLAS's own pthread pool, which libtorch does not size. Both pools spin after their
  // work, so n threads in each means 2n busy threads on n cores: measured 3-4x slower on
  // DIN than either pool alone. The GEMMs are the bulk of a CTR step and OpenBLAS
  // synchronizes ~10 times a step (OpenMP ~100, each stalling when a core is busy
  // elsewhere), so the n threads go to OpenBLAS and libtorch's pool runs one.
  using SetBlasThreads = void (*)(int);
  if (auto set_blas = reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set_blas(n);
    at::set_num_threads(1);
  } else {
    at::set_num_threads(n);
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// Trainer

namespace {

using Clock = std::chrono::steady_clock;

// Training frees and reallocates the same few-MB activations every step; glibc's default
// trims them back to the OS and page-faults them in again each time (~10% of a DIN step).
void keep_freed_memory() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  });
#endif
}

// One split as tensors, converted once.
struct SplitTensors {
  torch::Tensor sparse, sequences, side, labels;
  int64_t size = 0;

  ctr::Batch rows(int64_t start, int64_t count) const {
    ctr::Batch b;
    b.sparse = sparse.narrow(0, start, count);
    if (sequences.defined()) b.sequences = sequences.narrow(0, start, count);
    if (side.defined()) b.side = side.narrow(0, start, count);
    return b;
  }

  SplitTensors gather(const torch::Tensor& index) const {
    SplitTensors out;
    out.size = index.size(0);
    out.sparse = sparse.index_select(0, index);
    if (sequences.defined()) out.sequences = sequences.index_select(0, index);
    if (side.defined()) out.side = side.index_select(0, index);
    out.labels = labels.index_select(0, index);
    return out;
  }
};

template <typename T>
torch::Tensor copy_tensor(const std::vector<T>& values, int64_t rows, int64_t cols,
                          torch::ScalarType type) {
  if (rows * cols == 0) return torch::empty({rows, cols}, type);
  return torch::from_blob(const_cast<T*>(values.data()), {rows, cols}, type).clone();
}

void check_ids(const std::vector<int64_t>& ids, int64_t rows, int64_t cols,
               const std::vector<int64_t>& vocab, const std::vector<std::string>& names,
               const char* split) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t* row = ids.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c)
      if (row[c] < 0 || row[c] >= vocab[c])
        throw Error(ErrorKind::InvalidInput,
                    fmt::format("{} sample {}: id {} of field '{}' is outside its vocabulary "
                                "of {}", split, r, row[c], names[c], vocab[c]));
  }
}

// check_side = false: a served model's side input grows after training (CtrModel), so its
// values are the plug owner's to keep in range.
SplitTensors to_tensors(const SampleSet& set, const FeatureSchema& schema, const char* split,
                        bool check_side = true) {
  const int64_t n = static_cast<int64_t>(set.size());
  const int64_t s = static_cast<int64_t>(schema.sparse.size());
  int64_t l = 0;
  for (const SequenceField& f : schema.sequences) l += f.length;
  auto mismatch = [&](const char* what) {
    return Error(ErrorKind::InvalidInput,
                 fmt::format("{} split: {} does not match the schema for {} samples", split,
                             what, n));
  };
  if (static_cast<int64_t>(set.sparse.size()) != n * s) throw mismatch("sparse ids");
  if (static_cast<int64_t>(set.sequences.size()) != n * l) throw mismatch("sequence ids");
  const SideInputPlug& plug = schema.side;
  const int64_t w = plug.enabled() ? plug.width : 0;
  if (static_cast<int64_t>(set.side.size()) != n * w) throw mismatch("side input");
  for (std::size_t i = 0; check_side && i < set.side.size(); ++i)
    if (set.side[i] < plug.lower || set.side[i] >= plug.upper)
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("{} sample {}: side input '{}' value {} is outside [{}, {})", split,
                              i / static_cast<std::size_t>(w), plug.name, set.side[i], plug.lower,
                              plug.upper));
  if (!set.users.empty() && static_cast<int64_t>(set.users.size()) != n) throw mismatch("users");

  std::vector<int64_t> vocab;
  std::vector<std::string> names;
  for (const SparseField& f : schema.sparse) vocab.push_back(f.vocab), names.push_back(f.name);
  check_ids(set.sparse, n, s, vocab, names, split);
  vocab.clear(), names.clear();
  for (const SequenceField& f : schema.sequences)
    for (int i = 0; i < f.length; ++i) vocab.push_back(f.vocab), names.push_back(f.name);
  check_ids(set.sequences, n, l, vocab, names, split);

  SplitTensors t;
  t.size = n;
  t.sparse = copy_tensor(set.sparse, n, s, torch::kLong);
  if (l > 0) t.sequences = copy_tensor(set.sequences, n, l, torch::kLong);
  if (w > 0) t.side = copy_tensor(set.side, n, w, torch::kInt).to(torch::kLong);
  t.labels = copy_tensor(set.labels, n, 1, torch::kFloat).view({n});
  return t;
}

// Sigmoid predictions for a whole split, in large no-grad batches; `model` in eval mode.
std::vector<float> predict(ctr::Backbone& model, const SplitTensors& data, int64_t batch) {
  torch::InferenceMode guard;
  std::vector<float> out(static_cast<std::size_t>(data.size));
  for (int64_t start = 0; start < data.size; start += batch) {
    const int64_t count = std::min(batch, data.size - start);
    torch::Tensor p = torch::sigmoid(model.forward(data.rows(start, count))).contiguous();
    std::memcpy(out.data() + start, p.data_ptr<float>(), count * sizeof(float));
  }
  return out;
}

Metrics evaluate(ctr::Backbone& model, const SplitTensors& data, const SampleSet& set,
                 int64_t batch, std::vector<float>* kept = nullptr) {
  model.eval();
  std::vector<float> scores = predict(model, data, batch);
  model.train();
  if (kept) *kept = scores;
  Metrics m;
  m.auc = auc(set.labels, scores);
  m.logloss = logloss(set.labels, scores);
  m.gauc = set.users.empty() ? std::nan("") : gauc(set.labels, scores, set.users);
  return m;
}

// A deterministic permutation of [0, n) for one epoch (Fisher-Yates on mt19937_64, so it
// does not depend on the standard library's shuffle).
std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[rng() % static_cast<uint64_t>(i + 1)]);
  return p;
}

std::string temporary_checkpoint(const std::string& backbone) {
  static std::atomic<uint64_t> counter{0};
  const auto stamp = Clock::now().time_since_epoch().count();
  return (std::filesystem::temp_directory_path() /
          fmt::format("liber-{}-{}-{}-{}.pt", backbone, ::getpid(), stamp, counter++))
      .string();
}

void save_weights(ctr::Backbone& model, const std::string& path) {
  try {
    torch::serialize::OutputArchive archive;
    model.save(archive);
    archive.save_to(path);
  } catch (const c10::Error& e) {
    throw Error(ErrorKind::Io, "cannot write checkpoint " + path + ": " + e.what_without_backtrace());
  }
}

void load_weights(ctr::Backbone& model, const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    model.load(archive);
  } catch (const c10::Error& e) {
    throw Error(ErrorKind::Io, "cannot read checkpoint " + path + ": " + e.what_without_backtrace());
  }
}

// Removes a temporary checkpoint on every exit path.
struct FileGuard {
  std::string path;
  ~FileGuard() {
    if (!path.empty()) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    }
  }
};

}  // namespace

TrainResult train_and_evaluate(const CtrDataset& data, const ModelConfig& model_config,
                               const TrainConfig& config) {
  if (config.max_epochs <= 0) throw Error(ErrorKind::Config, "max_epochs must be positive");
  if (config.batch_size <= 0) throw Error(ErrorKind::Config, "batch_size must be positive");
  if (!(config.learning_rate > 0)) throw Error(ErrorKind::Config, "learning_rate must be positive");
  if (data.train.size() == 0) throw Error(ErrorKind::InvalidInput, "the train split is empty");

  TrainResult result;
  result.backbone = model_config.backbone;
  result.threads = set_compute_threads(config.threads);

  const SplitTensors train = to_tensors(data.train, data.schema, "train");
  const SplitTensors valid = to_tensors(data.valid, data.schema, "valid");
  const SplitTensors test = to_tensors(data.test, data.schema, "test");
  const int64_t batch_size = config.batch_size;
  const int64_t eval_batch = std::max<int64_t>(batch_size, 8192);

  torch::manual_seed(config.seed);
  std::shared_ptr<ctr::Backbone> model = ctr::make_backbone(data.schema, model_config);
  model->train();
  ctr::FusedAdam optimizer(model->parameters(), config.learning_rate);
  keep_freed_memory();

  FileGuard temporary;
  std::string checkpoint = config.checkpoint_path;
  if (checkpoint.empty()) checkpoint = temporary.path = temporary_checkpoint(result.backbone);

  double best_auc = std::nan("");
  int stale = 0;
  double train_seconds = 0;
  uint64_t train_samples = 0;
  for (int epoch = 1; epoch <= config.max_epochs; ++epoch) {
    ProgressBar bar(fmt::format("{} epoch {}/{}", result.backbone, epoch, config.max_epochs),
                    static_cast<uint64_t>(train.size), "samples", config.progress);
    const auto start = Clock::now();
    std::vector<int64_t> order = permutation(train.size, config.seed + static_cast<uint64_t>(epoch));
    const SplitTensors shuffled =
        train.gather(torch::from_blob(order.data(), {train.size}, torch::kLong));
    double loss_sum = 0;
    int64_t steps = 0;
    for (int64_t first = 0; first < train.size; first += batch_size) {
      const int64_t count = std::min(batch_size, train.size - first);
      const ctr::Batch batch = shuffled.rows(first, count);
      optimizer.zero_grad();
      torch::Tensor loss = torch::binary_cross_entropy_with_logits(
          model->forward(batch), shuffled.labels.narrow(0, first, count));
      if (config.progress) loss_sum += loss.item<double>(), ++steps;
      if (torch::Tensor auxiliary = model->auxiliary_loss(); auxiliary.defined())
        loss = loss + auxiliary;
      if (model_config.embedding_l2 > 0)
        loss = loss + model->embedding_l2(batch) * model_config.embedding_l2;
      loss.backward();
      optimizer.step();
      bar.advance(static_cast<uint64_t>(count));
    }
    train_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    train_samples += static_cast<uint64_t>(train.size);
    bar.finish();
    result.epochs = epoch;

    const Metrics m = evaluate(*model, valid, data.valid, eval_batch);
    // Without a valid AUC yet (first epoch, or a one-class valid split) the latest epoch wins.
    const bool improved = std::isnan(best_auc) || m.auc > best_auc;
    if (config.progress)
      log_info(fmt::format("{} epoch {}: train loss {:.4f}, valid AUC {:.4f} logloss {:.4f} gAUC {:.4f}{}",
                           result.backbone, epoch, steps ? loss_sum / steps : 0.0, m.auc,
                           m.logloss, m.gauc, improved ? " (best)" : ""));
    if (improved) {
      best_auc = m.auc;
      result.best_epoch = epoch;
      result.valid = m;
      stale = 0;
      save_weights(*model, checkpoint);
    } else if (++stale >= config.patience) {
      break;
    }
  }

  result.train_seconds = train_seconds;
  result.train_samples_per_s = train_seconds > 0 ? static_cast<double>(train_samples) / train_seconds : 0;
  load_weights(*model, checkpoint);
  result.test = evaluate(*model, test, data.test, eval_batch, &result.test_predictions);
  return result;
}

// ---------------------------------------------------------------------------------------
// A trained model, for inference

CtrModel::CtrModel(const FeatureSchema& schema, const ModelConfig& config)
    : schema_(schema), backbone_(ctr::make_backbone(schema, config)) {
  backbone_->eval();  // for good: predict() runs from several threads and never trains
}

void CtrModel::load(const std::string& weights_path) {
  load_weights(*backbone_, weights_path);
  backbone_->eval();
}

std::vector<float> CtrModel::predict(const SampleSet& samples) const {
  const SplitTensors t = to_tensors(samples, schema_, "request", /*check_side=*/false);
  return liber::predict(*backbone_, t, std::max<int64_t>(t.size, 1));
}

ctr::SideInputModule* CtrModel::side_input() const { return backbone_->embedding->side.get(); }

}  // namespace liber
