// `liber migrate`: upgrades a store written by an older liber to the current formats (the
// stages that write also do it on their own; this is for read-only users such as
// `liber experiment`, and to do it once, explicitly).
#include <cstdio>
#include <memory>

#include "cli.h"
#include "liber/uif.h"
#include "liber/uil.h"

namespace liber::cli {

void add_migrate_command(CLI::App& app) {
  auto store_path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "migrate", "upgrade a store of an older liber (records keyed by variant); loses nothing");
  cmd->add_option("--store", *store_path, "state store directory (RocksDB)")->required();
  cmd->callback([store_path] {
    auto store = open_rocksdb_store(*store_path, {.create_if_missing = false});
    const std::size_t records = migrate_interests(*store);
    const std::size_t vectors = migrate_vectors(*store);
    std::printf("store %s: %zu interest records and %zu vectors re-keyed by variant; variants:",
                store_path->c_str(), records, vectors);
    for (const Variant& v : list_variants(*store)) std::printf(" %s (%s)", v.name.c_str(), v.id().c_str());
    std::printf("\n");
  });
}

}  // namespace liber::cli
