"""RLLR reference for trainer's divergence-averaged reward-model loss (trainer/src/rm/loss.rs).

RLLR (MagiaSN/ACL2024_RLLR at 0b4a787) trains its reward model with
`PairwiseTrainer.compute_loss` in `src/llmtuner/tuner/rm/trainer.py`. That code needs a
LLaMA-Factory model with a value head, so this script runs a line-by-line transcription of
its loss on fixed per-token values instead (written here, not copied): for each pair of
right-padded rows it finds the real lengths from the attention masks, the first position
where the padded ids differ, and the window to the longer row's end, then averages
−logsigmoid((v_c − v_r) / bpr_temperature) over the window; the loss is the mean over
pairs, with torch's autograd for the gradient. The scores are the values at each row's
last real token (RLLR's `return_outputs` path).

Writes trainer/reference/data/rm/rllr_cases.json, which trainer/tests/rm_reference.rs
replays through `trainer::rm::divergence_window` and `divergence_loss` within 1e-9
(float64 on both sides). The first case is rl.md's pin (L = 0.3289889).

Needs only torch (outside the repository):

    python3 -m venv /work/venv-ref && /work/venv-ref/bin/pip install torch
    /work/venv-ref/bin/python trainer/reference/rllr_reference.py
"""

import json
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "rm", "rllr_cases.json")
PAD = 0


def rllr_loss(chosen_ids, rejected_ids, values, temperature):
    """The transcription: `chosen_ids`, `rejected_ids` lists of unpadded rows; `values` a
    (2B, T) leaf tensor, chosen rows first, right-padded like the ids."""
    b = len(chosen_ids)
    t = values.shape[1]

    def padded(rows):
        ids = torch.full((len(rows), t), PAD, dtype=torch.long)
        mask = torch.zeros((len(rows), t), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask

    c_ids, c_mask = padded(chosen_ids)
    r_ids, r_mask = padded(rejected_ids)
    c_val, r_val = values[:b], values[b:]
    loss = 0
    windows, chosen_scores, rejected_scores = [], [], []
    for i in range(b):
        c_len = int(c_mask[i].nonzero()[-1]) + 1
        r_len = int(r_mask[i].nonzero()[-1]) + 1
        differ = (c_ids[i] != r_ids[i]).nonzero()
        if len(differ) == 0:
            end = c_len
            div = end - 1
        else:
            end = max(c_len, r_len)
            div = int(differ[0])
        assert div > 0
        windows.append([div, end])
        chosen_scores.append(float(c_val[i, c_len - 1].detach()))
        rejected_scores.append(float(r_val[i, r_len - 1].detach()))
        diff = (c_val[i, div:end] - r_val[i, div:end]) / temperature
        loss = loss + -torch.nn.functional.logsigmoid(diff).mean()
    loss = loss / b
    return loss, windows, chosen_scores, rejected_scores


def case(name, chosen_ids, rejected_ids, values, temperature=1.0):
    values = torch.tensor(values).requires_grad_(True)
    loss, windows, cs, rs = rllr_loss(chosen_ids, rejected_ids, values, temperature)
    loss.backward()
    return {
        "name": name,
        "chosen_ids": chosen_ids,
        "rejected_ids": rejected_ids,
        "values": values.detach().tolist(),
        "temperature": temperature,
        "loss": float(loss.detach()),
        "grad": values.grad.tolist(),
        "windows": windows,
        "chosen_scores": cs,
        "rejected_scores": rs,
    }


def random_case(rng, name, b, t, temperature):
    chosen, rejected = [], []
    for _ in range(b):
        prefix = [int(x) for x in rng.integers(1, 20, size=int(rng.integers(1, 4)))]
        lc = int(rng.integers(1, t - len(prefix) + 1))
        lr = int(rng.integers(1, t - len(prefix) + 1))
        c = prefix + [int(x) for x in rng.integers(20, 40, size=lc)]
        r = prefix + [int(x) for x in rng.integers(40, 60, size=lr)]
        chosen.append(c)
        rejected.append(r)
    values = rng.normal(0.0, 2.0, size=(2 * b, t)).tolist()
    return case(name, chosen, rejected, values, temperature)


def main():
    rng = np.random.default_rng(20261203)
    cases = [
        # rl.md's pin: div = 2, end = 4, L = 0.3289889, scores [1.4, .4].
        case("rl.md pin", [[5, 6, 7, 8]], [[5, 6, 9]],
             [[0.1, 0.2, 0.9, 1.4, 0.3], [0.1, 0.2, 0.4, -0.2, -0.5]]),
        # Identical rows score alike in a real model: ln 2 (rl.md).
        case("identical pair", [[5, 6, 7]], [[5, 6, 7]],
             [[0.3, -1.0, 2.0, 0.0], [0.3, -1.0, 2.0, 0.0]]),
        case("rejected extends chosen", [[3, 4, 5]], [[3, 4, 5, 6, 7]],
             [[0.2, 0.1, 0.5, 0.9, -0.3], [0.0, 0.4, 0.1, 0.2, 0.6]]),
        random_case(rng, "batch of four", 4, 7, 1.0),
        random_case(rng, "temperature 2", 3, 6, 2.0),
        case("far apart", [[1, 2, 3]], [[1, 2, 4]],
             [[0.0, 0.0, 900.0], [0.0, 0.0, -900.0]]),
    ]
    assert abs(cases[0]["loss"] - 0.3289889) < 1e-7, cases[0]["loss"]
    assert abs(cases[1]["loss"] - np.log(2)) < 1e-12, cases[1]["loss"]
    data = {"source": "MagiaSN/ACL2024_RLLR 0b4a787 PairwiseTrainer.compute_loss (transcribed)",
            "versions": {"torch": torch.__version__}, "cases": cases}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
