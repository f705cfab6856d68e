"""TRL reference for trainer's DPO losses (trainer/src/dpo/loss.rs).

Runs TRL's own `DPOTrainer._compute_loss` on fixed per-token log-probs and writes what it
computes to trainer/reference/data/dpo/cases.json, which trainer/tests/dpo_reference.rs
replays through `trainer::dpo::dpo_loss` and compares within 1e-9 (the arithmetic is f64 on
both sides):

  per case (loss_type sigmoid | robust | ipo | hinge, beta, label_smoothing):
    loss                     the returned loss (mean over pairs)
    grad_chosen / _rejected  d loss / d (summed log-prob) of each pair's two responses,
                             by torch autograd through TRL's code
    rewards_chosen / ...     TRL's logged rewards/chosen, rewards/rejected, rewards/margins,
                             rewards/accuracies

The trainer is a real DPOTrainer (a tiny random Llama saved to a temporary directory, a
word-level tokenizer built in memory, a two-row dataset); the case controls the numbers in
two places: `precompute_ref_logps` is switched on so the reference log-probs come from the
batch (`ref_chosen_logps`, `ref_rejected_logps`), and the model passed to `_compute_loss` is
a stand-in whose forward returns the case's per-token log-probs as a leaf tensor (what
TRL's fused LM head returns: log-probs at completion positions, 0 elsewhere), so the
gradient is torch's through TRL's loss. Responses have different lengths, so IPO's per-token
averaging is exercised, and one pair has a margin large enough that a naive log σ would
underflow.

Install (outside the repository; nothing is installed by this script), then run:

    python3 -m venv /work/venv-ref
    /work/venv-ref/bin/pip install "trl==1.16.*" torch
    HF_HUB_OFFLINE=1 /work/venv-ref/bin/python trainer/reference/dpo_reference.py
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
from transformers import LlamaForCausalLM  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

transformers.logging.set_verbosity_error()
logging.getLogger("trl").setLevel(logging.ERROR)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from trl_tiny import tiny_model_dir  # noqa: E402

OUT = os.path.join(HERE, "data", "dpo", "cases.json")


def tiny_trainer():
    d, tok = tiny_model_dir(LlamaForCausalLM, "dpo-reference-")
    data = Dataset.from_dict({"prompt": ["w1 w2"] * 2, "chosen": [" w3"] * 2, "rejected": [" w4"] * 2})
    args = DPOConfig(output_dir=tempfile.mkdtemp(prefix="dpo-reference-run-"), report_to="none", use_cpu=True,
                     per_device_train_batch_size=2, logging_steps=1)
    trainer = DPOTrainer(model=d, args=args, train_dataset=data, processing_class=tok)
    trainer.model.train()
    return trainer


class StandIn:
    """What `_compute_loss` calls as the model: returns the case's per-token log-probs."""

    def __init__(self, per_token):
        self.per_token = per_token

    def __call__(self, **kwargs):
        t = self.per_token
        return types.SimpleNamespace(
            log_probs=t,
            entropy=torch.zeros_like(t),
            mean_logits=torch.zeros_like(t),
            is_top1=torch.zeros_like(t, dtype=torch.bool),
        )


def case(trainer, rng, name, loss_type, beta, label_smoothing, n_pairs, scale=1.0, spread=None,
         at_reference=False):
    # Response lengths 1..6 tokens after a 2-token prompt; rows are [chosen..., rejected...].
    lens = rng.integers(1, 7, size=2 * n_pairs)
    width = 2 + int(lens.max())  # input positions; log-probs are over width - 1 shifted positions
    completion_mask = torch.zeros(2 * n_pairs, width)
    per_token = torch.zeros(2 * n_pairs, width - 1)
    for i, n in enumerate(lens):
        completion_mask[i, 2 : 2 + n] = 1.0
        per_token[i, 1 : 1 + n] = torch.from_numpy(-rng.exponential(scale, size=n))
    if spread is not None:  # one pair far apart: β·Δ in the hundreds
        per_token[0, 1] += spread
        per_token[n_pairs, 1] -= spread
    per_token.requires_grad_(True)
    ref = (per_token.detach().sum(dim=1) + torch.from_numpy(rng.normal(0.0, 0.7, size=2 * n_pairs))).clone()
    if at_reference:  # a run's first step: the policy is the reference, every Δ is exactly 0
        ref = per_token.detach().sum(dim=1).clone()
    inputs = {
        "input_ids": torch.ones(2 * n_pairs, width, dtype=torch.long),
        "attention_mask": torch.ones(2 * n_pairs, width, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref[:n_pairs],
        "ref_rejected_logps": ref[n_pairs:],
    }
    trainer.precompute_ref_logps = True
    trainer.loss_types = [loss_type]
    trainer.loss_weights = [1.0]
    trainer.beta = beta
    trainer.label_smoothing = label_smoothing
    trainer._metrics["train"].clear()
    loss = trainer._compute_loss(StandIn(per_token), inputs, False)
    loss.backward()
    grad = per_token.grad
    # The loss depends on each row only through its sum: every completion position has the
    # same gradient, the one with respect to the summed log-prob.
    g = [float(grad[i, 1]) for i in range(2 * n_pairs)]
    for i, n in enumerate(lens):
        assert torch.allclose(grad[i, 1 : 1 + n], grad[i, 1]), (name, i)
    sums = per_token.detach().sum(dim=1)
    m = trainer._metrics["train"]
    return {
        "name": name,
        "loss_type": loss_type,
        "beta": beta,
        "label_smoothing": label_smoothing,
        "chosen": sums[:n_pairs].tolist(),
        "rejected": sums[n_pairs:].tolist(),
        "ref_chosen": ref[:n_pairs].tolist(),
        "ref_rejected": ref[n_pairs:].tolist(),
        "len_chosen": [int(x) for x in lens[:n_pairs]],
        "len_rejected": [int(x) for x in lens[n_pairs:]],
        "loss": float(loss),
        "grad_chosen": g[:n_pairs],
        "grad_rejected": g[n_pairs:],
        "rewards_chosen": m["rewards/chosen"][-1],
        "rewards_rejected": m["rewards/rejected"][-1],
        "rewards_margins": m["rewards/margins"][-1],
        "rewards_accuracies": m["rewards/accuracies"][-1],
    }


def main():
    trainer = tiny_trainer()
    rng = np.random.default_rng(20261202)
    cases = []
    for loss_type, beta, eps in [
        ("sigmoid", 0.1, 0.0),
        ("sigmoid", 0.5, 0.0),
        ("robust", 0.1, 0.1),
        ("robust", 0.3, 0.25),
        ("ipo", 0.1, 0.0),
        ("ipo", 0.5, 0.0),
        ("hinge", 0.1, 0.0),
        ("hinge", 1.0, 0.0),
    ]:
        cases.append(case(trainer, rng, f"{loss_type} beta={beta} eps={eps}", loss_type, beta, eps, 6))
    for loss_type in ["sigmoid", "robust", "ipo", "hinge"]:
        eps = 0.1 if loss_type == "robust" else 0.0
        cases.append(case(trainer, rng, f"{loss_type} large margin", loss_type, 0.5, eps, 3, spread=900.0))
    cases.append(case(trainer, rng, "sigmoid one pair", "sigmoid", 0.1, 0.0, 1))
    # Δ = 0 is where the derivative of a naive max(−x, 0) + log(1 + e^−|x|) is off.
    for loss_type, eps in [("sigmoid", 0.0), ("robust", 0.1), ("ipo", 0.0), ("hinge", 0.0)]:
        cases.append(case(trainer, rng, f"{loss_type} at the reference", loss_type, 0.1, eps, 4,
                          at_reference=True))
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
