// Embeddings: the (lazily created) mean-pooling embedding context and embed(), which packs
// texts into one llama_decode per batch. Separate from generation: its own context, no
// chat template, no sampling.
#include <algorithm>
#include <memory>

#include <fmt/format.h>
#include <llama.h>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/llama/engine.h"

namespace liber::llm::llama {

void LlamaEngine::ensure_embed_context() {
  if (ectx_) return;
  llama_context_params cp = llama_context_default_params();
  // One text must fit one llama_decode (pooling is per decode call).
  embed_tokens_ = std::min(seq_ctx_, 2048);
  // 8 texts per decode: llama.cpp (this version) asserts in the mean-pooling graph at
  // reserve time unless n_seq_max is a power of two.
  embed_seqs_ = 8;
  cp.n_ctx = static_cast<uint32_t>(embed_tokens_);
  cp.n_batch = static_cast<uint32_t>(embed_tokens_);
  cp.n_ubatch = static_cast<uint32_t>(embed_tokens_);
  cp.n_seq_max = static_cast<uint32_t>(embed_seqs_);
  cp.n_threads = options_.threads;
  cp.n_threads_batch = options_.threads;
  cp.kv_unified = true;
  cp.embeddings = true;
  cp.pooling_type = LLAMA_POOLING_TYPE_MEAN;
  cp.no_perf = true;
  ectx_.reset(llama_init_from_model(model_.get(), cp));
  if (!ectx_) throw Error(ErrorKind::Internal, "llama.cpp could not create an embedding context");
  n_embd_ = llama_model_n_embd_out(model_.get());
  if (n_embd_ <= 0) n_embd_ = llama_model_n_embd(model_.get());
  ebatch_ = std::make_unique<Batch>(embed_tokens_);
}

std::vector<EmbeddingResult> LlamaEngine::embed(const std::vector<std::string>& texts) {
  ensure_embed_context();
  std::vector<EmbeddingResult> results(texts.size());
  llama_memory_t mem = llama_get_memory(ectx_.get());
  Batch& batch = *ebatch_;
  std::vector<std::size_t> in_batch;  // text index per sequence id

  auto flush = [&] {
    if (in_batch.empty()) return;
    if (mem) llama_memory_clear(mem, true);
    const int rc = llama_decode(ectx_.get(), batch.get());
    for (std::size_t s = 0; s < in_batch.size(); ++s) {
      auto& r = results[in_batch[s]];
      const float* e =
          rc == 0 ? llama_get_embeddings_seq(ectx_.get(), static_cast<llama_seq_id>(s)) : nullptr;
      if (!e) {
        r.error = fmt::format("llama.cpp produced no embedding (decode returned {})", rc);
        continue;
      }
      r.vector.assign(e, e + n_embd_);
    }
    batch.clear();
    in_batch.clear();
  };

  batch.clear();
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto toks = tokenize(texts[i], true, false);
    results[i].tokens = static_cast<int>(toks.size());
    if (toks.empty()) {
      results[i].error = "text has no tokens";
      continue;
    }
    if (static_cast<int>(toks.size()) > embed_tokens_) {
      results[i].error = fmt::format("text of {} tokens exceeds the embedding context of {}",
                                     toks.size(), embed_tokens_);
      continue;
    }
    if (batch.room() < static_cast<int>(toks.size()) ||
        static_cast<int>(in_batch.size()) >= embed_seqs_)
      flush();
    const auto seq = static_cast<llama_seq_id>(in_batch.size());
    for (std::size_t p = 0; p < toks.size(); ++p)
      batch.add(toks[p], static_cast<llama_pos>(p), seq, true);
    in_batch.push_back(i);
  }
  flush();
  return results;
}

}  // namespace liber::llm::llama
