// The end-to-end LIBER experiment: on the same split and samples, every backbone alone and
// with the LIBER input, the fusion ablation (attention vs mean), a KAR-style baseline (one
// summary per user from the first behaviors) and the no-cascade ablation, each over several
// seeds; one Markdown table, JSON records, a PNG chart and the LLM cost of the inputs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "liber/ctr.h"
#include "liber/data.h"
#include "liber/dataset.h"
#include "liber/results.h"

namespace liber {

struct ExperimentConfig {
  // State stores built from the same log (liber ingest / learn / encode):
  std::string store;            // cascade interest records + vectors (required)
  std::string kar_store;        // optional: ingested with K = 30, learned with
                                // --max-partitions 1 (KAR-style: first 30 behaviors only)
  std::string nocascade_store;  // optional: same partitions, learned with --no-cascade
  std::vector<std::string> backbones;  // empty = all
  std::map<std::string, ModelConfig> models;  // per backbone; missing = ModelConfig{}
  std::vector<uint64_t> seeds = {1, 2, 3};
  TrainConfig train;            // seed is replaced by each of `seeds`
  SplitConfig split;
  InterestInput interests;      // fuse settings; fusion is set per variant
  bool all_users_baseline = true;  // also each backbone alone on every user of the log
  std::size_t max_users = 0;    // cap on the LIBER population (0 = every fully encoded user)
  std::string out_dir;          // results.json, results.md, auc.png, vectors/ (empty = none)
  bool chart = true;
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
  std::string store;
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
  std::vector<LlmCostSummary> cost;      // one per store used
  std::size_t population_users = 0, nocascade_users = 0, all_users = 0;
  std::size_t kar_users = 0;             // population users with a KAR-style summary vector
  std::vector<std::string> skipped;      // variants whose optional store is missing
  std::string markdown;                  // the table and the cost
};

ExperimentResult run_experiment(const BehaviorLog& log, const ExperimentConfig& config);

// Aggregates records by (population, backbone, variant): mean, sample std, relative AUC
// improvement over the same population's "base" variant.
std::vector<VariantSummary> summarize_results(const std::vector<ResultRecord>& records);

}  // namespace liber
