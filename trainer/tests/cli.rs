//! The `trainer` binary: `sft` with a TOML file and flag overrides, and `generate`.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

#[test]
fn sft_reads_toml_applies_flag_overrides_and_generate_uses_the_result() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    common::write_tiny(&d.join("model"), &common::tiny_gpt2_json(), 1);
    let mut f = std::fs::File::create(d.join("train.jsonl")).expect("f");
    for i in 0..6 {
        writeln!(f, r#"{{"prompt": "p{i}", "completion": "c"}}"#).expect("w");
    }
    let toml = format!(
        "model = {:?}\ntrain_data = {:?}\noutput_dir = {:?}\nmax_steps = 50\nbatch_size = 2\nlr = 0.01\n",
        d.join("model"),
        d.join("train.jsonl"),
        d.join("run")
    );
    std::fs::write(d.join("run.toml"), toml).expect("toml");
    let out = trainer()
        .args(["sft", "--no-progress", "--config"])
        .arg(d.join("run.toml"))
        .args(["--max-steps", "3", "--decay", "linear"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = std::fs::read_to_string(d.join("run/metrics.jsonl")).expect("metrics");
    assert_eq!(metrics.lines().count(), 3, "the flag overrode max_steps");
    let resolved = std::fs::read_to_string(d.join("run/config.toml")).expect("resolved");
    assert!(
        resolved.contains("max_steps = 3") && resolved.contains("decay = \"linear\""),
        "{resolved}"
    );

    let out = trainer()
        .args([
            "generate",
            "--max-new-tokens",
            "4",
            "--prompt",
            "p1",
            "--model",
        ])
        .arg(d.join("run/final"))
        .output()
        .expect("generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens in"));

    // The same model in bf16 runs too; an unknown dtype is refused by name.
    let bf16 = |dtype: &str| {
        trainer()
            .args(["generate", "--max-new-tokens", "4", "--prompt", "p1"])
            .args(["--dtype", dtype, "--model"])
            .arg(d.join("run/final"))
            .output()
            .expect("generate")
    };
    let out = bf16("bf16");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens in"));
    let out = bf16("fp16");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("'fp16'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_config_error_names_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "model = \"m\"\ntrain_data = \"t\"\noutput_dir = \"o\"\nbatchsize = 4\n",
    )
    .expect("w");
    let out = trainer()
        .args(["sft", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`batchsize`"), "{err}");
    let out = trainer()
        .args(["sft", "--model", "m", "--train-data", "t", "--output-dir"])
        .arg(dir.path())
        .arg("--lr=-1")
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key `lr`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for bad in ["fp16", "BF16"] {
        let out = trainer()
            .args(["sft", "--model", "m", "--train-data", "t", "--output-dir"])
            .arg(dir.path())
            .args(["--dtype", bad])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("key `dtype`") && err.contains("`bf16`"),
            "{bad}: {err}"
        );
    }
    for bad in ["0", "-5"] {
        let out = trainer()
            .args(["sft", "--model", "m", "--train-data", "t", "--output-dir"])
            .arg(dir.path())
            .arg(format!("--memory-limit-mib={bad}"))
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("key `memory_limit_mib`"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn a_run_over_its_memory_limit_prints_why_and_the_checkpoint_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    common::write_tiny(&d.join("model"), &common::tiny_gpt2_json(), 3);
    let mut f = std::fs::File::create(d.join("train.jsonl")).expect("f");
    for i in 0..6 {
        writeln!(f, r#"{{"prompt": "p{i}", "completion": "c{i}"}}"#).expect("w");
    }
    let toml = format!(
        "model = {:?}\ntrain_data = {:?}\noutput_dir = {:?}\nbatch_size = 2\nlr = 0.01\n\
         lora_rank = 4\nlora_targets = [\"c_attn\"]\nsave_every = 1\n",
        d.join("model"),
        d.join("train.jsonl"),
        d.join("run")
    );
    std::fs::write(d.join("run.toml"), &toml).expect("toml");
    let sft = |extra: &[&str]| {
        trainer()
            .args(["sft", "--no-progress", "--config"])
            .arg(d.join("run.toml"))
            .args(extra)
            .output()
            .expect("run")
    };
    let out = sft(&["--max-steps", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The key in the TOML file: any process is over 1 MiB, so the first forward pass of the
    // resumed run stops it.
    std::fs::write(d.join("run.toml"), format!("{toml}memory_limit_mib = 1\n")).expect("toml");
    let out = sft(&["--max-steps", "4"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let ckpt = d.join("run/checkpoints/step-00000002");
    for needle in [
        "out of memory",
        "limit of 1 MiB",
        "step 3",
        &ckpt.display().to_string(),
        "lower batch_size",
    ] {
        assert!(err.contains(needle), "`{needle}` missing from: {err}");
    }
    assert!(ckpt.join("trainable.safetensors").exists());
    // The flag wins over the file, and the run resumes from the named checkpoint.
    let out = sft(&["--max-steps", "4", "--memory-limit-mib", "100000"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("done: 4 steps (resumed from 2)"),
        "{err}"
    );
}

/// Runs `trainer sft` in `run` with LoRA, optionally killing it (SIGKILL) once `kill_after`
/// checkpoints exist; returns the final adapter tensors of a completed run.
fn lora_sft(
    d: &std::path::Path,
    run: &str,
    kill_after: Option<usize>,
) -> Option<std::collections::HashMap<String, candle_core::Tensor>> {
    sft_run(
        d,
        run,
        kill_after,
        &["--lora-rank", "4", "--lora-targets", "c_attn"],
        "final/adapter_model.safetensors",
    )
}

/// Runs `trainer sft` in `run` with `extra` flags, optionally killing it (SIGKILL) once
/// `kill_after` checkpoints exist; returns the tensors of `final_file` of a completed run.
fn sft_run(
    d: &std::path::Path,
    run: &str,
    kill_after: Option<usize>,
    extra: &[&str],
    final_file: &str,
) -> Option<std::collections::HashMap<String, candle_core::Tensor>> {
    let mut cmd = trainer();
    cmd.args(["sft", "--no-progress", "--model"])
        .arg(d.join("model"))
        .arg("--train-data")
        .arg(d.join("train.jsonl"))
        .arg("--output-dir")
        .arg(d.join(run))
        .args(extra)
        .args(["--max-steps", "40", "--batch-size", "2"])
        .args([
            "--save-every",
            "1",
            "--keep-last",
            "2",
            "--lr",
            "0.01",
            "--warmup-steps",
            "0",
        ]);
    // A completed run where a killed one left checkpoints must have resumed from them (a
    // fresh start would end at the same weights too, and prove nothing).
    let must_resume = d.join(run).join("checkpoints").exists();
    match kill_after {
        None => {
            let out = cmd.output().expect("run");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{err}");
            assert!(
                !must_resume || (err.contains("(resumed from ") && !err.contains("from 0)")),
                "did not resume: {err}"
            );
            Some(
                candle_core::safetensors::load(
                    d.join(run).join(final_file),
                    &candle_core::Device::Cpu,
                )
                .expect("final weights"),
            )
        }
        Some(n) => {
            let mut child = cmd
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn");
            let marker = d
                .join(run)
                .join(format!("checkpoints/step-{n:08}/state.json"));
            let start = std::time::Instant::now();
            while !marker.exists() && start.elapsed().as_secs() < 120 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            child.kill().expect("kill");
            child.wait().expect("wait");
            assert!(marker.exists(), "no checkpoint appeared");
            assert!(
                !d.join(run).join("final").exists(),
                "the run was killed before finishing"
            );
            None
        }
    }
}

/// A tiny GPT-2 in `d/model` and ten prompt/completion lines in `d/train.jsonl`.
fn tiny_run_dir(d: &Path, seed: u64) {
    common::write_tiny(&d.join("model"), &common::tiny_gpt2_json(), seed);
    let mut f = std::fs::File::create(d.join("train.jsonl")).expect("f");
    for i in 0..10 {
        writeln!(f, r#"{{"prompt": "x{i}", "completion": "y{i}"}}"#).expect("w");
    }
}

/// Asserts both runs saved the same tensors, bit for bit.
fn assert_bit_identical(
    reference: &HashMap<String, candle_core::Tensor>,
    resumed: &HashMap<String, candle_core::Tensor>,
) {
    let bits = |t: &candle_core::Tensor| -> Vec<u32> {
        t.to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values")
            .iter()
            .map(|x| x.to_bits())
            .collect()
    };
    assert_eq!(resumed.len(), reference.len());
    for (k, t) in reference {
        assert!(
            bits(t) == bits(&resumed[k]),
            "{k} differs after kill + resume"
        );
    }
}

/// Asserts `trainer generate` runs on `model` (with `extra` arguments).
fn assert_generates(model: &Path, extra: &[&std::ffi::OsStr]) {
    let out = trainer()
        .args([
            "generate",
            "--max-new-tokens",
            "3",
            "--prompt",
            "x1",
            "--model",
        ])
        .arg(model)
        .args(extra)
        .output()
        .expect("generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_run_killed_with_sigkill_resumes_to_the_weights_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    tiny_run_dir(d, 2);
    let reference = lora_sft(d, "straight", None).expect("reference");
    lora_sft(d, "killed", Some(5));
    let resumed = lora_sft(d, "killed", None).expect("resumed");
    assert_bit_identical(&reference, &resumed);
    // The adapter is usable by `trainer generate --adapter`.
    let adapter = d.join("killed/final");
    assert_generates(
        &d.join("model"),
        &["--adapter".as_ref(), adapter.as_os_str()],
    );
}

#[test]
fn a_bf16_full_run_killed_with_sigkill_resumes_bit_identically_and_generate_loads_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    tiny_run_dir(d, 4);
    let bf16 = ["--dtype", "bf16", "--lora-rank", "0"];
    let file = "final/model.safetensors";
    let reference = sft_run(d, "straight", None, &bf16, file).expect("reference");
    assert!(
        reference
            .values()
            .all(|t| t.dtype() == candle_core::DType::BF16),
        "the flag made a bf16 run"
    );
    let resolved = std::fs::read_to_string(d.join("straight/config.toml")).expect("config");
    assert!(resolved.contains("dtype = \"bf16\""), "{resolved}");
    sft_run(d, "killed", Some(5), &bf16, file);
    let resumed = sft_run(d, "killed", None, &bf16, file).expect("resumed");
    assert_bit_identical(&reference, &resumed);
    // The bf16 model directory is what `trainer generate` loads.
    assert_generates(&d.join("killed/final"), &[]);
}
