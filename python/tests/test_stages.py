"""learn and encode from Python against the CLI running the same stage on a copy of the same
store (an independent path through the same library), their progress reports, and a run
stopped from Python (KeyboardInterrupt) that loses nothing and resumes."""
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import liber

from conftest import ROOT, ingest_args, run

SERVER = ROOT / "tests" / "kafka" / "interest_server.py"


@pytest.fixture(scope="module")
def llm_server():
    """An OpenAI-compatible server whose answer is a function of the prompt (deterministic),
    20 ms per answer: a run stopped at its first partition has most still to do."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port), "0.02"])
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the test LLM server did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/v1"
    proc.kill()
    proc.wait()


@pytest.fixture
def ingested(dataset, tmp_path):
    """The events ingested by the CLI, nothing learned or encoded; and a copy of it."""
    d, events = dataset
    a, b = tmp_path / "a", tmp_path / "b"
    run(*ingest_args(d, a))
    shutil.copytree(a, b)
    return a, b, events


def records(path, variant="cascade"):
    store = liber.open_store(path)
    return {u: [(r["seq"], r["ok"], r["quality"], r["summary"], r["shift"]) for r in store.records(u, variant)]
            for u in store.users()}


class Bar:
    """What liber.learn needs of a tqdm bar: total and update()."""

    def __init__(self):
        self.total, self.n, self.updates = None, 0, 0

    def update(self, n):
        self.n += n
        self.updates += 1


def test_learn_matches_the_cli_and_reports_progress(ingested, llm_server):
    a, b, _ = ingested
    run("learn", "--store", str(a), "--engine", "http", "--base-url", llm_server, "--api-model", "interests", "--quiet")
    bar = Bar()
    cost = liber.learn(liber.open_store(b, writable=True), engine="http", base_url=llm_server,
                       api_model="interests", progress=bar)
    want = records(a)
    partitions = sum(len(v) for v in want.values())
    assert partitions > 0 and records(b) == want
    assert cost["partitions_ok"] + cost["partitions_failed"] == partitions
    assert bar.total == partitions and bar.n == partitions and bar.updates >= 1
    # Incremental, as the CLI: nothing left to do, nothing reported.
    again = liber.learn(liber.open_store(b, writable=True), engine="http", base_url=llm_server,
                        api_model="interests", progress=bar)
    assert again["calls"] == 0 and again["partitions_already"] == partitions and bar.n == partitions


def test_a_keyboard_interrupt_stops_learn_and_a_rerun_finishes(ingested, llm_server):
    a, _, _ = ingested
    seen = []

    def interrupt(n):
        seen.append(n)
        raise KeyboardInterrupt  # what Ctrl-C raises in the callback's thread

    store = liber.open_store(a, writable=True)
    with pytest.raises(KeyboardInterrupt):
        liber.learn(store, engine="http", base_url=llm_server, api_model="interests", parallel=1, progress=interrupt)
    assert len(seen) == 1  # no callback after the exception
    partial = sum(len(v) for v in records_of(store).values())
    total = sum(len(store.partitions(u)) for u in store.users())
    assert 1 <= partial < total  # stopped early, what was done is stored
    cost = liber.learn(store, engine="http", base_url=llm_server, api_model="interests")
    assert cost["partitions_already"] == partial
    assert sum(len(v) for v in records_of(store).values()) == total


def records_of(store):
    return {u: store.records(u) for u in store.users()}


def test_encode_matches_the_cli(ingested):
    a, b, _ = ingested
    run("encode", "--store", str(a), "--quiet")
    steps = []
    report = liber.encode(liber.open_store(b, writable=True), progress=steps.append)
    assert report["texts"] > 0 and report["failed"] == 0 and report["dim"] == 384
    assert sum(steps) == report["texts"] and max(steps) <= 64  # a call per stored batch
    want = liber.open_store(a).interest_table("content")
    got = liber.open_store(b).interest_table("content")
    assert got.encoder == want.encoder and len(got) == len(want)
    np.testing.assert_array_equal(got.partition_index(), want.partition_index())
    np.testing.assert_array_equal(got.rows, want.rows)  # the same batches as the CLI's
    assert liber.encode(liber.open_store(b, writable=True))["texts"] == 0  # incremental


def test_stages_refuse_a_read_only_store_and_unknown_settings(ingested, llm_server):
    a, _, _ = ingested
    with pytest.raises(ValueError, match="writable=True"):
        liber.learn(liber.open_store(a), engine="http", base_url=llm_server, api_model="interests")
    with pytest.raises(ValueError, match="writable=True"):
        liber.encode(liber.open_store(a))
    store = liber.open_store(a, writable=True)
    with pytest.raises(liber.Error, match="base URL"):
        liber.learn(store, engine="http")
    with pytest.raises(liber.Error, match="unknown engine 'gpt'"):
        liber.encode(store, engine="gpt")
    with pytest.raises(ValueError, match="candidates"):
        liber.learn(store, engine="http", base_url=llm_server, api_model="interests", candidates=0)
    with pytest.raises(TypeError, match="progress"):
        liber.encode(store, progress=42)
