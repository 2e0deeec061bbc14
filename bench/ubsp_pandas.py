#!/usr/bin/env python3
"""Offline fixed-K UBSP partitioning with pandas, the baseline for bench/ubsp_bench.cpp.

usage: /usr/bin/python3 bench/ubsp_pandas.py DATA_DIR [K]

Reads the MovieLens-1M ratings (ratings.dat or the one ratings*.dat), then times only the
partitioning itself: stable sort by (user, time), block index = cumcount // K, and the
count of full blocks (partitions; the incomplete last block of a user is its cache).
Prints one `key value` pair per line for the C++ bench to parse.
"""
import glob
import os
import sys
import time

import pandas as pd


def ratings_file(data_dir):
    full = os.path.join(data_dir, "ratings.dat")
    if os.path.exists(full):
        return full
    found = sorted(glob.glob(os.path.join(data_dir, "ratings*.dat")))
    if len(found) != 1:
        sys.exit(f"no single ratings*.dat in {data_dir}")
    return found[0]


def main():
    data_dir = sys.argv[1]
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    t0 = time.perf_counter()
    # "::"-separated: split on ':' with the C engine (fast), keep the non-empty columns.
    df = pd.read_csv(ratings_file(data_dir), sep=":", header=None, usecols=[0, 2, 4, 6],
                     names=["user", "a", "item", "b", "rating", "c", "ts"], engine="c",
                     encoding="latin-1")
    load_s = time.perf_counter() - t0

    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        s = df.sort_values(["user", "ts"], kind="stable")
        block = s.groupby("user", sort=False).cumcount() // k
        sizes = block.groupby([s["user"], block]).size()
        partitions = int((sizes == k).sum())
        elapsed = time.perf_counter() - t0
        best = elapsed if best is None else min(best, elapsed)
    print(f"events {len(df)}")
    print(f"users {df['user'].nunique()}")
    print(f"partitions {partitions}")
    print(f"load_seconds {load_s:.4f}")
    print(f"partition_seconds {best:.4f}")
    print(f"events_per_second {len(df) / best:.0f}")


if __name__ == "__main__":
    main()
