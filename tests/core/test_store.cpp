// The RocksDB Store: round trip, atomic batches across families, prefix scans, bad paths.
#include <gtest/gtest.h>

#include "fixtures.h"
#include "liber/error.h"
#include "liber/store.h"

namespace liber {
namespace {

using testing::TempDir;

// Families of no stage: the store must take any name.
constexpr Family kApples{"apples"};
constexpr Family kPears{"pears"};
constexpr Family kNeverWritten{"never_written"};

TEST(Store, RoundTripAcrossFamiliesAndReopen) {
  TempDir dir("liber-store");
  const auto path = dir / "state";
  {
    auto s = open_rocksdb_store(path);
    auto b = s->new_batch();
    b->put(kMetaFamily, "k", "meta");
    b->put(kApples, "k", "events");
    b->put(kPears, std::string("u\x00\x01", 3), "p1");
    b->put(kPears, std::string("u\x00\x00", 3), "p0");
    b->put(kPears, "v", "other");
    b->del(kApples, "gone");
    EXPECT_EQ(b->count(), 6u);
    s->write(*b, true);
    EXPECT_EQ(s->get(kMetaFamily, "k").value(), "meta");
    EXPECT_EQ(s->get(kApples, "k").value(), "events");
    EXPECT_FALSE(s->get(kNeverWritten, "k").has_value());
    // Created by the first write, not by a read.
    EXPECT_EQ(s->families(), (std::vector<std::string>{"apples", "meta", "pears", "progress"}));
  }
  auto s = open_rocksdb_store(path, {.read_only = true});
  EXPECT_EQ(s->get(kApples, "k").value(), "events");
  std::vector<std::string> seen;
  s->scan(kPears, "u", [&](std::string_view, std::string_view v) {
    seen.emplace_back(v);
    return true;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"p0", "p1"}));
  std::vector<std::string> keys = {"k", "missing"};
  auto got = s->multi_get(kMetaFamily, keys);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].value(), "meta");
  EXPECT_FALSE(got[1].has_value());
  EXPECT_EQ(s->families(), (std::vector<std::string>{"apples", "meta", "pears", "progress"}));
  // A read-only store sees an unknown family as empty and cannot write at all.
  EXPECT_FALSE(s->get(kNeverWritten, "k").has_value());
  EXPECT_FALSE(s->multi_get(kNeverWritten, keys)[0].has_value());
  s->scan(kNeverWritten, "", [](std::string_view, std::string_view) {
    ADD_FAILURE() << "an unknown family is empty";
    return true;
  });
  auto b = s->new_batch();
  b->put(kMetaFamily, "x", "y");
  EXPECT_THROW(s->write(*b), Error);
  EXPECT_THROW(s->new_batch()->put(kNeverWritten, "x", "y"), Error);
}

TEST(Store, ScanStopsWhenAsked) {
  TempDir dir("liber-store");
  auto s = open_rocksdb_store(dir / "state");
  auto b = s->new_batch();
  for (int i = 0; i < 10; ++i) b->put(kApples, "a" + std::to_string(i), "v");
  s->write(*b);
  int n = 0;
  s->scan(kApples, "", [&](std::string_view, std::string_view) { return ++n < 3; });
  EXPECT_EQ(n, 3);
}

TEST(Store, UnwritablePathNamesThePath) {
  TempDir dir("liber-store");
  testing::write_file(dir / "file", "not a directory");
  try {
    open_rocksdb_store(dir / "file");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(std::string(e.what()).find((dir / "file").string()), std::string::npos) << e.what();
  }
  try {
    open_rocksdb_store(dir / "file" / "state");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(std::string(e.what()).find("state"), std::string::npos) << e.what();
  }
  // A read-only open of a store that does not exist.
  EXPECT_THROW(open_rocksdb_store(dir / "none", {.read_only = true}), Error);
}

TEST(Store, ReadOnlyDirectory) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  TempDir dir("liber-store");
  std::filesystem::create_directories(dir / "ro");
  std::filesystem::permissions(dir / "ro", std::filesystem::perms::owner_read |
                                               std::filesystem::perms::owner_exec);
  try {
    open_rocksdb_store(dir / "ro");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not writable"), std::string::npos) << e.what();
  }
  std::filesystem::permissions(dir / "ro", std::filesystem::perms::owner_all);
}

TEST(Store, SecondWriterIsRefused) {
  TempDir dir("liber-store");
  auto a = open_rocksdb_store(dir / "state");
  try {
    open_rocksdb_store(dir / "state");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(std::string(e.what()).find("state"), std::string::npos);
  }
}

}  // namespace
}  // namespace liber
