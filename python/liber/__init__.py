"""liber from Python: a store's users, partitions, interest records and vectors, and the
leakage-safe join of partition vectors onto CTR samples, over liber's C++ library.

>>> import liber
>>> store = liber.open_store("liber-state")          # read-only unless writable=True
>>> table = store.interest_table("cascade")          # or "content", "cascade+content"
>>> rows = table.join(users, timestamps, slots=8)    # int32 [n, 8], -1 where empty
>>> vectors = liber.gather(table, rows)              # float32 [n, 8, table.width]
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from . import _core
from ._core import Error, InterestTable, Store

__all__ = ["Error", "InterestTable", "Store", "open_store", "join", "gather"]


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
