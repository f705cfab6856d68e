"""scikit-learn reference for RLLR's cap τ (trainer/src/data/rllr.rs, `youden_threshold`).

τ is the threshold of scikit-learn's `roc_curve` (positives: the correct responses' scores,
negatives: the wrong labels'; `drop_intermediate=False`) that maximises Youden's J = TPR − FPR,
the first maximum in roc_curve's decreasing order as `numpy.argmax` takes it; roc_curve's first
threshold is +inf, where J = 0. Writes trainer/reference/data/rm/rllr_tau_cases.json, which
trainer/tests/rm_reference.rs replays through `trainer::data::rllr::youden_threshold`
(τ exactly, TPR and FPR within 1e-12).

Install (outside the repository; nothing is installed by this script), then run:

    /work/venv-ref/bin/pip install scikit-learn
    /work/venv-ref/bin/python trainer/reference/rllr_tau_reference.py
"""

import json
import os

import numpy as np
import sklearn
from sklearn.metrics import roc_curve


def case(name, correct, wrong):
    y = np.r_[np.ones(len(correct)), np.zeros(len(wrong))]
    s = np.r_[correct, wrong]
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    i = int(np.argmax(tpr - fpr))
    tau = float(thr[i])
    return {
        "name": name,
        "correct": [float(x) for x in correct],
        "wrong": [float(x) for x in wrong],
        "tau": "inf" if np.isinf(tau) else tau,
        "tpr": float(tpr[i]),
        "fpr": float(fpr[i]),
    }


rng = np.random.default_rng(20261204)
cases = [
    case("overlapping normals", rng.normal(1.0, 1.0, 60), rng.normal(-0.5, 1.0, 60)),
    case("well separated", rng.normal(4.0, 0.5, 30), rng.normal(-4.0, 0.5, 30)),
    case("inverted (no cap)", rng.normal(-2.0, 0.5, 20), rng.normal(2.0, 0.5, 20)),
    case("coarse scores with ties", np.round(rng.normal(0.5, 1.0, 80)), np.round(rng.normal(-0.5, 1.0, 80))),
    case("equal J at two thresholds", np.array([3.0, 1.0]), np.array([2.0, 0.0])),
    case("unbalanced", rng.normal(0.8, 1.0, 120), rng.normal(0.0, 1.0, 15)),
]
out = {"source": f"scikit-learn {sklearn.__version__}: metrics.roc_curve(drop_intermediate=False), argmax of tpr - fpr", "cases": cases}
path = os.path.join(os.path.dirname(__file__), "data", "rm", "rllr_tau_cases.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"wrote {len(cases)} cases to {path}")
