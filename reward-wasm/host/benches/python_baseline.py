#!/usr/bin/env python3
"""The Python a user would otherwise write for two built-in rewards, timed on the
same samples as the Rust benchmark (reward-wasm/host/benches/sandbox.rs).

diversity: MaRio's definition with str.split and sets of n-gram tuples.
length: words, sentences (regex split on [.!?]+ before whitespace/end), characters.

Reads a JSON Lines file of {"response": ...}; prints one JSON object per
function: {"name", "seconds" (best of runs), "samples"}.
"""

import json
import re
import sys
import time

PHRASE = "So the answer is"
SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def diversity(response: str) -> float:
    rationale = response.split(PHRASE, 1)[0].strip()
    tokens = rationale.split()
    score = 1.0
    for n in (2, 3, 4):
        total = len(tokens) - n + 1
        if total <= 0:
            break
        grams = set(zip(*(tokens[i:] for i in range(n))))
        score *= len(grams) / total
    return score


def length(response: str):
    words = len(response.split())
    sentences = sum(1 for seg in SENTENCE_END.split(response) if any(c.isalnum() for c in seg))
    return words, sentences, len(response)


def main() -> None:
    path, runs = sys.argv[1], int(sys.argv[2])
    with open(path, encoding="utf-8") as f:
        responses = [json.loads(line)["response"] for line in f]
    for name, fn in (("diversity", diversity), ("length", length)):
        times = []
        for _ in range(runs + 1):  # the first run warms up and is dropped
            start = time.perf_counter()
            for r in responses:
                fn(r)
            times.append(time.perf_counter() - start)
        print(json.dumps({"name": name, "seconds": min(times[1:]), "samples": len(responses)}))


if __name__ == "__main__":
    main()
