// make_engine: an engine by name (liber/llm.h EngineSpec).
#include <fmt/format.h>

#include "liber/error.h"
#include "liber/llm.h"

namespace liber {

std::unique_ptr<LlmEngine> make_engine(const EngineSpec& spec) {
  if (spec.engine == "http") {
    if (spec.base_url.empty() || spec.api_model.empty())
      throw Error(ErrorKind::Config, "the http engine needs a base URL (--base-url) and a model name (--api-model)");
    HttpOptions h;
    h.base_url = spec.base_url;
    h.model = spec.api_model;
    h.in_flight = spec.parallel;
    return make_http_engine(h);
  }
  if (spec.engine != "llama")
    throw Error(ErrorKind::Config, fmt::format("unknown engine '{}' (llama | http)", spec.engine));
  LlamaOptions l;
  l.model_path = !spec.model.empty() ? spec.model : spec.encoder ? default_encoder_path() : default_model_path();
  l.embeddings = spec.encoder;
  l.context = spec.context;
  l.parallel = spec.parallel;
  l.threads = spec.threads;
  return make_llama_engine(l);
}

}  // namespace liber
