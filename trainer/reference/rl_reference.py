"""TRL and OpenRLHF references for trainer's RL numerics (trainer/src/rl/).

Runs the real libraries on fixed cases and writes what they compute to
trainer/reference/data/rl/cases.json, which trainer/tests/rl_reference.rs replays through
`trainer::rl` and compares within 1e-6:

  grpo_advantages     TRL GRPOTrainer._generate_and_score_completions: weighted nansum,
                      group mean, `scale_rewards` group | batch | none, and
                      `multi_objective_aggregation` sum_then_normalize | normalize_then_sum
                      (GDPO); None rewards (NaN), unscorable samples, all-equal groups; the
                      completion mask after `mask_truncated_completions`
  rloo_advantages     TRL RLOOTrainer._generate_and_score_completions: the k1 KL summed per
                      sequence folded into the reward with beta, leave-one-out baseline,
                      `normalize_advantages`, `reward_clip_range`
  grpo_losses         TRL GRPOTrainer._compute_loss for loss_type grpo | bnpo | dapo | dr_grpo,
                      several epsilon / epsilon_high / beta, gradient accumulation, empty
                      completions: the loss, d loss / d log-probs, the logged kl and clip ratios
  rloo_losses         TRL RLOOTrainer._compute_loss (sequence-level ratio)
  reinforce_advantages  OpenRLHF RemoteExperienceMaker.compute_advantages_and_returns with
                      estimator reinforce_baseline (per-token k1 from compute_approx_kl in the
                      reward via compute_reward, reward clip, returns, batch whitening)
  reinforce_losses    OpenRLHF PolicyLoss (ppo, token-level) and its clip ratio / ppo_kl

Each expected value is the output of the library's own method; the one line taken outside
a library call is OpenRLHF's k1 KL in float64 (see reinforce_advantages).
The trainers are real objects (a tiny random Llama saved to a temporary directory, a
word-level tokenizer built in memory, plain-Python reward functions returning the case's
values); two methods are replaced on the instance so the cases control the numbers: the
generator (`_generate` returns the case's token ids) and the model forward
(`_get_per_token_logps_and_entropies` returns the case's log-probs, as a leaf tensor that
requires grad when the loss is computed, so the gradient is torch's autograd through TRL's
loss). OpenRLHF is imported without its distributed stack: `deepspeed` and `ray` are stubbed
(empty modules; the functions used never touch them) and its package `__init__`s skipped.

Precision: torch's default dtype is set to float64, so TRL's reward matrix and everything
after it is float64. TRL casts each reward function's output to float32 first
(`_calculate_rewards`) and keeps reward weights in float32, so the rewards and weights
written here are the float32-rounded values TRL actually used; the Rust side reads those.

Versions written into the JSON. Install (outside the repository; nothing is installed by
this script), then run:

    python3 -m venv /work/venv-ref
    /work/venv-ref/bin/pip install trl torch
    /work/venv-ref/bin/pip install --no-deps openrlhf
    HF_HUB_OFFLINE=1 /work/venv-ref/bin/python trainer/reference/rl_reference.py
"""

import importlib.util
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
from tokenizers import Tokenizer  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402
from tokenizers.pre_tokenizers import Whitespace  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer  # noqa: E402

transformers.logging.set_verbosity_error()
logging.getLogger("trl").setLevel(logging.ERROR)  # the "all reward functions returned None" warnings

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "rl", "cases.json")
VOCAB = 16  # word ids w0..w15; then pad, eos, unk
PAD, EOS = VOCAB, VOCAB + 1


# ---------------------------------------------------------------- the tiny model and tokenizer


def tiny_model_dir():
    vocab = {f"w{i}": i for i in range(VOCAB)}
    vocab.update({"<pad>": PAD, "<eos>": EOS, "<unk>": EOS + 1})
    tk = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=len(vocab), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                    pad_token_id=PAD, eos_token_id=EOS)
    )
    d = tempfile.mkdtemp(prefix="rl-reference-")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d, tok


MODEL_DIR, TOKENIZER = tiny_model_dir()


def f32(x):
    """The float32 rounding TRL applies to reward-function outputs and weights."""
    return None if x is None else float(np.float32(x))


def f32_rows(rows):
    return [[f32(v) for v in row] for row in rows]


class Harness:
    """A real TRL trainer whose generator and model forward return the case's numbers."""

    def __init__(self, trainer_cls, config_cls, n_samples, group_size, n_rewards, **config):
        self.rewards = None  # (n_samples, n_rewards) of float | None
        self.completion_ids = None
        self.logps = {}  # "policy" | "old" | "ref" -> (B, T) tensor
        funcs = []
        for k in range(n_rewards):
            def reward(prompts, completions, _k=k, **kwargs):
                return [row[_k] for row in self.rewards]
            reward.__name__ = f"reward_{k}"
            funcs.append(reward)
        args = config_cls(
            output_dir=tempfile.mkdtemp(prefix="rl-reference-run-"), per_device_train_batch_size=n_samples,
            num_generations=group_size, report_to="none", use_cpu=True, logging_steps=1, **config,
        )
        dataset = Dataset.from_dict({"prompt": ["w1 w2"] * n_samples})
        self.trainer = trainer_cls(model=MODEL_DIR, reward_funcs=funcs, args=args, train_dataset=dataset,
                                   processing_class=TOKENIZER)
        self.trainer.model.train()
        self.trainer._generate = self._generate
        self.trainer._get_per_token_logps_and_entropies = self._logps

    def _generate(self, prompts):
        prompt_ids = [[1, 2] for _ in prompts]
        completions = [" ".join(f"w{i}" for i in ids) for ids in self.completion_ids]
        if isinstance(self.trainer, RLOOTrainer):
            return prompt_ids, self.completion_ids, completions
        return prompt_ids, self.completion_ids, None, completions, None, {}, None, None

    def _logps(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
        ref = getattr(self.trainer, "ref_model", None)
        if model is not None and model is ref:
            lp = self.logps["ref"]
        elif "compute_entropy" in kwargs:  # the call in _compute_loss
            lp = self.logps["policy"]
        else:  # the no-grad pass at generation time
            lp = self.logps["old"]
        assert lp.shape[1] == logits_to_keep, (lp.shape, logits_to_keep)
        return lp, torch.zeros_like(lp), None

    def metric(self, name):
        values = self.trainer._metrics["train"].get(name)
        return values[-1] if values else None


def completion_ids_for(mask_rows, truncated=None):
    """Token ids whose lengths match the mask rows; a row ends in EOS unless truncated."""
    out = []
    for i, row in enumerate(mask_rows):
        n = int(sum(row))
        ids = [3 + (i + t) % 10 for t in range(n)]
        if n and not (truncated and truncated[i]):
            ids[-1] = EOS
        out.append(ids)
    return out


# ---------------------------------------------------------------- GRPO advantages


def grpo_advantage_case(name, rewards, weights, group_size, completion_ids=None):
    rewards, weights = f32_rows(rewards), [f32(w) for w in weights]
    n = len(rewards)
    completion_ids = completion_ids or [[3, EOS]] * n
    out = []
    for aggregation in ["sum_then_normalize", "normalize_then_sum"]:
        for scale in ["group", "batch", "none"]:
            if aggregation == "normalize_then_sum" and scale != "group":
                continue  # TRL ignores scale_rewards there: one case suffices
            h = Harness(GRPOTrainer, GRPOConfig, n, group_size, len(weights), reward_weights=weights,
                        scale_rewards=scale, multi_objective_aggregation=aggregation, max_completion_length=8)
            h.rewards, h.completion_ids = rewards, completion_ids
            adv = h.trainer._generate_and_score_completions([{"prompt": "w1 w2"} for _ in range(n)])["advantages"]
            out.append(dict(name=f"{name}/{aggregation}/{scale}", rewards=rewards, weights=weights,
                            group_size=group_size, aggregation=aggregation, scale_rewards=scale,
                            expected=adv.tolist()))
    return out


def grpo_advantages():
    cases = []
    # rl.md pin [1a]: two prompts, G = 4, weights [1, .5]; B1 has no reward at all.
    cases += grpo_advantage_case("pin_1a", [
        [1, .5], [0, .2], [1, None], [0, .9],
        [0, .3], [None, None], [0, .1], [1, .4],
    ], [1, .5], 4)
    # Random rewards, three rewards with weights, and the edge cases: an all-equal group, a
    # group with one scorable sample, a wholly unscorable group, scattered None values.
    rng = np.random.default_rng(11)
    rows = [[float(v) for v in rng.normal(size=3)] for _ in range(20)]
    rows[0][1] = None
    rows[6][0] = rows[6][2] = None
    rows[4:8] = [[0.5, 1.0, -2.0]] * 3 + [[0.5, 1.0, -2.0]]  # group 1: all equal
    rows[6] = [0.5, None, -2.0]  # ... except a None (sum counts it as 0; GDPO leaves it out)
    rows[8:12] = [[None, None, None], [0.25, None, 1.0], [None, None, None], [None, None, None]]  # one scorable
    rows[12:16] = [[None, None, None]] * 4  # group 3: unscorable
    rows[17][2] = None
    cases += grpo_advantage_case("random", rows, [1.0, 0.5, 2.0], 4)
    # G = 2, one reward: rl.md's gap case (gap 0.6).
    cases += grpo_advantage_case("pair_gap", [[0.2], [0.8], [1.0], [1.0]], [1.0], 2)
    # A single group of 8 with integer-valued rewards (exact in float32).
    cases += grpo_advantage_case("one_group", [[float(v)] for v in [1, 0, 0, 1, 1, 1, 0, 2]], [1.0], 8)
    return cases


def truncation_cases():
    """The completion mask after mask_truncated_completions (TRL's rule: last id not EOS/pad)."""
    ids = [[3, 4, EOS], [3, 4, 5, 6], [7, EOS, PAD], [8], [9, 10, 11, EOS]]
    h = Harness(GRPOTrainer, GRPOConfig, len(ids), len(ids), 1, max_completion_length=8,
                mask_truncated_completions=True)
    h.rewards, h.completion_ids = [[1.0]] * len(ids), ids
    out = h.trainer._generate_and_score_completions([{"prompt": "w1 w2"} for _ in ids])
    return [dict(name="mixed", completion_ids=ids, eos=[EOS], pad=PAD,
                 expected_mask=out["completion_mask"].tolist())]


# ---------------------------------------------------------------- RLOO advantages


def random_logps(rng, n, t, scale=1.0):
    return (-np.abs(rng.normal(size=(n, t))) * scale - 0.1).round(6).tolist()


def mask_rows(lengths, width):
    return [[1.0 if j < n else 0.0 for j in range(width)] for n in lengths]


def rloo_advantages():
    cases = []
    rng = np.random.default_rng(23)
    n, g, width = 8, 4, 5
    lengths = [5, 3, 1, 4, 2, 5, 5, 1]
    rows = [[float(rng.normal())] for _ in range(n)]
    rows[2] = [None]  # one None in group 0
    rows[5], rows[6], rows[7] = [None], [None], [None]  # group 1: one scorable sample
    old, ref = random_logps(rng, n, width), random_logps(rng, n, width)
    mask = mask_rows(lengths, width)
    # rl.md pin [2]: scores [1, 0, .5, .8] and summed KL [2, -1, .5, 4] with beta .05 (one token each).
    pin_old, pin_ref = [[2.0], [-1.0], [0.5], [4.0]], [[0.0], [0.0], [0.0], [0.0]]
    specs = [
        ("pin_2", [[1.0], [0.0], [0.5], [0.8]], [1.0], 4, pin_old, pin_ref, [[1.0]] * 4, 0.05, None, False),
        ("pin_2_normalized", [[1.0], [0.0], [0.5], [0.8]], [1.0], 4, pin_old, pin_ref, [[1.0]] * 4, 0.05, None,
         True),
        ("random_beta0", rows, [1.0], g, old, ref, mask, 0.0, None, False),
        ("random_beta05", rows, [1.0], g, old, ref, mask, 0.05, None, False),
        ("random_beta1_normalized", rows, [1.0], g, old, ref, mask, 0.1, None, True),
        ("random_clip", rows, [1.0], g, old, ref, mask, 0.05, (-0.5, 0.5), False),
    ]
    two = [[float(rng.normal()), float(rng.normal())] for _ in range(6)]
    two[1][0] = None
    two[4] = [None, None]
    specs.append(("two_rewards", two, [1.0, 0.5], 3, random_logps(rng, 6, 3), random_logps(rng, 6, 3),
                  mask_rows([3, 2, 1, 3, 3, 2], 3), 0.05, None, True))
    for name, rew, weights, group, o, r, m, beta, clip, normalize in specs:
        rew, weights = f32_rows(rew), [f32(w) for w in weights]
        cfg = dict(beta=beta, normalize_advantages=normalize, max_completion_length=8, reward_weights=weights)
        if clip is not None:
            cfg["reward_clip_range"] = clip
        h = Harness(RLOOTrainer, RLOOConfig, len(rew), group, len(weights), **cfg)
        h.rewards, h.completion_ids = rew, completion_ids_for(m)
        h.logps = {"old": torch.tensor(o), "ref": torch.tensor(r)}
        out = h.trainer._generate_and_score_completions([{"prompt": "w1 w2"} for _ in rew])
        assert out["completion_mask"].tolist() == [[int(v) for v in row] for row in m]
        cases.append(dict(name=name, rewards=rew, weights=weights, group_size=group, old_logp=o, ref_logp=r,
                          mask=m, beta=beta, reward_clip_range=list(clip) if clip else None,
                          normalize=normalize, expected=out["advantages"].tolist(),
                          expected_kl_metric=h.metric("kl")))
    return cases


# ---------------------------------------------------------------- GRPO losses


def run_grpo_loss(h, micro_batches, ga):
    """TRL's _compute_loss on each micro-batch of one generation batch (as an optimizer step)."""
    t = h.trainer
    t.current_gradient_accumulation_steps = ga
    total_tokens = sum(sum(map(sum, mb["mask"])) for mb in micro_batches)
    results = []
    for mb in micro_batches:
        policy = torch.tensor(mb["logp"], requires_grad=True)
        mask = torch.tensor(mb["mask"]).long()
        b, width = mask.shape
        inputs = {
            "prompt_ids": torch.ones(b, 2, dtype=torch.long), "prompt_mask": torch.ones(b, 2, dtype=torch.long),
            "completion_ids": torch.full((b, width), 3, dtype=torch.long), "completion_mask": mask,
            "advantages": torch.tensor(mb["advantages"]), "num_items_in_batch": torch.tensor(float(total_tokens)),
        }
        if mb.get("old_logp") is not None:
            inputs["old_per_token_logps"] = torch.tensor(mb["old_logp"])
        if t.beta != 0.0:
            inputs["ref_per_token_logps"] = torch.tensor(mb["ref_logp"])
        h.logps = {"policy": policy}
        for v in t._metrics["train"].values():
            v.clear()
        loss = t._compute_loss(t.model, inputs)
        loss.backward()
        results.append(dict(mb, generation_batch_tokens=float(total_tokens), loss=loss.item(),
                            grad=policy.grad.tolist(), kl=h.metric("kl"),
                            clip_low=h.metric("clip_ratio/low_mean"), clip_high=h.metric("clip_ratio/high_mean"),
                            clip_region=h.metric("clip_ratio/region_mean")))
    return results


def grpo_losses():
    cases = []
    # rl.md pin [1c]: beta .04, eps .2 / .28, max_completion_length 4, GA 2, two micro-batches.
    pin = [
        dict(logp=[[-1, -.5, -2], [-.7, 0, 0]], old_logp=[[-1.1, -.3, -2], [-1.2, 0, 0]],
             ref_logp=[[-1.2, -.6, -1.5], [-.9, 0, 0]], mask=[[1, 1, 1], [1, 0, 0]], advantages=[.8, -.5]),
        dict(logp=[[-.4, -.9, 0], [-.3, -1.5, -.8]], old_logp=[[-.4, -1, 0], [-.35, -1.5, -.6]],
             ref_logp=[[-.5, -.8, 0], [-.3, -1.4, -.9]], mask=[[1, 1, 0], [1, 1, 1]], advantages=[1.2, -.3]),
    ]
    for mb in pin:
        mb["mask"] = [[float(v) for v in row] for row in mb["mask"]]
    rng = np.random.default_rng(5)

    def random_batch(b, width, lengths, off_policy):
        logp = random_logps(rng, b, width)
        mb = dict(logp=logp, mask=mask_rows(lengths, width), ref_logp=random_logps(rng, b, width),
                  advantages=rng.normal(size=b).round(6).tolist(), old_logp=None)
        if off_policy:  # ratios around 1, some beyond the clip range on either side
            mb["old_logp"] = (np.array(logp) + rng.normal(scale=0.3, size=(b, width))).round(6).tolist()
        return mb

    random_one = [random_batch(4, 5, [5, 0, 3, 1], True)]  # row 1: an empty completion
    random_two = [random_batch(3, 4, [4, 2, 0], True), random_batch(3, 4, [1, 3, 4], True)]
    on_policy = [random_batch(4, 5, [2, 5, 0, 4], False)]
    all_empty = [random_batch(2, 3, [0, 0], True)]
    # (name, micro-batches, GA, beta, epsilon, epsilon_high, max_completion_length,
    #  use_bias_correction_kl: TRL 1.16's default True multiplies the k3 term by the ratio)
    specs = [
        ("pin_1c", pin, 2, 0.04, 0.2, 0.28, 4, True),
        ("pin_1c_no_bias_correction", pin, 2, 0.04, 0.2, 0.28, 4, False),
        ("random_eps2", random_one, 1, 0.0, 0.2, 0.2, 5, True),
        ("random_eps2_28_beta04", random_one, 1, 0.04, 0.2, 0.28, 5, True),
        ("random_eps2_28_beta04_no_bias_correction", random_one, 1, 0.04, 0.2, 0.28, 5, False),
        ("random_eps1_3_beta1", random_one, 1, 0.1, 0.1, 0.3, 8, True),
        ("random_ga2_beta04", random_two, 2, 0.04, 0.2, 0.28, 6, True),
        ("on_policy_beta04", on_policy, 1, 0.04, 0.2, 0.2, 5, True),
        ("on_policy_beta04_no_bias_correction", on_policy, 1, 0.04, 0.2, 0.2, 5, False),
        ("on_policy_beta0", on_policy, 1, 0.0, 0.2, 0.2, 5, True),
        ("all_empty_beta04", all_empty, 1, 0.04, 0.2, 0.2, 3, True),
    ]
    for name, mbs, ga, beta, eps, eps_high, max_len, bias in specs:
        for loss_type in ["grpo", "bnpo", "dapo", "dr_grpo"]:
            h = Harness(GRPOTrainer, GRPOConfig, 2, 2, 1, loss_type=loss_type, beta=beta, epsilon=eps,
                        epsilon_high=eps_high, max_completion_length=max_len, gradient_accumulation_steps=ga,
                        use_bias_correction_kl=bias)
            cases.append(dict(name=f"{name}/{loss_type}", loss_type=loss_type, beta=beta, epsilon_low=eps,
                              epsilon_high=eps_high, max_completion_length=max_len, gradient_accumulation_steps=ga,
                              use_bias_correction_kl=bias,
                              micro_batches=run_grpo_loss(h, [dict(mb) for mb in mbs], ga)))
    return cases


def rloo_losses():
    cases = []
    rng = np.random.default_rng(7)
    for name, eps, eps_high, lengths in [("eps2", 0.2, 0.2, [3, 1, 0, 2]), ("eps2_28", 0.2, 0.28, [3, 3, 2, 1])]:
        b, width = len(lengths), 3
        logp = random_logps(rng, b, width)
        old = (np.array(logp) + rng.normal(scale=0.25, size=(b, width))).round(6).tolist()
        mask = mask_rows(lengths, width)
        adv = rng.normal(size=b).round(6).tolist()
        h = Harness(RLOOTrainer, RLOOConfig, b, 2, 1, beta=0.0, epsilon=eps, epsilon_high=eps_high,
                    max_completion_length=8)
        policy = torch.tensor(logp, requires_grad=True)
        h.logps = {"policy": policy}
        old_sum = (torch.tensor(old) * torch.tensor(mask)).sum(1)  # as _generate_and_score_completions does
        inputs = {
            "prompt_ids": torch.ones(b, 2, dtype=torch.long), "prompt_mask": torch.ones(b, 2, dtype=torch.long),
            "completion_ids": torch.full((b, width), 3, dtype=torch.long),
            "completion_mask": torch.tensor(mask).long(), "old_logps": old_sum, "advantages": torch.tensor(adv),
        }
        loss = h.trainer._compute_loss(h.trainer.model, inputs)
        loss.backward()
        cases.append(dict(name=name, epsilon_low=eps, epsilon_high=eps_high, logp=logp, old_logp=old, mask=mask,
                          advantages=adv, loss=loss.item(), grad=policy.grad.tolist(),
                          clip_low=h.metric("clip_ratio/low_mean"), clip_high=h.metric("clip_ratio/high_mean"),
                          clip_region=h.metric("clip_ratio/region_mean")))
    return cases


# ---------------------------------------------------------------- OpenRLHF (REINFORCE++-baseline)


def import_openrlhf():
    """OpenRLHF's loss and experience-maker modules, without deepspeed, ray or its __init__s."""
    spec = importlib.util.find_spec("openrlhf")
    root = os.path.dirname(spec.origin)
    for stub in ["deepspeed", "ray"]:
        sys.modules.setdefault(stub, types.ModuleType(stub))
    for pkg in ["openrlhf", "openrlhf.models", "openrlhf.trainer", "openrlhf.trainer.ppo_utils",
                "openrlhf.trainer.ray", "openrlhf.utils"]:
        mod = types.ModuleType(pkg)
        mod.__path__ = [os.path.join(root, *pkg.split(".")[1:])]
        sys.modules[pkg] = mod
    launcher = types.ModuleType("openrlhf.trainer.ray.launcher")
    launcher.RayActorGroup = object
    sys.modules["openrlhf.trainer.ray.launcher"] = launcher
    import openrlhf.models.loss as loss
    import openrlhf.models.utils as utils
    import openrlhf.trainer.ppo_utils.experience as experience
    import openrlhf.trainer.ppo_utils.experience_maker as maker
    from importlib.metadata import version
    return loss, utils, experience, maker, version("openrlhf")


def ns(**kw):
    return types.SimpleNamespace(**kw)


def reinforce_advantages(orl):
    loss_mod, utils, experience, maker, _ = orl
    cases = []
    rng = np.random.default_rng(31)
    # rl.md pin [4]: n = 2, scores [1, 0, .2, .6], masks [111, 110, 111, 100], k1 as given, beta .05.
    pin_kl = [[.1, -.05, .2], [.3, 0, 0], [-.1, .1, .05], [.4, 0, 0]]
    specs = [("pin_4", [1.0, 0.0, 0.2, 0.6], 2, [[v for v in row] for row in pin_kl], [[0.0] * 3] * 4,
              mask_rows([3, 2, 3, 1], 3), 0.05, False)]
    n, width = 8, 5
    scores = rng.normal(size=n).round(6).tolist()
    scores[3] = 25.0  # beyond the default reward clip of 10 after the baseline
    old, ref = random_logps(rng, n, width), random_logps(rng, n, width)
    mask = mask_rows([5, 3, 0, 4, 2, 5, 1, 5], width)  # row 2: an empty completion
    specs += [("random_beta01", scores, 4, old, ref, mask, 0.01, False),
              ("random_beta0", scores, 4, old, ref, mask, 0.0, False),
              ("random_beta05_no_std", scores, 4, old, ref, mask, 0.05, True),
              ("all_equal_beta0", [0.5] * 4, 2, old[:4], ref[:4], mask_rows([2, 3, 4, 5], width), 0.0, False)]
    for name, s, group, o, r, m, beta, no_std in specs:
        args = ns(algo=ns(advantage=ns(estimator="reinforce_baseline", gamma=1.0, no_std_norm=no_std),
                          kl=ns(use_loss=False, estimator="k1")),
                  rollout=ns(n_samples_per_prompt=group), reward=ns(clip_range=(-10.0, 10.0)))
        fake = ns(strategy=ns(args=args), kl_ctl=ns(value=beta), advantage_estimator="reinforce_baseline")
        fake.get_cumulative_returns = types.MethodType(maker.RemoteExperienceMaker.get_cumulative_returns, fake)
        # Two experiences (rollout micro-batches), as make_experience hands them over.
        half = len(s) // 2
        exps = []
        for lo, hi in [(0, half), (half, len(s))]:
            am = torch.tensor(m[lo:hi]).bool()
            # OpenRLHF's compute_approx_kl casts to float32 (`.float()`), and the rewards and
            # returns then follow the KL's dtype. Its k1 branch is the clamped difference
            # (openrlhf/models/utils.py, compute_approx_kl: `log_ratio.clamp(min=-10, max=10)`);
            # that line is taken in float64 here, after checking it against the function,
            # so the comparison measures the formulas rather than float32 rounding.
            o_t, r_t = torch.tensor(o[lo:hi]), torch.tensor(r[lo:hi])
            kl = (o_t - r_t).clamp(min=-10, max=10)
            kl32 = utils.compute_approx_kl(o_t, r_t, kl_estimator="k1")
            assert torch.allclose(kl, kl32.double(), atol=1e-6)
            exps.append(experience.Experience(action_mask=am, rewards=torch.tensor(s[lo:hi]), kl=kl,
                                              index=list(range(lo, hi)), info={}))
        maker.RemoteExperienceMaker.compute_advantages_and_returns(fake, exps)
        adv = torch.cat([e.advantages for e in exps]) * torch.tensor(m)  # masked positions are never used
        cases.append(dict(name=name, scores=s, group_size=group, old_logp=o, ref_logp=r, mask=m, beta=beta,
                          reward_clip_range=[-10.0, 10.0], no_std_norm=no_std, expected=adv.tolist()))
    return cases


def reinforce_losses(orl):
    loss_mod = orl[0]
    cases = []
    rng = np.random.default_rng(41)
    for name, eps, eps_high, dual in [("eps2", 0.2, 0.2, None), ("eps2_28_dual3", 0.2, 0.28, 3.0)]:
        b, width = 4, 4
        logp = random_logps(rng, b, width)
        old = (np.array(logp) + rng.normal(scale=0.4, size=(b, width))).round(6).tolist()
        mask = mask_rows([4, 0, 2, 3], width)
        adv = rng.normal(size=(b, width)).round(6).tolist()
        policy = torch.tensor(logp, requires_grad=True)
        fn = loss_mod.PolicyLoss(clip_eps_low=eps, clip_eps_high=eps_high, dual_clip=dual, token_level_loss=True)
        loss, clip_ratio, ppo_kl = fn(policy, torch.tensor(old), torch.tensor(adv),
                                      action_mask=torch.tensor(mask).bool())[:3]
        loss.backward()
        cases.append(dict(name=name, epsilon_low=eps, epsilon_high=eps_high, dual_clip=dual, logp=logp, old_logp=old,
                          mask=mask, advantages=adv, loss=loss.item(), grad=policy.grad.tolist(),
                          clip_ratio=clip_ratio.item(), ppo_kl=ppo_kl.item()))
    return cases


def main():
    data = {
        "versions": {"trl": trl.__version__, "torch": torch.__version__, "transformers": transformers.__version__},
        "grpo_advantages": grpo_advantages(),
        "truncation": truncation_cases(),
        "rloo_advantages": rloo_advantages(),
        "grpo_losses": grpo_losses(),
        "rloo_losses": rloo_losses(),
    }
    # Last: the deepspeed / ray stubs would confuse accelerate's package probing in TRL.
    orl = import_openrlhf()
    data["versions"]["openrlhf"] = orl[4]
    data["reinforce_advantages"] = reinforce_advantages(orl)
    data["reinforce_losses"] = reinforce_losses(orl)

    def clean(x):  # NaN has no JSON form; none is expected, so fail loudly
        if isinstance(x, float):
            assert math.isfinite(x), x
        elif isinstance(x, dict):
            for v in x.values():
                clean(v)
        elif isinstance(x, list):
            for v in x:
                clean(v)

    clean(data)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, indent=None, separators=(",", ":"))
        f.write("\n")
    counts = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    print(f"wrote {OUT}: {counts}")


if __name__ == "__main__":
    main()
