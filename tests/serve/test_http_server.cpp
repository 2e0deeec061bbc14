// The HTTP server alone, on 127.0.0.1 and a free port: round trips through its handlers
// and every limit it enforces itself, driven by raw sockets where a well-behaved client
// (cpp-httplib) would not misbehave the way the test needs.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/serve/http_server.h"

namespace liber::serve {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// How long any single wait on the server may take before the test calls it hung: far
// above every deadline the tests configure, never a performance bound.
constexpr auto kGuard = 10s;

struct RawResponse {
  int status = 0;  // 0: the connection ended before a whole response
  std::string head;
  std::string body;

  std::string header(std::string_view lower_name) const {
    std::size_t at = head.find("\r\n");
    while (at != std::string::npos && at + 2 < head.size()) {
      const std::size_t end = head.find("\r\n", at + 2);
      const std::string line = head.substr(at + 2, end - at - 2);
      const std::size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (colon != std::string::npos && name == lower_name) {
        const std::size_t value = line.find_first_not_of(' ', colon + 1);
        return value == std::string::npos ? "" : line.substr(value);
      }
      at = end;
    }
    return {};
  }
  json body_json() const { return json::parse(body); }
};

// One TCP connection driven byte by byte; every read gives up after kGuard.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval guard{std::chrono::seconds(kGuard).count(), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  // False once the server has closed (MSG_NOSIGNAL: no SIGPIPE for the test).
  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  RawResponse read_response() {
    RawResponse r;
    std::size_t head_end;
    while ((head_end = pending_.find("\r\n\r\n")) == std::string::npos)
      if (!receive()) return r;
    r.head = pending_.substr(0, head_end);
    const std::string length = r.header("content-length");
    const std::size_t body_size = length.empty() ? 0 : std::stoul(length);
    while (pending_.size() < head_end + 4 + body_size)
      if (!receive()) return r;
    r.body = pending_.substr(head_end + 4, body_size);
    pending_.erase(0, head_end + 4 + body_size);
    r.status = std::stoi(r.head.substr(r.head.find(' ') + 1, 3));
    return r;
  }

  // True when the server closed the connection (end of stream or reset) with nothing
  // more sent; false if it sent more or the guard ran out.
  bool closed_by_server() {
    char byte;
    const ssize_t n = ::recv(fd_, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool receive() {
    char chunk[4096];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    pending_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string pending_;
};

RawResponse exchange_at(int port, std::string_view request) {
  RawClient c(port);
  EXPECT_TRUE(c.connected());
  c.send(request);
  return c.read_response();
}

class HttpServerTest : public ::testing::Test {
 protected:
  HttpLimits limits;
  HttpHandlers handlers;
  std::unique_ptr<HttpServer> server;
  std::thread thread;
  std::mutex mutex;
  std::vector<HttpRequest> handled;  // what `handle` saw
  std::vector<int> done_statuses;    // what `done` saw
  std::condition_variable done_called;

  HttpServerTest() {
    // Echoes what the server decoded, so a test can check it on the client's side.
    handlers.handle = [this](const HttpRequest& req) {
      {
        std::lock_guard lock(mutex);
        handled.push_back(req);
      }
      json query = json::array();
      for (const auto& [k, v] : req.query) query.push_back({k, v});
      HttpResponse r;
      r.body = json{{"method", req.method}, {"path", req.path}, {"query", query},
                    {"test_header", req.header("x-liber-test")}, {"body_size", req.body.size()}}
                   .dump();
      r.headers.emplace_back("X-Echo", "yes");
      return r;
    };
    handlers.done = [this](const HttpRequest&, const HttpResponse& res, double seconds) {
      EXPECT_GE(seconds, 0.0);
      std::lock_guard lock(mutex);
      done_statuses.push_back(res.status);
      done_called.notify_all();
    };
  }

  // `done` runs once the response is written, which may be after the client has read it,
  // and after a later connection's: the statuses come sorted.
  std::vector<int> done_statuses_after(std::size_t count) {
    std::unique_lock lock(mutex);
    done_called.wait_for(lock, kGuard, [&] { return done_statuses.size() >= count; });
    std::vector<int> sorted = done_statuses;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }

  void start(int threads = 2) {
    server = std::make_unique<HttpServer>("127.0.0.1", 0, threads, limits, handlers);
    server->bind();
    thread = std::thread([this] { server->run(); });
  }
  void TearDown() override {
    if (server) server->stop();
    if (thread.joinable()) thread.join();
  }
  int port() const { return server->port(); }

  RawResponse exchange(std::string_view request) { return exchange_at(port(), request); }
};

TEST_F(HttpServerTest, RoundTripsAndKeepsTheConnectionAlive) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(
      "GET /v1/users/a%20b?x=1&name=hello+world%21&flag HTTP/1.1\r\n"
      "Host: localhost\r\nX-Liber-Test: Yes\r\n\r\n"));
  const RawResponse get = c.read_response();
  ASSERT_EQ(get.status, 200) << get.head;
  EXPECT_EQ(get.header("x-echo"), "yes");
  EXPECT_EQ(get.header("content-type"), "application/json");
  const json g = get.body_json();
  EXPECT_EQ(g["method"], "GET");
  EXPECT_EQ(g["path"], "/v1/users/a b");
  EXPECT_EQ(g["query"], json::parse(R"([["x","1"],["name","hello world!"],["flag",""]])"));
  EXPECT_EQ(g["test_header"], "Yes");

  // The same connection serves the next request.
  ASSERT_TRUE(c.send("POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"));
  const RawResponse post = c.read_response();
  ASSERT_EQ(post.status, 200) << post.head;
  EXPECT_EQ(post.body_json()["method"], "POST");
  EXPECT_EQ(post.body_json()["body_size"], 5);

  EXPECT_EQ(done_statuses_after(2), (std::vector<int>{200, 200}));
  std::lock_guard lock(mutex);
  ASSERT_EQ(handled.size(), 2u);
  EXPECT_EQ(handled[0].target, "/v1/users/a%20b?x=1&name=hello+world%21&flag");
  EXPECT_EQ(handled[0].param("name"), "hello world!");
  EXPECT_EQ(handled[0].param("absent"), "");
  EXPECT_EQ(handled[1].body, "hello");
  EXPECT_EQ(handled[1].header("content-length"), "5");
}

TEST_F(HttpServerTest, ServesCppHttplibClients) {
  start();
  httplib::Client client("127.0.0.1", port());
  client.set_read_timeout(std::chrono::seconds(kGuard).count(), 0);
  for (int i = 0; i < 3; ++i) {
    const auto r = client.Post("/v1/events?n=" + std::to_string(i), std::string(1000, 'e'),
                               "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(json::parse(r->body)["body_size"], 1000);
  }
}

TEST_F(HttpServerTest, ServesConcurrentClients) {
  start(3);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < 6; ++t)
    clients.emplace_back([this, &ok, t] {
      httplib::Client client("127.0.0.1", port());
      client.set_read_timeout(std::chrono::seconds(kGuard).count(), 0);
      for (int i = 0; i < 20; ++i) {
        const auto r = client.Post("/e", std::string(100 * t + i, 'x'), "text/plain");
        if (r && r->status == 200 && json::parse(r->body)["body_size"] == 100 * t + i) ++ok;
      }
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok, 6 * 20);
  EXPECT_EQ(done_statuses_after(6 * 20).size(), 6u * 20);
}

TEST_F(HttpServerTest, SendsContinueBeforeReadingTheBody) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 100);
  ASSERT_TRUE(c.send("body"));
  const RawResponse r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body_json()["body_size"], 4);
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionIsClosed) {
  limits.keep_alive_timeout = 200ms;
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_EQ(c.read_response().status, 200);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(HttpServerTest, PrecheckAnswersWithoutReadingTheBody) {
  limits.read_timeout = 60s;  // were the body awaited, the answer would come after kGuard
  handlers.precheck = [](const HttpRequest& req) -> std::optional<HttpResponse> {
    EXPECT_TRUE(req.body.empty());
    if (!req.header("authorization").empty()) return std::nullopt;
    return HttpResponse{401, "application/json", R"({"error":"missing token"})", {}, false};
  };
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"));
  const RawResponse r = c.read_response();
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(exchange("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n\r\n").status, 200);
  std::lock_guard lock(mutex);
  EXPECT_EQ(handled.size(), 1u);
}

TEST_F(HttpServerTest, RefusesBodiesOverTheLimit) {
  limits.max_body_bytes = 1000;
  limits.read_timeout = 60s;
  start();
  // Content-Length over the limit: refused before any body byte is sent.
  RawResponse r = exchange("POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.body_json()["limit"], "body_bytes");
  EXPECT_EQ(r.header("connection"), "close");

  // A chunked body that grows past the limit.
  const std::string chunk(600, 'c');
  r = exchange("POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" + chunk +
               "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.body_json()["limit"], "body_bytes");

  // Exactly at the limit, by length and chunked.
  r = exchange("POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" +
               std::string(1000, 'b'));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body_json()["body_size"], 1000);
  r = exchange("POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1f4\r\n" +
               std::string(500, 'c') + "\r\n1f4\r\n" + std::string(500, 'c') + "\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body_json()["body_size"], 1000);

  EXPECT_EQ(done_statuses_after(4), (std::vector<int>{200, 200, 413, 413}));
}

TEST_F(HttpServerTest, RefusesHeadersOverTheLimitInTotal) {
  limits.max_header_bytes = 1024;
  start();
  std::string fields;
  for (int i = 100; i < 200; ++i) fields += "X-H" + std::to_string(i) + ": v\r\n";  // 1,100 bytes
  RawResponse r = exchange("GET / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n");
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.body_json()["limit"], "header_bytes");
  // The request line counts too.
  r = exchange("GET /" + std::string(600, 'p') + " HTTP/1.1\r\nHost: a\r\nX-Pad: " +
               std::string(600, 'v') + "\r\n\r\n");
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(exchange("GET / HTTP/1.1\r\nHost: a\r\n" + fields.substr(0, 50 * 11) + "\r\n").status, 200);
}

TEST_F(HttpServerTest, CutsOffASlowDripAtTheReadTimeout) {
  limits.read_timeout = 1s;
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  const std::string drip = "GET / HTTP/1.1\r\nHost: a\r\nX-Drip: " + std::string(1000, 'd');
  std::string received;
  bool ended = false;
  const auto guard = std::chrono::steady_clock::now() + kGuard;
  for (std::size_t i = 0; !ended && std::chrono::steady_clock::now() < guard; ++i) {
    if (i < drip.size()) c.send(drip.substr(i, 1));
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char chunk[4096];
    const ssize_t n = ::recv(c.fd(), chunk, sizeof chunk, 0);
    if (n > 0) received.append(chunk, static_cast<std::size_t>(n));
    ended = n <= 0;
  }
  EXPECT_TRUE(ended) << "still connected after the guard";
  EXPECT_NE(received.find("HTTP/1.1 408"), std::string::npos) << received;
  EXPECT_NE(received.find(R"("limit":"read_timeout")"), std::string::npos) << received;
}

TEST_F(HttpServerTest, AnswersOneConnectionTooMany503AtOnce) {
  limits.max_connections = 2;
  start();
  RawClient a(port()), b(port());
  // Served once, both are surely open on the server's side, and idle.
  for (RawClient* c : {&a, &b}) {
    ASSERT_TRUE(c->send("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    ASSERT_EQ(c->read_response().status, 200);
  }
  {
    RawClient third(port());
    third.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const RawResponse r = third.read_response();
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.body_json()["limit"], "connections");
    EXPECT_EQ(r.body_json()["error"], "too many connections (limit 2)");
    EXPECT_TRUE(third.closed_by_server());
  }
  // Once a closes (the server notices asynchronously), a new connection is served.
  ::shutdown(a.fd(), SHUT_RDWR);
  int status = 0;
  for (const auto guard = std::chrono::steady_clock::now() + kGuard;
       status != 200 && std::chrono::steady_clock::now() < guard;
       std::this_thread::sleep_for(20ms))
    status = exchange("GET / HTTP/1.1\r\nHost: a\r\n\r\n").status;
  EXPECT_EQ(status, 200);
  ASSERT_TRUE(b.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_EQ(b.read_response().status, 200);
}

TEST_F(HttpServerTest, AnswersMalformedRequests400) {
  start();
  for (const char* request : {"NOT A REQUEST\r\n\r\n", "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
                              "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"}) {
    RawClient c(port());
    c.send(request);
    const RawResponse r = c.read_response();
    EXPECT_EQ(r.status, 400) << request;
    EXPECT_EQ(r.body_json()["error"], "malformed HTTP request");
    EXPECT_TRUE(c.closed_by_server());
  }
}

TEST_F(HttpServerTest, StopAnswersTheRequestInProgressThenReturns) {
  std::promise<void> entered;
  handlers.handle = [&entered](const HttpRequest&) {
    entered.set_value();
    std::this_thread::sleep_for(300ms);
    return HttpResponse{200, "text/plain", "finished", {}, false};
  };
  start();
  RawClient idle(port());
  ASSERT_TRUE(idle.connected());
  RawClient busy(port());
  ASSERT_TRUE(busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_EQ(entered.get_future().wait_for(kGuard), std::future_status::ready);

  std::promise<void> returned;
  std::thread run_watch([this, &returned] {
    thread.join();
    returned.set_value();
  });
  server->stop();
  const RawResponse r = busy.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "finished");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(busy.closed_by_server());
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_EQ(returned.get_future().wait_for(kGuard), std::future_status::ready)
      << "run() did not return";
  run_watch.join();
  server->stop();  // idempotent
}

TEST_F(HttpServerTest, StopsBeforeRunAndOnDestruction) {
  HttpServer before("127.0.0.1", 0, 2, limits, handlers);
  before.bind();
  before.stop();
  before.stop();
  before.run();  // returns at once

  // Destroyed while running: the destructor stops it and waits for run().
  auto running = std::make_unique<HttpServer>("127.0.0.1", 0, 2, limits, handlers);
  running->bind();
  std::thread t([server = running.get()] { server->run(); });
  EXPECT_EQ(exchange_at(running->port(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n").status, 200);
  running.reset();
  t.join();
}

TEST_F(HttpServerTest, SecondServerCannotBindTheSamePort) {
  start();
  HttpServer second("127.0.0.1", port(), 1, limits, handlers);
  try {
    second.bind();
    FAIL() << "bound a port already in use";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port())),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace liber::serve
