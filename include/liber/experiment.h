// The end-to-end LIBER experiment: on the same split and samples, every backbone alone and
// with each knowledge input through the fuse layer, over several seeds:
//   content        partition content vectors (item texts, no LLM)
//   liber          the LLM's interest records (the cascade variant), liber-mean its mean-
//                  fusion ablation, liber+content both inputs
//   random         control: a fixed random vector per partition (structure, no content)
//   shuffled       control: each user carries another user's content vectors;
//                  shuffled-liber the same with the LLM's vectors
//   kar            a KAR-style summary of the first behaviors (optional variant)
//   liber-no-cascade  the no-cascade ablation, on the users both variants have (optional)
// Each non-base arm's AUC difference against the backbone alone (and against the controls)
// comes with a 95% interval from a paired bootstrap over test users; a lift counts as
// knowledge only when it beats the backbone, the random and the shuffled controls. Every
// run's record is written to results.json as it goes. Presenting them is the app's part.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "liber/ctr.h"
#include "liber/data.h"
#include "liber/dataset.h"
#include "liber/metrics.h"
#include "liber/results.h"
#include "liber/synthetic.h"
#include "liber/llm.h"
#include "liber/uif.h"

namespace liber {

struct ExperimentConfig {
  // One store (liber ingest / learn / encode) holds the dataset and every variant's records
  // and vectors; the variants are named as liber learn --variant named them.
  std::string store;                      // required
  // LIBER: the cascade over the store's partitions. Empty: no LLM input (content and the
  // controls only, on every user with a closed partition).
  std::string variant = "cascade";
  std::string kar_variant;                // optional: learned with --partitions first:30
                                          // (KAR-style: the first 30 behaviors only)
  std::string nocascade_variant;          // optional: learned with --no-cascade
  std::vector<std::string> backbones;  // empty = all
  std::map<std::string, ModelConfig> models;  // per backbone; missing = ModelConfig{}
  std::vector<uint64_t> seeds = {1, 2, 3};
  TrainConfig train;            // seed is replaced by each of `seeds`
  SplitConfig split;
  // Fuse settings (fusion is set per arm). Similarity on: on the synthetic study it took
  // content from 13% to 82% of the oracle's gain (docs/results.md).
  FuseConfig fuse = [] {
    FuseConfig f;
    f.similarity = true;
    return f;
  }();
  bool content = true;          // the content arms (liber encode makes the item text vectors)
  bool controls = true;         // the random and shuffled controls
  // Which arms to train, by label (base, random, shuffled, content, liber, ...): empty = all
  // the store allows. The backbone alone ("base") always runs, as every difference is taken
  // against it; a knowledge arm needs its controls listed too.
  std::vector<std::string> arms;
  int bootstrap_resamples = 1000;
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
  // Paired bootstrap over test users (run_experiment fills them; resamples 0 = not computed).
  AucDifference vs_base;        // AUC - the backbone alone's
  AucDifference vs_random;      // AUC - the random control's (knowledge arms)
  AucDifference vs_shuffled;    // AUC - the worst-beaten shuffled control's (knowledge arms)
  // A knowledge arm whose three intervals lie above zero: the lift comes from the knowledge,
  // not from the structure of the input.
  bool knowledge = false;
};

struct LlmCostSummary {
  std::string variant;  // its name
  uint64_t records = 0, calls = 0, prompt_tokens = 0, completion_tokens = 0, behaviors = 0;
  // The verifier's verdicts on the ok records: only verified ones are knowledge.
  uint64_t ok = 0, verified = 0, rejected = 0;
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
  std::string population_rule;           // how the population was chosen, for the report
  std::vector<std::string> population;   // its users (external ids)
  std::size_t kar_users = 0;             // population users with a KAR-style summary vector
  std::vector<std::string> skipped;      // optional variants the store does not have
  std::string description;               // the dataset's provenance
};

// Reads everything from config.store (the dataset as ingested, records, vectors): the
// store is the experiment's whole input.
ExperimentResult run_experiment(const ExperimentConfig& config);

// ---- The synthetic study: the experiment where the answer is known ---------------------
// Generates the dataset of liber/synthetic.h, ingests it, encodes its item texts, runs the
// experiment (content and the controls, no LLM) and beside it two arms the experiment
// cannot have: the oracle (the backbone given the true interest match as a feature: what
// any input could add at most) and, marked as an upper bound and never a result, a leaky
// diagnostic whose partition text states the like rate of the user's next 50 behaviors.
struct SyntheticStudyConfig {
  SyntheticConfig data;
  std::size_t partition_count = 20;  // the partition rule's K
  ExperimentConfig experiment;       // the study sets store, variant (none) and out_dir
  std::string dir;                   // data/, store/ and results/ go here (required)
  bool leaky = true;
};

struct SyntheticStudyResult {
  ExperimentResult experiment;
  std::vector<VariantSummary> extra;          // "oracle" and "leaky (upper bound)" rows
  std::map<std::string, double> recovered;    // per backbone: content gain / oracle gain
};

// Reuses what `dir` already holds (the data, the ingested store, the vectors).
SyntheticStudyResult run_synthetic_study(const SyntheticStudyConfig& config, LlmEngine& encoder);

// Aggregates records by (population, backbone, variant): mean, sample std, relative AUC
// improvement over the same population's "base" variant.
std::vector<VariantSummary> summarize_results(const std::vector<ResultRecord>& records);

}  // namespace liber
