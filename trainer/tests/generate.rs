//! Batched generation: KV cache, left padding, sampling controls.

mod common;

use candle_core::Device;
use trainer::generate::{FinishReason, GenerationConfig, generate};
use trainer::load::load;

fn tiny(json: &str) -> (tempfile::TempDir, trainer::load::Loaded) {
    let dir = tempfile::tempdir().expect("tmp");
    common::write_tiny(dir.path(), json, 9);
    let loaded = load(dir.path(), false, &Device::Cpu).expect("load");
    (dir, loaded)
}

fn prompts() -> Vec<Vec<u32>> {
    vec![vec![72, 101, 108], vec![5, 6, 7, 8, 9, 10, 11], vec![200]]
}

#[test]
fn cached_greedy_equals_uncached_greedy() {
    for (name, json) in common::all_families() {
        let (_d, l) = tiny(&json);
        let base = GenerationConfig {
            max_new_tokens: 12,
            ..GenerationConfig::default()
        };
        let a = generate(&l.model, &prompts(), &base, 0, None).expect("cached");
        let b = generate(
            &l.model,
            &prompts(),
            &GenerationConfig {
                use_cache: false,
                ..base
            },
            0,
            None,
        )
        .expect("uncached");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.tokens, y.tokens, "{name}");
            assert_eq!(x.tokens.len(), 12);
            for (p, q) in x.logprobs.iter().zip(&y.logprobs) {
                assert!((p - q).abs() < 1e-4, "{name}: logprob {p} vs {q}");
            }
        }
    }
}

#[test]
fn a_left_padded_batch_equals_single_runs() {
    for (name, json) in common::all_families() {
        let (_d, l) = tiny(&json);
        let cfg = GenerationConfig {
            max_new_tokens: 10,
            ..GenerationConfig::default()
        };
        let batch = generate(&l.model, &prompts(), &cfg, 0, None).expect("batch");
        for (p, g) in prompts().iter().zip(&batch) {
            let single =
                generate(&l.model, std::slice::from_ref(p), &cfg, 0, None).expect("single");
            assert_eq!(single[0].tokens, g.tokens, "{name}");
            for (a, b) in single[0].logprobs.iter().zip(&g.logprobs) {
                assert!((a - b).abs() < 1e-4, "{name}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn sampling_is_seeded_and_top_k_1_is_greedy() {
    let (_d, l) = tiny(&common::tiny_llama_json());
    let s = |seed, top_k| {
        let cfg = GenerationConfig {
            max_new_tokens: 16,
            temperature: 1.5,
            top_k,
            seed,
            ..GenerationConfig::default()
        };
        generate(&l.model, &prompts(), &cfg, 0, None).expect("gen")
    };
    assert_eq!(s(1, None), s(1, None));
    assert_ne!(
        s(1, None)
            .iter()
            .map(|g| g.tokens.clone())
            .collect::<Vec<_>>(),
        s(2, None)
            .iter()
            .map(|g| g.tokens.clone())
            .collect::<Vec<_>>()
    );
    let greedy = generate(
        &l.model,
        &prompts(),
        &GenerationConfig {
            max_new_tokens: 16,
            ..GenerationConfig::default()
        },
        0,
        None,
    )
    .expect("g");
    for (a, b) in s(5, Some(1)).iter().zip(&greedy) {
        assert_eq!(a.tokens, b.tokens);
    }
    // top-p that keeps almost nothing is greedy too.
    let cfg = GenerationConfig {
        max_new_tokens: 16,
        temperature: 1.0,
        top_p: Some(1e-6),
        seed: 3,
        ..GenerationConfig::default()
    };
    let tiny_p = generate(&l.model, &prompts(), &cfg, 0, None).expect("p");
    for (a, b) in tiny_p.iter().zip(&greedy) {
        assert_eq!(a.tokens, b.tokens);
    }
    for g in s(7, None) {
        assert!(g.logprobs.iter().all(|x| x.is_finite() && *x <= 0.0));
    }
}

#[test]
fn stop_ids_and_stop_strings_end_rows_early() {
    let (_d, l) = tiny(&common::tiny_gpt2_json());
    let tok = l.tokenizer.as_ref().expect("tok");
    let free = generate(
        &l.model,
        &prompts(),
        &GenerationConfig {
            max_new_tokens: 8,
            ..GenerationConfig::default()
        },
        0,
        None,
    )
    .expect("g");
    // Stop at the third greedy token of row 0.
    let stop = free[0].tokens[2];
    let cfg = GenerationConfig {
        max_new_tokens: 8,
        stop_ids: vec![stop],
        ..GenerationConfig::default()
    };
    let out = generate(&l.model, &prompts(), &cfg, 0, None).expect("g");
    assert_eq!(out[0].finish, FinishReason::StopId);
    assert_eq!(
        out[0].tokens,
        free[0].tokens[..=free[0].tokens.iter().position(|&t| t == stop).expect("p")].to_vec()
    );
    // A stop string made of the decoded second token.
    let text = tok.decode(&free[1].tokens[1..2], true).expect("d");
    if !text.is_empty() {
        let cfg = GenerationConfig {
            max_new_tokens: 8,
            stop_strings: vec![text.clone()],
            ..GenerationConfig::default()
        };
        let out = generate(&l.model, &prompts(), &cfg, 0, Some(tok)).expect("g");
        assert_eq!(out[1].finish, FinishReason::StopString);
        assert!(
            !out[1].text.contains(&text),
            "text is cut before the stop string"
        );
        assert!(out[1].tokens.len() <= 2);
    }
    assert!(
        free.iter()
            .all(|g| g.finish == FinishReason::Length && g.tokens.len() == 8)
    );
}

#[test]
fn returned_logprobs_are_the_models_log_softmax_at_each_step() {
    let (_d, l) = tiny(&common::tiny_qwen2_json());
    let cfg = GenerationConfig {
        max_new_tokens: 6,
        temperature: 1.0,
        seed: 11,
        ..GenerationConfig::default()
    };
    let prompt = vec![40u32, 41, 42];
    let out = generate(&l.model, std::slice::from_ref(&prompt), &cfg, 0, None).expect("gen");
    let full: Vec<u32> = prompt.iter().chain(&out[0].tokens).copied().collect();
    let ids =
        candle_core::Tensor::from_vec(full.clone(), (1, full.len()), &Device::Cpu).expect("ids");
    let logits = l
        .model
        .forward(&trainer::models::Inputs::new(ids, 0).expect("in"), None)
        .expect("fwd");
    let logp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1).expect("ls");
    let logp: Vec<Vec<f32>> = logp.squeeze(0).expect("sq").to_vec2().expect("v");
    for (k, (&tok, &lp)) in out[0].tokens.iter().zip(&out[0].logprobs).enumerate() {
        let want = logp[prompt.len() - 1 + k][tok as usize];
        assert!((want - lp).abs() < 1e-4, "step {k}: {lp} vs {want}");
    }
}

#[test]
fn gpt2_refuses_to_generate_past_its_positions() {
    let (_d, l) = tiny(&common::tiny_gpt2_json()); // 64 positions
    let cfg = GenerationConfig {
        max_new_tokens: 62,
        ..GenerationConfig::default()
    };
    let err = generate(&l.model, &[vec![1, 2, 3]], &cfg, 0, None).expect_err("too long");
    assert!(err.to_string().contains("64 positions"), "{err}");
}

#[test]
fn min_new_tokens_holds_back_every_stop_id_until_then() {
    let (name, json) = common::all_families().remove(0);
    let (_d, l) = tiny(&json);
    // Every id from 8 up ends a row: without the floor rows end within a few tokens;
    // with it, no row ends before its sixth, and its first five are the ids below 8.
    let vocab = l.model.lm_head_weight().dim(0).expect("vocab") as u32;
    for temperature in [0.0, 1.0] {
        let cfg = GenerationConfig {
            max_new_tokens: 12,
            temperature,
            stop_ids: (8..vocab).collect(),
            ..GenerationConfig::default()
        };
        let free = generate(&l.model, &prompts(), &cfg, 0, None).expect("no floor");
        assert!(free.iter().any(|g| g.tokens.len() <= 5), "{name}: {free:?}");
        let floored = GenerationConfig {
            min_new_tokens: 5,
            ..cfg
        };
        for g in generate(&l.model, &prompts(), &floored, 0, None).expect("floor") {
            assert!(g.tokens.len() >= 6, "{name}: {g:?}");
            assert!(g.tokens[..5].iter().all(|&t| t < 8), "{name}: {g:?}");
            assert!(g.logprobs.iter().all(|p| p.is_finite()), "{name}: {g:?}");
        }
    }
}
