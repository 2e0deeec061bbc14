// The default GGUF loaded once per test binary (llama.cpp, parallel 4, 1024 cells each), and
// the default knowledge encoder (all-MiniLM-L6-v2) likewise.
#pragma once

#include <memory>

#include "liber/llm.h"

namespace liber::testing {

inline LlmEngine& shared_engine() {
  static std::unique_ptr<LlmEngine> engine = [] {
    LlamaOptions o;
    o.model_path = default_model_path();
    o.context = 4096;
    o.parallel = 4;
    o.threads = 0;
    return make_llama_engine(o);
  }();
  return *engine;
}

inline LlmEngine& shared_encoder() {
  static std::unique_ptr<LlmEngine> engine = [] {
    LlamaOptions o;
    o.model_path = default_encoder_path();
    o.embeddings = true;
    o.threads = 0;
    return make_llama_engine(o);
  }();
  return *engine;
}

}  // namespace liber::testing
