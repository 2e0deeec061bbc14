"""liber from Python: a store's users, partitions, interest records and vectors, and the
leakage-safe join of partition vectors onto CTR samples, over liber's C++ library.

>>> import liber
>>> store = liber.open_store("liber-state")          # read-only unless writable=True
>>> table = store.interest_table("cascade")          # or "content", "cascade+content"
>>> rows = table.join(users, timestamps, slots=8)    # int32 [n, 8], -1 where empty
>>> vectors = liber.gather(table, rows)              # float32 [n, 8, table.width]
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from . import _core
from ._core import Error, InterestTable, Store

__all__ = ["Error", "InterestTable", "Store", "open_store", "ingest", "join", "gather"]


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


def ingest(store: Store, events, batch: int = 4096,
           progress: Optional[Callable[[int], Any]] = None) -> dict:
    """Events into a writable store (open_store(path, writable=True), made by `liber ingest`,
    e.g. with --catalog-only), through the same durable, idempotent path as the CLI.

    `events`: a pandas DataFrame or a mapping of columns (user_id, item_id, timestamp, and
    rating and/or label), or an iterable of (user_id, item_id, timestamp, rating) tuples,
    taken `batch` at a time. `progress(n)` is called after each stored batch with its size
    (tqdm's update). Returns counts (accepted, duplicates, late, bad, partitions_closed) and
    `errors`: (index, field, reason) of the first 100 events refused."""
    if hasattr(events, "columns") or isinstance(events, Mapping):
        return _ingest_columns(store, events, batch, progress)
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
                                      "rating": r}, batch, progress)
        for k in ("accepted", "duplicates", "late", "bad", "partitions_closed"):
            total[k] += got[k]
        total["errors"] += [(offset + idx, field, why) for idx, field, why in got["errors"]][: 100 - len(total["errors"])]
        offset += len(chunk)
