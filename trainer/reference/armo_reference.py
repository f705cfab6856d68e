"""scikit-learn / scipy / torch references for `trainer armo` (trainer/src/armo/).

Writes trainer/reference/data/armo/cases.json, which trainer/tests/armo_reference.rs replays:

  ridge      per case (X, y with NaN labels, a fixed train/validation split):
               coef_train[α]  Ridge(alpha=α, fit_intercept=False).fit on the labelled
                              training rows, for every α of the grid 1e-4 … 1e4
               val_mse[α]     mean_squared_error on the labelled validation rows
               alpha          the α of the lowest validation MSE (the first of equals)
               val_r2         r2_score of that fit on the validation rows
               weight         Ridge(alpha, fit_intercept=False) refitted on all labelled rows
             one case has more rows than features (scikit-learn's cholesky solver takes the
             normal equations), one fewer (its kernel form), one has wide-ranging columns
  spearman   scipy.stats.spearmanr on vectors with and without ties, and a constant one
             (NaN)
  debias     ArmoRM's λ search transcribed over scipy's spearmanr: for j ≠ v the smallest λ
             of the grid with spearmanr(r_j − λ r_v, r_v) ≤ 0.03, else 1
  gate       a torch transcription of ArmoRM's GatingNetwork (linear layers, ReLU, dropout
             as given masks, softmax(z / T) · logit_scale), the score Σ g·r and the
             Bradley–Terry loss F.binary_cross_entropy_with_logits(s_c − s_r, 1): forward
             outputs, loss and the gradient of every parameter, in float32 as the trainer

Needs numpy, scipy, scikit-learn and torch (nothing is installed by this script):

    /work/venv-ref/bin/pip install scikit-learn scipy torch
    /work/venv-ref/bin/python trainer/reference/armo_reference.py
"""

import json
import math
import os
import warnings

import numpy as np
import scipy
import sklearn
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "armo", "cases.json")

ALPHAS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4]
LAMBDAS = [0, 0.01] + [round(0.025 * i, 3) for i in range(1, 39)]
THRESHOLD = 0.03


def nan_to_none(v):
    return [None if (isinstance(x, float) and math.isnan(x)) else x for x in v]


def ridge_case(name, x, y, train, val):
    lab = ~np.isnan(y)
    tr = [i for i in train if lab[i]]
    va = [i for i in val if lab[i]]
    coef_train, val_mse = [], []
    for a in ALPHAS:
        m = Ridge(alpha=a, fit_intercept=False).fit(x[tr], y[tr])
        coef_train.append(m.coef_.tolist())
        val_mse.append(float(mean_squared_error(y[va], m.predict(x[va]))))
    best = int(np.argmin(val_mse))
    alpha = ALPHAS[best]
    m = Ridge(alpha=alpha, fit_intercept=False).fit(x[tr], y[tr])
    val_r2 = float(r2_score(y[va], m.predict(x[va])))
    both = sorted(tr + va)
    weight = Ridge(alpha=alpha, fit_intercept=False).fit(x[both], y[both]).coef_.tolist()
    return {
        "name": name,
        "rows": x.shape[0],
        "cols": x.shape[1],
        "x": x.flatten().tolist(),
        "y": nan_to_none(y.tolist()),
        "train": train,
        "val": val,
        "coef_train": coef_train,
        "val_mse": val_mse,
        "alpha": alpha,
        "val_r2": val_r2,
        "weight": weight,
    }


def ridge_cases(rng):
    cases = []
    # More rows than features: y linear in x plus noise, a few labels missing.
    n, d = 60, 8
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=d) + 0.3 * rng.normal(size=n)
    y[[3, 17, 40]] = np.nan
    perm = rng.permutation(n).tolist()
    cases.append(ridge_case("tall", x, y, sorted(perm[12:]), sorted(perm[:12])))
    # Fewer rows than features (kernel form); strong regularisation wins here.
    n, d = 15, 30
    x = rng.normal(size=(n, d))
    y = x[:, :3].sum(axis=1) + 0.5 * rng.normal(size=n)
    y[5] = np.nan
    perm = rng.permutation(n).tolist()
    cases.append(ridge_case("wide", x, y, sorted(perm[3:]), sorted(perm[:3])))
    # Columns of very different scale and correlated, like hidden states.
    n, d = 80, 12
    base = rng.normal(size=(n, 4))
    x = np.concatenate([base @ rng.normal(size=(4, d - 2)), rng.normal(size=(n, 2))], 1)
    x *= np.logspace(-1, 1.5, d)
    y = np.tanh(x[:, 0]) + 0.1 * x[:, -1] + 0.2 * rng.normal(size=n)
    y[rng.choice(n, 10, replace=False)] = np.nan
    perm = rng.permutation(n).tolist()
    cases.append(ridge_case("scaled", x, y, sorted(perm[16:]), sorted(perm[:16])))
    return cases


def spearman_cases(rng):
    out = []
    a = rng.normal(size=30)
    b = a + rng.normal(size=30)
    out.append({"name": "continuous", "a": a.tolist(), "b": b.tolist()})
    a = rng.integers(0, 4, size=40).astype(float)
    b = (a + rng.integers(0, 3, size=40)).astype(float)
    out.append({"name": "ties", "a": a.tolist(), "b": b.tolist()})
    a = rng.integers(0, 2, size=25).astype(float)
    b = -a + rng.normal(size=25)
    out.append({"name": "binary", "a": a.tolist(), "b": b.tolist()})
    out.append({"name": "constant", "a": [1.0] * 5, "b": [1.0, 2.0, 3.0, 4.0, 5.0]})
    for c in out:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the constant case: NaN is the answer
            rho = spearmanr(c["a"], c["b"]).statistic
        c["rho"] = None if math.isnan(rho) else float(rho)
    return out


def debias_case(rng):
    n, k, v = 300, 5, 2
    r_v = rng.gamma(2.0, 50.0, size=n)
    cols = []
    for j, mix in enumerate([0.3, 1.5, 0.0, 0.02, 3.0]):
        if j == v:
            cols.append(r_v)
        else:
            cols.append(mix * r_v + 40.0 * rng.normal(size=n))
    # An attribute that is a rank copy of verbosity plus ties: no λ < 1 decorrelates it.
    cols[4] = np.round(r_v / 10.0) * 10.0 * 3.0
    lambdas, rhos = [], []
    for j in range(k):
        if j == v:
            lambdas.append(0.0)
            rhos.append(None)
            continue
        chosen = None
        for lam in LAMBDAS:
            rho = spearmanr(cols[j] - lam * cols[v], cols[v]).statistic
            if rho <= THRESHOLD:
                chosen = (lam, float(rho))
                break
        if chosen is None:
            chosen = (1.0, float(spearmanr(cols[j] - cols[v], cols[v]).statistic))
        lambdas.append(chosen[0])
        rhos.append(chosen[1])
    return {
        "rewards": [c.tolist() for c in cols],
        "verbosity": v,
        "threshold": THRESHOLD,
        "grid": LAMBDAS,
        "lambdas": lambdas,
        "spearman": rhos,
    }


class GatingNetwork(torch.nn.Module):
    """ArmoRM's gate (RLHFlow/RLHF-Reward-Modeling, armo-rm/stage-2_train.py), with the
    dropout masks passed in so that both sides drop the same units."""

    def __init__(self, d, k, hidden, temperature):
        super().__init__()
        sizes = [d] + hidden + [k]
        self.layers = torch.nn.ModuleList(
            [torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        )
        self.logit_scale = torch.nn.Parameter(torch.ones(1))
        self.temperature = temperature

    def forward(self, x, masks):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
                if masks is not None:
                    x = x * masks[i]
        x = F.softmax(x / self.temperature, dim=1)
        return x * self.logit_scale[0]


def gate_case():
    torch.manual_seed(0)
    d, k, hidden, temperature, p, b = 6, 3, [5, 4], 2.0, 0.25, 4
    net = GatingNetwork(d, k, hidden, temperature).float()
    with torch.no_grad():
        net.logit_scale.fill_(1.3)  # away from 1, so its gradient and use are both tested
    x = torch.randn(b, d)
    gen = torch.Generator().manual_seed(1)
    masks = [
        (torch.rand(b, h, generator=gen) >= p).float() / (1 - p) for h in hidden
    ]
    rc = torch.randn(b, k)
    rr = torch.randn(b, k)
    g = net(x, masks)
    sc = (g * rc).sum(-1)
    sr = (g * rr).sum(-1)
    loss = F.binary_cross_entropy_with_logits(sc - sr, torch.ones(b))
    loss.backward()
    tensors = {n: t.detach().tolist() for n, t in net.state_dict().items()}
    grads = {n: t.grad.tolist() for n, t in net.named_parameters()}
    g_eval = net(x, None).detach()
    return {
        "input": d,
        "hidden": hidden,
        "attributes": k,
        "dropout": p,
        "temperature": temperature,
        "tensors": tensors,
        "x": x.tolist(),
        "masks": [m.tolist() for m in masks],
        "chosen": rc.tolist(),
        "rejected": rr.tolist(),
        "gate": g.detach().tolist(),
        "gate_eval": g_eval.tolist(),
        "score_chosen": sc.detach().tolist(),
        "score_rejected": sr.detach().tolist(),
        "loss": float(loss.detach()),
        "grads": grads,
    }


def main():
    rng = np.random.default_rng(13)
    data = {
        "versions": {
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
            "torch": torch.__version__,
        },
        "alphas": ALPHAS,
        "ridge": ridge_cases(rng),
        "spearman": spearman_cases(rng),
        "debias": debias_case(rng),
        "gate": gate_case(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f)
    print(f"wrote {OUT}")
    for c in data["ridge"]:
        print(f"  ridge {c['name']}: alpha {c['alpha']}, val R² {c['val_r2']:.4f}")
    print(f"  debias lambdas {data['debias']['lambdas']}")


if __name__ == "__main__":
    main()
