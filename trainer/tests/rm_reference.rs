//! The reward model's loss pinned against TRL.
//!
//! `trainer/reference/rm_reference.py` runs TRL 1.16's `RewardTrainer.compute_loss` on fixed
//! scores (plain Bradley–Terry, per-pair margins, `center_rewards_coefficient`, a pair
//! scored 1,600 apart), and soft labels through PyTorch's
//! `binary_cross_entropy_with_logits` (TRL has none), and writes the loss, torch's gradient with respect to every score
//! and the logged accuracy and margin to `trainer/reference/data/rm/cases.json`
//! (regenerate with the command in its docstring). Each case is replayed here through
//! [`trainer::rm::reward_loss`] in float64: everything agrees within 1e-9, the accuracy to
//! the float32 TRL averages it in.

use std::path::PathBuf;

use candle_core::{Device, Var};
use serde_json::Value;

fn vec1(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn close(what: &str, name: &str, got: f64, want: f64) {
    let err = (got - want).abs() / want.abs().max(1.0);
    assert!(err <= 1e-9, "{name}: {what} {got} vs TRL {want}");
}

#[test]
fn the_bradley_terry_loss_matches_trl() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference/data/rm/cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is committed with the tests: {e}", path.display()));
    let data: Value = serde_json::from_str(&text).expect("cases.json");
    let cases = data["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 9);
    for c in cases {
        let name = c["name"].as_str().expect("name");
        let chosen_v = vec1(&c["chosen"]);
        let n = chosen_v.len();
        let chosen = Var::from_vec(chosen_v, n, &Device::Cpu).expect("var");
        let rejected = Var::from_vec(vec1(&c["rejected"]), n, &Device::Cpu).expect("var");
        let margins = (!c["margin"].is_null()).then(|| vec1(&c["margin"]));
        let labels = c.get("label").filter(|l| !l.is_null()).map(vec1);
        let out = trainer::rm::reward_loss(
            chosen.as_tensor(),
            rejected.as_tensor(),
            margins.as_deref(),
            labels.as_deref(),
            c["center_rewards_coefficient"].as_f64(),
        )
        .expect("loss");
        let loss = out.mean().expect("mean");
        close(
            "loss",
            name,
            loss.to_scalar::<f64>().expect("scalar"),
            c["loss"].as_f64().expect("loss"),
        );
        let grads = loss.backward().expect("backward");
        for (var, key) in [(&chosen, "grad_chosen"), (&rejected, "grad_rejected")] {
            let got: Vec<f64> = grads.get(var).expect("grad").to_vec1().expect("vec");
            for (g, w) in got.iter().zip(vec1(&c[key])) {
                close(key, name, *g, w);
            }
        }
        close(
            "margin",
            name,
            out.margin(),
            c["margin_logged"].as_f64().expect("margin"),
        );
        let acc = c["accuracy"].as_f64().expect("accuracy");
        assert_eq!(out.accuracy() as f32, acc as f32, "{name}: accuracy");
    }
}
