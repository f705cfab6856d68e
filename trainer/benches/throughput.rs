//! Throughput of trainer against PyTorch eager, side by side in one run.
//!
//! GPT-2 style model: 4 layers, d 256, 4 heads, context 256, batch 8, vocab 8192, float32.
//! - training: forward + completion loss (every position) + backward + AdamW, tokens/s;
//! - LoRA training: the same step with the base frozen and rank-8 adapters (alpha 16) on every
//!   `c_attn` and `c_fc`, AdamW on the adapters only;
//! - generation: batch 8, 16-token prompts, 128 new tokens, greedy, KV cache, tokens/s.
//!
//! Repeats alternate trainer and PyTorch (`trainer/reference/bench_torch.py`) and report
//! medians. Run: `cargo bench -p trainer --bench throughput` (options after `--`:
//! `--repeats N`, `--steps N`, `--no-torch`).

use std::process::Command;
use std::time::Instant;

use candle_core::{Device, Tensor};
use trainer::generate::{GenerationConfig, generate};
use trainer::load::hf::random_model;
use trainer::models::{CausalLm, Inputs};
use trainer::optim::{AdamW, AdamWParams, GradAccumulator};
use trainer::sft::train::masked_nll;

const B: usize = 8;
const T: usize = 256;
const V: usize = 8192;
const NEW: usize = 128;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ids(b: usize, t: usize, seed: u32) -> Tensor {
    let v: Vec<u32> = (0..b * t)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) % V as u32)
        .collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).expect("ids")
}

fn train_tok_s(model: &CausalLm, opt: &mut AdamW, steps: usize) -> f64 {
    let x = ids(B, T, 1);
    let ones = Tensor::ones((B, T), candle_core::DType::F32, &Device::Cpu).expect("ones");
    let inputs = Inputs::new(x.clone(), 0).expect("inputs");
    let mut step = || {
        let logits = model.forward(&inputs, None).expect("fwd");
        let (sum, count) = masked_nll(&logits, &x, &ones).expect("loss");
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
    (steps * B * T) as f64 / t0.elapsed().as_secs_f64()
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

fn torch(steps: usize) -> Option<(f64, f64, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/reference/bench_torch.py");
    let out = Command::new("python3")
        .arg(script)
        .args([steps.to_string(), NEW.to_string()])
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
    let v: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).ok()?;
    Some((
        v["train_tok_s"].as_f64()?,
        v["lora_tok_s"].as_f64()?,
        v["gen_tok_s"].as_f64()?,
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
    let repeats = arg("--repeats", 3);
    let steps = arg("--steps", 5);
    let with_torch = !std::env::args().any(|a| a == "--no-torch");
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
    let mut opt = AdamW::new(
        vars,
        AdamWParams {
            lr: 1e-4,
            weight_decay: 0.0,
            ..AdamWParams::default()
        },
    )
    .expect("opt");
    // The LoRA copy: the same weights frozen, adapters on c_attn and c_fc.
    let tensors = trainer::load::hf::varmap_tensors(&varmap).expect("tensors");
    let (mut frozen, _) = trainer::load::hf::model_from_tensors(
        &cfg,
        tensors,
        false,
        &Device::Cpu,
        std::path::Path::new("bench"),
    )
    .expect("frozen");
    let lora_vars = candle_nn::VarMap::new();
    let lora_cfg = trainer::lora::LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.0,
        targets: vec!["c_attn".into(), "c_fc".into()],
        seed: 0,
    };
    trainer::lora::attach(&mut frozen, &lora_cfg, &lora_vars).expect("attach");
    let named: Vec<_> = lora_vars
        .data()
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut lora_opt = AdamW::new(
        named,
        AdamWParams {
            lr: 1e-4,
            weight_decay: 0.0,
            ..AdamWParams::default()
        },
    )
    .expect("opt");

    let (mut ct, mut cl, mut cg) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tt, mut tl, mut tg) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..repeats {
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
