// Presentation of results for the CLI: Markdown tables and the AUC chart (gnuplot). The
// library returns the numbers (liber/experiment.h, liber/results.h); this is how liber
// shows them.
#include "report.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <fmt/format.h>

#include "liber/error.h"

namespace liber::cli {

namespace {

namespace fs = std::filesystem;

std::string quote_shell(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string results_table(const std::vector<ResultRecord>& records) {
  std::string md =
      "| dataset | backbone | variant | AUC | LogLoss | gAUC | epochs (best) | train samples/s |\n"
      "|---|---|---|---:|---:|---:|---:|---:|\n";
  for (const ResultRecord& r : records) {
    const TrainResult& t = r.result;
    md += fmt::format("| {} | {} | {} | {:.4f} | {:.4f} | {:.4f} | {} ({}) | {:.0f} |\n",
                      r.dataset, r.backbone, r.variant, t.test.auc, t.test.logloss,
                      t.test.gauc, t.epochs, t.best_epoch, t.train_samples_per_s);
  }
  return md;
}


std::string experiment_table(const ExperimentResult& r) {
  std::string md;
  md += "| population | users | backbone | variant | AUC (mean ± std) | LogLoss (mean ± std) | "
        "rel. AUC impr. | lift > spread | train samples/s | seeds |\n"
        "|---|---:|---|---|---:|---:|---:|:---:|---:|---:|\n";
  for (const auto& s : r.summary) {
    const bool base = s.variant == "base";
    md += fmt::format("| {} | {} | {} | {} | {:.4f} ± {:.4f} | {:.4f} ± {:.4f} | {} | {} | {:.0f} | {} |\n",
                      s.population, s.users, s.backbone, s.variant, s.auc_mean, s.auc_std,
                      s.logloss_mean, s.logloss_std,
                      base ? std::string("—") : fmt::format("{:+.2f}%", s.rel_auc),
                      base ? "—" : (s.real_lift ? "yes" : "no"), s.samples_per_s, s.seeds);
  }
  md += "\nLift > spread: the variant's mean AUC exceeds the same population's backbone alone "
        "by more than the sum of both standard deviations.\n";
  if (r.kar_users > 0)
    md += fmt::format("KAR-style: {} of the {} population users have a summary vector; the "
                      "others train with the \"no history\" input.\n",
                      r.kar_users, r.population_users);
  for (const auto& s : r.skipped) md += "Skipped: " + s + ".\n";
  if (!r.cost.empty()) {
    md += "\n| LLM inputs (variant) | records | calls | prompt tokens | completion tokens | "
          "behaviors | tokens / 1k behaviors | stored runs | wall time | naive re-summarisation "
          "prompt tokens (stored runs) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& c : r.cost)
      md += fmt::format("| {} | {} | {} | {} | {} | {} | {:.0f} | {} | {:.0f} s | {} vs {} ({:.2f}x) |\n",
                        c.variant, c.records, c.calls, c.prompt_tokens, c.completion_tokens,
                        c.behaviors, c.tokens_per_1k_behaviors, c.runs, c.wall_s,
                        c.naive_prompt_tokens, c.run_prompt_tokens,
                        c.run_prompt_tokens ? static_cast<double>(c.naive_prompt_tokens) /
                                                  static_cast<double>(c.run_prompt_tokens)
                                            : 0.0);
  }
  return md;
}


// The chart: AUC by backbone (clusters) and variant (bars, +- std), LIBER population.
void write_auc_chart(const std::vector<VariantSummary>& summary, const fs::path& dir) {
  std::vector<std::string> backbones, variants;
  // Bars are variants of the LIBER population; other populations' variants are their own
  // bars, named "variant (population)".
  for (const auto& s : summary) {
    if (std::find(backbones.begin(), backbones.end(), s.backbone) == backbones.end())
      backbones.push_back(s.backbone);
    const std::string v = s.population == "liber" ? s.variant : s.variant + " (" + s.population + ")";
    if (std::find(variants.begin(), variants.end(), v) == variants.end()) variants.push_back(v);
  }
  const fs::path data = dir / "auc_chart.dat";
  {
    std::ofstream out(data);
    out << "backbone";
    for (const auto& v : variants) out << "\t\"" << v << "\"\t\"" << v << " std\"";
    out << "\n";
    for (const auto& b : backbones) {
      out << b;
      for (const auto& v : variants) {
        const VariantSummary* hit = nullptr;
        for (const auto& s : summary) {
          const std::string name =
              s.population == "liber" ? s.variant : s.variant + " (" + s.population + ")";
          if (s.backbone == b && name == v) hit = &s;
        }
        if (hit) out << fmt::format("\t{:.5f}\t{:.5f}", hit->auc_mean, hit->auc_std);
        else out << "\t-\t-";
      }
      out << "\n";
    }
  }
  double lo = 1, hi = 0;
  for (const auto& s : summary) {
    lo = std::min(lo, s.auc_mean - s.auc_std);
    hi = std::max(hi, s.auc_mean + s.auc_std);
  }
  const fs::path script = dir / "auc_chart.gp";
  {
    std::ofstream gp(script);
    gp << "set terminal pngcairo size 1100,600 font 'sans,10'\n"
       << "set output '" << (dir / "auc.png").string() << "'\n"
       << "set title 'Test AUC by backbone and variant (mean +- std over seeds)'\n"
       << "set ylabel 'AUC'\n"
       << fmt::format("set yrange [{:.4f}:{:.4f}]\n", lo - 0.01, hi + 0.005)
       << "set style data histogram\nset style histogram errorbars gap 2 lw 1\n"
       << "set style fill solid 0.8 border -1\nset key outside right top\n"
       << "set grid ytics\nset datafile missing '-'\n"
       << "plot ";
    for (std::size_t i = 0; i < variants.size(); ++i) {
      if (i) gp << ", \\\n     ";
      gp << fmt::format("'{}' using {}:{}:xtic(1) title columnheader({})", data.string(), 2 + 2 * i,
                        3 + 2 * i, 2 + 2 * i);
    }
    gp << "\n";
  }
  const std::string cmd = "gnuplot " + quote_shell(script.string()) + " 2>&1";
  if (std::system(cmd.c_str()) != 0 || !fs::exists(dir / "auc.png"))
    throw Error(ErrorKind::Config,
                fmt::format("gnuplot could not draw {} (is gnuplot-nox installed? scripts/setup.sh "
                            "installs it); the data is in {}",
                            (dir / "auc.png").string(), data.string()));
}

}  // namespace liber::cli
