#!/usr/bin/env python3
"""Converts a BERT sentence encoder (Hugging Face layout: config.json, model.safetensors,
vocab.txt, optional 1_Pooling/config.json) to a GGUF file that llama.cpp runs as an
embedding model. Torch-free: safetensors is read with numpy, GGUF written with the PyPI
`gguf` package. llama.cpp's own converter imports torch, which these machines cannot install.

    bert_to_gguf.py MODEL_DIR OUT.gguf [--name all-MiniLM-L6-v2]

The vocabulary is written in llama.cpp's WPM form: a word-initial piece carries a leading
U+2581 ("phantom space"), a continuation piece ("##ing") loses its "##", and bracketed
special tokens stay as they are. Weights stay float32 (the encoder is small; exactness
against the reference matters more than 45 MB).
"""
import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in DTYPES:
            sys.exit(f"bert_to_gguf: {path}: tensor {name} has unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def phantom(token: str) -> str:
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--name", default=None, help="general.name (default: the directory name)")
    args = ap.parse_args()
    d = args.model_dir
    for need in ("config.json", "model.safetensors", "vocab.txt"):
        if not (d / need).is_file():
            sys.exit(f"bert_to_gguf: {d / need} not found")
    cfg = json.loads((d / "config.json").read_text())
    if cfg.get("model_type") != "bert":
        sys.exit(f"bert_to_gguf: {d}/config.json: model_type {cfg.get('model_type')!r}, expected 'bert'")
    pooling = gguf.PoolingType.MEAN
    pool_cfg = d / "1_Pooling" / "config.json"
    if pool_cfg.is_file():
        p = json.loads(pool_cfg.read_text())
        if p.get("pooling_mode_cls_token"):
            pooling = gguf.PoolingType.CLS
        elif not p.get("pooling_mode_mean_tokens"):
            sys.exit(f"bert_to_gguf: {pool_cfg}: only mean or CLS pooling is supported")

    tokens = (d / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    if len(tokens) != cfg["vocab_size"]:
        sys.exit(f"bert_to_gguf: vocab.txt has {len(tokens)} tokens, config.json says {cfg['vocab_size']}")
    index = {t: i for i, t in enumerate(tokens)}
    special = {"[PAD]": "pad", "[UNK]": "unk", "[CLS]": "cls", "[SEP]": "sep", "[MASK]": "mask"}
    for t in special:
        if t not in index:
            sys.exit(f"bert_to_gguf: vocab.txt lacks {t}")
    types = []
    for t in tokens:
        if t == "[UNK]":
            types.append(gguf.TokenType.UNKNOWN)
        elif t in special:
            types.append(gguf.TokenType.CONTROL)
        else:
            types.append(gguf.TokenType.NORMAL)

    arch = gguf.MODEL_ARCH.BERT
    w = gguf.GGUFWriter(str(args.out), gguf.MODEL_ARCH_NAMES[arch])
    w.add_name(args.name or d.name)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(pooling)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list([phantom(t) for t in tokens])
    w.add_token_types(types)
    w.add_token_type_count(cfg.get("type_vocab_size", 2))
    w.add_unk_token_id(index["[UNK]"])
    w.add_sep_token_id(index["[SEP]"])
    w.add_pad_token_id(index["[PAD]"])
    w.add_bos_token_id(index["[CLS]"])  # llama.cpp's WPM vocab: [CLS] is the BOS token
    w.add_mask_token_id(index["[MASK]"])
    w.add_add_bos_token(True)   # [CLS] first
    w.add_add_sep_token(True)   # [SEP] last

    names = gguf.get_tensor_name_map(arch, cfg["num_hidden_layers"])
    weights = read_safetensors(d / "model.safetensors")
    for name, t in weights.items():
        if name.endswith("position_ids") or name.startswith("pooler."):
            continue  # buffers, and the unused pooler head
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            sys.exit(f"bert_to_gguf: {d}/model.safetensors: no GGUF name for tensor {name}")
        w.add_tensor(new, np.ascontiguousarray(t, dtype=np.float32))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"bert_to_gguf: wrote {args.out} ({len(tokens)} tokens, {len(weights)} tensors)")


if __name__ == "__main__":
    main()
