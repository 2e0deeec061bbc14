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
//   DIR: a MovieLens-1M directory (the developers' copy holds users 1-2999 only).
#include <librdkafka/rdkafkacpp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "liber/data.h"
#include "liber/kafka.h"
#include "liber/ubsp.h"
#include "liber/uil.h"

namespace {

namespace fs = std::filesystem;
using namespace liber;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::string brokers, data_dir, kafka_sh = "scripts/kafka.sh", broker_dir;
  std::size_t limit = 0, batch = 1000, restore_records = 100000;
  double relearn_rate = 0.30;
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
  const std::string create = kafka_sh + " topic " + broker_dir + " " + topic + " " + std::to_string(partitions) +
                             " >/dev/null";
  if (std::system(create.c_str()) != 0) {
    std::fprintf(stderr, "kafka_bench: %s failed\n", create.c_str());
    return 1;
  }
  {
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::string err;
    conf->set("bootstrap.servers", brokers, err);
    conf->set("linger.ms", "20", err);
    std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
    const auto t0 = Clock::now();
    for (const Event& e : stream) {
      const std::string key = log.users.ids.key(e.user);
      const std::string value = nlohmann::json{{"user", key}, {"item", log.items.ids.key(e.item)}, {"ts", e.ts},
                                               {"rating", e.rating}}.dump();
      while (p->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                        const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0,
                        nullptr) == RdKafka::ERR__QUEUE_FULL)
        p->poll(10);
      p->poll(0);
    }
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
    for (const std::string& t : {in, out}) {
      const std::string cmd = kafka_sh + " topic " + broker_dir + " " + t + " 1 >/dev/null";
      if (std::system(cmd.c_str()) != 0) {
        std::fprintf(stderr, "kafka_bench: %s failed\n", cmd.c_str());
        return 1;
      }
    }
    // Records as the pipeline writes them: a summary and shift of typical length, per user
    // and partition seq, the users of the stream.
    {
      std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
      std::string err;
      conf->set("bootstrap.servers", brokers, err);
      conf->set("linger.ms", "20", err);
      std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
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
        const std::string key = r.user + "|" + std::to_string(r.seq) + "|" + r.variant, value = r.to_json();
        while (p->produce(out, 0, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()), value.size(),
                          key.data(), key.size(), 0, nullptr) == RdKafka::ERR__QUEUE_FULL)
          p->poll(10);
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
  fs::remove_all(dir);
  return 0;
}
