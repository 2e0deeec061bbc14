"""The peer a user would write instead of liber's UIL stage: a Python loop over
llama_cpp.Llama, one chat completion after the other.

usage: uil_python_peer.py --prompts FILE.jsonl --model PATH [--threads 2] [--n-ctx 4096]
  FILE.jsonl: one {"messages": [...], "max_tokens": N} per line (written by uil_throughput).
Prints one JSON line: {"prompt_tokens", "completion_tokens", "seconds", "calls", "load_seconds"}
(seconds: the generation loop only, model load excluded).
"""
import argparse
import json
import sys
import time

from llama_cpp import Llama


def fold_system(messages):
    out, pending = [], ""
    for m in messages:
        if m["role"] == "system":
            pending = pending + "\n\n" + m["content"] if pending else m["content"]
        elif m["role"] == "user" and pending:
            out.append({"role": "user", "content": pending + "\n\n" + m["content"]})
            pending = ""
        else:
            out.append(m)
    if pending:
        out.append({"role": "user", "content": pending})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=4096)
    args = ap.parse_args()

    with open(args.prompts, encoding="utf-8") as f:
        jobs = [json.loads(line) for line in f if line.strip()]

    t0 = time.perf_counter()
    llm = Llama(model_path=args.model, n_ctx=args.n_ctx, n_threads=args.threads,
                n_threads_batch=args.threads, verbose=False)
    # The default GGUF carries no chat template; llama_cpp would fall back to Llama-2's.
    gemma = not llm.metadata.get("tokenizer.chat_template") and \
        llm.metadata.get("general.architecture", "").startswith("gemma")
    if gemma:
        llm.chat_format = "gemma"
        # llama_cpp's "gemma" format silently drops system messages (Gemma has no system
        # role): fold them into the first user turn, as liber's engine does.
        for job in jobs:
            job["messages"] = fold_system(job["messages"])
    load_s = time.perf_counter() - t0

    prompt_tokens = completion_tokens = 0
    t0 = time.perf_counter()
    for job in jobs:
        if job["max_tokens"] <= 0:
            continue
        out = llm.create_chat_completion(messages=job["messages"], max_tokens=job["max_tokens"],
                                         temperature=0)
        prompt_tokens += out["usage"]["prompt_tokens"]
        completion_tokens += out["usage"]["completion_tokens"]
    seconds = time.perf_counter() - t0
    print(json.dumps({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "seconds": seconds, "calls": len(jobs), "load_seconds": load_s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
