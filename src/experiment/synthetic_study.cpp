// run_synthetic_study (include/liber/experiment.h): the experiment on generated data, with an
// oracle and a leaky upper bound beside it.
#include <algorithm>
#include <filesystem>
#include <map>
#include <unordered_set>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/experiment.h"
#include "liber/log.h"
#include "liber/store.h"
#include "liber/ubsp.h"
#include "liber/uif.h"

namespace liber {

namespace {

namespace fs = std::filesystem;

// The leaky table: each partition's text states the like rate of the user's next 50
// behaviors after it closed. One vector per distinct text.
InterestTable leaky_table(const InterestTable& content, const BehaviorLog& log, LlmEngine& encoder) {
  std::map<std::string, std::vector<std::pair<int64_t, bool>>> by_user;
  for (const Event& e : log.events)
    by_user[log.users.ids.key(e.user)].emplace_back(
        e.ts, e.label >= 0 ? e.label == 1 : e.rating >= log.like_threshold);
  for (auto& [u, v] : by_user) std::sort(v.begin(), v.end());
  std::vector<std::string> texts;
  for (const PartitionVector& p : content.partitions) {
    const auto& v = by_user[p.user];
    auto it = std::upper_bound(v.begin(), v.end(), std::make_pair(p.t_end, true));
    int n = 0, liked = 0;
    for (; it != v.end() && n < 50; ++it, ++n) liked += it->second;
    texts.push_back(n == 0 ? "No later behaviors."
                           : fmt::format("Of the next {} behaviors, {}% are liked.", n, 100 * liked / n));
  }
  std::vector<std::string> distinct = texts;
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  const auto vectors = encoder.embed(distinct);
  std::map<std::string, const std::vector<float>*> of;
  for (std::size_t i = 0; i < distinct.size(); ++i) {
    if (!vectors[i].error.empty())
      throw Error(ErrorKind::Internal, "leaky diagnostic: the encoder failed: " + vectors[i].error);
    of[distinct[i]] = &vectors[i].vector;
  }
  InterestTable t = content;
  t.variant = "leaky";
  t.layout = "next-like-rate";
  t.texts = 1;
  t.dim = static_cast<int>(vectors.front().vector.size());
  t.rows.clear();
  for (const std::string& text : texts) t.rows.insert(t.rows.end(), of[text]->begin(), of[text]->end());
  return t;
}

}  // namespace

SyntheticStudyResult run_synthetic_study(const SyntheticStudyConfig& cfg, LlmEngine& encoder) {
  if (cfg.dir.empty()) throw Error(ErrorKind::Config, "synthetic study: no directory");
  const fs::path dir(cfg.dir);
  const fs::path data = dir / "data", store_dir = dir / "store";
  if (!fs::exists(data / "events.csv")) {
    log_info(fmt::format("synthetic: writing {} users x {} behaviors, {} items to {}",
                         cfg.data.users, cfg.data.events_per_user, cfg.data.items, data.string()));
    write_synthetic(data, cfg.data);
  }
  // The truth is a function of the config alone: regenerate it beside the files.
  const SyntheticTruth truth = write_synthetic(dir / "truth-check", cfg.data);
  fs::remove_all(dir / "truth-check");
  GenericPaths paths;
  paths.events = data / "events.csv";
  paths.items = data / "items.csv";
  paths.name = "synthetic";
  const BehaviorLog raw = read_generic(paths);
  PartitionRule rule;
  rule.count = cfg.partition_count;
  ingest_log(store_dir, raw, rule, IngestOptions{});
  {
    auto store = open_rocksdb_store(store_dir);
    EncodeOptions eo;
    eo.interests = false;
    const EncodeReport rep = encode_knowledge(*store, encoder, eo);
    log_info(fmt::format("synthetic: {} item texts encoded ({} already) at {:.0f} texts/s",
                         rep.item_texts_encoded, rep.item_texts_reused, rep.texts_per_s()));
  }

  SyntheticStudyResult res;
  ExperimentConfig ec = cfg.experiment;
  ec.store = store_dir.string();
  ec.variant.clear();
  ec.content = true;
  ec.controls = true;
  ec.out_dir = (dir / "results").string();
  res.experiment = run_experiment(ec);
  const ExperimentResult& ex = res.experiment;

  // The oracle and the leaky arm train on the experiment's population and split.
  auto store = open_rocksdb_store(store_dir, StoreOptions{.read_only = true});
  const BehaviorLog log = load_behavior_log(*store);
  CtrDataset pop = build_ctr_dataset(log, ec.split);
  keep_users(pop, log, ex.population);
  CtrDataset oracle = pop;
  const auto f = static_cast<std::size_t>(pop.schema.sparse.size());
  const auto target = static_cast<std::size_t>(pop.schema.target_item_field);
  add_sparse_field(oracle, {"oracle_interest_match", 3}, [&](const SampleSet& s, std::size_t i) {
    return 1 + truth.match(log.users.ids.key(s.users[i]),
                           log.items.ids.key(static_cast<uint32_t>(s.sparse[i * f + target])),
                           s.timestamps[i]);
  });
  CtrDataset leaky;
  if (cfg.leaky) {
    InterestTable content = load_content_table(*store, PartitionSet{}, ex.population);
    leaky = pop;
    FuseConfig fuse = ec.fuse;
    fuse.query = "item";  // the leak needs no target, nor its text
    fuse.similarity = false;
    attach_interests(leaky, log, leaky_table(content, log, encoder), fuse);
  }
  const std::vector<std::string> backbones = ec.backbones.empty() ? backbone_names() : ec.backbones;
  std::vector<ResultRecord> extra;
  for (const std::string& backbone : backbones) {
    for (const auto& [label, set] : std::vector<std::pair<std::string, const CtrDataset*>>{
             {"oracle", &oracle}, {"leaky (upper bound)", &leaky}}) {
      if (label != "oracle" && !cfg.leaky) continue;
      for (uint64_t seed : ec.seeds) {
        ModelConfig m = ec.models.contains(backbone) ? ec.models.at(backbone) : ModelConfig{};
        m.backbone = backbone;
        TrainConfig t = ec.train;
        t.seed = seed;
        log_info(fmt::format("synthetic {} / {} / seed {}", backbone, label, seed));
        ResultRecord rec;
        rec.dataset = pop.name;
        rec.backbone = backbone;
        rec.variant = label;
        rec.population = "liber";
        rec.users = ex.population.size();
        rec.seed = seed;
        rec.train_samples = set->train.size();
        rec.test_samples = set->test.size();
        rec.result = train_and_evaluate(*set, m, t);
        extra.push_back(std::move(rec));
      }
    }
  }
  res.extra = summarize_results(extra);
  for (VariantSummary& s : res.extra) {
    s.vs_base = paired_bootstrap_auc(pop.test.labels, pop.test.users,
                                     predictions_by_seed(extra, "liber", s.backbone, s.variant, ec.seeds),
                                     predictions_by_seed(ex.records, "liber", s.backbone, "base", ec.seeds),
                                     ec.bootstrap_resamples, 20261202);
    for (const VariantSummary& b : ex.summary)
      if (b.population == "liber" && b.backbone == s.backbone && b.variant == "base" && b.auc_mean > 0)
        s.rel_auc = (s.auc_mean / b.auc_mean - 1.0) * 100.0;
  }
  for (const VariantSummary& o : res.extra) {
    if (o.variant != "oracle") continue;
    for (const VariantSummary& c : ex.summary)
      if (c.population == "liber" && c.backbone == o.backbone && c.variant == "content" &&
          o.vs_base.estimate > 0)
        res.recovered[o.backbone] = c.vs_base.estimate / o.vs_base.estimate;
  }
  return res;
}

}  // namespace liber
