#!/usr/bin/env python3
"""An independent reference for the sentence encoder: BERT's uncased WordPiece tokenizer
and forward pass written out in numpy from the Hugging Face files (vocab.txt,
config.json, model.safetensors), mean pooling and L2 normalisation as sentence-transformers
does them. No llama.cpp, no torch.

    bert_reference.py MODEL_DIR < sentences (one per line)  ->  JSON lines
    {"text", "ids": [...], "vector": [...]}
"""
import json
import math
import struct
import sys
import unicodedata
from pathlib import Path

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=np.float32).reshape(info["shape"]).astype(np.float64)
    return out


def is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokens(text):
    out, word = [], []
    def flush():
        if word:
            out.append("".join(word))
            word.clear()
    text = unicodedata.normalize("NFD", text.lower())
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        if unicodedata.category(ch) == "Mn":  # strip accents
            continue
        if ch.isspace():
            flush()
        elif is_punct(ch) or is_cjk(cp):
            flush()
            out.append(ch)
        else:
            word.append(ch)
    flush()
    return out


def wordpiece(word, vocab, unk="[UNK]"):
    if len(word) > 100:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            sub = word[start:end] if start == 0 else "##" + word[start:end]
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return [unk]
        pieces.append(cur)
        start = end
    return pieces


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):  # BERT's exact (erf) GELU
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def forward(ids, W, cfg):
    p = "encoder.layer.{}."
    n = len(ids)
    eps = cfg["layer_norm_eps"]
    h = (W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:n]
         + W["embeddings.token_type_embeddings.weight"][0])
    h = layer_norm(h, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    heads = cfg["num_attention_heads"]
    hd = cfg["hidden_size"] // heads
    for l in range(cfg["num_hidden_layers"]):
        g = lambda k: W[p.format(l) + k]
        q = h @ g("attention.self.query.weight").T + g("attention.self.query.bias")
        k = h @ g("attention.self.key.weight").T + g("attention.self.key.bias")
        v = h @ g("attention.self.value.weight").T + g("attention.self.value.bias")
        q, k, v = (t.reshape(n, heads, hd).transpose(1, 0, 2) for t in (q, k, v))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, heads * hd)
        a = a @ g("attention.output.dense.weight").T + g("attention.output.dense.bias")
        h = layer_norm(h + a, g("attention.output.LayerNorm.weight"), g("attention.output.LayerNorm.bias"), eps)
        f = gelu(h @ g("intermediate.dense.weight").T + g("intermediate.dense.bias"))
        f = f @ g("output.dense.weight").T + g("output.dense.bias")
        h = layer_norm(h + f, g("output.LayerNorm.weight"), g("output.LayerNorm.bias"), eps)
    v = h.mean(0)
    return v / np.linalg.norm(v)


def main():
    d = Path(sys.argv[1])
    cfg = json.loads((d / "config.json").read_text())
    vocab_list = (d / "vocab.txt").read_text(encoding="utf-8").split("\n")
    vocab = {t: i for i, t in enumerate(vocab_list) if t}
    W = load_safetensors(d / "model.safetensors")
    for line in sys.stdin:
        text = line.rstrip("\n")
        if not text:
            continue
        pieces = ["[CLS]"] + [p for w in basic_tokens(text) for p in wordpiece(w, vocab)] + ["[SEP]"]
        ids = [vocab[p] for p in pieces]
        vec = forward(ids, W, cfg)
        print(json.dumps({"text": text, "ids": ids, "vector": [float(x) for x in vec]}), flush=True)


if __name__ == "__main__":
    main()
