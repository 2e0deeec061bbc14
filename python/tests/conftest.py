"""A small store made by liber's CLI (ingest, then encode for the item-text vectors), shared
by the package's tests. The CLI is $LIBER_CLI, else build/liber of this checkout."""
import os
import pathlib
import random
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
K = 5  # the count rule: a partition closes at 5 events


def cli() -> str:
    path = os.environ.get("LIBER_CLI", str(ROOT / "build" / "liber"))
    if not os.path.exists(path):
        pytest.fail(f"the liber CLI is not at {path}: build it (scripts/setup.sh) or set LIBER_CLI")
    return path


def make_events(users=6, items=20, per_user=17, seed=3):
    """(user, item, ts, rating) rows: each user's in time order, distinct timestamps."""
    rng = random.Random(seed)
    rows = []
    ts = 1_700_000_000
    for i in range(users * per_user):
        ts += rng.randint(1, 500)
        rows.append((f"u{i % users + 1}", f"i{rng.randint(1, items)}", ts, rng.randint(1, 5)))
    return rows


def run(*args):
    return subprocess.run([cli(), *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """The generic dataset's files (items.csv, events.csv) and its events."""
    d = tmp_path_factory.mktemp("liber-py")
    events = make_events()
    genres = ["Drama", "Comedy", "Horror", "Sci-Fi"]
    (d / "items.csv").write_text("item_id,title,year,genres\n" + "".join(
        f"i{n},Film number {n},{1980 + n},{genres[n % 4]}\n" for n in range(1, 21)))
    (d / "events.csv").write_text("user_id,item_id,timestamp,rating\n" + "".join(
        f"{u},{i},{t},{r}\n" for u, i, t, r in events))
    return d, events


def ingest_args(d, store):
    return ["ingest", "--store", str(store), "--dataset", "generic", "--events", str(d / "events.csv"),
            "--items", str(d / "items.csv"), "--rule-k", str(K), "--quiet"]


@pytest.fixture(scope="session")
def fixture_store(dataset):
    """The events ingested by the CLI, the item texts encoded."""
    d, events = dataset
    store = d / "store"
    run(*ingest_args(d, store))
    run("encode", "--store", str(store))
    return store, events


@pytest.fixture
def catalog_store(dataset, tmp_path):
    """A store with the catalog and the rule but no events (liber ingest --catalog-only)."""
    d, events = dataset
    store = tmp_path / "catalog-only"
    run(*ingest_args(d, store), "--catalog-only")
    return store, events
