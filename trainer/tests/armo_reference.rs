//! ArmoRM's numerics pinned to scikit-learn, scipy and a torch transcription.
//!
//! `trainer/reference/armo_reference.py` writes `trainer/reference/data/armo/cases.json`
//! (regenerate with the command in its docstring):
//! - ridge: scikit-learn's `Ridge(fit_intercept=False)` coefficients for every α of the grid
//!   on a fixed split, the validation MSEs, the chosen α, its validation R² and the refit
//!   on all labelled rows, for a tall, a wide (kernel form) and a badly scaled design, NaN
//!   labels included. Replayed through [`trainer::armo::ridge`] in f64, within 1e-8
//!   relative (scikit-learn solves with LAPACK, the trainer with its own Cholesky);
//! - `scipy.stats.spearmanr` with and without ties and on a constant vector (NaN), within
//!   1e-12, and ArmoRM's λ search over it, exactly;
//! - the gate: a torch transcription of ArmoRM's `GatingNetwork` with given dropout masks,
//!   the scores, the Bradley–Terry loss and every parameter's gradient, in f32 on both
//!   sides, within 1e-5.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use serde_json::Value;
use trainer::armo::debias;
use trainer::armo::gate::{Gate, GateConfig, pair_loss};
use trainer::armo::ridge::{self, Matrix, Ridge};

fn cases() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference/data/armo/cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is committed with the tests: {e}", path.display()));
    serde_json::from_str(&text).expect("cases.json")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("index") as usize)
        .collect()
}

fn close_all(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * scale,
            "{what}[{i}]: {g} vs reference {w} (tolerance {tol} × {scale})"
        );
    }
}

#[test]
fn ridge_probes_match_scikit_learn() {
    let data = cases();
    let alphas = floats(&data["alphas"]);
    assert_eq!(alphas, ridge::ALPHAS, "the grid is ArmoRM's");
    let cases = data["ridge"].as_array().expect("ridge");
    assert_eq!(cases.len(), 3);
    for c in cases {
        let name = c["name"].as_str().expect("name");
        let (n, d) = (
            c["rows"].as_u64().expect("rows") as usize,
            c["cols"].as_u64().expect("cols") as usize,
        );
        let x = Matrix::new(n, d, floats(&c["x"])).expect("x");
        let y = floats(&c["y"]);
        assert!(y.iter().any(|v| v.is_nan()), "{name} has missing labels");
        let (train, val) = (indices(&c["train"]), indices(&c["val"]));
        // Every α's coefficients on the labelled training rows.
        let tr: Vec<usize> = train
            .iter()
            .copied()
            .filter(|&i| y[i].is_finite())
            .collect();
        let xt = x.select(&tr);
        let yt: Vec<f64> = tr.iter().map(|&i| y[i]).collect();
        let solver = Ridge::new(&xt, &yt).expect("ridge");
        for (a, want) in alphas
            .iter()
            .zip(c["coef_train"].as_array().expect("coefs"))
        {
            let w = solver.solve(*a).expect("solvable");
            close_all(&format!("{name} coef α={a}"), &w, &floats(want), 1e-8);
        }
        let fit = ridge::fit_on_split(&x, &y, &train, &val, &alphas, name).expect("fit");
        close_all(
            &format!("{name} val_mse"),
            &fit.val_mse,
            &floats(&c["val_mse"]),
            1e-8,
        );
        assert_eq!(fit.alpha, c["alpha"].as_f64().expect("alpha"), "{name} α");
        close_all(
            &format!("{name} val_r2"),
            &[fit.val_r2],
            &[c["val_r2"].as_f64().expect("r2")],
            1e-8,
        );
        close_all(
            &format!("{name} refit"),
            &fit.weight,
            &floats(&c["weight"]),
            1e-8,
        );
    }
}

#[test]
fn spearman_and_the_lambda_search_match_scipy() {
    let data = cases();
    for c in data["spearman"].as_array().expect("spearman") {
        let name = c["name"].as_str().expect("name");
        let got = debias::spearman(&floats(&c["a"]), &floats(&c["b"]));
        match c["rho"].as_f64() {
            Some(want) => assert!((got - want).abs() < 1e-12, "{name}: {got} vs scipy {want}"),
            None => assert!(got.is_nan(), "{name}: scipy says undefined, got {got}"),
        }
    }
    let d = &data["debias"];
    assert_eq!(floats(&d["grid"]), debias::LAMBDAS, "the grid is ArmoRM's");
    assert_eq!(d["threshold"].as_f64(), Some(debias::THRESHOLD));
    let rewards: Vec<Vec<f64>> = d["rewards"]
        .as_array()
        .expect("rewards")
        .iter()
        .map(floats)
        .collect();
    let v = d["verbosity"].as_u64().expect("v") as usize;
    let got = debias::penalties(&rewards, v, debias::THRESHOLD);
    let want = floats(&d["lambdas"]);
    let lambdas: Vec<f64> = got.iter().map(|p| p.lambda).collect();
    assert_eq!(lambdas, want);
    assert!(
        want.contains(&1.0) && want.iter().any(|&l| l > 0.0 && l < 1.0),
        "the case covers a passing λ and the fallback: {want:?}"
    );
    for (j, (p, w)) in got.iter().zip(floats(&d["spearman"])).enumerate() {
        if j != v {
            assert!(
                (p.spearman - w).abs() < 1e-12,
                "attribute {j}: {} vs {w}",
                p.spearman
            );
        }
    }
}

fn tensor(v: &Value) -> Tensor {
    fn shape(v: &Value, dims: &mut Vec<usize>, flat: &mut Vec<f32>) {
        match v {
            Value::Array(items) => {
                dims.push(items.len());
                let mut sub = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let mut d = Vec::new();
                    shape(item, &mut d, flat);
                    if i == 0 {
                        sub = d;
                    }
                }
                dims.extend(sub);
            }
            Value::Number(n) => flat.push(n.as_f64().expect("number") as f32),
            other => panic!("not a tensor: {other}"),
        }
    }
    let (mut dims, mut flat) = (Vec::new(), Vec::new());
    shape(v, &mut dims, &mut flat);
    Tensor::from_vec(flat, dims, &Device::Cpu).expect("tensor")
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .expect("flat")
        .to_dtype(candle_core::DType::F64)
        .expect("f64")
        .to_vec1()
        .expect("vec")
}

#[test]
fn the_gate_forward_loss_and_gradients_match_torch() {
    let data = cases();
    let c = &data["gate"];
    let config = GateConfig {
        input: c["input"].as_u64().expect("d") as usize,
        hidden: indices(&c["hidden"]),
        attributes: c["attributes"].as_u64().expect("k") as usize,
        dropout: c["dropout"].as_f64().expect("p"),
        temperature: c["temperature"].as_f64().expect("T"),
    };
    let tensors: HashMap<String, Tensor> = c["tensors"]
        .as_object()
        .expect("tensors")
        .iter()
        .map(|(k, v)| (k.clone(), tensor(v)))
        .collect();
    let gate = Gate::from_tensors(config, &tensors).expect("gate");
    let x = tensor(&c["x"]);
    let masks: Vec<Tensor> = c["masks"]
        .as_array()
        .expect("masks")
        .iter()
        .map(tensor)
        .collect();
    let (chosen, rejected) = (tensor(&c["chosen"]), tensor(&c["rejected"]));
    let tol = 1e-5;
    let g = gate.forward(&x, Some(&masks)).expect("forward");
    close_all("gate", &flat(&g), &flat(&tensor(&c["gate"])), tol);
    let g_eval = gate.forward(&x, None).expect("forward");
    close_all(
        "gate without dropout",
        &flat(&g_eval),
        &flat(&tensor(&c["gate_eval"])),
        tol,
    );
    let sc = Gate::combine(&g, &chosen).expect("score");
    close_all("score_chosen", &flat(&sc), &floats(&c["score_chosen"]), tol);
    let sr = Gate::combine(&g, &rejected).expect("score");
    close_all(
        "score_rejected",
        &flat(&sr),
        &floats(&c["score_rejected"]),
        tol,
    );
    let (loss, _) = pair_loss(&gate, &x, &chosen, &rejected, Some(&masks)).expect("loss");
    close_all(
        "loss",
        &flat(&loss),
        &[c["loss"].as_f64().expect("loss")],
        tol,
    );
    let grads = loss.backward().expect("backward");
    let want = c["grads"].as_object().expect("grads");
    let vars = gate.vars();
    assert_eq!(
        vars.len(),
        want.len(),
        "every parameter of the torch module"
    );
    for (name, var) in vars {
        let got = grads
            .get(&var)
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let w = tensor(&want[&name]);
        assert_eq!(got.dims(), w.dims(), "{name}");
        close_all(&format!("grad {name}"), &flat(got), &flat(&w), tol);
    }
}
