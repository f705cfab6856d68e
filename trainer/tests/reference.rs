//! Numerics pinned against PyTorch / Hugging Face transformers.
//!
//! `trainer/reference/tiny_models.py` builds tiny Llama, Qwen2 and GPT-2 models from a fixed
//! seed, saves them with `save_pretrained`, and stores the logits, the completion-only loss,
//! every gradient and every parameter after one `torch.optim.AdamW` step in
//! `expected.safetensors` (regenerate: `python3 trainer/reference/tiny_models.py`). These
//! tests load the same directories with trainer's HF loader and compare. Tolerances: float32
//! with different summation orders; measured maxima (printed by the tests): logits 1.3e-7,
//! loss 4.8e-7, gradients 9e-8; the bounds are 1e-5 for logits and 1e-6 for the rest.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use trainer::models::Inputs;
use trainer::optim::{AdamW, AdamWParams};
use trainer::sft::train::masked_nll;

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .expect("abs")
        .flatten_all()
        .expect("f")
        .max(0)
        .expect("m")
        .to_scalar::<f32>()
        .expect("s")
}

fn check(family: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("reference/data")
        .join(family);
    if !dir.join("expected.safetensors").exists() {
        println!(
            "SKIPPED: {} missing (run python3 trainer/reference/tiny_models.py)",
            dir.display()
        );
        return;
    }
    let dev = Device::Cpu;
    let exp: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("expected.safetensors"), &dev).expect("expected");
    let loaded = trainer::load::load(&dir, true, &dev).expect("load");
    let varmap = loaded.varmap.expect("trainable");
    let ids = exp["ids"].to_dtype(DType::U32).expect("ids");
    let attn: Vec<Vec<u32>> = exp["attention_mask"]
        .to_dtype(DType::U32)
        .expect("m")
        .to_vec2()
        .expect("v");
    let loss_mask = exp["loss_mask"].to_dtype(DType::F32).expect("lm");

    let logits = loaded
        .model
        .forward(&Inputs::with_mask(ids.clone(), &attn).expect("in"), None)
        .expect("fwd");
    let real = exp["attention_mask"]
        .to_dtype(DType::F32)
        .expect("f")
        .unsqueeze(2)
        .expect("u");
    let logit_diff = max_abs(
        &(&logits - &exp["logits"])
            .expect("d")
            .broadcast_mul(&real)
            .expect("m"),
    );

    let (sum, count) = masked_nll(&logits, &ids, &loss_mask).expect("loss");
    let loss = (sum / count as f64).expect("mean");
    let loss_diff =
        (loss.to_scalar::<f32>().expect("s") - exp["loss"].to_vec1::<f32>().expect("v")[0]).abs();

    let grads = loss.backward().expect("bwd");
    let named: Vec<(String, candle_core::Var)> = varmap
        .data()
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut grad_diff = 0f32;
    for (name, var) in &named {
        let want = exp
            .get(&format!("grad.{name}"))
            .unwrap_or_else(|| panic!("{family}: torch has no parameter {name}"));
        let got = grads
            .get(var)
            .unwrap_or_else(|| panic!("{family}: no gradient for {name}"));
        grad_diff = grad_diff.max(max_abs(&(got - want).expect("d")));
    }
    let params = AdamWParams {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut opt = AdamW::new(named.clone(), params).expect("opt");
    // The step is fed torch's gradients: Adam normalises each element by its own magnitude,
    // so on elements whose true gradient is ~0 (GPT-2's key bias: softmax ignores a
    // per-query constant) float noise of 1e-9 becomes an lr-sized difference. The gradients
    // themselves are compared above; this isolates the optimizer's arithmetic.
    let g: Vec<_> = opt
        .vars()
        .map(|(n, _)| Some(exp[&format!("grad.{n}")].clone()))
        .collect();
    opt.step(&g).expect("step");
    let mut step_diff = 0f32;
    for (name, var) in &named {
        step_diff = step_diff.max(max_abs(
            &(var.as_tensor() - &exp[&format!("after.{name}")]).expect("d"),
        ));
    }
    println!(
        "{family}: max |Δ| logits {logit_diff:.2e}, loss {loss_diff:.2e}, grads {grad_diff:.2e}, AdamW step {step_diff:.2e}"
    );
    assert!(logit_diff < 1e-5, "{family}: logits differ by {logit_diff}");
    assert!(loss_diff < 1e-6, "{family}: loss differs by {loss_diff}");
    assert!(
        grad_diff < 1e-6,
        "{family}: gradients differ by {grad_diff}"
    );
    assert!(
        step_diff < 1e-6,
        "{family}: parameters after AdamW differ by {step_diff}"
    );
}

#[test]
fn llama_matches_transformers() {
    check("llama");
}

#[test]
fn qwen2_with_qkv_bias_and_tied_embeddings_matches_transformers() {
    check("qwen2");
}

#[test]
fn gpt2_matches_transformers() {
    check("gpt2");
}
