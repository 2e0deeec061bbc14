#!/usr/bin/env python3
"""Peer benchmark: liber's DIN against FuxiCTR 2.3.10's DIN on the very same samples.

A benchmark, not a test: it prints both sides' test AUC / LogLoss and training throughput
and checks two goals (PASS/MISS), exiting 0 either way unless --strict is given:
  * accuracy:   liber's test AUC is not below FuxiCTR's by more than 0.003;
  * throughput: liber's training samples/s is at least 1.5x FuxiCTR's, same thread count.

What it runs, in one process (run it with the bench venv's python; bench/run_din_peer.sh
sets everything up and picks the defaults):
  1. `liber export` writes train/valid/test CSV of the CTR samples (one column per sparse
     field, ^-joined id lists for item_genres and history_item_ids, label).
  2. FuxiCTR's own LongCTR DIN (model_zoo/LongCTR/DIN/DIN.py from the fuxictr wheel) is
     trained on those splits with FuxiCTR's own pipeline: FeatureProcessor +
     build_dataset -> FeatureMap -> DIN(**params) -> RankDataLoader(data_loader=
     LongCTRDataLoader) -> BaseModel.fit (its train loop, early stopping and checkpointing)
     -> model.evaluate on the test split (fuxictr.metrics: sklearn AUC and log_loss).
     This replays model_zoo/LongCTR/run_expid.py step by step; that script itself cannot
     run from the 2.3.10 wheel (its fuxictr_version.py asserts fuxictr == 2.3.2).
  3. `liber train --backbones din` with the same data options and hyper-parameters; its
     JSON record gives liber's numbers.

Data layout handed to FuxiCTR (its LongCTR format): the splits become parquet files with
user_index / item_index / seq_len (meta), the non-item features, and the label;
item_info.parquet holds item_id per item_index, so the target item and every history item
are embedded by the same item_id table, and they are the only "item"-source feature
(DIN's target/keys); item_genres and item_year are ordinary features of the sample, as
in liber. user_info.parquet holds each user's whole chronological item sequence, and a
sample's history is its first seq_len items, of which LongCTRDataLoader keeps the last
max_len (= liber's --history). The script checks that this reproduces every exported
history exactly; if it ever did not, it falls back to one user_info row per sample.
liber's ids are already dense integers with 0 = padding/unknown, so the dataset is handed
over pre-encoded (rebuild_dataset=False with each feature's vocab_size, the path FuxiCTR
takes for pre-tokenized parquet data): FuxiCTR's tokenizers do not re-map ids or send
ids unseen in train to a shared OOV row, so both sides see identical ids.

Model and training settings, both sides: embedding dim D for every field; item_genres
mean-pooled over its non-padding ids; target attention MLP [64] ReLU -> 1 score per
history item, no softmax, inputs [q, k, q-k, q*k], padding masked; then all field
embeddings + target item + attention-pooled history -> MLP [200, 80] ReLU -> 1 logit;
Adam with the same lr, batch size B, max epochs E, BCE loss, no regularizer, no dropout,
no batch norm; embeddings initialized N(0, 1e-4), Linear layers xavier-normal with zero
bias; early stopping on validation AUC with patience 2, then the best epoch's weights are
evaluated on test. torch.set_num_threads(T) (plus OMP/OpenBLAS/MKL thread env) for
FuxiCTR, --threads T for liber; both run Debian's torch 1.13.

Differences that remain (FuxiCTR gives no switch for them, or they are how it works):
  * Gradient clipping: FuxiCTR's DIN.train_step always clips the gradient norm at
    max_gradient_norm (default 10, kept); liber does not clip. At this scale it rarely
    binds; it costs FuxiCTR one norm over the parameters per step.
  * Embedding row 0: FuxiCTR gives every categorical table padding_idx=0 (row 0 fixed at
    zero). liber masks padding in the sequence fields the same way but keeps row 0 of a
    single-valued field (id 0 = unknown value, rare here) trainable.
  * Table sizes: FuxiCTR's vocab_size per field is the largest id in the exported splits
    + 1; liber sizes its tables from the full catalogs. The extra rows are never looked
    up; Adam still updates them on liber's side (dense gradients on both sides).
  * Loss form: FuxiCTR's DIN ends in a sigmoid and uses binary_cross_entropy on the
    probability; liber uses BCE-with-logits. Same objective.
  * Early stopping: FuxiCTR's reduce_lr_on_plateau is switched off here (its default
    would cut lr 10x after a non-improving epoch; liber keeps lr). FuxiCTR counts an epoch
    as better only when validation AUC beats the best by > 1e-6 (liber: any increase).
  * History order/padding: FuxiCTR pads each batch's histories to the batch's longest
    ("pre" padding, oldest first); liber stores a fixed-length, most-recent-first row.
    Attention without softmax is a masked sum, so the function is the same.
  * Randomness: shuffling and initialization use each side's own RNG (same seed value,
    different streams), so AUCs differ by run-to-run noise as well.

Throughput, both sides: training samples per epoch x epochs run / training time, where
training time is the wall time of the epochs' training loops without the per-epoch
validation (and without checkpoint writing). For FuxiCTR the script wraps the model's own
BaseModel.train_epoch and eval_step and subtracts the eval_step time from the
train_epoch time, so the time includes FuxiCTR's per-batch data assembly in
LongCTRDataLoader (pandas look-ups of item_info, sequence padding), as a FuxiCTR user
pays it; by default it runs with num_workers=0 so that both sides use exactly T threads
(--fuxictr-workers N moves the batch assembly into N loader processes). liber's own
train_samples_per_s covers its per-epoch shuffle/gather plus the steps.

Data: ML-1M (users 1-2999 only) -- ../shared/data/ml-1m-partial holds ML-1M's movies
and users with the ratings of users 1-2999 only; every printed result carries that label.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATA_LABEL = "ML-1M (users 1-2999 only)"
AUC_TOLERANCE = 0.003
SPEEDUP_GOAL = 1.5
SEQUENCE_COLUMNS = {"item_genres", "history_item_ids"}
# The export's join keys (the sample's external user id and timestamp): not features.
JOIN_COLUMNS = ("user", "timestamp")


def add_common_args(p):
    """The options every FuxiCTR peer benchmark shares (bench/fuxictr_peer.py uses them too)."""
    p.add_argument("--liber", default=os.path.join(REPO, "build", "liber"),
                   help="liber CLI (default: build/liber)")
    p.add_argument("--data-dir", default="../shared/data/ml-1m-partial",
                   help="ML-1M directory for `liber --data-dir`")
    p.add_argument("--max-users", type=int, default=0,
                   help="only the first N users (both sides; 0 = all)")
    p.add_argument("--history", type=int, default=10,
                   help="recent item ids per sample (liber --history; FuxiCTR max_len)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="compute threads, both sides (default: all cores)")
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=3, help="max epochs, both sides")
    p.add_argument("--patience", type=int, default=2, help="early-stopping patience")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--fuxictr-workers", type=int, default=0,
                   help="LongCTRDataLoader num_workers (0 = batches built in the training "
                        "process, so FuxiCTR uses exactly --threads threads)")
    p.add_argument("--work-dir", help="keep exports, parquet files and checkpoints here "
                                      "(default: a temporary directory, removed at the end)")
    p.add_argument("--csv-dir", help="use these train/valid/test CSV instead of running "
                                     "`liber export` (must match the other options)")
    p.add_argument("--skip-liber", action="store_true",
                   help="train FuxiCTR only (no liber numbers, goals not checked)")
    p.add_argument("--json-out", help="also write the comparison as JSON here")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    p.add_argument("--quiet", action="store_true", help="no FuxiCTR/liber log lines")


def check_common_args(p, args):
    for name in ("threads", "embedding_dim", "batch_size", "epochs", "patience", "history"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.max_users < 0 or args.fuxictr_workers < 0:
        p.error("--max-users and --fuxictr-workers must be >= 0")
    return args


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    return check_common_args(p, p.parse_args())


LOG_NAME = "fuxictr_din"  # the prefix of log lines (a script importing this module sets its own)


def log(msg):
    print(f"[{LOG_NAME}] {msg}", file=sys.stderr, flush=True)


def data_options(args):
    opts = ["--dataset", "ml-1m", "--data-dir", args.data_dir, "--history", str(args.history)]
    if args.max_users:
        opts += ["--max-users", str(args.max_users)]
    return opts


def data_label(args):
    return DATA_LABEL + (f", first {args.max_users} users" if args.max_users else "")


def run_liber(args, cmd, quiet):
    full = [args.liber] + cmd
    log("running: " + " ".join(full))
    res = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not quiet or res.returncode != 0:
        sys.stderr.write(res.stdout)
    if res.returncode != 0:
        sys.exit(f"liber {cmd[0]} failed with exit code {res.returncode}")
    return res.stdout


# ---------------------------------------------------------------------------------------
# The exported splits -> FuxiCTR's LongCTR parquet layout

def read_splits(csv_dir):
    import numpy as np
    import pandas as pd
    splits = {}
    for name in ("train", "valid", "test"):
        path = os.path.join(csv_dir, f"{name}.csv")
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        for col in ("item_id", "history_item_ids", "label"):
            if col not in df.columns:
                sys.exit(f"{path}: no column '{col}' (is it a `liber export` file?)")
        splits[name] = df
    cols = [c for c in splits["train"].columns if c not in JOIN_COLUMNS]
    seq_cols = [c for c in cols if c in SEQUENCE_COLUMNS or
                any(df[c].str.contains("^", regex=False).any() or (df[c] == "").any()
                    for df in splits.values())]
    sparse_cols = [c for c in cols if c not in seq_cols and c != "label"]
    out = {}
    for name, df in splits.items():
        d = {c: df[c].astype(np.int64).to_numpy() for c in sparse_cols}
        for c in seq_cols:
            d[c] = [[int(x) for x in s.split("^")] if s else [] for s in df[c]]
        d["label"] = df["label"].astype(np.int64).to_numpy()
        out[name] = d
    return out, sparse_cols, seq_cols


def pad_rows(lists, width):
    import numpy as np
    arr = np.zeros((len(lists), width), dtype=np.int64)
    for i, row in enumerate(lists):
        arr[i, :len(row)] = row  # "post" padding, FuxiCTR's default for sequence features
    return arr


def build_longctr_layout(splits, sparse_cols, seq_cols, history, data_dir, per_sample=False):
    """Writes {train,valid,test}.parquet, user_info.parquet and item_info.parquet; returns
    the vocab size of every feature and the sequence layout used. per_sample: one user_info
    row per sample holding exactly its exported history (oldest first) even where the
    per-user layout would reproduce it (for "post" padding, whose truncation keeps a
    sequence's oldest items)."""
    import numpy as np
    import pandas as pd
    names = ("train", "valid", "test")
    other_seq = [c for c in seq_cols if c != "history_item_ids"]

    # Vocabularies: largest id in any split + 1 (ids are dense already; 0 = padding).
    vocab = {}
    for c in sparse_cols:
        vocab[c] = int(max(splits[n][c].max(initial=0) for n in names)) + 1
    for c in other_seq:
        vocab[c] = max(max((max(r) for r in splits[n][c] if r), default=0) for n in names) + 1
    hist_max = max(max((max(r) for r in splits[n]["history_item_ids"] if r), default=0)
                   for n in names)
    vocab["item_id"] = max(vocab["item_id"], hist_max + 1)
    longest = max(max((len(r) for r in splits[n]["history_item_ids"]), default=0) for n in names)
    if longest > history:
        sys.exit(f"exported histories hold up to {longest} items but --history is {history}")

    # Per-user chronological sequence: the splits are per-user chronological slices
    # (train, then valid, then test), each grouped by user in time order.
    users = np.concatenate([splits[n]["user_id"] for n in names])
    items = np.concatenate([splits[n]["item_id"] for n in names])
    split_rank = np.concatenate([np.full(len(splits[n]["label"]), k) for k, n in enumerate(names)])
    row = np.concatenate([np.arange(len(splits[n]["label"])) for n in names])
    order = np.lexsort((row, split_rank, users))  # by user, then split, then file order
    seq_len_sorted = np.zeros(len(order), dtype=np.int64)
    user_seqs = {}
    start = 0
    while start < len(order):
        u = users[order[start]]
        end = start
        while end < len(order) and users[order[end]] == u:
            end += 1
        user_seqs[int(u)] = items[order[start:end]].astype(np.int64)
        seq_len_sorted[start:end] = np.arange(end - start)
        start = end
    seq_len_all = np.empty(len(order), dtype=np.int64)
    seq_len_all[order] = seq_len_sorted

    hist_all = [h for n in names for h in splits[n]["history_item_ids"]]
    exact = not per_sample
    for i in range(len(hist_all) if exact else 0):
        seq = user_seqs[int(users[i])]
        l = int(seq_len_all[i])
        expect = seq[max(0, l - history):l][::-1].tolist()  # most recent first, as exported
        if expect != hist_all[i]:
            exact = False
            break

    if exact:
        layout = "per-user"
        n_users = int(users.max(initial=0)) + 1
        user_info = [user_seqs.get(u, np.zeros(0, dtype=np.int64)).tolist()
                     for u in range(n_users)]
        user_index_all = users
    else:
        # One user_info row per sample holding exactly its exported history (oldest first).
        layout = "per-sample"
        if not per_sample:
            log("exported histories are not prefixes of per-user sequences; "
                "using one user_info row per sample")
        user_info = [h[::-1] for h in hist_all]
        user_index_all = np.arange(len(hist_all), dtype=np.int64)
        seq_len_all = np.array([len(h) for h in hist_all], dtype=np.int64)

    os.makedirs(data_dir, exist_ok=True)
    seq_width = {c: max(1, max(max((len(r) for r in splits[n][c]), default=0) for n in names))
                 for c in other_seq}
    offset = 0
    for n in names:
        d = splits[n]
        count = len(d["label"])
        frame = {
            "user_index": user_index_all[offset:offset + count],
            "item_index": d["item_id"],
            "seq_len": seq_len_all[offset:offset + count],
            # The sample's row in the three splits together (train, valid, test): how a model
            # finds the sample's join keys (bench/fuxictr_din_liber.py).
            "sample_index": np.arange(offset, offset + count, dtype=np.int64),
        }
        for c in sparse_cols:
            if c != "item_id":  # item_id lives in item_info only (DIN's target/keys)
                frame[c] = d[c]
        for c in other_seq:
            frame[c] = list(pad_rows(d[c], seq_width[c]))
        frame["label"] = d["label"]
        pd.DataFrame(frame).to_parquet(os.path.join(data_dir, f"{n}.parquet"), index=False)
        offset += count
    pd.DataFrame({"full_item_seq": user_info}).to_parquet(
        os.path.join(data_dir, "user_info.parquet"), index=False)
    n_items = vocab["item_id"]
    pd.DataFrame({"item_index": np.arange(n_items, dtype=np.int64),
                  "item_id": np.arange(n_items, dtype=np.int64)}).to_parquet(
        os.path.join(data_dir, "item_info.parquet"), index=False)
    return vocab, seq_width, layout


# ---------------------------------------------------------------------------------------
# FuxiCTR side

def join_keys(csv_dir):
    """(user, timestamp) of every sample, train then valid then test: sample_index order."""
    import numpy as np
    import pandas as pd
    users, stamps = [], []
    for name in ("train", "valid", "test"):
        df = pd.read_csv(os.path.join(csv_dir, f"{name}.csv"), usecols=list(JOIN_COLUMNS),
                         dtype={"user": str}, keep_default_na=False)
        users.append(df["user"].to_numpy(dtype=object))
        stamps.append(df["timestamp"].to_numpy(dtype=np.int64))
    return np.concatenate(users), np.concatenate(stamps)


class PeerModel:
    """A FuxiCTR model the pipeline below trains on LongCTR batches. load() imports and
    returns its class (after the thread pools are sized); params(args) gives its
    model-config entries; padding is LongCTRDataLoader's; per_sample_history asks for one
    user_info row per sample (see build_longctr_layout)."""

    def __init__(self, name, load, params, padding="pre", per_sample_history=False):
        self.name, self.load, self.params = name, load, params
        self.padding, self.per_sample_history = padding, per_sample_history


def _load_din():
    from model_zoo.LongCTR.DIN import DIN
    return DIN


def _din_params(args):
    return {
        "dnn_hidden_units": [200, 80],
        "dnn_activations": "ReLU",
        "attention_hidden_units": [64],
        "attention_hidden_activations": "ReLU",
        "attention_output_activation": None,
        "attention_dropout": 0,
        "din_use_softmax": False,
        "net_dropout": 0,
        "batch_norm": False,
        "accumulation_steps": 1,
    }


DIN_MODEL = PeerModel("DIN", _load_din, _din_params)


def run_fuxictr(args, csv_dir, work_dir, make_model=None, side="FuxiCTR", predictions=False,
                model=None):
    """FuxiCTR's DIN pipeline; make_model(DIN, feature_map, params) builds the model instead
    of DIN(feature_map, **params) (a DIN with more inputs). predictions: also return the
    best model's test predictions (test split order) as "test_predictions". model: another
    PeerModel than DIN_MODEL, trained by the same pipeline (make_model then gets its class)."""
    import logging
    import torch

    model_spec = model or DIN_MODEL

    torch.set_num_threads(args.threads)
    # Once per process: a second call aborts Debian's torch 1.13 (an uncatchable c10::Error),
    # and bench/fuxictr_din_liber.py trains twice.
    if torch.get_num_interop_threads() != args.threads:
        torch.set_num_interop_threads(args.threads)

    from fuxictr import __version__ as fuxictr_version
    from fuxictr.features import FeatureMap
    from fuxictr.preprocess import FeatureProcessor, build_dataset
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.torch_utils import seed_everything
    from fuxictr.utils import set_logger
    from model_zoo.LongCTR.longctr_dataloader import LongCTRDataLoader
    model_class = model_spec.load()

    t0 = time.perf_counter()
    splits, sparse_cols, seq_cols = read_splits(csv_dir)
    if "user_id" not in sparse_cols:
        sys.exit("the exported splits have no user_id column")
    dataset_id = "liber_ml1m_" + model_spec.name.lower()
    data_root = os.path.join(work_dir, "fuxictr_data")
    data_dir = os.path.join(data_root, dataset_id)
    if os.path.exists(data_dir):
        shutil.rmtree(data_dir)
    vocab, seq_width, layout = build_longctr_layout(
        splits, sparse_cols, seq_cols, args.history, data_dir,
        per_sample=model_spec.per_sample_history)
    counts = {n: len(splits[n]["label"]) for n in splits}
    del splits
    log(f"LongCTR parquet layout ({layout} user_info) written in "
        f"{time.perf_counter() - t0:.1f}s: {counts}")

    feature_cols = [{"name": ["user_index", "item_index", "seq_len", "sample_index"], "active": True,
                     "dtype": "int", "type": "meta", "remap": False}]
    for c in sparse_cols:
        if c == "item_id":
            continue
        feature_cols.append({"name": c, "active": True, "dtype": "int", "type": "categorical",
                             "source": "user" if c.startswith("user_") else "",
                             "vocab_size": vocab[c], "remap": False})
    for c in seq_cols:
        if c == "history_item_ids":
            continue
        feature_cols.append({"name": c, "active": True, "dtype": "str", "type": "sequence",
                             "splitter": "^", "max_len": seq_width[c], "padding": "post",
                             "vocab_size": vocab[c], "remap": False,
                             "feature_encoder": "layers.MaskedAveragePooling()"})
    # The item part: embedded for the target item and for every history item alike.
    feature_cols.append({"name": "item_id", "active": True, "dtype": "int",
                         "type": "categorical", "source": "item",
                         "vocab_size": vocab["item_id"], "remap": False})

    # One flat parameter dict, as run_expid.py builds it from dataset_config.yaml and
    # model_config.yaml (the LongCTR template of the model, with this benchmark's settings).
    params = {
        # dataset config
        "dataset_id": dataset_id,
        "data_root": data_root,
        "data_format": "parquet",
        "train_data": os.path.join(data_dir, "train.parquet"),
        "valid_data": os.path.join(data_dir, "valid.parquet"),
        "test_data": os.path.join(data_dir, "test.parquet"),
        "user_info": os.path.join(data_dir, "user_info.parquet"),
        "item_info": os.path.join(data_dir, "item_info.parquet"),
        "rebuild_dataset": False,
        "feature_cols": feature_cols,
        "label_col": {"name": "label", "dtype": "float"},
        # Base
        "model_root": os.path.join(work_dir, "fuxictr_checkpoints"),
        "num_workers": args.fuxictr_workers,
        "verbose": 0,
        "early_stop_patience": args.patience,
        "pickle_feature_encoder": True,
        "save_best_only": True,
        "eval_steps": None,
        "debug_mode": False,
        "group_id": None,
        "use_features": None,
        "feature_specs": None,
        "feature_config": None,
        # the model
        "model": model_spec.name,
        "model_id": model_spec.name + "_liber_peer",
        "gpu": -1,
        "loss": "binary_crossentropy",
        "metrics": ["AUC", "logloss"],
        "task": "binary_classification",
        "optimizer": "adam",
        "learning_rate": args.lr,
        "embedding_regularizer": None,
        "net_regularizer": None,
        "batch_size": args.batch_size,
        "embedding_dim": args.embedding_dim,
        "epochs": args.epochs,
        "shuffle": True,
        "seed": args.seed,
        "monitor": "AUC",
        "monitor_mode": "max",
        "reduce_lr_on_plateau": False,
        "max_len": args.history,
        "padding": model_spec.padding,
    }
    params.update(model_spec.params(args))
    # run_expid.py's steps (set_logger also creates model_root/dataset_id for checkpoints).
    if args.quiet:
        logging.disable(logging.INFO)
    set_logger(params)
    seed_everything(seed=params["seed"])
    feature_encoder = FeatureProcessor(**params)
    params["train_data"], params["valid_data"], params["test_data"] = \
        build_dataset(feature_encoder, **params)
    feature_map = FeatureMap(params["dataset_id"], data_dir)
    feature_map.load(os.path.join(data_dir, "feature_map.json"), params)
    model = (make_model(model_class, feature_map, params) if make_model
             else model_class(feature_map, **params))
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params["data_loader"] = LongCTRDataLoader
    train_gen, valid_gen = RankDataLoader(feature_map, stage="train", **params)

    # Timing: wrap the model's own per-epoch loop and its per-epoch validation.
    timing = {"train": [], "eval": 0.0, "valid_auc": [], "improved": []}
    train_epoch, eval_step = model.train_epoch, model.eval_step
    checkpoint_and_earlystop = model.checkpoint_and_earlystop

    def timed_train_epoch(data_generator):
        eval_before = timing["eval"]
        start = time.perf_counter()
        train_epoch(data_generator)
        elapsed = time.perf_counter() - start
        timing["train"].append(elapsed - (timing["eval"] - eval_before))

    def timed_eval_step():
        start = time.perf_counter()
        eval_step()
        timing["eval"] += time.perf_counter() - start

    def recording_checkpoint_and_earlystop(logs, *a, **kw):
        checkpoint_and_earlystop(logs, *a, **kw)
        timing["valid_auc"].append(float(logs["AUC"]))
        timing["improved"].append(model._stopping_steps == 0)

    model.train_epoch = timed_train_epoch
    model.eval_step = timed_eval_step
    model.checkpoint_and_earlystop = recording_checkpoint_and_earlystop

    log(f"training FuxiCTR {fuxictr_version} {model_spec.name} ({n_params} parameters) on "
        f"{train_gen.num_samples} samples, {args.threads} threads, "
        f"num_workers={args.fuxictr_workers}")
    model.fit(train_gen, validation_data=valid_gen, **params)
    epochs_run = len(timing["train"])
    train_seconds = sum(timing["train"])
    best_epoch = max((i + 1 for i, ok in enumerate(timing["improved"]) if ok), default=0)

    test_gen = RankDataLoader(feature_map, stage="test", **params)
    test = model.evaluate(test_gen)
    out = {
        "side": side.replace("FuxiCTR", f"FuxiCTR {fuxictr_version}", 1),
        "auc": float(test["AUC"]),
        "logloss": float(test["logloss"]),
        "epochs": epochs_run,
        "best_epoch": best_epoch,
        "early_stopped": bool(model._stop_training),
        "valid_auc": timing["valid_auc"],
        "train_seconds": train_seconds,
        "epoch_train_seconds": timing["train"],
        "train_samples": counts["train"],
        "valid_samples": counts["valid"],
        "test_samples": counts["test"],
        "train_samples_per_s": counts["train"] * epochs_run / train_seconds,
        "threads": torch.get_num_threads(),
        "parameters": n_params,
        "user_info_layout": layout,
    }
    if predictions:
        out["test_predictions"] = model.predict(test_gen)
    return out


# ---------------------------------------------------------------------------------------
# liber side

def run_liber_train(args, work_dir, backbone="din", config=None):
    """`liber train --backbones BACKBONE` (config: a --config JSON path) -> its numbers."""
    out = os.path.join(work_dir, "liber.json" if backbone == "din" else f"liber-{backbone}.json")
    cmd = ["train"] + data_options(args) + (["--config", config] if config else []) + [
        "--backbones", backbone, "--epochs", str(args.epochs), "--batch-size",
        str(args.batch_size), "--lr", repr(args.lr), "--embedding-dim", str(args.embedding_dim),
        "--patience", str(args.patience), "--seed", str(args.seed),
        "--threads", str(args.threads), "--no-progress", "--out", out]
    run_liber(args, cmd, args.quiet)
    with open(out) as f:
        records = [r for r in json.load(f) if r.get("backbone") == backbone]
    if not records:
        sys.exit(f"{out}: no {backbone} record")
    r = records[-1]
    return {
        "side": "liber",
        "auc": float(r["auc"]),
        "logloss": float(r["logloss"]),
        "epochs": int(r["epochs"]),
        "best_epoch": int(r.get("best_epoch", 0)),
        "early_stopped": int(r["epochs"]) < args.epochs,
        "train_seconds": float(r.get("train_seconds", float("nan"))),
        "train_samples": r.get("train_samples"),
        "valid_samples": r.get("valid_samples"),
        "test_samples": r.get("test_samples"),
        "train_samples_per_s": float(r["train_samples_per_s"]),
        "threads": r.get("threads"),
    }


# ---------------------------------------------------------------------------------------

def sides_table(args, model, fx, lb, note=None):
    """The report's head: title, shared settings (and a note), one row per side."""
    import torch
    lines = [f"## {model} peer benchmark: liber vs {fx['side']} -- {data_label(args)}", ""]
    lines.append(f"Samples train/valid/test: {fx['train_samples']}/{fx['valid_samples']}/"
                 f"{fx['test_samples']}; embedding {args.embedding_dim}, batch "
                 f"{args.batch_size}, lr {args.lr:g}, max epochs {args.epochs}, patience "
                 f"{args.patience}, history {args.history}, threads {args.threads}, "
                 f"torch {torch.__version__} (both sides).")
    if note:
        lines.append(f"Settings: {note}.")
    lines.append("")
    lines.append("| side | test AUC | test LogLoss | epochs run (best) | early stop | "
                 "train s | train samples/s |")
    lines.append("|---|---:|---:|---:|---|---:|---:|")
    for s in ([lb] if lb else []) + [fx]:
        lines.append(f"| {s['side']} | {s['auc']:.4f} | {s['logloss']:.4f} | "
                     f"{s['epochs']} ({s['best_epoch']}) | "
                     f"{'yes' if s['early_stopped'] else 'no'} | {s['train_seconds']:.1f} | "
                     f"{s['train_samples_per_s']:,.0f} |")
    return lines


def report(args, fx, lb):
    lines = sides_table(args, "DIN", fx, lb)
    goals = {}
    if lb:
        ratio = lb["train_samples_per_s"] / fx["train_samples_per_s"]
        delta = lb["auc"] - fx["auc"]
        goals = {
            "auc": {"liber_minus_fuxictr": delta, "tolerance": AUC_TOLERANCE,
                    "pass": delta >= -AUC_TOLERANCE},
            "throughput": {"ratio_liber_over_fuxictr": ratio, "goal": SPEEDUP_GOAL,
                           "pass": ratio >= SPEEDUP_GOAL},
        }
        lines.append("")
        lines.append(f"Throughput ratio liber/FuxiCTR: {ratio:.2f}x")
        lines.append("")
        lines.append(f"- AUC goal (liber >= FuxiCTR - {AUC_TOLERANCE}): liber - FuxiCTR = "
                     f"{delta:+.4f} -> {'PASS' if goals['auc']['pass'] else 'MISS'}")
        lines.append(f"- Throughput goal (liber >= {SPEEDUP_GOAL}x FuxiCTR): {ratio:.2f}x -> "
                     f"{'PASS' if goals['throughput']['pass'] else 'MISS'}")
        mismatch = [k for k in ("train_samples", "valid_samples", "test_samples")
                    if lb.get(k) is not None and lb[k] != fx[k]]
        if mismatch:
            lines.append(f"- WARNING: sample counts differ between the sides: {mismatch}")
    else:
        lines.append("")
        lines.append("(liber not run: goals not checked)")
    lines.append("")
    lines.append(f"FuxiCTR per epoch: validation AUC "
                 f"{', '.join(f'{a:.4f}' for a in fx['valid_auc'])}; training seconds "
                 f"{', '.join(f'{t:.1f}' for t in fx['epoch_train_seconds'])}")
    print("\n".join(lines), flush=True)
    return goals


def main():
    args = parse_args()
    # Thread pools are sized before torch (and its OpenMP/OpenBLAS) is loaded.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if not args.skip_liber and not os.access(args.liber, os.X_OK):
        sys.exit(f"liber CLI not found at {args.liber} (build it: scripts/setup.sh), "
                 "or pass --skip-liber")
    if args.skip_liber and not args.csv_dir:
        sys.exit("--skip-liber needs --csv-dir (the export is done by liber)")

    temporary = args.work_dir is None
    work_dir = tempfile.mkdtemp(prefix="liber-fuxictr-din-") if temporary else args.work_dir
    os.makedirs(work_dir, exist_ok=True)
    try:
        csv_dir = args.csv_dir
        if not csv_dir:
            csv_dir = os.path.join(work_dir, "export")
            run_liber(args, ["export"] + data_options(args) + ["--out", csv_dir], args.quiet)
        fx = run_fuxictr(args, csv_dir, work_dir)
        lb = None if args.skip_liber else run_liber_train(args, work_dir)
        goals = report(args, fx, lb)
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump({"data": data_label(args), "settings": vars(args), "fuxictr": fx,
                           "liber": lb, "goals": goals}, f, indent=2)
        if args.strict and goals and not all(g["pass"] for g in goals.values()):
            return 1
        return 0
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
