#!/usr/bin/env python3
"""Peer benchmark: liber's DIEN and xDeepFM against FuxiCTR 2.3.10's on the very same samples.

A benchmark, not a test: for each model it prints both sides' test AUC / LogLoss and
training throughput (samples/s and the ratio liber/FuxiCTR) and checks one goal
(PASS/MISS), exiting 0 either way unless --strict is given:
  * accuracy: liber's test AUC is within 0.003 of FuxiCTR's (|liber - FuxiCTR| <= 0.003).

It runs the DIN peer benchmark's pipeline (bench/fuxictr_din.py, imported; see its header
for the data layout, the timing and the settings both sides share) with another model:
  1. `liber export` writes the train/valid/test CSV once (both models train on them);
  2. FuxiCTR trains the model with its own pipeline (FeatureProcessor + build_dataset ->
     FeatureMap -> model -> RankDataLoader(LongCTRDataLoader) -> BaseModel.fit, its train
     loop, early stopping and checkpointing -> model.evaluate on the test split);
  3. `liber train --backbones dien|xdeepfm --config C` with the same data options and
     hyper-parameters (C, written to the work directory, sets the MLP [200, 80], dropout 0,
     DIEN's auxiliary_loss_weight 0 and xDeepFM's cin_layers [16, 16, 16]).
Settings both sides: embedding dim D for every field, MLP [200, 80] ReLU -> 1 logit, no
dropout, no batch norm, Adam (lr, batch size B, max epochs E, patience 2 on validation
AUC, then the best epoch's weights on test), BCE loss, no regularizer, embeddings N(0, 1e-4),
Linear layers xavier-normal with zero bias, Debian's torch 1.13, T threads.

DIEN. FuxiCTR side: the wheel's model_zoo/LongCTR/DIEN (DIEN.py) as it is, with gru_type
AUGRU, attention_type bilinear_attention, use_attention_softmax True, enable_sum_pooling
False, batch_norm False, dnn_hidden_units [200, 80], dnn_activations ReLU, net_dropout 0.
The model: the history's item embeddings -> interest-extractor GRU (oldest first) -> the
target item attends over its states (s^T W t, W initialised to the identity, softmax over the
present items) -> AUGRU (update gate scaled by the attention) -> its final state; the DNN
takes every non-history field (user fields, item_year, item_genres mean-pooled, the target
item) and that state. Differences that remain:
  * Auxiliary loss: liber's DIEN has the paper's auxiliary loss (each extractor state tells
    the next history item from another sample's), FuxiCTR's LongCTR DIEN has none (its
    template's aux_* keys are read by nothing). liber runs with auxiliary_loss_weight 0
    here, so neither side has it (the report says so).
  * Extractor GRU parametrisation and init: FuxiCTR uses torch's nn.GRU, h' = (1 - z) n + z h
    (z keeps the old state) with torch's default init, U(-1/sqrt(D), 1/sqrt(D)) on all weights
    and both bias vectors (BaseModel.reset_parameters only re-initialises nn.Linear and
    nn.Conv1d); liber's InterestGru is h' = h + u (n - h) with u = 1 - z (the same function
    class, the update gate's pre-activation negated), xavier-normal weights and zero biases.
    The AUGRU cells are the same on both sides (x->3D and h->3D Linear layers, xavier-normal,
    zero bias; u scaled by the attention; reset gate applied to the hidden projection with
    its bias).
  * Packed sequences vs masked steps: FuxiCTR packs each batch's histories
    (pack_padded_sequence) and runs both GRUs over the present items only, after dropping the
    rows without history (their interest is zeros); liber runs all N steps for every row, a
    padded step leaving the state as it is (update gate times 0). The same function; the
    cost differs (FuxiCTR's AUGRU is a Python loop over the packed time steps, its extractor
    torch's fused GRU kernel).
  * Padding: LongCTRDataLoader's default padding is "pre" (and the LongCTR DIEN template does
    not set it), but pack_padded_sequence reads the first seq_len positions, so with "pre"
    FuxiCTR's DIEN would run its GRUs over padding and drop the newest items of any history
    shorter than the batch's longest. This benchmark sets padding "post"; since
    LongCTRDataLoader truncates on the same side (keeping a sequence's oldest items), its
    user_info holds one row per sample with exactly the exported history (oldest first), so
    nothing is ever truncated.
  * Attention over the extractor states: the same bilinear form (FuxiCTR: (s W) t, liber:
    s . (W t)), the same -1e9 masking of padding before the softmax.
xDeepFM. FuxiCTR 2.3.10's wheel has no xDeepFM (model_zoo/xDeepFM is not in it, and it has no
LongCTR variant), so the FuxiCTR side is a composition of the wheel's own layers done the
way model_zoo/xDeepFM/src/xDeepFM.py (reczoo/FuxiCTR on GitHub) composes them -- a
FeatureEmbedding, LogisticRegression(use_bias=False), CompressedInteractionNet(fields,
[16, 16, 16], output_dim=1) and MLP_Block([200, 80], output 1); logit = LR + CIN + DNN ->
sigmoid -- inside FuxiCTR's BaseModel (its fit loop, gradient clipping, early stopping and
evaluation), reading LongCTR batches with LongCTR DIN's get_inputs / get_labels. Its fields
are liber's: every batch feature (user fields, item_year, item_genres mean-pooled by
FuxiCTR's MaskedAveragePooling encoder), the target item_id, and the history's item_id
embeddings mean-pooled over the present items (MaskedAveragePooling with the padding mask):
9 fields, the CIN over all of them, the DNN over their concatenation. Differences that remain:
  * First-order term of the sequence fields: liber's FirstOrder has a 1-d weight per value of
    every field (all 9: the 7 sparse ones incl. the target item, item_genres and the
    history), a sequence field's weights mean-pooled over its present ids; FuxiCTR's
    LogisticRegression sum-pools a sequence feature's weights (MaskedSumPooling), and this
    benchmark applies the same rule to the history's weights (sum over the present items).
    So the genres' and the history's linear terms differ by their item count.
  * Biases: xDeepFM.py builds its LR without bias (the CIN's fc and the DNN's output layer
    carry one each); liber has three (first-order, CIN output, MLP output). Same function;
    under Adam the sum of three biases moves faster than that of two.
  * CIN channel order: FuxiCTR's Hadamard products are ordered (field of X_0, map of X_k-1),
    liber's (map of X_k-1, field): a permutation of the kernel-1 Conv1d / Linear weight
    columns, with the same init (xavier-normal over the same fan-in and fan-out, zero bias).
Both models, as in the DIN benchmark (bench/fuxictr_din.py's header has the details):
  * Gradient clipping: FuxiCTR's train steps (DIEN.train_step, BaseModel.train_step) always
    clip the gradient norm at max_gradient_norm 10; liber does not clip.
  * Embedding row 0: FuxiCTR's tables have padding_idx=0 (row 0 fixed at zero, in the 1-d LR
    tables too); liber masks padding in the sequence fields the same way but keeps row 0 of
    a single-valued field trainable.
  * Table sizes (FuxiCTR: largest exported id + 1; liber: the full catalogs), the loss form
    (sigmoid + BCE vs BCE-with-logits), early stopping (FuxiCTR needs > 1e-6 better
    validation AUC; reduce_lr_on_plateau off), history order (FuxiCTR oldest first, liber
    most recent first) and each side's own RNG streams (same seed value).

Throughput: training samples x epochs run / training-loop seconds without validation, as
in the DIN benchmark (FuxiCTR's includes its in-process batch assembly by LongCTRDataLoader).

Data: ML-1M (users 1-2999 only) -- ../shared/data/ml-1m-partial holds ML-1M's movies
and users with the ratings of users 1-2999 only; every printed result carries that label.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fuxictr_din as peer  # noqa: E402  (the FuxiCTR pipeline, shared)

peer.LOG_NAME = "fuxictr_peer"
AUC_TOLERANCE = 0.003
MLP = [200, 80]
CIN_LAYERS = [16, 16, 16]


# ---------------------------------------------------------------------------------------
# FuxiCTR side

def _load_dien():
    from model_zoo.LongCTR.DIEN import DIEN
    return DIEN


def _dien_params(args):
    return {
        "dnn_hidden_units": MLP,
        "dnn_activations": "ReLU",
        "net_dropout": 0,
        "batch_norm": False,
        "gru_type": "AUGRU",
        "enable_sum_pooling": False,
        "attention_type": "bilinear_attention",
        "use_attention_softmax": True,
        "attention_dropout": 0,
        "accumulation_steps": 1,
    }


def _load_xdeepfm():
    """xDeepFM on LongCTR batches: the composition of model_zoo/xDeepFM/src/xDeepFM.py
    (reczoo/FuxiCTR; not in the 2.3.10 wheel) of the wheel's layers, whose fields are the
    batch features, the target item and the history mean-pooled over its present items."""
    import torch
    from fuxictr.pytorch.layers import (CompressedInteractionNet, FeatureEmbedding,
                                        LogisticRegression, MaskedAveragePooling, MLP_Block)
    from fuxictr.pytorch.models import BaseModel
    from model_zoo.LongCTR.DIN import DIN

    class xDeepFM(BaseModel):
        # A LongCTR batch is (batch_dict, item_dict, mask): LongCTR DIN's accessors read it.
        get_inputs = DIN.get_inputs
        get_labels = DIN.get_labels
        get_group_id = DIN.get_group_id

        def __init__(self, feature_map, model_id="xDeepFM", gpu=-1, learning_rate=1e-3,
                     embedding_dim=10, dnn_hidden_units=[64, 64, 64], dnn_activations="ReLU",
                     cin_hidden_units=[16, 16, 16], net_dropout=0, batch_norm=False,
                     embedding_regularizer=None, net_regularizer=None, **kwargs):
            super().__init__(feature_map, model_id=model_id, gpu=gpu,
                             embedding_regularizer=embedding_regularizer,
                             net_regularizer=net_regularizer, **kwargs)
            self.feature_map = feature_map
            # The item features (here item_id) make two fields: the target and the history.
            self.item_fields = sum(1 for spec in feature_map.features.values()
                                   if spec.get("source") == "item")
            self.item_info_dim = self.item_fields * embedding_dim
            num_fields = feature_map.num_fields + self.item_fields
            self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
            self.history_pooling = MaskedAveragePooling()
            self.dnn = MLP_Block(input_dim=feature_map.sum_emb_out_dim() + self.item_info_dim,
                                 output_dim=1,
                                 hidden_units=dnn_hidden_units,
                                 hidden_activations=dnn_activations,
                                 output_activation=None,
                                 dropout_rates=net_dropout,
                                 batch_norm=batch_norm) if dnn_hidden_units else None
            self.lr_layer = LogisticRegression(feature_map, use_bias=False)
            self.cin = CompressedInteractionNet(num_fields, cin_hidden_units, output_dim=1)
            self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            batch_dict, item_dict, mask = self.get_inputs(inputs)
            b, n = mask.shape
            # Item features of the history and the target: [B, N + 1, item fields, D].
            item_emb = self.embedding_layer(item_dict).view(b, n + 1, self.item_fields, -1)
            history = self.history_pooling((item_emb[:, :-1] * mask[:, :, None, None]).flatten(2),
                                           mask)
            fields = [item_emb[:, -1], history.view(b, self.item_fields, -1)]
            if batch_dict:
                fields.insert(0, self.embedding_layer(batch_dict))
            feature_emb = torch.cat(fields, dim=1)  # [B, fields, D]
            # First-order term, LogisticRegression's rule for a sequence: its weights summed.
            item_w = self.lr_layer.embedding_layer(item_dict).view(b, n + 1, self.item_fields)
            y_pred = item_w[:, -1].sum(-1, keepdim=True) + \
                (item_w[:, :-1] * mask.unsqueeze(-1)).sum(dim=(1, 2)).unsqueeze(-1)
            if batch_dict:
                y_pred = y_pred + self.lr_layer(batch_dict)
            y_pred = y_pred + self.cin(feature_emb)
            if self.dnn is not None:
                y_pred = y_pred + self.dnn(feature_emb.flatten(start_dim=1))
            return {"y_pred": self.output_activation(y_pred)}

    return xDeepFM


def _xdeepfm_params(args):
    return {
        "dnn_hidden_units": MLP,
        "dnn_activations": "ReLU",
        "cin_hidden_units": CIN_LAYERS,
        "net_dropout": 0,
        "batch_norm": False,
    }


MODELS = {
    # name: (FuxiCTR model, liber backbone, note on liber's settings)
    "dien": (peer.PeerModel("DIEN", _load_dien, _dien_params, padding="post",
                            per_sample_history=True),
             "liber: auxiliary_loss_weight 0 (FuxiCTR's LongCTR DIEN has no auxiliary loss); "
             "FuxiCTR: LongCTR DIEN, AUGRU, bilinear attention with softmax, padding \"post\""),
    "xdeepfm": (peer.PeerModel("xDeepFM", _load_xdeepfm, _xdeepfm_params),
                "FuxiCTR: xDeepFM.py's composition of the wheel's layers on LongCTR inputs "
                f"(LR without bias + CIN {CIN_LAYERS} + DNN), history mean-pooled as one field"),
}


# ---------------------------------------------------------------------------------------
# liber side

def write_liber_config(args, work_dir):
    config = {
        "_comment": "bench/fuxictr_peer.py: the FuxiCTR peers' settings (flags set the rest)",
        "model": {"embedding_dim": args.embedding_dim, "mlp": MLP, "dropout": 0.0},
        "backbones": {"dien": {"auxiliary_loss_weight": 0.0},
                      "xdeepfm": {"cin_layers": CIN_LAYERS}},
    }
    path = os.path.join(work_dir, "liber_peer_config.json")
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return path, config


# ---------------------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    peer.add_common_args(p)
    p.add_argument("--model", choices=["dien", "xdeepfm", "both"], default="both",
                   help="which backbone to compare (default: both, DIEN first)")
    return peer.check_common_args(p, p.parse_args())


def report(args, name, fx, lb, note):
    lines = peer.sides_table(args, fx["model"], fx, lb, note)
    goals = {}
    if lb:
        ratio = lb["train_samples_per_s"] / fx["train_samples_per_s"]
        delta = lb["auc"] - fx["auc"]
        goals = {"auc": {"liber_minus_fuxictr": delta, "tolerance": AUC_TOLERANCE,
                         "pass": abs(delta) <= AUC_TOLERANCE},
                 "throughput": {"ratio_liber_over_fuxictr": ratio}}
        lines.append("")
        lines.append(f"Throughput ratio liber/FuxiCTR: {ratio:.2f}x")
        lines.append("")
        lines.append(f"- AUC goal (|liber - FuxiCTR| <= {AUC_TOLERANCE}): liber - FuxiCTR = "
                     f"{delta:+.4f} -> {'PASS' if goals['auc']['pass'] else 'MISS'}")
        mismatch = [k for k in ("train_samples", "valid_samples", "test_samples")
                    if lb.get(k) is not None and lb[k] != fx[k]]
        if mismatch:
            lines.append(f"- WARNING: sample counts differ between the sides: {mismatch}")
    else:
        lines.append("")
        lines.append("(liber not run: goal not checked)")
    lines.append("")
    lines.append(f"FuxiCTR per epoch: validation AUC "
                 f"{', '.join(f'{a:.4f}' for a in fx['valid_auc'])}; training seconds "
                 f"{', '.join(f'{t:.1f}' for t in fx['epoch_train_seconds'])}")
    print("\n".join(lines) + "\n", flush=True)
    return goals


def summary(args, results):
    lines = [f"## Summary -- {peer.data_label(args)}", "",
             "| model | liber AUC | FuxiCTR AUC | liber - FuxiCTR | AUC goal | "
             "liber samples/s | FuxiCTR samples/s | ratio |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    for name, r in results.items():
        fx, lb = r["fuxictr"], r["liber"]
        if not lb:
            continue
        d = r["goals"]["auc"]["liber_minus_fuxictr"]
        lines.append(f"| {fx['model']} | {lb['auc']:.4f} | {fx['auc']:.4f} | {d:+.4f} | "
                     f"{'PASS' if r['goals']['auc']['pass'] else 'MISS'} | "
                     f"{lb['train_samples_per_s']:,.0f} | {fx['train_samples_per_s']:,.0f} | "
                     f"{r['goals']['throughput']['ratio_liber_over_fuxictr']:.2f}x |")
    print("\n".join(lines), flush=True)


def main():
    args = parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if not args.skip_liber and not os.access(args.liber, os.X_OK):
        sys.exit(f"liber CLI not found at {args.liber} (build it: scripts/setup.sh), "
                 "or pass --skip-liber")
    if args.skip_liber and not args.csv_dir:
        sys.exit("--skip-liber needs --csv-dir (the export is done by liber)")
    names = ["dien", "xdeepfm"] if args.model == "both" else [args.model]

    temporary = args.work_dir is None
    work_dir = tempfile.mkdtemp(prefix="liber-fuxictr-peer-") if temporary else args.work_dir
    os.makedirs(work_dir, exist_ok=True)
    try:
        csv_dir = args.csv_dir
        if not csv_dir:
            csv_dir = os.path.join(work_dir, "export")
            peer.run_liber(args, ["export"] + peer.data_options(args) + ["--out", csv_dir],
                           args.quiet)
        config_path, config = write_liber_config(args, work_dir)
        results = {}
        for name in names:
            model, note = MODELS[name]
            fx = peer.run_fuxictr(args, csv_dir, work_dir, model=model)
            fx["model"] = model.name
            lb = None if args.skip_liber else peer.run_liber_train(args, work_dir, name,
                                                                   config_path)
            goals = report(args, name, fx, lb, note)
            results[name] = {"fuxictr": fx, "liber": lb, "goals": goals, "settings": note}
            if args.json_out:  # after every model, so a long run leaves what it finished
                with open(args.json_out, "w") as f:
                    json.dump({"data": peer.data_label(args), "settings": vars(args),
                               "liber_config": config, "models": results}, f, indent=2)
        if len(results) > 1 and not args.skip_liber:
            summary(args, results)
        if args.strict and any(r["goals"] and not r["goals"]["auc"]["pass"]
                               for r in results.values()):
            return 1
        return 0
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
