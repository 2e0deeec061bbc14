// UIL — User Interest Learning (LIBER §UIL): the cascade over a user's partitions.
//
// For every user, partitions are processed in order: out_i = LLM(instructions, out_{i-1}, B_i),
// where out = {summary, shift}. Partition i of a user waits for partition i-1; different
// users run in parallel through ONE LlmEngine::run(RequestSource&) call, whose source keeps a
// ready set (the next pending partition of every user) so the batch stays full. It takes the
// lowest user (work order) first, so users finish in order: a run stopped part-way leaves
// whole users learned, which is what the experiment's population needs.
//
// Prompts. Templates are data (configs/prompts/*.json, the same text built in) with a
// version id; the template hash and the rendered prompt's hash go into every record. The
// instructions are message 0 (GenerationRequest::shared_prefix_messages = 1), identical for
// every request of a run, so llama.cpp can reuse its KV cache.
//
// Output. JSON {"summary": string, "shift": string}, constrained by a GBNF grammar
// (llama.cpp) and a JSON schema (HTTP); string lengths are bounded by the grammar from
// max_tokens. Malformed or empty output is retried (max_retries times, seed + attempt),
// then recorded as failed with the reason; the cascade goes on from the last good summary.
//
// Truncation rule. When prompt tokens + max_tokens exceed the engine's context, the OLDEST
// behaviors of the partition are dropped (fewest possible, found by count_tokens) and the
// number dropped is recorded. If even zero behaviors do not fit, the record fails with the
// reason "prompt does not fit"; nothing crashes.
//
// Variants. One store holds the records of several variants side by side (the cascade, the
// no-cascade ablation, a KAR-style summary of the first behaviors, other models or
// templates): a Variant is named by the user and identified by what makes its records,
// the partition set, cascade on/off, the model and the template hash. Records are keyed by
// the variant's id, so variants never overwrite each other; meta "uil.variant/<name>"
// holds the variant a name stands for.
//
// Store (column families, keys use external ids):
//   interests      variant id (8 bytes big-endian) + user key + big-endian seq
//                  -> InterestRecord (JSON, "v":1)
//   item_knowledge item id -> ItemKnowledge (JSON, "v":1)
//   llm_cache      16 hex of fnv1a64(model id, generation params, prompt) -> cached output
// Every record is written (one WriteBatch) the moment its request completes, so a run that
// is killed loses nothing finished, and a rerun processes only partitions without an ok
// record (failed ones are retried). The cache makes an identical prompt on the same model
// free.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "liber/data.h"
#include "liber/llm.h"
#include "liber/progress.h"
#include "liber/store.h"
#include "liber/ubsp.h"

namespace liber {

// ---- Templates -------------------------------------------------------------------------
// JSON: {"version": "uil_v4", "system": "...", "user": "...", "behavior": "...",
// "rating_unit": "..."}.
// Domain placeholders, anywhere (filled once per dataset by for_domain from the store's
// Domain): {item} {items} {category} {categories} {Categories} {rating_unit} {facets}.
// Placeholders in `user`, filled per prompt:
//   interest template: {user} {previous} {count} {like_threshold}, and the behaviors as
//                      {behaviors} (one line each, see `behavior`), {behaviors_by_rating}
//                      and/or {category_profile} (= {genre_profile}; see
//                      render_behaviors_by_rating, render_genre_profile)
//   item template:     {title} {genres} (the item's category values) {year}
// `behavior` (optional) is the line of one behavior in {behaviors}: {title} (with " (year)"
// unless the title holds it), {genres}, {year}, {rating}, {liked}. Absent: uil_v1's line
// "- Title | Genres | 1996 | rated 4 (liked)". `rating_unit` (optional) is the unit of the
// grouped ratings ("5 stars: ..."); absent: stars.
// uil_v4 (built in) is uil_v3 with the domain's nouns: on MovieLens it renders uil_v3's
// text word for word. Both use the grouped forms: about 11 prompt tokens per ML-1M behavior
// against uil_v2's 20 (one line per behavior), the bulk of the UIL stage's cost.
struct PromptTemplate {
  std::string version;
  std::string system;
  std::string user;
  std::string behavior;
  std::string rating_unit;

  // 16 hex digits of FNV-1a 64 over version, system, user (and behavior, rating_unit) text.
  std::string hash() const;
  std::string to_json() const;
  // Throws Error(Config) when a field is missing.
  static PromptTemplate from_json(std::string_view json, std::string_view where = "template");
  // This template with the domain's nouns in place (same version; the hash is the
  // instance's, so one template on two domains makes two variants). A domain without a
  // category loses the profile line. A template without domain placeholders is unchanged.
  PromptTemplate for_domain(const Domain& domain) const;
};
const PromptTemplate& builtin_interest_template();  // "uil_v4"
const PromptTemplate& builtin_item_template();      // "item_v2"
PromptTemplate load_template(const std::filesystem::path& file);

// ---- Rendering -------------------------------------------------------------------------
struct BehaviorText {
  std::string title;
  std::string genres;  // the domain's category values: "Action, Comedy"
  int year = 0;
  float rating = NAN;
  int8_t label = -1;
};

// "female, age 25-34, occupation: programmer" from the user table: every attribute but zip
// by its label (Attribute::label: the reader decodes coded values), gender and age first-
// class, others as "name: value". Unknown user: "unknown".
std::string describe_user(const BehaviorLog& log, std::string_view external_user);
// The partition's behaviors as text, in timestamp order. Items absent from the catalog are
// rendered by id.
std::vector<BehaviorText> behavior_texts(const BehaviorLog& log,
                                         std::span<const StoredEvent> events);
// One line per behavior, by `line` (a template's `behavior`; empty = uil_v1's line).
std::string render_behaviors(std::span<const BehaviorText> behaviors, float like_threshold,
                             std::string_view line = {});
// The behaviors grouped by rating, best first, oldest first within a group, titles with
// year: "5 stars: Heat (1995); Fargo (1996)\n3 stars: ...". Unrated (click) behaviors
// group as "liked: ..." / "not liked: ...". One rating per group instead of one per line.
std::string render_behaviors_by_rating(std::span<const BehaviorText> behaviors,
                                       float like_threshold, std::string_view rating_unit = "stars");
// The partition's genres by number of movies, with their mean rating, at most `top`:
// "Drama 20 (4.1), Comedy 12 (3.2)". Counted in code so a small model need not count.
std::string render_genre_profile(std::span<const BehaviorText> behaviors, std::size_t top = 6);
// [system: instructions, user: description + previous summary ("none") + behaviors].
std::vector<ChatMessage> render_interest_prompt(const PromptTemplate& t,
                                                std::string_view user_description,
                                                std::string_view previous_summary,
                                                std::span<const BehaviorText> behaviors,
                                                float like_threshold);
std::vector<ChatMessage> render_item_prompt(const PromptTemplate& t, const BehaviorText& item);
// 16 hex digits of FNV-1a 64 over the messages (roles and contents).
std::string prompt_hash(std::span<const ChatMessage> messages);

// Drops the oldest behaviors until count_tokens(prompt) + max_tokens <= context. Returns the
// prompt and sets `dropped`; nullopt when even no behaviors do not fit.
struct FittedPrompt {
  std::vector<ChatMessage> messages;
  int prompt_tokens = 0;
  std::size_t dropped = 0;
};
std::optional<FittedPrompt> fit_interest_prompt(const LlmEngine& engine, int max_tokens,
                                                const PromptTemplate& t,
                                                std::string_view user_description,
                                                std::string_view previous_summary,
                                                std::span<const BehaviorText> behaviors,
                                                float like_threshold);

// ---- Output ----------------------------------------------------------------------------
struct InterestOutput {
  std::string summary, shift;
};
// GBNF for {"summary": "...", "shift": "..."} with string lengths bounded from max_tokens.
std::string interest_grammar(int max_tokens);
std::string interest_json_schema();
// Accepts the JSON object alone or embedded in other text (code fences). Empty summary or
// missing fields -> nullopt with `why` set.
std::optional<InterestOutput> parse_interest_output(std::string_view text, std::string* why);

// ---- Verification ----------------------------------------------------------------------
// Well-formed is not good: a small model restates the instructions, copies the previous
// summary down the cascade, or praises genres the user rated low. Every record is checked in
// code against the partition it describes and the summary its prompt carried; a record that
// fails is not knowledge: it is kept (with its reasons) for inspection, but no later prompt
// carries it and no vector of it reaches a CTR model.
//
// Reasons, "kind: detail", kinds:
//   degenerate           under 5 words, or one phrase looped (few distinct words)
//   link, placeholders   a web address; a template's braces
//   copy, near-copy      the previous summary word for word, or >= 80% of its word triples
//   instructions         >= 30% of its word triples are the prompt's own, or 6+ words in a
//                        row from it
//   genre-contradiction  a genre named in praise whose mean rating in the partition is more
//                        than one star below the like threshold (or < 1/4 liked, unrated logs)
//   genre-absent         a genre of the catalog neither in the partition nor the previous summary
//   title-absent         a catalog title (2+ words) neither in the partition nor the previous
//                        summary
//   off-subject          no word of taste (likes, enjoys, prefers, fan, rated, ...), or it
//                        opens "The movie ..." / "This film ..." (the domain's item nouns):
//                        a plot, not interests
//   ungrounded           names no genre (or its plural) and no title of the partition (only
//                        where the domain has a category; "genre" = its values throughout)
struct Verdict {
  bool verified = false;
  std::vector<std::string> reasons;  // empty when verified
  double penalty = 0;                // candidates rank by it (0 = verified)
};
// "near-copy: 91% ..." -> "near-copy".
std::string_view reason_kind(std::string_view reason);

class InterestVerifier {
 public:
  // The catalog's titles and genres and the template's text, prepared once per run.
  InterestVerifier(const BehaviorLog& log, const PromptTemplate& prompt);
  Verdict verify(const InterestOutput& out, std::string_view previous_summary,
                 std::span<const BehaviorText> behaviors) const;

 private:
  float like_threshold_;
  std::unordered_set<std::string> instruction_triples_;
  std::vector<std::string> titles_, genres_;
  std::vector<std::string> plot_openers_;  // " the movie ", " this film ": the domain's nouns
};

// ---- Variants --------------------------------------------------------------------------
struct Variant {
  std::string name = "cascade";  // the user's label; not part of the id
  PartitionSet partitions;       // what is summarised
  bool cascade = true;           // false: every partition alone (previous summary "none")
  std::string model;             // LlmEngine::model_id()
  std::string template_version, template_hash;

  // 16 hex digits of FNV-1a 64 over partitions, cascade, model and template hash.
  std::string id() const;
  std::string to_json() const;
  static Variant from_json(std::string_view json);
};
// The variant `name` stands for in the store, if any.
std::optional<Variant> find_variant(Store& store, std::string_view name);
// Every named variant, by name.
std::vector<Variant> list_variants(Store& store);
// Makes `variant.name` stand for `variant` (a warning when it stood for other settings).
// Throws Error(Config) for a name that is not 1-64 letters, digits, '-' or '_'.
void register_variant(Store& store, const Variant& variant);

// Store format of UIL's families: 2 = records keyed by variant. A store of version 1
// (written before variants, records keyed by user and seq alone) is upgraded by
// migrate_interests: each record becomes a record of the variant its own fields name
// ("cascade", or "no-cascade" when no record carried a previous summary; partition set
// "ubsp"). learn_interests migrates on its own; read-only readers refuse a version-1 store
// with a message that says so.
inline constexpr int kInterestsVersion = 2;
int interests_version(Store& store);
// Returns how many records it re-keyed (0 when the store is current).
std::size_t migrate_interests(Store& store);
// Throws Error(InvalidInput) naming the store when interests_version(store) < 2.
void require_current_interests(Store& store);

// ---- Records ---------------------------------------------------------------------------
struct InterestRecord {
  std::string user;
  uint32_t seq = 0;
  std::string variant;       // Variant::id() of the variant that made it
  std::string variant_name;  // its name when made
  bool ok = false;
  std::string error;  // why it failed
  std::string summary, shift;
  std::string previous_summary;  // what the prompt carried ("" = none)
  std::string model, template_version, template_hash, prompt_hash;
  int prompt_tokens = 0, completion_tokens = 0, cached_prompt_tokens = 0;
  double latency_s = 0;
  int attempts = 0;
  uint32_t behaviors = 0, behaviors_dropped = 0;
  bool from_cache = false;  // output reused from the LLM cache, no call made
  int64_t created_at = 0;   // unix seconds
  // The verifier's verdict on an ok record: "verified" | "rejected" | "" (made before the
  // verifier; liber learn --verify gives it one). Only usable records are knowledge.
  std::string quality;
  std::vector<std::string> reasons;  // why rejected
  int candidates = 0;                // outputs sampled (the guard samples more on rejection)
  bool usable() const { return ok && quality == "verified"; }
  // The LLM call failed (a server down, a timeout): not an answer of the model, so the
  // partition is still to learn. The cascade writes such errors as "engine: ...".
  bool call_failed() const { return !ok && error.rfind(kCallFailedPrefix, 0) == 0; }
  static constexpr std::string_view kCallFailedPrefix = "engine: ";

  std::string to_json() const;
  static InterestRecord from_json(std::string_view json);
};

struct ItemKnowledge {
  std::string item;
  bool ok = false;
  std::string error;
  std::string text;
  std::string model, template_version, template_hash, prompt_hash;
  int prompt_tokens = 0, completion_tokens = 0, attempts = 0;
  double latency_s = 0;

  std::string to_json() const;
  static ItemKnowledge from_json(std::string_view json);
};

std::string interest_key(std::string_view variant_id, std::string_view user, uint32_t seq);
// The record of a user's partition `seq` under the variant, if the store has it.
std::optional<InterestRecord> read_interest(Store& store, std::string_view variant_id,
                                           std::string_view user, uint32_t seq);
// Adds a record made elsewhere (restored from a changelog) to the caller's batch, under its
// own variant, user and seq.
void put_interest(WriteBatch& batch, const InterestRecord& r);
std::vector<InterestRecord> read_interests(Store& store, std::string_view variant_id,
                                           std::string_view user);
// Every record of the variant, by (user key, seq); every variant's when variant_id is empty.
void for_each_interest(Store& store, std::string_view variant_id,
                       const std::function<void(const InterestRecord&)>& fn);
std::optional<ItemKnowledge> read_item_knowledge(Store& store, std::string_view item);
void for_each_item_knowledge(Store& store, const std::function<void(const ItemKnowledge&)>& fn);

// ---- The run ---------------------------------------------------------------------------
struct LearnOptions {
  int max_tokens = 200;
  float temperature = 0.2f;
  // Repetition penalty (llama.cpp engine; 1 = off): Gemma 3 270M loops without one.
  float repeat_penalty = 1.3f;
  uint64_t seed = 42;
  int max_retries = 2;          // extra attempts after a malformed/empty/failed output
  // The guard against cascade error accumulation: when an output fails the verifier, sample
  // up to this many outputs in all (new seeds) and keep the best by the verifier; if none
  // passes, the record is rejected and the next partition gets the last verified summary.
  // 1 = no guard (one output, still verified).
  int candidates = 3;
  std::size_t users = 0;        // first N users with partitions (store key order); 0 = all
  std::size_t sample = 0;       // or N random users (by sample_seed); 0 = off
  uint64_t sample_seed = 1;
  std::size_t max_partitions = 0;  // only each user's first N partitions; 0 = all
  std::vector<std::string> only_users;  // only these users (external ids); empty = all
  // The variant these records belong to (see Variants): its name, the partition set it
  // summarises ("ubsp" | "first:N", derived on first use), and cascade: false is the
  // no-cascade ablation, every partition summarised on its own (previous summary "none").
  std::string variant = "cascade";
  std::string partitions = "ubsp";
  bool cascade = true;
  // Item knowledge phase (after the cascade). Off by default: no stage reads its vectors yet.
  bool items = false;
  int item_max_tokens = 96;
  bool use_cache = true;        // reuse an identical prompt's output on the same model
  bool sync = false;            // fsync every record write
  bool progress_bar = false;
  ProgressCallback on_progress;  // partitions done (and the run's total), as each is stored
  // Naive re-summarisation cost: exact count_tokens over the rendered naive prompts when
  // their total text is at most this many bytes, otherwise the per-partition-block sum.
  std::size_t naive_exact_bytes = 64u << 20;
  const PromptTemplate* interest_template = nullptr;  // null = builtin
  const PromptTemplate* item_template = nullptr;      // null = builtin
  // Set (e.g. by SIGINT) to stop handing out new requests; in-flight ones finish and are
  // recorded.
  const std::atomic<bool>* stop = nullptr;
  // After each record is persisted.
  std::function<void(const InterestRecord&)> on_record;
};

struct CostReport {
  std::string variant, variant_name;  // the variant learned
  // LLM work of this run (all calls, retries included).
  uint64_t calls = 0, prompt_tokens = 0, completion_tokens = 0, cached_prompt_tokens = 0;
  uint64_t interest_calls = 0, interest_prompt_tokens = 0;
  uint64_t item_calls = 0, item_prompt_tokens = 0, item_completion_tokens = 0;
  // Partitions.
  uint64_t users = 0;                // users selected
  uint64_t partitions_total = 0;     // partitions of the selected users
  uint64_t partitions_already = 0;   // had an ok record before the run
  uint64_t partitions_ok = 0, partitions_failed = 0, partitions_from_cache = 0;
  // The verifier over this run's ok records; the guard's extra candidates and their tokens.
  uint64_t partitions_verified = 0, partitions_rejected = 0;
  uint64_t guard_calls = 0, guard_prompt_tokens = 0, guard_completion_tokens = 0;
  std::map<std::string, uint64_t> rejection_reasons;  // reason kind -> rejected records
  uint64_t behaviors = 0;            // behaviors of the partitions processed in this run
  uint64_t behaviors_dropped = 0;    // by the truncation rule
  uint64_t items_total = 0, items_already = 0, items_ok = 0, items_failed = 0;
  double wall_s = 0, interest_wall_s = 0;
  bool stopped = false;              // stop flag seen
  // Naive alternative over the same partitions processed here: at each partition close,
  // re-summarise all of the user's behaviors so far (partitions 0..i), one call each.
  uint64_t naive_calls = 0, naive_prompt_tokens = 0;
  bool naive_exact = false;          // false: per-block token sums (see LearnOptions)

  double tokens_per_1k_behaviors() const;  // (prompt + completion) of the cascade
  double naive_ratio() const;              // naive prompt tokens / cascade prompt tokens
  std::string summary() const;             // multi-line, for the CLI
  std::string to_json() const;
  static CostReport from_json(std::string_view json);
  // Field-wise sum (counts, times), for the total over several runs.
  CostReport& operator+=(const CostReport& other);
};

// Runs the cascade over the store's partitions, rendering behaviors from the catalog that
// ingest stored (load_behavior_log): the store is the stage's whole input. Every run that
// made LLM calls also stores its CostReport in the store (progress family,
// "uil.run/<variant id>/<unix ms>"), read back by read_learn_runs. The variant is registered
// under its name (a name whose settings changed now stands for the new variant; the old
// records stay under their id).
CostReport learn_interests(Store& store, LlmEngine& engine, const LearnOptions& options = {});
std::vector<CostReport> read_learn_runs(Store& store, std::string_view variant_id);

// The verifier over a variant's stored records, e.g. ones made before it existed: each ok
// record gets its verdict from its partition and the summary its prompt carried, and is
// rewritten when the verdict changed. (A record carried a summary the guard would now
// reject: relearn the variant to redo the cascade.)
struct VerifyReport {
  uint64_t records = 0, ok = 0, verified = 0, rejected = 0, changed = 0;
  std::map<std::string, uint64_t> reasons;  // reason kind -> rejected records
};
VerifyReport verify_interests(Store& store, const Variant& variant,
                              const PromptTemplate* interest_template = nullptr);
// Users with at least one partition in the variant's set whose every such partition has a
// record of the variant (ok or failed).
std::vector<std::string> learned_users(Store& store, const Variant& variant);

}  // namespace liber
