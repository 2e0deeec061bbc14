// The model directory: training one backbone on a store and writing what the scorer loads
// (layout in include/liber/score.h).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <type_traits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/data/text_io.h"
#include "liber/error.h"
#include "liber/log.h"
#include "liber/score.h"
#include "liber/score/model_files.h"
#include "liber/ubsp.h"
#include "liber/uif/fuse_layer.h"
#include "liber/uil.h"

namespace liber {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kContent = "content";
constexpr std::string_view kWithContent = "+content";

// The LLM variant a knowledge name uses ("" for none or content alone).
std::string variant_of(std::string_view knowledge) {
  if (knowledge.empty() || knowledge == kContent) return "";
  if (knowledge.ends_with(kWithContent)) knowledge.remove_suffix(kWithContent.size());
  return std::string(knowledge);
}

json metrics_json(const Metrics& m) { return {{"auc", m.auc}, {"logloss", m.logloss}, {"gauc", m.gauc}}; }

Metrics metrics_from(const json& j) {
  Metrics m;
  m.auc = j.at("auc").is_null() ? std::nan("") : j.at("auc").get<double>();
  m.logloss = j.at("logloss").is_null() ? std::nan("") : j.at("logloss").get<double>();
  m.gauc = j.at("gauc").is_null() ? std::nan("") : j.at("gauc").get<double>();
  return m;
}

json info_json(const ModelInfo& i) {
  const ModelConfig& m = i.model;
  const FuseConfig& f = i.fuse;
  return {{"format", i.format},
          {"backbone", m.backbone},
          {"model", {{"embedding_dim", m.embedding_dim}, {"mlp", m.mlp}, {"dropout", m.dropout},
                     {"attention_mlp", m.attention_mlp}, {"cross_layers", m.cross_layers},
                     {"attention_layers", m.attention_layers}, {"attention_heads", m.attention_heads},
                     {"attention_dim", m.attention_dim}, {"cin_layers", m.cin_layers},
                     {"auxiliary_loss_weight", m.auxiliary_loss_weight},
                     {"senet_reduction", m.senet_reduction}, {"graph_steps", m.graph_steps},
                     {"embedding_l2", m.embedding_l2}}},
          {"history_length", i.history_length},
          {"dataset", i.dataset},
          {"description", i.description},
          {"store", i.store},
          {"knowledge", i.knowledge},
          {"variant_id", i.variant_id},
          {"fuse", {{"slots", f.slots}, {"fused_dim", f.fused_dim}, {"hidden", f.hidden},
                    {"reduced_dim", f.reduced_dim}, {"fusion", f.fusion}, {"query", f.query},
                    {"interaction", f.interaction}, {"similarity", f.similarity}}},
          {"vectors", {{"encoder", i.encoder}, {"layout", i.layout}, {"dim", i.dim}, {"texts", i.texts},
                       {"row_dim", i.row_dim}, {"item_dim", i.item_dim}, {"partitions", i.partitions}}},
          {"train_samples", i.train_samples},
          {"seed", i.seed},
          {"valid", metrics_json(i.valid)},
          {"test", metrics_json(i.test)}};
}

ModelInfo info_from(const json& j) {
  ModelInfo i;
  i.format = j.at("format").get<int>();
  if (i.format != 1) throw std::invalid_argument(fmt::format("format {} (this liber reads 1)", i.format));
  ModelConfig& m = i.model;
  m.backbone = j.at("backbone").get<std::string>();
  const json& mj = j.at("model");
  m.embedding_dim = mj.at("embedding_dim").get<int>();
  m.mlp = mj.at("mlp").get<std::vector<int>>();
  m.dropout = mj.at("dropout").get<double>();
  m.attention_mlp = mj.at("attention_mlp").get<std::vector<int>>();
  m.cross_layers = mj.at("cross_layers").get<int>();
  m.attention_layers = mj.at("attention_layers").get<int>();
  m.attention_heads = mj.at("attention_heads").get<int>();
  m.attention_dim = mj.at("attention_dim").get<int>();
  // Models saved before a backbone existed lack its settings (and no backbone reads them).
  auto read_if = [&mj](const char* key, auto& into) {
    if (mj.contains(key)) into = mj.at(key).get<std::decay_t<decltype(into)>>();
  };
  read_if("cin_layers", m.cin_layers);
  read_if("auxiliary_loss_weight", m.auxiliary_loss_weight);
  read_if("senet_reduction", m.senet_reduction);
  read_if("graph_steps", m.graph_steps);
  m.embedding_l2 = mj.at("embedding_l2").get<double>();
  i.history_length = j.at("history_length").get<int>();
  i.dataset = j.at("dataset").get<std::string>();
  i.description = j.at("description").get<std::string>();
  i.store = j.at("store").get<std::string>();
  i.knowledge = j.at("knowledge").get<std::string>();
  i.variant_id = j.at("variant_id").get<std::string>();
  const json& fj = j.at("fuse");
  FuseConfig& f = i.fuse;
  f.slots = fj.at("slots").get<int>();
  f.fused_dim = fj.at("fused_dim").get<int>();
  f.hidden = fj.at("hidden").get<int>();
  f.reduced_dim = fj.at("reduced_dim").get<int>();
  f.fusion = fj.at("fusion").get<std::string>();
  f.query = fj.at("query").get<std::string>();
  f.interaction = fj.at("interaction").get<bool>();
  f.similarity = fj.at("similarity").get<bool>();
  const json& vj = j.at("vectors");
  i.encoder = vj.at("encoder").get<std::string>();
  i.layout = vj.at("layout").get<std::string>();
  i.dim = vj.at("dim").get<int>();
  i.texts = vj.at("texts").get<int>();
  i.row_dim = vj.at("row_dim").get<int>();
  i.item_dim = vj.at("item_dim").get<int>();
  i.partitions = vj.at("partitions").get<uint64_t>();
  i.train_samples = j.at("train_samples").get<uint64_t>();
  i.seed = j.at("seed").get<uint64_t>();
  i.valid = metrics_from(j.at("valid"));
  i.test = metrics_from(j.at("test"));
  return i;
}

void write_file(const fs::path& path, const std::string& text) {
  // Written aside and renamed: a reader never sees half a file.
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out) throw Error(ErrorKind::Io, fmt::format("cannot write {}", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(ErrorKind::Io, fmt::format("cannot write {}: {}", path.string(), ec.message()));
}

}  // namespace

namespace score {

bool knowledge_uses_content(std::string_view knowledge) {
  return knowledge == kContent || knowledge.ends_with(kWithContent);
}

std::optional<Variant> knowledge_variant(Store& store, std::string_view knowledge) {
  const std::string name = variant_of(knowledge);
  if (name.empty()) return std::nullopt;
  auto v = find_variant(store, name);
  if (!v)
    throw Error(ErrorKind::InvalidInput,
                fmt::format("store {} has no variant named '{}' (knowledge '{}'; liber learn "
                            "--variant {})", store.path().string(), name, knowledge, name));
  return v;
}

}  // namespace score

InterestTable load_knowledge(Store& store, std::string_view knowledge,
                             const std::vector<std::string>& users, const ContentSource* content) {
  const auto variant = score::knowledge_variant(store, knowledge);
  const bool with_content = score::knowledge_uses_content(knowledge);
  if (!variant && !with_content)
    throw Error(ErrorKind::Config, fmt::format("knowledge '{}': name 'content', a variant, or "
                                               "'<variant>+content'", knowledge));
  InterestTable llm;
  if (variant) llm = load_interest_table(store, *variant, users);
  if (!with_content) return llm;
  const PartitionSet set = variant ? variant->partitions : PartitionSet{};
  InterestTable c = content ? load_content_table(store, set, users, *content)
                            : load_content_table(store, set, users);
  return variant ? join_tables(c, llm) : c;
}

ModelInfo read_model_info(const fs::path& dir) {
  const fs::path path = dir / "model.json";
  try {
    return info_from(json::parse(data::read_text_file(path)));
  } catch (const json::exception& e) {
    throw Error(ErrorKind::Parse, fmt::format("{}: {}", path.string(), e.what()));
  } catch (const std::invalid_argument& e) {
    throw Error(ErrorKind::Parse, fmt::format("{}: {}", path.string(), e.what()));
  }
}

TrainedModel train_model(Store& store, const ModelTraining& config, const fs::path& dir) {
  require_current_interests(store);
  const BehaviorLog log = load_behavior_log(store);
  CtrDataset data = build_ctr_dataset(log, config.split);
  TrainedModel out;
  ModelInfo& info = out.info;
  info.model = config.model;
  info.history_length = config.split.history_length;
  info.dataset = log.name;
  info.description = log.description;
  info.store = store.path().string();
  info.knowledge = config.knowledge;
  info.fuse = config.fuse;
  if (!config.knowledge.empty()) {
    if (const auto v = score::knowledge_variant(store, config.knowledge)) info.variant_id = v->id();
    const InterestTable table = load_knowledge(store, config.knowledge);
    if (table.partitions.empty())
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("store {} has no vectors of knowledge '{}' (run liber learn and liber "
                              "encode first)", store.path().string(), config.knowledge));
    ItemTextTable items;
    if (config.fuse.needs_item_texts()) items = load_item_text_table(store, log);
    attach_interests(data, log, table, config.fuse, &items);
    info.encoder = table.encoder;
    info.layout = table.layout;
    info.dim = table.dim;
    info.texts = table.texts;
    info.partitions = table.partitions.size();
    const auto rows = static_cast<int64_t>(table.partitions.size());
    info.row_dim = static_cast<int>(uif::reduced_width(rows, table.width(), config.fuse.reduced_dim));
    if (config.fuse.query != "item")
      info.item_dim = static_cast<int>(
          uif::reduced_width(static_cast<int64_t>(log.items.size()), items.dim, config.fuse.reduced_dim));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorKind::Io, fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  TrainConfig train = config.train;
  train.checkpoint_path = (dir / "weights.pt").string();
  out.result = train_and_evaluate(data, config.model, train);
  info.train_samples = data.train.size();
  info.seed = train.seed;
  info.valid = out.result.valid;
  info.test = out.result.test;
  write_file(dir / "catalog.json", catalog_to_json(log));
  // Last: a directory with model.json is complete.
  write_file(dir / "model.json", info_json(info).dump(1) + "\n");
  return out;
}

}  // namespace liber
