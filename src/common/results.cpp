#include "liber/results.h"

#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"

namespace liber {

namespace {

nlohmann::json record_json(const ResultRecord& r) {
  const TrainResult& t = r.result;
  return {{"dataset", r.dataset},
          {"data_note", r.data_note},
          {"backbone", r.backbone},
          {"variant", r.variant},
          {"population", r.population},
          {"users", r.users},
          {"auc", t.test.auc},
          {"logloss", t.test.logloss},
          {"gauc", t.test.gauc},
          {"valid_auc", t.valid.auc},
          {"valid_logloss", t.valid.logloss},
          {"valid_gauc", t.valid.gauc},
          {"epochs", t.epochs},
          {"best_epoch", t.best_epoch},
          {"train_samples_per_s", t.train_samples_per_s},
          {"train_seconds", t.train_seconds},
          {"threads", t.threads},
          {"seed", r.seed},
          {"train_samples", r.train_samples},
          {"valid_samples", r.valid_samples},
          {"test_samples", r.test_samples}};
}

}  // namespace

std::string results_json(const std::vector<ResultRecord>& records) {
  nlohmann::json arr = nlohmann::json::array();
  for (const ResultRecord& r : records) arr.push_back(record_json(r));
  return arr.dump(2);
}

std::vector<std::vector<float>> predictions_by_seed(const std::vector<ResultRecord>& records,
                                                    std::string_view population,
                                                    std::string_view backbone,
                                                    std::string_view variant,
                                                    const std::vector<uint64_t>& seeds) {
  std::vector<std::vector<float>> out;
  for (uint64_t seed : seeds)
    for (const ResultRecord& r : records)
      if (r.population == population && r.backbone == backbone && r.variant == variant && r.seed == seed)
        out.push_back(r.result.test_predictions);
  return out;
}

std::string result_record_json(const ResultRecord& record) { return record_json(record).dump(); }

ResultRecord parse_result_record(std::string_view text, std::string_view where) {
  ResultRecord r;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    TrainResult& t = r.result;
    j.at("dataset").get_to(r.dataset);
    j.at("data_note").get_to(r.data_note);
    j.at("backbone").get_to(r.backbone);
    t.backbone = r.backbone;
    j.at("variant").get_to(r.variant);
    j.at("population").get_to(r.population);
    j.at("users").get_to(r.users);
    j.at("auc").get_to(t.test.auc);
    j.at("logloss").get_to(t.test.logloss);
    j.at("gauc").get_to(t.test.gauc);
    j.at("valid_auc").get_to(t.valid.auc);
    if (j.contains("valid_logloss")) j.at("valid_logloss").get_to(t.valid.logloss);
    if (j.contains("valid_gauc")) j.at("valid_gauc").get_to(t.valid.gauc);
    j.at("epochs").get_to(t.epochs);
    j.at("best_epoch").get_to(t.best_epoch);
    j.at("train_samples_per_s").get_to(t.train_samples_per_s);
    j.at("train_seconds").get_to(t.train_seconds);
    j.at("threads").get_to(t.threads);
    j.at("seed").get_to(r.seed);
    j.at("train_samples").get_to(r.train_samples);
    j.at("valid_samples").get_to(r.valid_samples);
    j.at("test_samples").get_to(r.test_samples);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::InvalidInput, fmt::format("{}: not a result record: {}", where, e.what()));
  }
  return r;
}

void write_results_json(const std::vector<ResultRecord>& records, const std::string& path) {
  std::ofstream out(path);
  out << results_json(records) << "\n";
  if (!out) throw Error(ErrorKind::Io, fmt::format("cannot write results to {}", path));
}

}  // namespace liber
