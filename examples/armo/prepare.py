"""Data for a small ArmoRM run on AlpacaEval (examples/armo/run.sh).

Writes, under OUT (default runs/armo):
  samples.jsonl      {"id", "prompt", "response", "reference"?}: one AlpacaEval response per
                     instruction 0..N_SAMPLES-1, from a rotating list of systems' model
                     outputs; then N_MARIO StrategyQA test answers from each of MaRio's six
                     systems (GPT-3, Flan-T5 large/XL/XXL, LLaMA 7B/65B), with the gold label
                     as reference. `trainer armo label` labels them with the built-in
                     modules; accuracy is missing (null) on AlpacaEval rows, which have no
                     gold label, and the probes skip those rows for it.
  train_pairs.jsonl  {"prompt", "chosen", "rejected"} from the GPT-4 judge's annotations of
  eval_pairs.jsonl   several systems against gpt4_1106_preview; the more likely winner is
                     chosen, ties and unjudged items skipped. Train and eval pairs come
                     from disjoint instructions (train: < 560, eval: >= 600).

Usage: python3 examples/armo/prepare.py [OUT] [N_SAMPLES] [N_TRAIN] [N_EVAL] [N_MARIO]
"""

import json
import os
import sys

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data")
DATA = os.path.join(SHARED, "alpaca_eval")
MARIO = os.path.join(SHARED, "mario", "strategyqa")
MARIO_SYSTEMS = {
    "gpt3": "gpt3/test_gpt3_responses.jsonl",
    "flant5-large": "flant5/test_flant5large_responses.jsonl",
    "flant5-xl": "flant5/test_flant5xl_responses.jsonl",
    "flant5-xxl": "flant5/test_flant5xxl_responses.jsonl",
    "llama-7b": "llama/llama-7b_strategyqa_test_output.jsonl",
    "llama-65b": "llama/llama-65b_strategyqa_test_output.jsonl",
}


def mario_answers(n):
    """The first n test answers of each MaRio system: (system, question, response, gold)."""
    for name, rel in MARIO_SYSTEMS.items():
        path = os.path.join(MARIO, rel)
        with open(path) as f:
            text = f.read()
        if name.startswith("llama"):
            # JSON Lines; the answer as the system wrote it, cut before its next question.
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            items = [(r["question"], r["trunc_output"], r["answer"]) for r in rows]
        else:
            # One JSON object keyed "0", "1", ...; MaRio's SFT form of the answer.
            d = json.loads(text)
            rows = [d[k] for k in sorted(d, key=int)]
            items = [(r["question"], f'{r["predicted_rationale"].strip()} So the answer is {r["predicted_label"].strip()}.',
                      r["gold_label"]) for r in rows]
        for q, response, gold in items[:n]:
            yield name, q, response, gold
SYSTEMS = ["claude-2.1", "Qwen-14B-Chat", "gpt-3.5-turbo-1106", "gemma-7b-it", "alpaca-7b",
           "OpenHermes-2.5-Mistral-7B", "nous-hermes-13b", "oasst-sft-pythia-12b"]


def load(kind, name):
    with open(os.path.join(DATA, kind, name + ".json")) as f:
        return json.load(f)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/armo"
    n_samples, n_train, n_eval, n_mario = (
        int(x) for x in (sys.argv[2:6] + ["400", "400", "150", "50"][len(sys.argv[2:6]):]))
    os.makedirs(out, exist_ok=True)
    outputs = {s: load("model_outputs", s) for s in SYSTEMS + ["gpt4_1106_preview"]}
    with open(os.path.join(out, "samples.jsonl"), "w") as f:
        for i in range(n_samples):
            s = SYSTEMS[i % len(SYSTEMS)]
            o = outputs[s][i]
            f.write(json.dumps({"id": f"{s}/{i}", "prompt": o["instruction"], "response": o["output"]}) + "\n")
        for i, (s, q, response, gold) in enumerate(mario_answers(n_mario)):
            f.write(json.dumps({"id": f"mario/{s}/{i % n_mario}", "prompt": q, "response": response,
                                "reference": gold}) + "\n")
    annotations = {s: load("annotations", s) for s in SYSTEMS}

    def pairs(indices, limit):
        rows = []
        for i in indices:
            for k in range(len(SYSTEMS)):
                s = SYSTEMS[(i + k) % len(SYSTEMS)]
                a = annotations[s][i]
                p = a.get("preference")
                if p is None or abs(p - 1.5) < 1e-6:
                    continue
                g1, g2 = outputs[a["generator_1"]][i], outputs[a["generator_2"]][i]
                assert g1["instruction"] == g2["instruction"] == a["instruction"]
                c, r = (g2, g1) if p > 1.5 else (g1, g2)
                if c["output"] != r["output"]:
                    rows.append({"prompt": a["instruction"], "chosen": c["output"], "rejected": r["output"]})
                break
            if len(rows) == limit:
                break
        return rows

    for name, idx, limit in [("train_pairs", range(0, 560), n_train), ("eval_pairs", range(600, 805), n_eval)]:
        rows = pairs(idx, limit)
        with open(os.path.join(out, name + ".jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        print(f"{name}: {len(rows)} pairs")


if __name__ == "__main__":
    main()
