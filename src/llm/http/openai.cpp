// The OpenAI wire format: chat and embeddings request bodies, response and error-body
// parsing, what the server states about context length and token counts, and the
// response_format dialects. Separate from the transport, which never looks inside a body.
//
// JSON output: when GenerationRequest::json_schema is set the request carries a
// response_format in the configured dialect (see HttpEngineConfig). A 400/422/500 whose
// body mentions "response_format" makes the engine resend the request at once with the next
// dialect (json_object+schema -> json_schema -> none, or json_schema -> json_object+schema ->
// none) and remember the refusal for later requests.

#include <curl/curl.h>

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/llm.h"
#include "liber/llm/http/engine.h"
#include "liber/llm/http_engine.h"

namespace liber {

const char* to_string(HttpJsonFormat format) {
  switch (format) {
    case HttpJsonFormat::JsonObjectSchema: return "json_object+schema";
    case HttpJsonFormat::JsonSchema: return "json_schema";
    case HttpJsonFormat::None: return "none";
  }
  return "?";
}

namespace llm::http {

namespace {

using json = nlohmann::json;

// `url` with its path replaced by `path` (and no query).
std::string with_path(const std::string& url, const std::string& path) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_PATH, path.c_str(), 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_QUERY, nullptr, 0) == CURLUE_OK) {
    char* v = nullptr;
    if (curl_url_get(u, CURLUPART_URL, &v, 0) == CURLUE_OK && v) out = v;
    curl_free(v);
  }
  curl_url_cleanup(u);
  return out;
}

int json_int(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int>() : 0;
}

}  // namespace

std::string server_message(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    if (auto e = j.find("error"); e != j.end()) {
      if (e->is_object() && e->contains("message") && (*e)["message"].is_string())
        return (*e)["message"].get<std::string>();
      if (e->is_string()) return e->get<std::string>();
      return e->dump();
    }
    if (auto d = j.find("detail"); d != j.end())
      return d->is_string() ? d->get<std::string>() : d->dump();
    if (auto m = j.find("message"); m != j.end() && m->is_string()) return m->get<std::string>();
  }
  std::string s = body.substr(0, 500);
  if (body.size() > 500) s += "...";
  return s.empty() ? "(empty body)" : s;
}

int HttpEngineImpl::context_length() const {
  if (context_length_) return *context_length_;
  int found = 0;
  Outcome o = blocking("GET", base_ + "/models", "");
  if (o.ok) {
    json j = json::parse(o.body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("data") && j["data"].is_array()) {
      auto from = [](const json& m) {
        for (const char* key : {"max_model_len", "context_length", "context_window",
                                "max_context_length", "n_ctx"}) {
          if (int v = json_int(m, key); v > 0) return v;
        }
        if (m.contains("meta") && m["meta"].is_object()) {
          if (int v = json_int(m["meta"], "n_ctx"); v > 0) return v;
          if (int v = json_int(m["meta"], "n_ctx_train"); v > 0) return v;
        }
        return 0;
      };
      for (const auto& m : j["data"]) {  // the entry naming our model first
        if (m.is_object() && m.value("id", std::string()) == opt_.model) found = from(m);
      }
      for (const auto& m : j["data"]) {
        if (found > 0) break;
        if (m.is_object()) found = from(m);
      }
    }
  }
  context_length_ = found > 0 ? found : cfg_.default_context_length;
  return *context_length_;
}

int HttpEngineImpl::count_tokens(const std::vector<ChatMessage>& messages) const {
  std::size_t chars = 0;
  std::string joined;
  for (const auto& m : messages) {
    chars += m.role.size() + m.content.size();
    if (cfg_.tokenize_endpoint) joined += m.role + "\n" + m.content + "\n";
  }
  const int overhead = static_cast<int>(4 * messages.size() + 2);
  if (cfg_.tokenize_endpoint) {
    Outcome o = blocking("POST", with_path(base_, "/extras/tokenize"),
                         json{{"input", joined}}.dump());
    if (o.ok) {
      json j = json::parse(o.body, nullptr, false);
      if (!j.is_discarded() && j.is_object() && j.contains("tokens") && j["tokens"].is_array())
        return static_cast<int>(j["tokens"].size()) + overhead;
    }
  }
  return static_cast<int>((chars + 3) / 4) + overhead;
}

std::string HttpEngineImpl::build_chat_body(Job& job) {
  const GenerationRequest& r = job.request;
  json messages = json::array();
  for (const auto& m : r.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
  json b = {{"model", opt_.model},
            {"messages", std::move(messages)},
            {"max_tokens", r.max_tokens},
            {"temperature", std::round(static_cast<double>(r.temperature) * 1e6) / 1e6},
            {"seed", r.seed}};
  if (!r.json_schema.empty() && job.format != HttpJsonFormat::None) {
    json schema = json::parse(r.json_schema, nullptr, false);
    if (schema.is_discarded()) return "json_schema is not valid JSON";
    if (job.format == HttpJsonFormat::JsonObjectSchema)
      b["response_format"] = {{"type", "json_object"}, {"schema", std::move(schema)}};
    else
      b["response_format"] = {{"type", "json_schema"},
                              {"json_schema", {{"name", "out"}, {"schema", std::move(schema)}}}};
  }
  job.body = b.dump();
  return "";
}

void HttpEngineImpl::build_embed_body(Job& job, const std::vector<std::string>& texts) const {
  json input = json::array();
  for (std::size_t i = 0; i < job.embed_count; ++i) input.push_back(texts[job.embed_begin + i]);
  job.body = json{{"model", opt_.model}, {"input", std::move(input)}}.dump();
}

HttpJsonFormat HttpEngineImpl::next_format(HttpJsonFormat refused) {
  if (refused == HttpJsonFormat::JsonObjectSchema) refused_object_ = true;
  if (refused == HttpJsonFormat::JsonSchema) refused_schema_ = true;
  HttpJsonFormat order[2] = {cfg_.json_format, cfg_.json_format == HttpJsonFormat::JsonSchema
                                                   ? HttpJsonFormat::JsonObjectSchema
                                                   : HttpJsonFormat::JsonSchema};
  format_ = HttpJsonFormat::None;
  for (HttpJsonFormat f : order) {
    if (f == HttpJsonFormat::JsonObjectSchema && !refused_object_) { format_ = f; break; }
    if (f == HttpJsonFormat::JsonSchema && !refused_schema_) { format_ = f; break; }
  }
  return format_;
}

GenerationResult HttpEngineImpl::parse_chat(const std::string& body) {
  GenerationResult r;
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("choices") || !j["choices"].is_array() ||
      j["choices"].empty() || !j["choices"][0].is_object()) {
    r.error = "malformed chat completion response: " + server_message(body);
    return r;
  }
  const json& c = j["choices"][0];
  if (c.contains("message") && c["message"].is_object()) {
    const json& m = c["message"];
    if (m.contains("content") && m["content"].is_string()) r.text = m["content"].get<std::string>();
  } else if (c.contains("text") && c["text"].is_string()) {
    r.text = c["text"].get<std::string>();
  }
  if (c.contains("finish_reason") && c["finish_reason"].is_string())
    r.truncated = c["finish_reason"].get<std::string>() == "length";
  if (j.contains("usage") && j["usage"].is_object()) {
    const json& u = j["usage"];
    r.prompt_tokens = json_int(u, "prompt_tokens");
    r.completion_tokens = json_int(u, "completion_tokens");
    if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object())
      r.cached_prompt_tokens = json_int(u["prompt_tokens_details"], "cached_tokens");
  }
  return r;
}

std::string HttpEngineImpl::parse_embeddings(const std::string& body, const Job& job,
                                             std::vector<EmbeddingResult>& out) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("data") || !j["data"].is_array())
    return "malformed embeddings response: " + server_message(body);
  const json& data = j["data"];
  if (data.size() != job.embed_count)
    return fmt::format("embeddings response has {} items for {} inputs", data.size(),
                       job.embed_count);
  int usage_tokens = 0;
  if (j.contains("usage") && j["usage"].is_object()) usage_tokens = json_int(j["usage"], "prompt_tokens");
  try {
    for (std::size_t k = 0; k < data.size(); ++k) {
      const json& item = data[k];
      std::size_t idx = k;
      if (item.contains("index") && item["index"].is_number_unsigned()) idx = item["index"].get<std::size_t>();
      if (idx >= job.embed_count) return fmt::format("embeddings response index {} out of range", idx);
      const json& e = item.at("embedding");
      EmbeddingResult res;
      if (!e.is_array() || e.empty()) return "embeddings response holds an empty vector";
      if (e[0].is_array()) {  // one row per token: mean-pool
        const std::size_t dim = e[0].size();
        res.vector.assign(dim, 0.0f);
        for (const auto& row : e) {
          if (row.size() != dim) return "embeddings response rows differ in length";
          for (std::size_t d = 0; d < dim; ++d) res.vector[d] += row[d].get<float>();
        }
        for (float& v : res.vector) v /= static_cast<float>(e.size());
        res.tokens = static_cast<int>(e.size());
      } else {
        res.vector = e.get<std::vector<float>>();
        res.tokens = job.embed_count == 1 ? usage_tokens : 0;
      }
      out[job.embed_begin + idx] = std::move(res);
    }
  } catch (const json::exception& ex) {
    return fmt::format("malformed embeddings response: {}", ex.what());
  }
  return "";
}

}  // namespace llm::http

}  // namespace liber
