// `liber serve`: the store behind an HTTP API (JSON under /v1). Events arrive as they
// happen and go through the same durable, idempotent UBSP path as `liber ingest`; a user's
// partitions and interest records are read back from the store. See README "The service".
//
// The service holds no state of its own: everything it answers comes from the store, and
// everything it accepts is in the store before it answers.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "liber/data.h"
#include "liber/kafka.h"
#include "liber/llm.h"
#include "liber/store.h"
#include "liber/ubsp.h"
#include "liber/uif.h"
#include "liber/uil.h"

namespace liber {

// ---- Event decoding --------------------------------------------------------------------
// A request body of events: a JSON array of objects, or JSON lines (one object a line,
// blank lines allowed). An event: {"user": id, "item": id, "ts": seconds, "rating"?: number,
// "label"?: 0|1}; ids are the catalog's external ids, as strings or integers.
struct EventProblem {
  std::size_t index = 0;  // the event's position in the request, from 0
  std::string field;      // "user", "item", "ts", "rating", "label", or "" for the event
  std::string reason;
};
struct DecodedEvents {
  std::vector<Event> events;         // the well-formed events, in request order
  std::vector<std::size_t> position; // each one's index in the request
  std::vector<EventProblem> bad;     // the others, with what is wrong
  std::size_t total = 0;             // events in the request
};
// Throws Error(Parse) when the body is not a JSON array or JSON lines of objects (naming
// the line and column), and Error(Limit) when it holds more than `max_events`. An event
// that is wrong in itself (not an object; a field missing, of the wrong type, out of range;
// an unknown user or item) is in `bad`, not thrown: the others still count.
DecodedEvents decode_events(std::string_view body, const ItemCatalog& items,
                            const UserTable& users, std::size_t max_events);

// A scoring request: {"user": id, "items": [id, ...], "ts"?: seconds}; ids as strings or
// integers. Throws Error(Parse) when the body is not a JSON object and Error(Limit) for more
// than `max_items` items. A wrong field is reported, not thrown: `field` ("user", "items",
// "items[3]", "ts") and `reason`; users are checked against `users` (the store's) and
// items with `known_item` (the model's vocabulary).
struct ScoreRequest {
  std::string user;
  std::vector<std::string> items;
  std::optional<int64_t> ts;
  std::string field, reason;  // the first problem; empty when the request is well-formed
  bool ok() const { return field.empty(); }
};
ScoreRequest decode_score_request(std::string_view body, const UserTable& users,
                                  const std::function<bool(std::string_view)>& known_item,
                                  std::size_t max_items);

// ---- The service ----------------------------------------------------------------------
// Every limit is answered with its status and a JSON error naming the limit, and the
// connection is closed:
//   a body over max_body_bytes (declared, or chunked)  413 {"limit": "body_bytes"}
//   more than max_events in a request                 413 {"limit": "events_per_request"}
//   more than max_items candidates in a score request  413 {"limit": "items_per_request"}
//   request line and headers over max_header_bytes     431 {"limit": "header_bytes"}
//   a connection over max_connections                  503 {"limit": "connections"}, at once
//   a request not all sent within read_timeout of its first byte: 408 {"limit": "read_timeout"}
// (src/include/liber/serve/http_server.h has the details.)
struct ServeLimits {
  std::size_t max_body_bytes = 8u << 20;
  std::size_t max_events = 10000;
  std::size_t max_header_bytes = 16u << 10;
  std::chrono::milliseconds read_timeout{5000};  // also how long an idle connection stays open
  std::size_t max_connections = 64;              // open at once
  std::size_t max_items = 1000;  // candidates per score request: 413 {"limit": "items_per_request"}
};

// The background pipeline: every partition that closes is learned (UIL, cascade order per
// user, the engine's continuous batching), verified, and its texts encoded (UIF), so a
// user's interests become fresh without a batch command. Its queue is the store: a
// partition is pending while its variant has no ok record for it, so a restart resumes
// where the last run stopped (the first run after start covers every user). In memory it
// holds at most max_users user ids; past that it forgets them and rescans the store.
// Ingest never waits for it. An engine that fails (a server down) leaves the partitions
// pending: the pipeline retries after a back-off that doubles up to max_backoff.
struct PipelineOptions {
  LearnOptions learn;             // variant, max tokens, guard...: as liber learn
  EncodeOptions encode;           // as liber encode
  std::size_t batch_users = 64;   // users per learn run
  std::size_t max_users = 100000; // user ids held in memory before a rescan
  std::chrono::milliseconds max_backoff{30000};
  // After each run's encoding: the users whose vectors it may have changed (`all`: every
  // user). The service's scorer reads them again.
  std::function<void(std::span<const std::string> users, bool all)> on_encoded;
  // After each record is stored (the Kafka output topic publishes it).
  std::function<void(const InterestRecord&)> on_record;
  // Which users this worker learns (a Kafka worker: those of the partitions it owns): of
  // `users`, or every such user when `all`. Unset: every user.
  std::function<std::vector<std::string>(std::vector<std::string> users, bool all)> scope;
};

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;        // 0: any free port (Service::port says which)
  std::string token;      // the bearer token every route but /healthz and /readyz requires
  int threads = 4;        // threads answering requests
  bool sync = true;       // fsync the write-ahead log before acknowledging events
  ServeLimits limits;
  PipelineOptions pipeline;
  // A model directory (liber train --store ... --save-model DIR): POST /v1/score answers
  // with it. Empty: no scoring.
  std::filesystem::path model;
  // Events also come from this Kafka topic (liber/kafka.h), through the same ingest path.
  // Empty brokers: none.
  KafkaOptions kafka;
};

class Service {
 public:
  // Reads the catalog and the partition rule from the store (a store `liber ingest`
  // made). With an LLM and an encoder it runs the background pipeline (both are used by
  // its thread alone and must outlive the service); without, it only ingests and answers.
  // Throws Error(Config) without a token, Error(InvalidInput) for a store without a catalog.
  Service(Store& store, ServeOptions options, LlmEngine* llm = nullptr, LlmEngine* encoder = nullptr);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Binds the listening socket; returns the port. Throws Error(Io) when it cannot.
  int bind();
  // Serves until stop(); binds first if bind() was not called.
  void run();
  // Stops accepting, lets in-flight requests finish, makes run() return. Safe from any
  // thread and from a signal-watching thread (not from a signal handler).
  void stop();
  int port() const;
  // The /metrics text.
  std::string metrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The bearer token from a file (first line, trimmed) or an environment variable.
// Throws Error(Config) naming the file or variable when it is missing or empty.
std::string read_token_file(const std::filesystem::path& file);
std::string read_token_env(std::string_view variable);

}  // namespace liber
