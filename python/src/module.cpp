// liber's Python extension (`liber._core`): the store read from Python, and the leakage-safe
// join, over the same library as the CLI (nothing here is a second implementation). The
// public API is python/liber/__init__.py.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/score.h"
#include "liber/store.h"
#include "liber/ubsp.h"
#include "liber/uif.h"
#include "liber/uil.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using liber::InterestTable;

// A store and what reads it. Read-only unless asked: a killed Python process never holds
// the store's lock or leaves a half-written batch.
struct PyStore {
  std::unique_ptr<liber::Store> store;
  PyStore(const std::string& path, bool writable)
      : store(liber::open_rocksdb_store(path, {.read_only = !writable, .create_if_missing = false})) {}
};

// An interest table with the join built once.
struct PyTable {
  InterestTable table;
  std::unique_ptr<liber::PartitionTimeline> timeline;
  explicit PyTable(InterestTable t) : table(std::move(t)), timeline(std::make_unique<liber::PartitionTimeline>(table)) {}
};

nb::dict partition_dict(const liber::StoredPartition& p) {
  nb::dict d;
  d["seq"] = p.seq;
  d["t_begin"] = p.t_begin;
  d["t_end"] = p.t_end;
  d["events"] = p.events.size();
  d["reason"] = std::string(liber::to_string(p.reason));
  return d;
}

nb::dict record_dict(const liber::InterestRecord& r) {
  nb::dict d;
  d["seq"] = r.seq;
  d["ok"] = r.ok;
  d["quality"] = r.quality;
  d["summary"] = r.summary;
  d["shift"] = r.shift;
  d["reasons"] = r.reasons;
  d["error"] = r.error;
  d["model"] = r.model;
  d["variant"] = r.variant;
  return d;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "liber's C++ library, for Python (see the liber package)";
  nb::exception<liber::Error>(m, "Error", PyExc_RuntimeError);

  nb::class_<PyStore>(m, "Store")
      .def(nb::init<const std::string&, bool>(), "path"_a, "writable"_a = false)
      .def("users", [](PyStore& s) {
        std::vector<std::string> out;
        liber::for_each_cache(*s.store, [&](const liber::StoredCache& c) { out.push_back(c.user); });
        return out;
      })
      .def("partitions", [](PyStore& s, const std::string& user) {
        nb::list out;
        for (const auto& p : liber::read_partitions(*s.store, user)) out.append(partition_dict(p));
        return out;
      }, "user"_a)
      .def("variants", [](PyStore& s) {
        nb::list out;
        for (const liber::Variant& v : liber::list_variants(*s.store)) {
          nb::dict d;
          d["name"] = v.name;
          d["id"] = v.id();
          d["model"] = v.model;
          d["partitions"] = v.partitions.name();
          d["cascade"] = v.cascade;
          out.append(d);
        }
        return out;
      })
      .def("records", [](PyStore& s, const std::string& user, const std::string& variant) {
        const auto v = liber::find_variant(*s.store, variant);
        if (!v) throw nb::value_error(fmt::format("the store has no variant named '{}'", variant).c_str());
        nb::list out;
        for (const auto& r : liber::read_interests(*s.store, v->id(), user)) out.append(record_dict(r));
        return out;
      }, "user"_a, "variant"_a = "cascade")
      .def("interest_table", [](PyStore& s, const std::string& knowledge, const std::vector<std::string>& users) {
        InterestTable t;
        {
          nb::gil_scoped_release release;
          t = liber::load_knowledge(*s.store, knowledge, users);
        }
        return std::make_unique<PyTable>(std::move(t));
      }, "knowledge"_a, "users"_a = std::vector<std::string>{});

  nb::class_<PyTable>(m, "InterestTable")
      .def_prop_ro("knowledge", [](PyTable& t) { return t.table.variant; })
      .def_prop_ro("encoder", [](PyTable& t) { return t.table.encoder; })
      .def_prop_ro("dim", [](PyTable& t) { return t.table.dim; })
      .def_prop_ro("width", [](PyTable& t) { return t.table.width(); })
      .def_prop_ro("layout", [](PyTable& t) { return t.table.layout; })
      .def("__len__", [](PyTable& t) { return t.table.partitions.size(); })
      // Zero-copy: the array keeps the table alive.
      .def_prop_ro("rows", [](nb::handle self) {
        PyTable& t = nb::cast<PyTable&>(self);
        const std::size_t shape[2] = {t.table.partitions.size(), static_cast<std::size_t>(t.table.width())};
        return nb::ndarray<nb::numpy, const float, nb::ndim<2>>(t.table.rows.data(), 2, shape, self);
      }, nb::rv_policy::reference_internal)
      .def_prop_ro("users", [](PyTable& t) {
        std::vector<std::string> out;
        for (const auto& p : t.table.partitions) out.push_back(p.user);
        return out;
      })
      .def("partition_index", [](PyTable& t) {
        // (seq, t_begin, t_end, row) per partition, as int64 columns.
        const std::size_t n = t.table.partitions.size();
        auto* data = new int64_t[n * 4];
        for (std::size_t i = 0; i < n; ++i) {
          const auto& p = t.table.partitions[i];
          data[i * 4] = p.seq, data[i * 4 + 1] = p.t_begin, data[i * 4 + 2] = p.t_end, data[i * 4 + 3] = p.row;
        }
        nb::capsule owner(data, [](void* d) noexcept { delete[] static_cast<int64_t*>(d); });
        const std::size_t shape[2] = {n, 4};
        return nb::ndarray<nb::numpy, int64_t, nb::ndim<2>>(data, 2, shape, owner);
      })
      .def("join", [](PyTable& t, const std::vector<std::string>& users, nb::ndarray<> timestamps, int slots) {
        if (slots < 1) throw nb::value_error(fmt::format("slots must be at least 1, not {}", slots).c_str());
        if (timestamps.ndim() != 1)
          throw nb::value_error(fmt::format("timestamps must be 1-dimensional, not {}-dimensional",
                                            timestamps.ndim()).c_str());
        if (timestamps.dtype() != nb::dtype<int64_t>())
          throw nb::type_error("timestamps must be int64 (unix seconds), e.g. np.asarray(ts, dtype=np.int64)");
        const std::size_t n = timestamps.shape(0);
        if (users.size() != n)
          throw nb::value_error(fmt::format("{} users but {} timestamps: one of each per sample", users.size(), n).c_str());
        const int64_t* ts = static_cast<const int64_t*>(timestamps.data());
        const int64_t stride = timestamps.stride(0);
        auto* out = new int32_t[n * static_cast<std::size_t>(slots)];
        {
          nb::gil_scoped_release release;
          for (std::size_t i = 0; i < n; ++i)
            t.timeline->visible(users[i], ts[static_cast<int64_t>(i) * stride],
                                std::span<int32_t>(out + i * static_cast<std::size_t>(slots), static_cast<std::size_t>(slots)));
        }
        nb::capsule owner(out, [](void* d) noexcept { delete[] static_cast<int32_t*>(d); });
        const std::size_t shape[2] = {n, static_cast<std::size_t>(slots)};
        return nb::ndarray<nb::numpy, int32_t, nb::ndim<2>>(out, 2, shape, owner);
      }, "users"_a, "timestamps"_a, "slots"_a);
}
