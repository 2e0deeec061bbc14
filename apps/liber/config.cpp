// JSON configs shared by `liber train` and `liber experiment` (configs/*.json).
#include <fstream>

#include <fmt/format.h>

#include "cli.h"
#include "liber/error.h"

namespace liber::cli {

namespace {
template <typename T>
void read_if(const nlohmann::json& j, const char* key, T& into) {
  if (j.contains(key)) into = j.at(key).get<T>();
}
}  // namespace

nlohmann::json load_config(const std::string& path) {
  if (path.empty()) return nlohmann::json::object();
  std::ifstream in(path);
  if (!in) throw Error(ErrorKind::Io, fmt::format("cannot open config {}", path));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::Parse, fmt::format("{}: {}", path, e.what()));
  }
}

void apply_model_json(const nlohmann::json& j, ModelConfig& m) {
  read_if(j, "embedding_dim", m.embedding_dim);
  read_if(j, "mlp", m.mlp);
  read_if(j, "dropout", m.dropout);
  read_if(j, "attention_mlp", m.attention_mlp);
  read_if(j, "cross_layers", m.cross_layers);
  read_if(j, "attention_layers", m.attention_layers);
  read_if(j, "attention_heads", m.attention_heads);
  read_if(j, "attention_dim", m.attention_dim);
  read_if(j, "cin_layers", m.cin_layers);
  read_if(j, "auxiliary_loss_weight", m.auxiliary_loss_weight);
  read_if(j, "senet_reduction", m.senet_reduction);
  read_if(j, "graph_steps", m.graph_steps);
  read_if(j, "embedding_l2", m.embedding_l2);
}

void apply_train_json(const nlohmann::json& j, TrainConfig& t) {
  read_if(j, "max_epochs", t.max_epochs);
  read_if(j, "batch_size", t.batch_size);
  read_if(j, "learning_rate", t.learning_rate);
  read_if(j, "patience", t.patience);
}

}  // namespace liber::cli
