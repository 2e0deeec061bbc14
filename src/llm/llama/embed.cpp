// Embeddings: the (lazily created) embedding context and embed(), which packs texts into
// one llama_decode per batch. Separate from generation: its own context, no chat template,
// no sampling.
//
// Two kinds of model. A sentence encoder (a GGUF that declares "<arch>.pooling_type", e.g.
// all-MiniLM-L6-v2 from scripts/bert_to_gguf.py) is run as sentence-transformers runs it:
// its own pooling, the vector L2-normalised, a text longer than its window truncated (its
// first tokens and the final [SEP]) and marked so. A decoder (the generative model) is
// mean-pooled over its hidden states, unnormalised, and a text that does not fit is an error.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <llama.h>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/llama/engine.h"

namespace liber::llm::llama {

namespace {

// The pooling a sentence encoder's GGUF declares; nullopt for a model that declares none.
std::optional<int> declared_pooling(const llama_model* model) {
  char arch[64] = {0};
  if (llama_model_meta_val_str(model, "general.architecture", arch, sizeof arch) < 0)
    return std::nullopt;
  char value[32] = {0};
  const std::string key = std::string(arch) + ".pooling_type";
  if (llama_model_meta_val_str(model, key.c_str(), value, sizeof value) < 0) return std::nullopt;
  return std::atoi(value);
}

}  // namespace

void LlamaEngine::ensure_embed_context() {
  if (ectx_) return;
  llama_context_params cp = llama_context_default_params();
  const std::optional<int> pooling = declared_pooling(model_.get());
  sentence_encoder_ = pooling && *pooling != LLAMA_POOLING_TYPE_NONE;
  if (sentence_encoder_) {
    // No KV cache to share: a text may use the whole trained window, and a decode packs
    // up to 16 texts. Attention spans the whole batch (masked), so bigger batches cost more:
    // bench/encoder_bench on 2 cores, 40-word texts: 512 tokens 58, 1024 66, 2048 48, 4096
    // 45 texts/s.
    embed_text_tokens_ = std::max(16, llama_model_n_ctx_train(model_.get()));
    embed_tokens_ = std::max(4096, embed_text_tokens_);
    embed_seqs_ = 64;
  } else {
    // One text must fit one llama_decode (pooling is per decode call).
    embed_tokens_ = std::min(seq_ctx_, 2048);
    embed_text_tokens_ = embed_tokens_;
    embed_seqs_ = 8;
  }
  // llama.cpp (this version) asserts in the pooling graph at reserve time unless n_seq_max
  // is a power of two.
  cp.n_ctx = static_cast<uint32_t>(embed_tokens_);
  cp.n_batch = static_cast<uint32_t>(embed_tokens_);
  cp.n_ubatch = static_cast<uint32_t>(embed_tokens_);
  cp.n_seq_max = static_cast<uint32_t>(embed_seqs_);
  cp.n_threads = options_.threads;
  cp.n_threads_batch = options_.threads;
  cp.kv_unified = true;
  cp.embeddings = true;
  cp.pooling_type = sentence_encoder_ ? static_cast<enum llama_pooling_type>(*pooling)
                                      : LLAMA_POOLING_TYPE_MEAN;
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
      if (sentence_encoder_) {
        double norm = 0;
        for (float x : r.vector) norm += static_cast<double>(x) * x;
        norm = std::sqrt(norm);
        if (norm > 0)
          for (float& x : r.vector) x = static_cast<float>(x / norm);
      }
    }
    batch.clear();
    in_batch.clear();
  };

  batch.clear();
  for (std::size_t i = 0; i < texts.size(); ++i) {
    auto toks = tokenize(texts[i], true, false);
    if (toks.empty()) {
      results[i].error = "text has no tokens";
      continue;
    }
    if (static_cast<int>(toks.size()) > embed_text_tokens_) {
      if (!sentence_encoder_) {
        results[i].tokens = static_cast<int>(toks.size());
        results[i].error = fmt::format("text of {} tokens exceeds the embedding context of {}",
                                       toks.size(), embed_text_tokens_);
        continue;
      }
      const llama_token last = toks.back();  // [SEP]
      toks.resize(static_cast<std::size_t>(embed_text_tokens_));
      toks.back() = last;
      results[i].truncated = true;
    }
    results[i].tokens = static_cast<int>(toks.size());
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
