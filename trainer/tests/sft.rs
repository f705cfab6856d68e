//! Supervised fine-tuning end to end on tiny models the tests write.

mod common;

use std::io::Write;
use std::path::Path;

use candle_core::{Device, Tensor};
use trainer::Error;
use trainer::generate::{GenerationConfig, generate};
use trainer::sft::{SftConfig, TrainOptions, train};

fn config(dir: &Path, model_json: &str) -> SftConfig {
    common::write_tiny(&dir.join("model"), model_json, 13);
    common::write_prompt_completions(&dir.join("train.jsonl"), 12);
    common::write_prompt_completions(&dir.join("eval.jsonl"), 4);
    let text = format!(
        "model = {:?}\ntrain_data = {:?}\neval_data = {:?}\noutput_dir = {:?}\n\
         batch_size = 4\nmax_steps = 30\nlr = 1e-2\nwarmup_steps = 3\nsave_every = 10\neval_every = 10\nseed = 5\n",
        dir.join("model"),
        dir.join("train.jsonl"),
        dir.join("eval.jsonl"),
        dir.join("run"),
    );
    SftConfig::from_toml(&text, Path::new("test.toml")).expect("config")
}

fn read_metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn full_fine_tuning_learns_the_completions_and_writes_a_loadable_model() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), &common::tiny_llama_json());
    cfg.max_steps = 100;
    cfg.eval_every = 25;
    let s = train(&cfg, &TrainOptions::default()).expect("train");
    assert_eq!(s.steps, 100);
    let m = read_metrics(&cfg.output_dir);
    let losses: Vec<f64> = m.iter().filter_map(|v| v["loss"].as_f64()).collect();
    assert_eq!(losses.len(), 100);
    assert!(
        losses[99] < losses[0] / 10.0,
        "loss {} → {}",
        losses[0],
        losses[99]
    );
    let evals: Vec<f64> = m.iter().filter_map(|v| v["eval_loss"].as_f64()).collect();
    assert_eq!(evals.len(), 4, "eval at 25, 50, 75, 100");
    assert!(evals[3] < evals[0]);
    assert!(
        m.iter()
            .filter(|v| v["loss"].is_number())
            .all(|v| v["tokens_per_s"].as_f64().is_some_and(|t| t > 0.0))
    );
    let data: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cfg.output_dir.join("data.json")).expect("data.json"),
    )
    .expect("json");
    assert_eq!(data["train"]["examples"], 12);
    assert_eq!(data["eval"]["examples"], 4);
    assert_eq!(
        data["train"]["completion_tokens"],
        12 * 11,
        "\"answer ddd\" + EOS per example"
    );
    // The resolved config is saved and reads back identically.
    let saved = SftConfig::load(&cfg.output_dir.join("config.toml")).expect("saved config");
    assert_eq!(saved, cfg);
    // The final directory is an HF checkpoint that answers the trained prompt.
    let final_dir = s.final_dir.expect("final");
    let loaded = trainer::load::load(&final_dir, false, &Device::Cpu).expect("reload");
    let tok = loaded.tokenizer.expect("tokenizer");
    let prompt = tok.encode("q2\n").expect("enc");
    let out = generate(
        &loaded.model,
        &[prompt],
        &GenerationConfig {
            max_new_tokens: 12,
            ..Default::default()
        },
        tok.pad_id,
        Some(&tok),
    )
    .expect("gen");
    assert_eq!(out[0].text, "answer 222");
}

fn final_adapter(run: &Path) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(run.join("final/adapter_model.safetensors"), &Device::Cpu)
        .expect("adapter")
}

#[test]
fn a_killed_lora_run_resumes_to_the_same_weights_and_keeps_the_last_checkpoints() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), &common::tiny_gpt2_json());
    cfg.lora_rank = 4;
    cfg.lora_targets = vec!["c_attn".into(), "c_fc".into()];
    cfg.grad_accum = 2;
    cfg.max_steps = 8;
    cfg.save_every = 2;
    cfg.keep_last = 2;
    cfg.eval_data = None;
    let straight = train(&cfg, &TrainOptions::default()).expect("straight");
    assert_eq!(straight.resumed_from, 0);
    let reference = final_adapter(&cfg.output_dir);
    let names: Vec<String> = std::fs::read_dir(cfg.output_dir.join("checkpoints"))
        .expect("ckpts")
        .map(|e| e.expect("e").file_name().to_string_lossy().to_string())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, vec!["step-00000006", "step-00000008"]);

    cfg.output_dir = dir.path().join("run-killed");
    let first = train(
        &cfg,
        &TrainOptions {
            stop_after: Some(5),
            ..Default::default()
        },
    )
    .expect("first half");
    assert_eq!(first.steps, 5);
    assert!(first.final_dir.is_none());
    // A kill during a checkpoint write leaves a temporary directory (or, at worst, a directory
    // without state.json); neither is taken for a checkpoint.
    let ckpts = cfg.output_dir.join("checkpoints");
    std::fs::create_dir_all(ckpts.join(".tmp-step-00000006")).expect("tmp");
    std::fs::write(
        ckpts.join(".tmp-step-00000006/trainable.safetensors"),
        b"partial",
    )
    .expect("w");
    std::fs::create_dir_all(ckpts.join("step-00000007")).expect("incomplete");
    let second = train(&cfg, &TrainOptions::default()).expect("resumed");
    assert_eq!(second.resumed_from, 4, "resumes from the newest checkpoint");
    let resumed = final_adapter(&cfg.output_dir);
    assert_eq!(resumed.len(), reference.len());
    for (k, t) in &reference {
        let d = (t - &resumed[k])
            .expect("sub")
            .abs()
            .expect("abs")
            .flatten_all()
            .expect("f")
            .max(0)
            .expect("m");
        assert!(
            d.to_scalar::<f32>().expect("s") < 1e-6,
            "{k} differs after resumption"
        );
    }
}

#[test]
fn a_non_finite_loss_stops_the_run_and_names_a_usable_checkpoint() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), &common::tiny_llama_json());
    cfg.lr = 1e30;
    cfg.warmup_steps = 0;
    cfg.grad_clip = 0.0;
    cfg.save_every = 1;
    cfg.eval_data = None;
    let err = train(&cfg, &TrainOptions::default()).expect_err("must diverge");
    let msg = err.to_string();
    let Error::NonFiniteLoss {
        last_checkpoint, ..
    } = err
    else {
        panic!("unexpected error: {msg}")
    };
    assert!(msg.contains("not finite"), "{msg}");
    let ckpt = last_checkpoint.expect("a checkpoint was written before the failure");
    assert!(msg.contains(&ckpt.display().to_string()));
    let weights = candle_core::safetensors::load(ckpt.join("trainable.safetensors"), &Device::Cpu)
        .expect("load");
    for (k, t) in weights {
        let s = t
            .abs()
            .expect("abs")
            .sum_all()
            .expect("s")
            .to_scalar::<f32>()
            .expect("s");
        assert!(s.is_finite(), "{k} in the named checkpoint is not finite");
    }
}

#[test]
fn chat_messages_train_on_the_final_assistant_turn() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), &common::tiny_qwen2_json());
    let mut f = std::fs::File::create(&cfg.train_data).expect("data");
    for i in 0..8 {
        writeln!(f, r#"{{"messages": [{{"role": "user", "content": "hi {i}"}}, {{"role": "assistant", "content": "yo"}}]}}"#).expect("w");
    }
    cfg.chat = true;
    cfg.max_steps = 40;
    cfg.eval_data = None;
    let s = train(&cfg, &TrainOptions::default()).expect("train");
    let first = read_metrics(&cfg.output_dir)[0]["loss"]
        .as_f64()
        .expect("loss");
    assert!(
        s.last_loss < 0.5 && (s.last_loss as f64) < first / 10.0,
        "loss {first} → {}",
        s.last_loss
    );
}

#[test]
fn the_mario_strategyqa_file_reads_as_rationale_then_answer() {
    let path = Path::new("/work/shared/data/mario/strategyqa/gpt3/train_gpt3_responses.jsonl");
    let path = std::env::var_os("MARIO_STRATEGYQA_GPT3").map_or(path.to_path_buf(), Into::into);
    if !path.exists() {
        println!(
            "SKIPPED: {} not found (set MARIO_STRATEGYQA_GPT3)",
            path.display()
        );
        return;
    }
    let (ex, skipped) = trainer::sft::data::read_counting_skipped(&path).expect("read");
    assert!(ex.len() > 1000, "{} examples", ex.len());
    println!(
        "MaRio StrategyQA GPT-3: {} examples, {skipped} skipped (empty label or rationale)",
        ex.len()
    );
    assert!(skipped < ex.len() / 10);
    for e in &ex {
        let trainer::sft::data::Example::Text { prompt, completion } = e else {
            panic!("text examples")
        };
        assert!(!prompt.is_empty());
        assert!(
            completion.ends_with("So the answer is yes.")
                || completion.ends_with("So the answer is no."),
            "{completion}"
        );
    }
}

/// Every tensor of `a` equals the one of the same name in `b`, bit for bit.
fn assert_bit_identical(
    a: &std::collections::HashMap<String, Tensor>,
    b: &std::collections::HashMap<String, Tensor>,
    what: &str,
) {
    assert_eq!(a.len(), b.len(), "{what}: tensor count");
    for (k, t) in a {
        let x = t.flatten_all().expect("f").to_vec1::<f32>().expect("v");
        let y = b[k].flatten_all().expect("f").to_vec1::<f32>().expect("v");
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{what}: {k} differs"
        );
    }
}

#[test]
fn a_lora_run_with_dropout_resumed_from_a_checkpoint_ends_bit_identical() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), &common::tiny_gpt2_json());
    cfg.lora_rank = 4;
    cfg.lora_targets = vec!["c_attn".into(), "c_fc".into()];
    cfg.lora_dropout = 0.1;
    cfg.grad_accum = 2;
    cfg.max_steps = 7;
    cfg.save_every = 3;
    cfg.eval_data = Some(dir.path().join("eval.jsonl"));
    cfg.eval_every = 2;
    cfg.output_dir = dir.path().join("straight");
    train(&cfg, &TrainOptions::default()).expect("straight");
    let reference = final_adapter(&cfg.output_dir);

    // Dropout is really on: without it the same run ends elsewhere.
    let mut no_dropout = cfg.clone();
    no_dropout.lora_dropout = 0.0;
    no_dropout.output_dir = dir.path().join("no-dropout");
    train(&no_dropout, &TrainOptions::default()).expect("no dropout");
    let plain = final_adapter(&no_dropout.output_dir);
    assert!(
        plain.iter().any(|(k, t)| {
            let x = t.flatten_all().expect("f").to_vec1::<f32>().expect("v");
            let y = reference[k]
                .flatten_all()
                .expect("f")
                .to_vec1::<f32>()
                .expect("v");
            x != y
        }),
        "dropout 0.1 changed nothing"
    );

    // Stopped after step 5 (an eval ran at 4; the newest checkpoint is step 3), then resumed
    // twice: once more to a stop, once to the end.
    cfg.output_dir = dir.path().join("resumed");
    let stop = |n| TrainOptions {
        stop_after: Some(n),
        ..Default::default()
    };
    assert_eq!(train(&cfg, &stop(5)).expect("first leg").steps, 5);
    let second = train(&cfg, &stop(6)).expect("second leg");
    assert_eq!(second.resumed_from, 3);
    let third = train(&cfg, &TrainOptions::default()).expect("last leg");
    assert_eq!(third.resumed_from, 6);
    assert_bit_identical(&reference, &final_adapter(&cfg.output_dir), "resumed");
}

#[test]
fn a_run_over_its_memory_limit_stops_naming_a_checkpoint_that_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), &common::tiny_gpt2_json());
    cfg.lora_rank = 4;
    cfg.lora_targets = vec!["c_attn".into()];
    cfg.batch_size = 2;
    cfg.max_steps = 6;
    cfg.save_every = 2;
    cfg.eval_data = None;
    cfg.output_dir = dir.path().join("straight");
    let straight = train(&cfg, &TrainOptions::default()).expect("straight");
    assert!(
        straight.memory_limit_mib.is_some_and(|m| m > 0),
        "on Linux the default limit comes from /proc and the cgroup"
    );
    let reference = final_adapter(&cfg.output_dir);

    // Three steps, then the process "runs out": any real process is over 1 MiB, while this
    // model's pre-flight estimate is under it, so the first forward pass of the resumed run
    // is what stops it.
    cfg.output_dir = dir.path().join("limited");
    let stop3 = TrainOptions {
        stop_after: Some(3),
        ..Default::default()
    };
    train(&cfg, &stop3).expect("first leg");
    let mut limited = cfg.clone();
    limited.memory_limit_mib = Some(1);
    let err = train(&limited, &TrainOptions::default()).expect_err("over the limit");
    let msg = err.to_string();
    let Error::OutOfMemory {
        step,
        check,
        used_mib,
        limit_mib,
        last_checkpoint,
        ..
    } = err
    else {
        panic!("unexpected error: {msg}")
    };
    assert_eq!(check, trainer::error::MemoryCheck::FirstForward, "{msg}");
    assert_eq!((step, limit_mib), (3, Some(1)), "{msg}");
    let used = used_mib.expect("measured");
    assert!(used > 1, "{msg}");
    let ckpt = last_checkpoint.expect("the step-2 checkpoint is named");
    assert_eq!(ckpt, cfg.output_dir.join("checkpoints/step-00000002"));
    for needle in [
        format!("peak resident memory {used} MiB"),
        "limit of 1 MiB".into(),
        "`memory_limit_mib`".into(),
        ckpt.display().to_string(),
        "lower batch_size (now 2".into(),
        "max_len (now 512)".into(),
    ] {
        assert!(msg.contains(&needle), "`{needle}` missing from: {msg}");
    }
    let weights = candle_core::safetensors::load(ckpt.join("trainable.safetensors"), &Device::Cpu)
        .expect("the named checkpoint loads");
    assert_eq!(
        weights.keys().collect::<std::collections::BTreeSet<_>>(),
        reference.keys().collect()
    );
    assert!(
        !cfg.output_dir.join("final").exists(),
        "the stopped run wrote no final weights"
    );

    // Re-running without the limit resumes from the named checkpoint and ends where the
    // uninterrupted run did.
    let resumed = train(&cfg, &TrainOptions::default()).expect("resumed");
    assert_eq!(resumed.resumed_from, 2);
    assert_bit_identical(&reference, &final_adapter(&cfg.output_dir), "resumed");
    let peaks: Vec<f64> = read_metrics(&cfg.output_dir)
        .iter()
        .filter_map(|v| v["peak_rss_mib"].as_f64())
        .collect();
    // One line per step: the first leg's step 3 (after its checkpoint of step 2) was
    // computed again by the resumed run, and its old line dropped.
    assert!(
        peaks.len() == cfg.max_steps && peaks.iter().all(|&p| p > 1.0),
        "every step line records the peak: {peaks:?}"
    );
}

#[test]
fn a_batch_that_cannot_fit_is_refused_before_the_first_step() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), &common::tiny_llama_json());
    cfg.batch_size = 512;
    cfg.memory_limit_mib = Some(2);
    let err = train(&cfg, &TrainOptions::default()).expect_err("refused");
    let msg = err.to_string();
    let Error::OutOfMemory {
        step,
        check,
        used_mib,
        last_checkpoint,
        ..
    } = err
    else {
        panic!("unexpected error: {msg}")
    };
    assert_eq!(check, trainer::error::MemoryCheck::Estimate, "{msg}");
    assert_eq!(step, 1);
    assert!(used_mib.is_some_and(|u| u > 2), "{msg}");
    assert!(last_checkpoint.is_none());
    assert!(
        msg.contains("estimated") && msg.contains("did not start") && msg.contains("LoRA"),
        "{msg}"
    );
    assert!(
        !cfg.output_dir.join("metrics.jsonl").exists(),
        "no step ran"
    );
    // The same run with a small batch starts under the default limit.
    cfg.batch_size = 4;
    cfg.max_steps = 1;
    cfg.memory_limit_mib = None;
    train(&cfg, &TrainOptions::default()).expect("a small batch runs under the default limit");
}

#[test]
fn a_second_run_in_a_busy_output_dir_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), &common::tiny_llama_json());
    // Stands in for a live `trainer sft` holding the directory (a separate open file
    // description, so the lock conflicts as another process's would).
    std::fs::create_dir_all(&cfg.output_dir).expect("run dir");
    let holder = std::fs::File::create(cfg.output_dir.join(".lock")).expect("lock file");
    holder.lock().expect("lock");
    let err = train(&cfg, &TrainOptions::default()).expect_err("directory is busy");
    assert!(matches!(err, Error::RunDirBusy { .. }), "{err}");
    assert!(err.to_string().contains("another trainer run"), "{err}");
    assert!(!cfg.output_dir.join("config.toml").exists());
    assert!(!cfg.output_dir.join("checkpoints").exists());
    // Once the holder is gone the same run starts.
    drop(holder);
    let mut cfg = cfg;
    cfg.max_steps = 2;
    assert_eq!(
        train(&cfg, &TrainOptions::default()).expect("train").steps,
        2
    );
}
