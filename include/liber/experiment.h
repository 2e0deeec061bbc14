// The end-to-end LIBER experiment: on the same split and samples, every backbone alone and
// with the LIBER input, the fusion ablation (attention vs mean), a KAR-style baseline (one
// summary per user from the first behaviors) and the no-cascade ablation, each over several
// seeds: every run's record (also written to results.json as it goes), their summary and the
// LLM cost of the inputs. Presenting them (tables, the chart) is the app's part.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "liber/ctr.h"
#include "liber/data.h"
#include "liber/dataset.h"
#include "liber/results.h"
#include "liber/uif.h"

namespace liber {

struct ExperimentConfig {
  // One store (liber ingest / learn / encode) holds the dataset and every variant's records
  // and vectors; the variants are named as liber learn --variant named them.
  std::string store;                      // required
  std::string variant = "cascade";        // LIBER: the cascade over the store's partitions
  std::string kar_variant;                // optional: learned with --partitions first:30
                                          // (KAR-style: the first 30 behaviors only)
  std::string nocascade_variant;          // optional: learned with --no-cascade
  std::vector<std::string> backbones;  // empty = all
  std::map<std::string, ModelConfig> models;  // per backbone; missing = ModelConfig{}
  std::vector<uint64_t> seeds = {1, 2, 3};
  TrainConfig train;            // seed is replaced by each of `seeds`
  SplitConfig split;
  FuseConfig fuse;              // fuse settings; fusion is set per variant
  bool all_users_baseline = true;  // also each backbone alone on every user of the log
  std::size_t max_users = 0;    // cap on the LIBER population (0 = every fully encoded user)
  std::string out_dir;          // results.json (after every run) and vectors/ (empty = none)
};

// One (population, backbone, variant) over the seeds.
struct VariantSummary {
  std::string population;  // "all", "liber" (fully encoded users), "no-cascade subset"
  std::size_t users = 0, train_samples = 0, test_samples = 0;
  std::string backbone, variant;
  int seeds = 0;
  double auc_mean = 0, auc_std = 0, logloss_mean = 0, logloss_std = 0;
  double samples_per_s = 0;     // mean training throughput
  double rel_auc = 0;           // (auc_mean / base auc_mean - 1) * 100, same population
  bool real_lift = false;       // auc_mean - base mean > auc_std + base std (>= 2 seeds each)
};

struct LlmCostSummary {
  std::string variant;  // its name
  uint64_t records = 0, calls = 0, prompt_tokens = 0, completion_tokens = 0, behaviors = 0;
  double tokens_per_1k_behaviors = 0;
  // From the stored learn runs (liber learn stores one report per run).
  int runs = 0;
  double wall_s = 0;
  uint64_t naive_prompt_tokens = 0, run_prompt_tokens = 0;
};

struct ExperimentResult {
  std::vector<ResultRecord> records;     // every training run
  std::vector<VariantSummary> summary;   // mean +- std per (population, backbone, variant)
  std::vector<LlmCostSummary> cost;      // one per variant used
  std::size_t population_users = 0, nocascade_users = 0, all_users = 0;
  std::size_t kar_users = 0;             // population users with a KAR-style summary vector
  std::vector<std::string> skipped;      // optional variants the store does not have
  std::string description;               // the dataset's provenance
};

// Reads everything from config.store (the dataset as ingested, records, vectors): the
// store is the experiment's whole input.
ExperimentResult run_experiment(const ExperimentConfig& config);

// Aggregates records by (population, backbone, variant): mean, sample std, relative AUC
// improvement over the same population's "base" variant.
std::vector<VariantSummary> summarize_results(const std::vector<ResultRecord>& records);

}  // namespace liber
