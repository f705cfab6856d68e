//! DPO's pair losses pinned against TRL.
//!
//! `trainer/reference/dpo_reference.py` runs TRL 1.16's `DPOTrainer._compute_loss` on fixed
//! log-probs (sigmoid, robust, IPO and hinge, several β and ε, a pair whose margin is in the
//! hundreds) and writes the loss, torch's gradient with respect to each response's summed
//! log-prob, and TRL's logged rewards to `trainer/reference/data/dpo/cases.json`
//! (regenerate with the command in its docstring). Each case is replayed here through
//! [`trainer::dpo::dpo_loss`]; both sides compute in float64, so everything must agree
//! within 1e-9.

use std::path::PathBuf;

use candle_core::{Device, Var};
use serde_json::Value;
use trainer::dpo::{DpoLoss, PairLogps, dpo_loss};

const TOL: f64 = 1e-9;

fn vec1(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn lens(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("length") as usize)
        .collect()
}

fn close(what: &str, name: &str, got: f64, want: f64, worst: &mut f64) {
    let err = (got - want).abs() / want.abs().max(1.0);
    *worst = worst.max(err);
    assert!(err <= TOL, "{name}: {what} {got} vs TRL {want}");
}

/// TRL averages its 0/1 accuracies as a float32 tensor (`.float()`): one f32 rounding.
fn close_f32(what: &str, name: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-7,
        "{name}: {what} {got} vs TRL {want}"
    );
    assert_eq!(got as f32, want as f32, "{name}: {what}");
}

#[test]
fn every_loss_type_matches_trl() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference/data/dpo/cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is committed with the tests: {e}", path.display()));
    let data: Value = serde_json::from_str(&text).expect("cases.json");
    let cases = data["cases"].as_array().expect("cases");
    assert!(cases.len() >= 13, "{} cases", cases.len());
    let mut worst = 0f64;
    let mut kinds = std::collections::BTreeSet::new();
    for c in cases {
        let name = c["name"].as_str().expect("name");
        let kind: DpoLoss = serde_json::from_value(c["loss_type"].clone()).expect("loss_type");
        kinds.insert(kind.as_str());
        let beta = c["beta"].as_f64().expect("beta");
        let eps = c["label_smoothing"].as_f64().expect("eps");
        let chosen_v = vec1(&c["chosen"]);
        let n = chosen_v.len();
        let chosen = Var::from_vec(chosen_v, n, &Device::Cpu).expect("var");
        let rejected = Var::from_vec(vec1(&c["rejected"]), n, &Device::Cpu).expect("var");
        let (ref_c, ref_r) = (vec1(&c["ref_chosen"]), vec1(&c["ref_rejected"]));
        let (len_c, len_r) = (lens(&c["len_chosen"]), lens(&c["len_rejected"]));
        let out = dpo_loss(
            &PairLogps {
                chosen: chosen.as_tensor(),
                rejected: rejected.as_tensor(),
                ref_chosen: &ref_c,
                ref_rejected: &ref_r,
                len_chosen: &len_c,
                len_rejected: &len_r,
            },
            kind,
            beta,
            eps,
        )
        .expect("loss");
        let loss = out.mean().expect("mean");
        close(
            "loss",
            name,
            loss.to_scalar::<f64>().expect("scalar"),
            c["loss"].as_f64().expect("loss"),
            &mut worst,
        );
        let grads = loss.backward().expect("backward");
        for (var, key) in [(&chosen, "grad_chosen"), (&rejected, "grad_rejected")] {
            let got: Vec<f64> = grads.get(var).expect("grad").to_vec1().expect("vec");
            for (g, w) in got.iter().zip(vec1(&c[key])) {
                close(key, name, *g, w, &mut worst);
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let margins: Vec<f64> = out
            .reward_chosen
            .iter()
            .zip(&out.reward_rejected)
            .map(|(a, b)| a - b)
            .collect();
        for (what, got, key) in [
            ("rewards/chosen", mean(&out.reward_chosen), "rewards_chosen"),
            (
                "rewards/rejected",
                mean(&out.reward_rejected),
                "rewards_rejected",
            ),
            ("rewards/margins", mean(&margins), "rewards_margins"),
        ] {
            // TRL logs these through `.item()` of float64 tensors.
            close(what, name, got, c[key].as_f64().expect(key), &mut worst);
        }
        let want = c["rewards_accuracies"].as_f64().expect("accuracies");
        close_f32("rewards/accuracies", name, out.accuracy(), want);
    }
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    println!(
        "{} TRL cases, largest relative deviation {worst:.2e}",
        cases.len()
    );
}
