// `liber encode`: UIF's knowledge encoder over a store's interest records and item
// descriptions (incremental: only new or changed texts are embedded).
#include <cstdio>
#include <memory>

#include "cli.h"
#include "liber/uif.h"

namespace liber::cli {

namespace {

struct EncodeFlags {
  StoreOnly store_only;
  std::string store = "./liber-state";
  EngineFlags engine;
  EncodeOptions options;
  bool items = false, no_items = false, quiet = false;
};

}  // namespace

void add_encode_command(CLI::App& app) {
  auto f = std::make_shared<EncodeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "encode", "UIF: embed every interest record and item description (incremental)");
  cmd->add_option("--store", f->store, "state store directory (RocksDB)")->capture_default_str();
  f->engine.spec.encoder = true;
  f->engine.add_to(*cmd);
  cmd->add_option("--batch", f->options.batch, "texts per embedding call and store write")
      ->capture_default_str();
  cmd->add_flag("--replace", f->options.replace,
                "the store holds another encoder's vectors: delete them and re-encode");
  cmd->add_flag("--item-knowledge", f->items,
                "also encode the item descriptions (liber learn --item-knowledge)");
  cmd->add_flag("--no-items", f->no_items, "the default (kept for older scripts)")->group("");
  cmd->add_flag("--quiet", f->quiet, "no progress bar");
  f->store_only.add_to(*cmd);
  cmd->callback([f] {
    f->store_only.check("encode");
    auto engine = f->engine.make();
    auto store = open_rocksdb_store(f->store);
    f->options.items = f->items && !f->no_items;
    f->options.progress_bar = !f->quiet;
    StopOnSigint stop;  // Ctrl-C: the current batch is written, then the run stops
    f->options.stop = stop.flag();
    const EncodeReport rep = encode_knowledge(*store, *engine, f->options);
    std::printf("%s", rep.summary().c_str());
    if (rep.stopped) throw StoppedByRequest{};
  });
}

}  // namespace liber::cli
