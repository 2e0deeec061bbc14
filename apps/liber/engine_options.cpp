// --engine and its options, shared by `liber learn` and `liber encode`.
#include "cli.h"

#include <csignal>

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
  cmd.add_option("--" + prefix + "engine", spec.engine, "llama (in process) or http (OpenAI-compatible)")
      ->check(CLI::IsMember({"llama", "http"}))
      ->capture_default_str();
  cmd.add_option("--" + prefix + "model", spec.model,
                 spec.encoder ? "GGUF encoder for --engine llama (default: all-MiniLM-L6-v2 from setup)"
                         : "GGUF model for --engine llama (default: Gemma 3 270M from setup)");
  cmd.add_option("--" + prefix + "base-url", spec.base_url,
                 "server URL for --engine http, e.g. http://127.0.0.1:8000/v1; several, "
                 "comma-separated: a fleet (fewest in flight first, failed servers ejected and probed)");
  cmd.add_option("--" + prefix + "api-model", spec.api_model, "model name sent to the server (--engine http)");
  cmd.add_option("--" + prefix + "parallel", spec.parallel,
                 "sequences decoded at once / requests in flight per server")->capture_default_str();
  cmd.add_option("--" + prefix + "context", spec.context,
                 "llama.cpp context: KV cells of all sequences (each gets context / parallel)")
      ->capture_default_str();
  cmd.add_option("--" + prefix + "threads", spec.threads, "llama.cpp threads (0 = all cores)")->capture_default_str();
}

}  // namespace liber::cli
