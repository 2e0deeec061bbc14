// `liber ingest`: stream a dataset through UBSP into the durable state store.
// `liber partitions`: inspect or export what the store holds.
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include "cli.h"
#include "liber/error.h"
#include "liber/progress.h"
#include "liber/ubsp.h"

namespace liber::cli {

namespace {

struct IngestFlags {
  DataOptions data;
  std::string store = "./liber-state";
  std::size_t k = 50;
  double span_days = 0, gap_days = 0;
  bool shift = false;
  std::size_t shift_window = 20;
  double shift_threshold = 0.35;
  std::string shift_attribute;  // empty: the domain's category
  std::size_t max_size = 200;
  double lateness_s = 0;
  std::size_t batch_events = 4096;
  bool sync = false;
  bool flush = false, catalog_only = false;
  bool quiet = false;
};

std::string date(int64_t ts) {
  if (ts == kNoTime) return "-";
  const std::time_t t = static_cast<std::time_t>(ts);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string items_preview(const std::vector<StoredEvent>& events, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < events.size() && i < n; ++i) s += (i ? " " : "") + events[i].item;
  if (events.size() > n) s += " ...";
  return s;
}

}  // namespace

void add_ingest_command(CLI::App& app) {
  auto f = std::make_shared<IngestFlags>();
  CLI::App* cmd = app.add_subcommand(
      "ingest", "stream a dataset in global time order through UBSP into the state store");
  f->data.add_to(*cmd);
  cmd->add_option("--store", f->store, "state store directory (RocksDB)")->capture_default_str();
  CLI::Option* k = cmd->add_option("--rule-k", f->k, "close a partition at K events (0 = off)")
                       ->capture_default_str();
  cmd->add_option("--rule-span-days", f->span_days,
                  "close before an event more than D days after the partition's first (0 = off)");
  cmd->add_option("--rule-gap-days", f->gap_days,
                  "close before an event more than G days after the previous one (0 = off)");
  cmd->add_flag("--rule-shift", f->shift,
                "interest-shift rule (turns --rule-k off unless it is given)");
  cmd->add_option("--shift-window", f->shift_window, "shift rule window W")->capture_default_str();
  cmd->add_option("--shift-threshold", f->shift_threshold,
                  "shift rule Jensen-Shannon threshold (base 2)")->capture_default_str();
  cmd->add_option("--shift-attribute", f->shift_attribute,
                  "item attribute the shift rule uses (default: the domain's category, genres "
                  "on MovieLens)");
  cmd->add_option("--rule-max", f->max_size, "always close at this many events")
      ->capture_default_str();
  cmd->add_option("--lateness", f->lateness_s,
                  "accept events up to this many seconds older than a user's newest")
      ->capture_default_str();
  cmd->add_option("--batch-events", f->batch_events, "events per atomic write batch")
      ->capture_default_str();
  cmd->add_flag("--sync", f->sync, "fsync the write-ahead log after every batch");
  cmd->add_flag("--flush", f->flush, "close every open cache at the end (reason flush)");
  cmd->add_flag("--catalog-only", f->catalog_only,
                "store the catalog (items, users) and the rule but none of the events: a store for a "
                "Kafka worker, whose events come from the topic");
  cmd->add_flag("--quiet", f->quiet, "no progress bar");
  cmd->callback([f, k] {
    PartitionRule rule;
    rule.count = (f->shift && k->count() == 0) ? 0 : f->k;
    rule.max_span = static_cast<int64_t>(f->span_days * 86400);
    rule.max_gap = static_cast<int64_t>(f->gap_days * 86400);
    rule.shift = f->shift;
    rule.shift_window = f->shift_window;
    rule.shift_threshold = f->shift_threshold;
    rule.max_size = f->max_size;
    rule.lateness = static_cast<int64_t>(f->lateness_s);
    BehaviorLog log = f->data.load();
    rule.shift_attribute = f->shift_attribute.empty() ? log.domain.category : f->shift_attribute;
    std::fprintf(stderr, "liber: ingest %s into %s (rule: %s)\n", log.description.c_str(),
                 f->store.c_str(), rule.describe().c_str());
    IngestOptions opt;
    opt.batch_events = f->batch_events;
    opt.sync = f->sync;
    opt.progress_bar = !f->quiet;
    auto store = open_rocksdb_store(f->store);
    Ingestor ing(*store, log, rule, opt);
    const std::vector<Event> stream = f->catalog_only ? std::vector<Event>{} : time_ordered(log.events);
    IngestStats st = ing.ingest(stream);
    std::printf("%s", st.summary().c_str());
    if (f->flush) {
      IngestStats fl = ing.flush_all();
      std::printf("flush        %llu caches closed\n",
                  static_cast<unsigned long long>(fl.partitions()));
    }
    uint64_t users = 0, parts = 0;
    for_each_cache(*store, [&](const StoredCache& c) {
      ++users;
      parts += c.next_seq;
    });
    std::printf("store        %s: %llu users, %llu partitions in all\n", f->store.c_str(),
                static_cast<unsigned long long>(users), static_cast<unsigned long long>(parts));
  });
}

void add_partitions_command(CLI::App& app) {
  struct Flags {
    std::string store = "./liber-state";
    std::string user, export_file;
    std::size_t preview = 5;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd =
      app.add_subcommand("partitions", "show a user's partitions and cache, or export them all");
  cmd->add_option("--store", f->store, "state store directory")->capture_default_str();
  cmd->add_option("--user", f->user, "external user id to show");
  cmd->add_option("--export", f->export_file, "write every partition as JSON lines to FILE");
  cmd->add_option("--items", f->preview, "item ids shown per partition")->capture_default_str();
  cmd->callback([f] {
    if (f->user.empty() && f->export_file.empty())
      throw Error(ErrorKind::Config, "liber partitions needs --user U or --export FILE");
    auto store = open_rocksdb_store(f->store, {.read_only = true});
    if (!f->export_file.empty()) {
      std::ofstream out(f->export_file, std::ios::binary | std::ios::trunc);
      if (!out) throw Error(ErrorKind::Io, "cannot write " + f->export_file);
      uint64_t n = 0;
      for_each_partition(*store, [&](const StoredPartition& p) {
        out << partition_json(p) << '\n';
        ++n;
      });
      out.flush();
      if (!out) throw Error(ErrorKind::Io, "cannot write " + f->export_file);
      std::printf("exported %llu partitions to %s\n", static_cast<unsigned long long>(n),
                  f->export_file.c_str());
    }
    if (!f->user.empty()) {
      const auto parts = read_partitions(*store, f->user);
      const auto cache = read_cache(*store, f->user);
      if (parts.empty() && !cache)
        throw Error(ErrorKind::InvalidInput,
                    fmt::format("user '{}' has no state in {}", f->user, f->store));
      std::printf("user %s: %zu partitions\n", f->user.c_str(), parts.size());
      std::printf("%5s %5s  %-19s  %-19s  %-8s  %s\n", "seq", "size", "t_begin", "t_end",
                  "reason", "items");
      for (const auto& p : parts)
        std::printf("%5u %5zu  %-19s  %-19s  %-8s  %s\n", p.seq, p.events.size(),
                    date(p.t_begin).c_str(), date(p.t_end).c_str(), to_string(p.reason),
                    items_preview(p.events, f->preview).c_str());
      if (cache) {
        std::printf("cache: %zu events", cache->events.size());
        if (!cache->events.empty())
          std::printf(", %s .. %s: %s", date(cache->events.front().ts).c_str(),
                      date(cache->events.back().ts).c_str(),
                      items_preview(cache->events, f->preview).c_str());
        std::printf("\n");
      }
    }
  });
}

}  // namespace liber::cli
