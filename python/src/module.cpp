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

// One delivery of events from Python into a writable store, through the same Ingestor as
// `liber ingest` and `liber serve` (the catalog and rule are the store's).
nb::dict ingest_events(liber::Store& store, const std::vector<std::string>& users,
                       const std::vector<std::string>& items, nb::ndarray<nb::ro> timestamps, nb::ndarray<nb::ro> ratings,
                       nb::ndarray<nb::ro> labels, std::size_t batch, nb::object progress) {
  const std::size_t n = users.size();
  auto column = [&](nb::ndarray<nb::ro>& a, const char* name, nb::dlpack::dtype dtype, const char* dtype_name) {
    if (a.ndim() != 1 || a.shape(0) != n)
      throw nb::value_error(fmt::format("{} must be 1-dimensional with one value per event ({}), not shape {}",
                                        name, n, a.ndim() == 1 ? std::to_string(a.shape(0)) : "of " + std::to_string(a.ndim()) + " dimensions").c_str());
    if (a.dtype() != dtype) throw nb::type_error(fmt::format("{} must be {}", name, dtype_name).c_str());
  };
  if (items.size() != n)
    throw nb::value_error(fmt::format("{} users but {} items: one of each per event", n, items.size()).c_str());
  column(timestamps, "timestamps", nb::dtype<int64_t>(), "int64 (unix seconds)");
  column(ratings, "ratings", nb::dtype<float>(), "float32 (NaN: none)");
  column(labels, "labels", nb::dtype<int8_t>(), "int8 (-1: from the rating)");
  if (batch < 1) throw nb::value_error("batch must be at least 1");
  if (!liber::has_catalog(store))
    throw liber::Error(liber::ErrorKind::InvalidInput,
                       fmt::format("the store at {} has no catalog: make it with liber ingest (--catalog-only "
                                   "for no events)", store.path().string()));
  const liber::BehaviorLog log = liber::load_behavior_log(store, /*with_events=*/false);
  const auto rule = store.get(liber::kMetaFamily, "rule");
  if (!rule) throw liber::Error(liber::ErrorKind::InvalidInput, "the store records no partition rule");
  liber::IngestOptions io;
  io.stream = "python";
  liber::Ingestor ingestor(store, log, liber::PartitionRule::parse(*rule), io);

  const auto* ts = static_cast<const int64_t*>(timestamps.data());
  const auto* rt = static_cast<const float*>(ratings.data());
  const auto* lb = static_cast<const int8_t*>(labels.data());
  const int64_t ts_stride = timestamps.stride(0), rt_stride = ratings.stride(0), lb_stride = labels.stride(0);
  nb::list errors;
  uint64_t counts[4] = {0, 0, 0, 0};  // accepted, duplicate, late, bad
  uint64_t closed = 0;
  std::vector<liber::Event> events;
  std::vector<std::size_t> position;  // each event's index in the input
  for (std::size_t at = 0; at < n; at += batch) {
    const std::size_t end = std::min(n, at + batch);
    events.clear();
    position.clear();
    for (std::size_t i = at; i < end; ++i) {
      const auto k = static_cast<int64_t>(i);
      const uint32_t u = log.users.ids.find(users[i]), it = log.items.ids.find(items[i]);
      const int8_t label = lb[k * lb_stride];
      const char* field = u == 0 ? "user" : it == 0 ? "item" : label < -1 || label > 1 ? "label" : nullptr;
      if (field) {
        ++counts[3];
        if (errors.size() < 100) {
          const std::string value = u == 0 ? users[i] : it == 0 ? items[i] : std::to_string(label);
          errors.append(nb::make_tuple(i, field, fmt::format("'{}' is not in the store's catalog", value)));
        }
        continue;
      }
      events.push_back(liber::Event{u, it, ts[k * ts_stride], rt[k * rt_stride], label});
      position.push_back(i);
    }
    std::vector<liber::AddStatus> outcomes;
    liber::IngestStats st;
    {
      nb::gil_scoped_release release;
      st = ingestor.deliver(events, &outcomes);
    }
    for (std::size_t j = 0; j < outcomes.size(); ++j) {
      const liber::AddStatus a = outcomes[j];
      ++counts[a == liber::AddStatus::Accepted ? 0 : a == liber::AddStatus::Duplicate ? 1 : a == liber::AddStatus::Bad ? 3 : 2];
      if (a == liber::AddStatus::Bad && errors.size() < 100)
        errors.append(nb::make_tuple(position[j], "timestamp",
                                     "refused by ingest: a timestamp out of range, or neither a rating nor a label"));
    }
    closed += st.partitions();
    if (!progress.is_none()) progress(end - at);  // tqdm's update(n)
  }
  nb::dict out;
  out["accepted"] = counts[0];
  out["duplicates"] = counts[1];
  out["late"] = counts[2];
  out["bad"] = counts[3];
  out["partitions_closed"] = closed;
  out["errors"] = errors;
  return out;
}

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
      .def("ingest_events", [](PyStore& s, const std::vector<std::string>& users, const std::vector<std::string>& items,
                               nb::ndarray<nb::ro> timestamps, nb::ndarray<nb::ro> ratings, nb::ndarray<nb::ro> labels, std::size_t batch,
                               nb::object progress) {
        return ingest_events(*s.store, users, items, timestamps, ratings, labels, batch, progress);
      }, "users"_a, "items"_a, "timestamps"_a, "ratings"_a, "labels"_a, "batch"_a, "progress"_a = nb::none())
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
      .def("join", [](PyTable& t, const std::vector<std::string>& users, nb::ndarray<nb::ro> timestamps, int slots) {
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
