// `run_experiment`: backbone x variant x seed on one split, and the LLM cost of the inputs.
// See include/liber/experiment.h.
#include "liber/experiment.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "liber/common/hash.h"
#include "liber/error.h"
#include "liber/log.h"
#include "liber/store.h"
#include "liber/ubsp.h"
#include "liber/uif.h"
#include "liber/uil.h"

namespace liber {

namespace {

namespace fs = std::filesystem;

LlmCostSummary llm_cost(Store& store, const Variant& variant, const std::vector<std::string>& users) {
  LlmCostSummary c;
  c.variant = variant.name;
  const std::unordered_set<std::string> only(users.begin(), users.end());
  for_each_interest(store, variant.id(), [&](const InterestRecord& r) {
    if (!only.empty() && !only.contains(r.user)) return;
    ++c.records;
    c.calls += static_cast<uint64_t>(std::max(0, r.attempts));
    c.prompt_tokens += static_cast<uint64_t>(std::max(0, r.prompt_tokens));
    c.completion_tokens += static_cast<uint64_t>(std::max(0, r.completion_tokens));
    c.behaviors += r.behaviors;
    if (!r.ok) return;
    ++c.ok;
    if (r.quality.empty())
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("store {}: variant '{}' has records made before the verifier (user "
                              "{}, partition {}): run liber learn --variant {} --verify",
                              store.path().string(), variant.name, r.user, r.seq, variant.name));
    ++(r.usable() ? c.verified : c.rejected);
  });
  if (c.behaviors > 0)
    c.tokens_per_1k_behaviors =
        1000.0 * static_cast<double>(c.prompt_tokens + c.completion_tokens) / c.behaviors;
  for (const CostReport& run : read_learn_runs(store, variant.id())) {
    ++c.runs;
    c.wall_s += run.wall_s;
    c.naive_prompt_tokens += run.naive_prompt_tokens;
    c.run_prompt_tokens += run.interest_prompt_tokens;
  }
  return c;
}

// One training configuration of the table: a population's samples, with one variant's
// vectors through the fuse layer (or none: the backbone alone).
struct Arm {
  std::string population, label;  // the table's population and variant columns
  const CtrDataset* samples = nullptr;
  std::size_t users = 0;
  const InterestTable* table = nullptr;  // null: the backbone alone
  std::string fusion = "attention";
  // A knowledge arm names its controls: it must beat the random one and every shuffled one.
  std::string random_control = {};
  std::vector<std::string> shuffled_controls = {};
};

template <typename T>
uint64_t hash_of(const std::vector<T>& v, uint64_t h) {
  return fnv1a(std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)), h);
}

// Everything a training run depends on: the samples (labels and attached partition rows of
// every split), the arm's vectors, the model, the training and fuse settings, the seed.
std::string run_key(const Arm& arm, const CtrDataset& data, const ModelConfig& m,
                    const TrainConfig& t, const FuseConfig& fuse, const SplitConfig& split) {
  uint64_t h = fnv1a_fields({arm.population, arm.label, m.backbone, arm.fusion});
  for (const SampleSet* set : {&data.train, &data.valid, &data.test}) {
    h = hash_of(set->labels, h);
    h = hash_of(set->side, h);
    h = hash_of(set->users, h);
  }
  if (arm.table) h = hash_of(arm.table->rows, h);
  auto ints = [](const std::vector<int>& v) { return fmt::format("{}", fmt::join(v, ",")); };
  h = fnv1a(fmt::format("|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", m.embedding_dim, ints(m.mlp), m.dropout,
                        ints(m.attention_mlp), m.cross_layers, m.attention_layers,
                        m.attention_heads, m.attention_dim, m.embedding_l2, arm.table != nullptr),
            h);
  // Settings added since runs were first keyed enter the key only for the backbones that
  // read them, so stored runs of the others stay found.
  if (m.backbone == "xdeepfm") h = fnv1a(fmt::format("|cin {}", ints(m.cin_layers)), h);
  if (m.backbone == "dien") h = fnv1a(fmt::format("|aux {}", m.auxiliary_loss_weight), h);
  if (m.backbone == "fibinet") h = fnv1a(fmt::format("|senet {}", m.senet_reduction), h);
  if (m.backbone == "fignn") h = fnv1a(fmt::format("|graph {}", m.graph_steps), h);
  h = fnv1a(fmt::format("|{}|{}|{}|{}|{}", t.max_epochs, t.batch_size, t.learning_rate, t.patience, t.seed), h);
  h = fnv1a(fmt::format("|{}|{}|{}", split.test_fraction, split.valid_fraction, split.history_length), h);
  if (arm.table)
    h = fnv1a(fmt::format("|{}|{}|{}|{}|{}|{}|{}|{}", fuse.slots, fuse.fused_dim, fuse.hidden,
                          fuse.reduced_dim, fuse.fusion, fuse.query, fuse.interaction,
                          fuse.similarity),
              h);
  return hex16(h);
}

// Finished runs kept beside the results (out_dir/runs/KEY.json and KEY.f32, the test
// predictions the intervals need): a rerun of the same experiment reuses a run whose key
// matches instead of training it again, so a long experiment stopped part-way goes on
// where it stopped.
class RunCache {
 public:
  explicit RunCache(const std::string& out_dir)
      : dir_(out_dir.empty() ? fs::path() : fs::path(out_dir) / "runs") {
    if (!dir_.empty()) fs::create_directories(dir_);
  }

  std::optional<ResultRecord> find(const std::string& key, std::size_t test_samples) const {
    if (dir_.empty()) return std::nullopt;
    const fs::path json = dir_ / (key + ".json"), preds = dir_ / (key + ".f32");
    std::error_code ec;
    if (!fs::exists(json) || fs::file_size(preds, ec) != test_samples * sizeof(float) || ec)
      return std::nullopt;
    std::ifstream in(json);
    std::stringstream ss;
    ss << in.rdbuf();
    ResultRecord r = parse_result_record(ss.str(), json.string());
    r.result.test_predictions.resize(test_samples);
    std::ifstream p(preds, std::ios::binary);
    p.read(reinterpret_cast<char*>(r.result.test_predictions.data()),
           static_cast<std::streamsize>(test_samples * sizeof(float)));
    if (!p) return std::nullopt;
    return r;
  }

  // Predictions first, the record last (each written whole, then renamed): a record on disk
  // always has its predictions.
  void put(const std::string& key, const ResultRecord& r) const {
    if (dir_.empty()) return;
    auto write = [&](const fs::path& to, const char* data, std::size_t n) {
      const fs::path tmp = to.string() + ".tmp";
      {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out.write(data, static_cast<std::streamsize>(n));
        if (!out) throw Error(ErrorKind::Io, fmt::format("cannot write {}", tmp.string()));
      }
      fs::rename(tmp, to);
    };
    const auto& p = r.result.test_predictions;
    write(dir_ / (key + ".f32"), reinterpret_cast<const char*>(p.data()), p.size() * sizeof(float));
    const std::string json = result_record_json(r);
    write(dir_ / (key + ".json"), json.data(), json.size());
  }

 private:
  fs::path dir_;
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}
double stddev(const std::vector<double>& v) {  // sample std (n - 1); 0 for one value
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// The arms named in `wanted` (and the backbone alone). A name that is no arm of this
// experiment, or a knowledge arm without its controls, is a config error.
std::vector<Arm> select_arms(const std::vector<Arm>& arms, const std::vector<std::string>& wanted) {
  std::set<std::string> labels;
  for (const Arm& a : arms) labels.insert(a.label);
  for (const std::string& w : wanted)
    if (!labels.contains(w))
      throw Error(ErrorKind::Config, fmt::format("experiment: no arm '{}' (this store and config "
                                                 "have: {})",
                                                 w, fmt::join(labels, ", ")));
  const std::set<std::string> keep(wanted.begin(), wanted.end());
  std::vector<Arm> out;
  for (const Arm& a : arms) {
    if (a.label != "base" && !keep.contains(a.label)) continue;
    std::vector<std::string> controls;
    if (!a.random_control.empty()) controls.push_back(a.random_control);
    controls.insert(controls.end(), a.shuffled_controls.begin(), a.shuffled_controls.end());
    for (const std::string& c : controls)
      if (!keep.contains(c))
        throw Error(ErrorKind::Config,
                    fmt::format("experiment: arm '{}' is judged against its controls; list "
                                "'{}' too",
                                a.label, c));
    out.push_back(a);
  }
  return out;
}

}  // namespace

std::vector<VariantSummary> summarize_results(const std::vector<ResultRecord>& records) {
  std::vector<VariantSummary> out;
  std::vector<std::tuple<std::string, std::string, std::string>> keys;
  for (const auto& r : records) {
    auto k = std::make_tuple(r.population, r.backbone, r.variant);
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  for (const auto& [pop, backbone, variant] : keys) {
    VariantSummary s;
    s.population = pop;
    s.backbone = backbone;
    s.variant = variant;
    std::vector<double> auc, ll, rate;
    for (const auto& r : records) {
      if (r.population != pop || r.backbone != backbone || r.variant != variant) continue;
      auc.push_back(r.result.test.auc);
      ll.push_back(r.result.test.logloss);
      rate.push_back(r.result.train_samples_per_s);
      s.users = r.users;
      s.train_samples = r.train_samples;
      s.test_samples = r.test_samples;
    }
    s.seeds = static_cast<int>(auc.size());
    s.auc_mean = mean(auc);
    s.auc_std = stddev(auc);
    s.logloss_mean = mean(ll);
    s.logloss_std = stddev(ll);
    s.samples_per_s = mean(rate);
    out.push_back(s);
  }
  for (auto& s : out) {
    for (const auto& b : out) {
      if (b.population != s.population || b.backbone != s.backbone || b.variant != "base") continue;
      if (b.auc_mean > 0) s.rel_auc = (s.auc_mean / b.auc_mean - 1.0) * 100.0;
    }
  }
  return out;
}

ExperimentResult run_experiment(const ExperimentConfig& cfg) {
  if (cfg.store.empty()) throw Error(ErrorKind::Config, "experiment: no store");
  if (cfg.seeds.empty()) throw Error(ErrorKind::Config, "experiment: no seeds");
  // The store is the whole input: the dataset as ingested, every variant's records and
  // vectors.
  auto store = open_rocksdb_store(cfg.store, StoreOptions{.read_only = true});
  require_current_interests(*store);
  const BehaviorLog log = load_behavior_log(*store);
  ExperimentResult res;
  const std::vector<std::string> backbones = cfg.backbones.empty() ? backbone_names() : cfg.backbones;
  if (!cfg.out_dir.empty()) fs::create_directories(cfg.out_dir);
  const std::string json_path = cfg.out_dir.empty() ? "" : (fs::path(cfg.out_dir) / "results.json").string();

  const CtrDataset all = build_ctr_dataset(log, cfg.split);
  std::set<uint32_t> all_users(all.train.users.begin(), all.train.users.end());
  res.all_users = all_users.size();

  // The variants by name; an optional one the store does not have is skipped and said so.
  const auto variant = cfg.variant.empty() ? std::nullopt : find_variant(*store, cfg.variant);
  if (!cfg.variant.empty() && !variant)
    throw Error(ErrorKind::InvalidInput,
                fmt::format("store {} has no variant named '{}' (liber learn --variant {})",
                            cfg.store, cfg.variant, cfg.variant));
  auto optional_variant = [&](const std::string& name, const char* what) -> std::optional<Variant> {
    if (name.empty()) return std::nullopt;
    if (auto v = find_variant(*store, name)) return v;
    log_warning(fmt::format("experiment: store {} has no variant '{}' ({}): skipped", cfg.store,
                            name, what));
    res.skipped.push_back(fmt::format("{} (no variant '{}' in the store)", what, name));
    return std::nullopt;
  };
  const auto kar_variant = optional_variant(cfg.kar_variant, "KAR-style");
  const auto nocascade_variant = optional_variant(cfg.nocascade_variant, "no-cascade");

  // The population: with an LLM variant, every user whose partitions are all learned and
  // encoded; without, every user with a content vector.
  const PartitionSet ubsp_set;
  InterestTable table, content;
  std::vector<std::string> population;
  if (variant) {
    population = fully_encoded_users(*store, *variant);
    res.population_rule = fmt::format("every partition learned (variant '{}') and encoded", cfg.variant);
  }
  if (cfg.content) {
    content = load_content_table(*store, variant ? variant->partitions : ubsp_set, population);
    if (content.partitions.empty())
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("store {} has no item text vectors for its partitions: run liber "
                              "encode first (or set \"content\": false)",
                              cfg.store));
    if (!variant) {
      // No LLM: every user of the log. Content exists where a partition closed; a sample
      // with none visible (a user's first partition, a short history) gets the fuse
      // layer's no-history input, as in production.
      std::set<std::string> users;
      for (uint32_t row : all_users) users.insert(std::string(log.users.ids.key(row)));
      population.assign(users.begin(), users.end());
      res.population_rule = "every user of the log (content vectors where a partition closed, no LLM)";
    }
  }
  if (!variant && !cfg.content)
    throw Error(ErrorKind::Config, "experiment: no LLM variant and no content: nothing to test");
  if (cfg.max_users > 0 && population.size() > cfg.max_users) {
    population.resize(cfg.max_users);
    res.population_rule += fmt::format(", the first {} in store order", cfg.max_users);
  }
  if (population.empty())
    throw Error(ErrorKind::InvalidInput,
                fmt::format("store {} has no user whose partitions are all learned (variant "
                            "'{}') and encoded (run liber learn and liber encode first)",
                            cfg.store, cfg.variant));
  res.population_users = population.size();
  res.population = population;
  const std::unordered_set<std::string> in_population(population.begin(), population.end());
  auto restrict_to_population = [&](InterestTable& t) {
    InterestTable r = t;
    r.partitions.clear();
    r.rows.clear();
    const auto w = static_cast<std::size_t>(t.width());
    for (const PartitionVector& p : t.partitions) {
      if (!in_population.contains(p.user)) continue;
      PartitionVector q = p;
      q.row = static_cast<uint32_t>(r.partitions.size());
      r.partitions.push_back(q);
      r.rows.insert(r.rows.end(), t.rows.begin() + static_cast<std::ptrdiff_t>(p.row * w),
                    t.rows.begin() + static_cast<std::ptrdiff_t>((p.row + 1) * w));
    }
    t = std::move(r);
  };
  if (cfg.content) restrict_to_population(content);
  if (variant) {
    table = load_interest_table(*store, *variant, population);
    res.cost.push_back(llm_cost(*store, *variant, population));
    if (!cfg.out_dir.empty()) export_interest_table(table, fs::path(cfg.out_dir) / "vectors");
  }
  // The LLM's arms need knowledge: with no verified record in the population there is none
  // (rejected records have no vectors), and the table says so instead of training on nothing.
  const bool llm = variant && !table.partitions.empty();
  if (variant && !llm)
    res.skipped.push_back(fmt::format("the LLM arms (variant '{}' has no verified, encoded record "
                                      "in the population)",
                                      cfg.variant));
  CtrDataset pop = all;
  keep_users(pop, log, population);

  InterestTable kar;
  if (kar_variant) {
    kar = load_interest_table(*store, *kar_variant, population);
    res.cost.push_back(llm_cost(*store, *kar_variant, population));
    // Users the KAR-style variant did not reach train with the "no history" input: say how many.
    std::unordered_set<std::string> covered;
    for (const PartitionVector& p : kar.partitions) covered.insert(p.user);
    res.kar_users = covered.size();
    if (kar.partitions.empty())
      res.skipped.push_back(fmt::format("KAR-style (variant '{}' has no encoded record of the "
                                        "population: run liber encode)",
                                        cfg.kar_variant));
  }

  // The no-cascade ablation on the users both variants have.
  std::vector<std::string> subset;
  InterestTable nocascade, cascade_of_subset;
  CtrDataset sub;
  if (nocascade_variant && variant) {
    for (const auto& u : fully_encoded_users(*store, *nocascade_variant))
      if (in_population.contains(u)) subset.push_back(u);
    res.nocascade_users = subset.size();
    if (!subset.empty()) {
      nocascade = load_interest_table(*store, *nocascade_variant, subset);
      cascade_of_subset = load_interest_table(*store, *variant, subset);
      res.cost.push_back(llm_cost(*store, *nocascade_variant, subset));
      sub = all;
      keep_users(sub, log, subset);
    }
  }

  // The controls: the random one over the content partitions (all closed ones) when there
  // are content vectors, else over the LLM's; a shuffled one per knowledge source.
  const uint64_t control_seed = 20261202;
  const bool two_users = population.size() >= 2;
  InterestTable random_table, shuffled_content, shuffled_llm, both;
  if (cfg.controls) {
    random_table = random_control(cfg.content ? content : table, control_seed);
    if (two_users && cfg.content) shuffled_content = shuffled_control(content, control_seed);
    if (two_users && llm) shuffled_llm = shuffled_control(table, control_seed);
    if (!two_users) res.skipped.push_back("shuffled controls (the population has one user)");
  }
  if (cfg.content && llm) both = join_tables(content, table);

  // Every arm of the table, in its row order per backbone.
  const std::size_t n = population.size();
  const std::string rnd = cfg.controls ? "random" : "";
  std::vector<Arm> arms;
  if (cfg.all_users_baseline) arms.push_back({"all", "base", &all, res.all_users});
  arms.push_back({"liber", "base", &pop, n});
  if (cfg.controls) arms.push_back({"liber", "random", &pop, n, &random_table, "attention"});
  if (!shuffled_content.partitions.empty())
    arms.push_back({"liber", "shuffled", &pop, n, &shuffled_content, "attention"});
  if (!shuffled_llm.partitions.empty())
    arms.push_back({"liber", "shuffled-liber", &pop, n, &shuffled_llm, "attention"});
  auto controls_of = [&](bool c, bool l) {
    std::vector<std::string> out;
    if (c && !shuffled_content.partitions.empty()) out.push_back("shuffled");
    if (l && !shuffled_llm.partitions.empty()) out.push_back("shuffled-liber");
    return out;
  };
  if (cfg.content)
    arms.push_back({"liber", "content", &pop, n, &content, "attention", rnd, controls_of(true, false)});
  if (llm) {
    arms.push_back({"liber", "liber", &pop, n, &table, "attention", rnd, controls_of(false, true)});
    arms.push_back({"liber", "liber-mean", &pop, n, &table, "mean"});
  }
  if (!both.partitions.empty())
    arms.push_back({"liber", "liber+content", &pop, n, &both, "attention", rnd, controls_of(true, true)});
  if (!kar.partitions.empty()) arms.push_back({"liber", "kar", &pop, n, &kar, "attention"});
  if (!subset.empty()) {
    const std::string p = "no-cascade subset";
    arms.push_back({p, "base", &sub, subset.size()});
    arms.push_back({p, "liber", &sub, subset.size(), &cascade_of_subset, "attention"});
    arms.push_back({p, "liber-no-cascade", &sub, subset.size(), &nocascade, "attention"});
  }

  if (!cfg.arms.empty()) arms = select_arms(arms, cfg.arms);

  ItemTextTable items;  // the target's text vector, for a text query
  if (cfg.fuse.needs_item_texts()) items = load_item_text_table(*store, log);
  const RunCache runs(cfg.out_dir);
  for (const std::string& backbone : backbones) {
    for (const Arm& arm : arms) {
      CtrDataset with;  // the arm's samples with its vectors attached
      if (arm.table) {
        with = *arm.samples;
        FuseConfig fuse = cfg.fuse;
        fuse.fusion = arm.fusion;
        if (fuse.fusion == "mean") fuse.query = "item";  // the mean has no query
        attach_interests(with, log, *arm.table, fuse, &items);
      }
      const CtrDataset& data = arm.table ? with : *arm.samples;
      for (uint64_t seed : cfg.seeds) {
        ModelConfig m = cfg.models.contains(backbone) ? cfg.models.at(backbone) : ModelConfig{};
        m.backbone = backbone;
        TrainConfig t = cfg.train;
        t.seed = seed;
        FuseConfig fuse = cfg.fuse;
        fuse.fusion = arm.fusion;
        if (fuse.fusion == "mean") fuse.query = "item";
        const std::string key = run_key(arm, data, m, t, fuse, cfg.split);
        if (auto kept = runs.find(key, data.test.size())) {
          log_info(fmt::format("experiment {} / {} / {} / seed {}: reused (runs/{})", arm.population,
                               backbone, arm.label, seed, key));
          res.records.push_back(std::move(*kept));
          if (!json_path.empty()) write_results_json(res.records, json_path);
          continue;
        }
        log_info(fmt::format("experiment {} / {} / {} / seed {}", arm.population, backbone,
                             arm.label, seed));
        ResultRecord rec;
        rec.dataset = data.name;
        rec.data_note = data.description;
        rec.backbone = backbone;
        rec.variant = arm.label;
        rec.population = arm.population;
        rec.users = arm.users;
        rec.seed = seed;
        rec.train_samples = data.train.size();
        rec.valid_samples = data.valid.size();
        rec.test_samples = data.test.size();
        rec.result = train_and_evaluate(data, m, t);
        runs.put(key, rec);
        res.records.push_back(rec);
        // After every run, so a long experiment leaves its finished results behind.
        if (!json_path.empty()) write_results_json(res.records, json_path);
      }
    }
  }

  res.summary = summarize_results(res.records);
  // The intervals: every arm against the backbone alone, knowledge arms against their
  // controls, paired by seed on the same test samples.
  auto runs_of = [&](const std::string& population, const std::string& backbone,
                     const std::string& label) {
    return predictions_by_seed(res.records, population, backbone, label, cfg.seeds);
  };
  for (VariantSummary& s : res.summary) {
    if (s.variant == "base") continue;
    const Arm* arm = nullptr;
    for (const Arm& a : arms)
      if (a.population == s.population && a.label == s.variant) arm = &a;
    if (!arm) continue;
    const SampleSet& test = arm->samples->test;
    const auto model = runs_of(s.population, s.backbone, s.variant);
    auto against = [&](const std::string& label) {
      return paired_bootstrap_auc(test.labels, test.users, model,
                                  runs_of(s.population, s.backbone, label),
                                  cfg.bootstrap_resamples, control_seed);
    };
    s.vs_base = against("base");
    if (!arm->random_control.empty()) s.vs_random = against(arm->random_control);
    for (const std::string& c : arm->shuffled_controls) {
      const AucDifference d = against(c);
      if (s.vs_shuffled.resamples == 0 || d.lo < s.vs_shuffled.lo) s.vs_shuffled = d;
    }
    s.knowledge = !arm->random_control.empty() && !arm->shuffled_controls.empty() &&
                  s.vs_base.lo > 0 && s.vs_random.lo > 0 && s.vs_shuffled.lo > 0;
  }
  res.description = all.description;
  return res;
}

}  // namespace liber
