"""liber from Python: a store's users, partitions, interest records and vectors, and the
leakage-safe join of partition vectors onto CTR samples, over liber's C++ library.

>>> import liber
>>> store = liber.open_store("liber-state")          # read-only unless writable=True
>>> table = store.interest_table("cascade")          # or "content", "cascade+content"
>>> rows = table.join(users, timestamps, slots=8)    # int32 [n, 8], -1 where empty
>>> vectors = liber.gather(table, rows)              # float32 [n, 8, table.width]

The stages run from Python with the CLI's options, the GIL released, progress to a callback
or a tqdm bar, and Ctrl-C stopping them cleanly (what is in flight is stored first):

>>> store = liber.open_store("liber-state", writable=True)
>>> liber.learn(store, engine="http", base_url="http://127.0.0.1:8000/v1", api_model="m",
...             first_users=100, progress=tqdm())
>>> liber.encode(store, progress=tqdm())
"""
from __future__ import annotations

import itertools
import json
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from . import _core
from ._core import Error, InterestTable, Store

__all__ = ["Error", "InterestTable", "Store", "open_store", "ingest", "learn", "encode", "join", "gather"]

Progress = Optional[Any]  # None, a callable taking the count just done, or a tqdm-like bar


def _progress(progress: Progress) -> Optional[Callable[[int, int], Any]]:
    """The library reports (advanced, total): a tqdm-like bar (update() and total) gets its
    total set and update(advanced); any other callable gets advanced (like tqdm.update)."""
    if progress is None:
        return None
    if hasattr(progress, "update") and hasattr(progress, "total"):
        def to_bar(advanced: int, total: int) -> None:
            if total and progress.total != total:
                progress.total = total
                if hasattr(progress, "refresh"):
                    progress.refresh()
            progress.update(advanced)
        return to_bar
    if not callable(progress):
        raise TypeError(f"progress must be a callable or a tqdm-like bar, not {type(progress).__name__}")
    return lambda advanced, total: progress(advanced)


def _engine(engine: str, model: Optional[str], base_url: Optional[str], api_model: Optional[str],
            parallel: Optional[int], context: Optional[int], threads: Optional[int]) -> dict:
    spec: dict = {"engine": engine}
    for key, value in (("model", model), ("base_url", base_url), ("api_model", api_model),
                       ("parallel", parallel), ("context", context), ("threads", threads)):
        if value is not None:
            spec[key] = value
    return spec


def learn(store: Store, *, engine: str = "llama", model: Optional[str] = None,
          base_url: Optional[str] = None, api_model: Optional[str] = None,
          parallel: Optional[int] = None, context: Optional[int] = None, threads: Optional[int] = None,
          variant: str = "cascade", partitions: str = "ubsp", cascade: bool = True,
          first_users: int = 0, sample: int = 0, sample_seed: int = 1,
          only_users: Optional[Sequence] = None, max_partitions: int = 0, max_tokens: int = 200,
          temperature: float = 0.2, repeat_penalty: float = 1.3, seed: int = 42, retries: int = 2,
          candidates: int = 3, item_knowledge: bool = False, cache: bool = True, sync: bool = False,
          progress: Progress = None) -> dict:
    """UIL, as `liber learn`: every pending partition summarised in cascade by the LLM, each
    record verified and stored as it completes (incremental: a rerun does only what is left).

    The engine: "llama" (in process; `model` a GGUF file, default Gemma 3 270M from setup) or
    "http" (an OpenAI-compatible server or fleet: `base_url`, comma-separated for several,
    and `api_model`). The other arguments are `liber learn`'s flags of the same names
    (first_users is --first-users, only_users --user-list, sample_seed --seed, cascade=False
    --no-cascade, cache=False --no-cache); `seed` is the LLM's sampling seed.
    `progress` is told of every partition stored. Returns the run's cost report (the JSON
    record `liber learn` stores: calls, tokens, partitions ok/verified/rejected, ...)."""
    options = {"variant": variant, "partitions": partitions, "cascade": cascade, "first_users": first_users,
               "sample": sample, "sample_seed": sample_seed, "max_partitions": max_partitions,
               "max_tokens": max_tokens, "temperature": temperature, "repeat_penalty": repeat_penalty,
               "seed": seed, "retries": retries, "candidates": candidates, "item_knowledge": item_knowledge,
               "cache": cache, "sync": sync}
    if only_users is not None:
        options["only_users"] = _user_ids(only_users)
    report = store.learn(_engine(engine, model, base_url, api_model, parallel, context, threads), options,
                         _progress(progress))
    return json.loads(report)


def encode(store: Store, *, engine: str = "llama", model: Optional[str] = None,
           base_url: Optional[str] = None, api_model: Optional[str] = None,
           parallel: Optional[int] = None, context: Optional[int] = None, threads: Optional[int] = None,
           batch: int = 64, replace: bool = False, item_knowledge: bool = False,
           progress: Progress = None) -> dict:
    """UIF's knowledge encoder, as `liber encode`: every verified interest record and every
    catalog item's text embedded (incremental: only new or changed texts). The engine as in
    learn (default: all-MiniLM-L6-v2 from setup). `progress` is told of the texts of every
    stored batch. Returns the report: encoder, dim, texts, tokens, partitions_encoded, ..."""
    return store.encode(_engine(engine, model, base_url, api_model, parallel, context, threads), int(batch),
                        bool(replace), bool(item_knowledge), _progress(progress))


def open_store(path: str, writable: bool = False) -> Store:
    """Opens the store at `path` (made by `liber ingest`). Read-only unless `writable`: a
    read-only store takes no lock, so a killed Python process cannot harm it."""
    return _core.Store(str(path), writable)


def _user_ids(users: Iterable) -> list[str]:
    # External ids are text in the store; ML-1M's are numbers in most DataFrames.
    if isinstance(users, np.ndarray) and users.ndim != 1:
        raise ValueError(f"users must be 1-dimensional, not {users.ndim}-dimensional")
    return [str(u) for u in users]


def join(table: InterestTable, users: Sequence, timestamps, slots: int = 8) -> np.ndarray:
    """The leakage-safe join, exactly as liber's trainer does it: for each sample (users[i] at
    timestamps[i], unix seconds), the table rows of the user's partitions whose last behavior
    is strictly before the sample, the most recent `slots` of them, right-aligned (the last
    column is the latest), -1 in empty slots. Returns int32 [n, slots]."""
    ts = np.asarray(timestamps)
    if ts.dtype.kind not in "iu":
        raise TypeError(f"timestamps must be integers (unix seconds), not {ts.dtype}")
    return table.join(_user_ids(users), np.ascontiguousarray(ts, dtype=np.int64), int(slots))


def gather(table: InterestTable, rows: np.ndarray) -> np.ndarray:
    """The vectors of `rows` (from join): float32 [n, slots, width], zeros where a row is -1."""
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.dtype != np.int32:
        raise ValueError(f"rows must be the int32 [n, slots] array join returns, not {rows.dtype} {rows.shape}")
    vectors = table.rows
    out = np.zeros(rows.shape + (table.width,), dtype=np.float32)
    present = rows >= 0
    out[present] = vectors[rows[present]]
    return out


_COLUMNS = ("user_id", "item_id", "timestamp")


def _ingest_columns(store: Store, cols: Mapping[str, Any], batch: int, progress) -> dict:
    # progress: (advanced, total) or None
    missing = [c for c in _COLUMNS if c not in cols]
    if missing:
        raise ValueError(f"events need the columns user_id, item_id, timestamp (and rating and/or label); "
                         f"missing: {', '.join(missing)}")
    users = _user_ids(cols["user_id"])
    items = _user_ids(cols["item_id"])
    n = len(users)
    ts = np.asarray(cols["timestamp"])
    if ts.dtype.kind not in "iu":
        raise TypeError(f"timestamp must be integers (unix seconds), not {ts.dtype}")
    ratings = np.asarray(cols["rating"], dtype=np.float32) if "rating" in cols else np.full(n, np.nan, np.float32)
    labels = np.asarray(cols["label"], dtype=np.int8) if "label" in cols else np.full(n, -1, np.int8)
    return store.ingest_events(users, items, np.ascontiguousarray(ts, dtype=np.int64),
                               np.ascontiguousarray(ratings), np.ascontiguousarray(labels), int(batch), progress)


def ingest(store: Store, events, batch: int = 4096, progress: Progress = None) -> dict:
    """Events into a writable store (open_store(path, writable=True), made by `liber ingest`,
    e.g. with --catalog-only), through the same durable, idempotent path as the CLI.

    `events`: a pandas DataFrame or a mapping of columns (user_id, item_id, timestamp, and
    rating and/or label), or an iterable of (user_id, item_id, timestamp, rating) tuples,
    taken `batch` at a time. `progress` (a callable or a tqdm bar) is told of every stored
    batch. Returns counts (accepted, duplicates, late, bad, partitions_closed) and
    `errors`: (index, field, reason) of the first 100 events refused."""
    report = _progress(progress)
    if hasattr(events, "columns") or isinstance(events, Mapping):
        return _ingest_columns(store, events, batch, report)
    if report is not None:  # an iterable's length is unknown
        unknown_total = report
        report = lambda advanced, total: unknown_total(advanced, 0)
    total: dict = {"accepted": 0, "duplicates": 0, "late": 0, "bad": 0, "partitions_closed": 0, "errors": []}
    it = iter(events)
    offset = 0
    while True:
        chunk = list(itertools.islice(it, batch))
        if not chunk:
            return total
        if any(len(row) != 4 for row in chunk):
            raise ValueError("each event must be (user_id, item_id, timestamp, rating)")
        u, i, t, r = zip(*chunk)
        got = _ingest_columns(store, {"user_id": u, "item_id": i, "timestamp": np.array(t, dtype=np.int64),
                                      "rating": r}, batch, report)
        for k in ("accepted", "duplicates", "late", "bad", "partitions_closed"):
            total[k] += got[k]
        total["errors"] += [(offset + idx, field, why) for idx, field, why in got["errors"]][: 100 - len(total["errors"])]
        offset += len(chunk)
