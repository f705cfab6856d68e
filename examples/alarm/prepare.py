"""Prompts for the small ALaRM comparison (scripts/alarm-study), from ALaRM's long-form QA
data in ../shared/data/alarm/qa_feedback_dev.json (500 items: question, passages, answers).

Writes, under OUT (default runs/alarm/data), JSON Lines in the trainer's prompt form
{"id", "prompt", "reference", "fields": {"passages"}}:
  train.jsonl  the first 400 items
  eval.jsonl   the last 100 items

Each item's passages are cut to their first PASSAGE_CHARS characters each (title and
opening), so a prompt stays near 300 SmolLM2 tokens on a CPU; the prompt the model sees and
the `passages` field the grounding reward checks against hold the same cut text, so the
model can be grounded in what it was shown. The reference is the first gold answer.

Usage: python3 examples/alarm/prepare.py [OUT] [PASSAGE_CHARS]
"""

import json
import os
import sys

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                    "data", "alarm", "qa_feedback_dev.json")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/alarm/data"
    cut = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    if not os.path.exists(DATA):
        sys.exit(f"prepare.py: needs {DATA} (../shared/data)")
    with open(DATA) as f:
        items = json.load(f)
    os.makedirs(out, exist_ok=True)
    rows = []
    for i, it in enumerate(items):
        passages = " | ".join(
            " ".join(p["content"].split())[:cut].rsplit(" ", 1)[0] for p in it["passages"]
        )
        answers = it["answer"] if isinstance(it["answer"], list) else [it["answer"]]
        rows.append({
            "id": f"qa{i:03d}",
            "prompt": f"Passages: {passages}\n\nQuestion: {it['question']}\n"
                      "Answer in a few sentences, using the passages.",
            "reference": answers[0],
            "fields": {"passages": passages},
        })
    for name, part in [("train", rows[:400]), ("eval", rows[400:])]:
        with open(os.path.join(out, f"{name}.jsonl"), "w") as f:
            for r in part:
                f.write(json.dumps(r) + "\n")
    print(f"prepare.py: {len(rows[:400])} train and {len(rows[400:])} eval prompts in {out}")


if __name__ == "__main__":
    main()
