#!/usr/bin/env python3
"""LIBER vectors in a real Python framework: FuxiCTR 2.3.10's DIN trained with and without
them through the `liber` package, beside liber's own DIN with and without them, on the same
samples of one store.

A benchmark, not a test: it prints the test AUCs, the lift of the vectors over the
backbone alone and over the two controls with a paired bootstrap interval, and what the
join costs.

  1. `liber export --store S` writes the samples of the store's dataset (the ones `liber
     train --store S` trains on) with each sample's join keys (user, timestamp).
  2. FuxiCTR's DIN, its own pipeline (bench/fuxictr_din.py: FeatureProcessor, LongCTR
     DataLoader, BaseModel.fit, evaluate), without LIBER.
  3. The same with LIBER: a DIN subclass whose forward asks the package for each batch's
     visible partition rows (liber.join on the batch's users and timestamps: the trainer's
     leakage rule, no hand-written join) and feeds them to liber.fuse.FuseLayer (the C++
     layer's architecture, its query the target item's embedding), whose output, projected
     to the embedding width, joins the DNN input as one more field, as in liber's
     backbones. Everything else is FuxiCTR's.
     Twice more with the controls, which keep the partitions and their times but not the
     knowledge (store.interest_table(K, control=...)): "shuffled" (each user's vectors from
     another user) and "random" (standard-normal vectors). A lift that comes from the
     knowledge beats both.
  4. `liber train --store S --backbones din`, without and with `--knowledge K`.

Each of these runs once per seed (--seeds). The intervals: 95% paired bootstrap over the
test samples (1,000 resamples, the same resample for both models of a pair, the AUC
difference averaged over the seeds), on FuxiCTR's test predictions; liber's side prints its
AUCs (`liber experiment` is where liber's own lifts get their controls and intervals).

The fuse settings are liber's defaults on both sides (16 slots, hidden 16, output 32, PCA to
64). The join time is the wall time of liber.join inside the training epochs (per epoch)
and inside validation/test, measured around the call.

Run it with the bench venv's python with the package installed (bench/run_din_liber.sh does
both). The store must hold the knowledge's vectors (scripts/ml1m_store.sh makes an ML-1M one
with content vectors). ML-1M here means users 1-2999 only (the developers' partial copy).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fuxictr_din as peer  # noqa: E402  (the FuxiCTR pipeline, shared)

DATA_LABEL = "ML-1M (users 1-2999 only)"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="a store made by liber ingest + encode")
    p.add_argument("--knowledge", default="content",
                   help="the vectors: content, a variant name, or VARIANT+content (default: content)")
    p.add_argument("--liber", default=os.path.join(peer.REPO, "build", "liber"), help="liber CLI")
    p.add_argument("--data-label", default=DATA_LABEL, help="what the store holds, for the report")
    p.add_argument("--history", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--seeds", type=int, default=1, help="seeds 42, 43, ... (default 1)")
    p.add_argument("--slots", type=int, default=16, help="fuse layer slots (liber's default)")
    p.add_argument("--fuxictr-workers", type=int, default=0)
    p.add_argument("--work-dir", help="keep the export and checkpoints here")
    p.add_argument("--json-out", help="also write the results as JSON here")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args()


def log(msg):
    print(f"[fuxictr_din_liber] {msg}", file=sys.stderr, flush=True)


def liber_din(table, users, stamps, slots, timing):
    """make_model for peer.run_fuxictr: FuxiCTR's DIN with the fuse layer's output in its DNN input."""
    import torch
    import liber
    from liber.fuse import FuseLayer
    from fuxictr.pytorch.layers import MLP_Block

    def make(DIN, feature_map, params):
        class DINWithLiber(DIN):
            def __init__(self, feature_map, **kw):
                super().__init__(feature_map, **kw)  # builds, initialises, compiles
                self.fuse = FuseLayer(table, self.item_info_dim, slots=slots)
                # As in liber's backbones, the fuse output becomes one more field: projected
                # to the embedding width (liber's init: xavier-normal, zero bias).
                self.side_projection = torch.nn.Linear(self.fuse.fused_dim, kw["embedding_dim"])
                torch.nn.init.xavier_normal_(self.side_projection.weight)
                torch.nn.init.zeros_(self.side_projection.bias)
                # The DNN again, one field wider, initialised as FuxiCTR initialises Linear
                # layers (BaseModel.reset_parameters).
                width = feature_map.sum_emb_out_dim() + self.item_info_dim + kw["embedding_dim"]
                self.dnn = MLP_Block(input_dim=width,
                                     output_dim=1, hidden_units=kw["dnn_hidden_units"],
                                     hidden_activations=kw["dnn_activations"],
                                     output_activation=self.output_activation,
                                     dropout_rates=kw["net_dropout"], batch_norm=kw["batch_norm"])
                for m in self.dnn.modules():
                    if isinstance(m, torch.nn.Linear):
                        torch.nn.init.xavier_normal_(m.weight)
                        torch.nn.init.zeros_(m.bias)
                self.compile(kw["optimizer"], kw["loss"], kw["learning_rate"])  # the optimizer sees all
                self.model_to_device()

            def forward(self, inputs):
                index = inputs[0]["sample_index"].numpy()
                start = time.perf_counter()
                rows = liber.join(table, users[index], stamps[index], slots)  # the package's join
                timing["train" if self.training else "eval"] += time.perf_counter() - start
                batch_dict, item_dict, mask = self.get_inputs(inputs)
                emb_list = [self.embedding_layer(batch_dict, flatten_emb=True)] if batch_dict else []
                item_feat_emb = self.embedding_layer(item_dict, flatten_emb=True)
                item_feat_emb = item_feat_emb.view(mask.shape[0], -1, self.item_info_dim)
                target_emb = item_feat_emb[:, -1, :]
                pooling_emb = self.attention_layers(target_emb, item_feat_emb[:, 0:-1, :], mask)
                side = self.side_projection(self.fuse(torch.from_numpy(rows), target_emb))
                emb_list += [target_emb, pooling_emb, side]
                return {"y_pred": self.dnn(torch.cat(emb_list, dim=-1))}

        model = DINWithLiber(feature_map, **params)
        visible = liber.join(table, users, stamps, slots) >= 0
        timing["samples_with_partitions"] = float(visible.any(1).mean())
        timing["mean_visible_slots"] = float(visible.sum(1).mean())
        return model

    return make


def run_liber_train(args, work_dir, knowledge):
    name = f"{knowledge or 'base'}-{args.seed}"
    out = os.path.join(work_dir, f"liber-{name}.json")
    cmd = ["train", "--store", args.store, "--save-model", os.path.join(work_dir, f"model-{name}"),
           "--history", str(args.history), "--backbones", "din", "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--lr", repr(args.lr), "--embedding-dim",
           str(args.embedding_dim), "--patience", str(args.patience), "--seed", str(args.seed),
           "--threads", str(args.threads), "--no-progress", "--out", out]
    if knowledge:
        cmd += ["--knowledge", knowledge]
    peer.run_liber(args, cmd, args.quiet)
    with open(out) as f:
        r = [r for r in json.load(f) if r.get("backbone") == "din"][-1]
    return {"side": f"liber DIN{' + LIBER (' + knowledge + ')' if knowledge else ''}", "seed": args.seed,
            "auc": float(r["auc"]), "logloss": float(r["logloss"]), "epochs": int(r["epochs"]),
            "train_seconds": float(r.get("train_seconds", float("nan"))),
            "train_samples": r.get("train_samples"), "test_samples": r.get("test_samples")}


def auc(labels, scores):
    """ROC AUC by ranks (ties averaged): the Mann-Whitney statistic."""
    from scipy.stats import rankdata
    ranks = rankdata(scores)
    pos = labels == 1
    n_pos = pos.sum()
    n_neg = len(labels) - n_pos
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def paired_interval(labels, a, b, resamples=1000, seed=7):
    """Mean over seeds of AUC(a) - AUC(b), and its 95% paired bootstrap interval: a, b are
    lists (one per seed) of test predictions; every resample draws the same samples for all."""
    import numpy as np
    rng = np.random.default_rng(seed)
    n = len(labels)
    point = float(np.mean([auc(labels, x) - auc(labels, y) for x, y in zip(a, b)]))
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        diffs.append(np.mean([auc(labels[idx], x[idx]) - auc(labels[idx], y[idx]) for x, y in zip(a, b)]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return point, float(low), float(high)


def report(args, runs, labels, join):
    import numpy as np
    fx = runs["fuxictr"][0]
    lines = [f"## DIN with and without LIBER vectors ({args.knowledge}): FuxiCTR through the "
             f"liber package, and liber -- {args.data_label}", ""]
    lines.append(f"Store {args.store}; samples train/valid/test {fx['train_samples']}/"
                 f"{fx['valid_samples']}/{fx['test_samples']}; embedding {args.embedding_dim}, "
                 f"batch {args.batch_size}, lr {args.lr:g}, max epochs {args.epochs} (patience "
                 f"{args.patience}), history {args.history}, fuse slots {args.slots}, threads "
                 f"{args.threads}, seeds {', '.join(str(42 + k) for k in range(args.seeds))}.")
    lines += ["", "| model | test AUC (mean ± sd over seeds) | test LogLoss | epochs | train s per run |",
              "|---|---:|---:|---:|---:|"]
    summary = {}
    for key, results in runs.items():
        aucs = np.array([r["auc"] for r in results])
        summary[key] = {"side": results[0]["side"], "aucs": aucs.tolist()}
        sd = f" ± {aucs.std(ddof=1):.4f}" if len(aucs) > 1 else ""
        lines.append(f"| {results[0]['side']} | {aucs.mean():.4f}{sd} | "
                     f"{np.mean([r['logloss'] for r in results]):.4f} | "
                     f"{'/'.join(str(r['epochs']) for r in results)} | "
                     f"{np.mean([r['train_seconds'] for r in results]):.1f} |")
    preds = {k: [r["test_predictions"] for r in v] for k, v in runs.items() if "test_predictions" in v[0]}
    lines += ["", "FuxiCTR's DIN + LIBER against (AUC difference, mean over seeds, 95% paired bootstrap interval):"]
    lifts = {}
    for other, name in (("fuxictr", "DIN alone"), ("shuffled", "shuffled control"), ("random", "random control")):
        point, low, high = paired_interval(labels, preds["fuxictr_liber"], preds[other])
        lifts[other] = {"difference": point, "low": low, "high": high}
        verdict = "above" if low > 0 else "below" if high < 0 else "not distinguishable from"
        lines.append(f"- {name}: {point:+.4f} [{low:+.4f}, {high:+.4f}] ({verdict} it)")
    real = all(l["low"] > 0 for l in lifts.values())
    lines.append(f"- the lift {'comes from the knowledge: it beats both controls' if real else 'is not shown to come from the knowledge'}.")
    base = np.mean(summary["liber_base"]["aucs"])
    lines.append(f"liber's DIN: + LIBER {np.mean(summary['liber_liber']['aucs']) - base:+.4f} AUC over the "
                 f"backbone alone (mean over seeds; no controls here).")
    runs_liber = runs["fuxictr_liber"]
    epochs = sum(r["epochs"] for r in runs_liber)
    per_epoch = join["train"] / max(1, epochs)
    epoch_s = sum(r["train_seconds"] for r in runs_liber) / max(1, epochs)
    lines.append(f"liber.join inside FuxiCTR training: {per_epoch:.2f} s per epoch of "
                 f"{fx['train_samples']} samples ({100 * per_epoch / epoch_s:.1f}% of the epoch's "
                 f"{epoch_s:.1f} s); {join['eval']:.2f} s in all validation and test passes. "
                 f"Samples with a visible partition: {100 * join['samples_with_partitions']:.1f}%, "
                 f"{join['mean_visible_slots']:.1f} slots on average.")
    print("\n".join(lines), flush=True)
    return summary, lifts


def main():
    args = parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import liber
    temporary = args.work_dir is None
    work_dir = tempfile.mkdtemp(prefix="liber-din-liber-") if temporary else args.work_dir
    os.makedirs(work_dir, exist_ok=True)
    try:
        csv_dir = os.path.join(work_dir, "export")
        peer.run_liber(args, ["export", "--store", args.store, "--history", str(args.history),
                              "--out", csv_dir], args.quiet)
        users, stamps = peer.join_keys(csv_dir)
        labels = peer.read_splits(csv_dir)[0]["test"]["label"]
        store = liber.open_store(args.store)
        tables = {"fuxictr_liber": store.interest_table(args.knowledge),
                  "shuffled": store.interest_table(args.knowledge, control="shuffled", seed=1),
                  "random": store.interest_table(args.knowledge, control="random", seed=1)}
        log(f"interest table '{args.knowledge}': {len(tables['fuxictr_liber'])} partitions x "
            f"{tables['fuxictr_liber'].width} floats")
        names = {"fuxictr_liber": f"FuxiCTR DIN + LIBER ({args.knowledge}) via liber.join",
                 "shuffled": "FuxiCTR DIN + shuffled control", "random": "FuxiCTR DIN + random control"}
        runs = {k: [] for k in ("fuxictr", "fuxictr_liber", "shuffled", "random", "liber_base", "liber_liber")}
        join = {"train": 0.0, "eval": 0.0}
        for k in range(args.seeds):
            args.seed = 42 + k
            log(f"seed {args.seed}")
            runs["fuxictr"].append(peer.run_fuxictr(args, csv_dir, work_dir, side="FuxiCTR DIN", predictions=True))
            for key, table in tables.items():
                timing = join if key == "fuxictr_liber" else {"train": 0.0, "eval": 0.0}
                runs[key].append(peer.run_fuxictr(args, csv_dir, work_dir, side=names[key], predictions=True,
                                                  make_model=liber_din(table, users, stamps, args.slots, timing)))
            runs["liber_base"].append(run_liber_train(args, work_dir, None))
            runs["liber_liber"].append(run_liber_train(args, work_dir, args.knowledge))
        summary, lifts = report(args, runs, labels, join)
        if args.json_out:
            for results in runs.values():
                for r in results:
                    r.pop("test_predictions", None)
            with open(args.json_out, "w") as f:
                json.dump({"data": args.data_label, "settings": vars(args), "runs": runs, "summary": summary,
                           "lifts": lifts, "join_seconds": join}, f, indent=2)
        return 0
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
