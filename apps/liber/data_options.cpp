#include <cstdio>
#include <vector>

#include <fmt/format.h>

#include "cli.h"
#include "liber/error.h"

namespace liber::cli {

void DataOptions::add_to(CLI::App& app) {
  app.add_option("--dataset", dataset, "ml-1m | ml-100k | generic")->capture_default_str();
  app.add_option("--data-dir", data_dir,
                 "directory with the dataset's files (default: $LIBER_DATA_DIR, else download)");
  app.add_option("--events", events, "generic: events file (.csv or .jsonl)");
  app.add_option("--items", items, "generic: item catalog (.csv or .jsonl)");
  app.add_option("--users", users, "generic: optional user table (.csv or .jsonl)");
  app.add_option("--item-noun", item_noun,
                 "generic: what an item is, for prompts: song, or song,songs (default: item)");
  app.add_option("--category", category,
                 "generic: the item attribute that says what kind of item it is, for prompts, "
                 "the verifier and the shift rule (default: genres, else the first multi-valued "
                 "attribute)");
  app.add_flag("--skip-bad-lines", skip_bad_lines,
               "skip malformed lines (counted and reported) instead of stopping");
  app.add_option("--max-users", max_users, "keep only the first N users (0 = all)");
  app.add_option("--history", history_length, "recent item ids per sample")->capture_default_str();
}

void DataOptions::refuse_with_store(const CLI::App& app, const char* command,
                                    std::initializer_list<const char*> extra) {
  std::vector<const char*> flags = {"--dataset", "--data-dir", "--events", "--items", "--users",
                                    "--max-users", "--skip-bad-lines"};
  flags.insert(flags.end(), extra.begin(), extra.end());
  for (const char* flag : flags)
    if (app.get_option(flag)->count() > 0)
      throw Error(ErrorKind::Config,
                  fmt::format("liber {} --store reads the dataset from the store: {} does not apply",
                              command, flag));
}

void StoreOnly::add_to(CLI::App& app) {
  for (const char* flag : {"--data-dir", "--dataset", "--events", "--items", "--users", "--max-users",
                           "--item-noun", "--category"})
    app.add_option_function<std::string>(
           flag, [this, flag](const std::string&) { given.emplace_back(flag); }, "")
        ->group("");  // hidden: only here to be refused clearly
  app.add_flag_function("--skip-bad-lines", [this](int64_t) { given.emplace_back("--skip-bad-lines"); })
      ->group("");
}

void StoreOnly::check(const char* command) const {
  if (given.empty()) return;
  std::string flags;
  for (const auto& g : given) flags += (flags.empty() ? "" : ", ") + g;
  throw Error(ErrorKind::Config,
              fmt::format("liber {} reads the dataset from --store (liber ingest put it there) and "
                          "takes no data flags: remove {}",
                          command, flags));
}

BehaviorLog DataOptions::load() const {
  ReadOptions opt;
  opt.skip_bad_lines = skip_bad_lines;
  opt.max_users = max_users;
  BehaviorLog log;
  if (dataset == "generic") {
    if (events.empty() || items.empty())
      throw Error(ErrorKind::Config, "--dataset generic needs --events and --items");
    log = read_generic({events, items, users, "generic", item_noun, category}, opt);
  } else {
    if (!item_noun.empty() || !category.empty())
      throw Error(ErrorKind::Config,
                  fmt::format("--item-noun and --category name a generic dataset's nouns; {} "
                              "has its own",
                              dataset));
    log = load_dataset(dataset, locate_dataset(dataset, data_dir), opt);
  }
  const ReadReport& r = log.report;
  for (const std::string& m : r.messages) std::fprintf(stderr, "liber: warning: %s\n", m.c_str());
  if (r.skipped_bad_lines || r.duplicate_events || r.unknown_item_events ||
      r.unknown_user_events || r.invalid_utf8_fields)
    std::fprintf(stderr,
                 "liber: read %zu lines: %zu bad lines skipped, %zu duplicate events dropped, "
                 "%zu events of unknown items dropped, %zu unknown users added, %zu fields "
                 "with invalid UTF-8 repaired\n",
                 r.lines, r.skipped_bad_lines, r.duplicate_events, r.unknown_item_events,
                 r.unknown_user_events, r.invalid_utf8_fields);
  return log;
}

}  // namespace liber::cli
