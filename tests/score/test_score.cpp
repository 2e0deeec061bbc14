// The model directory and the scorer: a saved model loaded over its store scores every test
// sample as the trainer's own predictions did (the offline reference), partitions closed
// after training become visible at the first request after them (and a cold load agrees),
// and a directory that does not fit is refused with its file named.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine_fixture.h"
#include "fixtures.h"
#include "helpers/expect.h"
#include "store_fixture.h"
#include "liber/error.h"
#include "liber/score.h"
#include "liber/ubsp.h"
#include "liber/uif.h"
#include "liber/uil.h"
#include "liber/uil/keys.h"

namespace liber {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

bool have_encoder() {
  if (testing::running_in_ci()) return true;  // CI builds it: a missing one is a failure
  try {
    default_encoder_path();
    return true;
  } catch (const Error&) {
    return false;
  }
}

ModelTraining small_training(const std::string& knowledge, const std::string& backbone) {
  ModelTraining c;
  c.knowledge = knowledge;
  c.model.backbone = backbone;
  c.model.embedding_dim = 8;
  c.model.mlp = {16};
  c.train.max_epochs = 2;
  c.train.batch_size = 128;
  c.train.threads = 1;
  c.train.progress = false;
  c.fuse.slots = 4;
  c.fuse.reduced_dim = 16;
  return c;
}

// Every test sample scored by the scorer, one request per sample at the sample's time,
// against the trainer's prediction of it.
void expect_scores_match_training(Store& store, const fs::path& model, const TrainedModel& trained) {
  const BehaviorLog log = load_behavior_log(store);
  SplitConfig split;
  split.history_length = trained.info.history_length;
  const CtrDataset data = build_ctr_dataset(log, split);
  ASSERT_EQ(trained.result.test_predictions.size(), data.test.size());
  Scorer scorer(store, model);
  const std::size_t f = data.schema.sparse.size();
  const auto item_field = static_cast<std::size_t>(data.schema.target_item_field);
  std::size_t with_knowledge = 0;
  for (std::size_t i = 0; i < data.test.size(); ++i) {
    const std::string user = log.users.ids.key(data.test.users[i]);
    const std::string item = log.items.ids.key(static_cast<uint32_t>(data.test.sparse[i * f + item_field]));
    const Score s = scorer.score(user, std::vector<std::string>{item}, data.test.timestamps[i]);
    ASSERT_EQ(s.probabilities.size(), 1u);
    EXPECT_NEAR(s.probabilities[0], trained.result.test_predictions[i], 2e-6) << "test sample " << i;
    with_knowledge += s.partitions > 0;
  }
  if (!trained.info.knowledge.empty()) EXPECT_GT(with_knowledge, data.test.size() / 2);
}

class ScoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_encoder()) GTEST_SKIP() << "the encoder GGUF is not built (run scripts/setup.sh)";
    // 30 users x 60 events, K = 10: 6 partitions a user, the last ones in the test split.
    log_ = testing::ingest_ml1m_fixture(dir_ / "data", dir_ / "store", 30, 60, 10);
    store_ = open_rocksdb_store(dir_ / "store");
    encode_knowledge(*store_, testing::shared_encoder(), EncodeOptions{});  // item texts
  }
  TempDir dir_{"liber-score"};
  BehaviorLog log_;
  std::unique_ptr<Store> store_;
};

TEST_F(ScoreTest, ScoresEqualTheTrainersPredictionsWithContentKnowledge) {
  const fs::path model = dir_ / "model";
  const TrainedModel trained = train_model(*store_, small_training("content", "din"), model);
  EXPECT_EQ(trained.info.knowledge, "content");
  EXPECT_GT(trained.info.partitions, 100u);
  EXPECT_EQ(trained.info.row_dim, 16);
  for (const char* file : {"model.json", "catalog.json", "weights.pt"}) EXPECT_TRUE(fs::exists(model / file)) << file;
  expect_scores_match_training(*store_, model, trained);
}

TEST_F(ScoreTest, ScoresEqualTheTrainersPredictionsForEachBackboneAlone) {
  for (const std::string& backbone : backbone_names()) {
    const fs::path model = dir_ / ("model-" + backbone);
    const TrainedModel trained = train_model(*store_, small_training("", backbone), model);
    SCOPED_TRACE(backbone);
    expect_scores_match_training(*store_, model, trained);
  }
}

TEST_F(ScoreTest, ABatchScoresAsItsItemsOneByOne) {
  const fs::path model = dir_ / "model";
  train_model(*store_, small_training("content", "deepfm"), model);
  Scorer scorer(*store_, model);
  std::vector<std::string> items;
  for (uint32_t row = 1; row < log_.items.size(); ++row) items.push_back(log_.items.ids.key(row));
  const Score batch = scorer.score("3", items);
  ASSERT_EQ(batch.probabilities.size(), items.size());
  EXPECT_EQ(batch.partitions, 4u);  // every partition closed: the last `slots`
  EXPECT_EQ(batch.history, 10u);
  std::set<float> distinct;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Score one = scorer.score("3", std::vector<std::string>{items[i]});
    EXPECT_NEAR(one.probabilities[0], batch.probabilities[i], 1e-6) << items[i];
    distinct.insert(batch.probabilities[i]);
  }
  EXPECT_GT(distinct.size(), items.size() / 2);  // the items are told apart
}

TEST_F(ScoreTest, APartitionIsVisibleStrictlyAfterItClosed) {
  const fs::path model = dir_ / "model";
  train_model(*store_, small_training("content", "din"), model);
  Scorer scorer(*store_, model);
  const std::vector<StoredPartition> parts = read_partitions(*store_, "5");
  ASSERT_GE(parts.size(), 3u);
  const std::vector<std::string> item{"7"};
  const int64_t end = parts[1].t_end;
  EXPECT_EQ(scorer.score("5", item, end).partitions, 1u);      // the second holds this second
  EXPECT_EQ(scorer.score("5", item, end + 1).partitions, 2u);  // now it is history
  EXPECT_EQ(scorer.score("5", item, parts[0].t_begin).partitions, 0u);
  EXPECT_EQ(scorer.score("5", item, parts[0].t_begin).history, 0u);
}

TEST_F(ScoreTest, PartitionsClosedAfterTrainingCountAtTheNextRequestAsInAColdLoad) {
  const fs::path model = dir_ / "model";
  train_model(*store_, small_training("content", "din"), model);
  Scorer warm(*store_, model);
  const std::vector<std::string> items{"1", "2", "3"};
  const Score before = warm.score("4", items);
  const std::size_t rows_before = warm.rows();
  // Twenty more events of user 4, after everything it has: two more partitions close.
  const std::vector<StoredPartition> parts = read_partitions(*store_, "4");
  std::vector<Event> events;
  for (int k = 0; k < 20; ++k) {
    Event e;
    e.user = log_.users.ids.find("4");
    e.item = static_cast<uint32_t>(1 + (k * 3) % (log_.items.size() - 1));
    e.ts = parts.back().t_end + 3600 * 24 * 30 + k * 60;
    e.rating = static_cast<float>(1 + k % 5);
    events.push_back(e);
  }
  {
    const auto rule = PartitionRule::parse(*store_->get(kMetaFamily, "rule"));
    Ingestor ingestor(*store_, load_behavior_log(*store_, false), rule);
    const IngestStats st = ingestor.deliver(events);
    ASSERT_GE(st.partitions(), 2u);
  }
  // Not yet told: the scorer keeps the rows it read (the history is read at every request).
  warm.score("4", items);
  EXPECT_EQ(warm.rows(), rows_before);
  const std::vector<std::string> user{"4"};
  warm.invalidate(user);
  const Score after = warm.score("4", items);
  EXPECT_NE(after.probabilities, before.probabilities);
  EXPECT_EQ(warm.rows(), rows_before + 2);  // only the new partitions were added
  Scorer cold(*store_, model);
  const Score fresh = cold.score("4", items);
  EXPECT_EQ(fresh.partitions, after.partitions);
  EXPECT_EQ(fresh.history, after.history);
  for (std::size_t i = 0; i < items.size(); ++i) EXPECT_NEAR(fresh.probabilities[i], after.probabilities[i], 1e-6);
}

// An LLM variant's records, written here (no LLM made them): one verified record per
// partition, its summary naming the partition's most frequent genre.
Variant put_llm_records(Store& store, const BehaviorLog& log, const std::string& model) {
  Variant v;
  v.model = model;
  v.template_version = "test";
  v.template_hash = "0000000000000000";
  register_variant(store, v);
  const Attribute* genres = log.items.attribute("genres");
  auto b = store.new_batch();
  for (uint32_t u = 1; u < log.users.size(); ++u) {
    const std::string user = log.users.ids.key(u);
    for (const StoredPartition& p : read_partitions(store, user)) {
      std::map<std::string, int> count;
      for (const StoredEvent& e : p.events)
        for (uint32_t g : genres->row(log.items.ids.find(e.item))) ++count[genres->vocab.key(g)];
      const auto top = std::max_element(count.begin(), count.end(),
                                         [](const auto& a, const auto& c) { return a.second < c.second; });
      InterestRecord r;
      r.user = user;
      r.seq = p.seq;
      r.variant = v.id();
      r.variant_name = v.name;
      r.ok = true;
      r.quality = "verified";
      r.summary = "Watches mostly " + top->first + " movies.";
      r.shift = p.seq == 0 ? "Starting interests." : "Steady.";
      r.attempts = 1;
      b->put(uil::kInterests, interest_key(r.variant, user, p.seq), r.to_json());
    }
  }
  store.write(*b);
  return v;
}

TEST_F(ScoreTest, ScoresEqualTheTrainersPredictionsWithLlmKnowledgeAndRefuseAMovedVariant) {
  put_llm_records(*store_, log_, "test-llm");
  encode_knowledge(*store_, testing::shared_encoder(), EncodeOptions{});  // the records' texts
  for (const char* knowledge : {"cascade", "cascade+content"}) {
    SCOPED_TRACE(knowledge);
    const fs::path model = dir_ / (std::string("model-") + knowledge);
    const TrainedModel trained = train_model(*store_, small_training(knowledge, "dcnv2"), model);
    EXPECT_EQ(trained.info.variant_id, find_variant(*store_, "cascade")->id());
    EXPECT_EQ(trained.info.texts, std::string(knowledge) == "cascade" ? 2 : 4);
    expect_scores_match_training(*store_, model, trained);
  }
  // "cascade" now names other settings: the model's knowledge is not what the name gives.
  put_llm_records(*store_, log_, "another-llm");
  try {
    Scorer scorer(*store_, dir_ / "model-cascade");
    FAIL() << "loaded a model whose variant moved";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("other settings"), std::string::npos) << e.what();
  }
}

TEST_F(ScoreTest, AModelDirectoryThatDoesNotFitIsRefusedNamingTheFile) {
  const fs::path model = dir_ / "model";
  train_model(*store_, small_training("content", "din"), model);
  fs::remove(model / "weights.pt");
  try {
    Scorer scorer(*store_, model);
    FAIL() << "loaded without weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weights.pt"), std::string::npos) << e.what();
  }
  testing::write_file(model / "model.json", "{\"format\": 2}");
  try {
    Scorer scorer(*store_, model);
    FAIL() << "loaded a model.json of another format";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(train_model(*store_, small_training("no-such-variant", "din"), dir_ / "m2"), Error);
}

}  // namespace
}  // namespace liber
