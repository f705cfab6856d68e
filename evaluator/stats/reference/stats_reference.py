#!/usr/bin/env python3
"""Reference numbers for evaluator-stats, computed independently with NumPy/SciPy.

Run from the repository root:

    python3 -m pip install numpy scipy   # once
    python3 evaluator/stats/reference/stats_reference.py

and copy the printed constants into evaluator/stats/tests/reference.rs. The data
sets below are duplicated verbatim in that file; change both together.

Independence from the Rust code:
- z values come from scipy.stats.norm.ppf.
- Wilson bounds are found by root-finding on the score test's definition
  |p_hat - p0| = z * sqrt(p0 (1 - p0) / n), not from the closed form.
- Bradley-Terry is fitted like FastChat: scipy.optimize.minimize(L-BFGS-B) on the
  weighted log-loss over unique (a, b, outcome) rows, with the same Gaussian
  prior as the Rust code (polished by SciPy's trust-exact method), and once
  without the prior, mean-centred, as FastChat does.
- The length-controlled fit minimises the penalised soft-label log-loss with
  BFGS.
- Pareto fronts are brute-force pairwise comparisons; hypervolumes are exact
  inclusion-exclusion over all subsets of points.
"""

import itertools
import math

import numpy as np
from scipy import optimize, stats

np.set_printoptions(precision=17)


def show(name, value):
    """Print a constant in a form that pastes into Rust."""
    if isinstance(value, (list, tuple, np.ndarray)):
        body = ", ".join(repr(float(v)) for v in value)
        print(f"{name} = [{body}]")
    else:
        print(f"{name} = {float(value)!r}")


# ---------------------------------------------------------------- normal quantile
PROBS = [1e-6, 0.001, 0.025, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975, 0.995, 0.9995]
CONFIDENCES = [0.5, 0.8, 0.9, 0.95, 0.99, 0.999]
print("# normal quantiles")
show("PPF", [stats.norm.ppf(p) for p in PROBS])
show("Z", [stats.norm.ppf(1 - (1 - c) / 2) for c in CONFIDENCES])

# ---------------------------------------------------------------- summary
SUMMARY_A = [1, 0.5, 0, 1, 1, 0.5, 0, 1, 1, 0.5]
SUMMARY_B = [0.12, 3.4, -1.7, 2.25, 0.0, 5.5, -0.3]
print("# summary: mean, sem (ddof=1)")
for name, v in [("SUMMARY_A", SUMMARY_A), ("SUMMARY_B", SUMMARY_B)]:
    show(name + "_MEAN_SEM", [np.mean(v), stats.sem(v)])

# ---------------------------------------------------------------- pair counts
COUNTS = [(37, 21, 12), (5, 0, 0), (0, 0, 10), (1, 1, 0), (123, 456, 78), (0, 3, 1)]
WILSON_CONF = [0.95, 0.9, 0.99]


def wilson_by_root(successes, n, conf):
    """Wilson bounds as the p0 where the score statistic equals z."""
    z = stats.norm.ppf(1 - (1 - conf) / 2)
    p_hat = successes / n

    def score(p0):
        return abs(p_hat - p0) - z * math.sqrt(p0 * (1 - p0) / n)

    # score(0) = p_hat and score(1) = 1 - p_hat are >= 0, score < 0 just
    # beside p_hat: one root on each side (p0 = 0 or 1 exactly at the edges).
    eps = 1e-12
    lo = 0.0 if p_hat == 0 else optimize.brentq(
        score, 0.0, min(p_hat, 1 - eps), xtol=1e-15, rtol=1e-15)
    hi = 1.0 if p_hat == 1 else optimize.brentq(
        score, max(p_hat, eps), 1.0, xtol=1e-15, rtol=1e-15)
    return lo, hi


print("# pair counts (wins, losses, ties): win_rate, win_rate_excluding_ties (nan = None)")
for w, l, t in COUNTS:
    n = w + l + t
    excl = w / (w + l) if w + l > 0 else float("nan")
    row = [(w + t / 2) / n, excl]
    for conf in WILSON_CONF:
        row.extend(wilson_by_root(w + t / 2, n, conf))
    show(f"COUNTS_{w}_{l}_{t}  # rate, excl, wilson95 lo/hi, wilson90 lo/hi, wilson99 lo/hi", row)

# ---------------------------------------------------------------- Bradley-Terry
# (a, b, a wins, ties, b wins); outcome 1 = a wins, 0.5 tie, 0 = b wins.
BT_CONNECTED = [
    (0, 1, 12, 3, 5),
    (0, 2, 9, 4, 7),
    (0, 3, 15, 2, 3),
    (1, 2, 8, 5, 8),
    (1, 3, 11, 1, 6),
    (2, 3, 10, 6, 4),
    (3, 4, 7, 2, 9),
    (0, 4, 6, 3, 8),
    (2, 4, 5, 5, 5),
    (4, 1, 10, 2, 7),
]
BT_UNDEFEATED = [
    (0, 1, 3, 0, 0),
    (2, 0, 0, 0, 3),
    (1, 2, 4, 2, 3),
]
PRIOR = 1e-4


def unique_rows(table):
    """FastChat-style unique (a, b, outcome) rows with counts as weights."""
    rows = []
    for a, b, wa, t, wb in table:
        for outcome, count in [(1.0, wa), (0.5, t), (0.0, wb)]:
            if count:
                rows.append((a, b, outcome, count))
    a = np.array([r[0] for r in rows])
    b = np.array([r[1] for r in rows])
    y = np.array([r[2] for r in rows])
    w = np.array([r[3] for r in rows], dtype=float)
    return a, b, y, w


def bt_fit(table, n, prior):
    a, b, y, w = unique_rows(table)
    alpha = math.log(10.0)

    def loss_and_grad(r):
        logits = alpha * (r[a] - r[b])
        # -[y log s(z) + (1-y) log s(-z)] with logaddexp for stability
        loss = np.sum(w * (y * np.logaddexp(0, -logits) + (1 - y) * np.logaddexp(0, logits)))
        loss += 0.5 * prior * np.sum(r * r)
        g_logit = w * (stats.logistic.cdf(logits) - y) * alpha
        grad = prior * r
        np.add.at(grad, a, g_logit)
        np.add.at(grad, b, -g_logit)
        return loss, grad

    res = optimize.minimize(
        loss_and_grad,
        np.zeros(n),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100000, "gtol": 1e-13, "ftol": 1e-17, "maxcor": 20},
    )
    x = res.x
    if prior > 0:
        # L-BFGS-B stops at |gradient| ~ 1e-10; along an undefeated system's
        # direction the curvature is only ~prior, which leaves ~1e-4 Elo of
        # error. Polish by solving gradient = 0 with MINPACK's hybrid method
        # (scipy.optimize.root), which, unlike a minimiser, does not need the
        # loss to resolve decreases below its rounding error.
        def hess(r):
            p = stats.logistic.cdf(alpha * (r[a] - r[b]))
            h = w * alpha * alpha * p * (1 - p)
            m = np.diag(np.full(n, prior))
            for i, j, v in zip(a, b, h):
                m[i, i] += v
                m[j, j] += v
                m[i, j] -= v
                m[j, i] -= v
            return m

        res = optimize.root(lambda r: loss_and_grad(r)[1], x, jac=hess,
                            method="hybr", options={"xtol": 1e-15})
        x = res.x
    r = x - x.mean()
    _, g = loss_and_grad(x)
    return 400 * r + 1000, np.max(np.abs(g))


print("# Bradley-Terry ratings (400 r + 1000, mean 1000)")
ratings, gmax = bt_fit(BT_CONNECTED, 5, PRIOR)
show("BT_CONNECTED_PRIOR", ratings)
print(f"#   max |gradient| at the optimum: {gmax:.2e}")
ratings, gmax = bt_fit(BT_CONNECTED, 5, 0.0)
show("BT_CONNECTED_MLE", ratings)
print(f"#   max |gradient| at the optimum: {gmax:.2e}")
ratings, gmax = bt_fit(BT_UNDEFEATED, 3, PRIOR)
show("BT_UNDEFEATED_PRIOR", ratings)
print(f"#   max |gradient| at the optimum: {gmax:.2e}")

# ---------------------------------------------------------------- length control
LC_OUTCOMES = [1, 1, 0.5, 0, 1, 0, 1, 1, 0.5, 1, 0, 1, 1, 0, 0.5, 1, 1, 0, 1, 1]
LC_MODEL_LEN = [820, 1500, 640, 300, 1210, 450, 990, 1720, 700, 1340,
                520, 880, 1610, 260, 760, 1100, 930, 610, 1480, 1050]
LC_BASE_LEN = [700, 900, 650, 620, 800, 700, 1000, 880, 690, 760,
               800, 900, 720, 540, 780, 820, 1010, 640, 770, 990]
LC_PENALTY = 0.01


def lc_fit(p, model_len, base_len, penalty):
    p = np.asarray(p, dtype=float)
    delta = np.asarray(model_len, dtype=float) - np.asarray(base_len, dtype=float)
    scale = np.std(delta, ddof=1)
    x = np.tanh(delta / scale)

    def loss(params):
        theta, psi = params
        eta = theta + psi * x
        nll = np.sum(p * np.logaddexp(0, -eta) + (1 - p) * np.logaddexp(0, eta))
        return nll + 0.5 * penalty * psi * psi

    def grad(params):
        theta, psi = params
        q = stats.logistic.cdf(theta + psi * x)
        return np.array([np.sum(q - p), np.sum((q - p) * x) + penalty * psi])

    res = optimize.minimize(loss, np.zeros(2), jac=grad, method="BFGS",
                            options={"gtol": 1e-13, "maxiter": 10000})
    # Polish as for Bradley-Terry: solve gradient = 0 from the BFGS answer.
    def hess(params):
        theta, psi = params
        q = stats.logistic.cdf(theta + psi * x)
        v = q * (1 - q)
        return np.array([[np.sum(v), np.sum(v * x)],
                         [np.sum(v * x), np.sum(v * x * x) + penalty]])

    res = optimize.root(grad, res.x, jac=hess, method="hybr", options={"xtol": 1e-15})
    theta, psi = res.x
    return [stats.logistic.cdf(theta), p.mean(), theta, psi, scale], np.max(np.abs(grad(res.x)))


print("# length-controlled: lc_rate, raw_rate, theta, psi, std(delta)")
lc, gmax = lc_fit(LC_OUTCOMES, LC_MODEL_LEN, LC_BASE_LEN, LC_PENALTY)
show("LC", lc)
print(f"#   max |gradient| at the optimum: {gmax:.2e}")

# ---------------------------------------------------------------- Pareto / hypervolume
HI, LO = +1, -1
PARETO_2D = [[0.9, 120], [0.8, 80], [0.8, 80], [0.95, 200], [0.7, 60], [0.85, 150],
             [0.6, 90], [0.95, 210], [0.5, 50]]
DIRS_2D = [HI, LO]
REF_2D = [0.55, 180]
PARETO_3D = [[3, 1, 2], [1, 3, 2], [2, 2, 3], [2, 2, 3], [1, 1, 1], [3, 3, 0.5],
             [0.5, 4, 1], [2.5, 0.5, 2.5]]
DIRS_3D = [HI, HI, HI]
REF_3D = [0, 0, 0]
PARETO_4D = [[0.2, 3, 5, 1], [0.4, 2, 4, 2], [0.1, 4, 3, 3], [0.3, 1, 6, 2], [0.5, 5, 1, 1],
             [0.6, 0, 7, 0]]
DIRS_4D = [LO, HI, HI, HI]
REF_4D = [0.55, 0.5, 0.5, 0.5]


def oriented(points, dirs):
    return [[d * v for v, d in zip(p, dirs)] for p in points]


def front(points, dirs):
    o = oriented(points, dirs)

    def dom(p, q):
        return all(a >= b for a, b in zip(p, q)) and any(a > b for a, b in zip(p, q))

    return [i for i, q in enumerate(o) if not any(dom(p, q) for j, p in enumerate(o) if j != i)]


def hv_inclusion_exclusion(points, dirs, ref):
    o = oriented(points, dirs)
    r = [d * v for v, d in zip(ref, dirs)]
    boxes = [p for p in o if all(a > b for a, b in zip(p, r))]
    total = 0.0
    for k in range(1, len(boxes) + 1):
        for subset in itertools.combinations(boxes, k):
            corner = [min(c) for c in zip(*subset)]
            total += (-1) ** (k + 1) * math.prod(c - b for c, b in zip(corner, r))
    return total


print("# Pareto fronts (indices) and hypervolumes")
for name, pts, dirs, ref in [("2D", PARETO_2D, DIRS_2D, REF_2D),
                             ("3D", PARETO_3D, DIRS_3D, REF_3D),
                             ("4D", PARETO_4D, DIRS_4D, REF_4D)]:
    print(f"FRONT_{name} = {front(pts, dirs)}")
    show(f"HV_{name}", hv_inclusion_exclusion(pts, dirs, ref))
