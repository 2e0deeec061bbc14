// Sampling: a slot's llama_sampler chain (penalties, greedy or seeded temperature, GBNF
// grammar) and the choice of each next token from its logits. Separate from the scheduler,
// which only decides when a slot has logits to sample from.
#include <cmath>

#include <llama.h>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/llama/engine.h"

namespace liber::llm::llama {

std::string LlamaEngine::init_sampler(Slot& s, const GenerationRequest& req) {
  llama_sampler_chain_params sp = llama_sampler_chain_default_params();
  sp.no_perf = true;
  s.chain.reset(llama_sampler_chain_init(sp));
  if (req.repeat_penalty != 1.0f) {
    // Penalties scan every candidate; cut to the top 64 first (262k-token vocabularies).
    llama_sampler_chain_add(s.chain.get(), llama_sampler_init_top_k(64));
    llama_sampler_chain_add(s.chain.get(),
                            llama_sampler_init_penalties(llama_vocab_n_tokens(vocab_), 64,
                                                         req.repeat_penalty, 0.0f, 0.0f));
  }
  if (req.temperature <= 0.0f) {
    llama_sampler_chain_add(s.chain.get(), llama_sampler_init_greedy());
  } else {
    uint32_t seed = static_cast<uint32_t>(req.seed ^ (req.seed >> 32));
    if (seed == LLAMA_DEFAULT_SEED) seed ^= 1u;  // LLAMA_DEFAULT_SEED means "random"
    llama_sampler_chain_add(s.chain.get(), llama_sampler_init_temp(req.temperature));
    llama_sampler_chain_add(s.chain.get(), llama_sampler_init_dist(seed));
  }
  if (!req.grammar.empty()) {
    s.grammar.reset(llama_sampler_init_grammar(vocab_, req.grammar.c_str(), "root"));
    if (!s.grammar) return "invalid GBNF grammar (root rule \"root\")";
  }
  return {};
}

llama_token LlamaEngine::sample(Slot& s, int i) {
  const float* logits = llama_get_logits_ith(ctx_.get(), i);
  if (!logits) throw Error(ErrorKind::Internal, "llama.cpp returned no logits for a sequence");
  auto fill = [&] {
    cand_.resize(static_cast<std::size_t>(n_vocab_));
    for (int t = 0; t < n_vocab_; ++t) cand_[static_cast<std::size_t>(t)] = {t, logits[t], 0.0f};
    return llama_token_data_array{cand_.data(), cand_.size(), -1, false};
  };
  llama_token_data_array arr = fill();
  llama_sampler_apply(s.chain.get(), &arr);
  llama_token tok = arr.data[arr.selected >= 0 ? arr.selected : 0].id;
  if (s.grammar) {
    llama_token_data one{tok, 1.0f, 0.0f};
    llama_token_data_array single{&one, 1, -1, false};
    llama_sampler_apply(s.grammar.get(), &single);
    if (!std::isfinite(one.logit)) {
      arr = fill();
      llama_sampler_apply(s.grammar.get(), &arr);
      llama_sampler_apply(s.chain.get(), &arr);
      tok = arr.data[arr.selected >= 0 ? arr.selected : 0].id;
    }
    llama_sampler_accept(s.grammar.get(), tok);
  }
  llama_sampler_accept(s.chain.get(), tok);
  return tok;
}

}  // namespace liber::llm::llama
