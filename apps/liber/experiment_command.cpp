// `liber experiment`: each backbone alone and with LIBER (and the ablations) over seeds, on
// the stores that `liber ingest / learn / encode` built; see include/liber/experiment.h.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli.h"
#include "liber/error.h"
#include "liber/experiment.h"

namespace liber::cli {

namespace {

struct ExperimentFlags {
  DataOptions data;
  std::string config_path;
  ExperimentConfig config;
  std::vector<std::string> backbones;
  std::vector<uint64_t> seeds;
  int threads = 0;
  bool no_progress = false;
};

template <typename T>
void read_if(const nlohmann::json& j, const char* key, T& into) {
  if (j.contains(key)) into = j.at(key).get<T>();
}

// configs/experiment-*.json: {"stores": {"cascade", "kar", "nocascade"}, "seeds": [...],
// "backbones": [...], "max_users", "train": {...}, "model": {...}, "backbone_models":
// {"din": {...}}, "interests": {"slots", "fused_dim", "hidden", "reduced_dim"}, "out_dir"}.
void apply_config(const nlohmann::json& j, ExperimentConfig& c, std::vector<std::string>& backbones,
                  std::vector<uint64_t>& seeds) {
  if (j.contains("stores")) {  // flags win
    const auto& s = j["stores"];
    if (c.store.empty()) read_if(s, "cascade", c.store);
    if (c.kar_store.empty()) read_if(s, "kar", c.kar_store);
    if (c.nocascade_store.empty()) read_if(s, "nocascade", c.nocascade_store);
  }
  if (backbones.empty()) read_if(j, "backbones", backbones);
  if (seeds.empty()) read_if(j, "seeds", seeds);
  read_if(j, "max_users", c.max_users);
  read_if(j, "all_users_baseline", c.all_users_baseline);
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
    read_if(i, "slots", c.interests.slots);
    read_if(i, "fused_dim", c.interests.fused_dim);
    read_if(i, "hidden", c.interests.hidden);
    read_if(i, "reduced_dim", c.interests.reduced_dim);
  }
}

}  // namespace

void add_experiment_command(CLI::App& app) {
  auto f = std::make_shared<ExperimentFlags>();
  CLI::App* cmd = app.add_subcommand(
      "experiment", "each backbone alone and with LIBER (+ ablations) over seeds: table, JSON, chart");
  f->data.add_to(*cmd);
  cmd->add_option("--config", f->config_path, "experiment JSON (see configs/experiment-ml-1m.json)")
      ->required();
  cmd->add_option("--backbones", f->backbones, "comma-separated subset of din,dcnv2,deepfm,autoint")
      ->delimiter(',');
  cmd->add_option("--seeds", f->seeds, "comma-separated seeds (default: the config's)")->delimiter(',');
  cmd->add_option("--out", f->config.out_dir, "output directory (default: the config's out_dir)");
  cmd->add_option("--store", f->config.store, "the cascade's store (default: the config's)");
  cmd->add_option("--kar-store", f->config.kar_store, "the KAR-style store (default: the config's)");
  cmd->add_option("--nocascade-store", f->config.nocascade_store,
                  "the no-cascade store (default: the config's)");
  cmd->add_option("--threads", f->threads, "compute threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--no-progress", f->no_progress, "no progress bars");
  cmd->callback([f] {
    const nlohmann::json j = load_config(f->config_path);
    try {
      apply_config(j, f->config, f->backbones, f->seeds);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorKind::Config, fmt::format("{}: {}", f->config_path, e.what()));
    }
    ExperimentConfig& c = f->config;
    c.backbones = f->backbones;
    if (!f->seeds.empty()) c.seeds = f->seeds;
    c.train.threads = set_compute_threads(f->threads);
    c.train.progress = !f->no_progress;
    c.split.history_length = f->data.history_length;
    const BehaviorLog log = f->data.load();
    const ExperimentResult r = run_experiment(log, c);
    std::printf("\n%s: LIBER population %zu users (every partition learned and encoded)%s; "
                "all users: %zu\n\n%s",
                log.description.c_str(), r.population_users,
                r.nocascade_users ? fmt::format(", no-cascade subset {} users", r.nocascade_users).c_str() : "",
                r.all_users, r.markdown.c_str());
    if (!c.out_dir.empty())
      std::fprintf(stderr, "liber: results.json, results.md, auc.png and vectors/ in %s\n",
                   c.out_dir.c_str());
  });
}

}  // namespace liber::cli
