// Shared pieces of the liber command line: how a dataset is named on the command line and
// loaded, and the subcommand registrations.
#pragma once

#include <atomic>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "liber/ctr.h"
#include "liber/data.h"
#include "liber/dataset.h"
#include "liber/llm.h"

namespace liber::cli {

// --dataset / --data-dir / --events / --items / --users / --skip-bad-lines / --max-users.
struct DataOptions {
  std::string dataset = "ml-1m";
  std::string data_dir;
  std::string events, items, users;  // generic format
  std::string item_noun, category;    // generic: the domain's nouns (GenericPaths)
  bool skip_bad_lines = false;
  std::size_t max_users = 0;
  int history_length = 10;

  void add_to(CLI::App& app);
  BehaviorLog load() const;  // prints the read report's problems to stderr
  // For a command that can also read a store's dataset (train --store, export --store):
  // throws Error(Config) naming the first data flag given on `app`, or one of `extra`.
  static void refuse_with_store(const CLI::App& app, const char* command,
                                std::initializer_list<const char*> extra = {});
};

// The stages after ingest (learn, encode, experiment) read the dataset from the store that
// ingest wrote: the store is their whole input. They refuse the data flags with a message
// rather than ignore them, so that nobody believes a --data-dir was used.
struct StoreOnly {
  std::vector<std::string> given;  // the data flags seen
  void add_to(CLI::App& app);
  void check(const char* command) const;  // throws Error(Config) when a data flag was given
};

// --engine llama|http and its options (EngineSpec's fields as flags).
struct EngineFlags {
  EngineSpec spec;
  // Before every option name: "encoder-" gives --encoder-engine, --encoder-model, ... (liber
  // serve takes an LLM and an encoder).
  std::string prefix;

  void add_to(CLI::App& cmd);
  std::unique_ptr<LlmEngine> make() const { return make_engine(spec); }
};

// Thrown by a command that stopped on Ctrl-C after saving its work and printing its report:
// liber then exits 130 (the shell's code for SIGINT), so a script running stage after stage
// stops instead of going on with half the input.
struct StoppedByRequest {};

// While alive, the first SIGINT sets flag() (long stages finish and record what is in
// flight, then return; a rerun redoes nothing finished); a second one kills the process.
class StopOnSigint {
 public:
  StopOnSigint();
  ~StopOnSigint();
  const std::atomic<bool>* flag() const;
};

// Config files (configs/<dataset>.json): {"train": {...}, "model": {...}, "backbones":
// {"din": {...model overrides}}}; throws Error(Io/Parse) naming the file.
nlohmann::json load_config(const std::string& path);
void apply_model_json(const nlohmann::json& j, ModelConfig& m);
void apply_train_json(const nlohmann::json& j, TrainConfig& t);

void add_data_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_ingest_command(CLI::App& app);
void add_partitions_command(CLI::App& app);
void add_learn_command(CLI::App& app);
void add_encode_command(CLI::App& app);
void add_experiment_command(CLI::App& app);
void add_migrate_command(CLI::App& app);
void add_synthetic_command(CLI::App& app);
void add_serve_command(CLI::App& app);

}  // namespace liber::cli
