// `run_experiment`: backbone x variant x seed on one split, then the table, the chart and
// the LLM cost of the inputs. See include/liber/experiment.h.
#include "liber/experiment.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_set>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/store.h"
#include "liber/uif.h"
#include "liber/uil.h"

namespace liber {

namespace {

namespace fs = std::filesystem;

std::string quote_shell(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

LlmCostSummary llm_cost(Store& store, const std::vector<std::string>& users) {
  LlmCostSummary c;
  c.store = store.path().string();
  const std::unordered_set<std::string> only(users.begin(), users.end());
  for_each_interest(store, [&](const InterestRecord& r) {
    if (!only.empty() && !only.contains(r.user)) return;
    ++c.records;
    c.calls += static_cast<uint64_t>(std::max(0, r.attempts));
    c.prompt_tokens += static_cast<uint64_t>(std::max(0, r.prompt_tokens));
    c.completion_tokens += static_cast<uint64_t>(std::max(0, r.completion_tokens));
    c.behaviors += r.behaviors;
  });
  if (c.behaviors > 0)
    c.tokens_per_1k_behaviors =
        1000.0 * static_cast<double>(c.prompt_tokens + c.completion_tokens) / c.behaviors;
  for (const CostReport& run : read_learn_runs(store)) {
    ++c.runs;
    c.wall_s += run.wall_s;
    c.naive_prompt_tokens += run.naive_prompt_tokens;
    c.run_prompt_tokens += run.interest_prompt_tokens;
  }
  return c;
}

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

// The chart: AUC by backbone (clusters) and variant (bars, +- std), LIBER population.
void write_chart(const std::vector<VariantSummary>& summary, const fs::path& dir) {
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

std::string table_markdown(const ExperimentResult& r) {
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
    md += "\n| LLM inputs (store) | records | calls | prompt tokens | completion tokens | "
          "behaviors | tokens / 1k behaviors | stored runs | wall time | naive re-summarisation "
          "prompt tokens (stored runs) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& c : r.cost)
      md += fmt::format("| {} | {} | {} | {} | {} | {} | {:.0f} | {} | {:.0f} s | {} vs {} ({:.2f}x) |\n",
                        c.store, c.records, c.calls, c.prompt_tokens, c.completion_tokens,
                        c.behaviors, c.tokens_per_1k_behaviors, c.runs, c.wall_s,
                        c.naive_prompt_tokens, c.run_prompt_tokens,
                        c.run_prompt_tokens ? static_cast<double>(c.naive_prompt_tokens) /
                                                  static_cast<double>(c.run_prompt_tokens)
                                            : 0.0);
  }
  return md;
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
      // One seed has no spread to exceed: never call it real.
      s.real_lift = s.seeds >= 2 && b.seeds >= 2 && s.auc_mean - b.auc_mean > s.auc_std + b.auc_std;
    }
  }
  return out;
}

ExperimentResult run_experiment(const BehaviorLog& log, const ExperimentConfig& cfg) {
  if (cfg.store.empty()) throw Error(ErrorKind::Config, "experiment: no store (the UIL cascade's)");
  if (cfg.seeds.empty()) throw Error(ErrorKind::Config, "experiment: no seeds");
  ExperimentResult res;
  const std::vector<std::string> backbones = cfg.backbones.empty() ? backbone_names() : cfg.backbones;
  if (!cfg.out_dir.empty()) fs::create_directories(cfg.out_dir);
  const std::string json_path = cfg.out_dir.empty() ? "" : (fs::path(cfg.out_dir) / "results.json").string();

  const CtrDataset all = build_ctr_dataset(log, cfg.split);
  std::set<uint32_t> all_users(all.train.users.begin(), all.train.users.end());
  res.all_users = all_users.size();

  auto train = [&](const CtrDataset& data, const std::string& population, std::size_t users,
                   const std::string& backbone, const std::string& variant) {
    for (uint64_t seed : cfg.seeds) {
      ModelConfig m = cfg.models.contains(backbone) ? cfg.models.at(backbone) : ModelConfig{};
      m.backbone = backbone;
      TrainConfig t = cfg.train;
      t.seed = seed;
      std::fprintf(stderr, "liber: experiment %s / %s / %s / seed %llu\n", population.c_str(),
                   backbone.c_str(), variant.c_str(), static_cast<unsigned long long>(seed));
      ResultRecord rec;
      rec.dataset = data.name;
      rec.data_note = data.description;
      rec.backbone = backbone;
      rec.variant = variant;
      rec.population = population;
      rec.users = users;
      rec.seed = seed;
      rec.train_samples = data.train.size();
      rec.valid_samples = data.valid.size();
      rec.test_samples = data.test.size();
      rec.result = train_and_evaluate(data, m, t);
      res.records.push_back(rec);
      // After every run, so a long experiment leaves its finished results behind.
      if (!json_path.empty()) write_results_json(res.records, json_path);
    }
  };
  auto with_interests = [&](const CtrDataset& base, const InterestTable& table,
                            const std::string& fusion) {
    CtrDataset d = base;
    InterestInput in = cfg.interests;
    in.fusion = fusion;
    attach_interests(d, log, table, in);
    return d;
  };

  // The population: every user whose partitions are all learned and encoded.
  auto store = open_rocksdb_store(cfg.store, StoreOptions{.read_only = true});
  std::vector<std::string> population = fully_encoded_users(*store);
  if (cfg.max_users > 0 && population.size() > cfg.max_users) population.resize(cfg.max_users);
  if (population.empty())
    throw Error(ErrorKind::InvalidInput,
                fmt::format("store {} has no user whose partitions are all learned and encoded "
                            "(run liber learn and liber encode first)", cfg.store));
  res.population_users = population.size();
  const InterestTable table = load_interest_table(*store, population);
  res.cost.push_back(llm_cost(*store, population));
  if (!cfg.out_dir.empty()) export_interest_table(table, fs::path(cfg.out_dir) / "vectors");

  CtrDataset pop = all;
  keep_users(pop, log, population);
  // Optional stores that were not built are skipped, said on stderr and in the table.
  auto present = [&](const std::string& path, const char* what) {
    if (path.empty()) return false;
    if (fs::exists(path)) return true;
    std::fprintf(stderr, "liber: experiment: no %s store at %s: that variant is skipped\n", what,
                 path.c_str());
    res.skipped.push_back(fmt::format("{} (no store at {})", what, path));
    return false;
  };
  InterestTable kar;
  if (present(cfg.kar_store, "KAR-style")) {
    auto ks = open_rocksdb_store(cfg.kar_store, StoreOptions{.read_only = true});
    kar = load_interest_table(*ks, population);
    res.cost.push_back(llm_cost(*ks, population));
    // A KAR store built for fewer users leaves the others without the input: say how many.
    std::unordered_set<std::string> covered;
    for (const PartitionVector& p : kar.partitions) covered.insert(p.user);
    res.kar_users = covered.size();
  }

  for (const std::string& b : backbones) {
    if (cfg.all_users_baseline) train(all, "all", res.all_users, b, "base");
    train(pop, "liber", population.size(), b, "base");
    train(with_interests(pop, table, "attention"), "liber", population.size(), b, "liber");
    train(with_interests(pop, table, "mean"), "liber", population.size(), b, "liber-mean");
    if (!kar.partitions.empty())
      train(with_interests(pop, kar, "attention"), "liber", population.size(), b, "kar");
  }

  if (present(cfg.nocascade_store, "no-cascade")) {
    auto ns = open_rocksdb_store(cfg.nocascade_store, StoreOptions{.read_only = true});
    const std::unordered_set<std::string> in_pop(population.begin(), population.end());
    std::vector<std::string> subset;
    for (const auto& u : fully_encoded_users(*ns))
      if (in_pop.contains(u)) subset.push_back(u);
    res.nocascade_users = subset.size();
    if (!subset.empty()) {
      const InterestTable nocascade = load_interest_table(*ns, subset);
      const InterestTable cascade = load_interest_table(*store, subset);
      res.cost.push_back(llm_cost(*ns, subset));
      CtrDataset sub = all;
      keep_users(sub, log, subset);
      const std::string p = "no-cascade subset";
      for (const std::string& b : backbones) {
        train(sub, p, subset.size(), b, "base");
        train(with_interests(sub, cascade, "attention"), p, subset.size(), b, "liber");
        train(with_interests(sub, nocascade, "attention"), p, subset.size(), b, "liber-no-cascade");
      }
    }
  }

  res.summary = summarize_results(res.records);
  res.markdown = table_markdown(res);
  if (!cfg.out_dir.empty()) {
    std::ofstream md(fs::path(cfg.out_dir) / "results.md");
    md << all.description << "\n\n" << res.markdown;
    if (cfg.chart) write_chart(res.summary, cfg.out_dir);
  }
  return res;
}

}  // namespace liber
