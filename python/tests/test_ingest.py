"""Ingest from Python against the CLI's ingest of the same events (an independent path:
the generic CSV reader), and bad input reported by index and field."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import liber


def partitions_of(path, users):
    store = liber.open_store(path)
    return {u: [(p["t_begin"], p["t_end"], p["events"]) for p in store.partitions(u)] for u in users}


def test_columns_give_the_partitions_the_cli_made(fixture_store, catalog_store):
    cli_path, events = fixture_store
    path, _ = catalog_store
    users = sorted({u for u, *_ in events})
    store = liber.open_store(path, writable=True)
    steps = []
    got = liber.ingest(store, {"user_id": [e[0] for e in events], "item_id": [e[1] for e in events],
                               "timestamp": np.array([e[2] for e in events]),
                               "rating": [e[3] for e in events]}, batch=25, progress=steps.append)
    assert got["accepted"] == len(events) and got["bad"] == 0 and got["errors"] == []
    assert sum(steps) == len(events) and max(steps) == 25
    del store
    want = partitions_of(cli_path, users)
    assert partitions_of(path, users) == want
    assert got["partitions_closed"] == sum(len(v) for v in want.values())
    # Again: every event a duplicate, nothing changes.
    again = liber.ingest(liber.open_store(path, writable=True),
                         [(e[0], e[1], e[2], e[3]) for e in events], batch=40)
    assert again["duplicates"] == len(events) and again["accepted"] == 0
    assert partitions_of(path, users) == want


def test_a_dataframe_and_bad_rows(catalog_store):
    pd = pytest.importorskip("pandas")
    path, events = catalog_store
    df = pd.DataFrame(events[:10], columns=["user_id", "item_id", "timestamp", "rating"])
    df.loc[3, "user_id"] = "stranger"
    df.loc[7, "item_id"] = "no-such-item"
    got = liber.ingest(liber.open_store(path, writable=True), df)
    assert got["accepted"] == 8 and got["bad"] == 2
    assert [(i, f) for i, f, _ in got["errors"]] == [(3, "user"), (7, "item")]
    assert "stranger" in got["errors"][0][2]


def test_bad_input_and_a_read_only_store(catalog_store):
    path, events = catalog_store
    with pytest.raises(ValueError, match="open it with writable=True"):
        liber.ingest(liber.open_store(path), [events[0]])
    store = liber.open_store(path, writable=True)
    with pytest.raises(ValueError, match="missing: timestamp"):
        liber.ingest(store, {"user_id": ["u1"], "item_id": ["i1"]})
    with pytest.raises(TypeError, match="integers"):
        liber.ingest(store, {"user_id": ["u1"], "item_id": ["i1"], "timestamp": [1.5], "rating": [4]})
    with pytest.raises(ValueError, match="one value per event"):
        store.ingest_events(["u1"], ["i1"], np.array([1, 2], dtype=np.int64), np.array([4], dtype=np.float32),
                            np.array([-1], dtype=np.int8), 10)
    with pytest.raises(ValueError, match=r"\(user_id, item_id, timestamp, rating\)"):
        liber.ingest(store, [("u1", "i1", 5)])


def test_a_writer_killed_mid_ingest_loses_nothing_it_stored(fixture_store, catalog_store):
    """SIGKILL between and during batches: what the store holds afterwards is a prefix of
    the right partitions, and ingesting every event again gives exactly the CLI's."""
    cli_path, events = fixture_store
    path, _ = catalog_store
    users = sorted({u for u, *_ in events})
    code = (
        "import sys, liber\n"
        f"events = {events!r}\n"
        f"store = liber.open_store({str(path)!r}, writable=True)\n"
        "def stored(n):\n"
        "    print(n, flush=True)\n"
        "while True:  # again and again (duplicates after the first pass) until killed\n"
        "    liber.ingest(store, events, batch=7, progress=stored)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    for _ in range(5):  # a few batches stored, then killed wherever it is
        assert p.stdout.readline().strip() == "7"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    want = partitions_of(cli_path, users)
    got = partitions_of(path, users)
    assert any(got.values())
    for u in users:
        assert got[u] == want[u][:len(got[u])], u
    liber.ingest(liber.open_store(path, writable=True), events)
    assert partitions_of(path, users) == want
