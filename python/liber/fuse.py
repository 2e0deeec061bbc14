"""UIF's attention fuse layer as a PyTorch module: the architecture of liber's C++ layer
(src/include/liber/uif/fuse_layer.h), so a Python CTR model consumes the partition vectors
the way liber's backbones do. Its state_dict has the C++ layer's names, and a test checks
that both give the same output on the same weights and inputs.

    rows [B, slots] (from liber.join, -1 = empty) -> frozen table rows, PCA-reduced [B, slots, r]
    -> ReLU(Linear(r, hidden)) + slot (recency) embedding
    attention: self-attention across the visible partitions (residual), then target attention
               whose query is Linear(query), e.g. the target item's embedding
    mean:      masked mean over the visible partitions (the ablation)
    -> Linear(hidden, fused_dim); a sample with no visible partition gets a learned vector.

>>> import liber, liber.fuse
>>> table = liber.open_store("liber-state").interest_table("content")
>>> fuse = liber.fuse.FuseLayer(table, query_dim=16)       # 16: the item embedding's width
>>> rows = torch.from_numpy(liber.join(table, users, timestamps, slots=fuse.slots))
>>> side = fuse(rows, item_embedding)                       # [B, 32], into the backbone's MLP

Only the item query is here (FuseConfig::query "item", the default); the text query and the
similarity inputs need the item text table and are not in the package yet.
"""
from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
from torch import nn

__all__ = ["FuseLayer", "fit_reduction", "reduced_width"]


def reduced_width(rows: int, width: int, k: int) -> int:
    """The width the PCA reduction gives `rows` vectors of `width` for k (PCA needs k < rows)."""
    if k <= 0 or k >= width:
        return width
    return min(k, max(rows - 1, 1))


def fit_reduction(vectors: torch.Tensor, k: int):
    """PCA of the rows, centred and whitened by each component's standard deviation, in double:
    (mean [1, w], directions [w, r], scales [r]); no directions (r = 0) when k <= 0 or k >= w.
    Eigenvector signs are fixed (largest |component| positive), as in the C++ layer."""
    x = vectors.to(torch.float64)
    n, w = x.shape
    mean = x.mean(0, keepdim=True)
    if k <= 0 or k >= w:
        return mean, torch.zeros(w, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
    k = reduced_width(n, w, k)
    centred = x - mean
    cov = centred.t().mm(centred) / float(max(n - 1, 1))
    values, directions = torch.linalg.eigh(cov, UPLO="L")  # ascending
    top = directions[:, w - k:].flip(1)
    idx = top.abs().argmax(0)
    sign = top.gather(0, idx.unsqueeze(0)).sign().clamp_min(0) * 2 - 1
    variances = values[w - k:].flip(0)
    return mean, top * sign, variances.clamp_min(1e-12).sqrt()


def _apply_reduction(vectors: torch.Tensor, mean, top, scale) -> torch.Tensor:
    if top.shape[1] == 0:
        return vectors.to(torch.float32).contiguous().clone()
    return ((vectors.to(torch.float64) - mean).mm(top) / scale).to(torch.float32).contiguous()


def _init_linear(layer: nn.Linear) -> None:
    # liber's init for every Linear: xavier-normal weight, zero bias.
    nn.init.xavier_normal_(layer.weight)
    nn.init.zeros_(layer.bias)


class FuseLayer(nn.Module):
    """A user's visible partition vectors -> one vector per sample, trained with the model.

    `table`: a liber.InterestTable (or its rows, float32 [partitions, width]); its rows are
    a frozen buffer, PCA-reduced to `reduced_dim` (0 = as they are). `query_dim`: the width
    of the query passed to forward (the target item's embedding). The other settings are
    FuseConfig's (liber train's --fusion ...), with its defaults."""

    def __init__(self, table: Union["np.ndarray", object], query_dim: int, *, slots: int = 16,
                 hidden: int = 16, fused_dim: int = 32, reduced_dim: int = 64,
                 fusion: str = "attention", interaction: bool = False):
        super().__init__()
        if fusion not in ("attention", "mean"):
            raise ValueError(f"unknown fusion '{fusion}' (attention | mean)")
        if min(slots, hidden, fused_dim, query_dim) <= 0:
            raise ValueError("slots, hidden, fused_dim and query_dim must be positive")
        rows = np.asarray(getattr(table, "rows", table))
        if rows.ndim != 2 or rows.shape[0] == 0 or rows.dtype != np.float32:
            raise ValueError(f"table rows must be float32 [partitions, width], not {rows.dtype} {rows.shape}")
        raw = torch.from_numpy(np.array(rows))  # a copy: the module owns its buffer
        self.slots, self.hidden, self.fused_dim = slots, hidden, fused_dim
        self.attention = fusion == "attention"
        self.interaction = interaction and self.attention
        mean, top, scale = fit_reduction(raw, reduced_dim)
        self.register_buffer("row_mean", mean)
        self.register_buffer("row_top", top)
        self.register_buffer("row_scale", scale)
        self.register_buffer("table", _apply_reduction(raw, mean, top, scale))
        r = self.table.shape[1]
        self.input = nn.Linear(r, hidden)
        _init_linear(self.input)
        self.slot_embedding = nn.Parameter(torch.zeros(slots, hidden))
        if self.attention:
            self.qkv = nn.Linear(hidden, 3 * hidden)
            with torch.no_grad():  # each block initialised as its own [h, h] Linear
                for i in range(3):
                    nn.init.xavier_normal_(self.qkv.weight[i * hidden:(i + 1) * hidden])
                self.qkv.bias.zero_()
            self.target = nn.Linear(query_dim, hidden)
            _init_linear(self.target)
        self.output = nn.Linear(2 * hidden if self.interaction else hidden, fused_dim)
        _init_linear(self.output)
        self.no_history = nn.Parameter(torch.zeros(fused_dim))

    def set_rows(self, rows) -> None:
        """Replaces the table with new raw rows (the same encoder's), reduced as the training
        rows were: a model trained earlier reads partitions closed since."""
        raw = torch.as_tensor(np.asarray(getattr(rows, "rows", rows)))
        if raw.dim() != 2 or raw.shape[1] != self.row_mean.shape[1]:
            raise ValueError(f"rows must be [partitions, {self.row_mean.shape[1]}], not {tuple(raw.shape)}")
        self.table = _apply_reduction(raw, self.row_mean, self.row_top, self.row_scale)

    def forward(self, rows: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """rows: int [B, slots], table rows right-aligned, -1 = empty (liber.join's output);
        query: [B, query_dim]. Returns [B, fused_dim]."""
        if rows.dim() != 2 or rows.shape[1] != self.slots:
            raise ValueError(f"rows must be [batch, {self.slots}], not {tuple(rows.shape)}")
        rows = rows.long()
        b = rows.shape[0]
        visible = rows >= 0                                       # [B, M]
        has = visible.any(1, keepdim=True)                        # [B, 1]
        a = torch.relu(self.input(self.table[rows.clamp_min(0)]))  # [B, M, h]
        x = a + self.slot_embedding
        if self.attention:
            if query.shape != (b, self.target.in_features):
                raise ValueError(f"query must be [{b}, {self.target.in_features}], not {tuple(query.shape)}")
            scale = 1.0 / math.sqrt(self.hidden)
            q, k, v = self.qkv(x).split(self.hidden, dim=-1)
            # Finite masking: a sample with no visible slot gets a uniform (unused) softmax,
            # not NaN, and its output is the no-history vector below.
            scores = torch.bmm(q, k.transpose(1, 2)) * scale
            scores = scores.masked_fill(~visible.unsqueeze(1), -1e30)
            y = x + torch.bmm(torch.softmax(scores, -1), v)       # self-attention, residual
            tq = self.target(query)                               # [B, h]
            weights = (torch.bmm(y, tq.unsqueeze(2)).squeeze(2) * scale).masked_fill(~visible, -1e30)
            pooled = torch.bmm(torch.softmax(weights, -1).unsqueeze(1), y).squeeze(1)
            pooled = pooled * has
            if self.interaction:
                pooled = torch.cat([pooled, pooled * tq], 1)
        else:
            mask = visible.unsqueeze(-1).to(x.dtype)
            pooled = (x * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return torch.where(has, self.output(pooled), self.no_history.expand(b, -1))
