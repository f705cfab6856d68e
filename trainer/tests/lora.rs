//! LoRA adapters on the project's models: training alone, saving, merging, combining.

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use trainer::load::{hf, load};
use trainer::lora::{self, LoraConfig, LoraTarget};
use trainer::models::{CausalLm, Inputs};
use trainer::optim::{AdamW, AdamWParams};

fn cfg(targets: &[&str], dropout: f32) -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout,
        targets: targets.iter().map(|s| s.to_string()).collect(),
        seed: 3,
    }
}

fn batch() -> (Inputs, Tensor) {
    let ids =
        Tensor::from_vec(vec![5u32, 66, 67, 68, 9, 10, 11, 12], (2, 4), &Device::Cpu).expect("ids");
    let target =
        Tensor::from_vec(vec![66u32, 67, 68, 69, 10, 11, 12, 13], 8, &Device::Cpu).expect("t");
    (Inputs::new(ids, 0).expect("in"), target)
}

fn loss(model: &CausalLm) -> Tensor {
    let (x, t) = batch();
    let logits = model
        .forward(&x, None)
        .expect("fwd")
        .flatten_to(1)
        .expect("flat");
    candle_nn::loss::cross_entropy(&logits, &t).expect("ce")
}

fn named(vm: &VarMap) -> Vec<(String, candle_core::Var)> {
    vm.data()
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .expect("sub")
        .abs()
        .expect("abs")
        .flatten_all()
        .expect("f")
        .max(0)
        .expect("m")
        .to_scalar::<f32>()
        .expect("s")
}

/// A frozen tiny model with adapters, after one AdamW step (so B is no longer zero).
fn trained_adapter(
    config_json: &str,
    targets: &[&str],
) -> (tempfile::TempDir, CausalLm, VarMap, LoraConfig) {
    let dir = tempfile::tempdir().expect("tmp");
    common::write_tiny(dir.path(), config_json, 21);
    let mut model = load(dir.path(), false, &Device::Cpu).expect("load").model;
    let vm = VarMap::new();
    let c = cfg(targets, 0.0);
    lora::attach(&mut model, &c, &vm).expect("attach");
    let mut opt = AdamW::new(
        named(&vm),
        AdamWParams {
            lr: 0.05,
            ..AdamWParams::default()
        },
    )
    .expect("opt");
    let grads = loss(&model).backward().expect("bwd");
    let g: Vec<_> = opt.vars().map(|(_, v)| grads.get(v).cloned()).collect();
    opt.step(&g).expect("step");
    (dir, model, vm, c)
}

#[test]
fn adapters_alone_train_and_every_one_gets_a_gradient() {
    for (name, json, targets) in [
        (
            "llama",
            common::tiny_llama_json(),
            vec!["q_proj", "v_proj", "down_proj"],
        ),
        ("gpt2", common::tiny_gpt2_json(), vec!["c_attn", "c_fc"]),
    ] {
        let (dir, model, vm, _) = trained_adapter(&json, &targets);
        let vars = named(&vm);
        // 2 layers × targets × (A, B); nothing of the base is trainable.
        assert_eq!(vars.len(), 2 * targets.len() * 2, "{name}");
        assert!(
            vars.iter()
                .all(|(n, _)| n.contains(".lora_A.") || n.contains(".lora_B.")),
            "{name}"
        );
        let grads = loss(&model).backward().expect("bwd");
        for (n, v) in &vars {
            let g = grads
                .get(v)
                .unwrap_or_else(|| panic!("{name}: {n} has no gradient"));
            let norm = g
                .sqr()
                .expect("sq")
                .sum_all()
                .expect("s")
                .to_scalar::<f32>()
                .expect("s");
            assert!(norm > 0.0, "{name}: {n} has a zero gradient");
        }
        // The base on disk and in the model is untouched by the step.
        let on_disk = hf::read_tensors(dir.path(), &Device::Cpu).expect("read");
        let mut model = model;
        for (lin_name, lin) in model.linears_mut() {
            let stored = &on_disk[&format!("{lin_name}.weight")];
            let w = if name == "gpt2" {
                lin.weight().t().expect("t")
            } else {
                lin.weight().clone()
            };
            assert_eq!(
                max_abs_diff(stored, &w),
                0.0,
                "{name}: base weight {lin_name} changed"
            );
        }
    }
}

#[test]
fn merged_adapters_give_the_same_logits() {
    for (json, targets) in [
        (
            common::tiny_qwen2_json(),
            vec!["q_proj", "k_proj", "o_proj", "gate_proj"],
        ),
        (common::tiny_gpt2_json(), vec!["c_attn", "c_proj"]),
    ] {
        let (_dir, mut model, _vm, _) = trained_adapter(&json, &targets);
        let (x, _) = batch();
        let before = model.forward(&x, None).expect("fwd");
        let n = lora::merge(&mut model).expect("merge");
        assert!(n > 0);
        assert!(model.linears_mut().iter().all(|(_, l)| !l.has_adapter()));
        let after = model.forward(&x, None).expect("fwd");
        let d = max_abs_diff(&before, &after);
        assert!(d < 1e-5, "merge changed logits by {d}");
        assert!(max_abs_diff(&before, &before.zeros_like().expect("z")) > 0.0);
    }
}

#[test]
fn adapters_save_and_load_as_their_own_safetensors() {
    let (dir, model, vm, c) = trained_adapter(&common::tiny_llama_json(), &["q_proj", "v_proj"]);
    let out = tempfile::tempdir().expect("tmp");
    lora::save(out.path(), &c, &vm).expect("save");
    let saved =
        candle_core::safetensors::load(out.path().join("adapter_model.safetensors"), &Device::Cpu)
            .expect("st");
    assert_eq!(saved.len(), 8, "only adapter tensors are saved");
    let mut fresh = load(dir.path(), false, &Device::Cpu).expect("load").model;
    let vm2 = VarMap::new();
    let c2 = lora::load(&mut fresh, out.path(), &vm2).expect("load adapters");
    assert_eq!(c2, c);
    let (x, _) = batch();
    let d = max_abs_diff(
        &model.forward(&x, None).expect("a"),
        &fresh.forward(&x, None).expect("b"),
    );
    assert_eq!(d, 0.0);
}

#[test]
fn rewarded_soup_is_the_weighted_sum_of_checkpoints() {
    let (_d1, _m1, vm1, _) = trained_adapter(&common::tiny_llama_json(), &["q_proj"]);
    let vm2 = VarMap::new();
    {
        let mut data = vm2.data().lock().expect("lock");
        for (k, v) in vm1.data().lock().expect("lock").iter() {
            let t = v.as_tensor().affine(-2.0, 1.0).expect("t");
            data.insert(k.clone(), candle_core::Var::from_tensor(&t).expect("var"));
        }
    }
    let a = hf::varmap_tensors(&vm1).expect("a");
    let b = hf::varmap_tensors(&vm2).expect("b");
    let soup = lora::combine(&[(0.25, a.clone()), (0.75, b.clone())]).expect("combine");
    assert_eq!(soup.len(), a.len());
    for (k, t) in &soup {
        let expect = ((&a[k] * 0.25).expect("x") + (&b[k] * 0.75).expect("y")).expect("z");
        assert!(max_abs_diff(t, &expect) < 1e-7, "{k}");
    }
    let mut missing: HashMap<String, Tensor> = b.clone();
    let first = missing.keys().next().cloned().expect("k");
    missing.remove(&first);
    assert!(
        lora::combine(&[(0.5, a), (0.5, missing)]).is_err(),
        "mismatched checkpoints are refused"
    );
}

#[test]
fn dropout_is_seeded_and_only_active_in_training() {
    let dir = tempfile::tempdir().expect("tmp");
    common::write_tiny(dir.path(), &common::tiny_llama_json(), 4);
    let run = |training: bool| {
        let mut model = load(dir.path(), false, &Device::Cpu).expect("load").model;
        let vm = VarMap::new();
        lora::attach(&mut model, &cfg(&["q_proj"], 0.5), &vm).expect("attach");
        // Make B non-zero so the adapter (and its dropout) affects the output.
        for (k, v) in vm.data().lock().expect("lock").iter() {
            if k.contains("lora_B") {
                v.set(&v.ones_like().expect("ones")).expect("set");
            }
        }
        model.set_training(training);
        let (x, _) = batch();
        model.forward(&x, None).expect("fwd")
    };
    assert_eq!(
        max_abs_diff(&run(true), &run(true)),
        0.0,
        "same seed, same masks"
    );
    assert!(
        max_abs_diff(&run(true), &run(false)) > 1e-4,
        "dropout changes training outputs"
    );
    assert_eq!(max_abs_diff(&run(false), &run(false)), 0.0);
}

#[test]
fn reseeding_dropout_replays_the_masks_of_a_step_and_micro_batch() {
    let dir = tempfile::tempdir().expect("tmp");
    common::write_tiny(dir.path(), &common::tiny_llama_json(), 4);
    let mut model = load(dir.path(), false, &Device::Cpu).expect("load").model;
    let vm = VarMap::new();
    lora::attach(&mut model, &cfg(&["q_proj", "v_proj"], 0.5), &vm).expect("attach");
    for (k, v) in vm.data().lock().expect("lock").iter() {
        if k.contains("lora_B") {
            v.set(&v.ones_like().expect("ones")).expect("set");
        }
    }
    model.set_training(true);
    let (x, _) = batch();
    let fwd = |model: &mut CausalLm, at: Option<(u64, u64)>| {
        if let Some((step, micro)) = at {
            lora::reseed_dropout(model, step, micro).expect("reseed");
        }
        model.forward(&x, None).expect("fwd")
    };
    let first = fwd(&mut model, Some((3, 1)));
    let next = fwd(&mut model, None);
    assert!(
        max_abs_diff(&first, &next) > 1e-4,
        "the stream moves on between forwards"
    );
    let again = fwd(&mut model, Some((3, 1)));
    assert_eq!(max_abs_diff(&first, &again), 0.0, "same step, same masks");
    for other in [(4, 1), (3, 0)] {
        let y = fwd(&mut model, Some(other));
        assert!(max_abs_diff(&first, &y) > 1e-4, "{other:?} draws new masks");
    }
}

#[test]
fn a_frozen_copy_of_trainable_weights_gets_no_gradient() {
    // The LoRA bench (and any caller) may freeze the tensors of a trainable model: the
    // frozen copy must not track them, or every projection computes a weight gradient.
    let (_, varmap) = hf::random_model(&common::tiny_llama_json(), 1, &Device::Cpu).expect("model");
    let tensors = hf::varmap_tensors(&varmap).expect("tensors");
    let (mut frozen, none) = hf::model_from_tensors(
        &common::tiny_llama_json(),
        tensors,
        false,
        &Device::Cpu,
        std::path::Path::new("frozen"),
    )
    .expect("frozen");
    assert!(none.is_none());
    let adapters = VarMap::new();
    lora::attach(&mut frozen, &cfg(&["q_proj", "v_proj"], 0.0), &adapters).expect("attach");
    let grads = loss(&frozen).backward().expect("backward");
    for (name, var) in varmap.data().lock().expect("lock").iter() {
        assert!(
            grads.get(var).is_none(),
            "frozen weight {name} got a gradient"
        );
    }
    for (name, var) in adapters.data().lock().expect("lock").iter() {
        assert!(grads.get(var).is_some(), "adapter {name} got no gradient");
    }
}

#[test]
fn merge_writes_a_model_that_generates_as_base_plus_adapter() {
    for (name, json, targets) in [
        ("llama", common::tiny_llama_json(), vec!["q_proj", "v_proj"]),
        ("gpt2", common::tiny_gpt2_json(), vec!["c_attn", "c_fc"]),
    ] {
        let (dir, model, vm, c) = trained_adapter(&json, &targets);
        let out = tempfile::tempdir().expect("tmp");
        let adapter = out.path().join("adapter");
        lora::save(&adapter, &c, &vm).expect("save");
        let merged_dir = out.path().join("merged");
        let m = trainer::merge::merge(&adapter, Some(dir.path()), &merged_dir).expect(name);
        assert_eq!(m.projections, 2 * targets.len(), "{name}");
        // The written model, loaded with no adapter, gives the adapted model's logits.
        let merged = load(&merged_dir, false, &Device::Cpu).expect("load merged");
        assert!(
            merged.tokenizer.is_some(),
            "{name}: the tokenizer is written too"
        );
        let (x, _) = batch();
        let want = model.forward(&x, None).expect("fwd");
        let d = max_abs_diff(&want, &merged.model.forward(&x, None).expect("fwd"));
        assert!(d < 1e-5, "{name}: merged logits differ by {d}");
        let base = load(dir.path(), false, &Device::Cpu).expect("base").model;
        let moved = max_abs_diff(&want, &base.forward(&x, None).expect("fwd"));
        assert!(
            moved > 1e-4,
            "{name}: the adapter changed the logits ({moved})"
        );
        // An existing target is refused, and nothing is left half-written.
        let e = trainer::merge::merge(&adapter, Some(dir.path()), &merged_dir)
            .expect_err("exists")
            .to_string();
        assert!(e.contains("--output") && e.contains("exists"), "{e}");
        // An adapter without a recorded base needs --model.
        let e = trainer::merge::merge(&adapter, None, &out.path().join("m2"))
            .expect_err("no base")
            .to_string();
        assert!(e.contains("--model"), "{e}");
        assert!(!out.path().join("m2").exists() && !out.path().join(".m2.partial").exists());
    }
}
