// Experiment results: one record per (dataset, backbone, variant, seed), written as JSON.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "liber/ctr.h"

namespace liber {

struct ResultRecord {
  std::string dataset;       // e.g. "ml-1m"
  std::string data_note;     // provenance, e.g. "ratings of users 1-2999 only"
  std::string backbone;
  std::string variant = "base";  // base | liber | liber-mean | kar | liber-no-cascade
  std::string population = "all";  // which users' samples (liber/experiment.h)
  std::size_t users = 0;
  TrainResult result;
  uint64_t seed = 0;
  std::size_t train_samples = 0, valid_samples = 0, test_samples = 0;
};

// JSON array of records (one object each, flat fields: dataset, backbone, variant, auc,
// logloss, gauc, epochs, best_epoch, train_samples_per_s, ...).
std::string results_json(const std::vector<ResultRecord>& records);
void write_results_json(const std::vector<ResultRecord>& records, const std::string& path);
// The test predictions of the runs of (population, backbone, variant), one per seed in
// `seeds` order (a seed without a run is left out): the paired bootstrap's input.
std::vector<std::vector<float>> predictions_by_seed(const std::vector<ResultRecord>& records,
                                                    std::string_view population,
                                                    std::string_view backbone,
                                                    std::string_view variant,
                                                    const std::vector<uint64_t>& seeds);

// One record as that JSON object, and back (test predictions are not in it). Throws
// Error(InvalidInput) naming `where` for a malformed object.
std::string result_record_json(const ResultRecord& record);
ResultRecord parse_result_record(std::string_view json, std::string_view where);

}  // namespace liber
