// `liber train`: build the CTR samples of a dataset and train/evaluate each backbone on them.
#include <cstdio>
#include <filesystem>
#include <functional>
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
#include "liber/score.h"
#include "liber/store.h"
#include "liber/ubsp.h"

namespace liber::cli {
namespace {

struct TrainOptions {
  DataOptions data;
  std::string config_path;
  std::vector<std::string> backbones;
  std::string out = "results.json";
  std::string checkpoint_dir;
  std::string store, knowledge, save_model;
  FuseConfig fuse = ModelTraining{}.fuse;
  ModelConfig model;
  TrainConfig train;
  CLI::App* app = nullptr;
};

// liber train --store: the store's dataset (and knowledge), each backbone saved to a model
// directory that liber serve --score-model loads.
void train_on_store(TrainOptions& o, const std::vector<std::string>& names, const TrainConfig& train,
                    const std::function<ModelConfig(const std::string&)>& model_of) {
  DataOptions::refuse_with_store(*o.app, "train", {"--checkpoint-dir"});
  if (o.save_model.empty())
    throw Error(ErrorKind::Config, "liber train --store needs --save-model DIR (where the model goes)");
  auto store = open_rocksdb_store(o.store, StoreOptions{.read_only = true});
  std::vector<ResultRecord> records;
  for (const std::string& name : names) {
    ModelTraining cfg;
    cfg.knowledge = o.knowledge;
    cfg.model = model_of(name);
    cfg.train = train;
    cfg.split.history_length = o.data.history_length;
    cfg.fuse = o.fuse;
    if (cfg.fuse.fusion == "mean") cfg.fuse.query = "item";  // the mean has no query
    // One backbone: DIR is its model; several: DIR/<backbone> each.
    const std::filesystem::path dir = names.size() == 1 ? std::filesystem::path(o.save_model)
                                                        : std::filesystem::path(o.save_model) / name;
    std::fprintf(stderr, "liber: training %s%s on %s\n", name.c_str(),
                 o.knowledge.empty() ? "" : fmt::format(" with knowledge '{}'", o.knowledge).c_str(),
                 o.store.c_str());
    const TrainedModel trained = train_model(*store, cfg, dir);
    ResultRecord rec;
    rec.dataset = trained.info.dataset;
    rec.data_note = trained.info.description;
    rec.backbone = name;
    rec.variant = o.knowledge.empty() ? "base" : o.knowledge;
    rec.seed = train.seed;
    rec.train_samples = trained.info.train_samples;
    rec.result = trained.result;
    records.push_back(rec);
    std::fprintf(stderr, "liber: model saved to %s (%s)\n", dir.string().c_str(),
                 o.knowledge.empty() ? "the backbone alone"
                                     : fmt::format("{} partitions of knowledge", trained.info.partitions).c_str());
    if (!o.out.empty()) write_results_json(records, o.out);
  }
  std::printf("\n%s\n%s\n", records.front().data_note.c_str(), results_table(records).c_str());
}

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

  std::vector<std::string> names = o.backbones.empty() ? backbone_names() : o.backbones;
  auto model_of = [&](const std::string& name) {
    ModelConfig m = model;
    m.backbone = name;
    try {
      if (cfg.contains("backbones") && cfg["backbones"].contains(name))
        apply_model_json(cfg["backbones"][name], m);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorKind::Config, fmt::format("{}: {}", o.config_path, e.what()));
    }
    if (given("--embedding-dim")) m.embedding_dim = o.model.embedding_dim;
    return m;
  };
  if (!o.store.empty()) return train_on_store(o, names, train, model_of);

  BehaviorLog log = o.data.load();
  SplitConfig split;
  split.history_length = o.data.history_length;
  CtrDataset data = build_ctr_dataset(log, split);
  std::fprintf(stderr, "liber: %s: %zu train / %zu valid / %zu test samples (%s)\n",
               data.name.c_str(), data.train.size(), data.valid.size(), data.test.size(),
               data.description.c_str());

  std::vector<ResultRecord> records;
  for (const std::string& name : names) {
    const ModelConfig m = model_of(name);
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
  cmd->add_option("--backbones", opts->backbones,
                  fmt::format("comma-separated subset of {}", fmt::join(backbone_names(), ",")))
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
  cmd->add_option("--store", opts->store,
                  "train on a store's dataset (liber ingest) instead of the data flags; needs --save-model");
  cmd->add_option("--knowledge", opts->knowledge,
                  "with --store: the fuse layer's input: content, a variant name (its LLM records), "
                  "or VARIANT+content (default: none, the backbone alone)");
  cmd->add_option("--fusion", opts->fuse.fusion, "with --knowledge: attention | mean")->capture_default_str();
  cmd->add_option("--save-model", opts->save_model,
                  "with --store: write the trained model here (DIR/<backbone> for several backbones) "
                  "for liber serve --score-model");
  cmd->callback([opts] { run_train(*opts); });
}

void add_export_command(CLI::App& app) {
  auto opts = std::make_shared<DataOptions>();
  auto dir = std::make_shared<std::string>();
  auto store_dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "export", "write the CTR samples (train/valid/test CSV) for another framework, with each "
                "sample's join keys (user, timestamp) for liber.join");
  opts->add_to(*cmd);
  cmd->add_option("--store", *store_dir,
                  "the samples of a store's dataset (liber ingest): the ones liber train --store trains on");
  cmd->add_option("--out", *dir, "output directory")->required();
  cmd->callback([cmd, opts, dir, store_dir] {
    BehaviorLog log;
    if (!store_dir->empty()) {
      DataOptions::refuse_with_store(*cmd, "export");
      log = load_behavior_log(*open_rocksdb_store(*store_dir, StoreOptions{.read_only = true}));
    } else {
      log = opts->load();
    }
    CtrDataset data = build_ctr_dataset(log, SplitConfig{.history_length = opts->history_length});
    export_ctr_dataset_csv(data, log.users.ids, *dir);
    std::fprintf(stderr, "liber: wrote %zu/%zu/%zu samples to %s\n", data.train.size(),
                 data.valid.size(), data.test.size(), dir->c_str());
  });
}

}  // namespace liber::cli
