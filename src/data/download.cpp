// Finding a MovieLens dataset on disk, or fetching the official GroupLens archive into the
// cache: libcurl to download, OpenSSL EVP to verify (MD5 as GroupLens publishes it, plus
// SHA-256), libarchive to unpack.
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "liber/data.h"
#include "liber/data/fetch.h"
#include "liber/error.h"
#include "liber/log.h"

namespace liber {
namespace data {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kOfficialBaseUrl = "https://files.grouplens.org/datasets/movielens/";
// The archives are ~5 MB; anything far larger is not what we asked for.
constexpr std::size_t kMaxDownloadBytes = 64u << 20;

constexpr std::array<DatasetSource, 2> kSources = {{
    {"ml-1m", "movies.dat", 5917549, "c4d9eecfca2ab87c1945afe126590906",
     "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"},
    {"ml-100k", "u.data", 4924029, "0e33842e24a9c977be4e0107933c0723",
     "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"},
}};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// What to do when liber cannot fetch the data itself; every download error ends with it.
std::string manual_steps(const DatasetSource& src, const std::string& url) {
  return fmt::format(
      "To install it by hand: download {url} (e.g. `curl -LO {url}` or a browser), unzip it "
      "(this creates a folder {name}/), then either pass --data-dir /path/to/{name} or set "
      "LIBER_DATA_DIR to the folder that contains {name}/ (or unzip it into {cache} so that "
      "{cache}/{name}/{marker} exists).",
      fmt::arg("url", url), fmt::arg("name", src.name),
      fmt::arg("cache", (cache_dir() / "datasets").string()), fmt::arg("marker", src.marker));
}

std::string digest_hex(const EVP_MD* md, std::string_view bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), out, &len, md, nullptr) != 1)
    throw Error(ErrorKind::Internal, "OpenSSL digest failed");
  std::string hex;
  hex.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", out[i]);
  return hex;
}

size_t append_body(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  const size_t n = size * count;
  if (body->size() + n > kMaxDownloadBytes) return 0;  // makes curl fail with a write error
  body->append(data, n);
  return n;
}

// Downloads `url` into memory; throws Error(Network) with the manual steps on failure.
std::string download(const std::string& url, const DatasetSource& src) {
  static std::once_flag curl_init;
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl)
    throw Error(ErrorKind::Network,
                fmt::format("could not start a download of {} (libcurl init failed). {}", url,
                            manual_steps(src, url)));
  std::string body;
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);  // HTTP >= 400 is an error, not a body
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  // A stalled transfer (< 1 KB/s for 30 s) fails instead of hanging the run.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "liber/0.1 (+libcurl)");
  // file:// lets a mirror on disk (or a test) stand in for the server.
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS | CURLPROTO_FILE);
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    const std::string why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    throw Error(ErrorKind::Network,
                fmt::format("could not download {}: {} (curl error {}). {}", url, why,
                            static_cast<int>(rc), manual_steps(src, url)));
  }
  return body;
}

// Strips the archive's top folder "<name>/"; nullopt-like empty result for entries to skip
// (the folder itself, absolute paths, "..").
fs::path entry_target(std::string_view entry, std::string_view name) {
  if (entry.starts_with(name) && entry.size() > name.size() && entry[name.size()] == '/')
    entry.remove_prefix(name.size() + 1);
  fs::path rel(entry);
  if (entry.empty() || rel.is_absolute()) return {};
  for (const auto& part : rel)
    if (part == "..") return {};
  return rel;
}

}  // namespace

const DatasetSource* dataset_source(std::string_view name) {
  for (const DatasetSource& s : kSources)
    if (s.name == name) return &s;
  return nullptr;
}

fs::path cache_dir() {
  if (std::string d = env("LIBER_CACHE_DIR"); !d.empty()) return d;
  if (std::string d = env("XDG_CACHE_HOME"); !d.empty()) return fs::path(d) / "liber";
  if (std::string d = env("HOME"); !d.empty()) return fs::path(d) / ".cache" / "liber";
  return fs::temp_directory_path() / "liber-cache";
}

std::string download_base_url() {
  std::string base = env("LIBER_DOWNLOAD_BASE_URL");
  if (base.empty()) base = kOfficialBaseUrl;
  if (base.back() != '/') base.push_back('/');
  return base;
}

std::string md5_hex(std::string_view bytes) { return digest_hex(EVP_md5(), bytes); }
std::string sha256_hex(std::string_view bytes) { return digest_hex(EVP_sha256(), bytes); }

void verify_archive(std::string_view zip, const DatasetSource& src, const std::string& url) {
  const std::string md5 = md5_hex(zip);
  const std::string sha256 = sha256_hex(zip);
  if (md5 == src.md5 && sha256 == src.sha256) return;
  throw Error(ErrorKind::Checksum,
              fmt::format("downloaded {} ({} bytes) does not match the published archive "
                          "({} bytes, MD5 {}, SHA-256 {}; got MD5 {}, SHA-256 {}). The file "
                          "is corrupt, truncated or not the official one; nothing was "
                          "installed. {}",
                          url, zip.size(), src.size, src.md5, src.sha256, md5, sha256,
                          manual_steps(src, url)));
}

void install_archive(std::string_view zip, const DatasetSource& src, const fs::path& target) {
  std::error_code ec;
  const fs::path parent = target.parent_path();
  fs::create_directories(parent, ec);
  if (ec)
    throw Error(ErrorKind::Io,
                fmt::format("cannot create the cache folder {}: {}", parent.string(),
                            ec.message()));
  const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  const fs::path tmp =
      parent / fmt::format(".{}.partial-{}-{}", src.name, static_cast<long>(::getpid()), stamp);
  // Removes the temporary folder on every exit path except a successful rename.
  struct TmpGuard {
    fs::path path;
    ~TmpGuard() {
      std::error_code ignored;
      if (!path.empty()) fs::remove_all(path, ignored);
    }
  } guard{tmp};
  fs::create_directories(tmp, ec);
  if (ec)
    throw Error(ErrorKind::Io,
                fmt::format("cannot create {}: {}", tmp.string(), ec.message()));

  std::unique_ptr<archive, int (*)(archive*)> ar(archive_read_new(), &archive_read_free);
  archive_read_support_format_zip(ar.get());
  if (archive_read_open_memory(ar.get(), zip.data(), zip.size()) != ARCHIVE_OK)
    throw Error(ErrorKind::InvalidInput,
                fmt::format("{}.zip is not a readable zip archive: {}", src.name,
                            archive_error_string(ar.get())));
  archive_entry* entry = nullptr;
  int rc;
  while ((rc = archive_read_next_header(ar.get(), &entry)) == ARCHIVE_OK) {
    const fs::path rel = entry_target(archive_entry_pathname(entry), src.name);
    if (rel.empty()) continue;
    const fs::path out = tmp / rel;
    if (archive_entry_filetype(entry) == AE_IFDIR) {
      fs::create_directories(out, ec);
      continue;
    }
    if (archive_entry_filetype(entry) != AE_IFREG) continue;  // no links or devices
    fs::create_directories(out.parent_path(), ec);
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(out.c_str(), "wb"),
                                                      &std::fclose);
    if (!f)
      throw Error(ErrorKind::Io, fmt::format("cannot write {}", out.string()));
    char buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(ar.get(), buf, sizeof buf)) > 0)
      if (std::fwrite(buf, 1, static_cast<std::size_t>(n), f.get()) !=
          static_cast<std::size_t>(n))
        throw Error(ErrorKind::Io, fmt::format("cannot write {}", out.string()));
    if (n < 0)
      throw Error(ErrorKind::InvalidInput,
                  fmt::format("{}.zip: cannot unpack {}: {}", src.name,
                              archive_entry_pathname(entry), archive_error_string(ar.get())));
    if (std::fflush(f.get()) != 0)
      throw Error(ErrorKind::Io, fmt::format("cannot write {}", out.string()));
  }
  if (rc != ARCHIVE_EOF)
    throw Error(ErrorKind::InvalidInput,
                fmt::format("{}.zip: corrupt archive: {}", src.name,
                            archive_error_string(ar.get())));
  if (!path_exists(tmp / src.marker))
    throw Error(ErrorKind::InvalidInput,
                fmt::format("{}.zip does not contain {}/{}", src.name, src.name, src.marker));

  fs::rename(tmp, target, ec);
  if (ec) {
    // Another process may have installed it meanwhile; theirs is as good as ours.
    if (path_exists(target / src.marker)) return;
    throw Error(ErrorKind::Io,
                fmt::format("cannot move {} to {}: {} (if {} is a stale partial copy, remove "
                            "it and retry)",
                            tmp.string(), target.string(), ec.message(), target.string()));
  }
  guard.path.clear();
}

}  // namespace data

namespace {

bool holds(const std::filesystem::path& dir, const data::DatasetSource* src) {
  std::error_code ec;
  return src != nullptr && std::filesystem::exists(dir / src->marker, ec);
}

}  // namespace

std::filesystem::path locate_dataset(const std::string& name,
                                     const std::filesystem::path& explicit_dir) {
  namespace fs = std::filesystem;
  const data::DatasetSource* src = data::dataset_source(name);

  if (!explicit_dir.empty()) {
    if (!data::is_dir(explicit_dir))
      throw Error(ErrorKind::Io,
                  fmt::format("data directory {} does not exist or is not a directory",
                              explicit_dir.string()));
    // Accept the folder that contains "<name>/" as well as "<name>/" itself.
    if (!holds(explicit_dir, src) && holds(explicit_dir / name, src)) return explicit_dir / name;
    return explicit_dir;
  }

  if (const std::string root = data::env("LIBER_DATA_DIR"); !root.empty()) {
    if (data::is_dir(fs::path(root) / name)) return fs::path(root) / name;
    if (holds(root, src)) return root;
    throw Error(ErrorKind::Io,
                fmt::format("LIBER_DATA_DIR={} holds neither a folder {}/ nor the {} files "
                            "themselves{}",
                            root, name, name,
                            src ? fmt::format(" ({} not found)", src->marker) : std::string()));
  }

  if (src == nullptr)
    throw Error(ErrorKind::Config,
                fmt::format("unknown dataset \"{}\"; liber can download ml-1m or ml-100k, or "
                            "pass --data-dir for a local copy",
                            name));
  const fs::path target = data::cache_dir() / "datasets" / name;
  if (holds(target, src)) return target;

  const std::string url = data::download_base_url() + std::string(name) + ".zip";
  log_info(fmt::format("{} not found locally; downloading {}", name, url));
  const std::string zip = data::download(url, *src);
  data::verify_archive(zip, *src, url);
  data::install_archive(zip, *src, target);
  log_info(fmt::format("{} installed in {}", name, target.string()));
  return target;
}

}  // namespace liber
