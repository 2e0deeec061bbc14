// Events through Kafka into durable state (the Kafka source of liber serve: KafkaIngest over
// Ingestor::deliver, offsets in each batch) beside `liber ingest`'s path (Ingestor::ingest)
// on the same MovieLens-1M stream in the same run, loopback only. The events are produced
// to a fresh topic first (not timed as the worker's work; reported on its own). Then one
// worker and two, and a takeover: a partition's records restored from the output topic.
//
// usage: scripts/kafka.sh start /tmp/kb        (prints the broker's address)
//        kafka_bench --brokers 127.0.0.1:PORT --data-dir DIR [--events N] [--partitions P]
//                    [--batch N] [--kafka-sh scripts/kafka.sh --broker-dir /tmp/kb]
//                    [--restore-records N (100000; 0: skip)] [--relearn-rate PARTITIONS_PER_S (0.30)]
//                    [--llm-url URL --api-model NAME [--e2e-users 50] [--e2e-partitions 2]
//                     [--e2e-rate EVENTS_PER_S (50)] [--e2e-timeout S (300)]]
//   DIR: a MovieLens-1M directory (the developers' copy holds users 1-2999 only).
#include <librdkafka/rdkafkacpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "liber/data.h"
#include "liber/kafka.h"
#include "liber/llm.h"
#include "liber/serve.h"
#include "liber/ubsp.h"
#include "liber/uif.h"
#include "liber/uil.h"

namespace {

namespace fs = std::filesystem;
using namespace liber;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::unique_ptr<RdKafka::Producer> make_producer(const std::string& brokers, const char* linger_ms = "20") {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", brokers, err);
  conf->set("linger.ms", linger_ms, err);
  return std::unique_ptr<RdKafka::Producer>(RdKafka::Producer::create(conf.get(), err));
}

// One message; waits while the producer's queue is full. partition -1: by key.
void produce(RdKafka::Producer& p, const std::string& topic, int32_t partition, const std::string& key,
             const std::string& value) {
  while (p.produce(topic, partition < 0 ? RdKafka::Topic::PARTITION_UA : partition, RdKafka::Producer::RK_MSG_COPY,
                   const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0,
                   nullptr) == RdKafka::ERR__QUEUE_FULL)
    p.poll(10);
  p.poll(0);
}

// An event as liber serve --kafka reads it, keyed by its user.
void produce_event(RdKafka::Producer& p, const std::string& topic, const BehaviorLog& log, const Event& e) {
  const std::string key = log.users.ids.key(e.user);
  produce(p, topic, -1, key,
          nlohmann::json{{"user", key}, {"item", log.items.ids.key(e.item)}, {"ts", e.ts}, {"rating", e.rating}}.dump());
}

bool create_topic(const std::string& kafka_sh, const std::string& broker_dir, const std::string& topic, int partitions) {
  const std::string cmd = kafka_sh + " topic " + broker_dir + " " + topic + " " + std::to_string(partitions) + " >/dev/null";
  if (std::system(cmd.c_str()) == 0) return true;
  std::fprintf(stderr, "kafka_bench: %s failed\n", cmd.c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::string brokers, data_dir, kafka_sh = "scripts/kafka.sh", broker_dir;
  std::size_t limit = 0, batch = 1000, restore_records = 100000;
  double relearn_rate = 0.30;
  std::string llm_url, llm_model = "model";
  int e2e_users = 50, e2e_partitions = 2, e2e_timeout_s = 300;
  double e2e_rate = 50;
  int partitions = 6;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--brokers") brokers = next();
    else if (a == "--data-dir") data_dir = next();
    else if (a == "--events") limit = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--partitions") partitions = std::atoi(next().c_str());
    else if (a == "--batch") batch = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--kafka-sh") kafka_sh = next();
    else if (a == "--restore-records") restore_records = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--relearn-rate") relearn_rate = std::atof(next().c_str());
    else if (a == "--llm-url") llm_url = next();
    else if (a == "--api-model") llm_model = next();
    else if (a == "--e2e-users") e2e_users = std::atoi(next().c_str());
    else if (a == "--e2e-partitions") e2e_partitions = std::atoi(next().c_str());
    else if (a == "--e2e-rate") e2e_rate = std::atof(next().c_str());
    else if (a == "--e2e-timeout") e2e_timeout_s = std::atoi(next().c_str());
    else if (a == "--broker-dir") broker_dir = next();
    else {
      std::fprintf(stderr, "kafka_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (brokers.empty() || data_dir.empty() || broker_dir.empty()) {
    std::fprintf(stderr, "kafka_bench: --brokers HOST:PORT --broker-dir DIR (scripts/kafka.sh start DIR) --data-dir DIR\n");
    return 2;
  }
  const BehaviorLog log = read_movielens_1m(data_dir);
  std::vector<Event> stream = time_ordered(log.events);
  if (limit > 0 && limit < stream.size()) stream.resize(limit);
  PartitionRule rule;  // K = 50, as liber ingest
  const fs::path dir = fs::temp_directory_path() / ("liber-kafka-bench-" + std::to_string(::getpid()));
  fs::remove_all(dir);

  // 1. liber ingest's path, its defaults.
  double direct_s = 0;
  {
    auto store = open_rocksdb_store(dir / "direct");
    Ingestor ing(*store, log, rule);
    const auto t0 = Clock::now();
    ing.ingest(stream);
    direct_s = seconds_since(t0);
    std::printf("liber ingest (its defaults): %zu events in %.2f s = %.0f events/s\n", stream.size(), direct_s,
                stream.size() / direct_s);
  }

  // 2. The events into a fresh topic, keyed by user.
  const std::string topic = "bench-" + std::to_string(::getpid());
  if (!create_topic(kafka_sh, broker_dir, topic, partitions)) return 1;
  {
    auto p = make_producer(brokers);
    const auto t0 = Clock::now();
    for (const Event& e : stream) produce_event(*p, topic, log, e);
    p->flush(120000);
    std::printf("produced to %s (%d partitions): %.2f s\n", topic.c_str(), partitions, seconds_since(t0));
  }

  // 3. One worker, then two in one group (each its own store and thread, as two `liber
  // serve --kafka` processes would be), until every message is stored.
  double one_worker_s = 0;
  for (int n : {1, 2}) {
    std::vector<std::unique_ptr<Store>> stores;
    std::vector<std::unique_ptr<Ingestor>> ingestors;
    std::vector<std::unique_ptr<KafkaIngest>> sources;
    KafkaOptions o;
    o.brokers = brokers;
    o.topic = topic;
    o.group = topic + "-" + std::to_string(n);
    o.max_batch = batch;
    for (int w = 0; w < n; ++w) {
      stores.push_back(open_rocksdb_store(dir / ("kafka-" + std::to_string(n) + "-" + std::to_string(w))));
      ingestors.push_back(std::make_unique<Ingestor>(*stores.back(), log, rule));
      Ingestor* ing = ingestors.back().get();
      sources.push_back(std::make_unique<KafkaIngest>(
          *stores.back(), log, o,
          [ing](std::span<const Event> e, std::vector<AddStatus>* out, const std::function<void(WriteBatch&)>& with) {
            return ing->deliver(e, out, with);
          }));
    }
    std::atomic<bool> stop{false};
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (auto& source : sources) threads.emplace_back([&stop, s = source.get()] { s->run(stop); });
    double first_s = -1;
    uint64_t done = 0, batches = 0;
    while (true) {
      done = batches = 0;
      for (auto& source : sources) {
        const KafkaStats s = source->stats();
        done += s.accepted + s.duplicates + s.late + s.bad;
        batches += s.batches;
      }
      if (first_s < 0 && batches > 0) first_s = seconds_since(t0);
      if (done >= stream.size()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const double kafka_s = seconds_since(t0);
    stop = true;
    for (auto& t : threads) t.join();
    const double consuming_s = kafka_s - first_s;
    if (n == 1) one_worker_s = consuming_s;
    std::printf("Kafka -> store, %d worker%s (batches of %zu, offsets in each): %llu events in %.2f s from start "
                "(%.2f s to join the group and store a first batch), %.0f events/s once consuming; %llu batches\n",
                n, n > 1 ? "s" : "", batch, static_cast<unsigned long long>(done), kafka_s, first_s,
                stream.size() / consuming_s, static_cast<unsigned long long>(batches));
    std::printf("ratio: kafka (%d) / ingest = %.2f (consuming), %.2f (from start)", n, direct_s / consuming_s,
                direct_s / kafka_s);
    if (n > 1) std::printf("; 2 workers / 1 = %.2f", one_worker_s / consuming_s);
    std::printf("\n");
  }

  // 4. Taking over a partition: its records restored from the output topic into a fresh
  // store, against learning them again (--relearn-rate: partitions/s of the LLM that made
  // them; docs/results.md measured 0.30/s for Gemma 3 270M on this machine).
  if (restore_records > 0) {
    const std::string in = topic + "-in", out = topic + "-records";
    if (!create_topic(kafka_sh, broker_dir, in, 1) || !create_topic(kafka_sh, broker_dir, out, 1)) return 1;
    // Records as the pipeline writes them: a summary and shift of typical length, per user
    // and partition seq, the users of the stream.
    {
      auto p = make_producer(brokers);
      for (std::size_t i = 0; i < restore_records; ++i) {
        InterestRecord r;
        r.user = log.users.ids.key(1 + i % (log.users.size() - 1));
        r.seq = static_cast<uint32_t>(i / (log.users.size() - 1));
        r.variant = "0123456789abcdef";
        r.variant_name = "cascade";
        r.ok = true;
        r.quality = "verified";
        r.summary = "Enjoys character-driven dramas and thoughtful science fiction from the 1990s, rates "
                    "crime thrillers highly when they have strong ensembles, and avoids broad comedies.";
        r.shift = "Moved from action towards slower dramas and science fiction in this period.";
        r.model = "http:gemma@fleet";
        r.prompt_tokens = 900;
        r.completion_tokens = 110;
        produce(*p, out, 0, r.user + "|" + std::to_string(r.seq) + "|" + r.variant, r.to_json());
      }
      p->flush(120000);
    }
    auto fresh = open_rocksdb_store(dir / "restore");
    KafkaOptions o;
    o.brokers = brokers;
    o.topic = in;
    o.group = topic + "-restore";
    o.output_topic = out;
    KafkaChangelog changelog(*fresh, o);
    const auto t0 = Clock::now();
    changelog.restore(0);
    const double restore_s = seconds_since(t0);
    const ChangelogStats c = changelog.stats();
    const double relearn_s = static_cast<double>(c.restored) / relearn_rate;
    std::printf("takeover of a partition with %llu records: restored from the output topic in %.2f s (%.0f "
                "records/s); learning them again: %llu LLM calls, %.0f s at %.2f partitions/s (%.0fx longer)\n",
                static_cast<unsigned long long>(c.restored), restore_s, c.restored / restore_s,
                static_cast<unsigned long long>(c.restored), relearn_s, relearn_rate, relearn_s / restore_s);
  }

  // 5. End to end (with --llm-url): a worker (liber serve's Service: Kafka source, pipeline,
  // output topic) over the first users' events, produced at a steady rate; for each closed
  // partition, the time from producing the event that closed it to its record on the output
  // topic. Partitions close by count only (10 events). Then the recovery of those users: their
// records restored from the output topic, against learning them again.
  if (!llm_url.empty()) {
    const std::string in = topic + "-e2e", out = topic + "-e2e-records";
    if (!create_topic(kafka_sh, broker_dir, in, 6) || !create_topic(kafka_sh, broker_dir, out, 6)) return 1;
    PartitionRule by_count;
    by_count.count = 10;
    std::vector<Event> events;  // the first e2e_users users, e2e_partitions partitions each
    std::map<uint32_t, std::size_t> taken;
    for (const Event& e : time_ordered(log.events))  // whatever --events kept
      if (e.user <= static_cast<uint32_t>(e2e_users) && taken[e.user] < 10 * e2e_partitions) {
        events.push_back(e);
        ++taken[e.user];
      }
    auto store = open_rocksdb_store(dir / "e2e");
    Ingestor(*store, log, by_count).ingest({});  // the catalog and the rule
    ServeOptions so;
    so.token = "bench";
    so.port = 0;
    so.kafka.brokers = brokers;
    so.kafka.topic = in;
    so.kafka.group = in;
    so.kafka.output_topic = out;
    so.kafka.max_wait = std::chrono::milliseconds(20);
    so.pipeline.learn.candidates = 1;
    so.pipeline.learn.max_retries = 0;
    so.pipeline.learn.max_tokens = 96;
    HttpOptions h;
    h.base_url = llm_url;
    h.model = llm_model;
    auto llm = make_http_engine(h);
    LlamaOptions enc;
    enc.model_path = default_encoder_path();
    enc.embeddings = true;
    enc.threads = 1;
    auto encoder = make_llama_engine(enc);
    // The catalog's item texts encoded first, as in a worker's prepared store: a one-time
    // cost (3,883 texts) that the pipeline's first run would otherwise pay.
    const auto e0 = Clock::now();
    encode_knowledge(*store, *encoder, EncodeOptions{});
    std::printf("item texts encoded before the worker starts: %.1f s\n", seconds_since(e0));
    Service service(*store, so, llm.get(), encoder.get());
    std::thread serving([&] { service.run(); });
    // The output topic's records, as they arrive.
    std::map<std::string, Clock::time_point> arrived;
    std::mutex arrived_mutex;
    std::atomic<bool> reading{true};
    std::thread reader([&] {
      std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
      std::string err;
      conf->set("bootstrap.servers", brokers, err);
      conf->set("group.id", out + "-reader", err);
      conf->set("auto.offset.reset", "earliest", err);
      std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
      c->subscribe({out});
      while (reading) {
        std::unique_ptr<RdKafka::Message> m(c->consume(50));
        if (m->err() != RdKafka::ERR_NO_ERROR || !m->key()) continue;
        const std::string key = *m->key();
        std::lock_guard<std::mutex> lock(arrived_mutex);
        arrived.try_emplace(key.substr(0, key.rfind('|')), Clock::now());  // user|seq
      }
      c->close();
    });
    std::this_thread::sleep_for(std::chrono::seconds(3));  // the worker joins its group
    // Each partition's closing event: the 10th, 20th... of its user in the stream.
    std::map<std::string, Clock::time_point> closed_at;
    {
      auto p = make_producer(brokers, "5");  // librdkafka's default: the latency is measured
      std::map<uint32_t, std::size_t> seen;
      const auto t0 = Clock::now();
      for (std::size_t i = 0; i < events.size(); ++i) {
        const Event& e = events[i];
        std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<int64_t>(i * 1e6 / e2e_rate)));
        produce_event(*p, in, log, e);
        const std::string key = log.users.ids.key(e.user);
        if (++seen[e.user] % 10 == 0) closed_at[key + "|" + std::to_string(seen[e.user] / 10 - 1)] = Clock::now();
      }
      p->flush(60000);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(e2e_timeout_s);
    while (Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(arrived_mutex);
        if (arrived.size() >= closed_at.size()) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    reading = false;
    reader.join();
    service.stop();
    serving.join();
    std::vector<double> latency;
    for (const auto& [key, t] : closed_at)
      if (auto it = arrived.find(key); it != arrived.end())
        latency.push_back(std::chrono::duration<double>(it->second - t).count());
    std::sort(latency.begin(), latency.end());
    auto q = [&](double f) { return latency.empty() ? 0.0 : latency[std::min(latency.size() - 1, static_cast<std::size_t>(f * latency.size()))]; };
    std::printf("end to end (%zu events of %d users at %.0f events/s, LLM %s): %zu of %zu partitions' records on the "
                "output topic; event produced -> record on the topic: p50 %.2f s, p90 %.2f s, p99 %.2f s, max %.2f s\n",
                events.size(), e2e_users, e2e_rate, llm_url.c_str(), latency.size(), closed_at.size(), q(0.5), q(0.9),
                q(0.99), latency.empty() ? 0.0 : latency.back());

    // 6. Recovery of those users on a new worker: their events applied again either way
    // (as the events topic's replay does), then their records restored from the output
    // topic, against learning them again with the same LLM and settings.
    auto rebuilt = [&](const std::string& name) {
      auto st = open_rocksdb_store(dir / name);
      Ingestor(*st, log, by_count).ingest(events);
      return st;
    };
    auto restored_store = rebuilt("recover-restore");
    const auto r0 = Clock::now();
    KafkaChangelog changelog(*restored_store, so.kafka);
    for (int32_t p = 0; p < 6; ++p) changelog.restore(p);
    const double restore_s = seconds_since(r0);
    auto relearned_store = rebuilt("recover-relearn");
    const auto l0 = Clock::now();
    const CostReport cost = learn_interests(*relearned_store, *llm, so.pipeline.learn);
    const double relearn_s = seconds_since(l0);
    std::printf("recovery of %d users (%zu partitions): restored %llu records from the output topic in %.2f s, 0 LLM "
                "calls; learning them again took %.1f s and %llu LLM calls (%.0fx longer)\n",
                e2e_users, closed_at.size(), static_cast<unsigned long long>(changelog.stats().restored), restore_s,
                relearn_s, static_cast<unsigned long long>(cost.calls), relearn_s / restore_s);
  }
  fs::remove_all(dir);
  return 0;
}
