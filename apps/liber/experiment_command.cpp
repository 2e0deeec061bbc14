// `liber experiment`: each backbone alone and with LIBER (and the ablations) over seeds, on
// the stores that `liber ingest / learn / encode` built; see include/liber/experiment.h.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli.h"
#include "report.h"
#include "liber/ctr.h"
#include "liber/error.h"
#include "liber/experiment.h"

namespace liber::cli {

namespace {

struct ExperimentFlags {
  StoreOnly store_only;
  int history_length = 10;
  std::string config_path;
  ExperimentConfig config;
  std::vector<std::string> backbones;
  std::vector<uint64_t> seeds;
  int threads = 0;
  bool no_progress = false;
  bool no_chart = false;
  std::string variant, kar_variant, nocascade_variant;  // flags win over the config
};

template <typename T>
void read_if(const nlohmann::json& j, const char* key, T& into) {
  if (j.contains(key)) into = j.at(key).get<T>();
}

// configs/experiment-*.json: {"variants": {"cascade", "kar", "nocascade"}, "seeds": [...],
// "backbones": [...], "max_users", "train": {...}, "model": {...}, "backbones_config":
// {"din": {...}}, "interests": {"slots", "fused_dim", "hidden", "reduced_dim", "query",
// "interaction", "similarity"}, "content", "controls", "arms", "bootstrap_resamples",
// "out_dir"}. "cascade": ""
// runs without an LLM input (content and the controls only).
void apply_config(const nlohmann::json& j, ExperimentConfig& c, std::vector<std::string>& backbones,
                  std::vector<uint64_t>& seeds) {
  if (j.contains("stores"))
    throw Error(ErrorKind::Config,
                "\"stores\" is gone: one store holds every variant now; name them in "
                "\"variants\": {\"cascade\", \"kar\", \"nocascade\"} and give --store");
  if (c.store.empty()) read_if(j, "store", c.store);  // flags win
  if (j.contains("variants")) {
    const auto& v = j["variants"];
    read_if(v, "cascade", c.variant);
    read_if(v, "kar", c.kar_variant);
    read_if(v, "nocascade", c.nocascade_variant);
  }
  if (backbones.empty()) read_if(j, "backbones", backbones);
  if (seeds.empty()) read_if(j, "seeds", seeds);
  read_if(j, "max_users", c.max_users);
  read_if(j, "all_users_baseline", c.all_users_baseline);
  read_if(j, "content", c.content);
  read_if(j, "controls", c.controls);
  if (c.arms.empty()) read_if(j, "arms", c.arms);
  read_if(j, "bootstrap_resamples", c.bootstrap_resamples);
  if (c.out_dir.empty()) read_if(j, "out_dir", c.out_dir);
  if (j.contains("train")) apply_train_json(j["train"], c.train);
  ModelConfig shared;
  if (j.contains("model")) apply_model_json(j["model"], shared);
  for (const std::string& b : backbone_names()) {
    ModelConfig m = shared;
    if (j.contains("backbones_config") && j["backbones_config"].contains(b))
      apply_model_json(j["backbones_config"][b], m);
    c.models[b] = m;
  }
  if (j.contains("interests")) {
    const auto& i = j["interests"];
    read_if(i, "slots", c.fuse.slots);
    read_if(i, "fused_dim", c.fuse.fused_dim);
    read_if(i, "hidden", c.fuse.hidden);
    read_if(i, "reduced_dim", c.fuse.reduced_dim);
    read_if(i, "query", c.fuse.query);
    read_if(i, "interaction", c.fuse.interaction);
    read_if(i, "similarity", c.fuse.similarity);
  }
}

}  // namespace

void add_experiment_command(CLI::App& app) {
  auto f = std::make_shared<ExperimentFlags>();
  CLI::App* cmd = app.add_subcommand(
      "experiment", "each backbone alone and with LIBER (+ ablations) over seeds: table, JSON, chart");
  f->store_only.add_to(*cmd);
  cmd->add_option("--history", f->history_length, "recent item ids per sample")->capture_default_str();
  cmd->add_option("--config", f->config_path, "experiment JSON (see configs/experiment-ml-1m.json)")
      ->required();
  cmd->add_option("--backbones", f->backbones,
                  fmt::format("comma-separated subset of {}", fmt::join(backbone_names(), ",")))
      ->delimiter(',');
  cmd->add_option("--seeds", f->seeds, "comma-separated seeds (default: the config's)")->delimiter(',');
  cmd->add_option("--arms", f->config.arms,
                  "comma-separated arms to train, e.g. base or base,random,shuffled,content "
                  "(default: the config's, else all; base always runs)")
      ->delimiter(',');
  cmd->add_option("--out", f->config.out_dir, "output directory (default: the config's out_dir)");
  cmd->add_option("--store", f->config.store,
                  "the store: dataset, every variant's records and vectors (default: the config's)");
  cmd->add_option("--variant", f->variant, "LIBER's variant (default: the config's, else cascade)");
  cmd->add_option("--kar-variant", f->kar_variant, "the KAR-style variant (default: the config's)");
  cmd->add_option("--nocascade-variant", f->nocascade_variant,
                  "the no-cascade variant (default: the config's)");
  cmd->add_option("--threads", f->threads, "compute threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--no-progress", f->no_progress, "no progress bars");
  cmd->add_flag("--no-chart", f->no_chart, "no auc.png (needs gnuplot)");
  cmd->callback([f] {
    const nlohmann::json j = load_config(f->config_path);
    try {
      apply_config(j, f->config, f->backbones, f->seeds);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorKind::Config, fmt::format("{}: {}", f->config_path, e.what()));
    }
    ExperimentConfig& c = f->config;
    if (!f->variant.empty()) c.variant = f->variant;
    if (!f->kar_variant.empty()) c.kar_variant = f->kar_variant;
    if (!f->nocascade_variant.empty()) c.nocascade_variant = f->nocascade_variant;
    c.backbones = f->backbones;
    if (!f->seeds.empty()) c.seeds = f->seeds;
    c.train.threads = set_compute_threads(f->threads);
    c.train.progress = !f->no_progress;
    f->store_only.check("experiment");
    c.split.history_length = f->history_length;
    const ExperimentResult r = run_experiment(c);
    const std::string table = experiment_table(r);
    std::printf("\n%s: LIBER population %zu users (every partition learned and encoded)%s; "
                "all users: %zu\n\n%s",
                r.description.c_str(), r.population_users,
                r.nocascade_users ? fmt::format(", no-cascade subset {} users", r.nocascade_users).c_str() : "",
                r.all_users, table.c_str());
    if (!c.out_dir.empty()) {
      const std::filesystem::path out(c.out_dir);
      std::ofstream md(out / "results.md");
      md << r.description << "\n\n" << table;
      if (!md) throw Error(ErrorKind::Io, fmt::format("cannot write {}", (out / "results.md").string()));
      if (!f->no_chart) write_auc_chart(r.summary, out);
      std::fprintf(stderr, "liber: results.json, results.md%s and vectors/ in %s\n",
                   f->no_chart ? "" : ", auc.png", c.out_dir.c_str());
    }
  });
}

}  // namespace liber::cli
