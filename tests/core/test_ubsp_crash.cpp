// Crash safety: an ingest killed with SIGKILL at random points and restarted ends with
// exactly the partitions and caches of one uninterrupted run.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "fixtures.h"
#include "liber/ubsp.h"

namespace liber {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

fs::path child_binary() {
  if (const char* env = std::getenv("LIBER_TEST_UBSP_CHILD")) return env;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return self.parent_path() / "ubsp_ingest_child";
}

struct ChildResult {
  bool killed = false;      // ended by our SIGKILL
  bool finished = false;    // printed "done"
  uint64_t last_commit = 0; // last offset it reported
};

// Runs the child; after `kill_after` commit lines (0 = never) and `delay_us`, SIGKILLs it.
ChildResult run_child(const fs::path& data, const fs::path& store, int kill_after, int delay_us) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe");
  const std::string bin = child_binary().string(), d = data.string(), s = store.string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execl(bin.c_str(), bin.c_str(), d.c_str(), s.c_str(), "16", "7", "200",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  ChildResult r;
  FILE* in = ::fdopen(fds[0], "r");
  char line[256];
  int commits = 0;
  while (std::fgets(line, sizeof line, in)) {
    if (std::strncmp(line, "committed ", 10) == 0) {
      r.last_commit = std::strtoull(line + 10, nullptr, 10);
      if (kill_after > 0 && ++commits >= kill_after) {
        std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
        ::kill(pid, SIGKILL);
        break;
      }
    } else if (std::strncmp(line, "done", 4) == 0) {
      r.finished = true;
    }
  }
  std::fclose(in);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (!r.killed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    throw std::runtime_error("child failed with status " + std::to_string(status) + " (" + bin +
                             ")");
  return r;
}

TEST(UbspCrash, KilledIngestResumesExactly) {
  if (!fs::exists(child_binary())) GTEST_SKIP() << "no " << child_binary();
  TempDir dir("liber-ubsp-crash");
  const auto data = dir / "data";
  const testing::FixtureInfo info = testing::write_ml1m_fixture(data, 40, 100, 11);
  const auto store = dir / "state";

  testing::Rng rng(2024);
  int kills = 0;
  uint64_t progress = 0;
  for (int attempt = 0; attempt < 40 && kills < 12; ++attempt) {
    const int after = 1 + static_cast<int>(rng.below(14));
    const int delay = static_cast<int>(rng.below(2000));
    ChildResult r = run_child(data, store, after, delay);
    if (r.finished) break;
    ASSERT_TRUE(r.killed);
    ASSERT_GE(r.last_commit, progress);  // progress never goes back
    progress = r.last_commit;
    ++kills;
    std::printf("kill %d: after %d commits + %d us, last reported offset %llu\n", kills, after,
                delay, static_cast<unsigned long long>(progress));
  }
  EXPECT_GE(kills, 10);
  EXPECT_LT(progress, info.events);  // killed mid-way, not after the end
  ChildResult last = run_child(data, store, 0, 0);
  ASSERT_TRUE(last.finished);

  // Reference: one uninterrupted run into a fresh store.
  const BehaviorLog log = read_movielens_1m(data);
  PartitionRule rule;
  rule.count = 7;
  rule.max_gap = 3600;
  const IngestStats ref = ingest_log(dir / "ref", log, rule, {.batch_events = 4096});
  EXPECT_EQ(ref.new_events, info.events);

  auto a = open_rocksdb_store(store, {.read_only = true});
  auto b = open_rocksdb_store(dir / "ref", {.read_only = true});
  std::vector<StoredPartition> pa, pb;
  for_each_partition(*a, [&](const StoredPartition& p) { pa.push_back(p); });
  for_each_partition(*b, [&](const StoredPartition& p) { pb.push_back(p); });
  EXPECT_EQ(pa.size(), ref.partitions());
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i)
    ASSERT_EQ(pa[i], pb[i]) << "partition " << i << ": user " << pa[i].user << " seq " << pa[i].seq;
  std::vector<StoredCache> ca, cb;
  for_each_cache(*a, [&](const StoredCache& c) { ca.push_back(c); });
  for_each_cache(*b, [&](const StoredCache& c) { cb.push_back(c); });
  ASSERT_EQ(ca.size(), cb.size());
  std::size_t cached = 0;
  for (std::size_t i = 0; i < ca.size(); ++i) {
    EXPECT_EQ(ca[i].user, cb[i].user);
    EXPECT_EQ(ca[i].next_seq, cb[i].next_seq);
    ASSERT_EQ(ca[i].events.size(), cb[i].events.size());
    for (std::size_t k = 0; k < ca[i].events.size(); ++k) {
      EXPECT_EQ(ca[i].events[k].item, cb[i].events[k].item);
      EXPECT_EQ(ca[i].events[k].ts, cb[i].events[k].ts);
    }
    cached += ca[i].events.size();
  }
  // Every event is in exactly one partition or cache.
  std::size_t in_partitions = 0;
  for (const auto& p : pa) in_partitions += p.events.size();
  EXPECT_EQ(in_partitions + cached, info.events);
}

}  // namespace
}  // namespace liber
