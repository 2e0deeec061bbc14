// The HTTP/1.1 server under liber serve, on Boost.Beast: keep-alive connections, each
// request under limits the server enforces itself, handlers called on a fixed pool of
// threads. It knows no route: Service gives it two functions.
//
// Limits (every refusal is a JSON body {"error": "...", "limit": "<name>"} and closes the
// connection, except 404/405 which are the handler's):
//   max_connections   connections open at once; one more is answered 503 "connections" at
//                     once (never queued) and closed
//   max_header_bytes  the request line and all headers together: 431 "header_bytes"
//   max_body_bytes    Content-Length over it, or a chunked body growing past it: 413
//                     "body_bytes", answered without reading the body
//   read_timeout      a deadline for the whole request (headers and body) from its first
//                     byte: a client that drips bytes is cut off at it (408 "read_timeout"
//                     when nothing of the request was answered yet, then closed)
//   keep_alive_timeout  an idle keep-alive connection is closed after it
// Malformed HTTP: 400 "malformed HTTP request", closed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace liber::serve {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query
  std::string path;    // percent-decoded path, no query
  std::vector<std::pair<std::string, std::string>> query;    // decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;    // empty in the precheck
  // The first header of that (lower-case) name, or "".
  std::string header(std::string_view lower_name) const;
  // The first query parameter of that name, or "".
  std::string param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  bool close = false;  // close the connection after this response
};

struct HttpLimits {
  std::size_t max_connections = 64;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 8u << 20;
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds keep_alive_timeout{5000};
};

struct HttpHandlers {
  // Called once the headers are read, before the body: a response here is sent instead of
  // reading the body (authentication, an unsupported Content-Type). nullopt: go on.
  std::function<std::optional<HttpResponse>(const HttpRequest&)> precheck;
  // The request with its body.
  std::function<HttpResponse(const HttpRequest&)> handle;
  // After every response, the server's own refusals included: for metrics and logs.
  // `seconds` is from the request's first byte to the response written.
  std::function<void(const HttpRequest&, const HttpResponse&, double seconds)> done;
};

class HttpServer {
 public:
  HttpServer(std::string host, int port, int threads, HttpLimits limits, HttpHandlers handlers);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens (port 0: any free port); returns the port. Throws liber::Error (Io)
  // when it cannot. SO_REUSEADDR only: a second server cannot share the port.
  int bind();
  // Serves on `threads` threads until stop(); binds first if needed.
  void run();
  // Stops accepting; requests being read or handled finish and are answered (with
  // Connection: close), idle connections are closed; run() then returns. Any thread.
  void stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace liber::serve
