//! The `trainer` binary: `sft` with a TOML file and flag overrides, and `generate`.

mod common;

use std::io::Write;
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
}
