//! PPO's numerics pinned against legacy TRL.
//!
//! `trainer/reference/ppo_reference.py` runs TRL 0.11.4's own `PPOTrainer.compute_rewards`,
//! `compute_advantages`, `loss` and `_early_stop`, `core.masked_whiten` and
//! `AdaptiveKLController` / `FixedKLController` on fixed cases and writes what they return
//! to `trainer/reference/data/rl/ppo_cases.json` (regenerate with the install its docstring
//! gives). Every case is replayed here through `trainer::rl::ppo` and must agree within
//! 1e-6: per-token rewards and KL terms, whitened advantages and returns, whitening, both
//! losses with their clip fractions, approximate and policy KL, mean ratio and entropy, the
//! gradients of the loss with respect to the log-probs and the value predictions (in f64,
//! and the loss values again in f32, the dtype training uses), the ratio-threshold skip, the
//! KL controller's values and the early stop.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;
use trainer::rl::ppo::{self, KlController, KlPenalty, PpoBatch, PpoLossConfig};

const TOL: f64 = 1e-6;

fn cases() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference/data/rl/ppo_cases.json");
    let text = std::fs::read_to_string(&path).expect("read ppo_cases.json");
    serde_json::from_str(&text).expect("parse ppo_cases.json")
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn vec1(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(num).collect()
}

fn vec2(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().expect("array").iter().map(vec1).collect()
}

fn name(case: &Value) -> &str {
    case["name"].as_str().expect("name")
}

fn close(what: &str, got: f64, want: f64, worst: &mut f64) {
    let d = (got - want).abs();
    *worst = worst.max(d);
    assert!(d < TOL, "{what}: {got} vs TRL's {want}");
}

fn close2(what: &str, got: &[Vec<f64>], want: &[Vec<f64>], worst: &mut f64) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: row {i}");
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            close(&format!("{what}[{i}][{j}]"), *a, *b, worst);
        }
    }
}

fn tensor2(rows: &[Vec<f64>], dtype: DType) -> Tensor {
    let (b, t) = (rows.len(), rows.first().map_or(0, Vec::len));
    Tensor::from_vec(rows.concat(), (b, t), &Device::Cpu)
        .expect("tensor")
        .to_dtype(dtype)
        .expect("dtype")
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64)
        .expect("f64")
        .to_vec2()
        .expect("rows")
}

fn penalty(s: &str) -> Option<KlPenalty> {
    match s {
        "kl" => Some(KlPenalty::Kl),
        "abs" => Some(KlPenalty::Abs),
        "mse" => Some(KlPenalty::Mse),
        _ => None,
    }
}

#[test]
fn per_token_rewards_match_trls_compute_rewards() {
    let mut worst = 0.0;
    let mut seen = 0;
    for case in cases()["rewards"].as_array().expect("rewards") {
        let Some(pen) = penalty(case["kl_penalty"].as_str().expect("kl_penalty")) else {
            // "full" needs the whole distributions; this trainer estimates from the sampled
            // token only (k1 / abs / mse), so it has no such mode.
            println!("{}: kl_penalty = full is not a mode here", name(case));
            continue;
        };
        let mask = vec2(&case["mask"]);
        let placed = ppo::place_scores(&vec1(&case["scores"]), &mask).expect("place");
        let (r, kl) = ppo::token_rewards(
            &vec2(&case["logprobs"]),
            &vec2(&case["ref_logprobs"]),
            &placed,
            num(&case["kl_coef"]),
            pen,
        )
        .expect("rewards");
        close2(
            &format!("{} rewards", name(case)),
            &r,
            &vec2(&case["rewards"]),
            &mut worst,
        );
        close2(
            &format!("{} kls", name(case)),
            &kl,
            &vec2(&case["kls"]),
            &mut worst,
        );
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} reward cases replayed");
    println!("rewards: largest deviation {worst:e}");
}

#[test]
fn gae_and_whitening_match_trls_compute_advantages() {
    let mut worst = 0.0;
    let all = cases();
    for case in all["advantages"].as_array().expect("advantages") {
        let g = ppo::gae(
            &vec2(&case["values"]),
            &vec2(&case["rewards"]),
            &vec2(&case["mask"]),
            num(&case["gamma"]),
            num(&case["lam"]),
            case["whiten_rewards"].as_bool().expect("bool"),
        )
        .expect("gae");
        close2(
            &format!("{} A", name(case)),
            &g.advantages,
            &vec2(&case["advantages"]),
            &mut worst,
        );
        close2(
            &format!("{} R", name(case)),
            &g.returns,
            &vec2(&case["returns"]),
            &mut worst,
        );
    }
    for case in all["whiten"].as_array().expect("whiten") {
        let (x, m) = match case["values"].as_array().expect("values")[0].is_array() {
            true => (vec2(&case["values"]), vec2(&case["mask"])),
            false => (vec![vec1(&case["values"])], vec![vec1(&case["mask"])]),
        };
        let want = match case["out"].as_array().expect("out")[0].is_array() {
            true => vec2(&case["out"]),
            false => vec![vec1(&case["out"])],
        };
        let got = ppo::masked_whiten(&x, &m, case["shift_mean"].as_bool().expect("bool"));
        close2(name(case), &got, &want, &mut worst);
    }
    println!("advantages: largest deviation {worst:e}");
}

#[test]
fn losses_metrics_and_gradients_match_trls_loss() {
    let mut worst = 0.0;
    let all = cases();
    let list = all["losses"].as_array().expect("losses");
    assert!(
        list.iter().any(|c| c["skipped"] == true),
        "a ratio_threshold case"
    );
    for case in list {
        let cfg = PpoLossConfig {
            cliprange: num(&case["cliprange"]),
            cliprange_value: num(&case["cliprange_value"]),
            vf_coef: num(&case["vf_coef"]),
            ratio_threshold: num(&case["ratio_threshold"]),
        };
        for dtype in [DType::F64, DType::F32] {
            let t = |k: &str| tensor2(&vec2(&case[k]), dtype);
            let logp = Var::from_tensor(&t("logprobs")).expect("var");
            let vpred = Var::from_tensor(&t("vpreds")).expect("var");
            let out = ppo::ppo_loss(
                &PpoBatch {
                    logp: logp.as_tensor(),
                    values: vpred.as_tensor(),
                    old_logp: &t("old_logprobs"),
                    old_values: &t("values"),
                    mask: &t("mask"),
                    advantages: &t("advantages"),
                    returns: &t("returns"),
                },
                &cfg,
            )
            .expect("loss");
            let n = format!("{} ({dtype:?})", name(case));
            let loss: f64 = out.loss.to_dtype(DType::F64).unwrap().to_scalar().unwrap();
            // f32 carries ~1e-7 relative error; the bound is the same.
            close(&format!("{n} loss"), loss, num(&case["loss"]), &mut worst);
            close(
                &format!("{n} pg_loss"),
                out.pg_loss,
                num(&case["pg_loss"]),
                &mut worst,
            );
            close(
                &format!("{n} vf_loss"),
                out.vf_loss,
                num(&case["vf_loss"]),
                &mut worst,
            );
            close(
                &format!("{n} pg_clipfrac"),
                out.pg_clipfrac,
                num(&case["pg_clipfrac"]),
                &mut worst,
            );
            close(
                &format!("{n} vf_clipfrac"),
                out.vf_clipfrac,
                num(&case["vf_clipfrac"]),
                &mut worst,
            );
            close(
                &format!("{n} approxkl"),
                out.approxkl,
                num(&case["approxkl"]),
                &mut worst,
            );
            close(
                &format!("{n} policykl"),
                out.policykl,
                num(&case["policykl"]),
                &mut worst,
            );
            close(
                &format!("{n} ratio_mean"),
                out.ratio_mean,
                num(&case["ratio_mean"]),
                &mut worst,
            );
            assert_eq!(out.zeroed, case["skipped"] == true, "{n}");
            if dtype != DType::F64 {
                continue;
            }
            let grads = out.loss.backward().expect("backward");
            let zero =
                || vec![vec![0.0; vec2(&case["logprobs"])[0].len()]; vec2(&case["logprobs"]).len()];
            let g_logp = grads.get(logp.as_tensor()).map_or_else(zero, rows);
            let g_v = grads.get(vpred.as_tensor()).map_or_else(zero, rows);
            close2(
                &format!("{n} d/dlogp"),
                &g_logp,
                &vec2(&case["grad_logprobs"]),
                &mut worst,
            );
            if case["clip_boundary_tie"] == true {
                // V sits exactly on the value-clip bound: torch splits the gradient between
                // the two branches of max(); any subgradient is right there.
                println!("{n}: value gradient at a clip-boundary tie not compared");
            } else {
                close2(
                    &format!("{n} d/dV"),
                    &g_v,
                    &vec2(&case["grad_vpreds"]),
                    &mut worst,
                );
            }
            // Entropy over the masked positions of the case's logits.
            let logits = &case["logits"];
            let (b, tt) = (
                logits.as_array().unwrap().len(),
                logits[0].as_array().unwrap().len(),
            );
            let v = logits[0][0].as_array().unwrap().len();
            let flat: Vec<f64> = (0..b)
                .flat_map(|i| (0..tt).flat_map(move |j| (0..v).map(move |k| (i, j, k))))
                .map(|(i, j, k)| num(&logits[i][j][k]))
                .collect();
            let lt = Tensor::from_vec(flat, (b * tt, v), &Device::Cpu).unwrap();
            let h = ppo::entropy(&lt).unwrap().to_vec1::<f64>().unwrap();
            let h: Vec<Vec<f64>> = h.chunks(tt).map(<[f64]>::to_vec).collect();
            let ent = ppo::masked_mean(&h, &vec2(&case["mask"]));
            close(
                &format!("{n} entropy"),
                ent,
                num(&case["entropy"]),
                &mut worst,
            );
        }
    }
    println!("losses: largest deviation {worst:e}");
}

#[test]
fn the_kl_controller_and_the_early_stop_match_trl() {
    let all = cases();
    let mut worst = 0.0;
    for case in all["kl_controller"].as_array().expect("kl_controller") {
        let mut c = match case["type"].as_str().expect("type") {
            "adaptive" => KlController::adaptive(
                num(&case["init"]),
                num(&case["target"]),
                num(&case["horizon"]),
            ),
            _ => KlController::fixed(num(&case["init"])),
        };
        for (u, want) in case["updates"]
            .as_array()
            .unwrap()
            .iter()
            .zip(vec1(&case["values"]))
        {
            c.update(num(&u[0]), num(&u[1]) as usize);
            close(name(case), c.value, want, &mut worst);
        }
    }
    for case in all["early_stop"].as_array().expect("early_stop") {
        // TRL stops past 1.5·target_kl when `early_stopping` is on.
        let bound = (case["early_stopping"] == true).then(|| 1.5 * num(&case["target_kl"]));
        assert_eq!(
            ppo::stop_early(num(&case["policykl"]), bound),
            case["early_stop"] == true,
            "{}",
            name(case)
        );
    }
    println!("kl controller: largest deviation {worst:e}");
}
