// The download side of locate_dataset, split out so tests can drive the verify/unpack steps
// without a network.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace liber::data {

// An official GroupLens archive and what it must hash to.
struct DatasetSource {
  std::string_view name;     // "ml-1m": also the archive's top folder and the cache subdir
  std::string_view marker;   // a file that proves the dataset is present ("movies.dat")
  std::uintmax_t size;       // published archive size in bytes
  std::string_view md5;      // GroupLens' published MD5
  std::string_view sha256;   // SHA-256 (as pinned by tensorflow_datasets' url_checksums)
};

// nullptr for names that cannot be downloaded.
const DatasetSource* dataset_source(std::string_view name);

// $LIBER_CACHE_DIR, else $XDG_CACHE_HOME/liber, else ~/.cache/liber.
std::filesystem::path cache_dir();

// Base URL the archives are fetched from ($LIBER_DOWNLOAD_BASE_URL overrides it, e.g. for a
// mirror or a test), always ending in '/'.
std::string download_base_url();

std::string md5_hex(std::string_view bytes);
std::string sha256_hex(std::string_view bytes);

// Throws Error(Checksum) with the manual steps when `zip` is not the published archive.
void verify_archive(std::string_view zip, const DatasetSource& source, const std::string& url);

// Unpacks `zip` (files under "<name>/", or at its root) into `target` via a temporary
// sibling directory renamed into place, so a crash never leaves a half-extracted dataset
// that later looks complete. Throws Error(Io) / Error(InvalidInput).
void install_archive(std::string_view zip, const DatasetSource& source,
                     const std::filesystem::path& target);

}  // namespace liber::data
