// The scorer: a saved model over a live store (include/liber/score.h).
#include <algorithm>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/data/text_io.h"
#include "liber/error.h"
#include "liber/score.h"
#include "liber/score/model_files.h"
#include "liber/ubsp.h"
#include "liber/uif/fuse_layer.h"

namespace liber {

namespace fs = std::filesystem;

struct Scorer::Impl {
  // A user's partitions with knowledge, by seq: each one's seq, and its (t_end, row of the
  // fuse layer's table) as visible_partitions reads them.
  struct Parts {
    std::vector<uint32_t> seq;
    std::vector<std::pair<int64_t, int32_t>> at;
  };

  Store& store;
  fs::path dir;
  ModelInfo info;
  BehaviorLog catalog;  // the model's vocabulary
  std::unique_ptr<SampleBuilder> builder;
  std::unique_ptr<CtrModel> model;
  uif::FuseLayerImpl* fuse = nullptr;  // inside `model`, with knowledge
  std::vector<uint8_t> item_has_text;  // per catalog row, for a text query
  std::optional<ContentSource> content;  // read once, with content knowledge
  bool text_item = false;              // the side input carries the target's text row

  // The table's users: a shared lock to score, the unique one to add rows.
  mutable std::shared_mutex mutex;
  std::unordered_map<std::string, Parts> users;
  int64_t rows = 0;
  std::mutex stale_mutex;
  std::unordered_set<std::string> stale;
  bool all_stale = false;

  Impl(Store& s, fs::path d) : store(s), dir(std::move(d)) {
    info = read_model_info(dir);
    const fs::path catalog_path = dir / "catalog.json";
    catalog = catalog_from_json(data::read_text_file(catalog_path), catalog_path.string());
    builder = std::make_unique<SampleBuilder>(catalog, info.history_length);
    FeatureSchema schema = builder->schema();
    ItemTextTable items;
    if (!info.knowledge.empty()) {
      if (info.row_dim <= 0 || info.dim <= 0 || info.texts <= 0)
        throw Error(ErrorKind::Parse, fmt::format("{}: knowledge '{}' without its vector shapes",
                                                  (dir / "model.json").string(), info.knowledge));
      if (const auto v = score::knowledge_variant(store, info.knowledge); v && v->id() != info.variant_id)
        throw Error(ErrorKind::InvalidInput,
                    fmt::format("model {}: variant '{}' of store {} now stands for other settings (id "
                                "{}) than the model was trained with (id {})",
                                dir.string(), v->name, store.path().string(), v->id(), info.variant_id));
      if (info.fuse.needs_item_texts()) {
        items = load_item_text_table(store, catalog);
        if (items.dim != info.dim)
          throw Error(ErrorKind::InvalidInput,
                      fmt::format("model {} reads item text vectors of {} dimensions; store {} has {}",
                                  dir.string(), info.dim, store.path().string(), items.dim));
        item_has_text = items.present;
        text_item = true;
      }
      if (score::knowledge_uses_content(info.knowledge)) content = load_content_source(store);
      uif::FuseTable t;
      t.vectors = std::make_shared<const std::vector<float>>();
      t.width = info.texts * info.dim;
      t.texts = info.texts;
      if (text_item) {
        t.item_vectors = std::make_shared<const std::vector<float>>(items.rows);
        t.item_width = items.dim;
      }
      t.loaded_row_dim = info.row_dim;
      t.loaded_item_dim = info.item_dim;
      schema.side = uif::fuse_plug(t, info.fuse);
    }
    model = std::make_unique<CtrModel>(schema, info.model);
    model->load((dir / "weights.pt").string());
    if (!info.knowledge.empty()) {
      fuse = dynamic_cast<uif::FuseLayerImpl*>(model->side_input());
      if (!fuse) throw Error(ErrorKind::Internal, "scorer: the model's side input is not the fuse layer");
      if (text_item)
        fuse->set_items(torch::from_blob(items.rows.data(),
                                         {static_cast<int64_t>(items.present.size()), items.dim},
                                         torch::kFloat));
      fuse->set_rows(torch::zeros({0, static_cast<int64_t>(info.texts) * info.dim}));
    }
  }

  bool fresh(const std::string& user) {
    if (!users.contains(user)) return false;
    std::lock_guard<std::mutex> lock(stale_mutex);
    return !all_stale && !stale.contains(user);
  }

  // Reads the user's knowledge from the store; partitions the table has keep their rows
  // (an ok record and its vector do not change), new ones are appended.
  void refresh(const std::string& user) {
    {
      std::lock_guard<std::mutex> lock(stale_mutex);
      if (all_stale) {  // every user held is read again, each on its next request
        for (const auto& [u, parts] : users) stale.insert(u);
        all_stale = false;
      }
      stale.erase(user);  // an invalidation from now on is seen by the next request
    }
    const InterestTable t = load_knowledge(store, info.knowledge, {user}, content ? &*content : nullptr);
    if (!t.partitions.empty() && (t.encoder != info.encoder || t.dim != info.dim))
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("model {} reads vectors of {} ({} dimensions); store {} has {} ({})",
                              dir.string(), info.encoder, info.dim, store.path().string(), t.encoder, t.dim));
    Parts& parts = users[user];
    std::unordered_map<uint32_t, int32_t> known;
    for (std::size_t i = 0; i < parts.seq.size(); ++i) known[parts.seq[i]] = parts.at[i].second;
    std::vector<float> added;
    std::vector<std::pair<uint32_t, std::pair<int64_t, int32_t>>> next;  // seq, (t_end, row)
    const auto w = static_cast<std::size_t>(t.width());
    int64_t row = rows;
    for (const PartitionVector& p : t.partitions) {
      if (auto k = known.find(p.seq); k != known.end()) {
        next.push_back({p.seq, {p.t_end, k->second}});
        continue;
      }
      next.push_back({p.seq, {p.t_end, static_cast<int32_t>(row++)}});
      added.insert(added.end(), t.rows.begin() + static_cast<std::ptrdiff_t>(p.row * w),
                   t.rows.begin() + static_cast<std::ptrdiff_t>((p.row + 1) * w));
    }
    if (!added.empty()) {
      const auto n = static_cast<int64_t>(added.size() / w);
      fuse->append_rows(torch::from_blob(added.data(), {n, static_cast<int64_t>(w)}, torch::kFloat));
      rows += n;
    }
    std::sort(next.begin(), next.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    parts.seq.clear();
    parts.at.clear();
    for (const auto& [seq, at] : next) {
      parts.seq.push_back(seq);
      parts.at.push_back(at);
    }
  }

  // The user's last history_length items before `ts`, most recent first (model rows).
  std::vector<uint32_t> history(std::string_view user, int64_t ts) const {
    std::vector<std::pair<int64_t, uint32_t>> events;  // (ts, item row), stored order
    auto add = [&](const std::vector<StoredEvent>& from) {
      for (const StoredEvent& e : from)
        if (e.ts < ts) events.emplace_back(e.ts, catalog.items.ids.find(e.item));
    };
    for (const StoredPartition& p : read_partitions(store, user)) add(p.events);
    if (const auto cache = read_cache(store, user)) add(cache->events);
    // Time order, ties in stored order: the order build_ctr_dataset gives a user's events.
    std::stable_sort(events.begin(), events.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<uint32_t> out;
    const auto n = static_cast<std::size_t>(info.history_length);
    for (auto it = events.rbegin(); it != events.rend() && out.size() < n; ++it) out.push_back(it->second);
    return out;
  }

  Score compute(const std::string& user, std::span<const std::string> items, int64_t ts) const {
    Score out;
    const uint32_t user_row = catalog.users.ids.find(user);
    const std::vector<uint32_t> recent = history(user, ts);
    out.history = recent.size();
    SampleSet set;
    for (const std::string& item : items)
      builder->append(set, user_row, catalog.items.ids.find(item), ts, recent, 0.0f);
    if (fuse) {
      // The training's leakage rule (visible_partitions, as attach_interests applies it).
      const auto m = static_cast<std::size_t>(info.fuse.slots);
      std::vector<int32_t> visible(m, -1);
      if (auto it = users.find(user); it != users.end())
        out.partitions = visible_partitions(it->second.at, ts, visible);
      const std::size_t width = m + (text_item ? 1 : 0);
      set.side.assign(items.size() * width, -1);
      for (std::size_t i = 0; i < items.size(); ++i) {
        std::copy(visible.begin(), visible.end(), set.side.begin() + static_cast<std::ptrdiff_t>(i * width));
        if (text_item) {
          const uint32_t row = catalog.items.ids.find(items[i]);
          if (row < item_has_text.size() && item_has_text[row]) set.side[i * width + m] = static_cast<int32_t>(row);
        }
      }
    }
    out.probabilities = model->predict(set);
    return out;
  }
};

Scorer::Scorer(Store& store, const fs::path& dir) : impl_(std::make_unique<Impl>(store, dir)) {}
Scorer::~Scorer() = default;

const ModelInfo& Scorer::info() const { return impl_->info; }

uint32_t Scorer::item_row(std::string_view item) const { return impl_->catalog.items.ids.find(item); }

Score Scorer::score(std::string_view user_id, std::span<const std::string> items, std::optional<int64_t> ts) {
  Impl& s = *impl_;
  const std::string user(user_id);
  const int64_t at = ts.value_or(std::numeric_limits<int64_t>::max());
  for (;;) {
    {
      std::shared_lock lock(s.mutex);
      if (!s.fuse || s.fresh(user)) return s.compute(user, items, at);
    }
    std::unique_lock lock(s.mutex);
    if (!s.fresh(user)) s.refresh(user);
  }
}

void Scorer::invalidate(std::span<const std::string> users) {
  std::lock_guard<std::mutex> lock(impl_->stale_mutex);
  impl_->stale.insert(users.begin(), users.end());
}

void Scorer::invalidate_all() {
  std::lock_guard<std::mutex> lock(impl_->stale_mutex);
  impl_->all_stale = true;
}

std::size_t Scorer::rows() const {
  std::shared_lock lock(impl_->mutex);
  return static_cast<std::size_t>(impl_->rows);
}

}  // namespace liber
