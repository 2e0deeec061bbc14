// A real OpenAI-compatible server for the HTTP engine tests: llama-cpp-python's
// `python -m llama_cpp.server` from liber's venv ($LIBER_HOME, default ~/.cache/liber,
// /venv/bin/python) serving the default model, started as a child process on a free
// localhost port, stopped with SIGTERM then SIGKILL, and restartable on the same port.
// LlmServer::scripted() is the same harness around tests/llm/status_server.py, a server
// that answers scripted HTTP statuses (the retry rules' tests).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "liber/llm.h"

namespace liber::test {

class LlmServer {
 public:
  // The venv's python, or "" when it is not installed.
  static std::string python_path() {
    std::filesystem::path home;
    if (const char* h = std::getenv("LIBER_HOME"); h && *h) {
      home = h;
    } else if (const char* u = std::getenv("HOME"); u && *u) {
      home = std::filesystem::path(u) / ".cache" / "liber";
    }
    const auto py = home / "venv" / "bin" / "python";
    return std::filesystem::exists(py) ? py.string() : std::string();
  }

  // The default model, or "" when it is missing.
  static std::string model_path() {
    try {
      return default_model_path();
    } catch (...) {
      return "";
    }
  }

  // Why the server cannot run here, or "" when it can.
  static std::string unavailable_reason() {
    if (python_path().empty()) return "liber venv python not found (run scripts/setup.sh)";
    if (model_path().empty()) return "default model not found (run scripts/setup.sh)";
    return "";
  }

  // A TCP port that nothing listens on right now.
  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    int port = 0;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      socklen_t len = sizeof a;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) port = ntohs(a.sin_port);
    }
    if (fd >= 0) ::close(fd);
    return port;
  }

  explicit LlmServer(std::vector<std::string> extra_args = {}) : extra_(std::move(extra_args)) {}

  // tests/llm/status_server.py on the system python3 (needs no venv and no model).
  static std::unique_ptr<LlmServer> scripted() {
    return python_script(std::filesystem::path(__FILE__).parent_path() / "status_server.py");
  }
  // Another server script that takes its port as its one argument.
  static std::unique_ptr<LlmServer> python_script(const std::filesystem::path& script) {
    auto s = std::make_unique<LlmServer>();
    s->script_ = script.string();
    return s;
  }
  ~LlmServer() { stop(); }
  LlmServer(const LlmServer&) = delete;
  LlmServer& operator=(const LlmServer&) = delete;

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::string log_path() const { return log_; }
  bool running() const { return pid_ > 0; }

  // Starts the server (on a free port the first time, the same port afterwards) and waits
  // until GET /v1/models answers 200. Returns false on timeout or early exit.
  bool start(double timeout_s = 60) {
    if (pid_ > 0) return true;
    if (port_ == 0) port_ = free_port();
    log_ = (std::filesystem::temp_directory_path() /
            ("liber_llm_server_" + std::to_string(port_) + ".log"))
               .string();
    std::vector<std::string> args = {python_path(), "-m", "llama_cpp.server",
                                     "--model", model_path(),
                                     "--host", "127.0.0.1",
                                     "--port", std::to_string(port_),
                                     "--n_ctx", "2048",
                                     "--n_threads", "2",
                                     "--verbose", "False"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    if (!script_.empty()) args = {"python3", script_, std::to_string(port_)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
      // Do not hand the test's sockets (e.g. in-flight client connections) to the server.
      for (int other = 3; other < 1024; ++other) ::close(other);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // died during start-up
        pid_ = -1;
        return false;
      }
      if (models_ok()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    stop();
    return false;
  }

  // SIGKILL, no grace: a crash as far as clients can tell.
  void kill_hard() { terminate(SIGKILL, 0); }

  // SIGTERM, then SIGKILL after `grace_s`.
  void stop(double grace_s = 5) { terminate(SIGTERM, grace_s); }

  bool restart(double timeout_s = 60) {
    stop();
    return start(timeout_s);
  }

  // GET /v1/models answers 200.
  bool models_ok() const { return get("/v1/models").rfind("HTTP/1.1 200", 0) == 0; }

  // GET `path` over a plain socket (Connection: close): the whole response, status line
  // first, or "" when nothing answers within a second.
  std::string get(const std::string& path) const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return "";
    timeval tv{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port_));
    std::string response;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      const std::string req =
          "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
      if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<std::size_t>(n));
      }
    }
    ::close(fd);
    return response;
  }

 private:
  void terminate(int sig, double grace_s) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<long>(grace_s * 1000));
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (sig != SIGKILL && std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        sig = SIGKILL;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
  }

  std::vector<std::string> extra_;
  std::string script_;  // scripted(): the status server instead of llama_cpp.server
  int port_ = 0;
  pid_t pid_ = -1;
  std::string log_;
};

}  // namespace liber::test
