// UIL throughput on this machine, same model, same prompts, one run:
//   (a) liber's UIL stage (learn_interests over the first N users, llama.cpp engine);
//   (b) the ceiling: a bare llama.cpp loop (no liber engine) over the same prompt tokens,
//       `parallel` sequences in one context, the common prompt prefix evaluated once,
//       batched prefill and greedy-argmax decode of exactly the same number of tokens per
//       prompt (no grammar, no sampler chain, no dependencies between prompts);
//   (c) the peer a user would write instead: bench/uil_python_peer.py, a Python loop over
//       llama_cpp.Llama.create_chat_completion, one prompt after the other.
// Goals: (a) >= 0.85 x (b) and (a) >= 2 x (c), compared on total tokens/s (prompt +
// generated tokens over the wall time of the generation work; model loading excluded).
//
// usage: uil_throughput [--data-dir DIR] [--users N=6] [--k 50] [--parallel 4]
//                       [--threads 2] [--max-tokens 96] [--model PATH] [--python PATH]
//                       [--peer-script PATH] [--no-python]
//   DIR defaults to $LIBER_DATA_DIR (MovieLens-1M; the partial copy is fine).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <llama.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "liber/data.h"
#include "liber/llm.h"
#include "liber/llm/chat_format.h"
#include "liber/store.h"
#include "liber/ubsp.h"
#include "liber/uil.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace liber;

// Partitions of a full ML-1M pass over users 1-2999 (the partial ML-1M) with K = 50.
constexpr double kFullPartitions = 8241;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Args {
  std::string data_dir;
  std::size_t users = 6;
  std::size_t k = 50;
  int parallel = 4;
  int threads = 2;
  int max_tokens = 96;
  std::string model;
  std::string python;
  std::string peer_script;
  bool no_python = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "%s\nusage: uil_throughput [--data-dir DIR] [--users N] [--k K] [--parallel P] "
               "[--threads T] [--max-tokens M] [--model PATH] [--python PATH] "
               "[--peer-script PATH] [--no-python]\n",
               why);
  std::exit(2);
}

Args parse_args(int argc, char** argv) {
  Args a;
  if (const char* d = std::getenv("LIBER_DATA_DIR"); d && *d) a.data_dir = d;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) usage(fmt::format("{} needs a value", argv[i]).c_str());
    return argv[++i];
  };
  auto number = [&](int& i) -> long {
    const std::string flag = argv[i];
    const std::string v = value(i);
    char* end = nullptr;
    const long n = std::strtol(v.c_str(), &end, 10);
    if (!end || *end || n < 0) usage(fmt::format("{}: not a number: {}", flag, v).c_str());
    return n;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view f = argv[i];
    if (f == "--data-dir") a.data_dir = value(i);
    else if (f == "--users") a.users = static_cast<std::size_t>(number(i));
    else if (f == "--k") a.k = static_cast<std::size_t>(number(i));
    else if (f == "--parallel") a.parallel = static_cast<int>(number(i));
    else if (f == "--threads") a.threads = static_cast<int>(number(i));
    else if (f == "--max-tokens") a.max_tokens = static_cast<int>(number(i));
    else if (f == "--model") a.model = value(i);
    else if (f == "--python") a.python = value(i);
    else if (f == "--peer-script") a.peer_script = value(i);
    else if (f == "--no-python") a.no_python = true;
    else if (f == "-h" || f == "--help") usage("UIL throughput: liber vs bare llama.cpp vs Python");
    else usage(fmt::format("unknown argument {}", f).c_str());
  }
  if (a.parallel < 1 || a.threads < 1 || a.users < 1 || a.k < 1 || a.max_tokens < 8)
    usage("--parallel, --threads, --users, --k must be >= 1 and --max-tokens >= 8");
  if (a.model.empty()) a.model = default_model_path();
  if (a.python.empty()) {
    fs::path home;
    if (const char* h = std::getenv("LIBER_HOME"); h && *h) home = h;
    else if (const char* u = std::getenv("HOME"); u && *u) home = fs::path(u) / ".cache" / "liber";
    a.python = (home / "venv" / "bin" / "python").string();
  }
  if (a.peer_script.empty())
    a.peer_script = (fs::path(__FILE__).parent_path() / "uil_python_peer.py").string();
  return a;
}

struct Side {
  std::string name;
  uint64_t prompt_tokens = 0, completion_tokens = 0;
  double seconds = 0;
  bool ran = false;
  double prompt_rate() const { return seconds > 0 ? prompt_tokens / seconds : 0; }
  double gen_rate() const { return seconds > 0 ? completion_tokens / seconds : 0; }
  double total_rate() const {
    return seconds > 0 ? (prompt_tokens + completion_tokens) / seconds : 0;
  }
};

// One prompt of the cascade, re-rendered exactly as the cascade rendered it.
struct Work {
  std::vector<ChatMessage> messages;
  int prompt_tokens = 0;      // as the engine counted them (record)
  int completion_tokens = 0;  // what (a) generated for it (record, last attempt)
};

// ---- (b): the bare llama.cpp loop --------------------------------------------------------

std::vector<llama_token> tokenize(const llama_vocab* vocab, const std::string& text) {
  std::vector<llama_token> out(text.size() + 8);
  int n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                         static_cast<int32_t>(out.size()), true, true);
  if (n < 0) {
    out.resize(static_cast<std::size_t>(-n));
    n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), out.data(),
                       static_cast<int32_t>(out.size()), true, true);
  }
  if (n < 0) throw std::runtime_error("llama_tokenize failed");
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// Renders like liber's engine: the GGUF's chat template, else "gemma" for Gemma models
// (system folded into the first user turn), else ChatML.
std::string render_chat(const llama_model* model, const std::vector<ChatMessage>& messages) {
  std::string tmpl;
  if (const char* t = llama_model_chat_template(model, nullptr); t && *t) {
    tmpl = t;
  } else {
    char arch[64] = {0};
    llama_model_meta_val_str(model, "general.architecture", arch, sizeof arch);
    tmpl = std::string_view(arch).starts_with("gemma") ? "gemma" : "chatml";
  }
  const bool fold = tmpl == "gemma" || tmpl.find("<start_of_turn>") != std::string::npos;
  const auto msgs = fold ? llm::fold_system_messages(messages) : messages;
  std::vector<llama_chat_message> chat;
  std::size_t chars = 0;
  for (const auto& m : msgs) {
    chat.push_back({m.role.c_str(), m.content.c_str()});
    chars += m.role.size() + m.content.size();
  }
  std::vector<char> buf(2 * chars + 1024);
  int n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), true, buf.data(),
                                    static_cast<int32_t>(buf.size()));
  if (n > static_cast<int>(buf.size())) {
    buf.resize(static_cast<std::size_t>(n));
    n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), true, buf.data(),
                                  static_cast<int32_t>(buf.size()));
  }
  if (n < 0) throw std::runtime_error("llama_chat_apply_template failed");
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

struct CeilingResult {
  Side side;
  std::size_t prefix_tokens = 0;
  std::size_t count_mismatches = 0;
};

CeilingResult run_ceiling(const Args& args, const std::vector<Work>& work) {
  CeilingResult out;
  out.side.name = "(b) bare llama.cpp";
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  llama_model* model = llama_model_load_from_file(args.model.c_str(), mp);
  if (!model) throw std::runtime_error("llama.cpp could not load " + args.model);
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_vocab = llama_vocab_n_tokens(vocab);

  std::vector<std::vector<llama_token>> prompts;
  for (const Work& w : work) {
    prompts.push_back(tokenize(vocab, render_chat(model, w.messages)));
    if (static_cast<int>(prompts.back().size()) != w.prompt_tokens) ++out.count_mismatches;
  }
  // The prefix every prompt shares (the instructions), evaluated once as the engine does.
  std::size_t prefix = prompts.empty() ? 0 : prompts[0].size();
  for (const auto& p : prompts) {
    std::size_t i = 0;
    while (i < prefix && i < p.size() && p[i] == prompts[0][i]) ++i;
    prefix = i;
  }
  for (const auto& p : prompts) prefix = std::min(prefix, p.size() - 1);  // >= 1 own token
  out.prefix_tokens = prefix;

  int seq_ctx = 4096;
  if (const int n_train = llama_model_n_ctx_train(model); n_train > 0) seq_ctx = std::min(seq_ctx, n_train);
  const int n_seq = args.parallel + 1;
  const int n_batch = std::max(512, n_seq);
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(seq_ctx * n_seq);
  cp.n_batch = static_cast<uint32_t>(n_batch);
  cp.n_ubatch = static_cast<uint32_t>(std::min(n_batch, 512));
  cp.n_seq_max = static_cast<uint32_t>(n_seq);
  cp.n_threads = args.threads;
  cp.n_threads_batch = args.threads;
  cp.kv_unified = false;  // as the engine: one KV stream per sequence
  cp.no_perf = true;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) throw std::runtime_error("llama.cpp could not create the context");
  llama_memory_t mem = llama_get_memory(ctx);
  llama_batch batch = llama_batch_init(n_batch, 0, 1);
  auto add = [&](llama_token t, int pos, int seq, bool logits) {
    const int i = batch.n_tokens++;
    batch.token[i] = t;
    batch.pos[i] = pos;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = seq;
    batch.logits[i] = logits ? 1 : 0;
    return i;
  };
  auto argmax = [&](int row) {
    const float* l = llama_get_logits_ith(ctx, row);
    return static_cast<llama_token>(std::max_element(l, l + n_vocab) - l);
  };

  struct Slot {
    int job = -1, seq = 0, n_past = 0, n_gen = 0, target = 0, row = -1;
    bool pending = false;
    llama_token tok = 0;
  };
  std::vector<Slot> slots(static_cast<std::size_t>(args.parallel));
  for (std::size_t i = 0; i < slots.size(); ++i) slots[i].seq = static_cast<int>(i) + 1;

  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < prefix;) {  // the shared prefix into seq 0
    batch.n_tokens = 0;
    while (i < prefix && batch.n_tokens < n_batch) {
      add(prompts[0][i], static_cast<int>(i), 0, false);
      ++i;
    }
    if (llama_decode(ctx, batch) != 0) throw std::runtime_error("llama_decode failed (prefix)");
  }
  std::size_t next = 0, done = 0;
  while (done < work.size()) {
    for (auto& s : slots) {
      if (s.job >= 0 || next >= work.size()) continue;
      s.job = static_cast<int>(next++);
      llama_memory_seq_rm(mem, s.seq, -1, -1);
      if (prefix > 0) llama_memory_seq_cp(mem, 0, s.seq, -1, -1);
      s.n_past = static_cast<int>(prefix);
      s.n_gen = 0;
      s.target = work[static_cast<std::size_t>(s.job)].completion_tokens;
      s.pending = false;
      s.row = -1;
    }
    batch.n_tokens = 0;
    for (auto& s : slots)
      if (s.job >= 0 && s.pending) {
        s.row = add(s.tok, s.n_past++, s.seq, true);
        s.pending = false;
      }
    for (auto& s : slots) {
      if (s.job < 0 || s.n_gen > 0 || s.row >= 0) continue;
      const auto& p = prompts[static_cast<std::size_t>(s.job)];
      const int n = static_cast<int>(p.size());
      while (s.n_past < n && batch.n_tokens < n_batch) {
        const bool last = s.n_past == n - 1;
        const int idx = add(p[static_cast<std::size_t>(s.n_past)], s.n_past, s.seq, last);
        if (last) s.row = idx;
        ++s.n_past;
      }
      if (batch.n_tokens >= n_batch) break;
    }
    if (batch.n_tokens == 0) throw std::runtime_error("empty batch");
    if (llama_decode(ctx, batch) != 0) throw std::runtime_error("llama_decode failed");
    for (auto& s : slots) {
      if (s.job < 0 || s.row < 0) continue;
      const int row = s.row;
      s.row = -1;
      if (s.target <= 0) {  // prompt only
        s.job = -1;
        ++done;
        continue;
      }
      s.tok = argmax(row);
      if (++s.n_gen >= s.target) {
        s.job = -1;
        ++done;
        continue;
      }
      s.pending = true;
    }
  }
  out.side.seconds = since(t0);
  out.side.ran = true;
  for (std::size_t i = 0; i < work.size(); ++i) {
    out.side.prompt_tokens += prompts[i].size();
    out.side.completion_tokens += static_cast<uint64_t>(std::max(0, work[i].completion_tokens));
  }
  llama_batch_free(batch);
  llama_free(ctx);
  llama_model_free(model);
  return out;
}

// ---- (c): the Python peer ----------------------------------------------------------------

std::optional<Side> run_python(const Args& args, const fs::path& jsonl, std::string* why) {
  if (!fs::exists(args.python)) {
    *why = "no python at " + args.python;
    return std::nullopt;
  }
  if (!fs::exists(args.peer_script)) {
    *why = "no peer script at " + args.peer_script;
    return std::nullopt;
  }
  const std::string cmd =
      fmt::format("'{}' '{}' --prompts '{}' --model '{}' --threads {}", args.python,
                  args.peer_script, jsonl.string(), args.model, args.threads);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) {
    *why = "popen failed";
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = ::pclose(p);
  std::string last;
  for (std::size_t pos = 0; pos < out.size();) {
    const std::size_t nl = out.find('\n', pos);
    const std::string line = out.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (line.starts_with("{")) last = line;
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  if (rc != 0 || last.empty()) {
    *why = fmt::format("peer exited with {} (output: {})", rc, out.substr(0, 400));
    return std::nullopt;
  }
  const auto j = nlohmann::json::parse(last);
  Side s;
  s.name = "(c) python llama_cpp";
  s.prompt_tokens = j.at("prompt_tokens").get<uint64_t>();
  s.completion_tokens = j.at("completion_tokens").get<uint64_t>();
  s.seconds = j.at("seconds").get<double>();
  s.ran = true;
  return s;
}

int run(const Args& args) {
  const fs::path tmp = fs::temp_directory_path() / fmt::format("liber-uil-throughput-{}", ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{tmp};

  // 1. Data and partitions.
  auto t = Clock::now();
  const BehaviorLog log = load_dataset("ml-1m", args.data_dir);
  PartitionRule rule;
  rule.count = args.k;
  const IngestStats ing = ingest_log(tmp / "store", log, rule, {});
  std::printf("data         %s: %zu events, %zu users; %llu partitions (K=%zu) ingested in %.1fs\n",
              args.data_dir.c_str(), log.events.size(), log.users.size(),
              static_cast<unsigned long long>(ing.partitions()), args.k, since(t));
  auto store = open_rocksdb_store(tmp / "store");

  // 2. (a) liber's UIL stage.
  Side a;
  a.name = "(a) liber UIL";
  std::vector<Work> work;
  uint64_t partitions = 0, ok = 0, calls = 0;
  {
    LlamaOptions lo;
    lo.model_path = args.model;
    lo.context = args.parallel * 4096;
    lo.parallel = args.parallel;
    lo.threads = args.threads;
    t = Clock::now();
    auto engine = make_llama_engine(lo);
    std::printf("model        %s (%s), loaded in %.1fs; parallel %d, threads %d\n",
                args.model.c_str(), engine->model_id().c_str(), since(t), args.parallel,
                args.threads);
    LearnOptions opt;
    opt.max_tokens = args.max_tokens;
    opt.temperature = 0.0f;  // greedy: deterministic lengths on every side
    opt.users = args.users;
    opt.items = false;
    opt.use_cache = false;
    opt.naive_exact_bytes = 0;  // the naive estimate is not part of the timed stage
    const CostReport cost = learn_interests(*store, *engine, opt);
    a.seconds = cost.interest_wall_s;
    a.prompt_tokens = cost.prompt_tokens;
    a.completion_tokens = cost.completion_tokens;
    a.ran = true;
    calls = cost.calls;
    std::printf("(a) cascade  %llu users, %llu partitions (%llu ok, %llu failed), %llu calls, "
                "%llu prompt tokens of which %llu from the shared prefix\n",
                static_cast<unsigned long long>(cost.users),
                static_cast<unsigned long long>(cost.partitions_total),
                static_cast<unsigned long long>(cost.partitions_ok),
                static_cast<unsigned long long>(cost.partitions_failed),
                static_cast<unsigned long long>(cost.calls),
                static_cast<unsigned long long>(cost.prompt_tokens),
                static_cast<unsigned long long>(cost.cached_prompt_tokens));
    partitions = cost.partitions_ok + cost.partitions_failed;
    ok = cost.partitions_ok;

    // 3. The same prompts, re-rendered from the records (previous summary, drops).
    const PromptTemplate tmpl = builtin_interest_template().for_domain(log.domain);
    std::size_t hash_mismatch = 0;
    std::map<std::string, std::vector<InterestRecord>> by_user;
    for_each_interest(*store, "", [&](const InterestRecord& r) { by_user[r.user].push_back(r); });
    for (auto& [user, recs] : by_user) {
      std::sort(recs.begin(), recs.end(),
                [](const InterestRecord& x, const InterestRecord& y) { return x.seq < y.seq; });
      std::map<uint32_t, StoredPartition> parts;
      for (auto& p : read_partitions(*store, user)) parts.emplace(p.seq, std::move(p));
      const std::string desc = describe_user(log, user);
      for (const InterestRecord& r : recs) {
        if (r.prompt_tokens <= 0 || !parts.contains(r.seq)) continue;
        const auto texts = behavior_texts(log, parts.at(r.seq).events);
        const std::size_t drop = std::min<std::size_t>(r.behaviors_dropped, texts.size());
        Work w;
        w.messages = render_interest_prompt(
            tmpl, desc, r.previous_summary,
            std::span<const BehaviorText>(texts).subspan(drop), log.like_threshold);
        if (prompt_hash(w.messages) != r.prompt_hash) ++hash_mismatch;
        // A record sums its attempts (retries re-send the same prompt): replay every
        // attempt, splitting the generated tokens evenly (greedy attempts are identical).
        const int attempts = std::max(1, r.attempts);
        w.prompt_tokens = r.prompt_tokens / attempts;
        for (int i = 0; i < attempts; ++i) {
          Work copy = w;
          copy.completion_tokens =
              r.completion_tokens / attempts + (i < r.completion_tokens % attempts ? 1 : 0);
          work.push_back(std::move(copy));
        }
      }
    }
    if (hash_mismatch)
      std::printf("warning      %zu re-rendered prompts differ from the recorded prompt hash\n",
                  hash_mismatch);
  }  // the engine (and its KV cache) is freed before (b)

  const fs::path jsonl = tmp / "prompts.jsonl";
  {
    std::ofstream f(jsonl);
    for (const Work& w : work) {
      nlohmann::json msgs = nlohmann::json::array();
      for (const auto& m : w.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
      f << nlohmann::json{{"messages", msgs}, {"max_tokens", w.completion_tokens}}.dump() << '\n';
    }
  }
  uint64_t rec_prompt = 0, rec_completion = 0;
  for (const Work& w : work) {
    rec_prompt += static_cast<uint64_t>(w.prompt_tokens);
    rec_completion += static_cast<uint64_t>(std::max(0, w.completion_tokens));
  }
  if (calls != work.size() || rec_prompt != a.prompt_tokens || rec_completion != a.completion_tokens)
    std::printf("note         (a) made %llu calls (retries included); (b) and (c) replay %zu "
                "calls from the records: %llu prompt + %llu completion tokens\n",
                static_cast<unsigned long long>(calls), work.size(),
                static_cast<unsigned long long>(rec_prompt),
                static_cast<unsigned long long>(rec_completion));

  // 4. (b) the ceiling.
  CeilingResult b = run_ceiling(args, work);
  std::printf("(b) ceiling  %zu prompts, common prefix of %zu tokens evaluated once; %zu prompts "
              "tokenized to a different count than the engine's\n",
              work.size(), b.prefix_tokens, b.count_mismatches);

  // 5. (c) the Python peer.
  std::optional<Side> c;
  if (!args.no_python) {
    std::string why;
    c = run_python(args, jsonl, &why);
    if (!c) std::printf("(c) python   not run: %s\n", why.c_str());
  }

  // 6. The table.
  std::printf("\n%-22s | %13s | %17s | %8s | %12s | %9s | %11s\n", "side", "prompt tokens",
              "completion tokens", "seconds", "prompt tok/s", "gen tok/s", "total tok/s");
  std::printf("%s\n", std::string(22 + 13 + 17 + 8 + 12 + 9 + 11 + 18, '-').c_str());
  auto row = [](const Side& s) {
    std::printf("%-22s | %13llu | %17llu | %8.2f | %12.1f | %9.1f | %11.1f\n", s.name.c_str(),
                static_cast<unsigned long long>(s.prompt_tokens),
                static_cast<unsigned long long>(s.completion_tokens), s.seconds, s.prompt_rate(),
                s.gen_rate(), s.total_rate());
  };
  row(a);
  row(b.side);
  if (c) row(*c);
  std::printf("(rates = tokens / wall seconds of the generation work, model load excluded; "
              "(a): learn_interests' cascade wall time, all calls incl. retries)\n\n");

  const double ab = b.side.total_rate() > 0 ? a.total_rate() / b.side.total_rate() : 0;
  std::printf("(a)/(b) total tok/s  %.3f  goal >= 0.85  %s   (wall time for the same work: "
              "(b) %.2fs / (a) %.2fs = %.3f)\n",
              ab, ab >= 0.85 ? "PASS" : "MISS", b.side.seconds, a.seconds,
              a.seconds > 0 ? b.side.seconds / a.seconds : 0);
  if (c) {
    const double ac = c->total_rate() > 0 ? a.total_rate() / c->total_rate() : 0;
    const bool same = c->prompt_tokens == a.prompt_tokens && c->completion_tokens == a.completion_tokens;
    std::printf("(a)/(c) total tok/s  %.3f  goal >= 2     %s   (wall time: (c) %.2fs / (a) %.2fs "
                "= %.3f%s)\n",
                ac, ac >= 2.0 ? "PASS" : "MISS", c->seconds, a.seconds,
                a.seconds > 0 ? c->seconds / a.seconds : 0,
                same ? "" : "; token counts differ, compare tok/s");
  } else {
    std::printf("(a)/(c)              not measured\n");
  }
  if (partitions > 0) {
    const double per = a.seconds / static_cast<double>(partitions);
    const double full = per * kFullPartitions;
    std::printf("projection   (a) %.2f s/partition (%llu partitions, %llu ok) x %.0f partitions "
                "(ML-1M users 1-2999, K=50) = %.0f s = %.1f h\n",
                per, static_cast<unsigned long long>(partitions),
                static_cast<unsigned long long>(ok), kFullPartitions, full, full / 3600.0);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "uil_throughput: %s\n", e.what());
    return 1;
  }
}
