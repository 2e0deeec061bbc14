// locate_dataset: explicit dirs, LIBER_DATA_DIR, the cache, and the download path's failure
// modes (no network here: the base URL is pointed at a closed port or a file:// mirror).
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fixtures.h"
#include "helpers/expect.h"
#include "liber/data.h"
#include "liber/data/fetch.h"
#include "liber/error.h"

namespace {

namespace fs = std::filesystem;
using liber::Error;
using liber::ErrorKind;
using liber::testing::TempDir;
using liber::testing::any_message_contains;
using liber::testing::contains;
using liber::testing::error_of;
using liber::testing::write_file;

// Sets/unsets environment variables for one test and restores them afterwards.
class EnvGuard {
 public:
  ~EnvGuard() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second)
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        ::unsetenv(it->first.c_str());
    }
  }
  void set(const std::string& name, const std::string& value) {
    save(name);
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  void unset(const std::string& name) {
    save(name);
    ::unsetenv(name.c_str());
  }

 private:
  void save(const std::string& name) {
    const char* v = std::getenv(name.c_str());
    saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// Isolates a test from the developer's real cache and data dir.
struct Sandbox {
  TempDir cache{"liber-cache"};
  EnvGuard env;
  Sandbox() {
    env.set("LIBER_CACHE_DIR", cache.path().string());
    env.unset("LIBER_DATA_DIR");
    env.set("LIBER_DOWNLOAD_BASE_URL", "http://127.0.0.1:1/");  // never the real server
  }
};

std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.push_back(e.path().filename());
  return names;
}

// ---------------------------------------------------------------- a minimal zip writer

uint32_t crc32(std::string_view data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void put16(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
}
void put32(std::string& out, uint32_t v) {
  put16(out, v & 0xFFFF);
  put16(out, v >> 16);
}

// A zip of uncompressed ("stored") entries; names ending in '/' are directories.
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out, central;
  for (const auto& [name, data] : entries) {
    const auto offset = static_cast<uint32_t>(out.size());
    const uint32_t crc = crc32(data);
    const auto size = static_cast<uint32_t>(data.size());
    const auto name_len = static_cast<uint32_t>(name.size());
    put32(out, 0x04034b50);  // local file header
    put16(out, 20), put16(out, 0), put16(out, 0), put16(out, 0), put16(out, 0x21);
    put32(out, crc), put32(out, size), put32(out, size);
    put16(out, name_len), put16(out, 0);
    out += name;
    out += data;
    put32(central, 0x02014b50);  // central directory header
    put16(central, 20), put16(central, 20), put16(central, 0), put16(central, 0);
    put16(central, 0), put16(central, 0x21);
    put32(central, crc), put32(central, size), put32(central, size);
    put16(central, name_len), put16(central, 0), put16(central, 0), put16(central, 0);
    put16(central, 0);
    put32(central, name.ends_with('/') ? 0x10 : 0);
    put32(central, offset);
    central += name;
  }
  const auto cd_offset = static_cast<uint32_t>(out.size());
  out += central;
  put32(out, 0x06054b50);  // end of central directory
  put16(out, 0), put16(out, 0);
  put16(out, static_cast<uint32_t>(entries.size())), put16(out, static_cast<uint32_t>(entries.size()));
  put32(out, static_cast<uint32_t>(central.size())), put32(out, cd_offset);
  put16(out, 0);
  return out;
}

// ----------------------------------------------------------------------------- tests

TEST(DataLocate, ExplicitDirMustExist) {
  Sandbox box;
  TempDir data;
  EXPECT_EQ(liber::locate_dataset("ml-1m", data.path()), data.path());
  const auto msg = error_of(ErrorKind::Io, [&] {
    liber::locate_dataset("ml-1m", data.path() / "absent");
  });
  EXPECT_TRUE(contains(msg, (data.path() / "absent").string())) << msg;
  // A folder that holds ml-1m/ is accepted for the dataset inside it.
  liber::testing::write_ml1m_fixture(data.path() / "ml-1m", 2, 3, 1);
  EXPECT_EQ(liber::locate_dataset("ml-1m", data.path()), data.path() / "ml-1m");
}

TEST(DataLocate, DataDirEnvironment) {
  Sandbox box;
  TempDir root;
  box.env.set("LIBER_DATA_DIR", root.path().string());
  fs::create_directories(root.path() / "ml-1m");
  EXPECT_EQ(liber::locate_dataset("ml-1m", {}), root.path() / "ml-1m");

  // No ml-100k/ folder, but the files themselves are there.
  write_file(root.path() / "u.data", "1\t1\t5\t1\n");
  EXPECT_EQ(liber::locate_dataset("ml-100k", {}), root.path());

  fs::remove(root.path() / "u.data");
  const auto msg = error_of(ErrorKind::Io, [&] { liber::locate_dataset("ml-100k", {}); });
  EXPECT_TRUE(contains(msg, "LIBER_DATA_DIR")) << msg;
  EXPECT_TRUE(contains(msg, "u.data")) << msg;
}

TEST(DataLocate, CacheHitNeedsNoDownload) {
  Sandbox box;
  const fs::path target = box.cache.path() / "datasets" / "ml-100k";
  write_file(target / "u.data", "1\t1\t5\t1\n");
  EXPECT_EQ(liber::locate_dataset("ml-100k", {}), target);
}

TEST(DataLocate, XdgCacheHomeIsUsedWithoutLiberCacheDir) {
  Sandbox box;
  TempDir xdg;
  box.env.unset("LIBER_CACHE_DIR");
  box.env.set("XDG_CACHE_HOME", xdg.path().string());
  EXPECT_EQ(liber::data::cache_dir(), xdg.path() / "liber");
  const fs::path target = xdg.path() / "liber" / "datasets" / "ml-1m";
  write_file(target / "movies.dat", "1::A (1990)::Drama\n");
  EXPECT_EQ(liber::locate_dataset("ml-1m", {}), target);
}

TEST(DataLocate, UnknownDatasetCannotBeDownloaded) {
  Sandbox box;
  const auto msg = error_of(ErrorKind::Config, [&] { liber::locate_dataset("ml-20m", {}); });
  EXPECT_TRUE(contains(msg, "ml-20m")) << msg;
}

TEST(DataDownload, NetworkFailureSaysWhatToDo) {
  Sandbox box;
  const auto msg = error_of(ErrorKind::Network, [&] { liber::locate_dataset("ml-1m", {}); });
  EXPECT_TRUE(contains(msg, "http://127.0.0.1:1/ml-1m.zip")) << msg;
  EXPECT_TRUE(contains(msg, "unzip")) << msg;
  EXPECT_TRUE(contains(msg, "--data-dir")) << msg;
  EXPECT_TRUE(contains(msg, "LIBER_DATA_DIR")) << msg;
  EXPECT_FALSE(fs::exists(box.cache.path() / "datasets" / "ml-1m"));
}

TEST(DataDownload, DefaultUrlIsGroupLens) {
  Sandbox box;
  box.env.unset("LIBER_DOWNLOAD_BASE_URL");
  EXPECT_EQ(liber::data::download_base_url(), "https://files.grouplens.org/datasets/movielens/");
  box.env.set("LIBER_DOWNLOAD_BASE_URL", "file:///mirror");
  EXPECT_EQ(liber::data::download_base_url(), "file:///mirror/");
}

TEST(DataDownload, ChecksumMismatchInstallsNothing) {
  Sandbox box;
  TempDir mirror;
  // A well-formed zip holding the right files, but not the published archive.
  liber::testing::write_file(mirror.path() / "ml-100k.zip",
                             make_zip({{"ml-100k/", ""}, {"ml-100k/u.data", "1\t1\t5\t1\n"}}));
  box.env.set("LIBER_DOWNLOAD_BASE_URL", "file://" + mirror.path().string());
  const auto msg =
      error_of(ErrorKind::Checksum, [&] { liber::locate_dataset("ml-100k", {}); });
  EXPECT_TRUE(contains(msg, "0e33842e24a9c977be4e0107933c0723")) << msg;  // expected MD5
  EXPECT_TRUE(contains(msg, "nothing was installed")) << msg;
  EXPECT_TRUE(contains(msg, "--data-dir")) << msg;
  EXPECT_FALSE(fs::exists(box.cache.path() / "datasets" / "ml-100k"));
  for (const auto& name : leftovers(box.cache.path() / "datasets"))
    ADD_FAILURE() << "left behind: " << name;
}

TEST(DataDownload, MissingMirrorFileIsANetworkError) {
  Sandbox box;
  TempDir mirror;
  box.env.set("LIBER_DOWNLOAD_BASE_URL", "file://" + mirror.path().string() + "/");
  const auto msg = error_of(ErrorKind::Network, [&] { liber::locate_dataset("ml-1m", {}); });
  EXPECT_TRUE(contains(msg, "ml-1m.zip")) << msg;
}

TEST(DataDownload, DigestsAndPublishedSums) {
  EXPECT_EQ(liber::data::md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(liber::data::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const auto* ml1m = liber::data::dataset_source("ml-1m");
  ASSERT_NE(ml1m, nullptr);
  EXPECT_EQ(ml1m->md5, "c4d9eecfca2ab87c1945afe126590906");
  EXPECT_EQ(ml1m->marker, "movies.dat");
  const auto* ml100k = liber::data::dataset_source("ml-100k");
  ASSERT_NE(ml100k, nullptr);
  EXPECT_EQ(ml100k->md5, "0e33842e24a9c977be4e0107933c0723");
  EXPECT_EQ(liber::data::dataset_source("ml-25m"), nullptr);
}

TEST(DataDownload, InstallArchiveUnpacksIntoPlace) {
  TempDir cache;
  const auto& src = *liber::data::dataset_source("ml-100k");
  const fs::path target = cache.path() / "datasets" / "ml-100k";
  const std::string zip = make_zip({{"ml-100k/", ""},
                                    {"ml-100k/u.data", "1\t1\t5\t881250949\n"},
                                    {"ml-100k/sub/", ""},
                                    {"ml-100k/sub/note.txt", "hello"},
                                    {"../escape.txt", "must not be written"}});
  liber::data::install_archive(zip, src, target);
  EXPECT_EQ(liber::testing::read_file(target / "u.data"), "1\t1\t5\t881250949\n");
  EXPECT_EQ(liber::testing::read_file(target / "sub" / "note.txt"), "hello");
  EXPECT_FALSE(fs::exists(cache.path() / "datasets" / ".." / "escape.txt"));
  EXPECT_FALSE(fs::exists(cache.path() / "escape.txt"));
  EXPECT_EQ(leftovers(cache.path() / "datasets"), std::vector<std::string>{"ml-100k"});
}

TEST(DataDownload, InstallArchiveRejectsIncompleteOrCorruptArchives) {
  TempDir cache;
  const auto& src = *liber::data::dataset_source("ml-1m");
  const fs::path target = cache.path() / "datasets" / "ml-1m";
  auto msg = error_of(ErrorKind::InvalidInput, [&] {
    liber::data::install_archive(make_zip({{"ml-1m/README", "no data"}}), src, target);
  });
  EXPECT_TRUE(contains(msg, "movies.dat")) << msg;
  EXPECT_FALSE(fs::exists(target));
  error_of(ErrorKind::InvalidInput, [&] {
    liber::data::install_archive("this is not a zip file at all", src, target);
  });
  EXPECT_FALSE(fs::exists(target));
  EXPECT_TRUE(leftovers(cache.path() / "datasets").empty());
}

}  // namespace
