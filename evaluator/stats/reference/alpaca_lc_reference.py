#!/usr/bin/env python3
"""Reference numbers for `evaluator_stats::glm_winrate`, from upstream AlpacaEval's own code.

Run from the repository root (about a minute on two cores):

    python3 -m venv /work/venv-ref
    /work/venv-ref/bin/pip install scikit-learn numpy pandas scipy alpaca-eval
    /work/venv-ref/bin/python evaluator/stats/reference/alpaca_lc_reference.py

Versions used for the committed `alpaca_lc_expected.json`: Python 3 with alpaca-eval 0.6.6,
scikit-learn 1.9.1, numpy 2.4.6, pandas 3.1.1, scipy 1.17.1, patsy 1.0.3 (the script records
them in the JSON). The real-data part reads the AlpacaEval files in `../shared/data/alpaca_eval`
relative to the workspace root (or `$SHARED_DATA`); without them it writes the synthetic part
only.

What it computes (the Rust tests in `evaluator/stats/tests/glm_winrate.rs` compare):

(a) Synthetic, fixed data written into the JSON (inputs and outputs):
    - scikit-learn `LogisticRegression(penalty="l1", solver="liblinear", fit_intercept=False)`
      with sample weights on soft labels (duplicated rows, as upstream), at several C, with a
      tight tolerance; coefficients and the objective ||w||_1 + C * sum weight * logloss.
    - upstream's `fit_LogisticRegressionCV` (GroupKFold CV over the default C grid) on the
      same rows: chosen C, coefficients, fold scores.
    - upstream's `get_length_controlled_winrate` on a synthetic system with synthetic
      difficulties and gamed rows (upstream's `df_gamed.csv`, which it downloads from the
      Hugging Face Hub, is replaced by a local file through `hf_hub_download`).
(b) Real data: the instruction difficulties from one joint L1 logistic fit (scikit-learn's
    liblinear on a sparse design; per-system bias and tanh-length slope, not-gamed indicator,
    one dummy per instruction with instruction 0 the reference; soft labels as weighted
    duplicates; C by GroupKFold(5) CV over the default grid with upstream's scorer, at
    liblinear's default tolerance because a tight one takes more than 5 minutes there; the
    refit at the chosen C is polished with L-BFGS-B to a tight optimum), the
    variant-pair stand-in for the gamed-baseline rows (`gpt-3.5-turbo-1106` vs its `_verbose`
    and `_concise` versions, preference sigma(eta_v - eta_u) from the joint fit), and every
    system's LC from upstream's `get_length_controlled_winrate` fed those difficulties and
    rows. Both at liblinear's default tolerance (1e-4, what upstream runs) and at a tight one
    (what the Rust solver converges to). Only derived numbers are written.

The CV fold split is scikit-learn's `GroupKFold` without shuffling, which is deterministic;
`random_state=123` only seeds liblinear's coordinate order, which does not change the optimum.
"""

import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import scipy.sparse as sp
import sklearn
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import make_scorer
from sklearn.model_selection import GroupKFold

import alpaca_eval
import alpaca_eval.metrics.glm_winrate as G

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DATA = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data" / "alpaca_eval"))
BASE = "gpt4_1106_preview"
TIGHT = dict(tol=1e-10, max_iter=100000)
N_FOLDS = 5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def objective(coef, X, y, w, C):
    eta = X @ coef
    loss = y * np.logaddexp(0, -eta) + (1 - y) * np.logaddexp(0, eta)
    return float(np.abs(coef).sum() + C * (w * loss).sum())


def liblinear_soft(X, y, w, C, **kw):
    """liblinear L1-LR on soft labels as upstream feeds it: two weighted copies per row."""
    Xd = sp.vstack([X, X]).tocsr() if sp.issparse(X) else np.vstack([X, X])
    yd = np.r_[np.ones(len(y)), np.zeros(len(y))]
    sw = np.r_[w * y, w * (1 - y)]
    m = LogisticRegression(C=C, penalty="l1", solver="liblinear", fit_intercept=False, random_state=123, **kw)
    m.fit(Xd, yd, sample_weight=sw)
    return m.coef_[0]


def use_gamed(df_gamed):
    """Point upstream's Hub download of df_gamed.csv at a local file."""
    path = Path(tempfile.gettempdir()) / "alpaca_lc_df_gamed.csv"
    df_gamed.to_csv(path, index=False)
    G.hf_hub_download = lambda **kw: str(path)


def upstream_lc(out1, out2, pref, model, df_gamed, reg, tol_kwargs):
    """Upstream's per-system code path; returns LC metrics and the fitted weights."""
    use_gamed(df_gamed)
    info = dict(G.GLM_INFO["length_controlled_v1" if reg else "length_controlled_noreg"])
    info["kwargs"] = dict(info["kwargs"], **tol_kwargs)
    df = pd.DataFrame(
        dict(output_1=out1, output_2=out2, preference=pref, generator_1=BASE, generator_2=model, annotator="a")
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = G.get_length_controlled_winrate(
            df, save_weights_dir=tmp, is_warn_extreme_changes=False, glm_info=info
        )
        weights_file = next(Path(tmp).rglob("*.csv"))
        w = pd.read_csv(weights_file, index_col=0).loc[model]
    return dict(
        lc=float(out["length_controlled_winrate"]) / 100,
        se=float(out["lc_standard_error"]) / 100,
        length_coef=float(w["np.tanh(std_delta_len)"]),
        difficulty_coef=float(w["instruction_difficulty"]),
        quality=float(w["not_gamed_baseline.astype(float)"]),
    )


def gamed_frame(rows, difficulty):
    """rows: list of (item, preference, std_length_delta, weight-irrelevant) tuples per block."""
    frames = []
    for name, items, pref, std in rows:
        frames.append(
            pd.DataFrame(
                dict(
                    index=items,
                    preference=pref,
                    std_delta_len=std,
                    instruction_difficulty=np.asarray(difficulty)[items],
                    not_gamed_baseline=False,
                    model=name,
                )
            )
        )
    return pd.concat(frames, axis=0)


def chosen_c(model):
    return float(np.ravel(model.C_)[0])


# ----------------------------------------------------------------------------- (a) synthetic


def synthetic():
    n = 60
    i = np.arange(n)
    # Fixed, RNG-free data: features tanh-length, difficulty, indicator; soft labels.
    t = np.tanh(np.sin(0.7 * i) * 1.5)
    d = np.cos(0.31 * i + 0.2) * 0.8
    g = (i % 7 != 0).astype(float)
    X = np.c_[t, d, g]
    y = np.clip(sigmoid(-1.1 * t + 0.6 * d + 0.4 * g + 0.9 * np.sin(1.3 * i + 0.5)), 0, 1)
    y[5] = 1.0
    y[11] = 0.0
    y[23] = 0.5
    w = np.where(g == 1, 1.0, 0.1)
    out = dict(x=X.tolist(), y=y.tolist(), weight=w.tolist(), fits=[])
    for C in [0.02, 0.3, 1.0, 25.0]:
        coef = liblinear_soft(X, y, w, C, **TIGHT)
        out["fits"].append(dict(c=C, coef=coef.tolist(), objective=objective(coef, X, y, w, C)))

    data = pd.DataFrame(X, columns=["t", "d", "g"])
    data["preference"] = y
    model = G.fit_LogisticRegressionCV(data, "preference", is_ytrue_proba=True, sample_weight=w, n_splits=N_FOLDS, **TIGHT)
    coef = model.coef_[0]
    out["cv"] = dict(
        c=chosen_c(model),
        cs=model.Cs_.tolist(),
        coef=coef.tolist(),
        objective=objective(coef, X, y, w, chosen_c(model)),
        mean_scores=np.asarray(model.scores_[1]).mean(axis=0).ravel().tolist(),
    )

    # A synthetic system through upstream's get_length_controlled_winrate.
    n_items = 40
    k = np.arange(n_items)
    difficulty = np.r_[0.0, np.sin(0.9 * k[1:]) * 0.7]
    len_base = 200 + (k * 37) % 150
    len_sys = 120 + (k * 53) % 260
    pref = np.clip(sigmoid(0.3 - 1.5 * np.tanh((len_base - len_sys) / 110.0) + 0.8 * difficulty + 0.7 * np.cos(2.1 * k)), 0, 1)
    pref_ann = pref + 1  # AlpacaEval's [1, 2] scale
    pref_ann[7] = np.nan  # not judged: left out of the fit, still predicted
    gamed_items = [k, k]
    gamed_pref = [sigmoid(-0.8 * np.tanh(np.cos(k) * 1.2) + 0.2 * np.sin(k)), sigmoid(0.5 * np.tanh(np.sin(1.7 * k)))]
    gamed_std = [np.cos(k) * 1.2, np.sin(1.7 * k)]
    df_gamed = gamed_frame(
        [("verbose", gamed_items[0], gamed_pref[0], gamed_std[0]), ("concise", gamed_items[1], gamed_pref[1], gamed_std[1])],
        difficulty,
    )
    system = dict(
        difficulty=difficulty.tolist(),
        length_delta=(len_base - len_sys).astype(float).tolist(),
        preference=[None if np.isnan(p) else float(p - 1) for p in pref_ann],
        gamed=[
            dict(item=int(it), preference=float(p), std_length_delta=float(s), weight=0.1)
            for b in range(2)
            for it, p, s in zip(gamed_items[b], gamed_pref[b], gamed_std[b])
        ],
    )
    out1 = ["a" * int(v) for v in len_base]
    out2 = ["b" * int(v) for v in len_sys]
    system["reg"] = upstream_lc(out1, out2, pref_ann, "synthetic", df_gamed, True, TIGHT)
    system["noreg"] = upstream_lc(out1, out2, pref_ann, "synthetic", df_gamed, False, TIGHT)
    out["system"] = system
    return out


# ----------------------------------------------------------------------------- (b) real data


def load_real():
    names = sorted(p.stem for p in (DATA / "annotations").glob("*.json"))
    base_out = [o["output"] for o in json.loads((DATA / "model_outputs" / f"{BASE}.json").read_text())]
    systems = {}
    for name in names:
        outs = [o["output"] for o in json.loads((DATA / "model_outputs" / f"{name}.json").read_text())]
        ann = json.loads((DATA / "annotations" / f"{name}.json").read_text())
        pref = np.array([np.nan if a["preference"] is None else float(a["preference"]) for a in ann])
        delta = np.array([len(a) - len(b) for a, b in zip(base_out, outs)], dtype=float)
        systems[name] = dict(out1=base_out, out2=outs, pref=pref, delta=delta)
    return names, systems


def joint_fit(names, systems, tol_kwargs):
    fitted = [n for n in names if n != BASE]
    m, n_items = len(fitted), len(systems[BASE]["pref"])
    rows, cols, vals, ys = [], [], [], []
    r = 0
    for k, name in enumerate(fitted):
        s = systems[name]
        t = np.tanh(s["delta"] / s["delta"].std(ddof=1))
        p = s["pref"].copy()
        p[p == 0] = 1.5
        p = p - 1
        for i in range(n_items):
            if np.isnan(p[i]):
                continue
            c = [k, m + k, 2 * m] + ([2 * m + i] if i > 0 else [])
            v = [1.0, t[i], 1.0] + ([1.0] if i > 0 else [])
            rows += [r] * len(c)
            cols += c
            vals += v
            ys.append(p[i])
            r += 1
    X = sp.csr_matrix((vals, (rows, cols)), shape=(r, 2 * m + n_items))
    y = np.array(ys)
    # The same estimator and scorer upstream's fit_LogisticRegressionCV builds, on a sparse
    # design (upstream's helper takes a dense DataFrame).
    sklearn.set_config(enable_metadata_routing=True)
    Xd = sp.vstack([X, X]).tocsr()
    yd = np.r_[np.ones(r), np.zeros(r)]
    true_prob = np.r_[y, 1 - y]
    groups = np.r_[np.arange(r), np.arange(r)]
    scorer = make_scorer(G.logloss_continuous, response_method="predict_proba", greater_is_better=False)
    scorer = scorer.set_score_request(true_sample_weight=True, true_prob=True)
    model = LogisticRegressionCV(
        cv=GroupKFold(N_FOLDS), scoring=scorer, random_state=123, penalty="l1", solver="liblinear",
        fit_intercept=False,
    )
    model.set_fit_request(sample_weight=True)
    model.fit(Xd, yd, sample_weight=true_prob, groups=groups, true_sample_weight=np.ones(2 * r), true_prob=true_prob)
    coef = model.coef_[0]
    if tol_kwargs:
        coef = polish(X, y, chosen_c(model), coef)
    difficulty = np.r_[0.0, coef[2 * m + 1 :]]
    bias = {name: float(coef[k] + coef[2 * m]) for k, name in enumerate(fitted)}
    slope = {name: float(coef[m + k]) for k, name in enumerate(fitted)}
    return dict(
        c=chosen_c(model),
        difficulty=difficulty,
        bias=bias,
        slope=slope,
        objective=objective(coef, X, y, np.ones(r), chosen_c(model)),
        mean_scores=np.asarray(model.scores_[1]).mean(axis=0).ravel().tolist(),
    )


def polish(X, y, C, start):
    """Solve the joint L1 problem at C to a tight tolerance from liblinear's solution.

    liblinear needs more than 5 minutes on this 862-feature problem below tol=1e-6, so the
    CV (choice of C) runs at its default tolerance and the refit at the chosen C is polished
    with SciPy's L-BFGS-B on the split form w = u - v, u, v >= 0 (the same objective).
    """
    from scipy.optimize import minimize

    p = X.shape[1]
    Xt = X.T.tocsr()

    def fg(z):
        w = z[:p] - z[p:]
        eta = X @ w
        loss = y * np.logaddexp(0, -eta) + (1 - y) * np.logaddexp(0, eta)
        g = Xt @ (C * (sigmoid(eta) - y))
        return float(z.sum() + C * loss.sum()), np.r_[1 + g, 1 - g]

    z0 = np.r_[np.maximum(start, 0), np.maximum(-start, 0)]
    res = minimize(fg, z0, jac=True, method="L-BFGS-B", bounds=[(0, None)] * (2 * p),
                   options=dict(maxiter=100000, maxfun=200000, ftol=1e-16, gtol=1e-11, maxcor=30))
    w = res.x[:p] - res.x[p:]
    # Report how close to optimal: the largest minimum-norm subgradient.
    g = Xt @ (C * (sigmoid(X @ w) - y))
    sub = np.where(w > 0, np.abs(g + 1), np.where(w < 0, np.abs(g - 1), np.maximum(np.abs(g) - 1, 0)))
    print(f"polish: {res.nit} iterations, max min-norm subgradient {sub.max():.2e}", file=sys.stderr)
    return w


PAIRS = [("gpt-3.5-turbo-1106", "gpt-3.5-turbo-1106_verbose"), ("gpt-3.5-turbo-1106", "gpt-3.5-turbo-1106_concise")]


def stand_in(systems, fit):
    blocks = []
    for u, v in PAIRS:
        def eta(name):
            s = systems[name]
            return fit["bias"][name] + fit["slope"][name] * np.tanh(s["delta"] / s["delta"].std(ddof=1))

        delta = systems[v]["delta"] - systems[u]["delta"]  # len(u) - len(v)
        items = np.arange(len(delta))
        blocks.append((v, items, sigmoid(eta(v) - eta(u)), delta / delta.std(ddof=1)))
    return gamed_frame(blocks, fit["difficulty"])


def real(tol_name, tol_kwargs):
    names, systems = load_real()
    t0 = time.time()
    fit = joint_fit(names, systems, tol_kwargs)
    df_gamed = stand_in(systems, fit)
    res = {}
    for name in names:
        s = systems[name]
        res[name] = dict(
            reg=upstream_lc(s["out1"], s["out2"], s["pref"], name, df_gamed, True, tol_kwargs),
            noreg=upstream_lc(s["out1"], s["out2"], s["pref"], name, df_gamed, False, tol_kwargs),
        )
    print(f"real data ({tol_name}): {time.time() - t0:.1f} s, difficulty C = {fit['c']}", file=sys.stderr)
    return dict(
        tolerance=tol_kwargs,
        difficulty_c=fit["c"],
        difficulty=fit["difficulty"].tolist(),
        difficulty_objective=fit["objective"],
        difficulty_mean_scores=fit["mean_scores"],
        gamed_preference_mean=float(df_gamed["preference"].mean()),
        systems=res,
    )


def main():
    out = dict(
        versions=dict(
            python=sys.version.split()[0],
            alpaca_eval=alpaca_eval.__version__,
            sklearn=sklearn.__version__,
            numpy=np.__version__,
            pandas=pd.__version__,
            scipy=scipy.__version__,
        ),
        synthetic=synthetic(),
    )
    if (DATA / "annotations").is_dir():
        out["real_tight"] = real("tight", TIGHT)
        out["real_default"] = real("liblinear default tol", {})
    else:
        print(f"SKIPPED real data: {DATA} not found", file=sys.stderr)
    path = HERE / "alpaca_lc_expected.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
