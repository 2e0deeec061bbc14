// liber's Python extension (`liber._core`): the store read from Python, and the leakage-safe
// join, over the same library as the CLI (nothing here is a second implementation). The
// public API is python/liber/__init__.py.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/llm.h"
#include "liber/progress.h"
#include "liber/score.h"
#include "liber/store.h"
#include "liber/ubsp.h"
#include "liber/uif.h"
#include "liber/uif/fuse_layer.h"
#include "liber/uil.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using liber::InterestTable;

// A store and what reads it. Read-only unless asked: a killed Python process never holds
// the store's lock or leaves a half-written batch.
struct PyStore {
  std::unique_ptr<liber::Store> store;
  bool writable;
  PyStore(const std::string& path, bool w)
      : store(liber::open_rocksdb_store(path, {.read_only = !w, .create_if_missing = false})), writable(w) {}
  liber::Store& for_writing(const char* what) {
    if (!writable)
      throw nb::value_error(fmt::format("{} writes to the store: open it with writable=True ({})", what,
                                        store->path().string()).c_str());
    return *store;
  }
};

// A library run (learn, encode) on a thread of its own while the calling thread, holding
// the GIL only between waits, hands its progress to `progress(advanced, total)` and watches
// for Ctrl-C. An exception from Python (KeyboardInterrupt) sets the run's stop flag: the
// run stores what is in flight and returns, then the exception is raised.
template <class Report>
Report run_releasing_gil(const std::function<Report(const std::atomic<bool>*, liber::ProgressCallback)>& work,
                         nb::object progress) {
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  uint64_t pending = 0, total = 0;
  bool done = false;
  std::optional<Report> result;
  std::exception_ptr failure;
  liber::ProgressCallback observe = [&](uint64_t n, uint64_t t) {
    std::lock_guard lock(mu);
    pending += n, total = t;
    cv.notify_one();
  };
  std::thread worker([&] {
    try {
      result = work(&stop, observe);
    } catch (...) {
      failure = std::current_exception();
    }
    std::lock_guard lock(mu);
    done = true;
    cv.notify_one();
  });
  std::optional<nb::python_error> raised;
  for (bool finished = false; !finished;) {
    uint64_t n = 0, t = 0;
    {
      nb::gil_scoped_release release;
      std::unique_lock lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return done || pending > 0; });
      n = std::exchange(pending, 0), t = total, finished = done;
    }
    if (raised) continue;
    try {
      if (n > 0 && !progress.is_none()) progress(n, t);
      if (PyErr_CheckSignals() != 0) throw nb::python_error();
    } catch (nb::python_error& e) {
      raised.emplace(std::move(e));
      stop = true;
    }
  }
  worker.join();
  if (failure) std::rethrow_exception(failure);
  if (raised) throw std::move(*raised);
  return std::move(*result);
}

liber::EngineSpec engine_spec(const nb::dict& engine, bool encoder) {
  liber::EngineSpec spec;
  spec.encoder = encoder;
  for (auto [key, value] : engine) {
    const std::string k = nb::cast<std::string>(key);
    if (k == "engine") spec.engine = nb::cast<std::string>(value);
    else if (k == "model") spec.model = nb::cast<std::string>(value);
    else if (k == "base_url") spec.base_url = nb::cast<std::string>(value);
    else if (k == "api_model") spec.api_model = nb::cast<std::string>(value);
    else if (k == "parallel") spec.parallel = nb::cast<int>(value);
    else if (k == "context") spec.context = nb::cast<int>(value);
    else if (k == "threads") spec.threads = nb::cast<int>(value);
    else throw nb::value_error(fmt::format("unknown engine setting '{}' (engine, model, base_url, api_model, "
                                           "parallel, context, threads)", k).c_str());
  }
  return spec;
}

nb::dict encode_report_dict(const liber::EncodeReport& r) {
  nb::dict d;
  d["encoder"] = r.encoder;
  d["dim"] = r.dim;
  d["texts"] = r.texts;
  d["tokens"] = r.tokens;
  d["partitions_encoded"] = r.partitions_encoded;
  d["partitions_reused"] = r.partitions_reused;
  d["items_encoded"] = r.items_encoded;
  d["items_reused"] = r.items_reused;
  d["item_texts_encoded"] = r.item_texts_encoded;
  d["item_texts_reused"] = r.item_texts_reused;
  d["truncated"] = r.truncated;
  d["failed"] = r.failed;
  d["first_error"] = r.first_error;
  d["wall_s"] = r.wall_s;
  d["stopped"] = r.stopped;
  return d;
}

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
    if (!progress.is_none()) progress(end - at, n);
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

// liber's C++ fuse layer (libtorch) over numpy arrays: the reference the PyTorch module
// (liber.fuse.FuseLayer) is checked against, on the same weights and inputs.
struct CppFuseLayer {
  liber::uif::FuseLayer layer{nullptr};
  CppFuseLayer(nb::ndarray<const float, nb::ndim<2>, nb::c_contig> table, int64_t query_dim, int slots, int hidden,
               int fused_dim, int reduced_dim, const std::string& fusion, bool interaction) {
    liber::uif::FuseTable t;
    t.vectors = std::make_shared<const std::vector<float>>(table.data(), table.data() + table.size());
    t.width = static_cast<int>(table.shape(1));
    liber::FuseConfig c;
    c.slots = slots, c.hidden = hidden, c.fused_dim = fused_dim, c.reduced_dim = reduced_dim;
    c.fusion = fusion, c.interaction = interaction;
    layer = liber::uif::FuseLayer(t, c, query_dim);
  }
  static nb::ndarray<nb::numpy, float> to_numpy(const torch::Tensor& x) {
    const torch::Tensor f = x.to(torch::kFloat).contiguous();
    auto* data = new float[static_cast<std::size_t>(f.numel())];
    std::copy_n(f.data_ptr<float>(), f.numel(), data);
    nb::capsule owner(data, [](void* d) noexcept { delete[] static_cast<float*>(d); });
    std::vector<std::size_t> shape(f.sizes().begin(), f.sizes().end());
    return nb::ndarray<nb::numpy, float>(data, shape.size(), shape.data(), owner);
  }
  // Every parameter and buffer, as float32 (the reductions are double in the layer).
  nb::dict state() const {
    nb::dict d;
    for (const auto& p : layer->named_parameters()) d[p.key().c_str()] = to_numpy(p.value());
    for (const auto& p : layer->named_buffers()) d[p.key().c_str()] = to_numpy(p.value());
    return d;
  }
  void set_parameter(const std::string& name, nb::ndarray<const float, nb::c_contig> value) {
    torch::NoGradGuard no_grad;
    auto* p = layer->named_parameters().find(name);
    if (!p) throw nb::key_error(fmt::format("the fuse layer has no parameter '{}'", name).c_str());
    std::vector<int64_t> shape;
    for (std::size_t i = 0; i < value.ndim(); ++i) shape.push_back(static_cast<int64_t>(value.shape(i)));
    if (p->sizes() != torch::IntArrayRef(shape))
      throw nb::value_error(fmt::format("parameter '{}' is [{}], not [{}]", name, fmt::join(p->sizes(), ", "),
                                        fmt::join(shape, ", ")).c_str());
    p->copy_(torch::from_blob(const_cast<float*>(value.data()), shape, torch::kFloat));
  }
  nb::ndarray<nb::numpy, float> forward(nb::ndarray<const int64_t, nb::ndim<2>, nb::c_contig> rows,
                                        nb::ndarray<const float, nb::ndim<2>, nb::c_contig> query) {
    torch::NoGradGuard no_grad;
    const auto b = static_cast<int64_t>(rows.shape(0));
    // The layer trusts its trainer's rows; from Python they are checked (a bad row would be
    // read out of bounds).
    const int64_t table_rows = layer->table.size(0);
    for (std::size_t i = 0; i < rows.size(); ++i)
      if (rows.data()[i] < -1 || rows.data()[i] >= table_rows)
        throw nb::index_error(fmt::format("rows[{}] = {} is not a table row (-1 or 0..{})", i, rows.data()[i],
                                          table_rows - 1).c_str());
    const torch::Tensor r = torch::from_blob(const_cast<int64_t*>(rows.data()), {b, static_cast<int64_t>(rows.shape(1))}, torch::kLong);
    const torch::Tensor q = torch::from_blob(const_cast<float*>(query.data()), {static_cast<int64_t>(query.shape(0)),
                                                                               static_cast<int64_t>(query.shape(1))}, torch::kFloat);
    return to_numpy(layer->fuse(r, q));
  }
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
      .def("ingest_events", [](PyStore& s, const std::vector<std::string>& users, const std::vector<std::string>& items,
                               nb::ndarray<nb::ro> timestamps, nb::ndarray<nb::ro> ratings, nb::ndarray<nb::ro> labels, std::size_t batch,
                               nb::object progress) {
        return ingest_events(s.for_writing("ingest"), users, items, timestamps, ratings, labels, batch, progress);
      }, "users"_a, "items"_a, "timestamps"_a, "ratings"_a, "labels"_a, "batch"_a, "progress"_a = nb::none())
      .def("learn", [](PyStore& s, nb::dict engine, nb::dict options, nb::object progress) {
        liber::Store& store = s.for_writing("learn");
        const liber::EngineSpec spec = engine_spec(engine, /*encoder=*/false);
        liber::LearnOptions opt;
        for (auto [key, value] : options) {
          const std::string k = nb::cast<std::string>(key);
          if (k == "variant") opt.variant = nb::cast<std::string>(value);
          else if (k == "partitions") opt.partitions = nb::cast<std::string>(value);
          else if (k == "cascade") opt.cascade = nb::cast<bool>(value);
          else if (k == "first_users") opt.users = nb::cast<std::size_t>(value);
          else if (k == "sample") opt.sample = nb::cast<std::size_t>(value);
          else if (k == "sample_seed") opt.sample_seed = nb::cast<uint64_t>(value);
          else if (k == "only_users") opt.only_users = nb::cast<std::vector<std::string>>(value);
          else if (k == "max_partitions") opt.max_partitions = nb::cast<std::size_t>(value);
          else if (k == "max_tokens") opt.max_tokens = nb::cast<int>(value);
          else if (k == "temperature") opt.temperature = nb::cast<float>(value);
          else if (k == "repeat_penalty") opt.repeat_penalty = nb::cast<float>(value);
          else if (k == "seed") opt.seed = nb::cast<uint64_t>(value);
          else if (k == "retries") opt.max_retries = nb::cast<int>(value);
          else if (k == "candidates") opt.candidates = nb::cast<int>(value);
          else if (k == "item_knowledge") opt.items = nb::cast<bool>(value);
          else if (k == "cache") opt.use_cache = nb::cast<bool>(value);
          else if (k == "sync") opt.sync = nb::cast<bool>(value);
          else throw nb::value_error(fmt::format("unknown learn option '{}'", k).c_str());
        }
        if (opt.candidates < 1) throw nb::value_error("candidates must be at least 1");
        const auto cost = run_releasing_gil<liber::CostReport>(
            [&](const std::atomic<bool>* stop, liber::ProgressCallback observe) {
              auto llm = liber::make_engine(spec);
              opt.stop = stop;
              opt.on_progress = std::move(observe);
              return liber::learn_interests(store, *llm, opt);
            },
            progress);
        return cost.to_json();
      }, "engine"_a, "options"_a, "progress"_a = nb::none())
      .def("encode", [](PyStore& s, nb::dict engine, std::size_t batch, bool replace, bool item_knowledge,
                        nb::object progress) {
        liber::Store& store = s.for_writing("encode");
        const liber::EngineSpec spec = engine_spec(engine, /*encoder=*/true);
        if (batch < 1) throw nb::value_error("batch must be at least 1");
        const auto report = run_releasing_gil<liber::EncodeReport>(
            [&](const std::atomic<bool>* stop, liber::ProgressCallback observe) {
              auto encoder = liber::make_engine(spec);
              liber::EncodeOptions opt;
              opt.batch = batch;
              opt.replace = replace;
              opt.items = item_knowledge;
              opt.stop = stop;
              opt.on_progress = std::move(observe);
              return liber::encode_knowledge(store, *encoder, opt);
            },
            progress);
        return encode_report_dict(report);
      }, "engine"_a, "batch"_a = 64, "replace"_a = false, "item_knowledge"_a = false, "progress"_a = nb::none())
      .def("interest_table", [](PyStore& s, const std::string& knowledge, const std::vector<std::string>& users,
                                const std::string& control, uint64_t seed) {
        if (!control.empty() && control != "shuffled" && control != "random")
          throw nb::value_error(fmt::format("unknown control '{}' (shuffled | random)", control).c_str());
        InterestTable t;
        {
          nb::gil_scoped_release release;
          t = liber::load_knowledge(*s.store, knowledge, users);
          // The controls a lift must beat: the same partitions and times, no knowledge.
          if (control == "shuffled") t = liber::shuffled_control(t, seed);
          else if (control == "random") t = liber::random_control(t, seed);
        }
        return std::make_unique<PyTable>(std::move(t));
      }, "knowledge"_a, "users"_a = std::vector<std::string>{}, "control"_a = "", "seed"_a = 1);

  nb::class_<CppFuseLayer>(m, "CppFuseLayer",
                           "liber's C++ fuse layer (libtorch), the reference liber.fuse.FuseLayer is tested against")
      .def(nb::init<nb::ndarray<const float, nb::ndim<2>, nb::c_contig>, int64_t, int, int, int, int, const std::string&, bool>(),
           "table"_a, "query_dim"_a, "slots"_a = 16, "hidden"_a = 16, "fused_dim"_a = 32, "reduced_dim"_a = 64,
           "fusion"_a = "attention", "interaction"_a = false)
      .def("state", &CppFuseLayer::state)
      .def("set_parameter", &CppFuseLayer::set_parameter, "name"_a, "value"_a)
      .def("forward", &CppFuseLayer::forward, "rows"_a, "query"_a);

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
