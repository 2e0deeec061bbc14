// `liber serve` as a child process of a test: the real binary ($LIBER_TEST_CLI), its
// stderr in a file, its port read from the first line it writes.
#pragma once

#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "fixtures.h"

namespace liber::testing {

struct ServeChild {
  pid_t pid = -1;
  int port = 0;  // 0: it never said where it listens (or exited first)
  std::string stderr_path;
};

// Starts `liber serve --store STORE --port 0 --token-file TOKEN ARGS...` and waits (up to
// 20 s) until it says on which port it listens.
inline ServeChild spawn_serve(const std::string& cli, const std::filesystem::path& store,
                              const std::filesystem::path& token, const std::string& stderr_path,
                              const std::vector<std::string>& args) {
  std::vector<std::string> argv_s = {cli, "serve", "--store", store.string(), "--port", "0",
                                     "--token-file", token.string()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  ServeChild c;
  c.stderr_path = stderr_path;
  c.pid = ::fork();
  if (c.pid == 0) {
    const int fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    for (int other = 3; other < 1024; ++other) ::close(other);  // not the test's sockets
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  for (int i = 0; i < 800 && c.port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    // Dead before it listens (a flag it refuses, a store it cannot open): say so at once
    // rather than let the test wait on a server that is not there. WNOWAIT leaves it a
    // zombie, so its pid is not reused before the test's own waitpid.
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(c.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == c.pid)
      break;
    const std::string text = read_file(stderr_path);
    const auto at = text.find("http://127.0.0.1:");
    if (at != std::string::npos) c.port = std::atoi(text.c_str() + at + 17);
  }
  return c;
}

}  // namespace liber::testing
