// Continuous batching: the generation context, the shared-prefix sequence, and run(), which
// fills free slots from the RequestSource and decodes all of them one batch at a time.
// Separate because it owns the KV-cache layout that no other part touches:
//
// Sequence layout of the generation context (one KV stream per sequence):
//   seq 0            the shared instruction prefix of the current run (evaluated once per
//                    distinct prefix; slots get it by llama_memory_seq_cp, a copy of the
//                    stream's KV cells: no recompute);
//   seq 1..parallel  one request each.
// Each request may use context_length() = options.context / parallel cells (prompt plus
// generated tokens); the context holds one more such share for the prefix sequence.
#include <algorithm>
#include <chrono>
#include <memory>

#include <fmt/format.h>
#include <llama.h>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/llama/engine.h"

namespace liber::llm::llama {

namespace {

constexpr llama_seq_id kPrefixSeq = 0;

}  // namespace

void LlamaEngine::ensure_gen_context() {
  if (ctx_) return;
  llama_context_params cp = llama_context_default_params();
  const int n_seq = options_.parallel + 1;  // + the prefix sequence
  cp.n_ctx = static_cast<uint32_t>(seq_ctx_) * static_cast<uint32_t>(n_seq);
  n_batch_ = std::max(options_.batch, options_.parallel + 1);
  cp.n_batch = static_cast<uint32_t>(n_batch_);
  cp.n_ubatch = static_cast<uint32_t>(std::min(n_batch_, 512));
  cp.n_seq_max = static_cast<uint32_t>(n_seq);
  cp.n_threads = options_.threads;
  cp.n_threads_batch = options_.threads;
  // One KV stream per sequence: attention of a token then spans its own sequence's cells,
  // not every cell of every slot (uil_throughput, 6 users: 6.17 -> 4.05 s per partition).
  // The prefix reaches a slot by a stream copy instead of a shared cell tag.
  cp.kv_unified = false;
  cp.embeddings = false;
  cp.no_perf = true;
  ctx_.reset(llama_init_from_model(model_.get(), cp));
  if (!ctx_)
    throw Error(ErrorKind::Internal,
                fmt::format("llama.cpp could not create a context of {} tokens, {} sequences",
                            cp.n_ctx, n_seq));
  llama_set_n_threads(ctx_.get(), options_.threads, options_.threads);
  batch_ = std::make_unique<Batch>(n_batch_);
}

bool LlamaEngine::eval_prefix(const std::vector<llama_token>& tokens) {
  llama_memory_t mem = llama_get_memory(ctx_.get());
  llama_memory_seq_rm(mem, kPrefixSeq, -1, -1);
  prefix_tokens_.clear();
  Batch batch(n_batch_);
  for (std::size_t i = 0; i < tokens.size();) {
    batch.clear();
    while (i < tokens.size() && batch.room() > 0) {
      batch.add(tokens[i], static_cast<llama_pos>(i), kPrefixSeq, false);
      ++i;
    }
    if (llama_decode(ctx_.get(), batch.get()) != 0) {
      llama_memory_seq_rm(mem, kPrefixSeq, -1, -1);
      return false;
    }
  }
  prefix_tokens_ = tokens;
  return true;
}

std::string LlamaEngine::start(Slot& s, uint64_t tag, const GenerationRequest& req,
                               GenerationResult& r) {
  s.tag = tag;
  s.start = Clock::now();
  s.n_past = s.n_gen = s.cached = 0;
  s.has_pending = false;
  s.i_batch = -1;
  s.text.clear();
  s.chain.reset();
  s.grammar.reset();
  if (req.messages.empty()) return "request has no messages";

  const std::string full = render(req.messages, true);
  s.prompt = tokenize(full, true, true);
  const int n_prompt = static_cast<int>(s.prompt.size());
  r.prompt_tokens = n_prompt;
  if (n_prompt >= seq_ctx_)
    return fmt::format("prompt of {} tokens exceeds the context of {}", n_prompt, seq_ctx_);

  if (std::string err = init_sampler(s, req); !err.empty()) return err;
  s.max_gen = std::min(req.max_tokens, seq_ctx_ - n_prompt);

  // Shared prefix: reuse seq 0 when the rendered prefix tokenizes to a strict prefix of the
  // prompt; otherwise (template or tokenizer boundary effects) prefill everything.
  const std::size_t k =
      static_cast<std::size_t>(std::clamp(req.shared_prefix_messages, 0,
                                          static_cast<int>(req.messages.size())));
  if (k > 0) {
    const std::string ptext = prefix_text(req.messages, k, full);
    if (!ptext.empty()) {
      const auto ptoks = tokenize(ptext, true, true);
      if (ptoks.size() > 1 && ptoks.size() < s.prompt.size() &&
          std::equal(ptoks.begin(), ptoks.end(), s.prompt.begin())) {
        bool ok = true, hit = ptoks == prefix_tokens_;
        if (!hit) ok = eval_prefix(ptoks);
        if (ok) {
          llama_memory_seq_cp(llama_get_memory(ctx_.get()), kPrefixSeq, s.seq, -1, -1);
          s.n_past = static_cast<int>(ptoks.size());
          s.cached = hit ? s.n_past : 0;
        }
      }
    }
  }
  s.active = true;
  return {};
}

void LlamaEngine::finish(Slot& s, RequestSource& source, bool truncated, std::string error) {
  GenerationResult r;
  r.text = std::move(s.text);
  r.prompt_tokens = static_cast<int>(s.prompt.size());
  r.completion_tokens = s.n_gen;
  r.cached_prompt_tokens = s.cached;
  r.latency_s = std::chrono::duration<double>(Clock::now() - s.start).count();
  r.truncated = truncated;
  r.error = std::move(error);
  llama_memory_seq_rm(llama_get_memory(ctx_.get()), s.seq, -1, -1);
  s.active = false;
  s.has_pending = false;
  s.i_batch = -1;
  s.chain.reset();
  s.grammar.reset();
  s.text.clear();
  source.complete(s.tag, std::move(r));
}

void LlamaEngine::run(RequestSource& source) {
  if (running_) throw Error(ErrorKind::Internal, "LlamaEngine::run is not reentrant");
  ensure_gen_context();
  running_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{running_};

  llama_memory_t mem = llama_get_memory(ctx_.get());
  std::vector<Slot> slots(static_cast<std::size_t>(options_.parallel));
  for (std::size_t i = 0; i < slots.size(); ++i) {
    slots[i].seq = static_cast<llama_seq_id>(i + 1);
    llama_memory_seq_rm(mem, slots[i].seq, -1, -1);  // leftovers of an aborted run
  }
  // On an exception (e.g. from source.complete) free what the active slots hold.
  struct Cleanup {
    std::vector<Slot>& slots;
    llama_memory_t mem;
    ~Cleanup() {
      for (auto& s : slots)
        if (s.active) llama_memory_seq_rm(mem, s.seq, -1, -1);
    }
  } cleanup{slots, mem};

  Batch& batch = *batch_;
  for (;;) {
    // Fill free slots; requests that fail up front complete at once (which may release
    // dependent requests, hence the `progressed` retry below).
    bool progressed = false;
    for (auto& s : slots) {
      while (!s.active) {
        auto next = source.next();
        if (!next) break;
        progressed = true;
        GenerationResult r;
        std::string err = start(s, next->first, next->second, r);
        if (!err.empty()) {
          s.active = false;
          r.error = std::move(err);
          r.latency_s = std::chrono::duration<double>(Clock::now() - s.start).count();
          source.complete(next->first, std::move(r));
          continue;
        }
        if (s.max_gen <= 0) {  // max_tokens <= 0: nothing to generate
          finish(s, source, true);
          continue;
        }
      }
    }
    const bool any_active = std::any_of(slots.begin(), slots.end(),
                                        [](const Slot& s) { return s.active; });
    if (!any_active) {
      if (source.exhausted()) break;
      if (progressed) continue;
      throw Error(ErrorKind::Internal,
                  "request source has nothing ready, is not exhausted, and no request is in "
                  "flight: it would wait forever");
    }

    // One batch: the next token of every decoding sequence, then prompt chunks.
    batch.clear();
    for (auto& s : slots) {
      if (!s.active || !s.has_pending) continue;
      s.i_batch = batch.add(s.pending, s.n_past, s.seq, true);
      ++s.n_past;
      s.has_pending = false;
    }
    for (auto& s : slots) {
      if (!s.active || s.n_gen > 0 || s.i_batch >= 0) continue;
      const int n_prompt = static_cast<int>(s.prompt.size());
      while (s.n_past < n_prompt && batch.room() > 0) {
        const bool last = s.n_past == n_prompt - 1;
        const int idx = batch.add(s.prompt[static_cast<std::size_t>(s.n_past)], s.n_past, s.seq,
                                  last);
        if (last) s.i_batch = idx;
        ++s.n_past;
      }
      if (batch.room() == 0) break;
    }
    if (batch.size() == 0) throw Error(ErrorKind::Internal, "empty batch with active requests");

    if (const int rc = llama_decode(ctx_.get(), batch.get()); rc != 0) {
      const std::string msg = fmt::format("llama_decode failed ({}{})", rc,
                                          rc == 1 ? ": no room in the KV cache" : "");
      for (auto& s : slots)
        if (s.active) finish(s, source, false, msg);
      continue;
    }

    for (auto& s : slots) {
      if (!s.active || s.i_batch < 0) continue;
      const int i = s.i_batch;
      s.i_batch = -1;
      const llama_token tok = sample(s, i);
      if (llama_vocab_is_eog(vocab_, tok)) {
        finish(s, source, false);
        continue;
      }
      append_piece(s.text, tok);
      ++s.n_gen;
      if (s.n_gen >= s.max_gen) {
        finish(s, source, true);
        continue;
      }
      s.pending = tok;
      s.has_pending = true;
    }
  }
}

}  // namespace liber::llm::llama
