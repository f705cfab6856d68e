//! `trainer sweep` (one RL run per weighting of the rewards) and `trainer soup` (weight
//! interpolation of their adapters or models) on a tiny model: each mix checked against
//! (1 − λ)·A + λ·B computed here from the saved safetensors, the simplex case, full
//! fine-tunes, the eval of every mix, and the errors a user can hit.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use serde_json::Value;
use trainer::rl::{RlConfig, RlOptions};
use trainer::soup::grid;
use trainer::soup::sweep::{self, Weighting};

/// A tiny GPT-2, six prompts and a two-step GRPO config over two rewards (fewer
/// characters, fewer words) in `d`; `extra` overrides keys.
fn base(d: &Path, extra: &str) -> RlConfig {
    common::write_tiny(&d.join("model"), &common::tiny_gpt2_json(), 11);
    let prompts: String = (0..6)
        .map(|i| format!("{{\"id\": \"p{i}\", \"prompt\": \"say {i}\", \"reference\": \"{i}\"}}\n"))
        .collect();
    std::fs::write(d.join("prompts.jsonl"), prompts).expect("prompts");
    let text = format!(
        "model = {:?}\nprompts = {:?}\neval_prompts = {:?}\noutput_dir = {:?}\n\
         num_generations = 2\nprompts_per_step = 2\nmax_new_tokens = 8\nmicro_batch = 4\n\
         lr = 0.05\nlora_rank = 4\nlora_targets = [\"c_attn\"]\nmax_steps = 2\n\
         eval_every = 2\nseed = 5\n",
        d.join("model"),
        d.join("prompts.jsonl"),
        d.join("prompts.jsonl"),
        d.join("sweep"),
    );
    let mut table: toml::Table = text.parse().expect("base");
    table.extend(extra.parse::<toml::Table>().expect("extra"));
    let text = format!(
        "{}\n[[reward]]\nsource = \"builtin:length\"\nmetric = \"characters\"\nweight = 0.1\n\
         [[reward]]\nsource = \"builtin:length\"\nmetric = \"words\"\nweight = 2.0\n",
        toml::to_string(&table).expect("toml")
    );
    RlConfig::from_toml(&text, Path::new("base.toml")).expect("config")
}

/// Runs the sweep of `spec` over `cfg`'s two rewards; returns the run directories.
fn sweep_runs(cfg: &RlConfig, spec: &str) -> Vec<PathBuf> {
    let points: Vec<Weighting> = grid::parse(spec, 2)
        .expect("weights")
        .into_iter()
        .map(Weighting::Mix)
        .collect();
    sweep::sweep(cfg, "morl", &points, None, &RlOptions::default())
        .expect("sweep")
        .into_iter()
        .map(|r| r.cfg.output_dir)
        .collect()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

/// Every tensor of a safetensors file as f64 values.
fn values(path: &Path) -> HashMap<String, Vec<f64>> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|(k, t)| {
            let v = t
                .to_dtype(candle_core::DType::F64)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f64>())
                .expect("values");
            (k, v)
        })
        .collect()
}

/// Asserts that `mixed` is Σ w_k · parts_k element by element.
fn assert_mix(mixed: &HashMap<String, Vec<f64>>, parts: &[(f64, &HashMap<String, Vec<f64>>)]) {
    assert_eq!(mixed.len(), parts[0].1.len(), "every tensor is mixed");
    for (name, got) in mixed {
        for (i, g) in got.iter().enumerate() {
            let want: f64 = parts.iter().map(|(w, p)| w * p[name][i]).sum();
            assert!(
                (g - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{name}[{i}]: {g} vs {want}"
            );
        }
    }
}

fn trainer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("trainer runs")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn a_sweep_trains_one_run_per_weighting_and_records_each() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = base(dir.path(), "");
    let runs = sweep_runs(&cfg, "0:1:0.5");
    let labels: Vec<String> = runs
        .iter()
        .map(|r| r.file_name().expect("name").to_string_lossy().into())
        .collect();
    assert_eq!(labels, ["lambda-0", "lambda-0.5", "lambda-1"]);
    // Each run's weights are the base weights times its mix: (1 − λ)·0.1 and λ·2.
    for (run, lambda) in runs.iter().zip([0.0, 0.5, 1.0]) {
        let text = std::fs::read_to_string(run.join("config.toml")).expect("config");
        let run_cfg = RlConfig::from_toml(&text, &run.join("config.toml")).expect("parses");
        let weights: Vec<f64> = run_cfg.reward.iter().map(|r| r.weight).collect();
        assert_eq!(
            weights,
            [(1.0 - lambda) * 0.1, lambda * 2.0],
            "{}",
            run.display()
        );
        assert!(run.join("final/adapter_model.safetensors").is_file());
        assert!(run.join("eval/step-2.jsonl").is_file());
        assert_eq!(run_cfg.push_to, None, "runs push nothing themselves");
    }
    let summary = lines(&cfg.output_dir.join("sweep.jsonl"));
    assert_eq!(summary.len(), 3);
    for s in &summary {
        assert_eq!(s["steps"], 2);
        assert!(s["train_seconds"].as_f64().expect("seconds") > 0.0, "{s}");
        assert!(s["eval"]["words"].is_number(), "final eval means: {s}");
    }
    // Re-running passes over the finished runs and records the same summary.
    let again = sweep_runs(&cfg, "0:1:0.5");
    assert_eq!(again, runs);
    let second = lines(&cfg.output_dir.join("sweep.jsonl"));
    assert_eq!(second[1]["eval"], summary[1]["eval"]);
    assert_eq!(second[1]["train_seconds"], summary[1]["train_seconds"]);
}

#[test]
fn a_reward_format_sets_the_terms_of_the_single_reward() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = base(dir.path(), "max_steps = 1\neval_every = 1");
    cfg.reward.truncate(1);
    let w = sweep::parse_terms("0x0.4 2-0x0.6").expect("terms");
    let run = sweep::run_config(&cfg, "rs", &w).expect("config");
    assert_eq!(
        run.reward[0].terms.as_deref(),
        Some(&["0x0.4".to_string(), "2-0x0.6".to_string()][..])
    );
    assert_eq!(run.reward[0].metric, None);
    assert_eq!(run.run_name.as_deref(), Some("rs-terms-0x0.4_2-0x0.6"));
    let done = sweep::sweep(&cfg, "rs", &[w], None, &RlOptions::default()).expect("sweep");
    assert_eq!(done[0].summary.steps, 1);
    assert!(sweep::parse_terms("0y2").is_err());
    let two = base(dir.path(), "");
    let err = sweep::run_config(&two, "rs", &sweep::parse_terms("0").expect("t"))
        .expect_err("two rewards");
    assert!(err.to_string().contains("one [[reward]] table"), "{err}");
}

#[test]
fn every_soup_is_the_interpolation_of_the_saved_adapters_and_is_evaluated() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = base(dir.path(), "");
    let runs = sweep_runs(&cfg, "0,1");
    let out = dir.path().join("soup");
    let o = trainer(&[
        "soup",
        "--adapters",
        path(&runs[0]),
        path(&runs[1]),
        "--lambdas",
        "0:1:0.25",
        "--output-dir",
        path(&out),
        "--eval",
        path(&dir.path().join("prompts.jsonl")),
        "--eval-limit",
        "4",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = values(&runs[0].join("final/adapter_model.safetensors"));
    let b = values(&runs[1].join("final/adapter_model.safetensors"));
    assert_ne!(a, b, "the two runs trained different adapters");
    let evals = lines(&out.join("eval.jsonl"));
    assert_eq!(evals.len(), 5);
    for (lambda, ev) in [0.0, 0.25, 0.5, 0.75, 1.0].iter().zip(&evals) {
        let label = format!("lambda-{}", grid::short(*lambda));
        let mixed = values(&out.join(&label).join("adapter_model.safetensors"));
        assert_mix(&mixed, &[(1.0 - lambda, &a), (*lambda, &b)]);
        assert_eq!(ev["label"], label.as_str());
        // The eval: four canonical lines, scored by both runs' rewards; the words mean
        // recomputed here from the generations (whitespace tokens, negated: fewer is better).
        let gens = lines(&out.join("eval").join(format!("{label}.jsonl")));
        assert_eq!(gens.len(), 4);
        let words: f64 = gens
            .iter()
            .map(|g| {
                g["response"]
                    .as_str()
                    .expect("response")
                    .split_whitespace()
                    .count() as f64
            })
            .sum::<f64>()
            / 4.0;
        assert_eq!(ev["eval"]["words"].as_f64(), Some(-words), "{ev}");
        assert!(ev["eval"]["characters"].is_number(), "{ev}");
    }
    // λ = 0 and λ = 1 are the runs' own adapters, so their generations are the runs' own.
    let own = lines(&runs[1].join("eval/step-2.jsonl"));
    let soup_one = lines(&out.join("eval/lambda-1.jsonl"));
    assert_eq!(soup_one[..], own[..4]);
    let meta = trainer::soup::metadata("soup", &grid::parse("0.3", 2).expect("l")[0], &[]);
    assert_eq!(
        (meta["sweep"].as_str(), meta["lambda"].as_str()),
        (Some("soup"), Some("0.3"))
    );
}

#[test]
fn a_soup_of_three_runs_covers_the_simplex_and_full_fine_tunes_mix_the_same_way() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = base(dir.path(), "max_steps = 1\neval_every = 1");
    let runs = sweep_runs(&cfg, "0:1:0.5");
    let out = dir.path().join("simplex");
    let o = trainer(&[
        "soup",
        "--adapters",
        path(&runs[0]),
        path(&runs[1]),
        path(&runs[2]),
        "--lambdas",
        "simplex:0.5",
        "--output-dir",
        path(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let parts: Vec<_> = runs
        .iter()
        .map(|r| values(&r.join("final/adapter_model.safetensors")))
        .collect();
    let grid = grid::parse("simplex:0.5", 3).expect("grid");
    assert_eq!(grid.len(), 6);
    for mix in &grid {
        let mixed = values(&out.join(mix.label()).join("adapter_model.safetensors"));
        let terms: Vec<(f64, &HashMap<String, Vec<f64>>)> =
            mix.weights.iter().copied().zip(parts.iter()).collect();
        assert_mix(&mixed, &terms);
    }

    // Full fine-tunes: every tensor is mixed and the result loads as a model.
    let full_dir = dir.path().join("full");
    std::fs::create_dir_all(&full_dir).expect("dir");
    let full = base(
        &full_dir,
        "lora_rank = 0\nlr = 0.001\nmax_steps = 1\neval_every = 1",
    );
    let runs = sweep_runs(&full, "0,1");
    let out = dir.path().join("full-soup");
    let o = trainer(&[
        "soup",
        "--adapters",
        path(&runs[0]),
        path(&runs[1]),
        "--lambdas",
        "0.5",
        "--output-dir",
        path(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = values(&runs[0].join("final/model.safetensors"));
    let b = values(&runs[1].join("final/model.safetensors"));
    let mixed = values(&out.join("lambda-0.5/model.safetensors"));
    assert_mix(&mixed, &[(0.5, &a), (0.5, &b)]);
    let loaded = trainer::load::load(&out.join("lambda-0.5"), false, &Device::Cpu).expect("loads");
    assert!(loaded.tokenizer.is_some(), "the tokenizer is copied");
}

#[test]
fn ingredients_that_cannot_be_mixed_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let cfg = base(d, "max_steps = 1\neval_every = 1");
    let four = sweep_runs(&cfg, "0")[0].clone();
    let mut two = cfg.clone();
    two.lora_rank = 2;
    two.output_dir = d.join("rank2");
    trainer::rl::train(&two, &RlOptions::default()).expect("rank 2 run");
    let out = d.join("soup");
    let o = trainer(&[
        "soup",
        "--adapters",
        path(&four),
        path(&two.output_dir),
        "--output-dir",
        path(&out),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("cannot be mixed: rank 4 vs 2"), "{err}");
    assert!(!out.exists(), "nothing is written on a refusal");

    let o = trainer(&[
        "soup",
        "--adapters",
        path(&four),
        path(d),
        "--output-dir",
        path(&out),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a soup ingredient"));
    let o = trainer(&[
        "soup",
        "--adapters",
        path(&four),
        path(&four),
        "--lambdas",
        "0.2/0.3/0.5",
        "--output-dir",
        path(&out),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("flag --lambdas") && err.contains("3 weights for 2"),
        "{err}"
    );
    // A bare adapter directory records no base: --model is asked for.
    let bare = d.join("bare");
    std::fs::create_dir_all(&bare).expect("dir");
    for f in ["adapter_model.safetensors", "adapter_config.json"] {
        std::fs::copy(four.join("final").join(f), bare.join(f)).expect("copy");
    }
    let o = trainer(&[
        "soup",
        "--adapters",
        path(&bare),
        path(&bare),
        "--output-dir",
        path(&out),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--model"), "{err}");
    let o = trainer(&[
        "soup",
        "--adapters",
        path(&bare),
        path(&four),
        "--model",
        path(&d.join("prompts.jsonl")),
        "--output-dir",
        path(&out),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is not the base the runs were trained from"),
        "{err}"
    );

    // The sweep's own flags.
    let toml_path = d.join("one.toml");
    let mut one = cfg.to_table();
    let words: toml::Table = "source = \"builtin:length\"\nmetric = \"words\""
        .parse()
        .expect("table");
    one.insert(
        "reward".into(),
        toml::Value::Array(vec![toml::Value::Table(words)]),
    );
    std::fs::write(&toml_path, toml::to_string(&one).expect("toml")).expect("write");
    let o = trainer(&[
        "sweep",
        "--config",
        path(&toml_path),
        "--weights",
        "0:1:0.5",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("flag --weights") && err.contains("1 [[reward]]"),
        "{err}"
    );
}
