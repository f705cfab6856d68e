#!/usr/bin/env python3
"""Independent reference implementation of the `reward-metrics` definitions.

Written from the definitions documented in `reward-wasm/metrics/src/lib.rs`,
not from the Rust code. ROUGE comes from Google's `rouge-score` package
(`RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=False)`, fmeasure).

It reads the held-out TEST responses of six systems for each MaRio dataset
(strategyqa, obqa, quarel) and writes one JSON line per sample:

    {"source": "strategyqa/gpt3/test_gpt3_responses.jsonl#12",
     "prompt": ..., "response": ..., "reference": ...,
     "expected": {"accuracy", "diversity", "words", "sentences", "characters",
                  "fk_grade" (or null), "rouge1", "rouge2", "rougeL",
                  "exact_match", "f1"}}

ROUGE and the QA metrics compare the response with the reference.

Usage:
    python3 metrics_reference.py --mario-dir ../shared/data/mario --out FILE.jsonl \
        [--limit-per-file N]

Exit status: 0 on success, 2 on bad arguments, 3 when `rouge_score` (or the
`regex` module it pulls in through nltk) cannot be imported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import sys
import unicodedata
from collections import Counter

try:
    from rouge_score import rouge_scorer
except ImportError as exc:  # pragma: no cover - environment dependent
    print(
        f"metrics_reference.py: cannot import rouge_score ({exc}); "
        "install it with `pip install rouge-score`",
        file=sys.stderr,
    )
    sys.exit(3)

try:
    # A dependency of nltk, hence always present with rouge_score; used only
    # for the Unicode `Alphabetic` property, which `unicodedata` lacks.
    import regex
except ImportError as exc:  # pragma: no cover - environment dependent
    print(
        f"metrics_reference.py: cannot import regex ({exc}); "
        "it is installed with `pip install rouge-score`",
        file=sys.stderr,
    )
    sys.exit(3)


# --------------------------------------------------------------------------
# Shared vocabulary
# --------------------------------------------------------------------------

# Unicode White_Space property. Python's str.split()/str.strip() would also
# treat U+001C..U+001F as whitespace, which the definitions do not.
WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
WHITESPACE_STR = "".join(sorted(WHITESPACE))
ALPHABETIC_RE = regex.compile(r"\p{Alphabetic}")


def ws_tokens(text: str) -> list[str]:
    """Maximal runs of non-whitespace characters."""
    tokens: list[str] = []
    current: list[str] = []
    for ch in text:
        if ch in WHITESPACE:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        tokens.append("".join(current))
    return tokens


def trim(text: str) -> str:
    return text.strip(WHITESPACE_STR)


def is_alphabetic(ch: str) -> bool:
    return ALPHABETIC_RE.match(ch) is not None


def is_alphanumeric(ch: str) -> bool:
    return is_alphabetic(ch) or unicodedata.category(ch) in ("Nd", "Nl", "No")


# --------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------

ANSWER_PHRASE = "So the answer is "


def clean_label(text: str) -> str:
    return trim(text).strip(".").lower()


def extract_answer(text: str) -> str | None:
    parts = text.split(ANSWER_PHRASE)
    if len(parts) < 2:
        return None
    # parts[1] is the text between the first and the second occurrence (or the end).
    return clean_label(parts[1])


def reference_label(reference: str) -> str:
    label = extract_answer(reference)
    return clean_label(reference) if label is None else label


def accuracy(response: str, reference: str) -> float:
    label = extract_answer(response)
    if label is None:
        return 0.0
    return 1.0 if label == reference_label(reference) else 0.0


# --------------------------------------------------------------------------
# Diversity
# --------------------------------------------------------------------------


def rationale(response: str) -> str:
    index = response.find("So the answer is")
    return trim(response if index < 0 else response[:index])


def diversity(response: str) -> float:
    tokens = ws_tokens(rationale(response))
    result = 1.0
    for n in (2, 3, 4):
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        if not grams:
            rep = 0.0
        else:
            rep = 1.0 - len(set(grams)) / len(grams)
        result *= 1.0 - rep
    return result


# --------------------------------------------------------------------------
# Length
# --------------------------------------------------------------------------

TERMINATORS = ".!?"


def sentence_count(text: str) -> int:
    # Cut the text after each maximal terminator run followed by whitespace or
    # the end, then count the segments holding an alphanumeric character.
    segments: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        if text[i] in TERMINATORS:
            j = i
            while j < n and text[j] in TERMINATORS:
                j += 1
            if j == n or text[j] in WHITESPACE:
                segments.append(text[start:j])
                start = j
            i = j
        else:
            i += 1
    segments.append(text[start:])
    return sum(1 for seg in segments if any(is_alphanumeric(c) for c in seg))


def length_stats(text: str) -> dict[str, int]:
    return {
        "words": len(ws_tokens(text)),
        "sentences": sentence_count(text),
        "characters": len(text),
    }


# --------------------------------------------------------------------------
# Readability
# --------------------------------------------------------------------------

VOWELS = "aeiouy"
ASCII_LETTERS = frozenset(string.ascii_letters)


def syllables(word: str) -> int:
    letters = "".join(c for c in word if c in ASCII_LETTERS).lower()
    if not letters:
        return 1
    count = 0
    previous_vowel = False
    for c in letters:
        vowel = c in VOWELS
        if vowel and not previous_vowel:
            count += 1
        previous_vowel = vowel
    if letters.endswith("e") and not letters.endswith("le") and count > 1:
        count -= 1
    return max(count, 1)


def flesch_kincaid_grade(text: str) -> float | None:
    words = [t for t in ws_tokens(text) if any(is_alphabetic(c) for c in t)]
    if not words:
        return None
    sentences = max(1, sentence_count(text))
    syl = sum(syllables(w) for w in words)
    return 0.39 * (len(words) / sentences) + 11.8 * (syl / len(words)) - 15.59


# --------------------------------------------------------------------------
# ROUGE (rouge-score package)
# --------------------------------------------------------------------------

SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)


def rouge(candidate: str, reference: str) -> dict[str, float]:
    scores = SCORER.score(reference, candidate)  # score(target, prediction)
    return {
        "rouge1": scores["rouge1"].fmeasure,
        "rouge2": scores["rouge2"].fmeasure,
        "rougeL": scores["rougeL"].fmeasure,
    }


# --------------------------------------------------------------------------
# QA (SQuAD v1.1 normalization; SQuAD v2 empty-answer rule for F1)
# --------------------------------------------------------------------------

PUNCTUATION = frozenset(string.punctuation)
# SQuAD's own article pattern. Python's `\b` sees letters, digits and '_' as
# word characters; '_' is already gone (it is punctuation), so this is "a
# maximal alphanumeric run equal to a/an/the" (up to the rare combining marks
# that are Unicode-Alphabetic but not `str.isalnum`).
ARTICLES_RE = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    text = s.lower()
    text = "".join(ch for ch in text if ch not in PUNCTUATION)
    text = ARTICLES_RE.sub(" ", text)
    return " ".join(ws_tokens(text))


def exact_match(prediction: str, gold: str) -> float:
    return 1.0 if normalize_answer(prediction) == normalize_answer(gold) else 0.0


def token_f1(prediction: str, gold: str) -> float:
    pred = ws_tokens(normalize_answer(prediction))
    gold_t = ws_tokens(normalize_answer(gold))
    if not pred or not gold_t:
        return 1.0 if not pred and not gold_t else 0.0
    common = sum((Counter(pred) & Counter(gold_t)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred)
    recall = common / len(gold_t)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------
# Data loading
# --------------------------------------------------------------------------

DATASETS = ("strategyqa", "obqa", "quarel")


def files_for(dataset: str) -> list[tuple[str, str]]:
    """(relative path, kind) of the six systems' test files."""
    return [
        (f"{dataset}/gpt3/test_gpt3_responses.jsonl", "object"),
        (f"{dataset}/flant5/test_flant5large_responses.jsonl", "object"),
        (f"{dataset}/flant5/test_flant5xl_responses.jsonl", "object"),
        (f"{dataset}/flant5/test_flant5xxl_responses.jsonl", "object"),
        (f"{dataset}/llama/llama-7b_{dataset}_test_output.jsonl", "lines"),
        (f"{dataset}/llama/llama-65b_{dataset}_test_output.jsonl", "lines"),
    ]


def read_samples(path: str, kind: str):
    """Yield (index, prompt, response, reference)."""
    with open(path, encoding="utf-8") as f:
        if kind == "object":
            # One JSON object {"0": {...}, "1": {...}} despite the extension.
            data = json.load(f)
            for key in sorted(data, key=int):
                row = data[key]
                response = f"{row['predicted_rationale']} So the answer is {row['predicted_label']}."
                yield int(key), row["question"], response, row["gold_label"]
        else:
            index = 0
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                yield index, row["question"], row["trunc_output"], row["answer"]
                index += 1


def expected(response: str, reference: str) -> dict:
    out: dict = {
        "accuracy": accuracy(response, reference),
        "diversity": diversity(response),
    }
    out.update(length_stats(response))
    out["fk_grade"] = flesch_kincaid_grade(response)
    out.update(rouge(response, reference))
    out["exact_match"] = exact_match(response, reference)
    out["f1"] = token_f1(response, reference)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mario-dir", required=True, help="folder holding strategyqa/, obqa/, quarel/")
    parser.add_argument("--out", required=True, help="output JSON Lines file")
    parser.add_argument("--limit-per-file", type=int, default=None, help="at most N samples per file")
    args = parser.parse_args(argv)

    written = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for dataset in DATASETS:
            for rel, kind in files_for(dataset):
                path = os.path.join(args.mario_dir, rel)
                if not os.path.isfile(path):
                    print(f"metrics_reference.py: skipping missing file {path}", file=sys.stderr)
                    continue
                for count, (index, prompt, response, reference) in enumerate(read_samples(path, kind)):
                    if args.limit_per_file is not None and count >= args.limit_per_file:
                        break
                    record = {
                        "source": f"{rel}#{index}",
                        "prompt": prompt,
                        "response": response,
                        "reference": reference,
                        "expected": expected(response, reference),
                    }
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    written += 1
    print(f"metrics_reference.py: wrote {written} samples to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
