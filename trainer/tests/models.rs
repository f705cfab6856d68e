//! Model families built from HF-format directories the tests write themselves.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use trainer::load::hf;
use trainer::models::heads::{ScoreHead, ValueHead};
use trainer::models::{Inputs, KvCache};

fn ids(v: &[u32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), (1, v.len()), &Device::Cpu).expect("ids")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .expect("sub")
        .abs()
        .expect("abs")
        .flatten_all()
        .expect("flat")
        .max(0)
        .expect("max")
        .to_scalar::<f32>()
        .expect("scalar")
}

#[test]
fn every_family_round_trips_through_an_hf_directory() {
    for (name, cfg) in common::all_families() {
        let dir = tempfile::tempdir().expect("tmp");
        let (model, _vm) = hf::random_model(&cfg, 7, &Device::Cpu).expect("random");
        common::write_tiny(dir.path(), &cfg, 7);
        let loaded = trainer::load::load(dir.path(), false, &Device::Cpu).expect("load");
        let x = Inputs::new(ids(&[1, 5, 9, 200, 3]), 0).expect("inputs");
        let a = model.forward(&x, None).expect("fwd");
        let b = loaded.model.forward(&x, None).expect("fwd");
        assert_eq!(a.dims(), &[1, 5, 272], "{name}");
        assert_eq!(max_abs_diff(&a, &b), 0.0, "{name}: reloaded model differs");
        let tok = loaded.tokenizer.expect("tokenizer");
        assert_eq!(tok.eos_ids, vec![258], "{name}: <|im_end|> is the EOS");
    }
}

#[test]
fn sharded_checkpoints_load_through_the_index() {
    let cfg = common::tiny_llama_json();
    let dir = tempfile::tempdir().expect("tmp");
    let (model, vm) = hf::random_model(&cfg, 3, &Device::Cpu).expect("random");
    let tensors = hf::varmap_tensors(&vm).expect("tensors");
    let mut names: Vec<_> = tensors.keys().cloned().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let shard: HashMap<String, Tensor> = part
            .iter()
            .map(|n| (n.clone(), tensors[n].clone()))
            .collect();
        candle_core::safetensors::save(&shard, dir.path().join(file)).expect("shard");
        for n in part {
            weight_map.insert(n.clone(), serde_json::json!(file));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .expect("index");
    std::fs::write(dir.path().join("config.json"), &cfg).expect("config");
    assert_eq!(hf::weight_files(dir.path()).expect("files").len(), 2);
    let loaded = trainer::load::load(dir.path(), false, &Device::Cpu).expect("load");
    let x = Inputs::new(ids(&[4, 8, 15, 16]), 0).expect("inputs");
    let d = max_abs_diff(
        &model.forward(&x, None).expect("a"),
        &loaded.model.forward(&x, None).expect("b"),
    );
    assert_eq!(d, 0.0);
}

#[test]
fn kv_cache_forward_equals_full_forward() {
    for (name, cfg) in common::all_families() {
        let (model, _vm) = hf::random_model(&cfg, 11, &Device::Cpu).expect("random");
        let seq = [3u32, 70, 71, 120, 9, 44];
        let full = model
            .forward(&Inputs::new(ids(&seq), 0).expect("in"), None)
            .expect("full");
        let mut cache = KvCache::new(model.num_layers());
        let a = model
            .forward(
                &Inputs::new(ids(&seq[..4]), 0).expect("in"),
                Some(&mut cache),
            )
            .expect("a");
        let b = model
            .forward(
                &Inputs::new(ids(&seq[4..]), 4).expect("in"),
                Some(&mut cache),
            )
            .expect("b");
        let stepped = Tensor::cat(&[&a, &b], 1).expect("cat");
        assert!(
            max_abs_diff(&full, &stepped) < 1e-5,
            "{name}: cached forward differs"
        );
    }
}

#[test]
fn left_padding_does_not_change_a_rows_logits() {
    for (name, cfg) in common::all_families() {
        let (model, _vm) = hf::random_model(&cfg, 5, &Device::Cpu).expect("random");
        let seq = [10u32, 20, 30];
        let alone = model
            .forward(&Inputs::new(ids(&seq), 0).expect("in"), None)
            .expect("alone");
        let padded = Tensor::from_vec(
            vec![0u32, 0, 10, 20, 30, 1, 2, 3, 4, 5],
            (2, 5),
            &Device::Cpu,
        )
        .expect("ids");
        let inputs = Inputs::with_mask(padded, &[vec![0, 0, 1, 1, 1], vec![1; 5]]).expect("in");
        let batch = model.forward(&inputs, None).expect("batch");
        let row = batch
            .get(0)
            .expect("row")
            .narrow(0, 2, 3)
            .expect("narrow")
            .unsqueeze(0)
            .expect("unsq");
        assert!(
            max_abs_diff(&alone, &row) < 1e-5,
            "{name}: padding leaked into the row"
        );
    }
}

#[test]
fn every_weight_of_every_family_receives_a_gradient() {
    for (name, cfg) in common::all_families() {
        let (model, vm) = hf::random_model(&cfg, 1, &Device::Cpu).expect("random");
        let x = Inputs::new(ids(&[1, 2, 3, 4, 5, 6]), 0).expect("in");
        let logits = model
            .forward(&x, None)
            .expect("fwd")
            .squeeze(0)
            .expect("sq");
        let target = Tensor::from_vec(vec![2u32, 3, 4, 5, 6, 7], 6, &Device::Cpu).expect("t");
        let loss = candle_nn::loss::cross_entropy(&logits, &target).expect("loss");
        let grads = loss.backward().expect("bwd");
        let data = vm.data().lock().expect("lock");
        assert!(data.len() > 10, "{name}");
        for (var_name, var) in data.iter() {
            let g = grads
                .get(var)
                .unwrap_or_else(|| panic!("{name}: {var_name} has no gradient"));
            let norm = g
                .sqr()
                .expect("sq")
                .sum_all()
                .expect("sum")
                .to_scalar::<f32>()
                .expect("s");
            assert!(norm > 0.0, "{name}: {var_name} has a zero gradient");
        }
    }
}

#[test]
fn score_head_reads_the_last_real_token_and_value_head_every_token() {
    let cfg = common::tiny_qwen2_json();
    let (model, _vm) = hf::random_model(&cfg, 2, &Device::Cpu).expect("random");
    let mut heads: HashMap<String, Tensor> = HashMap::new();
    let w: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) / 10.0).collect();
    heads.insert(
        "score.weight".into(),
        Tensor::from_vec(w.clone(), (1, 32), &Device::Cpu).expect("w"),
    );
    heads.insert(
        "v_head.weight".into(),
        Tensor::from_vec(w, (1, 32), &Device::Cpu).expect("w"),
    );
    heads.insert(
        "v_head.bias".into(),
        Tensor::new(&[0.5f32], &Device::Cpu).expect("b"),
    );
    let vb = VarBuilder::from_tensors(heads, DType::F32, &Device::Cpu);
    let score = ScoreHead::new(32, 1, vb.pp("score")).expect("score");
    let value = ValueHead::new(32, vb.pp("v_head")).expect("value");

    let alone = model
        .forward_hidden(&Inputs::new(ids(&[7, 8, 9]), 0).expect("in"), None)
        .expect("h");
    let s_alone = score
        .forward(&alone, &[vec![1, 1, 1]])
        .expect("s")
        .to_vec2::<f32>()
        .expect("v")[0][0];
    // Left-padded and right-padded copies of the same sequence score the same.
    let left = Tensor::from_vec(vec![0u32, 7, 8, 9], (1, 4), &Device::Cpu).expect("ids");
    let h = model
        .forward_hidden(
            &Inputs::with_mask(left, &[vec![0, 1, 1, 1]]).expect("in"),
            None,
        )
        .expect("h");
    let s_left = score
        .forward(&h, &[vec![0, 1, 1, 1]])
        .expect("s")
        .to_vec2::<f32>()
        .expect("v")[0][0];
    let right = Tensor::from_vec(vec![7u32, 8, 9, 0], (1, 4), &Device::Cpu).expect("ids");
    let h = model
        .forward_hidden(
            &Inputs::with_mask(right, &[vec![1, 1, 1, 0]]).expect("in"),
            None,
        )
        .expect("h");
    let s_right = score
        .forward(&h, &[vec![1, 1, 1, 0]])
        .expect("s")
        .to_vec2::<f32>()
        .expect("v")[0][0];
    assert!(
        (s_alone - s_left).abs() < 1e-5 && (s_alone - s_right).abs() < 1e-5,
        "{s_alone} {s_left} {s_right}"
    );
    let v = value.forward(&alone).expect("v");
    assert_eq!(v.dims(), &[1, 3]);
    let last = v.to_vec2::<f32>().expect("v")[0][2];
    assert!((last - (s_alone + 0.5)).abs() < 1e-5);
}
