// Shared pieces of the liber command line: how a dataset is named on the command line and
// loaded, and the subcommand registrations.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "liber/data.h"
#include "liber/dataset.h"

namespace liber::cli {

// --dataset / --data-dir / --events / --items / --users / --skip-bad-lines / --max-users.
struct DataOptions {
  std::string dataset = "ml-1m";
  std::string data_dir;
  std::string events, items, users;  // generic format
  bool skip_bad_lines = false;
  std::size_t max_users = 0;
  int history_length = 10;

  void add_to(CLI::App& app);
  BehaviorLog load() const;  // prints the read report's problems to stderr
};

void add_data_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_ingest_command(CLI::App& app); void add_partitions_command(CLI::App& app);
void add_learn_command(CLI::App& app);

}  // namespace liber::cli
