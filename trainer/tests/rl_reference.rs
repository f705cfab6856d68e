//! RL numerics pinned against TRL and OpenRLHF.
//!
//! `trainer/reference/rl_reference.py` runs TRL's `GRPOTrainer` / `RLOOTrainer` methods and
//! OpenRLHF's REINFORCE++ functions on fixed cases and writes their outputs to
//! `trainer/reference/data/rl/cases.json` (regenerate: `python3
//! trainer/reference/rl_reference.py`, with TRL, torch and OpenRLHF installed as its
//! docstring says). Every case is replayed here through `trainer::rl` and every value
//! (advantages, losses, gradients with respect to the policy's log-probs, KL and clip
//! metrics, masks) must agree within 1e-6. The reference computed in float64; the losses
//! are checked in f64 and, with the same bound, in f32 (the dtype training uses). Each test
//! prints its largest deviation; the largest, about 2e-7 on REINFORCE++ advantages, is
//! OpenRLHF whitening in float32 (`compute_advantages_and_returns` casts with `.float()`).

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;
use trainer::rl::advantage::{
    self, GrpoAdvantageConfig, KlEstimator, MultiObjectiveAggregation, ReinforceConfig,
    RlooAdvantageConfig, ScaleRewards,
};
use trainer::rl::policy_loss::{
    self, GrpoLossConfig, LossType, PolicyBatch, ReinforceLossConfig, RlooLossConfig,
};

const TOL: f64 = 1e-6;

fn cases() -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference/data/rl/cases.json");
    if !path.exists() {
        println!(
            "SKIPPED: {} missing (run python3 trainer/reference/rl_reference.py)",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(&path).expect("read cases.json");
    Some(serde_json::from_str(&text).expect("parse cases.json"))
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

fn opt_rows(v: &Value) -> Vec<Vec<Option<f64>>> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(Value::as_f64)
                .collect()
        })
        .collect()
}

fn name(case: &Value) -> &str {
    case["name"].as_str().expect("name")
}

fn tensor2(rows: &[Vec<f64>], dtype: DType) -> Tensor {
    let (b, t) = (rows.len(), rows.first().map_or(0, Vec::len));
    Tensor::from_vec(rows.concat(), (b, t), &Device::Cpu)
        .expect("tensor")
        .to_dtype(dtype)
        .expect("dtype")
}

fn tensor1(v: &[f64], dtype: DType) -> Tensor {
    Tensor::new(v, &Device::Cpu)
        .expect("tensor")
        .to_dtype(dtype)
        .expect("dtype")
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .expect("f64")
        .to_scalar::<f64>()
        .expect("scalar")
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .expect("f64")
        .flatten_all()
        .expect("flat")
        .to_vec1()
        .expect("vec")
}

/// Largest deviation seen, with the case that produced it.
#[derive(Default)]
struct Worst {
    diff: f64,
    at: String,
    checked: usize,
}

impl Worst {
    fn check(&mut self, what: &str, got: f64, want: f64) {
        let d = (got - want).abs();
        assert!(
            d <= TOL,
            "{what}: got {got}, reference {want} (differ by {d:e})"
        );
        self.checked += 1;
        if d > self.diff {
            self.diff = d;
            self.at = what.to_string();
        }
    }

    fn all(&mut self, what: &str, got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            self.check(&format!("{what}[{i}]"), *g, *w);
        }
    }

    fn report(&self, section: &str) {
        println!(
            "{section}: {} values within {TOL:e}; max |Δ| {:.2e} ({})",
            self.checked, self.diff, self.at
        );
    }
}

#[test]
fn grpo_advantages_match_trl() {
    let Some(data) = cases() else { return };
    let mut worst = Worst::default();
    for case in data["grpo_advantages"].as_array().expect("cases") {
        let aggregation = match case["aggregation"].as_str().expect("aggregation") {
            "sum_then_normalize" => MultiObjectiveAggregation::SumThenNormalize,
            "normalize_then_sum" => MultiObjectiveAggregation::NormalizeThenSum,
            other => panic!("aggregation {other}"),
        };
        let scale_rewards = match case["scale_rewards"].as_str().expect("scale") {
            "group" => ScaleRewards::Group,
            "batch" => ScaleRewards::Batch,
            "none" => ScaleRewards::None,
            other => panic!("scale_rewards {other}"),
        };
        let cfg = GrpoAdvantageConfig {
            aggregation,
            scale_rewards,
            ..Default::default()
        };
        let got = advantage::grpo_advantages(
            &opt_rows(&case["rewards"]),
            &vec1(&case["weights"]),
            case["group_size"].as_u64().expect("g") as usize,
            &cfg,
        )
        .expect("advantages");
        worst.all(name(case), &got, &vec1(&case["expected"]));
    }
    worst.report("GRPO advantages");
}

#[test]
fn truncated_completion_masking_matches_trl() {
    let Some(data) = cases() else { return };
    let mut worst = Worst::default();
    for case in data["truncation"].as_array().expect("cases") {
        let ids: Vec<Vec<u32>> = case["completion_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|row| vec1(row).into_iter().map(|v| v as u32).collect())
            .collect();
        let width = ids.iter().map(Vec::len).max().unwrap_or(0);
        let mask: Vec<Vec<f64>> = ids
            .iter()
            .map(|r| {
                (0..width)
                    .map(|j| f64::from(u8::from(j < r.len())))
                    .collect()
            })
            .collect();
        let eos: Vec<u32> = vec1(&case["eos"]).into_iter().map(|v| v as u32).collect();
        let pad = num(&case["pad"]) as u32;
        let got =
            policy_loss::mask_truncated_completions(&tensor2(&mask, DType::F32), &ids, &eos, pad)
                .expect("mask");
        let want: Vec<f64> = vec2(&case["expected_mask"]).concat();
        worst.all(name(case), &flat(&got), &want);
    }
    worst.report("truncation mask");
}

#[test]
fn rloo_advantages_match_trl() {
    let Some(data) = cases() else { return };
    let mut worst = Worst::default();
    for case in data["rloo_advantages"].as_array().expect("cases") {
        let mask = vec2(&case["mask"]);
        let width = mask[0].len();
        let kl = advantage::sequence_k1(
            &vec2(&case["old_logp"]).concat(),
            &vec2(&case["ref_logp"]).concat(),
            &mask.concat(),
            width,
        )
        .expect("kl");
        let clip = case["reward_clip_range"]
            .as_array()
            .map(|r| (num(&r[0]), num(&r[1])));
        let cfg = RlooAdvantageConfig {
            beta: num(&case["beta"]),
            reward_clip_range: clip,
            normalize: case["normalize"].as_bool().expect("normalize"),
            ..Default::default()
        };
        let got = advantage::rloo_advantages(
            &opt_rows(&case["rewards"]),
            &vec1(&case["weights"]),
            case["group_size"].as_u64().expect("g") as usize,
            Some(&kl),
            &cfg,
        )
        .expect("advantages");
        worst.all(name(case), &got, &vec1(&case["expected"]));
        if let Some(want) = case["expected_kl_metric"].as_f64() {
            // TRL logs the token mean of the k1 terms the reward used.
            let tokens: f64 = mask.concat().iter().sum();
            let mean = kl.iter().sum::<f64>() / tokens.max(1.0);
            worst.check(&format!("{}/kl", name(case)), mean, want);
        }
    }
    worst.report("RLOO advantages");
}

fn loss_type(case: &Value) -> LossType {
    match case["loss_type"].as_str().expect("loss_type") {
        "grpo" => LossType::Grpo,
        "bnpo" => LossType::Bnpo,
        "dapo" => LossType::Dapo,
        "dr_grpo" => LossType::DrGrpo,
        other => panic!("loss_type {other}"),
    }
}

#[test]
fn grpo_losses_gradients_and_metrics_match_trl() {
    let Some(data) = cases() else { return };
    for dtype in [DType::F64, DType::F32] {
        let mut worst = Worst::default();
        for case in data["grpo_losses"].as_array().expect("cases") {
            let cfg = GrpoLossConfig {
                loss_type: loss_type(case),
                epsilon_low: num(&case["epsilon_low"]),
                epsilon_high: num(&case["epsilon_high"]),
                beta: num(&case["beta"]),
                kl_bias_correction: case["use_bias_correction_kl"].as_bool().expect("bias"),
                max_completion_length: case["max_completion_length"].as_u64().expect("max")
                    as usize,
                gradient_accumulation_steps: case["gradient_accumulation_steps"]
                    .as_u64()
                    .expect("ga") as usize,
            };
            for (k, mb) in case["micro_batches"]
                .as_array()
                .expect("mbs")
                .iter()
                .enumerate()
            {
                let what = format!("{}/{dtype:?}/micro-batch {k}", name(case));
                let logp = Var::from_tensor(&tensor2(&vec2(&mb["logp"]), dtype)).expect("var");
                let old =
                    (!mb["old_logp"].is_null()).then(|| tensor2(&vec2(&mb["old_logp"]), dtype));
                let reference = tensor2(&vec2(&mb["ref_logp"]), dtype);
                let mask = tensor2(&vec2(&mb["mask"]), dtype);
                let adv = tensor1(&vec1(&mb["advantages"]), dtype);
                let batch = PolicyBatch {
                    logp: logp.as_tensor(),
                    old_logp: old.as_ref(),
                    ref_logp: Some(&reference),
                    mask: &mask,
                    advantages: &adv,
                    generation_batch_tokens: Some(num(&mb["generation_batch_tokens"])),
                };
                let out = policy_loss::grpo_loss(&batch, &cfg).expect("loss");
                worst.check(&format!("{what}/loss"), scalar(&out.loss), num(&mb["loss"]));
                let grads = out.loss.backward().expect("backward");
                let grad = grads
                    .get(&logp)
                    .expect("the gradient reaches the log-probs");
                worst.all(
                    &format!("{what}/grad"),
                    &flat(grad),
                    &vec2(&mb["grad"]).concat(),
                );
                match (out.metrics.kl, mb["kl"].as_f64()) {
                    (Some(got), Some(want)) => worst.check(&format!("{what}/kl"), got, want),
                    (None, None) => {}
                    (got, want) => panic!("{what}: kl {got:?} vs {want:?}"),
                }
                for (key, got) in [
                    ("clip_low", out.metrics.clip_low.expect("low")),
                    ("clip_high", out.metrics.clip_high.expect("high")),
                    ("clip_region", out.metrics.clip_fraction),
                ] {
                    worst.check(&format!("{what}/{key}"), got, num(&mb[key]));
                }
            }
        }
        worst.report(&format!("GRPO losses ({dtype:?})"));
    }
}

#[test]
fn rloo_losses_match_trl() {
    let Some(data) = cases() else { return };
    for dtype in [DType::F64, DType::F32] {
        let mut worst = Worst::default();
        for case in data["rloo_losses"].as_array().expect("cases") {
            let what = format!("{}/{dtype:?}", name(case));
            let mask = tensor2(&vec2(&case["mask"]), dtype);
            let old = policy_loss::sequence_logp(&tensor2(&vec2(&case["old_logp"]), dtype), &mask)
                .expect("old");
            let logp = Var::from_tensor(&tensor2(&vec2(&case["logp"]), dtype)).expect("var");
            let cfg = RlooLossConfig {
                epsilon_low: num(&case["epsilon_low"]),
                epsilon_high: num(&case["epsilon_high"]),
                gradient_accumulation_steps: 1,
            };
            let adv = tensor1(&vec1(&case["advantages"]), dtype);
            let out =
                policy_loss::rloo_loss(logp.as_tensor(), &old, &mask, &adv, &cfg).expect("loss");
            worst.check(
                &format!("{what}/loss"),
                scalar(&out.loss),
                num(&case["loss"]),
            );
            let grads = out.loss.backward().expect("backward");
            worst.all(
                &format!("{what}/grad"),
                &flat(grads.get(&logp).expect("grad")),
                &vec2(&case["grad"]).concat(),
            );
            for (key, got) in [
                ("clip_low", out.metrics.clip_low.expect("low")),
                ("clip_high", out.metrics.clip_high.expect("high")),
                ("clip_region", out.metrics.clip_fraction),
            ] {
                worst.check(&format!("{what}/{key}"), got, num(&case[key]));
            }
        }
        worst.report(&format!("RLOO losses ({dtype:?})"));
    }
}

#[test]
fn reinforce_baseline_advantages_match_openrlhf() {
    let Some(data) = cases() else { return };
    let mut worst = Worst::default();
    for case in data["reinforce_advantages"].as_array().expect("cases") {
        let mask = vec2(&case["mask"]);
        let width = mask[0].len();
        let kl = advantage::approx_kl(
            &vec2(&case["old_logp"]).concat(),
            &vec2(&case["ref_logp"]).concat(),
            KlEstimator::K1,
        )
        .expect("kl");
        let range = vec1(&case["reward_clip_range"]);
        let cfg = ReinforceConfig {
            beta: num(&case["beta"]),
            reward_clip_range: Some((range[0], range[1])),
            whiten_std: !case["no_std_norm"].as_bool().expect("no_std_norm"),
        };
        let scores: Vec<Option<f64>> = vec1(&case["scores"]).into_iter().map(Some).collect();
        let got = advantage::reinforce_baseline_advantages(
            &scores,
            case["group_size"].as_u64().expect("g") as usize,
            Some(&kl),
            &mask.concat(),
            width,
            &cfg,
        )
        .expect("advantages");
        worst.all(name(case), &got, &vec2(&case["expected"]).concat());
    }
    worst.report("REINFORCE++ advantages");
}

#[test]
fn reinforce_losses_match_openrlhf() {
    let Some(data) = cases() else { return };
    for dtype in [DType::F64, DType::F32] {
        let mut worst = Worst::default();
        for case in data["reinforce_losses"].as_array().expect("cases") {
            let what = format!("{}/{dtype:?}", name(case));
            let logp = Var::from_tensor(&tensor2(&vec2(&case["logp"]), dtype)).expect("var");
            let cfg = ReinforceLossConfig {
                epsilon_low: num(&case["epsilon_low"]),
                epsilon_high: num(&case["epsilon_high"]),
                dual_clip: case["dual_clip"].as_f64(),
            };
            let out = policy_loss::reinforce_loss(
                logp.as_tensor(),
                &tensor2(&vec2(&case["old_logp"]), dtype),
                &tensor2(&vec2(&case["mask"]), dtype),
                &tensor2(&vec2(&case["advantages"]), dtype),
                None,
                &cfg,
            )
            .expect("loss");
            worst.check(
                &format!("{what}/loss"),
                scalar(&out.loss),
                num(&case["loss"]),
            );
            let grads = out.loss.backward().expect("backward");
            worst.all(
                &format!("{what}/grad"),
                &flat(grads.get(&logp).expect("grad")),
                &vec2(&case["grad"]).concat(),
            );
            worst.check(
                &format!("{what}/clip_ratio"),
                out.metrics.clip_fraction,
                num(&case["clip_ratio"]),
            );
            worst.check(
                &format!("{what}/ppo_kl"),
                out.metrics.ppo_kl.expect("ppo_kl"),
                num(&case["ppo_kl"]),
            );
        }
        worst.report(&format!("REINFORCE++ losses ({dtype:?})"));
    }
}
