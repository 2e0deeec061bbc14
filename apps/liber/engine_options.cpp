// --engine and its options, shared by `liber learn` and `liber encode`.
#include "cli.h"

#include <csignal>

#include <fmt/format.h>

#include "liber/error.h"

namespace liber::cli {

namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_sigint(int) {
  g_stop.store(true);
  std::signal(SIGINT, SIG_DFL);
}
}  // namespace

StopOnSigint::StopOnSigint() {
  g_stop.store(false);
  std::signal(SIGINT, on_sigint);
}
StopOnSigint::~StopOnSigint() { std::signal(SIGINT, SIG_DFL); }
const std::atomic<bool>* StopOnSigint::flag() const { return &g_stop; }

void EngineFlags::add_to(CLI::App& cmd) {
  cmd.add_option("--" + prefix + "engine", engine, "llama (in process) or http (OpenAI-compatible)")
      ->check(CLI::IsMember({"llama", "http"}))
      ->capture_default_str();
  cmd.add_option("--" + prefix + "model", model,
                 encoder ? "GGUF encoder for --engine llama (default: all-MiniLM-L6-v2 from setup)"
                         : "GGUF model for --engine llama (default: Gemma 3 270M from setup)");
  cmd.add_option("--" + prefix + "base-url", base_url,
                 "server URL for --engine http, e.g. http://127.0.0.1:8000/v1; several, "
                 "comma-separated: a fleet (fewest in flight first, failed servers ejected and probed)");
  cmd.add_option("--" + prefix + "api-model", api_model, "model name sent to the server (--engine http)");
  cmd.add_option("--" + prefix + "parallel", parallel,
                 "sequences decoded at once / requests in flight per server")->capture_default_str();
  cmd.add_option("--" + prefix + "context", context,
                 "llama.cpp context: KV cells of all sequences (each gets context / parallel)")
      ->capture_default_str();
  cmd.add_option("--" + prefix + "threads", threads, "llama.cpp threads (0 = all cores)")->capture_default_str();
}

std::unique_ptr<LlmEngine> EngineFlags::make() const {
  if (engine == "http") {
    if (base_url.empty() || api_model.empty())
      throw Error(ErrorKind::Config, "--engine http needs --base-url URL and --api-model NAME");
    HttpOptions h;
    h.base_url = base_url;
    h.model = api_model;
    h.in_flight = parallel;
    return make_http_engine(h);
  }
  LlamaOptions l;
  l.model_path = !model.empty() ? model : encoder ? default_encoder_path() : default_model_path();
  l.embeddings = encoder;
  l.context = context;
  l.parallel = parallel;
  l.threads = threads;
  return make_llama_engine(l);
}

}  // namespace liber::cli
