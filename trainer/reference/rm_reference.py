"""TRL reference for trainer's reward-model loss (trainer/src/rm/loss.rs).

Runs TRL's own `RewardTrainer.compute_loss` on fixed scores and writes what it computes to
trainer/reference/data/rm/cases.json, which trainer/tests/rm_reference.rs replays through
`trainer::rm::reward_loss` and compares within 1e-9 (float64 on both sides):

  per case (margins or none, center_rewards_coefficient or none):
    loss                  the returned loss
    grad_chosen / _rej.   d loss / d score of each pair's two responses (torch autograd)
    accuracy, margin      TRL's logged metrics (accuracy through a float32 mean)

  soft-labelled cases (probability q that the chosen response wins, AlpacaEval's judge):
  TRL has no soft labels, so these are PyTorch's binary_cross_entropy_with_logits(Δ, q)
  plus TRL's centring term, with torch's gradients

The trainer is a real RewardTrainer (a tiny random Llama sequence classifier saved to a
temporary directory, a word-level tokenizer, a two-row dataset); the model passed to
`compute_loss` is a stand-in whose forward returns the case's scores as a leaf tensor (what
`*ForSequenceClassification` returns as `logits`, `(2B, 1)`, chosen rows first), so the
gradient is torch's through TRL's loss. One case has scores far apart, where a naive
log σ would underflow.

Install (outside the repository; nothing is installed by this script), then run:

    python3 -m venv /work/venv-ref
    /work/venv-ref/bin/pip install "trl==1.16.*" torch
    HF_HUB_OFFLINE=1 /work/venv-ref/bin/python trainer/reference/rm_reference.py
"""

import json
import logging
import math
import os
import sys
import tempfile
import types
import warnings

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import LlamaForSequenceClassification  # noqa: E402
from trl import RewardConfig, RewardTrainer  # noqa: E402

transformers.logging.set_verbosity_error()
logging.getLogger("trl").setLevel(logging.ERROR)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from trl_tiny import tiny_model_dir  # noqa: E402

OUT = os.path.join(HERE, "data", "rm", "cases.json")


def tiny_trainer():
    d, tok = tiny_model_dir(LlamaForSequenceClassification, "rm-reference-", num_labels=1)
    data = Dataset.from_dict({"chosen": ["w1 w2 w3"] * 2, "rejected": ["w1 w2 w4"] * 2})
    args = RewardConfig(output_dir=tempfile.mkdtemp(prefix="rm-reference-run-"), report_to="none", use_cpu=True,
                        per_device_train_batch_size=2, logging_steps=1)
    trainer = RewardTrainer(model=d, args=args, train_dataset=data, processing_class=tok)
    trainer.model.train()
    return trainer


class StandIn:
    def __init__(self, scores):
        self.scores = scores

    def __call__(self, **kwargs):
        return types.SimpleNamespace(logits=self.scores)


def case(trainer, rng, name, n_pairs, margins, center, spread=None):
    scores = torch.from_numpy(rng.normal(0.0, 1.5, size=(2 * n_pairs, 1)))
    if spread is not None:
        scores[0, 0] += spread
        scores[n_pairs, 0] -= spread
    scores.requires_grad_(True)
    inputs = {"input_ids": torch.ones(2 * n_pairs, 4, dtype=torch.long),
              "attention_mask": torch.ones(2 * n_pairs, 4, dtype=torch.long)}
    margin = None
    if margins:
        margin = torch.from_numpy(rng.uniform(0.0, 2.0, size=n_pairs))
        inputs["margin"] = margin
    trainer.args.center_rewards_coefficient = center
    trainer._metrics["train"].clear()
    loss = trainer.compute_loss(StandIn(scores), inputs)
    loss.backward()
    g = scores.grad[:, 0].tolist()
    s = scores.detach()[:, 0].tolist()
    m = trainer._metrics["train"]
    return {
        "name": name,
        "chosen": s[:n_pairs],
        "rejected": s[n_pairs:],
        "margin": None if margin is None else margin.tolist(),
        "center_rewards_coefficient": center,
        "loss": float(loss),
        "grad_chosen": g[:n_pairs],
        "grad_rejected": g[n_pairs:],
        "accuracy": m["accuracy"][-1],
        "margin_logged": m["margin"][-1],
    }


def soft_case(rng, name, n_pairs, margins, center):
    """Soft labels have no TRL code path: the loss is PyTorch's own
    binary_cross_entropy_with_logits(Δ, q) (mean over pairs) plus TRL's centring term."""
    scores = torch.from_numpy(rng.normal(0.0, 1.5, size=2 * n_pairs)).requires_grad_(True)
    q = torch.from_numpy(rng.uniform(0.5, 1.0, size=n_pairs))
    chosen, rejected = scores[:n_pairs], scores[n_pairs:]
    delta = chosen - rejected
    margin = None
    if margins:
        margin = torch.from_numpy(rng.uniform(0.0, 2.0, size=n_pairs))
        delta = delta - margin
    loss = torch.nn.functional.binary_cross_entropy_with_logits(delta, q)
    if center is not None:
        loss = loss + center * torch.mean((chosen + rejected) ** 2)
    loss.backward()
    g = scores.grad.tolist()
    s = scores.detach().tolist()
    return {
        "name": name,
        "chosen": s[:n_pairs],
        "rejected": s[n_pairs:],
        "margin": None if margin is None else margin.tolist(),
        "label": q.tolist(),
        "center_rewards_coefficient": center,
        "loss": float(loss),
        "grad_chosen": g[:n_pairs],
        "grad_rejected": g[n_pairs:],
        "accuracy": float((chosen > rejected).float().mean()),
        "margin_logged": float((chosen - rejected).mean()),
    }


def main():
    trainer = tiny_trainer()
    rng = np.random.default_rng(20261202)
    cases = [
        case(trainer, rng, "bradley-terry", 6, False, None),
        case(trainer, rng, "with margins", 6, True, None),
        case(trainer, rng, "centered 0.01", 6, False, 0.01),
        case(trainer, rng, "margins and centered 0.1", 5, True, 0.1),
        case(trainer, rng, "far apart", 3, False, 0.01, spread=800.0),
        case(trainer, rng, "one pair", 1, True, None),
        soft_case(rng, "soft labels", 6, False, None),
        soft_case(rng, "soft labels with margins", 5, True, None),
        soft_case(rng, "soft labels centered 0.01", 6, False, 0.01),
    ]
    for c in cases:
        for k, v in c.items():
            if isinstance(v, float):
                assert math.isfinite(v), (c["name"], k)
    data = {
        "versions": {"trl": trl.__version__, "torch": torch.__version__, "transformers": transformers.__version__},
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
