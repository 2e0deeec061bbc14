// `liber learn`: UIL — the LLM cascade over every user's partitions, plus item knowledge.
// `liber learn --show USER`: print a user's interest records, with the verifier's verdicts.
// `liber learn --verify`: the verifier over a variant's stored records (no LLM).
// `liber learn --quality`: the verified rate per user.
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "cli.h"
#include "liber/error.h"
#include "liber/llm.h"
#include "liber/uil.h"

namespace liber::cli {

namespace {

struct LearnFlags {
  StoreOnly store_only;
  std::string store = "./liber-state";
  EngineFlags engine;
  std::size_t users = 0, sample = 0;
  uint64_t seed = 1;
  bool items = false, no_items = false, no_cache = false, quiet = false, sync = false, no_cascade = false;
  std::size_t max_partitions = 0;
  std::string user_list, list_learned;
  int max_tokens = 200, item_max_tokens = 96, retries = 2, candidates = 3;
  bool verify = false, quality = false;
  float temperature = 0.2f;
  float repeat_penalty = 1.3f;
  std::string prompt, item_prompt, show;
  std::string variant = "cascade", partitions = "ubsp";
};

void show_user(const std::string& store_path, const std::string& user) {
  auto store = open_rocksdb_store(store_path, {.read_only = true});
  require_current_interests(*store);
  std::size_t shown = 0;
  for (const Variant& v : list_variants(*store)) {
    const auto records = read_interests(*store, v.id(), user);
    if (records.empty()) continue;
    shown += records.size();
    std::printf("user %s, variant %s (%s, partitions %s, %s): %zu interest records\n", user.c_str(),
                v.name.c_str(), v.id().c_str(), v.partitions.name().c_str(),
                v.cascade ? "cascade" : "no cascade", records.size());
    for (const auto& r : records) {
      // The verdict first: "ok" only says the output was well-formed.
      const std::string verdict = !r.ok                ? "FAILED"
                                  : r.quality.empty() ? "ok, not verified yet (liber learn --verify)"
                                                      : r.quality;
      const std::string candidates =
          r.ok && r.candidates > 0
              ? fmt::format(", best of {} candidate{}", r.candidates, r.candidates == 1 ? "" : "s")
              : "";
      std::printf("\n[%u] %s%s  model=%s template=%s prompt=%s tokens=%d+%d (cached %d) %.2fs "
                  "attempts=%d behaviors=%u dropped=%u%s\n",
                  r.seq, verdict.c_str(), candidates.c_str(), r.model.c_str(),
                  r.template_version.c_str(), r.prompt_hash.c_str(), r.prompt_tokens,
                  r.completion_tokens, r.cached_prompt_tokens, r.latency_s, r.attempts,
                  r.behaviors, r.behaviors_dropped, r.from_cache ? " (from cache)" : "");
      if (!r.ok) std::printf("  error:   %s\n", r.error.c_str());
      for (const auto& reason : r.reasons) std::printf("  - %s\n", reason.c_str());
      if (!r.summary.empty()) std::printf("  summary: %s\n", r.summary.c_str());
      if (!r.shift.empty()) std::printf("  shift:   %s\n", r.shift.c_str());
    }
    std::printf("\n");
  }
  if (shown == 0)
    throw Error(ErrorKind::InvalidInput,
                fmt::format("user '{}' has no interest records in {} (run liber learn)", user,
                            store_path));
}

std::string reasons_line(const std::map<std::string, uint64_t>& reasons) {
  std::string s;
  for (const auto& [kind, n] : reasons) s += fmt::format("{}{} {}", s.empty() ? "" : ", ", kind, n);
  return s.empty() ? "none" : s;
}

// One row per user: records, verified, rejected, and why.
void show_quality(Store& store, const Variant& variant) {
  struct Row {
    uint64_t ok = 0, verified = 0, rejected = 0, unverified = 0;
    std::map<std::string, uint64_t> reasons;
  };
  std::map<std::string, Row> rows;
  Row all;
  for_each_interest(store, variant.id(), [&](const InterestRecord& r) {
    if (!r.ok) return;
    for (Row* row : {&rows[r.user], &all}) {
      ++row->ok;
      if (r.quality.empty()) ++row->unverified;
      else ++(r.usable() ? row->verified : row->rejected);
      for (const auto& reason : r.reasons) ++row->reasons[std::string(reason_kind(reason))];
    }
  });
  std::printf("variant %s: verified records per user\n%-10s %7s %8s %8s  %s\n", variant.name.c_str(), "user",
              "records", "verified", "rejected", "reasons");
  for (const auto& [user, row] : rows)
    std::printf("%-10s %7llu %8llu %8llu  %s%s\n", user.c_str(), static_cast<unsigned long long>(row.ok),
                static_cast<unsigned long long>(row.verified), static_cast<unsigned long long>(row.rejected),
                reasons_line(row.reasons).c_str(),
                row.unverified ? fmt::format(" ({} not verified yet)", row.unverified).c_str() : "");
  const double rate = all.ok ? 100.0 * static_cast<double>(all.verified) / static_cast<double>(all.ok) : 0;
  std::printf("%-10s %7llu %8llu %8llu  %s\nverified rate %.1f%%\n", "all", static_cast<unsigned long long>(all.ok),
              static_cast<unsigned long long>(all.verified), static_cast<unsigned long long>(all.rejected),
              reasons_line(all.reasons).c_str(), rate);
}

}  // namespace

void add_learn_command(CLI::App& app) {
  auto f = std::make_shared<LearnFlags>();
  CLI::App* cmd = app.add_subcommand(
      "learn", "UIL: summarise every user's partitions in cascade with an LLM (incremental)");
  f->store_only.add_to(*cmd);
  cmd->add_option("--store", f->store, "state store directory (RocksDB)")->capture_default_str();
  f->engine.add_to(*cmd);
  // (--users would be a data flag: refused, see StoreOnly.)
  auto* users = cmd->add_option("--first-users", f->users, "only the first N users with partitions");
  auto* sample = cmd->add_option("--sample", f->sample, "only N random users (see --seed)");
  users->excludes(sample);
  cmd->add_option("--user-list", f->user_list,
                  "only the users listed in FILE (one id per line), e.g. another store's sample")
      ->check(CLI::ExistingFile);
  cmd->add_option("--list-learned", f->list_learned,
                  "write the users whose partitions all have a record to FILE and exit");
  cmd->add_option("--seed", f->seed, "seed of --sample")->capture_default_str();
  cmd->add_flag("--item-knowledge", f->items,
                "also describe every item (item knowledge); off by default: no stage reads its "
                "vectors yet");
  cmd->add_flag("--no-items", f->no_items, "the default (kept for older scripts)")->group("");
  cmd->add_option("--max-partitions", f->max_partitions,
                  "only each user's first N partitions (0 = all)")
      ->capture_default_str();
  cmd->add_option("--variant", f->variant,
                  "name of the variant these records belong to (several live side by side in "
                  "one store; liber experiment takes them by name)")
      ->capture_default_str();
  cmd->add_option("--partitions", f->partitions,
                  "what to summarise: ubsp (the partitions ingest closed) or first:N (each "
                  "user's first N behaviors as one partition: KAR-style)")
      ->capture_default_str();
  cmd->add_flag("--no-cascade", f->no_cascade,
                "ablation: summarise every partition on its own (previous summary \"none\")");
  cmd->add_flag("--no-cache", f->no_cache, "do not reuse cached outputs of identical prompts");
  cmd->add_option("--max-tokens", f->max_tokens, "output tokens per partition")->capture_default_str();
  cmd->add_option("--item-max-tokens", f->item_max_tokens, "output tokens per item description")
      ->capture_default_str();
  cmd->add_option("--retries", f->retries, "retries of a malformed output")->capture_default_str();
  cmd->add_option("--candidates", f->candidates,
                  "the guard: outputs sampled in all when one fails the verifier (1 = off)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--verify", f->verify, "verify the variant's stored records (no LLM) and exit");
  cmd->add_flag("--quality", f->quality, "print the verified rate per user of the variant and exit");
  cmd->add_option("--temperature", f->temperature, "sampling temperature")->capture_default_str();
  cmd->add_option("--repeat-penalty", f->repeat_penalty, "repetition penalty, llama engine (1 = off)")
      ->capture_default_str();
  cmd->add_option("--prompt", f->prompt, "interest prompt template JSON (default: built-in uil_v4 with the store's domain nouns)");
  cmd->add_option("--item-prompt", f->item_prompt, "item prompt template JSON (default: built-in item_v2)");
  cmd->add_option("--show", f->show, "print USER's interest records and exit");
  cmd->add_flag("--sync", f->sync, "fsync the write-ahead log after every record");
  cmd->add_flag("--quiet", f->quiet, "no progress bar");
  cmd->callback([f] {
    if (!f->show.empty()) {
      show_user(f->store, f->show);
      return;
    }
    auto named_variant = [&](Store& store) {
      require_current_interests(store);
      auto variant = find_variant(store, f->variant);
      if (!variant)
        throw Error(ErrorKind::InvalidInput,
                    fmt::format("the store {} has no variant named '{}' (liber learn --variant)",
                                f->store, f->variant));
      return *variant;
    };
    if (f->verify) {
      auto store = open_rocksdb_store(f->store);
      PromptTemplate prompt;
      if (!f->prompt.empty()) prompt = load_template(f->prompt);
      const VerifyReport r = verify_interests(*store, named_variant(*store), f->prompt.empty() ? nullptr : &prompt);
      std::printf("records      %llu (%llu ok)\nverified     %llu (%.1f%% of ok), rejected %llu; %llu verdicts changed\n"
                  "reasons      %s\n",
                  static_cast<unsigned long long>(r.records), static_cast<unsigned long long>(r.ok),
                  static_cast<unsigned long long>(r.verified),
                  r.ok ? 100.0 * static_cast<double>(r.verified) / static_cast<double>(r.ok) : 0.0,
                  static_cast<unsigned long long>(r.rejected), static_cast<unsigned long long>(r.changed),
                  reasons_line(r.reasons).c_str());
      return;
    }
    if (f->quality) {
      auto store = open_rocksdb_store(f->store, {.read_only = true});
      show_quality(*store, named_variant(*store));
      return;
    }
    if (!f->list_learned.empty()) {
      auto store = open_rocksdb_store(f->store, {.read_only = true});
      const Variant variant = named_variant(*store);
      const auto users = learned_users(*store, variant);
      std::ofstream out(f->list_learned);
      for (const auto& u : users) out << u << "\n";
      if (!out) throw Error(ErrorKind::Io, fmt::format("cannot write {}", f->list_learned));
      std::fprintf(stderr, "liber: %zu learned users written to %s\n", users.size(),
                   f->list_learned.c_str());
      return;
    }
    f->store_only.check("learn");
    std::unique_ptr<LlmEngine> engine = f->engine.make();
    PromptTemplate prompt, item_prompt;
    LearnOptions opt;
    if (!f->prompt.empty()) {
      prompt = load_template(f->prompt);
      opt.interest_template = &prompt;
    }
    if (!f->item_prompt.empty()) {
      item_prompt = load_template(f->item_prompt);
      opt.item_template = &item_prompt;
    }
    opt.max_tokens = f->max_tokens;
    opt.item_max_tokens = f->item_max_tokens;
    opt.temperature = f->temperature;
    opt.repeat_penalty = f->repeat_penalty;
    opt.max_retries = f->retries;
    opt.candidates = f->candidates;
    opt.users = f->users;
    opt.sample = f->sample;
    opt.sample_seed = f->seed;
    opt.items = f->items && !f->no_items;
    opt.max_partitions = f->max_partitions;
    if (!f->user_list.empty()) {
      std::ifstream in(f->user_list);
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) opt.only_users.push_back(line);
      if (opt.only_users.empty())
        throw Error(ErrorKind::InvalidInput, fmt::format("{}: no user ids", f->user_list));
    }
    opt.cascade = !f->no_cascade;
    opt.variant = f->variant;
    opt.partitions = f->partitions;
    opt.use_cache = !f->no_cache;
    opt.sync = f->sync;
    opt.progress_bar = !f->quiet;
    StopOnSigint stop;  // Ctrl-C: in-flight requests finish and are recorded
    opt.stop = stop.flag();
    opt.on_record = [](const InterestRecord& r) {
      // One line per record on stdout (machine-readable progress; the crash test waits on
      // it): "record USER SEQ verified", "... rejected KIND,KIND", "... failed".
      std::set<std::string> distinct;
      for (const auto& reason : r.reasons) distinct.emplace(reason_kind(reason));
      std::string kinds;
      for (const auto& kind : distinct) kinds += (kinds.empty() ? " " : ",") + kind;
      std::printf("record %s %u %s%s\n", r.user.c_str(), r.seq,
                  !r.ok ? "failed" : r.quality.empty() ? "ok" : r.quality.c_str(), kinds.c_str());
      std::fflush(stdout);
    };
    auto store = open_rocksdb_store(f->store);
    std::fprintf(stderr, "liber: learn from %s with %s (context %d)\n", f->store.c_str(),
                 engine->model_id().c_str(), engine->context_length());
    const CostReport cost = learn_interests(*store, *engine, opt);
    std::printf("%s", cost.summary().c_str());
    if (cost.stopped) throw StoppedByRequest{};
  });
}

}  // namespace liber::cli
