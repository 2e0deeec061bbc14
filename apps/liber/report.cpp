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


namespace {

// "+0.0123 [+0.0050, +0.0190]" (AUC points), or "—" when not computed.
std::string interval(const AucDifference& d) {
  if (d.resamples == 0) return "—";
  return fmt::format("{:+.4f} [{:+.4f}, {:+.4f}]", d.estimate, d.lo, d.hi);
}

const VariantSummary* base_of(const ExperimentResult& r, const VariantSummary& s) {
  for (const auto& b : r.summary)
    if (b.population == s.population && b.backbone == s.backbone && b.variant == "base") return &b;
  return nullptr;
}

}  // namespace

std::string experiment_table(const ExperimentResult& r) {
  std::string md;
  if (!r.population_rule.empty())
    md += fmt::format("LIBER population: {} users ({}).\n\n", r.population_users, r.population_rule);
  md += "| population | users | backbone | variant | AUC (mean ± std) | LogLoss (mean ± std) | "
        "rel. AUC | ΔAUC vs base [95% CI] | vs random | vs shuffled | knowledge | "
        "train samples/s (× base) | seeds |\n"
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|:---:|---:|---:|\n";
  for (const auto& s : r.summary) {
    const bool base = s.variant == "base";
    const VariantSummary* b = base_of(r, s);
    const std::string speed =
        base || !b || b->samples_per_s <= 0
            ? fmt::format("{:.0f}", s.samples_per_s)
            : fmt::format("{:.0f} ({:.2f}×)", s.samples_per_s, s.samples_per_s / b->samples_per_s);
    const bool judged = s.vs_random.resamples > 0 && s.vs_shuffled.resamples > 0;
    md += fmt::format("| {} | {} | {} | {} | {:.4f} ± {:.4f} | {:.4f} ± {:.4f} | {} | {} | {} | {} | {} | {} | {} |\n",
                      s.population, s.users, s.backbone, s.variant, s.auc_mean, s.auc_std,
                      s.logloss_mean, s.logloss_std,
                      base ? std::string("—") : fmt::format("{:+.2f}%", s.rel_auc),
                      base ? std::string("—") : interval(s.vs_base), interval(s.vs_random),
                      interval(s.vs_shuffled), judged ? (s.knowledge ? "yes" : "no") : "—", speed,
                      s.seeds);
  }
  md += "\nIntervals: the AUC difference (mean over the seeds' paired runs) with a 95% interval "
        "from a paired bootstrap over test users. Knowledge: the interval against the backbone "
        "alone, the random control (a fixed random vector per partition) and the shuffled "
        "control(s) (another user's vectors) all lie above zero.\n";
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


std::string synthetic_table(const SyntheticStudyConfig& c, const SyntheticStudyResult& r) {
  std::string md = fmt::format(
      "Synthetic data (liber synthetic): {} users x {} behaviors, {} items, {} topics visible "
      "only in item titles, interest drifts every ~{} behaviors; like {:.0f}% on the current "
      "topic, {:.0f}% otherwise. Partitions of K = {}. Fuse query: {}{}{}.\n\n",
      c.data.users, c.data.events_per_user, c.data.items, c.data.topics, c.data.mean_segment,
      100 * c.data.like_match, 100 * c.data.like_other, c.partition_count, c.experiment.fuse.query,
      c.experiment.fuse.interaction ? ", with the pooled * query interaction" : "",
      c.experiment.fuse.similarity ? ", with the target-to-partition text similarities" : "");
  md += experiment_table(r.experiment);
  md += "\n| backbone | arm | AUC (mean ± std) | rel. AUC | ΔAUC vs base [95% CI] |\n"
        "|---|---|---:|---:|---:|\n";
  for (const auto& s : r.extra)
    md += fmt::format("| {} | {} | {:.4f} ± {:.4f} | {:+.2f}% | {} |\n", s.backbone, s.variant,
                      s.auc_mean, s.auc_std, s.rel_auc, interval(s.vs_base));
  md += "\nOracle: the backbone given the true interest match as a feature (the most any input "
        "can add). Leaky: partition text that states the like rate of the next 50 behaviors, an "
        "upper bound of the fuse path and never a result.\n\n| backbone | content gain / "
        "oracle gain |\n|---|---:|\n";
  for (const auto& [backbone, share] : r.recovered)
    md += fmt::format("| {} | {:.0f}% |\n", backbone, 100 * share);
  return md;
}

// The chart: the AUC difference against the backbone alone with its 95% interval, by
// backbone (clusters) and variant (bars), every arm that has one.
void write_auc_chart(const std::vector<VariantSummary>& summary, const fs::path& dir) {
  std::vector<std::string> backbones, variants;
  auto name = [](const VariantSummary& s) {
    return s.population == "liber" ? s.variant : s.variant + " (" + s.population + ")";
  };
  for (const auto& s : summary) {
    if (s.vs_base.resamples == 0) continue;
    if (std::find(backbones.begin(), backbones.end(), s.backbone) == backbones.end())
      backbones.push_back(s.backbone);
    if (std::find(variants.begin(), variants.end(), name(s)) == variants.end())
      variants.push_back(name(s));
  }
  if (variants.empty()) return;
  const fs::path data = dir / "auc_chart.dat";
  double lo = 0, hi = 0;
  {
    std::ofstream out(data);
    out << "backbone";
    for (const auto& v : variants) out << "\t\"" << v << "\"\t\"lo\"\t\"hi\"";
    out << "\n";
    for (const auto& b : backbones) {
      out << b;
      for (const auto& v : variants) {
        const VariantSummary* hit = nullptr;
        for (const auto& s : summary)
          if (s.backbone == b && name(s) == v && s.vs_base.resamples > 0) hit = &s;
        if (hit) {
          out << fmt::format("\t{:.5f}\t{:.5f}\t{:.5f}", hit->vs_base.estimate, hit->vs_base.lo,
                             hit->vs_base.hi);
          lo = std::min(lo, hit->vs_base.lo);
          hi = std::max(hi, hit->vs_base.hi);
        } else {
          out << "\t-\t-\t-";
        }
      }
      out << "\n";
    }
  }
  const double pad = std::max(0.002, 0.1 * (hi - lo));
  const fs::path script = dir / "auc_chart.gp";
  {
    std::ofstream gp(script);
    gp << "set terminal pngcairo size 1100,600 font 'sans,10'\n"
       << "set output '" << (dir / "auc.png").string() << "'\n"
       << "set title 'Test AUC minus the backbone alone (mean over seeds, 95% paired bootstrap "
          "interval over users)'\n"
       << "set ylabel 'delta AUC'\n"
       << fmt::format("set yrange [{:.4f}:{:.4f}]\n", lo - pad, hi + pad)
       << "set style data histogram\nset style histogram errorbars gap 2 lw 1\n"
       << "set style fill solid 0.8 border -1\nset key outside right top\n"
       << "set grid ytics\nset xzeroaxis lt -1\nset datafile missing '-'\n"
       << "plot ";
    for (std::size_t i = 0; i < variants.size(); ++i) {
      if (i) gp << ", \\\n     ";
      gp << fmt::format("'{}' using {}:{}:{}:xtic(1) title columnheader({})", data.string(),
                        2 + 3 * i, 3 + 3 * i, 4 + 3 * i, 2 + 3 * i);
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
