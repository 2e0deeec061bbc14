// `liber serve`: the store behind the HTTP API (include/liber/serve.h).
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <future>
#include <thread>

#include <fmt/format.h>

#include "cli.h"
#include "liber/error.h"
#include "liber/ctr.h"
#include "liber/serve.h"

namespace liber::cli {

namespace {

// SIGTERM and SIGINT become a byte on a pipe that a watching thread reads: a handler may do
// little else, and blocking the signals instead does not cover threads that libraries
// started before main.
int signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
  const char byte = static_cast<char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(signal_pipe[1], &byte, 1);
}

}  // namespace

void add_serve_command(CLI::App& app) {
  struct Flags {
    std::string store = "./liber-state";
    std::string host = "127.0.0.1";
    int port = 8080;
    std::string token_file, token_env;
    int threads = 4;
    bool no_sync = false;
    bool no_learn = false;
    EngineFlags llm, encoder;
    std::string variant = "cascade";
    int max_tokens = 200, candidates = 3, retries = 2;
    std::size_t batch_users = 64;
    std::size_t max_body_mb = 8, max_events = 10000, max_connections = 64, max_header_kb = 16;
    double read_timeout_s = 5, shutdown_timeout_s = 15;
    std::string model;
    std::string kafka, events_topic, output_topic, group = "liber", worker_id;
    std::vector<std::string> kafka_set;
    std::size_t max_items = 1000;
    int score_threads = 1;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "serve the store over HTTP: take events as they happen, answer what a user's "
               "partitions and interests are");
  cmd->add_option("--store", f->store, "state store directory (made by liber ingest)")->capture_default_str();
  cmd->add_option("--host", f->host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", f->port, "port to listen on (0: any free port)")->capture_default_str();
  auto* file = cmd->add_option("--token-file", f->token_file,
                               "file whose first line is the bearer token clients must send");
  auto* env = cmd->add_option("--token-env", f->token_env,
                              "environment variable holding the bearer token");
  file->excludes(env);
  cmd->add_option("--http-threads", f->threads, "threads answering requests")->capture_default_str();
  cmd->add_flag("--no-learn", f->no_learn,
                "no background pipeline: take events and answer, learn nothing (no LLM loaded)");
  cmd->add_option("--score-model", f->model,
                  "model directory (liber train --store ... --save-model DIR): POST /v1/score "
                  "answers with it");
  cmd->add_option("--max-items", f->max_items, "most candidate items in one score request")
      ->capture_default_str();
  cmd->add_option("--kafka", f->kafka,
                  "Kafka bootstrap servers: events also come from --events-topic (value: one "
                  "event as JSON, key: the user id), stored with their offsets");
  cmd->add_option("--events-topic", f->events_topic, "the Kafka topic of events (with --kafka)");
  cmd->add_option("--output-topic", f->output_topic,
                  "a compacted Kafka topic, as many partitions as --events-topic: the interest records go "
                  "to it, and a worker that takes over a partition restores them from it (with --kafka)");
  cmd->add_option("--kafka-set", f->kafka_set,
                  "a librdkafka setting KEY=VALUE for the consumer and the producer, e.g. "
                  "session.timeout.ms=10000 (repeatable)");
  cmd->add_option("--group", f->group, "the Kafka consumer group (with --kafka)")->capture_default_str();
  cmd->add_option("--worker-id", f->worker_id,
                  "a stable name for this worker (with --kafka): restarted, it gets its Kafka "
                  "partitions back at once (static membership)");
  cmd->add_option("--score-threads", f->score_threads,
                  "compute threads of one score request (requests run in parallel on the request "
                  "threads)")->capture_default_str();
  f->llm.add_to(*cmd);
  f->encoder.spec.encoder = true;
  f->encoder.prefix = "encoder-";
  f->encoder.add_to(*cmd);
  cmd->add_option("--variant", f->variant, "the variant the pipeline learns (as liber learn)")
      ->capture_default_str();
  cmd->add_option("--max-tokens", f->max_tokens, "output tokens per partition")->capture_default_str();
  cmd->add_option("--candidates", f->candidates,
                  "outputs sampled when one fails the verifier (as liber learn)")->capture_default_str();
  cmd->add_option("--retries", f->retries, "retries of a malformed output (as liber learn)")
      ->capture_default_str();
  cmd->add_option("--batch-users", f->batch_users, "users per pipeline run")->capture_default_str();
  cmd->add_flag("--no-sync", f->no_sync,
                "acknowledge events once in the write-ahead log, before it is fsynced (a "
                "process crash loses nothing; a power loss may lose the last requests)");
  cmd->add_option("--max-body-mb", f->max_body_mb, "largest request body, MiB")->capture_default_str();
  cmd->add_option("--max-events", f->max_events, "most events in one request")->capture_default_str();
  cmd->add_option("--max-header-kb", f->max_header_kb, "request line and headers together, KiB")
      ->capture_default_str();
  cmd->add_option("--max-connections", f->max_connections,
                  "connections open at once; one more gets 503")->capture_default_str();
  cmd->add_option("--read-timeout", f->read_timeout_s,
                  "seconds a request may take to arrive from its first byte (and an idle "
                  "connection stays open)")->capture_default_str();
  cmd->add_option("--shutdown-timeout", f->shutdown_timeout_s,
                  "seconds SIGTERM waits for in-flight requests before exiting anyway")->capture_default_str();
  cmd->callback([f] {
    ServeOptions opt;
    opt.host = f->host;
    opt.port = f->port;
    if (!f->token_file.empty()) opt.token = read_token_file(f->token_file);
    else if (!f->token_env.empty()) opt.token = read_token_env(f->token_env);
    else throw Error(ErrorKind::Config, "liber serve needs --token-file FILE or --token-env NAME");
    opt.threads = f->threads;
    opt.sync = !f->no_sync;
    opt.limits.max_body_bytes = f->max_body_mb << 20;
    opt.limits.max_events = f->max_events;
    opt.limits.max_connections = f->max_connections;
    opt.limits.max_header_bytes = f->max_header_kb << 10;
    opt.limits.read_timeout = std::chrono::milliseconds(static_cast<int64_t>(f->read_timeout_s * 1000));
    opt.limits.max_items = f->max_items;
    if (!f->kafka.empty()) {
      if (f->events_topic.empty()) throw Error(ErrorKind::Config, "--kafka needs --events-topic TOPIC");
      opt.kafka.brokers = f->kafka;
      opt.kafka.topic = f->events_topic;
      opt.kafka.group = f->group;
      opt.kafka.worker_id = f->worker_id;
      opt.kafka.output_topic = f->output_topic;
      for (const std::string& kv : f->kafka_set) {
        const auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
          throw Error(ErrorKind::Config, fmt::format("--kafka-set {}: not KEY=VALUE", kv));
        opt.kafka.config[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
    }
    opt.model = f->model;
    if (!opt.model.empty()) set_compute_threads(f->score_threads);

    if (::pipe(signal_pipe) != 0) throw Error(ErrorKind::Io, "liber serve: cannot create a pipe");
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGTERM, &action, nullptr);
    ::sigaction(SIGINT, &action, nullptr);

    opt.pipeline.learn.variant = f->variant;
    opt.pipeline.learn.max_tokens = f->max_tokens;
    opt.pipeline.learn.candidates = f->candidates;
    opt.pipeline.learn.max_retries = f->retries;
    opt.pipeline.batch_users = f->batch_users;
    std::unique_ptr<LlmEngine> llm, encoder;
    if (!f->no_learn) {
      llm = f->llm.make();
      encoder = f->encoder.make();
    }
    auto store = open_rocksdb_store(f->store);
    Service service(*store, opt, llm.get(), encoder.get());
    const int port = service.bind();
    std::fprintf(stderr, "liber: serving %s on http://%s:%d (%d request threads; %s)\n",
                 f->store.c_str(), opt.host.c_str(), port, opt.threads,
                 llm ? fmt::format("learning with {}, encoding with {}", llm->model_id(),
                                   encoder->model_id()).c_str()
                     : "no pipeline");
    if (!opt.model.empty()) std::fprintf(stderr, "liber: scoring with the model in %s\n", opt.model.c_str());
    if (!opt.kafka.brokers.empty())
      std::fprintf(stderr, "liber: consuming %s from %s as group %s\n", opt.kafka.topic.c_str(),
                   opt.kafka.brokers.c_str(), opt.kafka.group.c_str());
    std::promise<void> done;
    std::thread watcher([&service, &done, timeout = f->shutdown_timeout_s] {
      char sig = 0;
      while (::read(signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
      }
      if (sig == 0) return;  // run() returned on its own
      std::fprintf(stderr, "liber: %s: finishing in-flight requests\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      service.stop();
      if (done.get_future().wait_for(std::chrono::duration<double>(timeout)) != std::future_status::ready) {
        std::fprintf(stderr, "liber: requests still in flight after %.0f s; exiting anyway\n", timeout);
        std::_Exit(1);
      }
    });
    service.run();
    done.set_value();
    // run() also returns when the listener fails: wake the watcher if no signal came.
    const char none = 0;
    [[maybe_unused]] const ssize_t n = ::write(signal_pipe[1], &none, 1);
    watcher.join();
    store->flush();
    std::fprintf(stderr, "liber: stopped\n");
  });
}

}  // namespace liber::cli
