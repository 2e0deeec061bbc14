// ProgressBar's observer: how a caller drawing its own progress (the Python package's tqdm)
// follows a run, whether or not the bar itself draws.
#include <gtest/gtest.h>

#include <vector>

#include "liber/progress.h"

namespace liber {

TEST(Progress, ObserverSeesEveryAdvanceWithTheTotalWhetherOrNotTheBarDraws) {
  for (const bool draws : {false, true}) {
    std::vector<std::pair<uint64_t, uint64_t>> seen;
    {
      ProgressBar bar("test", 10, "texts", draws, [&](uint64_t n, uint64_t total) { seen.emplace_back(n, total); });
      bar.advance(4);
      bar.advance();
      bar.advance(5);
      bar.finish();
      bar.advance(0);  // after finish: still reported (the count is the caller's)
      EXPECT_EQ(bar.done(), 10u);
    }
    const std::vector<std::pair<uint64_t, uint64_t>> expected{{4, 10}, {1, 10}, {5, 10}, {0, 10}};
    EXPECT_EQ(seen, expected) << "draws " << draws;
  }
}

}  // namespace liber
