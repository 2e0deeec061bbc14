// `liber data`: load a dataset, report what was read and what the CTR split looks like.
#include <cstdio>
#include <memory>

#include "cli.h"

namespace liber::cli {

void add_data_command(CLI::App& app) {
  auto opts = std::make_shared<DataOptions>();
  CLI::App* cmd = app.add_subcommand("data", "load a dataset and print its statistics");
  opts->add_to(*cmd);
  cmd->callback([opts] {
    BehaviorLog log = opts->load();
    std::printf("dataset      %s\nsource       %s\nusers        %zu\nitems        %zu\n"
                "events       %zu\n",
                log.name.c_str(), log.description.c_str(), log.users.size() - 1,
                log.items.size() - 1, log.events.size());
    CtrDataset data = build_ctr_dataset(log, SplitConfig{.history_length = opts->history_length});
    double pos = 0;
    for (float y : data.train.labels) pos += y;
    std::printf("samples      %zu train, %zu valid, %zu test (train positive rate %.3f)\n",
                data.train.size(), data.valid.size(), data.test.size(),
                data.train.size() ? pos / data.train.size() : 0.0);
    std::printf("features    ");
    for (const auto& f : data.schema.sparse) std::printf(" %s(%ld)", f.name.c_str(), f.vocab);
    for (const auto& f : data.schema.sequences)
      std::printf(" %s[%d](%ld)", f.name.c_str(), f.length, f.vocab);
    std::printf("\n");
  });
}

}  // namespace liber::cli
