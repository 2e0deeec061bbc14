// Batch: an owning llama_batch wrapper, shared by the generation scheduler and the embedding
// path (each fills one per llama_decode); header-only so add() inlines into their loops.
#pragma once

#include <llama.h>

namespace liber::llm::llama {

// A llama_batch with one sequence id per token.
class Batch {
 public:
  explicit Batch(int capacity) : capacity_(capacity), b_(llama_batch_init(capacity, 0, 1)) {}
  ~Batch() { llama_batch_free(b_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void clear() { b_.n_tokens = 0; }
  int size() const { return b_.n_tokens; }
  int capacity() const { return capacity_; }
  int room() const { return capacity_ - b_.n_tokens; }
  // Returns the index of the added token.
  int add(llama_token token, llama_pos pos, llama_seq_id seq, bool output) {
    const int i = b_.n_tokens++;
    b_.token[i] = token;
    b_.pos[i] = pos;
    b_.n_seq_id[i] = 1;
    b_.seq_id[i][0] = seq;
    b_.logits[i] = output ? 1 : 0;
    return i;
  }
  const llama_batch& get() const { return b_; }

 private:
  int capacity_;
  llama_batch b_;
};

}  // namespace liber::llm::llama
