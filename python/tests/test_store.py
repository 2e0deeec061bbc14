"""The package against independent references: the partitions a count rule makes over the
fixture's events (computed here), and the leakage rule applied by brute force."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import liber

from conftest import K


def expected_partitions(events):
    """user -> [(t_begin, t_end)] of the closed partitions: every K events, in time order."""
    by_user = {}
    for u, _, ts, _ in events:
        by_user.setdefault(u, []).append(ts)
    out = {}
    for u, ts in by_user.items():
        ts.sort()
        out[u] = [(ts[i], ts[i + K - 1]) for i in range(0, len(ts) - K + 1, K)]
    return out


def test_users_and_partitions_match_the_count_rule(fixture_store):
    path, events = fixture_store
    store = liber.open_store(path)
    want = expected_partitions(events)
    assert sorted(store.users()) == sorted(want)
    for user, spans in want.items():
        got = store.partitions(user)
        assert [(p["t_begin"], p["t_end"]) for p in got] == spans
        assert [p["seq"] for p in got] == list(range(len(spans)))
        assert all(p["events"] == K and p["reason"] == "count" for p in got)


def test_content_table_rows_are_zero_copy_and_indexed(fixture_store):
    path, events = fixture_store
    table = liber.open_store(path).interest_table("content")
    want = expected_partitions(events)
    assert len(table) == sum(len(v) for v in want.values())
    rows = table.rows
    assert rows.dtype == np.float32 and rows.shape == (len(table), table.width)
    assert not rows.flags.owndata and not rows.flags.writeable  # a view of the C++ table
    assert table.width == 2 * table.dim and table.layout == "liked|other"
    index = table.partition_index()
    for user, (seq, t_begin, t_end, row) in zip(table.users, index):
        assert (t_begin, t_end) == want[user][seq]
        assert 0 <= row < len(table)


def brute_force_join(table, users, timestamps, slots):
    parts = {}
    for user, (seq, _, t_end, row) in zip(table.users, table.partition_index()):
        parts.setdefault(user, []).append((seq, t_end, row))
    out = np.full((len(users), slots), -1, dtype=np.int32)
    for i, (u, ts) in enumerate(zip(users, timestamps)):
        visible = [row for seq, t_end, row in sorted(parts.get(str(u), [])) if t_end < ts]
        visible = visible[-slots:]
        if visible:
            out[i, slots - len(visible):] = visible
    return out


def test_join_equals_the_leakage_rule_by_brute_force(fixture_store):
    path, events = fixture_store
    table = liber.open_store(path).interest_table("content")
    rng = np.random.default_rng(7)
    ends = table.partition_index()[:, 2]
    users = [u for u, *_ in events] + ["u1", "u2", "nobody"]
    # Every event's own time (a partition ending there holds it), the partition ends and
    # the seconds just after them, and times before everything.
    timestamps = np.array([t for _, _, t, _ in events] + [int(ends.min()), int(ends.max()) + 1, 10], dtype=np.int64)
    users += list(rng.choice(table.users, 200))
    timestamps = np.concatenate([timestamps, rng.choice(np.concatenate([ends, ends + 1]), 200)])
    for slots in (1, 2, 8):
        got = liber.join(table, users, timestamps, slots)
        assert got.dtype == np.int32 and got.shape == (len(users), slots)
        np.testing.assert_array_equal(got, brute_force_join(table, users, timestamps, slots))
    # A read-only array (a pandas column, a memory map) is read in place.
    frozen = timestamps.copy()
    frozen.setflags(write=False)
    np.testing.assert_array_equal(liber.join(table, users, frozen, 8), got)
    vectors = liber.gather(table, got)
    assert vectors.shape == (len(users), 8, table.width)
    np.testing.assert_array_equal(vectors[got < 0], 0)
    np.testing.assert_array_equal(vectors[got >= 0], table.rows[got[got >= 0]])


def test_bad_input_raises_a_clear_python_exception(fixture_store):
    path, _ = fixture_store
    store = liber.open_store(path)
    table = store.interest_table("content")
    with pytest.raises(TypeError, match="integers"):
        liber.join(table, ["u1"], np.array([1.5]))
    with pytest.raises(TypeError, match="int64"):
        table.join(["u1"], np.array([1], dtype=np.int32), 4)
    with pytest.raises(ValueError, match="1-dimensional"):
        liber.join(table, ["u1", "u2"], np.array([[1], [2]]))
    with pytest.raises(ValueError, match="2 users but 1 timestamps"):
        liber.join(table, ["u1", "u2"], np.array([1]))
    with pytest.raises(ValueError, match="slots"):
        liber.join(table, ["u1"], np.array([1]), slots=0)
    with pytest.raises(ValueError, match="rows must be"):
        liber.gather(table, np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="no variant named"):
        store.records("u1", "nope")
    with pytest.raises(liber.Error, match="no-such-store"):
        liber.open_store(path.parent / "no-such-store")


def test_a_killed_reader_leaves_the_store_intact(fixture_store):
    path, events = fixture_store
    code = (
        "import liber, os, signal\n"
        f"s = liber.open_store({str(path)!r})\n"
        "t = s.interest_table('content')\n"
        "print('ready', flush=True)\n"
        "while True: s.partitions('u1')\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    # Writable afterwards (no lock left behind), and the same state.
    store = liber.open_store(path, writable=True)
    want = expected_partitions(events)
    assert [(q["t_begin"], q["t_end"]) for q in store.partitions("u1")] == want["u1"]


def test_controls_keep_the_partitions_and_drop_the_knowledge(fixture_store):
    path, _ = fixture_store
    store = liber.open_store(path)
    table = store.interest_table("content")
    shuffled = store.interest_table("content", control="shuffled", seed=3)
    rand = store.interest_table("content", control="random", seed=3)
    for control in (shuffled, rand):  # the same partitions, times and rows: the join is unchanged
        np.testing.assert_array_equal(control.partition_index(), table.partition_index())
        assert control.users == table.users and control.width == table.width
    # Shuffled: every user's rows are real rows of one other user.
    own = {}
    for user, (seq, _, _, row) in zip(table.users, table.partition_index()):
        own.setdefault(user, []).append(tuple(table.rows[row]))
    for user, (seq, _, _, row) in zip(shuffled.users, shuffled.partition_index()):
        got = tuple(shuffled.rows[row])
        donors = [u for u, rows in own.items() if got in rows]
        assert donors and user not in donors
    assert abs(float(rand.rows.mean())) < 0.1 and abs(float(rand.rows.std()) - 1) < 0.1
    with pytest.raises(ValueError, match="unknown control"):
        store.interest_table("content", control="permuted")
