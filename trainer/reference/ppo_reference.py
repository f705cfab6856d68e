"""Legacy TRL (v0.11.4) PPO references for trainer's PPO numerics.

Runs the real `trl==0.11.4` code (the last release line with the old `PPOTrainer`, see
shared/docs/rl.md section 5.2 / 5.3 / 5.5) on fixed cases, in float64, and writes what it
computes to trainer/reference/data/rl/ppo_cases.json, for the Rust replay to compare
within 1e-6:

  rewards        trl/trainer/ppo_trainer.py: PPOTrainer.compute_rewards (with
                 PPOTrainer._kl_penalty) for kl_penalty "kl" | "abs" | "mse" | "full".
                 The KL term is NOT masked here (padded / prompt positions get -beta*kl too;
                 compute_advantages masks the rewards later); the score is added at the last
                 position whose mask is 1. For "full", `logprobs` / `ref_logprobs` are
                 (B, T, V) full log-softmax distributions and kl_t = sum_v p (log p - log q)
                 (F.kl_div(ref, logprob, log_target=True).sum(-1)); for the others (B, T).
  advantages     PPOTrainer.compute_advantages: V and r multiplied by the mask, optional
                 `whiten_rewards` (trl/core.py masked_whiten, shift_mean=False), GAE over the
                 full width, returns = A + V (masked V), A = masked_whiten(A, mask) as
                 returned (masked positions keep their whitened non-zero value). Includes the
                 rl.md [5b] legacy-TRL pin (asserted to 1e-6).
  whiten         trl/core.py masked_whiten (masked_mean, masked_var with Bessel, + 1e-8);
                 includes rl.md [5e] (asserted).
  losses         PPOTrainer.loss (uses trl/core.py clip_by_value, masked_mean, masked_var,
                 entropy_from_logits, flatten_dict). `loss` returns
                 (pg_loss, vf_coef * vf_loss, stats); recorded: pg_loss (returned),
                 vf_loss = stats["loss/value"] (unscaled), loss = stats["loss/total"]
                 (= pg + vf_coef * vf, zeroed when masked-mean ratio > ratio_threshold),
                 pg_clipfrac = stats["policy/clipfrac"], vf_clipfrac = stats["val/clipfrac"],
                 entropy = stats["policy/entropy"], approxkl = stats["policy/approxkl"]
                 (0.5 masked-mean (l - l_old)^2), policykl = stats["policy/policykl"]
                 (masked-mean (l_old - l)), ratio_mean = masked_mean(ratio, mask) (the
                 `avg_ratio` the method compares with ratio_threshold; stats only holds the
                 full ratio tensor, written as `ratio`). grad_logprobs / grad_vpreds are
                 torch autograd of (pg_loss + vf_coef * vf_loss) -- what train_minibatch
                 backpropagates -- w.r.t. `logprobs` and `vpreds` given as leaf tensors.
                 Includes rl.md [5c] (asserted). Ties: torch.max / torch.min (clip_by_value)
                 split the gradient 50/50 between equal arguments. Inside the clip ranges the
                 two branches are equal and the halves add back to the unclipped gradient, so
                 only a ratio or value prediction lying exactly on a clip boundary differs
                 from a "pick one branch" gradient. One case does: pin_5c_vclip05
                 (V_old .5 + .5 = V 1 exactly), whose grad_vpreds is 0.75 of the unclipped
                 gradient (-0.0075 instead of -0.01); it carries clip_boundary_tie = true
                 (all other cases false) so a replay can skip or special-case its gradient.
  kl_controller  trl/trainer/utils.py AdaptiveKLController.update (and FixedKLController);
                 includes rl.md [5d] (asserted). In PPOTrainer.step the update is called as
                 kl_ctl.update(mean over the batch of sum_t kl_t, batch_size * num_processes).
  early_stop     PPOTrainer._early_stop: with early_stopping True and not distributed,
                 returns policykl > 1.5 * target_kl (strict) and then zeroes the optimizer's
                 grads. The distributed branch (is_distributed) first all-reduces policykl
                 and divides by num_processes (the cross-process mean), then does the same
                 comparison; it is not exercised here. early_stopping False returns False.
                 In step() it is checked once per PPO epoch, on the last minibatch's
                 stats["policy/policykl"].

How the methods are called: they are plain functions of `self` that read only a few
attributes, so each is called unbound, PPOTrainer.method(stand_in, ...), on a
types.SimpleNamespace holding exactly what it reads:
  compute_rewards   self.kl_ctl.value, self._kl_penalty (PPOTrainer._kl_penalty bound to the
                    stand-in), self.config.kl_penalty
  compute_advantages self.config.gamma, .lam, .whiten_rewards
  loss              self.config.cliprange, .cliprange_value, .vf_coef, .ratio_threshold
  _early_stop       self.config.early_stopping, .target_kl, self.is_distributed (False),
                    self.optimizer.zero_grad (a recorder)
`score_clip`, `use_score_scaling` and `use_score_norm` are applied in PPOTrainer.step before
compute_rewards (score_clip via a float32 torch.clip), not in any method above, so no case
here covers them. Everything is float64 (torch.set_default_dtype(torch.float64)); masks are
float64 0/1 (the trainer passes long masks; the numbers are the same).

Install (outside the repository; nothing is installed by this script) and run from the
repository root:

    python3 -m venv /work/venv-trl011
    /work/venv-trl011/bin/pip install "trl==0.11.4" "transformers<4.46" torch accelerate datasets rich
    /work/venv-trl011/bin/python trainer/reference/ppo_reference.py

(trl 0.11.4 imports `rich` from trl.trainer.utils without declaring it.) Versions are
written into the JSON.
"""

import json
import math
import os
import platform
import types
import warnings

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import trl  # noqa: E402
from trl.core import masked_mean, masked_whiten  # noqa: E402
from trl.trainer.ppo_trainer import PPOTrainer  # noqa: E402
from trl.trainer.utils import AdaptiveKLController, FixedKLController  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "rl", "ppo_cases.json")
TOL = 1e-6


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def lst(x):
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64).tolist()
    return x


def flat(x):
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in flat(item)]
    return [float(x)]


def close(got, want, what):
    got = np.asarray(flat(got), dtype=np.float64)
    want = np.asarray(flat(want), dtype=np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = np.max(np.abs(got - want))
    assert err <= TOL, f"{what}: {got} vs {want} (max err {err})"


def stand_in(kl_coef=None, **config):
    s = types.SimpleNamespace(config=types.SimpleNamespace(**config))
    if kl_coef is not None:
        s.kl_ctl = types.SimpleNamespace(value=kl_coef)
    s._kl_penalty = types.MethodType(PPOTrainer._kl_penalty, s)
    return s


# ---------------------------------------------------------------- inputs

# rl.md [5a]/[5b] inputs (seq0 right-padded; its pad slot gets arbitrary log-probs, which the
# legacy trainer does compute and compute_rewards does not mask).
PIN_LOGP = [[-1.0, -0.5, -0.2, -0.3], [-0.8, -1.2, -0.4, -0.9]]
PIN_REF = [[-1.1, -0.7, -0.2, -0.9], [-0.6, -1.2, -0.5, -1.0]]
PIN_MASK = [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
PIN_SCORES = [1.0, -0.5]
PIN_VALUES = [[0.3, 0.4, 0.6, 0.7], [0.2, 0.1, 0.0, -0.1]]
PIN_REWARDS = [[-0.005, -0.01, 1.0, 0.0], [0.01, 0.0, -0.005, -0.505]]
PIN_5B_A = [[1.229495, 1.113545, 0.8171317], [-0.9735512, -0.8659063, -0.7342422, -0.5864716]]

# Masks as the legacy trainer builds them over query + response: leading zeros for the
# prompt, trailing zeros for right padding, and one row with a single token.
MASK_3x5 = [[0.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0]]
MASK_4x6 = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    [0.0, 0.0, 1.0, 1.0, 1.0, 0.0],
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 1.0, 1.0, 0.0, 0.0],
]
MASK_2x3 = [[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]


def rnd(gen, shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)


# ---------------------------------------------------------------- rewards


def reward_case(name, kl_coef, kl_penalty, scores, logprobs, ref_logprobs, mask):
    s = stand_in(kl_coef=kl_coef, kl_penalty=kl_penalty)
    rewards, non_score, kls = PPOTrainer.compute_rewards(s, t(scores), t(logprobs), t(ref_logprobs), t(mask))
    return {
        "name": name,
        "kl_coef": kl_coef,
        "kl_penalty": kl_penalty,
        "scores": lst(scores),
        "logprobs": lst(logprobs),
        "ref_logprobs": lst(ref_logprobs),
        "mask": lst(mask),
        "rewards": lst(rewards),
        "non_score_rewards": lst(non_score),
        "kls": lst(kls),
    }


def reward_cases():
    gen = torch.Generator().manual_seed(11)
    cases = [reward_case("pin_5b_kl", 0.05, "kl", PIN_SCORES, PIN_LOGP, PIN_REF, PIN_MASK)]
    # The pin's rewards on the real positions (the pad slot differs: -beta*kl is not masked).
    r = cases[0]["rewards"]
    close([r[0][:3], r[1]], [PIN_REWARDS[0][:3], PIN_REWARDS[1]], "pin_5b rewards")
    for pen, beta in (("kl", 0.2), ("abs", 0.2), ("mse", 0.1)):
        lp = rnd(gen, (3, 5), -3.0, -0.1)
        ref = rnd(gen, (3, 5), -3.0, -0.1)
        sc = rnd(gen, (3,), -2.0, 2.0)
        cases.append(reward_case(f"rand_{pen}_3x5", beta, pen, sc, lp, ref, MASK_3x5))
    lp = rnd(gen, (4, 6), -2.5, -0.05)
    ref = rnd(gen, (4, 6), -2.5, -0.05)
    sc = rnd(gen, (4,), -1.0, 3.0)
    cases.append(reward_case("rand_kl_4x6", 0.037, "kl", sc, lp, ref, MASK_4x6))
    # "full": full (B, T, V) log-softmax distributions, V = 5.
    lp = torch.log_softmax(rnd(gen, (2, 3, 5), -2.0, 2.0), dim=-1)
    ref = torch.log_softmax(rnd(gen, (2, 3, 5), -2.0, 2.0), dim=-1)
    cases.append(reward_case("rand_full_2x3x5", 0.2, "full", [0.7, -1.3], lp, ref, MASK_2x3))
    return cases


# ---------------------------------------------------------------- advantages


def advantage_case(name, gamma, lam, whiten_rewards, values, rewards, mask):
    s = stand_in(gamma=gamma, lam=lam, whiten_rewards=whiten_rewards)
    v_masked, adv, ret = PPOTrainer.compute_advantages(s, t(values), t(rewards), t(mask))
    return {
        "name": name,
        "gamma": gamma,
        "lam": lam,
        "whiten_rewards": whiten_rewards,
        "values": lst(values),
        "rewards": lst(rewards),
        "mask": lst(mask),
        "advantages": lst(adv),
        "returns": lst(ret),
        "masked_values": lst(v_masked),
    }


def advantage_cases():
    gen = torch.Generator().manual_seed(22)
    pin = advantage_case("pin_5b", 1.0, 0.95, False, PIN_VALUES, PIN_REWARDS, PIN_MASK)
    a = pin["advantages"]
    close([a[0][:3], a[1]], PIN_5B_A, "pin_5b whitened advantages")
    cases = [pin, advantage_case("pin_5b_whiten_rewards", 1.0, 0.95, True, PIN_VALUES, PIN_REWARDS, PIN_MASK)]
    for whiten in (False, True):
        for mask, (gamma, lam) in ((MASK_3x5, (1.0, 0.95)), (MASK_4x6, (0.99, 0.9))):
            b, n = len(mask), len(mask[0])
            cases.append(advantage_case(
                f"rand_{b}x{n}_g{gamma}_l{lam}_wr{int(whiten)}", gamma, lam, whiten,
                rnd(gen, (b, n), -1.0, 1.0), rnd(gen, (b, n), -0.5, 1.5), mask,
            ))
    return cases


# ---------------------------------------------------------------- whiten


def whiten_case(name, values, mask, shift_mean):
    out = masked_whiten(t(values), t(mask), shift_mean=shift_mean)
    return {"name": name, "values": lst(values), "mask": lst(mask), "shift_mean": shift_mean, "out": lst(out)}


def whiten_cases():
    gen = torch.Generator().manual_seed(33)
    c = whiten_case("pin_5e", [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0], True)
    close(c["out"][:2], [-1.161895, -0.3872983], "pin_5e")
    cases = [c, whiten_case("pin_5e_keep_mean", [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0], False)]
    for shift in (True, False):
        cases.append(whiten_case(f"rand_3x5_shift{int(shift)}", rnd(gen, (3, 5), -2.0, 3.0), MASK_3x5, shift))
        cases.append(whiten_case(f"rand_4x6_shift{int(shift)}", rnd(gen, (4, 6), -1.0, 1.0), MASK_4x6, shift))
    return cases


# ---------------------------------------------------------------- losses


def loss_case(name, cfg, old_logprobs, values, logits, vpreds, logprobs, mask, advantages, returns, tie=False):
    s = stand_in(**cfg)
    lp = t(logprobs).clone().requires_grad_(True)
    vp = t(vpreds).clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pg_loss, vf_scaled, stats = PPOTrainer.loss(
            s, t(old_logprobs), t(values), t(logits), vp, lp, t(mask), t(advantages), t(returns)
        )
    total = pg_loss + vf_scaled
    total.backward()
    ratio = torch.exp(lp.detach() - t(old_logprobs))
    out = {
        "name": name,
        **cfg,
        "old_logprobs": lst(old_logprobs),
        "values": lst(values),
        "logits": lst(logits),
        "vpreds": lst(vpreds),
        "logprobs": lst(logprobs),
        "mask": lst(mask),
        "advantages": lst(advantages),
        "returns": lst(returns),
        "pg_loss": float(pg_loss),
        "vf_loss": float(stats["loss/value"]),
        "vf_loss_scaled": float(vf_scaled),
        "loss": float(stats["loss/total"]),
        "pg_clipfrac": float(stats["policy/clipfrac"]),
        "vf_clipfrac": float(stats["val/clipfrac"]),
        "entropy": float(stats["policy/entropy"]),
        "approxkl": float(stats["policy/approxkl"]),
        "policykl": float(stats["policy/policykl"]),
        "ratio_mean": float(masked_mean(ratio, t(mask))),
        "ratio": lst(stats["policy/ratio"]),
        "skipped": bool(float(masked_mean(ratio, t(mask))) > cfg["ratio_threshold"]),
        "clip_boundary_tie": tie,
        "grad_logprobs": lst(lp.grad),
        "grad_vpreds": lst(vp.grad),
    }
    close(out["loss"], float(total), name + " total")
    return out


DEFAULT_LOSS_CFG = {"cliprange": 0.2, "cliprange_value": 0.2, "vf_coef": 0.1, "ratio_threshold": 10.0}


def loss_cases():
    gen = torch.Generator().manual_seed(44)
    cases = []

    # rl.md [5c]: every token has rho = 4, A = -1, V_old .5, V 1, R 1.5 (B 2, T 3, padded).
    b, n = 2, 3
    mask = [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    full = lambda x: [[x] * n for _ in range(b)]  # noqa: E731
    logits = rnd(gen, (b, n, 5), -2.0, 2.0)
    base = dict(old_logprobs=full(-1.0), values=full(0.5), logits=logits, vpreds=full(1.0),
                logprobs=full(-1.0 + math.log(4.0)), mask=mask, advantages=full(-1.0))
    c = loss_case("pin_5c", dict(DEFAULT_LOSS_CFG), returns=full(1.5), **base)
    close([c["pg_loss"], c["vf_loss"], c["ratio_mean"]], [4.0, 0.32, 4.0], "pin_5c")
    cases.append(c)
    c = loss_case("pin_5c_vclip05", dict(DEFAULT_LOSS_CFG, cliprange_value=0.5), returns=full(1.5), tie=True,
                  **base)
    close(c["vf_loss"], 0.125, "pin_5c vclip .5")
    close(c["grad_vpreds"][1], [-0.0075] * 3, "pin_5c vclip .5 tie gradient")
    cases.append(c)
    c = loss_case("pin_5c_return0", dict(DEFAULT_LOSS_CFG), returns=full(0.0), **base)
    close(c["vf_loss"], 0.5, "pin_5c R 0")
    cases.append(c)

    # Hand-placed: each (ratio, A) combination and value predictions in / out of the value clip.
    # Row 0: A > 0 with rho 1.5 (clipped), .6 (unclipped), 1.05 (inside); A < 0 with rho .6 (clipped).
    # Row 1: A < 0 with rho 1.5 (unclipped), 1.1 (inside), .9 (inside), last token padded.
    ratios = [[1.5, 0.6, 1.05, 0.6], [1.5, 1.1, 0.9, 2.0]]
    adv = [[0.8, 0.5, 1.2, -0.7], [-0.9, -0.4, -1.1, 0.3]]
    old = [[-1.2, -0.7, -2.1, -0.4], [-0.9, -1.6, -0.3, -1.0]]
    lp = [[o + math.log(r) for o, r in zip(orow, rrow)] for orow, rrow in zip(old, ratios)]
    vals = [[0.1, -0.3, 0.5, 0.0], [0.2, 0.4, -0.2, 0.6]]
    # vpreds: inside (|d| < .2) and outside (|d| > .2) the clip, on both sides; returns on
    # either side so that the clipped branch is the max in some tokens and not in others.
    vpreds = [[0.25, -0.7, 0.55, 0.45], [-0.35, 0.48, 0.3, 0.1]]
    rets = [[0.9, -1.0, 0.2, -0.5], [0.6, 0.0, 0.5, 0.2]]
    mask = [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]]
    logits = rnd(gen, (2, 4, 5), -3.0, 3.0)
    for cfg_name, cfg in (("default", dict(DEFAULT_LOSS_CFG)),
                          ("clip03_vclip01_vf05", {"cliprange": 0.3, "cliprange_value": 0.1, "vf_coef": 0.5,
                                                   "ratio_threshold": 10.0})):
        cases.append(loss_case(f"placed_2x4_{cfg_name}", cfg, old, vals, logits, vpreds, lp, mask, adv, rets))

    # Random, with prompt (leading) and right padding and a single-token row.
    for mask, seed_shift in ((MASK_3x5, 0), (MASK_4x6, 1)):
        b, n = len(mask), len(mask[0])
        old = rnd(gen, (b, n), -3.0, -0.2)
        lp = old + rnd(gen, (b, n), -0.6, 0.5)
        vals = rnd(gen, (b, n), -1.0, 1.0)
        vpreds = vals + rnd(gen, (b, n), -0.5, 0.5)
        cases.append(loss_case(
            f"rand_{b}x{n}", dict(DEFAULT_LOSS_CFG), old, vals, rnd(gen, (b, n, 5), -3.0, 3.0), vpreds, lp,
            mask, rnd(gen, (b, n), -1.5, 1.5), vals + rnd(gen, (b, n), -1.0, 1.0),
        ))

    # Mean ratio above ratio_threshold: the batch is skipped (losses and gradients zero).
    b, n = 3, 5
    old = rnd(gen, (b, n), -3.0, -1.0)
    lp = old + rnd(gen, (b, n), 1.0, 1.6)  # ratios 2.7 .. 5
    vals = rnd(gen, (b, n), -1.0, 1.0)
    c = loss_case("ratio_threshold_skip", dict(DEFAULT_LOSS_CFG, ratio_threshold=2.5), old, vals,
                  rnd(gen, (b, n, 5), -3.0, 3.0), vals + rnd(gen, (b, n), -0.5, 0.5), lp, MASK_3x5,
                  rnd(gen, (b, n), -1.5, 1.5), vals + rnd(gen, (b, n), -1.0, 1.0))
    assert c["skipped"] and c["loss"] == 0.0 and c["ratio_mean"] > 2.5
    cases.append(c)
    # The same inputs just under the threshold: not skipped.
    c2 = loss_case("ratio_threshold_keep", dict(DEFAULT_LOSS_CFG, ratio_threshold=10.0),
                   **{k: cases[-1][k] for k in ("old_logprobs", "values", "logits", "vpreds", "logprobs",
                                                "mask", "advantages", "returns")})
    assert not c2["skipped"] and c2["loss"] != 0.0
    cases.append(c2)
    return cases


# ---------------------------------------------------------------- KL controller


def kl_case(name, kind, init, target, horizon, updates):
    ctl = AdaptiveKLController(init, target, horizon) if kind == "adaptive" else FixedKLController(init)
    values = []
    for current, n_steps in updates:
        ctl.update(current, n_steps)
        values.append(float(ctl.value))
    return {"name": name, "type": kind, "init": init, "target": target, "horizon": horizon,
            "updates": [[float(c), n] for c, n in updates], "values": values}


def kl_cases():
    cases = []
    for kl, want in ((8.0, 0.200512), (6.6, 0.200256), (3.0, 0.199488)):
        c = kl_case(f"pin_5d_kl{kl}", "adaptive", 0.2, 6.0, 10000, [[kl, 128]])
        close(c["values"], [want], c["name"])
        cases.append(c)
    cases.append(kl_case("adaptive_sequence", "adaptive", 0.2, 6.0, 10000,
                         [[8.0, 128], [7.0, 256], [5.5, 64], [1.0, 512], [20.0, 128], [6.0, 128], [-0.5, 32]]))
    cases.append(kl_case("adaptive_short_horizon", "adaptive", 0.05, 0.1, 100,
                         [[0.3, 16], [0.12, 16], [0.0, 16], [0.095, 8], [0.2, 64]]))
    cases.append(kl_case("fixed", "fixed", 0.1, None, None, [[8.0, 128], [0.0, 64], [100.0, 1]]))
    return cases


# ---------------------------------------------------------------- early stopping


def early_stop_case(name, early_stopping, target_kl, policykl):
    zeroed = []
    s = types.SimpleNamespace(
        config=types.SimpleNamespace(early_stopping=early_stopping, target_kl=target_kl),
        is_distributed=False,
        optimizer=types.SimpleNamespace(zero_grad=lambda: zeroed.append(True)),
    )
    stop = PPOTrainer._early_stop(s, torch.tensor(policykl, dtype=torch.float64))
    return {"name": name, "early_stopping": early_stopping, "target_kl": target_kl, "policykl": policykl,
            "early_stop": bool(stop), "zero_grad_called": bool(zeroed)}


def early_stop_cases():
    cases = [
        early_stop_case("default_target_below", True, 1.0, 1.4),
        early_stop_case("default_target_equal", True, 1.0, 1.5),
        early_stop_case("default_target_above", True, 1.0, 1.5000001),
        early_stop_case("default_target_far_above", True, 1.0, 3.2),
        early_stop_case("small_target_above", True, 0.1, 0.2),
        early_stop_case("small_target_below", True, 0.1, 0.1),
        early_stop_case("negative_policykl", True, 0.1, -0.5),
        early_stop_case("disabled", False, 0.1, 5.0),
    ]
    want = [False, False, True, True, True, False, False, False]
    assert [c["early_stop"] for c in cases] == want, [c["early_stop"] for c in cases]
    return cases


def main():
    data = {
        "versions": {"trl": trl.__version__, "torch": torch.__version__, "python": platform.python_version(),
                     "numpy": np.__version__},
        "rewards": reward_cases(),
        "advantages": advantage_cases(),
        "whiten": whiten_cases(),
        "losses": loss_cases(),
        "kl_controller": kl_cases(),
        "early_stop": early_stop_cases(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(OUT, {k: len(v) for k, v in data.items() if isinstance(v, list)})


if __name__ == "__main__":
    main()
