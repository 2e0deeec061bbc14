// UIF: the leakage-safe join of partition vectors onto samples (against a brute-force
// reference), the encoder's vector store on the real default model (reuse, change,
// refusal to mix encoders), the .npy export, the experiment's aggregation, and the whole
// pipeline (learn -> encode -> experiment -> chart) on a tiny fixture.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine_fixture.h"
#include "fixtures.h"
#include "helpers/expect.h"
#include "store_fixture.h"
#include "liber/common/bytes.h"
#include "liber/common/hash.h"
#include "liber/error.h"
#include "liber/experiment.h"
#include "liber/llm.h"
#include "liber/store.h"
#include "liber/ubsp.h"
#include "liber/uif.h"
#include "liber/uil.h"
#include "liber/uif/keys.h"
#include "liber/uil/keys.h"

namespace liber {
namespace {

namespace fs = std::filesystem;
using testing::shared_engine;
using testing::shared_encoder;
using testing::TempDir;

// A table over every stored partition, row r filled with r (no encoder needed for joins).
InterestTable table_of(Store& store) {
  InterestTable t;
  t.encoder = "test";
  t.dim = 1;
  for_each_partition(store, [&](const StoredPartition& p) {
    const auto row = static_cast<uint32_t>(t.partitions.size());
    t.partitions.push_back({p.user, p.seq, p.t_begin, p.t_end, row});
    t.rows.insert(t.rows.end(), {static_cast<float>(row), static_cast<float>(row)});
  });
  return t;
}

TEST(UifJoin, OnlyPartitionsClosedStrictlyBeforeTheSampleAreVisible) {
  TempDir dir("liber-uif");
  const BehaviorLog log = testing::ingest_ml1m_fixture(dir / "data", dir / "store", 6, 23, 5);
  auto store = open_rocksdb_store(dir / "store");
  const InterestTable table = table_of(*store);
  ASSERT_EQ(table.partitions.size(), 6u * 4u);  // 23 events, K = 5: 4 closed each
  std::map<std::pair<std::string, uint32_t>, StoredPartition> parts;
  for_each_partition(*store, [&](const StoredPartition& p) { parts[{p.user, p.seq}] = p; });

  CtrDataset data = build_ctr_dataset(log, SplitConfig{});
  FuseConfig in;
  in.slots = 3;
  attach_interests(data, log, table, in);
  EXPECT_EQ(data.schema.side.name, "liber");
  EXPECT_EQ(data.schema.side.width, 3);
  EXPECT_EQ(data.schema.side.lower, -1);
  EXPECT_EQ(data.schema.side.upper, static_cast<int32_t>(table.partitions.size()));

  std::size_t samples = 0, with_history = 0;
  for (const SampleSet* set : {&data.train, &data.valid, &data.test}) {
    ASSERT_EQ(set->side.size(), set->size() * 3);
    for (std::size_t i = 0; i < set->size(); ++i, ++samples) {
      const std::string user = log.users.ids.key(set->users[i]);
      const int64_t ts = set->timestamps[i];
      // Brute force: every partition of the user whose events all precede the sample.
      std::vector<int32_t> expected;
      for (const PartitionVector& p : table.partitions) {
        if (p.user != user) continue;
        bool before = true;
        for (const StoredEvent& e : parts.at({p.user, p.seq}).events) before &= e.ts < ts;
        if (before) expected.push_back(static_cast<int32_t>(p.row));
      }
      if (expected.size() > 3) expected.erase(expected.begin(), expected.end() - 3);
      std::vector<int32_t> got(set->side.begin() + i * 3, set->side.begin() + i * 3 + 3);
      std::vector<int32_t> want(3 - expected.size(), -1);
      want.insert(want.end(), expected.begin(), expected.end());
      EXPECT_EQ(got, want) << "user " << user << " ts " << ts;
      if (!expected.empty()) ++with_history;
    }
  }
  EXPECT_EQ(samples, 6u * 23u);
  EXPECT_GT(with_history, samples / 2);  // the join is not vacuous
}

TEST(UifJoin, APartitionEndingAtTheSamplesSecondIsNotVisible) {
  // User "a": 8 events, K = 4; events 3 and 4 share a second, so partition 0 ends at the
  // second of event 4 although event 4 is not in it.
  TempDir dir("liber-uif");
  testing::write_file(dir / "items.csv", "item_id,title,year,genres\n"
                      "i1,One,2001,Drama\ni2,Two,2002,Comedy\ni3,Three,2003,Drama\n"
                      "i4,Four,2004,Comedy\ni5,Five,2005,Drama\ni6,Six,2006,Comedy\n"
                      "i7,Seven,2007,Drama\ni8,Eight,2008,Comedy\n");
  testing::write_file(dir / "events.csv", "user_id,item_id,timestamp,rating\n"
                      "a,i1,100,5\na,i2,200,4\na,i3,300,1\na,i4,400,5\na,i5,400,2\n"
                      "a,i6,500,5\na,i7,600,4\na,i8,700,3\n");
  GenericPaths paths;
  paths.events = dir / "events.csv";
  paths.items = dir / "items.csv";
  const BehaviorLog log = read_generic(paths);
  PartitionRule rule;
  rule.count = 4;
  ingest_log(dir / "store", log, rule, IngestOptions{});
  auto store = open_rocksdb_store(dir / "store");
  const InterestTable table = table_of(*store);
  ASSERT_EQ(table.partitions.size(), 2u);
  EXPECT_EQ(table.partitions[0].t_end, 400);
  SplitConfig split;
  split.test_fraction = 0;
  split.valid_fraction = 0;
  CtrDataset data = build_ctr_dataset(log, split);
  FuseConfig in;
  in.slots = 2;
  attach_interests(data, log, table, in);
  ASSERT_EQ(data.train.size(), 8u);
  std::map<int64_t, std::vector<int32_t>> by_ts;
  for (std::size_t i = 0; i < 8; ++i)
    by_ts[data.train.timestamps[i]] = {data.train.side[i * 2], data.train.side[i * 2 + 1]};
  EXPECT_EQ(by_ts[400], (std::vector<int32_t>{-1, -1}));  // both second-400 samples
  EXPECT_EQ(by_ts[500], (std::vector<int32_t>{-1, 0}));
  EXPECT_EQ(by_ts[700], (std::vector<int32_t>{-1, 0}));   // partition 1 ends at 700 itself
}

TEST(UifJoin, KeepUsersFiltersEverySplitAndColumn) {
  TempDir dir("liber-uif");
  const BehaviorLog log = testing::ingest_ml1m_fixture(dir / "data", dir / "store", 5, 20, 5);
  auto store = open_rocksdb_store(dir / "store");
  CtrDataset data = build_ctr_dataset(log, SplitConfig{});
  attach_interests(data, log, table_of(*store), FuseConfig{});
  const CtrDataset before = data;
  keep_users(data, log, {"2", "4"});
  for (auto [set, old] : {std::pair{&data.train, &before.train}, {&data.test, &before.test}}) {
    std::size_t expected = 0;
    for (uint32_t u : old->users) expected += log.users.ids.key(u) == "2" || log.users.ids.key(u) == "4";
    ASSERT_EQ(set->size(), expected);
    ASSERT_EQ(set->side.size(), expected * 16);
    ASSERT_EQ(set->sparse.size(), expected * data.schema.sparse.size());
    // Rows keep their columns together: find each kept sample in the old set.
    for (std::size_t i = 0; i < set->size(); ++i) {
      bool found = false;
      for (std::size_t j = 0; j < old->size() && !found; ++j)
        found = old->timestamps[j] == set->timestamps[i] && old->users[j] == set->users[i] &&
                std::equal(set->side.begin() + i * 16, set->side.begin() + i * 16 + 16,
                           old->side.begin() + j * 16) &&
                old->labels[j] == set->labels[i];
      EXPECT_TRUE(found) << i;
    }
  }
}

TEST(UifExport, NpyAndIndexRoundTrip) {
  TempDir dir("liber-uif");
  InterestTable t;
  t.encoder = "enc";
  t.dim = 2;
  t.partitions = {{"u1", 0, 10, 20, 0}, {"u1", 1, 30, 40, 1}, {"u2", 0, 5, 6, 2}};
  for (int i = 0; i < 12; ++i) t.rows.push_back(static_cast<float>(i) * 0.5f);
  export_interest_table(t, dir / "out");
  const std::string npy = testing::read_file(dir / "out" / "partition_vectors.npy");
  ASSERT_GE(npy.size(), 10u);
  EXPECT_EQ(npy.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const std::size_t header = static_cast<unsigned char>(npy[8]) | static_cast<unsigned char>(npy[9]) << 8;
  EXPECT_EQ((10 + header) % 64, 0u);
  const std::string dict = npy.substr(10, header);
  EXPECT_NE(dict.find("'descr': '<f4'"), std::string::npos);
  EXPECT_NE(dict.find("'shape': (3, 4)"), std::string::npos);
  EXPECT_EQ(dict.back(), '\n');
  ASSERT_EQ(npy.size(), 10 + header + 12 * 4);
  std::vector<float> back(12);
  std::memcpy(back.data(), npy.data() + 10 + header, 48);
  EXPECT_EQ(back, t.rows);
  const std::string index = testing::read_file(dir / "out" / "index.json");
  EXPECT_NE(index.find("\"layout\": \"summary|shift\""), std::string::npos);
  EXPECT_NE(index.find("\"user\": \"u2\""), std::string::npos);
}

TEST(UifExperiment, SummaryIsMeanAndSampleStdOverSeeds) {
  std::vector<ResultRecord> recs;
  auto add = [&](const char* variant, double auc, double ll) {
    ResultRecord r;
    r.backbone = "din";
    r.variant = variant;
    r.population = "liber";
    r.result.test.auc = auc;
    r.result.test.logloss = ll;
    r.result.train_samples_per_s = 100;
    recs.push_back(r);
  };
  add("base", 0.70, 0.5);
  add("base", 0.72, 0.5);
  add("base", 0.74, 0.5);
  add("liber", 0.75, 0.4);
  add("liber", 0.76, 0.4);
  add("liber", 0.77, 0.4);
  add("liber-mean", 0.73, 0.4);
  add("liber-mean", 0.73, 0.4);
  add("liber-mean", 0.73, 0.4);
  const auto s = summarize_results(recs);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_NEAR(s[0].auc_mean, 0.72, 1e-12);
  EXPECT_NEAR(s[0].auc_std, 0.02, 1e-12);
  EXPECT_NEAR(s[1].auc_mean, 0.76, 1e-12);
  EXPECT_NEAR(s[1].auc_std, 0.01, 1e-12);
  EXPECT_NEAR(s[1].rel_auc, (0.76 / 0.72 - 1) * 100, 1e-9);
  EXPECT_EQ(s[2].seeds, 3);
}

// ---- Real model -------------------------------------------------------------------------

// The variant of the records put_record writes (no LLM made them).
const Variant& test_variant() {
  static const Variant v = [] {
    Variant t;
    t.model = "test";
    t.template_version = "test";
    t.template_hash = "0000000000000000";
    return t;
  }();
  return v;
}

void put_record(Store& store, const std::string& user, uint32_t seq, bool ok,
                const std::string& summary, const std::string& shift,
                const std::string& quality = "verified") {
  register_variant(store, test_variant());
  InterestRecord r;
  r.user = user;
  r.seq = seq;
  r.variant = test_variant().id();
  r.variant_name = test_variant().name;
  r.ok = ok;
  r.summary = summary;
  r.shift = shift;
  if (ok) r.quality = quality;
  if (quality == "rejected") r.reasons = {"off-subject: a plot"};
  r.attempts = 1;
  r.prompt_tokens = 100;
  r.completion_tokens = 20;
  r.behaviors = 5;
  auto b = store.new_batch();
  b->put(uil::kInterests, interest_key(r.variant, user, seq), r.to_json());
  store.write(*b);
}

TEST(UifEncode, RealEncoderStoresReusesReencodesAndRefusesAnother) {
  TempDir dir("liber-uif");
  testing::ingest_ml1m_fixture(dir / "data", dir / "store", 3, 10, 5);  // 3 users x 2 partitions
  auto store = open_rocksdb_store(dir / "store");
  put_record(*store, "1", 0, true, "Loves dark thrillers and noir.", "Starting interests: thrillers.");
  put_record(*store, "1", 1, true, "Moved to light comedies.", "From thrillers to comedies.");
  put_record(*store, "2", 0, true, "Enjoys animated family films.", "Starting interests: animation.");
  put_record(*store, "2", 1, false, "", "");  // failed: no vector
  put_record(*store, "3", 0, true, "Likes westerns.", "Starting interests: westerns.");
  put_record(*store, "3", 1, true, "The movie is about a cowboy.", "None.", "rejected");  // no vector
  LlmEngine& engine = shared_encoder();

  uint64_t advanced = 0, total = 0, calls = 0;  // what a caller's own progress bar is told
  EncodeReport r = encode_knowledge(*store, engine, EncodeOptions{.items = false, .batch = 3, .on_progress = [&](uint64_t n, uint64_t t) {
    advanced += n, total = t, ++calls;
  }});
  std::printf("%s", r.summary().c_str());
  EXPECT_EQ(advanced, r.texts);
  EXPECT_EQ(total, r.texts);
  EXPECT_GE(calls, r.texts / 3);  // once per embedded batch
  EXPECT_EQ(r.encoder, engine.model_id());
  EXPECT_EQ(r.dim, 384);  // all-MiniLM-L6-v2
  EXPECT_EQ(r.partitions_encoded, 4u);
  const BehaviorLog log = load_behavior_log(*store, false);
  const std::size_t items = log.items.size() - 1;  // the catalog's item texts, once each
  EXPECT_EQ(r.item_texts_encoded, items);
  EXPECT_EQ(r.texts, 8u + items);
  EXPECT_EQ(r.failed, 0u);
  EXPECT_GT(r.tokens, 8u);
  const std::string id = test_variant().id();
  const auto v = read_partition_vector(*store, id, "1", 1);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->dim, 384);
  ASSERT_EQ(v->values.size(), 768u);
  EXPECT_FALSE(read_partition_vector(*store, id, "2", 1));
  EXPECT_FALSE(read_partition_vector(*store, id, "3", 1));
  // Summary and shift are different texts: different halves.
  EXPECT_NE(std::vector<float>(v->values.begin(), v->values.begin() + 384),
            std::vector<float>(v->values.begin() + 384, v->values.end()));
  // The stored vector is the engine's embedding of the text. llama.cpp's numbers depend a
  // little on what else shares the batch (its own Python binding shows the same: cosine
  // ~0.9998 between a text embedded alone and beside another), so compare directions.
  const auto direct = engine.embed({"Moved to light comedies.", "Loves dark thrillers and noir."});
  ASSERT_EQ(direct[0].vector.size(), 384u);
  auto cosine = [](const float* x, const std::vector<float>& y) {
    double xy = 0, xx = 0, yy = 0;
    for (std::size_t i = 0; i < y.size(); ++i) xy += x[i] * y[i], xx += x[i] * x[i], yy += y[i] * y[i];
    return xy / std::sqrt(xx * yy);
  };
  EXPECT_GT(cosine(v->values.data(), direct[0].vector), 0.999);
  EXPECT_GT(cosine(v->values.data(), direct[0].vector), cosine(v->values.data(), direct[1].vector));
  // Rerun: nothing new. A changed record: only it is re-encoded.
  r = encode_knowledge(*store, engine, EncodeOptions{.items = false});
  EXPECT_EQ(r.partitions_encoded, 0u);
  EXPECT_EQ(r.partitions_reused, 4u);
  EXPECT_EQ(r.item_texts_encoded, 0u);
  EXPECT_EQ(r.item_texts_reused, items);
  put_record(*store, "3", 0, true, "Likes westerns and war films.", "Added war films.");
  r = encode_knowledge(*store, engine, EncodeOptions{.items = false});
  EXPECT_EQ(r.partitions_encoded, 1u);
  EXPECT_EQ(r.partitions_reused, 3u);

  // The table and the fully encoded users: user 2's failed partition and user 3's rejected
  // one count as learned (no vector needed), with no row in the table.
  const InterestTable t = load_interest_table(*store, test_variant());
  EXPECT_EQ(t.partitions.size(), 4u);
  EXPECT_EQ(t.dim, 384);
  EXPECT_EQ(t.rows.size(), 4u * 768u);
  EXPECT_EQ(fully_encoded_users(*store, test_variant()), (std::vector<std::string>{"1", "2", "3"}));

  // Another encoder (the same weights under another file name: another model id).
  fs::create_symlink(default_encoder_path(), dir / "other-encoder.gguf");
  LlamaOptions o;
  o.model_path = (dir / "other-encoder.gguf").string();
  o.embeddings = true;
  auto other = make_llama_engine(o);
  ASSERT_NE(other->model_id(), engine.model_id());
  try {
    encode_knowledge(*store, *other, EncodeOptions{.items = false});
    ADD_FAILURE() << "mixing encoders was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Config);
    EXPECT_NE(std::string(e.what()).find("--replace"), std::string::npos) << e.what();
  }
  r = encode_knowledge(*store, *other, EncodeOptions{.items = false, .replace = true});
  EXPECT_EQ(r.partitions_encoded, 4u);
  EXPECT_EQ(load_interest_table(*store, test_variant()).encoder, other->model_id());
}

TEST(UifExperiment, PipelineOnATinyFixtureReturnsRecordsAndWritesJsonAndVectors) {
  TempDir dir("liber-uif");
  const BehaviorLog log = testing::ingest_ml1m_fixture(dir / "data", dir / "store", 3, 24, 12);  // 2 partitions each
  {
    auto store = open_rocksdb_store(dir / "store");
    LearnOptions lo;
    lo.max_tokens = 96;
    lo.items = false;
    const CostReport c = learn_interests(*store, shared_engine(), lo);
    EXPECT_EQ(c.partitions_total, 6u);
    ASSERT_EQ(read_learn_runs(*store, c.variant).size(), 1u);  // the run's cost stays in the store
    EXPECT_EQ(read_learn_runs(*store, c.variant)[0].calls, c.calls);
    EXPECT_EQ(c.variant_name, "cascade");
    // The pipeline's mechanics, not the 270M's quality (the verifier's tests judge that):
    // every record counts as verified here, so the LLM arms have vectors.
    auto batch = store->new_batch();
    for_each_interest(*store, c.variant, [&](const InterestRecord& rec) {
      InterestRecord v = rec;
      v.quality = "verified";
      v.reasons.clear();
      batch->put(uil::kInterests, interest_key(v.variant, v.user, v.seq), v.to_json());
    });
    store->write(*batch);
    encode_knowledge(*store, shared_encoder(), EncodeOptions{.items = false});
  }
  ExperimentConfig cfg;
  cfg.store = (dir / "store").string();
  cfg.backbones = {"din"};
  cfg.seeds = {1, 2};
  cfg.train.max_epochs = 1;
  cfg.train.batch_size = 16;
  cfg.train.threads = 1;
  cfg.train.progress = false;
  cfg.out_dir = (dir / "out").string();
  const ExperimentResult r = run_experiment(cfg);
  ASSERT_GT(r.population_users, 0u);
  EXPECT_EQ(r.all_users, 3u);
  // all/base, then the population's base, the controls, content, the LLM's input, its mean
  // ablation and both inputs, each over 2 seeds.
  const std::vector<std::string> arms = {"base",    "base",  "random",     "shuffled",
                                         "shuffled-liber", "content", "liber", "liber-mean",
                                         "liber+content"};
  EXPECT_EQ(r.records.size(), 2 * arms.size());
  ASSERT_EQ(r.summary.size(), arms.size());
  for (std::size_t i = 0; i < arms.size(); ++i) {
    EXPECT_EQ(r.summary[i].variant, arms[i]);
    EXPECT_EQ(r.summary[i].seeds, 2);
    // Every arm but the baselines has its paired interval against the backbone alone.
    EXPECT_EQ(r.summary[i].vs_base.resamples > 0, i >= 2) << arms[i];
    if (r.summary[i].vs_base.resamples > 0) {
      EXPECT_LE(r.summary[i].vs_base.lo, r.summary[i].vs_base.hi);
    }
  }
  // Knowledge arms are judged against both kinds of control; the controls and the
  // ablation are not.
  for (const char* judged : {"content", "liber", "liber+content"}) {
    const auto& s = *std::find_if(r.summary.begin(), r.summary.end(),
                                  [&](const VariantSummary& v) { return v.variant == judged; });
    EXPECT_GT(s.vs_random.resamples, 0) << judged;
    EXPECT_GT(s.vs_shuffled.resamples, 0) << judged;
  }
  EXPECT_EQ(r.summary[7].vs_random.resamples, 0);  // liber-mean
  EXPECT_EQ(r.summary[2].vs_random.resamples, 0);  // random itself
  ASSERT_EQ(r.cost.size(), 1u);
  EXPECT_EQ(r.cost[0].runs, 1);
  EXPECT_GT(r.cost[0].prompt_tokens, 0u);
  for (const char* f : {"results.json", "vectors/partition_vectors.npy", "vectors/index.json"})
    EXPECT_TRUE(fs::exists(dir / "out" / f)) << f;
  // Presentation is the app's: the library draws no chart and writes no table.
  for (const char* f : {"results.md", "auc.png"}) EXPECT_FALSE(fs::exists(dir / "out" / f)) << f;
  EXPECT_EQ(nlohmann::json::parse(testing::read_file(dir / "out" / "results.json")).size(),
            2 * arms.size());

  // A rerun of the same experiment trains nothing: every run is kept in out/runs with its
  // test predictions, and the intervals come out the same.
  const ExperimentResult again = run_experiment(cfg);
  ASSERT_EQ(again.records.size(), r.records.size());
  for (std::size_t i = 0; i < r.records.size(); ++i) {
    EXPECT_EQ(again.records[i].result.test.auc, r.records[i].result.test.auc) << i;
    EXPECT_EQ(again.records[i].result.test_predictions, r.records[i].result.test_predictions) << i;
    EXPECT_EQ(again.records[i].result.train_seconds, r.records[i].result.train_seconds) << i;  // not retrained
  }
  for (std::size_t i = 0; i < r.summary.size(); ++i) {
    EXPECT_EQ(again.summary[i].vs_base.lo, r.summary[i].vs_base.lo) << i;
    EXPECT_EQ(again.summary[i].knowledge, r.summary[i].knowledge) << i;
  }
  std::size_t kept = 0;
  for (const auto& e : fs::directory_iterator(dir / "out" / "runs")) kept += e.path().extension() == ".json";
  EXPECT_EQ(kept, r.records.size());

  // Some arms only: the backbone alone always runs (here reused from out/runs); a knowledge
  // arm without its controls, or a name that is no arm, is refused.
  ExperimentConfig base_only = cfg;
  base_only.arms = {"base"};
  const ExperimentResult bases = run_experiment(base_only);
  ASSERT_EQ(bases.records.size(), 4u);
  for (const ResultRecord& rec : bases.records) {
    EXPECT_EQ(rec.variant, "base");
    const auto same = std::find_if(r.records.begin(), r.records.end(), [&](const ResultRecord& o) {
      return o.population == rec.population && o.variant == "base" && o.seed == rec.seed;
    });
    ASSERT_NE(same, r.records.end());
    EXPECT_EQ(rec.result.train_seconds, same->result.train_seconds);  // not retrained
  }
  for (const auto& [wanted, message] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"content"}, "list 'random' too"}, {{"base", "nope"}, "no arm 'nope'"}}) {
    ExperimentConfig some = cfg;
    some.arms = wanted;
    try {
      run_experiment(some);
      ADD_FAILURE() << message;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Config);
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }

  // The CLI presents them, from the store alone: the table, results.md and the chart.
  const char* cli = std::getenv("LIBER_TEST_CLI");
  if (!cli) GTEST_SKIP() << "LIBER_TEST_CLI not set (run through ctest)";
  testing::write_file(dir / "exp.json",
                      R"({"seeds": [1], "backbones": ["din"], "all_users_baseline": false,
                          "train": {"max_epochs": 1, "batch_size": 16}})");
  const auto shown = testing::run_command({cli, "experiment", "--store", cfg.store, "--config",
                                           (dir / "exp.json").string(), "--out",
                                           (dir / "cli").string(), "--threads", "1", "--no-progress"});
  ASSERT_EQ(shown.status, 0) << shown.output;
  EXPECT_NE(shown.output.find(" | din | liber | "), std::string::npos) << shown.output;
  EXPECT_NE(testing::read_file(dir / "cli" / "results.md").find(" | din | liber-mean | "),
            std::string::npos);
  EXPECT_EQ(testing::read_file(dir / "cli" / "auc.png").substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // A stage after ingest takes no data flags: it says so instead of ignoring them.
  const auto refused = testing::run_command({cli, "experiment", "--store", cfg.store, "--config",
                                             (dir / "exp.json").string(), "--data-dir", "somewhere"});
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("takes no data flags: remove --data-dir"), std::string::npos)
      << refused.output;
}

// A store of format 1 (records and vectors keyed by user and seq, no variant), written here
// byte by byte as the older liber wrote it, upgrades whole: records under the variant their
// own fields name, vectors beside them, run reports too; readers refuse it until then.
TEST(UifMigrate, FormatOneStoreUpgradesToVariantsLosingNothing) {
  TempDir dir("liber-uif");
  testing::ingest_ml1m_fixture(dir / "data", dir / "store", 2, 10, 5);  // 2 users x 2 partitions
  {
    auto store = open_rocksdb_store(dir / "store");
    auto b = store->new_batch();
    for (const char* user : {"1", "2"})
      for (uint32_t seq = 0; seq < 2; ++seq) {
        InterestRecord r;
        r.user = user;
        r.seq = seq;
        r.ok = true;
        r.summary = std::string("summary ") + user + std::to_string(seq);
        r.previous_summary = seq ? std::string("summary ") + user + "0" : "";
        r.model = "gemma";
        r.template_version = "uil_v3";
        r.template_hash = "00000000000000aa";
        b->put(uil::kInterests, user_seq_key(user, seq), r.to_json());
        std::string v(1, '\x01');  // vector format: version, encoder, dim, source hash, floats
        put_lp(v, "enc");
        put_varint(v, 1);
        put_be64(v, fnv1a_fields({r.summary, r.shift}));  // the texts it encodes
        put_varint(v, 2);
        const float values[2] = {static_cast<float>(seq), user[0] == '1' ? 1.0f : 2.0f};
        v.append(reinterpret_cast<const char*>(values), sizeof values);
        b->put(uif::kVectors, "p" + user_seq_key(user, seq), v);
      }
    CostReport run;
    run.calls = 4;
    b->put(kProgressFamily, "uil.run/0000001700000000000", run.to_json());
    store->write(*b);
  }
  {
    auto ro = open_rocksdb_store(dir / "store", {.read_only = true});
    EXPECT_EQ(interests_version(*ro), 1);
    try {
      require_current_interests(*ro);
      FAIL() << "a format-1 store was read as current";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("liber migrate"), std::string::npos) << e.what();
    }
  }
  auto store = open_rocksdb_store(dir / "store");
  EXPECT_EQ(migrate_interests(*store), 4u);
  // A variant learned after the records' upgrade, before the vectors': its record of user 1,
  // seq 0 must not receive the cascade's vector (other texts, another source hash).
  Variant other = test_variant();
  other.name = "other";
  register_variant(*store, other);
  {
    InterestRecord r;
    r.user = "1";
    r.seq = 0;
    r.ok = true;
    r.summary = "another text";
    r.variant = other.id();
    auto b = store->new_batch();
    b->put(uil::kInterests, interest_key(other.id(), "1", 0), r.to_json());
    store->write(*b);
  }
  EXPECT_THROW(fully_encoded_users(*store, other), Error);  // vectors still in format 1
  EXPECT_EQ(migrate_vectors(*store), 4u);
  EXPECT_FALSE(read_partition_vector(*store, other.id(), "1", 0));
  EXPECT_EQ(migrate_interests(*store), 0u);  // once
  EXPECT_EQ(interests_version(*store), kInterestsVersion);
  const auto variant = find_variant(*store, "cascade");  // previous summaries were carried
  ASSERT_TRUE(variant);
  EXPECT_EQ(variant->model, "gemma");
  EXPECT_EQ(variant->template_hash, "00000000000000aa");
  EXPECT_TRUE(variant->cascade);
  EXPECT_EQ(list_variants(*store).size(), 2u);  // cascade and the later "other"
  for (const char* user : {"1", "2"}) {
    const auto recs = read_interests(*store, variant->id(), user);
    ASSERT_EQ(recs.size(), 2u);
    for (uint32_t seq = 0; seq < 2; ++seq) {
      EXPECT_EQ(recs[seq].summary, std::string("summary ") + user + std::to_string(seq));
      EXPECT_EQ(recs[seq].variant, variant->id());
      const auto v = read_partition_vector(*store, variant->id(), user, seq);
      ASSERT_TRUE(v) << user << seq;
      EXPECT_EQ(v->values, (std::vector<float>{static_cast<float>(seq), user[0] == '1' ? 1.0f : 2.0f}));
    }
  }
  std::size_t old_keys = 0;
  store->scan(uil::kInterests, user_key("1"), [&](std::string_view, std::string_view) { return ++old_keys, true; });
  EXPECT_EQ(old_keys, 0u);
  const auto runs = read_learn_runs(*store, variant->id());
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].calls, 4u);
  EXPECT_EQ(fully_encoded_users(*store, *variant), (std::vector<std::string>{"1", "2"}));
}

}  // namespace
}  // namespace liber
