// `liber train`: build the CTR samples of a dataset and train/evaluate each backbone on them.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "report.h"
#include "liber/ctr.h"
#include "liber/error.h"
#include "liber/results.h"

namespace liber::cli {
namespace {

struct TrainOptions {
  DataOptions data;
  std::string config_path;
  std::vector<std::string> backbones;
  std::string out = "results.json";
  std::string checkpoint_dir;
  ModelConfig model;
  TrainConfig train;
  CLI::App* app = nullptr;
};

void run_train(TrainOptions& o) {
  CLI::App& app = *o.app;
  nlohmann::json cfg = load_config(o.config_path);
  TrainConfig train;
  ModelConfig model;
  try {
    if (cfg.contains("train")) apply_train_json(cfg["train"], train);
    if (cfg.contains("model")) apply_model_json(cfg["model"], model);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Config, fmt::format("{}: {}", o.config_path, e.what()));
  }
  auto given = [&](const char* flag) { return app.get_option(flag)->count() > 0; };
  if (given("--epochs")) train.max_epochs = o.train.max_epochs;
  if (given("--batch-size")) train.batch_size = o.train.batch_size;
  if (given("--lr")) train.learning_rate = o.train.learning_rate;
  if (given("--patience")) train.patience = o.train.patience;
  train.seed = o.train.seed;
  train.threads = set_compute_threads(o.train.threads);
  train.progress = o.train.progress;

  BehaviorLog log = o.data.load();
  SplitConfig split;
  split.history_length = o.data.history_length;
  CtrDataset data = build_ctr_dataset(log, split);
  std::fprintf(stderr, "liber: %s: %zu train / %zu valid / %zu test samples (%s)\n",
               data.name.c_str(), data.train.size(), data.valid.size(), data.test.size(),
               data.description.c_str());

  std::vector<std::string> names = o.backbones.empty() ? backbone_names() : o.backbones;
  std::vector<ResultRecord> records;
  for (const std::string& name : names) {
    ModelConfig m = model;
    m.backbone = name;
    try {
      if (cfg.contains("backbones") && cfg["backbones"].contains(name))
        apply_model_json(cfg["backbones"][name], m);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorKind::Config, fmt::format("{}: {}", o.config_path, e.what()));
    }
    if (given("--embedding-dim")) m.embedding_dim = o.model.embedding_dim;
    TrainConfig t = train;
    if (!o.checkpoint_dir.empty())
      t.checkpoint_path = fmt::format("{}/{}-{}.pt", o.checkpoint_dir, data.name, name);
    std::fprintf(stderr, "liber: training %s\n", name.c_str());
    ResultRecord rec;
    rec.dataset = data.name;
    rec.data_note = data.description;
    rec.backbone = name;
    rec.seed = t.seed;
    rec.train_samples = data.train.size();
    rec.valid_samples = data.valid.size();
    rec.test_samples = data.test.size();
    rec.result = train_and_evaluate(data, m, t);
    records.push_back(rec);
    // Written after every backbone so a long run leaves its finished results behind.
    if (!o.out.empty()) write_results_json(records, o.out);
  }
  std::printf("\n%s\n%s\n", data.description.c_str(), results_table(records).c_str());
  if (!o.out.empty()) std::fprintf(stderr, "liber: results written to %s\n", o.out.c_str());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto opts = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand(
      "train", "train and evaluate CTR backbones on a dataset; prints a results table");
  opts->app = cmd;
  opts->data.add_to(*cmd);
  cmd->add_option("--config", opts->config_path, "JSON config (see configs/)");
  cmd->add_option("--backbones", opts->backbones, "comma-separated subset of din,dcnv2,deepfm,autoint")
      ->delimiter(',');
  cmd->add_option("--epochs", opts->train.max_epochs, "maximum epochs");
  cmd->add_option("--batch-size", opts->train.batch_size, "training batch size");
  cmd->add_option("--lr", opts->train.learning_rate, "Adam learning rate");
  cmd->add_option("--patience", opts->train.patience, "early-stopping patience (epochs)");
  cmd->add_option("--embedding-dim", opts->model.embedding_dim, "embedding size");
  cmd->add_option("--seed", opts->train.seed, "random seed")->capture_default_str();
  cmd->add_option("--threads", opts->train.threads, "compute threads (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--out", opts->out, "results JSON path")->capture_default_str();
  cmd->add_option("--checkpoint-dir", opts->checkpoint_dir, "keep each backbone's best weights here");
  cmd->add_flag("!--no-progress", opts->train.progress, "no progress bars");
  cmd->callback([opts] { run_train(*opts); });
}

void add_export_command(CLI::App& app) {
  auto opts = std::make_shared<DataOptions>();
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "export", "write the CTR samples (train/valid/test CSV) for another framework");
  opts->add_to(*cmd);
  cmd->add_option("--out", *dir, "output directory")->required();
  cmd->callback([opts, dir] {
    CtrDataset data = build_ctr_dataset(opts->load(), SplitConfig{.history_length = opts->history_length});
    export_ctr_dataset_csv(data, *dir);
    std::fprintf(stderr, "liber: wrote %zu/%zu/%zu samples to %s\n", data.train.size(),
                 data.valid.size(), data.test.size(), dir->c_str());
  });
}

}  // namespace liber::cli
