//! The run directory as a user meets it through `trainer sft`: changed settings on resume,
//! finished runs re-run, SIGINT / SIGTERM / SIGKILL, progress without a terminal, and
//! failures that write nothing and say what is wrong in one line.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn trainer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    // Errors must stay one line even when a user has backtraces on.
    c.env("RUST_BACKTRACE", "1").env_remove("RUST_LOG");
    c
}

/// A tiny GPT-2 in `d/model`, ten examples in `d/train.jsonl` and a LoRA run file
/// `d/run.toml` writing to `d/run`.
fn setup(d: &Path) {
    common::write_tiny(&d.join("model"), &common::tiny_gpt2_json(), 5);
    let mut f = std::fs::File::create(d.join("train.jsonl")).expect("f");
    for i in 0..10 {
        writeln!(f, r#"{{"prompt": "q{i}", "completion": "a{i}"}}"#).expect("w");
    }
    let toml = format!(
        "model = {:?}\ntrain_data = {:?}\noutput_dir = {:?}\nbatch_size = 2\nlr = 0.01\n\
         lora_rank = 4\nlora_targets = [\"c_attn\"]\nmax_steps = 3\n",
        d.join("model"),
        d.join("train.jsonl"),
        d.join("run")
    );
    std::fs::write(d.join("run.toml"), toml).expect("toml");
}

fn sft_cmd(d: &Path, extra: &[&str]) -> Command {
    let mut c = trainer();
    c.args(["sft", "--config"])
        .arg(d.join("run.toml"))
        .args(extra);
    c
}

fn sft(d: &Path, extra: &[&str]) -> Output {
    sft_cmd(d, extra).output().expect("run")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The steps of the step lines of `metrics.jsonl`, and its events.
fn history(run: &Path) -> (Vec<u64>, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let steps = lines
        .iter()
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["step"].as_u64().expect("step"))
        .collect();
    let events = lines
        .into_iter()
        .filter(|v| v.get("event").is_some())
        .collect();
    (steps, events)
}

#[test]
fn a_changed_setting_is_refused_naming_both_values_and_nothing_is_rewritten() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    setup(d);
    let out = sft(d, &["--no-progress"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read(d.join("run/config.toml")).expect("config");
    let metrics = std::fs::read(d.join("run/metrics.jsonl")).expect("metrics");
    let out = sft(d, &["--lora-rank", "2", "--lr", "1e-3", "--max-steps", "5"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("lora_rank = 4 (now 2)")
            && err.contains("lr = 0.01 (now 0.001)")
            && !err.contains("max_steps = 3")
            && err.contains("choose another output_dir"),
        "{err}"
    );
    assert_eq!(std::fs::read(d.join("run/config.toml")).expect("c"), config);
    assert_eq!(
        std::fs::read(d.join("run/metrics.jsonl")).expect("m"),
        metrics
    );
    // resume = false on a directory holding a run would overwrite it: refused too.
    let out = sft(d, &["--resume", "false"]);
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("key `resume`") && err.contains("step 3"),
        "{err}"
    );
}

#[test]
fn a_finished_run_says_so_and_a_larger_max_steps_extends_it_as_one_history() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    setup(d);
    let out = sft(d, &["--no-progress"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("starting a run in"),
        "{}",
        stderr(&out)
    );
    let out = sft(d, &["--no-progress"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("is finished: 3 of 3 steps")
            && err.contains("larger --max-steps")
            && !err.contains("NaN"),
        "{err}"
    );
    let out = sft(d, &["--no-progress", "--max-steps", "5"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains("from step 3 of 5") && first.contains("max_steps = 3 (now 5)"),
        "printed at the start: {err}"
    );
    assert!(err.contains("done: 5 steps (resumed from 3)"), "{err}");
    let (steps, events) = history(&d.join("run"));
    assert_eq!(steps, vec![1, 2, 3, 4, 5]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "resume");
    assert_eq!(events[0]["changed"]["max_steps"][1], "5");
    let resolved = std::fs::read_to_string(d.join("run/config.toml")).expect("config");
    assert!(resolved.contains("max_steps = 5"), "{resolved}");
}

/// Starts a long run and waits until its metrics hold `lines` lines.
fn start_long_run(d: &Path, lines: usize, extra: &[&str]) -> Child {
    let child = sft_cmd(d, &["--no-progress", "--max-steps", "100000"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let metrics = d.join("run/metrics.jsonl");
    let t0 = Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < lines {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the run made no progress"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn sigint_and_sigterm_stop_after_the_step_with_a_checkpoint_and_the_command_resumes() {
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        setup(d);
        let child = start_long_run(d, 3, &["--save-every", "100000"]);
        signal(&child, name);
        let out = child.wait_with_output().expect("wait");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "SIG{name}: {err}");
        let (steps, _) = history(&d.join("run"));
        let last = *steps.last().expect("steps");
        let ckpt = d.join(format!("run/checkpoints/step-{last:08}"));
        assert!(ckpt.join("state.json").exists(), "SIG{name}: {err}");
        assert!(
            err.contains(&format!("stopped by SIG{name} after step {last} of 100000"))
                && err.contains(&ckpt.display().to_string())
                && err.contains("Resume with: trainer sft --config"),
            "{err}"
        );
        // The same command (here with an end in sight) resumes from that step.
        let out = sft(
            d,
            &["--no-progress", "--max-steps", &(last + 2).to_string()],
        );
        let err = stderr(&out);
        assert!(
            out.status.success() && err.contains(&format!("from step {last} of {}", last + 2)),
            "{err}"
        );
        let (steps, _) = history(&d.join("run"));
        assert_eq!(
            steps,
            (1..=last + 2).collect::<Vec<_>>(),
            "one line per step"
        );
    }
}

#[test]
fn a_second_sigint_exits_at_once_and_leaves_a_resumable_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    setup(d);
    let child = start_long_run(d, 2, &["--save-every", "1"]);
    signal(&child, "INT");
    signal(&child, "INT");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let out = sft(d, &["--no-progress", "--max-steps", "60"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (steps, _) = history(&d.join("run"));
    assert_eq!(steps, (1..=60).collect::<Vec<_>>());
}

#[test]
fn after_a_sigkill_the_resumed_run_drops_the_killed_runs_lines_past_its_checkpoint() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    setup(d);
    // No checkpoint is due before the kill: every line of the killed run is superseded.
    let mut child = start_long_run(d, 3, &["--save-every", "100000"]);
    child.kill().expect("kill");
    child.wait().expect("wait");
    let out = sft(d, &["--no-progress", "--max-steps", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (steps, _) = history(&d.join("run"));
    assert_eq!(
        steps,
        vec![1, 2, 3, 4],
        "39 lines must not describe 30 steps"
    );
}

#[test]
fn without_a_terminal_progress_is_printed_as_plain_lines() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    setup(d);
    let out = sft(d, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for needle in ["step 1/3 (33%) loss ", "step 3/3 (100%)", "elapsed, ~"] {
        assert!(err.contains(needle), "`{needle}` missing: {err}");
    }
}

#[test]
fn failed_starts_write_nothing_and_say_why_in_one_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    setup(d);
    std::fs::write(
        d.join("bad.jsonl"),
        "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\", \"answer\": \"b\"}\n",
    )
    .expect("w");
    let bad_data = d.join("bad.jsonl").display().to_string();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--train-data".into(), bad_data.clone()],
            format!("{bad_data}:2: missing `completion`"),
        ),
        (
            vec!["--model".into(), "/nonexistent".into()],
            "key `model`: /nonexistent: no such file or directory; expected an HF model".into(),
        ),
        (
            vec!["--batch-size".into(), "many".into()],
            "flag --batch-size: expected a whole number, got `many`".into(),
        ),
        (
            vec!["--lora-rnak".into(), "2".into()],
            "did you mean --lora-rank?".into(),
        ),
    ];
    for (args, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sft(d, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&says),
            "{args:?}: `{says}` missing from: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(
            !d.join("run").exists(),
            "{args:?} created the run directory"
        );
    }
    // Without --config, a missing key says how to give it.
    let out = trainer()
        .args(["sft", "--model"])
        .arg(d.join("model"))
        .arg("--train-data")
        .arg(d.join("train.jsonl"))
        .output()
        .expect("run");
    let err = stderr(&out);
    assert!(
        err.contains("key `output_dir`: missing") && err.contains("pass --output-dir"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
