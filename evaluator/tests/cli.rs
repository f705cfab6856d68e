//! The `evaluator` binary as a user or a CI script runs it: outputs, exit codes,
//! and error messages; offline, and against `evaluator serve` on a real
//! PostgreSQL (a database of its own per test).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use std::io::Write;

use common::TestDb;
use evaluator::db::teams;

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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed on input line 2:"), "{stderr}");
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
            "label-judge",
            "grounding",
            "sentence-readability",
            "qa-judge"
        ]
        .map(|n| format!("builtin:{n}"))
    );
    assert_eq!(list[3]["metrics"][0]["direction"], "lower-is-better");
    assert_eq!(list[6]["kind"], "judge");
    // The span built-ins say so; the others do not.
    let spans: Vec<_> = list.iter().map(|m| m["spans"].as_bool().unwrap()).collect();
    assert_eq!(
        spans,
        [
            false, false, false, false, false, false, false, true, true, false
        ]
    );
}

#[test]
fn a_bad_command_line_exits_64() {
    let out = evaluator(&["score", "--module"], "");
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn a_failing_batch_names_its_input_lines_counting_blank_ones() {
    let (_dir, module) = hostile_module_file();
    // Two samples in one batch, on lines 1 and 3 (the test module misbehaves as
    // its batch's first prompt says): the batch is named by its lines, and since
    // the sandbox does not say which sample failed, the message says so.
    let input =
        "{\"prompt\":\"panic\",\"response\":\"r\"}\n\n{\"prompt\":\"fine\",\"response\":\"r\"}\n";
    let out = evaluator(
        &[
            "score",
            "--module",
            &module.display().to_string(),
            "--input",
            "-",
            "--batch-size",
            "2",
        ],
        input,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed on input lines 1-3 (one batch of 2;")
            && stderr.contains("--batch-size 1 finds it"),
        "{stderr}"
    );
}

#[test]
fn inspect_puts_the_declared_name_first() {
    let (_dir, module) = hostile_module_file();
    let file = module.display().to_string();
    let out = evaluator(&["inspect", &file], "");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let first = stdout.lines().next().unwrap();
    assert!(first.starts_with("name: hostile (v"), "{stdout}");
    assert!(
        stdout.contains(&format!("from: {file}"))
            && stdout.contains("use it as: run --module hostile"),
        "{stdout}"
    );
}

/// An `evaluator` command with the service's address and a token.
fn client(url: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_evaluator"))
        .args(args)
        .env("EVALUATOR_URL", url)
        .env("EVALUATOR_TOKEN", token)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// An `evaluator admin` command on the test's database.
fn admin(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_evaluator"))
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `evaluator serve` on a free port of the test's database; the process and its URL.
fn serve(db: &TestDb) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_evaluator"))
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "1"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("evaluator: listening on ") {
            break url.to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// A file of `size` bytes that takes no disk space (a hole).
fn sparse_file(dir: &Path, name: &str, size: u64) -> String {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
    path.display().to_string()
}

#[test]
fn uploads_over_the_services_limits_are_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on the discard port: had the client tried to send, the
    // error would be a refused connection instead.
    let url = "http://127.0.0.1:9";
    let module = sparse_file(dir.path(), "big.wasm", 50_000_000);
    let (code, stdout, stderr) = client(url, "mrt_x", &["push-module", &module]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: {module} is 47.7 MiB and the service accepts modules of at most 32 MiB; build it \
             with --release and without debug info (`strip = true` in the profile, or `wasm-strip`)"
        )
    );
    let generations = sparse_file(dir.path(), "big.jsonl", 280_000_000);
    let (code, _, stderr) = client(
        url,
        "mrt_x",
        &[
            "push-generations",
            "--dataset",
            "d",
            "--system",
            "s",
            "--meta",
            "step=1",
            &generations,
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: {generations} is 267.0 MiB and the service accepts generations files of at most 256 MiB; split it"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[tokio::test]
async fn listings_metadata_reports_and_token_revocation_through_the_binary() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    let (mut server, url) = serve(&db);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.jsonl");
    std::fs::write(
        &file,
        "{\"id\": \"q1\", \"prompt\": \"Q?\", \"response\": \"A.\"}\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let push = |meta: &str| {
        client(
            &url,
            &token,
            &[
                "push-generations",
                "--dataset",
                "qa",
                "--system",
                "sys",
                "--meta",
                meta,
                &file,
            ],
        )
    };

    // A first push of one row, then the same file with other metadata: the
    // report says what changed, and that nothing did when nothing did.
    let (code, stdout, stderr) = push("lambda=0.5");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("qa/sys: 1 row, 1 new generation, 0 already stored"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"metadata: {} -> {"lambda":0.5}"#),
        "{stdout}"
    );
    let (code, stdout, stderr) = push("lambda=0.7");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(r#"metadata: {"lambda":0.5} -> {"lambda":0.7}"#),
        "{stdout}"
    );
    let (_, stdout, _) = push("lambda=0.7");
    assert!(stdout.contains("metadata unchanged"), "{stdout}");

    // Listings, in JSON and as text.
    let (code, stdout, stderr) = client(&url, &token, &["datasets", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let datasets: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let dataset = &datasets["datasets"][0];
    assert_eq!(
        (dataset["name"].as_str(), dataset["items"].as_i64()),
        (Some("qa"), Some(1)),
        "{stdout}"
    );
    let id = dataset["id"].as_i64().unwrap().to_string();
    let (_, stdout, _) = client(&url, &token, &["datasets"]);
    let row: Vec<&str> = stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, [id.as_str(), "qa", "1", "1", "1"], "{stdout}");
    let (code, stdout, stderr) = client(&url, &token, &["systems", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let systems: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(systems["systems"][0]["name"], "sys", "{stdout}");
    assert_eq!(systems["systems"][0]["metadata"]["lambda"], 0.7, "{stdout}");
    let (_, stdout, _) = client(&url, &token, &["systems"]);
    assert!(
        stdout
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(r#"{"lambda":0.7}"#),
        "{stdout}"
    );
    let (code, _, stderr) = client(&url, &token, &["push-module", "builtin:length"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = client(&url, &token, &["list-modules", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let modules: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(modules["modules"][0]["name"], "length", "{stdout}");
    let (_, stdout, _) = client(&url, &token, &["list-modules"]);
    assert!(
        stdout.lines().nth(1).unwrap().contains("length")
            && stdout.contains("words, sentences, characters"),
        "{stdout}"
    );

    // A leaderboard without a comparison names the judge as declared, not by
    // the id the CLI resolved `builtin:length` to.
    let (code, _, stderr) = client(
        &url,
        &token,
        &[
            "leaderboard",
            "--dataset",
            "qa",
            "--judge",
            "builtin:length",
            "--metric",
            "words",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("no finished comparison on `qa` with judge `length` (module #")
            && stderr.contains(
                "on its metric `words`; run `evaluator compare --dataset qa --judge length` first"
            ),
        "{stderr}"
    );

    // A dataset's id works where its name does.
    let (code, stdout, stderr) = client(&url, &token, &["results", "--dataset", &id, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let results: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(results["dataset"], "qa", "{stdout}");

    // The server's own 413 reaches a client that skips the size check: it is
    // refused on its declared length, before the body is sent.
    let big = vec![0u8; evaluator::state::MAX_MODULE_BYTES + 1];
    let refused = tokio::task::spawn_blocking({
        let (url, token) = (url.clone(), token.clone());
        move || {
            evaluator::client::Client::new(&url, &token)
                .unwrap()
                .post_bytes::<serde_json::Value>("/api/v1/modules", "application/wasm", &big)
        }
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(&refused, evaluator::Error::Api { status: 413, message, .. }
            if message == "modules are limited to 32 MiB"),
        "{refused}"
    );

    // Tokens: listed with id and prefix, revoked by either; an ambiguous
    // prefix is refused and names the candidates.
    let second = teams::create_token(&db.pool, "lab").await.unwrap();
    let third = teams::create_token(&db.pool, "lab").await.unwrap();
    let (code, stdout, stderr) = admin(&db, &["list-tokens", "lab", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let tokens: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let prefixes: Vec<&str> = tokens
        .iter()
        .map(|t| t["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(prefixes, [&token[..12], &second[..12], &third[..12]]);
    assert!(tokens.iter().all(|t| t["revoked"].is_null()), "{stdout}");
    let (code, _, stderr) = admin(&db, &["revoke-token", &second[..12]]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "revoked token #{} ({}) of team `lab`",
            tokens[1]["id"],
            &second[..12]
        )
    );
    let third_id = tokens[2]["id"].to_string();
    let (code, _, stderr) = admin(&db, &["revoke-token", &third_id]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = admin(&db, &["revoke-token", &third_id]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already revoked"), "{stderr}");
    let (code, _, stderr) = client(&url, &second, &["datasets"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("401"), "{stderr}");
    let (code, stdout, _) = admin(&db, &["list-tokens", "lab"]);
    assert_eq!(code, 0);
    let revoked: Vec<bool> = stdout
        .lines()
        .skip(1)
        .map(|line| !line.ends_with('-'))
        .collect();
    assert_eq!(revoked, [false, true, true], "{stdout}");
    // Two tokens whose prefixes begin alike (written directly: real ones
    // rarely collide).
    for (n, prefix) in ["mrt_abcd0001", "mrt_abcd0002"].iter().enumerate() {
        sqlx::query(
            "INSERT INTO api_tokens (team_id, token_sha256, prefix) \
             SELECT id, decode(repeat($2, 32), 'hex'), $1 FROM teams WHERE name = 'lab'",
        )
        .bind(prefix)
        .bind(format!("{n:02}"))
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let (code, _, stderr) = admin(&db, &["revoke-token", "mrt_abcd"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("prefix \"mrt_abcd\" matches 2 active tokens")
            && stderr.contains("mrt_abcd0001")
            && stderr.contains("mrt_abcd0002"),
        "{stderr}"
    );
    let (code, _, stderr) = admin(&db, &["revoke-token", "mrt_abcd0002"]);
    assert_eq!(code, 0, "{stderr}");

    server.kill().unwrap();
    server.wait().unwrap();
    db.finish().await;
}

#[tokio::test]
async fn alpaca_eval_files_push_and_rank_against_a_baseline_through_the_binary() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "alpaca").await.unwrap();
    let (mut server, url) = serve(&db);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    // Three instructions; the baseline and a system named `example` in its
    // own files, as AlpacaEval's null model is.
    let outputs = |generator: &str, answers: [&str; 3]| {
        let rows: Vec<serde_json::Value> = ["Name a colour.", "Add 2 and 2.", "Say hi."]
            .iter()
            .zip(answers)
            .map(|(instruction, output)| {
                serde_json::json!({"instruction": instruction, "output": output, "generator": generator, "dataset": "helpful_base"})
            })
            .collect();
        serde_json::Value::Array(rows).to_string()
    };
    let base = write(
        "base.json",
        &outputs("gpt4", ["Blue.", "Four.", "Hi there!"]),
    );
    let mine = write(
        "mine.json",
        &outputs("example", ["Red", "4", "Hello, how are you today?"]),
    );
    for (system, file) in [("gpt4", &base), ("mine", &mine)] {
        let (code, _, stderr) = client(
            &url,
            &token,
            &[
                "push-generations",
                "--dataset",
                "ae",
                "--system",
                system,
                "--format",
                "alpaca_eval",
                file,
            ],
        );
        assert_eq!(code, 0, "{stderr}");
    }
    let annotations = |preferences: [&str; 3], generator: &str| {
        let rows: Vec<String> = ["Name a colour.", "Add 2 and 2.", "Say hi."]
            .iter()
            .zip(preferences)
            .map(|(instruction, p)| {
                format!(r#"{{"instruction": {instruction:?}, "generator_1": "gpt4", "generator_2": "{generator}", "annotator": "judge_x", "preference": {p}}}"#)
            })
            .collect();
        format!("[\n{}\n]", rows.join(",\n"))
    };
    let judged = write("judged.json", &annotations(["1.9", "0", "1.25"], "example"));
    let push = |file: &str, extra: &[&str]| {
        let mut args = vec![
            "push-judgments",
            "--dataset",
            "ae",
            "--judge",
            "judge_x",
            "--format",
            "alpaca_eval",
        ];
        args.extend_from_slice(extra);
        args.push(file);
        client(&url, &token, &args)
    };
    // Without --system the file's generator (`example`) is not a system here:
    // one line naming the entry, the line and the fix, exit 1.
    let (code, stdout, stderr) = push(&judged, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains("entry 0 (line 2): system `example` has no generations on dataset `ae` (push them first, or rename it with --system/--baseline)"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let (code, stdout, stderr) = push(&judged, &["--system", "mine"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("judge `judge_x` on ae: 3 judgments stored, 0 unchanged (gpt4, mine)"),
        "{stdout}"
    );
    let bad = write("bad.json", &annotations(["1.9", "3", "1.25"], "example"));
    let (code, _, stderr) = push(&bad, &["--system", "mine"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "entry 1 (line 3): field `preference` is 3; AlpacaEval's preference is in [1, 2]"
        ),
        "{stderr}"
    );

    // The leaderboard's JSON has AlpacaEval's column names and values: P(mine
    // wins) = 0.9, 0.5 (a preference of 0 is a draw), 0.25.
    let (code, stdout, stderr) = client(
        &url,
        &token,
        &[
            "leaderboard",
            "--dataset",
            "ae",
            "--baseline",
            "gpt4",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let board: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(board["judge"], "judge_x", "the only judge is the default");
    let mine = board["systems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["system"] == "mine")
        .unwrap()
        .clone();
    let expected_mean = (0.9 + 0.5 + 0.25) / 3.0;
    assert!(
        (mine["win_rate"].as_f64().unwrap() - 100.0 * expected_mean).abs() < 1e-9,
        "{mine}"
    );
    for (key, value) in [
        ("n_wins", 1),
        ("n_wins_base", 1),
        ("n_draws", 1),
        ("n_total", 3),
    ] {
        assert_eq!(mine[key], value, "{key}: {mine}");
    }
    assert!((mine["discrete_win_rate"].as_f64().unwrap() - 50.0).abs() < 1e-9);
    // Code points, truncated: (3 + 1 + 25) / 3.
    assert_eq!(mine["avg_length"], 9);
    let (code, stdout, stderr) = client(
        &url,
        &token,
        &["leaderboard", "--dataset", "ae", "--baseline", "gpt4"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("judge `judge_x` against `gpt4` on ae"),
        "{stdout}"
    );
    assert!(stdout.contains("mine"), "{stdout}");
    let (code, _, stderr) = client(&url, &token, &["leaderboard", "--dataset", "ae"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--judge MODULE") && stderr.contains("--baseline SYSTEM"),
        "{stderr}"
    );
    let (code, stdout, _) = client(&url, &token, &["judges", "--dataset", "ae"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("judge_x") && stdout.contains("alpaca_eval"),
        "{stdout}"
    );
    server.kill().unwrap();
    db.finish().await;
}

#[tokio::test]
async fn pareto_prints_each_sweeps_front_and_hypervolume_as_json_and_as_a_table() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    let (mut server, url) = serve(&db);
    let dir = tempfile::tempdir().unwrap();
    // Words w of l letters: words = w, characters = w·(l + 1) − 1, both lower
    // is better. Metadata as the trainer pushes it (`--meta` keeps text text).
    for (system, w, l, meta) in [
        ("soup-0", 4, 1, vec!["sweep=soup", "lambda=0"]),
        ("soup-1", 2, 4, vec!["sweep=soup", "lambda=1"]),
        (
            "morl-0.5",
            3,
            2,
            vec!["sweep=morl", "lambda=0.5", r#"weights={"a":0.5,"b":0.5}"#],
        ),
        ("base", 5, 2, vec![]),
    ] {
        let file = dir.path().join(format!("{system}.jsonl"));
        let response = vec!["y".repeat(l); w].join(" ");
        std::fs::write(
            &file,
            serde_json::json!({"id": "q1", "prompt": "Q?", "response": response}).to_string(),
        )
        .unwrap();
        let mut args = vec!["push-generations", "--dataset", "qa", "--system", system];
        for m in &meta {
            args.extend(["--meta", *m]);
        }
        let file = file.display().to_string();
        args.push(&file);
        let (code, _, stderr) = client(&url, &token, &args);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, _, stderr) = client(
        &url,
        &token,
        &[
            "run",
            "--dataset",
            "qa",
            "--module",
            "builtin:length",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{stderr}");

    // Points: soup-0 (4, 7), soup-1 (2, 9), morl-0.5 (3, 8), base (5, 14); the
    // reference is base's. Gains: soup (1, 7), (3, 5); morl (2, 6).
    let args = [
        "pareto",
        "--dataset",
        "qa",
        "--x",
        "length/words",
        "--y",
        "length/characters",
    ];
    let (code, stdout, stderr) = client(&url, &token, &[&args[..], &["--json"]].concat());
    assert_eq!(code, 0, "{stderr}");
    let view: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        view["reference"],
        serde_json::json!([5.0, 14.0]),
        "{stdout}"
    );
    assert_eq!(
        view["directions"],
        serde_json::json!({"x": "lower", "y": "lower"})
    );
    // Every point is on the front but base.
    assert_eq!(
        view["front"],
        serde_json::json!(["morl-0.5", "soup-0", "soup-1"])
    );
    // Strips of the staircase: soup 1·7 + 2·5, morl 2·6, all 1·7 + 1·6 + 1·5.
    assert_eq!(view["hypervolume"], 18.0);
    assert_eq!(
        view["sweeps"],
        serde_json::json!([
            {"name": "morl", "points": ["morl-0.5"], "front": ["morl-0.5"], "hypervolume": 12.0},
            {"name": "soup", "points": ["soup-0", "soup-1"], "front": ["soup-0", "soup-1"], "hypervolume": 17.0},
        ])
    );
    let morl = &view["points"][1];
    assert_eq!(
        (
            &morl["system"],
            &morl["lambda"],
            &morl["metadata"]["weights"]
        ),
        (
            &serde_json::json!("morl-0.5"),
            &serde_json::json!(0.5),
            &serde_json::json!(r#"{"a":0.5,"b":0.5}"#)
        )
    );

    let (code, stdout, stderr) = client(&url, &token, &args);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        stdout.lines().next().unwrap(),
        "dataset qa: x = length/words (lower is better), y = length/characters (lower is better)"
    );
    assert_eq!(lines[1], ["system", "sweep", "λ", "x", "y", "front"]);
    assert_eq!(lines[2], ["base", "-", "-", "5", "14"], "{stdout}");
    assert_eq!(lines[3], ["morl-0.5", "morl", "0.5", "3", "8", "◆"]);
    assert_eq!(lines[5], ["soup-1", "soup", "1", "2", "9", "◆"]);
    assert!(lines[6].is_empty());
    assert_eq!(
        lines[7],
        ["sweep", "points", "on", "its", "front", "hypervolume"]
    );
    assert_eq!(lines[8], ["morl", "1", "1", "12"]);
    assert_eq!(lines[9], ["soup", "2", "2", "17"]);
    assert_eq!(lines[10], ["overall", "4", "3", "18"]);
    assert!(
        stdout.contains("reference point: x = 5, y = 14"),
        "{stdout}"
    );

    // Without axes, the first two metrics; an unknown one names the choices.
    let (code, stdout, _) = client(&url, &token, &["pareto", "--dataset", "qa"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with(
            "dataset qa: x = length/characters (lower is better), y = length/sentences"
        ),
        "{stdout}"
    );
    let (code, stdout, stderr) = client(
        &url,
        &token,
        &["pareto", "--dataset", "qa", "--x", "rouge/rougeL"],
    );
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(
        stderr.contains("404")
            && stderr.contains("`qa` has no metric `rouge/rougeL`; its metrics are `length/characters`, `length/sentences`, `length/words`"),
        "{stderr}"
    );

    server.kill().unwrap();
    server.wait().unwrap();
    db.finish().await;
}

#[tokio::test]
async fn push_scores_reads_the_provenance_beside_the_file_through_the_binary() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    let (mut server, url) = serve(&db);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let generations = write(
        "gens.jsonl",
        "{\"id\": \"q1\", \"prompt\": \"Is ice cold?\", \"response\": \"Yes.\"}\n{\"prompt\": \"Is fire cold?\", \"response\": \"No.\"}\n",
    );
    let (code, _, stderr) = client(
        &url,
        &token,
        &[
            "push-generations",
            "--dataset",
            "qa",
            "--system",
            "tuned",
            &generations,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    // What `trainer score --output scores.jsonl` writes: the scores, and
    // nothing else yet.
    let scores = write(
        "scores.jsonl",
        "{\"id\":\"q1\",\"prompt\":\"Is ice cold?\",\"score\":1.25}\n{\"prompt\":\"Is fire cold?\",\"score\":-0.5}\n",
    );
    let push = |metric: &str, file: &str| {
        client(
            &url,
            &token,
            &[
                "push-scores",
                "--dataset",
                "qa",
                "--system",
                "tuned",
                "--metric",
                metric,
                "--scores",
                file,
            ],
        )
    };
    let provenance = format!("{scores}.provenance.json");
    let form = r#"expected {"reward_model", "sha256", "command", "input", "lines"}"#;
    let (code, stdout, stderr) = push("helpful", &scores);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: {provenance}: cannot read it (No such file or directory"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("`trainer score --output FILE` writes beside FILE"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");

    std::fs::write(
        &provenance,
        r#"{"reward_model": "runs/rm/final", "command": "trainer score"}"#,
    )
    .unwrap();
    let (code, _, stderr) = push("helpful", &scores);
    assert_eq!(code, 1);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: {provenance}: missing field `sha256`; {form}, the provenance `trainer score --output FILE` writes beside FILE"
        )
    );

    let sha = "c0ffee".repeat(10) + "c0ff";
    let command = format!("trainer score --rm runs/rm --input {generations} --output {scores}");
    std::fs::write(
        &provenance,
        serde_json::json!({"reward_model": "runs/rm/final", "sha256": sha, "command": command, "input": generations, "lines": 2})
            .to_string(),
    )
    .unwrap();
    let (code, stdout, stderr) = push("helpful", &scores);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.trim_end(),
        "qa/tuned: learned reward `helpful` (reward model sha256 c0ffeec0ffee): 2 scores of 2 generations, mean 0.4 ± 1.7"
    );
    let (code, stdout, _) = client(&url, &token, &["results", "--dataset", "qa"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("helpful: a learned reward (push-scores), not a sandboxed module: reward model runs/rm/final, sha256 c0ffeec0ffee"),
        "{stdout}"
    );

    // An item the dataset lacks: refused by the service, one line naming
    // the file, the line and the field.
    let unknown = write(
        "unknown.jsonl",
        "{\"id\":\"q7\",\"prompt\":\"?\",\"score\":1}\n",
    );
    std::fs::copy(&provenance, format!("{unknown}.provenance.json")).unwrap();
    let lines_one = std::fs::read_to_string(&provenance)
        .unwrap()
        .replace("\"lines\":2", "\"lines\":1");
    std::fs::write(format!("{unknown}.provenance.json"), lines_one).unwrap();
    let (code, _, stderr) = push("helpful", &unknown);
    assert_eq!(code, 1);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: the service answered 422 invalid_scores: {unknown}: line 1: field `id`: dataset `qa` has no item with id \"q7\" (items are keyed by the canonical `id` when the generations had one, else by the prompt); nothing was stored"
        )
    );
    // A bad line is caught before anything is sent.
    let bad = write(
        "bad.jsonl",
        "{\"id\":\"q1\",\"prompt\":\"Is ice cold?\",\"score\":\"x\"}\n",
    );
    std::fs::copy(
        format!("{unknown}.provenance.json"),
        format!("{bad}.provenance.json"),
    )
    .unwrap();
    let (code, _, stderr) = push("helpful", &bad);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(&format!(
            "error: {bad}: line 1: field `score`: invalid type: string \"x\""
        )),
        "{stderr}"
    );
    let (code, _, stderr) = push("rm/helpful", &scores);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("error: --metric: metric name \"rm/helpful\" is invalid"),
        "{stderr}"
    );
    server.kill().unwrap();
    db.finish().await;
}
