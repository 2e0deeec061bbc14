// The status page in a real browser: Debian's Chromium, headless, runs the page's script
// against the service and the figures it shows are checked against what was posted.
#include <gtest/gtest.h>

#include <httplib.h>

#include <array>
#include <cstdio>
#include <thread>

#include "core/test_ubsp_util.h"
#include "fixtures.h"
#include "liber/serve.h"

namespace liber {
namespace {

using testing::TempDir;
using testing::tiny_log;

std::string chromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (std::filesystem::exists(path)) return path;
  return "";
}

// The DOM after the page's script ran (virtual time: timers fire without waiting).
std::string dump_dom(const std::string& browser, const std::string& url) {
  const std::string cmd = "timeout 120 " + browser +
                          " --headless=new --no-sandbox --disable-gpu --no-first-run "
                          "--virtual-time-budget=5000 --dump-dom '" + url + "' 2>/dev/null";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    std::array<char, 4096> buf;
    for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;) out.append(buf.data(), n);
    ::pclose(p);
  }
  return out;
}

TEST(StatusPage, ShowsTheServiceFiguresInARealBrowser) {
  const std::string browser = chromium();
  if (browser.empty()) {
    if (std::getenv("CI")) FAIL() << "chromium is not installed (scripts/setup.sh installs it)";
    GTEST_SKIP() << "chromium is not installed";
  }
  TempDir dir{"liber-status"};
  BehaviorLog log = tiny_log(10, 2, {});
  auto store = open_rocksdb_store(dir / "store");
  Ingestor(*store, log, PartitionRule{}).ingest({});
  ServeOptions opt;
  opt.port = 0;
  opt.token = "page-token";
  Service service(*store, opt);
  service.bind();
  std::thread thread([&] { service.run(); });
  httplib::Client c("127.0.0.1", service.port());
  c.set_bearer_token_auth("page-token");
  auto r = c.Post("/v1/events",
                  R"([{"user":"u1","item":"i1","ts":10},{"user":"u1","item":"i2","ts":11},
                      {"user":"u1","item":"i3","ts":12},{"user":"u1","item":"i1","ts":10},
                      {"user":"u9","item":"i1","ts":13}])",
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const std::string base = "http://127.0.0.1:" + std::to_string(service.port()) + "/";
  const std::string dom = dump_dom(browser, base + "#token=page-token");
  const std::string wrong = dump_dom(browser, base + "#token=not-the-token");
  service.stop();
  thread.join();
  ASSERT_NE(dom.find("liber serve"), std::string::npos) << dom;
  EXPECT_NE(dom.find("<b>3</b><span>events accepted</span>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("<b>1</b><span>duplicates</span>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("<b>1</b><span>bad</span>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("pipeline <span id=\"state\">off (--no-learn)</span>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("scoring <span id=\"model\">off (no --score-model)</span>"), std::string::npos) << dom;
  // The token is not left in the address, and a wrong one shows no figures.
  EXPECT_EQ(dom.find("page-token"), std::string::npos);
  EXPECT_EQ(wrong.find("events accepted"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("wrong token"), std::string::npos) << wrong;
}

}  // namespace
}  // namespace liber
