// The UIL stage's parts that the cascade, the user selection, the item-knowledge phase and
// the cost report share (src/uil/{cascade,selection,items,cost}.cpp).
#pragma once

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "liber/data.h"
#include "liber/llm.h"
#include "liber/store.h"
#include "liber/ubsp.h"
#include "liber/uil.h"

namespace liber::uil {

// One selected user: the partitions of the variant's set and what is left to learn.
struct UserWork {
  std::string user;
  std::string description;
  std::vector<StoredPartition> parts;        // seq order
  std::map<uint32_t, std::string> ok;        // seq -> summary of a usable (verified) record
  std::set<uint32_t> done;                   // seqs with an ok record (verified or rejected)
  std::vector<std::size_t> pending;          // indices into parts without an ok record
  std::size_t next = 0;                      // into pending
};


// The users a run learns (LearnOptions: sample, first users, user list, max partitions), each
// with its partitions and the ok records the variant already has.
std::vector<UserWork> select_users(Store& store, const BehaviorLog& log, const LearnOptions& opt,
                                   const Variant& variant);

// Describes every item of the users' partitions that has no ok description yet.
void learn_item_knowledge(Store& store, const BehaviorLog& log, LlmEngine& engine,
                          const LearnOptions& opt, const PromptTemplate& tmpl,
                          const std::vector<UserWork>& users, CostReport& cost);

// The naive baseline's prompt tokens over the (user, partition) pairs processed.
void naive_cost(const LlmEngine& engine, const BehaviorLog& log, const PromptTemplate& tmpl,
                const std::vector<UserWork>& users,
                const std::vector<std::pair<std::size_t, std::size_t>>& processed,
                std::size_t exact_bytes, CostReport& cost);

}  // namespace liber::uil
