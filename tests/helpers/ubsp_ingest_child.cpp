// Child process for the UBSP crash test: ingests a MovieLens-1M directory into a store,
// printing "committed OFFSET" after every atomic batch so the parent can kill it mid-way.
// usage: ubsp_ingest_child DATA_DIR STORE BATCH_EVENTS K [DELAY_US]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "liber/data.h"
#include "liber/ubsp.h"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s DATA_DIR STORE BATCH_EVENTS K [DELAY_US]\n", argv[0]);
    return 64;
  }
  try {
    const liber::BehaviorLog log = liber::read_movielens_1m(argv[1]);
    liber::PartitionRule rule;
    rule.count = std::strtoull(argv[4], nullptr, 10);
    rule.max_gap = 3600;
    liber::IngestOptions opt;
    opt.batch_events = std::strtoull(argv[3], nullptr, 10);
    const long delay = argc > 5 ? std::strtol(argv[5], nullptr, 10) : 0;
    uint64_t done = 0;
    opt.on_commit = [&](const liber::IngestStats& s) {
      done = s.skipped + s.events_seen;
      std::printf("committed %llu\n", static_cast<unsigned long long>(done));
      std::fflush(stdout);
      if (delay > 0) ::usleep(static_cast<useconds_t>(delay));
    };
    const liber::IngestStats s = liber::ingest_log(argv[2], log, rule, opt);
    std::printf("done %llu new %llu\n", static_cast<unsigned long long>(s.skipped + s.events_seen),
                static_cast<unsigned long long>(s.new_events));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ubsp_ingest_child: %s\n", e.what());
    return 1;
  }
}
