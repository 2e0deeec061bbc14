// Small backbone and training settings shared by the CTR test files.
#pragma once

#include <cstdlib>
#include <string>

#include "liber/ctr.h"

namespace liber::testing {

inline ModelConfig small_model(const std::string& backbone) {
  ModelConfig m;
  m.backbone = backbone;
  m.embedding_dim = 8;
  m.mlp = {32, 16};
  m.attention_mlp = {16};
  m.cross_layers = 2;
  m.attention_layers = 2;
  m.attention_heads = 2;
  m.attention_dim = 8;
  m.cin_layers = {6, 4};
  return m;
}

inline TrainConfig fast_training() {
  TrainConfig t;
  t.max_epochs = 3;
  t.batch_size = 128;
  t.learning_rate = 1e-2;
  t.threads = 1;
  t.progress = std::getenv("LIBER_TEST_PROGRESS") != nullptr;  // per-epoch metrics on stderr
  return t;
}

}  // namespace liber::testing
