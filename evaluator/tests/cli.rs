//! The `evaluator` binary as a user or a CI script runs it: outputs, exit codes,
//! and error messages.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use std::io::Write;

fn evaluator(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_evaluator"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The misbehaving test scorer written to a file, as a user would pass it.
fn hostile_module_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("hostile.wasm");
    std::fs::write(
        &module,
        reward_builtins::test_module("hostile").unwrap().wasm,
    )
    .unwrap();
    (dir, module)
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/samples.jsonl")
        .display()
        .to_string()
}

#[test]
fn score_writes_one_object_per_input_line_in_order() {
    let out = evaluator(
        &[
            "score",
            "--module",
            "builtin:accuracy",
            "--input",
            &example(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accuracy: Vec<_> = stdout_lines(&out)
        .iter()
        .map(|v| v["accuracy"].as_f64().unwrap())
        .collect();
    assert_eq!(accuracy, vec![1.0, 0.0, 1.0, 1.0, 1.0]);

    let out = evaluator(
        &[
            "score",
            "--module",
            "builtin:length",
            "--input",
            &example(),
            "--batch-size",
            "2",
        ],
        "",
    );
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[1],
        serde_json::json!({"words": 11.0, "sentences": 2.0, "characters": 55.0})
    );
}

#[test]
fn a_missing_reference_scores_null() {
    let out = evaluator(
        &["score", "--module", "builtin:rouge", "--input", "-"],
        "{\"prompt\":\"q\",\"response\":\"an answer\"}\n",
    );
    assert!(out.status.success());
    assert_eq!(
        stdout_lines(&out),
        vec![serde_json::json!({"rouge1": null, "rouge2": null, "rougeL": null})]
    );
}

#[test]
fn a_malformed_line_fails_with_its_number_and_no_output() {
    let input = "{\"prompt\":\"q\",\"response\":\"r\"}\n{\"prompt\":\"q\",\"respons\":\"r\"}\n";
    let out = evaluator(
        &["score", "--module", "builtin:length", "--input", "-"],
        input,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "nothing may be written before the input is validated"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: stdin line 2: unknown field `respons`"),
        "{stderr}"
    );
}

#[test]
fn a_module_fault_exits_2_with_one_line_naming_the_cause() {
    let (_dir, module) = hostile_module_file();
    let module = module.display().to_string();
    for (misdeed, cause) in [
        ("loop", "timed out after 200ms"),
        ("memory", "memory limit exceeded"),
        ("panic", "guest panicked"),
        ("nan", "invalid output"),
    ] {
        let out = evaluator(
            &[
                "score",
                "--module",
                &module,
                "--input",
                "-",
                "--timeout-ms",
                "200",
                "--memory-mib",
                "32",
            ],
            &format!("{{\"prompt\":\"{misdeed}\",\"response\":\"r\"}}\n"),
        );
        assert_eq!(out.status.code(), Some(2), "{misdeed}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{misdeed}: {stderr}");
        assert!(stderr.contains(cause), "{misdeed}: {stderr}");
    }
}

#[test]
fn an_invalid_module_file_is_a_module_fault() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("garbage.wasm");
    std::fs::write(&module, b"not wasm at all").unwrap();
    let out = evaluator(
        &[
            "score",
            "--module",
            &module.display().to_string(),
            "--input",
            &example(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid module"));
}

#[test]
fn a_failed_run_leaves_no_output_file() {
    let (dir, module) = hostile_module_file();
    let results = dir.path().join("results.jsonl");
    // The first batch succeeds, the second panics: nothing may reach results.jsonl.
    let input =
        "{\"prompt\":\"fine\",\"response\":\"r\"}\n{\"prompt\":\"panic\",\"response\":\"r\"}\n";
    let out = evaluator(
        &[
            "score",
            "--module",
            &module.display().to_string(),
            "--input",
            "-",
            "--batch-size",
            "1",
            "--output",
            &results.display().to_string(),
        ],
        input,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("samples 2-2"));
    assert!(!results.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

#[test]
fn unknown_builtins_list_the_available_ones() {
    let out = evaluator(
        &["score", "--module", "builtin:nope", "--input", &example()],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no built-in module named `nope`") && stderr.contains("diversity"),
        "{stderr}"
    );
}

#[test]
fn a_judge_cannot_be_used_to_score() {
    let out = evaluator(
        &[
            "score",
            "--module",
            "builtin:label-judge",
            "--input",
            &example(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a judge; `score` needs a scorer"));
}

#[test]
fn modules_lists_every_builtin_with_metrics_and_directions() {
    let out = evaluator(&["modules", "--json"], "");
    assert!(out.status.success());
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<_> = list.iter().map(|m| m["module"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "accuracy",
            "diversity",
            "length",
            "readability",
            "rouge",
            "qa",
            "label-judge"
        ]
        .map(|n| format!("builtin:{n}"))
    );
    assert_eq!(list[3]["metrics"][0]["direction"], "lower-is-better");
    assert_eq!(list[6]["kind"], "judge");
}

#[test]
fn a_bad_command_line_exits_64() {
    let out = evaluator(&["score", "--module"], "");
    assert_eq!(out.status.code(), Some(64));
}
