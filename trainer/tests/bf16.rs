//! bf16 mixed precision: every op of the training graph and every model family runs in bf16
//! close to f32 (values and gradients), and SFT in bf16 (LoRA and full) learns, agrees with
//! f32 at the first step, resumes bit-identically and writes loadable weights.
//!
//! Tolerances: bf16 keeps 8 significant bits (relative rounding error ≤ 2⁻⁹ ≈ 0.2%), and a
//! model rounds at every weight, activation and op, so results are compared relative to the
//! reference's scale, at about ten roundings' worth (a few percent) for single ops and
//! forward passes.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use trainer::Error;
use trainer::models::{Inputs, KvCache};
use trainer::sft::{Precision, SftConfig, TrainOptions, train};

/// A deterministic, irregular tensor with values in about [−1, 1].
fn sample(dims: &[usize], seed: u32) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n as u32)
        .map(|i| {
            let h = (i ^ seed.wrapping_mul(0x9E37_79B9)).wrapping_mul(2_654_435_761);
            (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).expect("sample")
}

fn to_f32(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F32).expect("f32")
}

/// `max |a − b| / max |b|`, both taken to f32.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (to_f32(a), to_f32(b));
    let max = |t: &Tensor| {
        t.abs()
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.max(0))
            .and_then(|t| t.to_scalar::<f32>())
            .expect("max")
    };
    max(&(&a - &b).expect("sub")) / max(&b).max(f32::MIN_POSITIVE)
}

/// Gradient of `sum(f(inputs) · up)` for each input, with the inputs taken as variables of
/// `dtype` (the upstream gradient `up` too); the output's dtype is checked to be `dtype`.
fn value_and_grads(
    f: &dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>,
    inputs: &[Tensor],
    up: &Tensor,
    dtype: DType,
) -> (Tensor, Vec<Tensor>) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(&t.to_dtype(dtype).expect("cast")).expect("var"))
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts).expect("forward");
    assert_eq!(y.dtype(), dtype, "the op keeps the activations' dtype");
    let loss = (&y * up.to_dtype(dtype).expect("up"))
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.sum_all())
        .expect("loss");
    let grads = loss.backward().expect("backward");
    let g = vars
        .iter()
        .map(|v| {
            let g = grads.get(v).expect("every input gets a gradient");
            assert_eq!(g.dtype(), dtype);
            g.clone()
        })
        .collect();
    (y, g)
}

#[test]
fn every_op_of_the_training_graph_runs_in_bf16_close_to_f32_in_value_and_gradient() {
    let mask = Tensor::new(
        &[[1f32, 1., 1., 1., 1.], [0., 0., 0., 1., 1.]],
        &Device::Cpu,
    )
    .expect("mask");
    type Op = Box<dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>>;
    let cases: Vec<(&str, Vec<Tensor>, Op)> = vec![
        (
            "layer_norm",
            vec![
                (sample(&[3, 5, 64], 1) * 3.0).expect("x"),
                (sample(&[64], 2) + 1.0).expect("w"),
                sample(&[64], 3),
            ],
            Box::new(|t| trainer::ops::layer_norm(&t[0], &t[1], &t[2], 1e-5)),
        ),
        (
            "rms_norm",
            vec![
                (sample(&[2, 7, 48], 5) * 3.0).expect("x"),
                (sample(&[48], 6) + 1.0).expect("w"),
            ],
            Box::new(|t| trainer::ops::rms_norm(&t[0], &t[1], 1e-6)),
        ),
        (
            "gelu_tanh",
            vec![(sample(&[4, 9, 70], 11) * 4.0).expect("x")],
            Box::new(|t| trainer::ops::gelu_tanh(&t[0])),
        ),
        (
            "gelu_erf",
            vec![(sample(&[4, 9, 70], 12) * 4.0).expect("x")],
            Box::new(|t| t[0].gelu_erf()),
        ),
        (
            "silu_mul",
            vec![
                (sample(&[3, 9, 40], 13) * 6.0).expect("g"),
                sample(&[3, 9, 40], 14),
            ],
            Box::new(|t| trainer::ops::silu_mul(&t[0], &t[1])),
        ),
        (
            // 3 queries over 5 keys (2 cached), row 1 left-padded: the KV-cache path.
            "masked_softmax",
            vec![(sample(&[2, 2, 3, 5], 21) * 5.0).expect("x")],
            Box::new(move |t| trainer::ops::masked_softmax(&t[0], 0.5, Some(&mask))),
        ),
        (
            "masked_softmax without a key mask",
            vec![(sample(&[2, 2, 4, 4], 22) * 5.0).expect("x")],
            Box::new(|t| trainer::ops::masked_softmax(&t[0], 0.5, None)),
        ),
    ];
    for (name, inputs, f) in &cases {
        let up = sample(inputs[0].dims(), 99);
        let (y32, g32) = value_and_grads(f.as_ref(), inputs, &up, DType::F32);
        let (y16, g16) = value_and_grads(f.as_ref(), inputs, &up, DType::BF16);
        let dy = rel_diff(&y16, &y32);
        assert!(dy < 2e-2, "{name}: bf16 value off by {dy} (relative)");
        for (i, (a, b)) in g16.iter().zip(&g32).enumerate() {
            let dg = rel_diff(a, b);
            assert!(
                dg < 3e-2,
                "{name}: bf16 gradient {i} off by {dg} (relative)"
            );
        }
    }
}

#[test]
fn every_family_loads_in_bf16_and_its_logits_and_gradients_are_close_to_f32() {
    let dev = Device::Cpu;
    let ids = Tensor::new(&[[5u32, 9, 200, 3, 17, 42], [0, 0, 7, 100, 11, 12]], &dev).expect("ids");
    let inputs =
        Inputs::with_mask(ids.clone(), &[vec![1; 6], vec![0, 0, 1, 1, 1, 1]]).expect("inputs");
    let loss_mask = Tensor::new(
        &[[0f32, 0., 1., 1., 1., 1.], [0., 0., 0., 1., 1., 1.]],
        &dev,
    )
    .expect("mask");
    for (name, cfg) in common::all_families() {
        let dir = tempfile::tempdir().expect("tmp");
        common::write_tiny(dir.path(), &cfg, 7);
        let f32m = trainer::load::load(dir.path(), true, &dev).expect("f32");
        let mut bf16 = trainer::load::load_as(dir.path(), true, DType::BF16, &dev).expect("bf16");
        // The weights are held in bf16 (half the bytes), trainable ones included.
        let vm = bf16.varmap.as_ref().expect("trainable");
        let vars = vm.all_vars();
        assert!(vars.iter().all(|v| v.dtype() == DType::BF16), "{name}");
        use trainer::lora::LoraTarget;
        assert!(
            bf16.model
                .linears_mut()
                .iter()
                .all(|(_, l)| l.weight().dtype() == DType::BF16),
            "{name}"
        );
        let a = f32m.model.forward(&inputs, None).expect("f32 forward");
        let b = bf16.model.forward(&inputs, None).expect("bf16 forward");
        assert_eq!(b.dtype(), DType::BF16, "{name}: activations flow in bf16");
        let d = rel_diff(&b, &a);
        assert!(d < 2e-2, "{name}: bf16 logits off by {d} (relative)");
        // The KV-cache path (generation: cached keys, the composed masked softmax, RoPE at
        // an offset) gives the last position's logits of the full pass.
        let seq = Tensor::new(&[[5u32, 9, 200, 3, 17, 42]], &dev).expect("seq");
        let full = bf16
            .model
            .forward(&Inputs::new(seq.clone(), 0).expect("in"), None)
            .expect("full")
            .narrow(1, 5, 1)
            .expect("last");
        let mut cache = KvCache::new(bf16.model.num_layers());
        let head = Inputs::new(seq.narrow(1, 0, 5).expect("head"), 0).expect("in");
        bf16.model
            .forward(&head, Some(&mut cache))
            .expect("prefill");
        let tail = Inputs::new(seq.narrow(1, 5, 1).expect("tail"), 5).expect("in");
        let step = bf16.model.forward(&tail, Some(&mut cache)).expect("step");
        assert_eq!(step.dtype(), DType::BF16);
        let d = rel_diff(&step, &full);
        assert!(d < 2e-2, "{name}: cached bf16 logits off by {d} (relative)");
        // The loss is taken in f32 and the gradients reach every bf16 weight.
        let (l32, _) = trainer::loss::masked_nll(&a, &ids, &loss_mask).expect("loss");
        let (l16, _) = trainer::loss::masked_nll(&b, &ids, &loss_mask).expect("loss");
        assert_eq!(l16.dtype(), DType::F32);
        let (l32v, l16v) = (
            l32.to_scalar::<f32>().expect("s"),
            l16.to_scalar::<f32>().expect("s"),
        );
        assert!(
            (l16v - l32v).abs() < 2e-3 * l32v,
            "{name}: loss {l16v} vs {l32v}"
        );
        let g32 = l32.backward().expect("f32 backward");
        let g16 = l16.backward().expect("bf16 backward");
        let named32 = f32m
            .varmap
            .as_ref()
            .expect("vm")
            .data()
            .lock()
            .expect("lock")
            .clone();
        let named16 = vm.data().lock().expect("lock").clone();
        let mut worst = (0f32, String::new());
        for (k, v16) in &named16 {
            let gb = g16
                .get(v16)
                .unwrap_or_else(|| panic!("{name}: no gradient for {k}"));
            assert_eq!(gb.dtype(), DType::BF16);
            let ga = g32.get(&named32[k]).expect("f32 gradient");
            let d = rel_diff(gb, ga);
            if d > worst.0 {
                worst = (d, k.clone());
            }
        }
        assert!(
            worst.0 < 6e-2,
            "{name}: gradient of {} off by {}",
            worst.1,
            worst.0
        );
    }
}

/// A run on a tiny model in `dir` (the same setup as `tests/sft.rs`).
fn config(dir: &Path, model_json: &str, dtype: Precision) -> SftConfig {
    common::write_tiny(&dir.join("model"), model_json, 13);
    common::write_prompt_completions(&dir.join("train.jsonl"), 12);
    let text = format!(
        "model = {:?}\ntrain_data = {:?}\noutput_dir = {:?}\nbatch_size = 4\nmax_steps = 30\n\
         lr = 1e-2\nwarmup_steps = 3\nsave_every = 10\nseed = 5\ndtype = \"{}\"\n",
        dir.join("model"),
        dir.join("train.jsonl"),
        dir.join("run"),
        dtype.as_str(),
    );
    SftConfig::from_toml(&text, Path::new("test.toml")).expect("config")
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["loss"].as_f64())
        .collect()
}

fn load_st(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).expect("safetensors")
}

/// Every tensor of `a` equals the one of the same name in `b`, dtype and bits.
fn assert_bit_identical(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: tensor count");
    for (k, t) in a {
        assert_eq!(t.dtype(), b[k].dtype(), "{what}: {k} dtype");
        // Widening is exact, so equal f32 bits mean equal bf16 bits.
        let bits = |t: &Tensor| -> Vec<u32> {
            to_f32(t)
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .expect("v")
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        assert!(bits(t) == bits(&b[k]), "{what}: {k} differs");
    }
}

#[test]
fn a_bf16_lora_run_learns_and_its_first_loss_agrees_with_f32() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), &common::tiny_llama_json(), Precision::F32);
    cfg.lora_rank = 8;
    cfg.lora_targets = vec!["q_proj".into(), "v_proj".into(), "down_proj".into()];
    cfg.lr = 3e-2;
    cfg.output_dir = dir.path().join("f32");
    train(&cfg, &TrainOptions::default()).expect("f32 run");
    let f32_losses = losses(&cfg.output_dir);
    cfg.dtype = Precision::Bf16;
    cfg.output_dir = dir.path().join("bf16");
    train(&cfg, &TrainOptions::default()).expect("bf16 run");
    let bf16_losses = losses(&cfg.output_dir);
    assert_eq!(bf16_losses.len(), 30);
    // Step 1 sees the same batch and (fresh adapters, B = 0) the base model alone: the two
    // differ only by the bf16 rounding of weights and activations. The mean loss agrees to
    // within 0.2% (one bf16 rounding, 2⁻⁹; measured: 2e-5). It does differ, which shows the
    // run really was in bf16.
    let (a, b) = (f32_losses[0], bf16_losses[0]);
    assert!((a - b).abs() < 2e-3 * a, "step 1: f32 {a} vs bf16 {b}");
    assert_ne!(a, b, "the bf16 run computed exactly what the f32 run did");
    // It learns as the f32 run does. (LoRA cannot touch the random LM head here, which
    // bounds how far either can go: 5.58 → 5.15 in f32 over 30 steps.)
    let (last32, last16) = (f32_losses[29], bf16_losses[29]);
    assert!(last16 < b - 0.3, "bf16 LoRA loss {b} → {last16}");
    assert!(
        (last16 - last32).abs() < 5e-3 * last32,
        "step 30: f32 {last32} vs bf16 {last16}"
    );
    // The adapter is saved in f32, loadable on the f32 base model.
    let adapter = load_st(&cfg.output_dir.join("final/adapter_model.safetensors"));
    assert!(adapter.values().all(|t| t.dtype() == DType::F32));
    let mut base =
        trainer::load::load(&dir.path().join("model"), false, &Device::Cpu).expect("base");
    let vm = candle_nn::VarMap::new();
    trainer::lora::load(&mut base.model, &cfg.output_dir.join("final"), &vm).expect("adapter");
}

#[test]
fn a_bf16_full_run_learns_and_writes_a_bf16_hf_model_that_loads_and_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), &common::tiny_gpt2_json(), Precision::Bf16);
    cfg.max_steps = 60;
    let s = train(&cfg, &TrainOptions::default()).expect("bf16 run");
    let l = losses(&cfg.output_dir);
    assert!(l[59] < l[0] / 10.0, "bf16 full loss {} → {}", l[0], l[59]);
    // The checkpoint holds bf16 weights and the f32 master copies they round from.
    let ckpt = s.last_checkpoint.expect("checkpoint");
    let weights = load_st(&ckpt.join("trainable.safetensors"));
    let state = load_st(&ckpt.join("optimizer.safetensors"));
    for (k, w) in &weights {
        assert_eq!(w.dtype(), DType::BF16, "{k}");
        let master = &state[&format!("master.{k}")];
        assert_eq!(master.dtype(), DType::F32);
        assert_eq!(
            rel_diff(&master.to_dtype(DType::BF16).expect("round"), w),
            0.0
        );
    }
    // The final model: bf16 tensors, labelled bfloat16, equal to the last weights.
    let final_dir = s.final_dir.expect("final");
    let saved = load_st(&final_dir.join("model.safetensors"));
    assert!(saved.values().all(|t| t.dtype() == DType::BF16));
    assert_bit_identical(&saved, &weights, "final vs last checkpoint");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(final_dir.join("config.json")).expect("config.json"),
    )
    .expect("json");
    assert_eq!(config["torch_dtype"], "bfloat16");
    // `trainer generate`'s loader widens it to f32, and it answers the trained prompt.
    let loaded = trainer::load::load(&final_dir, false, &Device::Cpu).expect("reload");
    let tok = loaded.tokenizer.expect("tokenizer");
    let out = trainer::generate::generate(
        &loaded.model,
        &[tok.encode("q2\n").expect("enc")],
        &trainer::generate::GenerationConfig {
            max_new_tokens: 12,
            ..Default::default()
        },
        tok.pad_id,
        Some(&tok),
    )
    .expect("generate");
    assert_eq!(out[0].text, "answer 222");
}

#[test]
fn bf16_runs_stopped_and_resumed_end_bit_identical_to_uninterrupted_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = config(dir.path(), &common::tiny_llama_json(), Precision::Bf16);
    let stop = |n| TrainOptions {
        stop_after: Some(n),
        ..Default::default()
    };
    // Full fine-tuning (bf16 weights, f32 masters) and LoRA with dropout (f32 adapters on a
    // bf16 base), each with gradient accumulation.
    let mut lora = base.clone();
    lora.lora_rank = 4;
    lora.lora_dropout = 0.1;
    for (what, mut cfg, file) in [
        ("full", base.clone(), "final/model.safetensors"),
        ("lora", lora, "final/adapter_model.safetensors"),
    ] {
        cfg.max_steps = 7;
        cfg.save_every = 3;
        cfg.grad_accum = 2;
        cfg.output_dir = dir.path().join(format!("{what}-straight"));
        train(&cfg, &TrainOptions::default()).expect("straight");
        let reference = load_st(&cfg.output_dir.join(file));
        cfg.output_dir = dir.path().join(format!("{what}-resumed"));
        assert_eq!(train(&cfg, &stop(5)).expect("first leg").steps, 5);
        let resumed = train(&cfg, &TrainOptions::default()).expect("second leg");
        assert_eq!(resumed.resumed_from, 3, "{what}");
        assert_bit_identical(&reference, &load_st(&cfg.output_dir.join(file)), what);
    }
}

#[test]
fn resuming_in_another_dtype_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), &common::tiny_gpt2_json(), Precision::F32);
    cfg.max_steps = 4;
    cfg.save_every = 2;
    train(
        &cfg,
        &TrainOptions {
            stop_after: Some(2),
            ..Default::default()
        },
    )
    .expect("f32 leg");
    cfg.dtype = Precision::Bf16;
    let err = train(&cfg, &TrainOptions::default()).expect_err("refused");
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::SettingsChanged { changes, .. } if changes.len() == 1
            && changes[0].key == "dtype")
            && msg.contains("dtype = \"f32\" (now \"bf16\")"),
        "{msg}"
    );
    // Without the settings file (a directory from before it was checked), the checkpoint
    // itself still refuses, naming its dtype.
    std::fs::remove_file(cfg.output_dir.join("config.toml")).expect("rm");
    let err = train(&cfg, &TrainOptions::default()).expect_err("refused");
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "dtype")
            && msg.contains("written with dtype = \"f32\"")
            && msg.contains("step-00000002"),
        "{msg}"
    );
}
