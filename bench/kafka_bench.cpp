// Events through Kafka into durable state (the Kafka source of liber serve: KafkaIngest over
// Ingestor::deliver, offsets in each batch) beside `liber ingest`'s path (Ingestor::ingest)
// on the same MovieLens-1M stream in the same run, loopback only. The events are produced
// to a fresh topic first (not timed as the worker's work; reported on its own).
//
// usage: scripts/kafka.sh start /tmp/kb        (prints the broker's address)
//        kafka_bench --brokers 127.0.0.1:PORT --data-dir DIR [--events N] [--partitions P]
//                    [--batch N] [--kafka-sh scripts/kafka.sh --broker-dir /tmp/kb]
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

#include <nlohmann/json.hpp>

#include "liber/data.h"
#include "liber/kafka.h"
#include "liber/ubsp.h"

namespace {

namespace fs = std::filesystem;
using namespace liber;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::string brokers, data_dir, kafka_sh = "scripts/kafka.sh", broker_dir;
  std::size_t limit = 0, batch = 1000;
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

  // 3. One worker: KafkaIngest into its own store, until every message is stored.
  auto store = open_rocksdb_store(dir / "kafka");
  Ingestor ing(*store, log, rule);
  KafkaOptions o;
  o.brokers = brokers;
  o.topic = topic;
  o.group = topic;
  o.max_batch = batch;
  KafkaIngest source(*store, log, o, [&](std::span<const Event> e, std::vector<AddStatus>* out,
                                         const std::function<void(WriteBatch&)>& with) {
    return ing.deliver(e, out, with);
  });
  std::atomic<bool> stop{false};
  const auto t0 = Clock::now();
  std::thread worker([&] { source.run(stop); });
  double first_s = -1;
  while (true) {
    const KafkaStats s = source.stats();
    if (first_s < 0 && s.batches > 0) first_s = seconds_since(t0);
    if (s.accepted + s.duplicates + s.late + s.bad >= stream.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double kafka_s = seconds_since(t0);
  stop = true;
  worker.join();
  const KafkaStats s = source.stats();
  const double consuming_s = kafka_s - first_s;
  std::printf("Kafka -> store, 1 worker (batches of %zu, offsets in each): %llu events in %.2f s from start "
              "(%.2f s to join the group and store a first batch), %.0f events/s once consuming; %llu "
              "batches\n",
              batch, static_cast<unsigned long long>(s.accepted), kafka_s, first_s, stream.size() / consuming_s,
              static_cast<unsigned long long>(s.batches));
  std::printf("ratio: kafka / ingest = %.2f (consuming), %.2f (from start)\n", direct_s / consuming_s,
              direct_s / kafka_s);
  store.reset();
  fs::remove_all(dir);
  return 0;
}
