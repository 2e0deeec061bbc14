// Chat rendering helpers shared by the llama.cpp engine and its tests (no llama.h here).
#pragma once

#include <string>
#include <vector>

#include "liber/llm.h"

namespace liber::llm {

// For chat templates without a system role (Gemma): every system message is folded into
// the next user turn as "SYSTEM\n\nUSER" (several system messages are joined with "\n\n");
// trailing system messages with no user turn after them become one user turn of their own.
// Other roles pass through unchanged. This is what llama.cpp's built-in Gemma template does
// itself, made explicit so the behaviour does not depend on the llama.cpp version.
std::vector<ChatMessage> fold_system_messages(const std::vector<ChatMessage>& messages);

}  // namespace liber::llm
