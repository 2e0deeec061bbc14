// How the CLI presents results: Markdown tables and the AUC chart.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "liber/experiment.h"
#include "liber/results.h"

namespace liber::cli {

// | dataset | backbone | variant | AUC | LogLoss | gAUC | epochs (best) | train samples/s |
std::string results_table(const std::vector<ResultRecord>& records);
// The experiment's table (population, backbone, variant, AUC and LogLoss mean +- std, lift)
// and the LLM cost of its inputs.
std::string experiment_table(const ExperimentResult& result);
// The synthetic study: its settings, the experiment's table, the oracle and leaky rows and
// the share of the oracle's gain the content input recovers.
std::string synthetic_table(const SyntheticStudyConfig& config, const SyntheticStudyResult& result);
// <dir>/auc.png (and the gnuplot data and script beside it): AUC by backbone and variant.
// Throws Error(Config) when gnuplot cannot draw it.
void write_auc_chart(const std::vector<VariantSummary>& summary, const std::filesystem::path& dir);

}  // namespace liber::cli
