"""Data for a small ArmoRM run on AlpacaEval (examples/armo/run.sh).

Writes, under OUT (default /work/armo-run):
  samples.jsonl      {"id", "prompt", "response"}: one response per instruction 0..N_SAMPLES-1,
                     from a rotating list of systems' model outputs (attributes are labelled
                     by `trainer armo label` with the built-in reward modules)
  train_pairs.jsonl  {"prompt", "chosen", "rejected"} from the GPT-4 judge's annotations of
  eval_pairs.jsonl   several systems against gpt4_1106_preview; the more likely winner is
                     chosen, ties and unjudged items skipped. Train and eval pairs come
                     from disjoint instructions (train: < 560, eval: >= 600).

Usage: python3 examples/armo/prepare.py [OUT] [N_SAMPLES] [N_TRAIN] [N_EVAL]
"""

import json
import os
import sys

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "alpaca_eval")
SYSTEMS = ["claude-2.1", "Qwen-14B-Chat", "gpt-3.5-turbo-1106", "gemma-7b-it", "alpaca-7b",
           "OpenHermes-2.5-Mistral-7B", "nous-hermes-13b", "oasst-sft-pythia-12b"]


def load(kind, name):
    with open(os.path.join(DATA, kind, name + ".json")) as f:
        return json.load(f)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/work/armo-run"
    n_samples, n_train, n_eval = (int(x) for x in (sys.argv[2:5] + ["400", "400", "150"][len(sys.argv[2:5]):]))
    os.makedirs(out, exist_ok=True)
    outputs = {s: load("model_outputs", s) for s in SYSTEMS + ["gpt4_1106_preview"]}
    with open(os.path.join(out, "samples.jsonl"), "w") as f:
        for i in range(n_samples):
            s = SYSTEMS[i % len(SYSTEMS)]
            o = outputs[s][i]
            f.write(json.dumps({"id": f"{s}/{i}", "prompt": o["instruction"], "response": o["output"]}) + "\n")
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
