// The HTTP/1.1 server under liber serve, on Boost.Beast (async, one io_context on a pool
// of threads, a strand per connection); see include/liber/serve/http_server.h.
//
// Each connection is a Session that goes Idle -> Reading -> Handling -> Writing and back to
// Idle (keep-alive), or to Closing. Deadlines are one steady_timer per session that cancels
// the socket rather than Beast's tcp_stream timeouts: tcp_stream closes the socket on
// expiry, which leaves no way to answer 408.
#include "liber/serve/http_server.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

#include "liber/error.h"

namespace liber::serve {

std::string HttpRequest::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return value;
  return {};
}

std::string HttpRequest::param(std::string_view name) const {
  for (const auto& [key, value] : query)
    if (key == name) return value;
  return {};
}

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

// Without a reserve Beast reads bodies 512 bytes at a time (boostorg/beast#1345).
constexpr std::size_t kReadChunk = 64 * 1024;
// After a closing response the server stops sending and discards what the client still
// sends for this long before closing: closing with unread input makes the kernel send a
// reset, which can destroy the response before the client reads it.
constexpr std::chrono::milliseconds kLinger{1000};
// accept() failing (out of file descriptors) would otherwise be retried in a busy loop.
constexpr std::chrono::milliseconds kAcceptRetry{50};

// The server's own answers: {"error": ..., "limit": ...}, and the connection closes.
HttpResponse refusal(int status, std::string_view error, std::string_view limit = {}) {
  HttpResponse r;
  r.status = status;
  nlohmann::json body{{"error", error}};
  if (!limit.empty()) body["limit"] = limit;
  r.body = body.dump();
  r.close = true;
  return r;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX sequences decoded; an invalid one is kept as sent. '+' is a space in a query only.
std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 &&
        hex_digit(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

HttpRequest request_of(const http::request_header<>& header) {
  HttpRequest r;
  r.method = std::string(header.method_string());
  r.target = std::string(header.target());
  const std::string_view target = r.target;
  const std::size_t mark = target.find('?');
  r.path = percent_decode(target.substr(0, mark), false);
  if (mark != std::string_view::npos) {
    std::string_view rest = target.substr(mark + 1);
    while (!rest.empty()) {
      const std::size_t amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
      if (pair.empty()) continue;
      const std::size_t eq = pair.find('=');
      r.query.emplace_back(
          percent_decode(pair.substr(0, eq), true),
          eq == std::string_view::npos ? std::string{} : percent_decode(pair.substr(eq + 1), true));
    }
  }
  for (const auto& field : header) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    r.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  return r;
}

bool is_parse_error(const beast::error_code& ec) {
  return &ec.category() == &http::make_error_code(http::error::bad_method).category();
}

class Session;

// Everything HttpServer holds. Member order matters: the io_context is destroyed after the
// acceptor and before what the sessions it still owns use in their destructors.
class Server {
 public:
  Server(std::string host, int port, int threads, HttpLimits limits, HttpHandlers handlers)
      : limits(limits),
        handlers(std::move(handlers)),
        host_(std::move(host)),
        requested_port_(port),
        threads_(std::max(threads, 1)),
        ioc_(threads_) {}

  int bind();
  void run();
  void stop();
  // Blocks until no run() is in progress.
  void wait_for_run();
  int port() const {
    const int bound = bound_port_.load();
    return bound != 0 ? bound : requested_port_;
  }

  bool stopping() const { return stopping_.load(); }
  // Registers a new session; false once stopping, when it must close instead.
  bool admit(Session* session);
  void forget(Session* session);
  void release_connection() { open_connections_.fetch_sub(1); }

  const HttpLimits limits;
  const HttpHandlers handlers;

 private:
  void accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  void refuse_connection(tcp::socket socket);

  const std::string host_;
  const int requested_port_;
  const int threads_;
  std::atomic<int> bound_port_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> open_connections_{0};
  std::mutex mutex_;  // sessions_, stopping_ transitions, running_, bind
  std::unordered_set<Session*> sessions_;
  std::condition_variable run_returned_;
  bool running_ = false;
  net::io_context ioc_;
  tcp::acceptor acceptor_{net::make_strand(ioc_)};
  net::steady_timer accept_retry_{acceptor_.get_executor()};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server& server, tcp::socket socket)
      : server_(server), socket_(std::move(socket)), deadline_(socket_.get_executor()) {
    buffer_.reserve(kReadChunk);
  }
  ~Session() {
    server_.forget(this);
    server_.release_connection();
  }

  // On the session's strand, like everything it does: stop() may reach it once admitted.
  void start() {
    net::dispatch(socket_.get_executor(), [self = shared_from_this()] {
      if (!self->server_.admit(self.get())) return self->close();
      // A new connection has read_timeout for its first byte; a kept-alive one, the
      // keep-alive timeout.
      self->wait_for_request(self->server_.limits.read_timeout);
    });
  }

  // From stop(): an idle or lingering connection closes now; one with a request in
  // progress is answered first (with Connection: close, since the server is stopping).
  void stop() {
    net::post(socket_.get_executor(), [self = shared_from_this()] {
      if (self->phase_ == Phase::Idle || self->phase_ == Phase::Closing) self->close();
    });
  }

 private:
  enum class Phase { Idle, Reading, Handling, Writing, Closing };

  // One deadline at a time; on expiry it cancels the socket's operation, whose handler
  // then sees timed_out_.
  void arm(std::chrono::milliseconds timeout) {
    timed_out_ = false;
    deadline_.expires_after(timeout);
    deadline_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      const auto self = weak.lock();
      // A stale wake-up (re-armed or disarmed meanwhile) sees an expiry in the future.
      if (ec || !self || self->deadline_.expiry() > Clock::now()) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->socket_.cancel(ignored);
    });
  }
  void disarm() { deadline_.expires_at(Clock::time_point::max()); }

  void close() {
    phase_ = Phase::Closing;
    disarm();
    beast::error_code ignored;
    socket_.close(ignored);
  }

  // Idle until the next request's first byte; a connection that stays silent closes
  // without an answer.
  void wait_for_request(std::chrono::milliseconds idle_timeout) {
    phase_ = Phase::Idle;
    if (buffer_.size() > 0) return begin_request();  // pipelined
    arm(idle_timeout);
    socket_.async_read_some(
        buffer_.prepare(beast::read_size(buffer_, kReadChunk)),
        [self = shared_from_this()](beast::error_code ec, std::size_t n) {
          self->buffer_.commit(n);
          if (ec) return self->close();
          self->begin_request();
        });
  }

  void begin_request() {
    phase_ = Phase::Reading;
    started_ = Clock::now();
    request_ = HttpRequest{};
    client_keep_alive_ = false;
    version_ = 11;
    body_parser_.reset();
    header_parser_.emplace();
    header_parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
        server_.limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    // Content-Length is checked after the precheck, which answers first. Not boost::none:
    // Beast 1.74 compares Content-Length > none as true.
    header_parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    arm(server_.limits.read_timeout);  // the whole request, headers and body
    http::async_read_header(socket_, buffer_, *header_parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->on_header(ec, n);
                            });
  }

  void on_header(beast::error_code ec, std::size_t header_bytes) {
    if (timed_out_) return refuse_timeout();
    if (ec) return refuse_read(ec);
    // Beast limits the request line and the fields separately; the limit is on both.
    if (header_bytes > server_.limits.max_header_bytes) return refuse_header_bytes();
    const auto& header = header_parser_->get();
    request_ = request_of(header);
    client_keep_alive_ = header.keep_alive();
    version_ = header.version();
    if (server_.handlers.precheck) {
      std::optional<HttpResponse> early;
      try {
        early = server_.handlers.precheck(request_);
      } catch (const std::exception&) {
        early = refusal(500, "internal error");
      }
      if (early) {
        early->close = true;  // the body was not read
        return respond(std::move(*early));
      }
    }
    const auto length = header_parser_->content_length();
    if (length && *length > server_.limits.max_body_bytes) return refuse_body_bytes();
    body_parser_.emplace(std::move(*header_parser_));
    header_parser_.reset();
    // Counts the chunked body as it arrives; Content-Length was checked above.
    body_parser_->body_limit(server_.limits.max_body_bytes);
    if (version_ >= 11 && beast::iequals(request_.header("expect"), "100-continue")) {
      // The client waits for this before sending the body (curl for a second).
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                              [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                if (self->timed_out_) return self->refuse_timeout();
                                if (ec) return self->close();
                                self->read_body();
                              });
    }
    read_body();
  }

  void read_body() {
    http::async_read(socket_, buffer_, *body_parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_body(ec);
                     });
  }

  void on_body(beast::error_code ec) {
    if (timed_out_) return refuse_timeout();
    if (ec) return refuse_read(ec);
    disarm();
    request_.body = std::move(body_parser_->get().body());
    body_parser_.reset();
    phase_ = Phase::Handling;
    // Runs here, on one of the pool's threads: it may block (fsync'd writes), which holds
    // only this connection and this thread.
    HttpResponse response;
    try {
      response = server_.handlers.handle(request_);
    } catch (const std::exception&) {
      response = refusal(500, "internal error");
    }
    respond(std::move(response));
  }

  void refuse_read(beast::error_code ec) {
    if (ec == http::error::header_limit) return refuse_header_bytes();
    if (ec == http::error::body_limit) return refuse_body_bytes();
    // Anything else outside the parser is the client gone (end of stream, reset, a
    // request cut short): nobody to answer.
    if (!is_parse_error(ec) || ec == http::error::end_of_stream ||
        ec == http::error::partial_message)
      return close();
    respond(refusal(400, "malformed HTTP request"));
  }
  void refuse_timeout() {
    respond(refusal(408,
                    "request not received within " +
                        std::to_string(server_.limits.read_timeout.count()) + " ms",
                    "read_timeout"));
  }
  void refuse_header_bytes() {
    respond(refusal(431,
                    "request headers over " + std::to_string(server_.limits.max_header_bytes) +
                        " bytes",
                    "header_bytes"));
  }
  void refuse_body_bytes() {
    respond(refusal(
        413, "request body over " + std::to_string(server_.limits.max_body_bytes) + " bytes",
        "body_bytes"));
  }

  void respond(HttpResponse response) {
    phase_ = Phase::Writing;
    keep_alive_ = !response.close && client_keep_alive_ && !server_.stopping();
    reply_ = {};
    reply_.version(version_);
    reply_.result(static_cast<unsigned>(response.status));
    if (!response.content_type.empty()) reply_.set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) reply_.insert(name, value);
    reply_.keep_alive(keep_alive_);
    reply_.body() = response.body;
    reply_.prepare_payload();
    // HEAD: the headers GET would send, Content-Length included, and no body.
    if (request_.method == "HEAD") reply_.body().clear();
    response_ = std::move(response);
    // A client that does not take its response is cut off like one that does not send.
    arm(server_.limits.read_timeout);
    http::async_write(socket_, reply_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        self->on_written(ec);
                      });
  }

  void on_written(beast::error_code ec) {
    disarm();
    if (server_.handlers.done) {
      const std::chrono::duration<double> seconds = Clock::now() - started_;
      // A failing report (metrics, a log) must not take down the I/O thread.
      try {
        server_.handlers.done(request_, response_, seconds.count());
      } catch (const std::exception&) {
      }
    }
    // Stopping, a client that keeps its end open must not hold up run() for kLinger.
    if (ec || server_.stopping()) return close();
    if (!keep_alive_) return linger();
    wait_for_request(server_.limits.keep_alive_timeout);
  }

  // Stop sending, then discard the client's input until it closes, or kLinger.
  void linger() {
    phase_ = Phase::Closing;
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    arm(kLinger);
    drain();
  }
  void drain() {
    buffer_.clear();
    socket_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->close();
                              self->drain();
                            });
  }

  Server& server_;
  tcp::socket socket_;
  net::steady_timer deadline_;
  bool timed_out_ = false;
  Phase phase_ = Phase::Idle;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> header_parser_;
  std::optional<http::request_parser<http::string_body>> body_parser_;
  Clock::time_point started_;
  HttpRequest request_;
  bool client_keep_alive_ = false;
  unsigned version_ = 11;
  HttpResponse response_;
  http::response<http::string_body> reply_;
  bool keep_alive_ = false;
};

int Server::bind() {
  std::lock_guard lock(mutex_);
  if (bound_port_ != 0) return bound_port_;
  const std::string where = host_ + ":" + std::to_string(requested_port_);
  beast::error_code ec;
  const auto endpoints =
      tcp::resolver(ioc_).resolve(host_, std::to_string(requested_port_), ec);
  if (ec) throw Error(ErrorKind::Io, "cannot resolve " + where + ": " + ec.message());
  for (const auto& entry : endpoints) {
    beast::error_code ignored;
    acceptor_.close(ignored);
    // SO_REUSEADDR only: SO_REUSEPORT would let a second server bind the same port.
    if (acceptor_.open(entry.endpoint().protocol(), ec) ||
        acceptor_.set_option(net::socket_base::reuse_address(true), ec) ||
        acceptor_.bind(entry.endpoint(), ec) ||
        acceptor_.listen(net::socket_base::max_listen_connections, ec))
      continue;
    bound_port_ = acceptor_.local_endpoint().port();
    accept();
    return bound_port_;
  }
  beast::error_code ignored;
  acceptor_.close(ignored);
  throw Error(ErrorKind::Io, "cannot listen on " + where + ": " + ec.message());
}

void Server::accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    on_accept(ec, std::move(socket));
  });
}

void Server::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;  // stop()
  if (ec) {
    accept_retry_.expires_after(kAcceptRetry);
    accept_retry_.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && acceptor_.is_open()) accept();
    });
    return;
  }
  if (open_connections_.fetch_add(1) >= limits.max_connections) {
    open_connections_.fetch_sub(1);
    refuse_connection(std::move(socket));
  } else {
    std::make_shared<Session>(*this, std::move(socket))->start();
  }
  accept();
}

// Over max_connections: a canned 503 written at once (a fresh socket's send buffer takes
// it whole, so a non-blocking write does not wait), then closed. Nothing is read, nothing
// is queued.
void Server::refuse_connection(tcp::socket socket) {
  HttpResponse response = refusal(
      503, "too many connections (limit " + std::to_string(limits.max_connections) + ")",
      "connections");
  const std::string text = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: " +
                           response.content_type +
                           "\r\nContent-Length: " + std::to_string(response.body.size()) +
                           "\r\nConnection: close\r\n\r\n" + response.body;
  beast::error_code ignored;
  socket.non_blocking(true, ignored);
  net::write(socket, net::buffer(text), ignored);
  // Input left unread would turn the close into a reset; take what has already arrived.
  std::string discard(kReadChunk, '\0');
  socket.read_some(net::buffer(discard), ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
  if (handlers.done) {
    try {
      handlers.done(HttpRequest{}, response, 0.0);
    } catch (const std::exception&) {
    }
  }
}

bool Server::admit(Session* session) {
  std::lock_guard lock(mutex_);
  if (stopping_) return false;
  sessions_.insert(session);
  return true;
}

void Server::forget(Session* session) {
  std::lock_guard lock(mutex_);
  sessions_.erase(session);
}

void Server::run() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    running_ = true;
  }
  struct RunReturned {
    Server& server;
    ~RunReturned() {
      // Notified under the lock: the destructor, woken, may free the server at once.
      std::lock_guard lock(server.mutex_);
      server.running_ = false;
      server.run_returned_.notify_all();
    }
  } run_returned{*this};
  bind();
  // The io_context runs out of work, and every thread returns, once the acceptor is
  // closed and the last session has ended.
  std::vector<std::jthread> pool;
  for (int i = 1; i < threads_; ++i) pool.emplace_back([this] { ioc_.run(); });
  ioc_.run();
}

void Server::stop() {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    for (Session* session : sessions_)
      // Null for a session whose destructor waits on the mutex.
      if (auto alive = session->weak_from_this().lock()) live.push_back(std::move(alive));
  }
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
  });
  for (const auto& session : live) session->stop();
}

void Server::wait_for_run() {
  std::unique_lock lock(mutex_);
  run_returned_.wait(lock, [this] { return !running_; });
}

}  // namespace

struct HttpServer::Impl : Server {
  using Server::Server;
};

HttpServer::HttpServer(std::string host, int port, int threads, HttpLimits limits,
                       HttpHandlers handlers)
    : impl_(std::make_unique<Impl>(std::move(host), port, threads, limits,
                                   std::move(handlers))) {}

HttpServer::~HttpServer() {
  impl_->stop();
  impl_->wait_for_run();
}

int HttpServer::bind() { return impl_->bind(); }
void HttpServer::run() { impl_->run(); }
void HttpServer::stop() { impl_->stop(); }
int HttpServer::port() const { return impl_->port(); }

}  // namespace liber::serve
