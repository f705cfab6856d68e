//! Compares the native metrics with the independent Python reference
//! (`reward-wasm/reference/metrics_reference.py`) on the MaRio test responses.
//!
//! Skips (prints `SKIPPED: <reason>` and passes) when the data folder or
//! `python3` is absent or the script exits 3 (`rouge_score` missing), unless
//! `REWARD_REQUIRE_REFERENCE=1`, in which case those conditions fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use reward_metrics::{accuracy, diversity, length, qa, readability, rouge};
use serde_json::Value;

/// Floats must agree within this absolute tolerance.
const TOLERANCE: f64 = 1e-9;
/// At least this many samples must be compared.
const MIN_SAMPLES: usize = 2_000;
/// Mismatches printed in full when the comparison fails.
const MAX_REPORTED: usize = 50;
/// Samples taken from each of the 18 files (each has 458–552); all of them.
const LIMIT_PER_FILE: usize = 10_000;

/// Skips the test with a reason, or fails when the reference is required.
fn skip(reason: &str) {
    if std::env::var("REWARD_REQUIRE_REFERENCE").as_deref() == Ok("1") {
        panic!("reference comparison required (REWARD_REQUIRE_REFERENCE=1) but: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// Deletes the output file when the test ends, whatever the outcome.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Collected mismatches, reported together at the end.
#[derive(Default)]
struct Mismatches(Vec<String>);

impl Mismatches {
    fn float(&mut self, sample: &Value, metric: &str, expected: f64, actual: f64) {
        if (expected - actual).abs() > TOLERANCE || expected.is_nan() != actual.is_nan() {
            self.report(sample, metric, &expected.to_string(), &actual.to_string());
        }
    }

    fn int(&mut self, sample: &Value, metric: &str, expected: u64, actual: usize) {
        if u64::try_from(actual).ok() != Some(expected) {
            self.report(sample, metric, &expected.to_string(), &actual.to_string());
        }
    }

    fn report(&mut self, sample: &Value, metric: &str, expected: &str, actual: &str) {
        self.0.push(format!(
            "{source}: {metric}: expected (python) {expected}, got (rust) {actual}\n  response: {response:?}\n  reference: {reference:?}",
            source = sample["source"],
            response = sample["response"].as_str().unwrap_or_default(),
            reference = sample["reference"].as_str().unwrap_or_default(),
        ));
    }
}

fn expected_f64(sample: &Value, metric: &str) -> f64 {
    sample["expected"][metric]
        .as_f64()
        .unwrap_or_else(|| panic!("{}: {metric} is not a number", sample["source"]))
}

fn expected_u64(sample: &Value, metric: &str) -> u64 {
    sample["expected"][metric]
        .as_u64()
        .unwrap_or_else(|| panic!("{}: {metric} is not an integer", sample["source"]))
}

fn compare(sample: &Value, m: &mut Mismatches) {
    let response = sample["response"].as_str().expect("response is a string");
    let reference = sample["reference"].as_str().expect("reference is a string");

    m.float(
        sample,
        "accuracy",
        expected_f64(sample, "accuracy"),
        accuracy::accuracy(response, reference),
    );
    m.float(
        sample,
        "diversity",
        expected_f64(sample, "diversity"),
        diversity::diversity(response),
    );

    let stats = length::length(response);
    m.int(sample, "words", expected_u64(sample, "words"), stats.words);
    m.int(
        sample,
        "sentences",
        expected_u64(sample, "sentences"),
        stats.sentences,
    );
    m.int(
        sample,
        "characters",
        expected_u64(sample, "characters"),
        stats.characters,
    );

    let grade = readability::flesch_kincaid_grade(response);
    match (&sample["expected"]["fk_grade"], grade) {
        (Value::Null, None) => {}
        (Value::Number(n), Some(g)) => {
            m.float(sample, "fk_grade", n.as_f64().expect("finite"), g);
        }
        (e, g) => m.report(sample, "fk_grade", &e.to_string(), &format!("{g:?}")),
    }

    let r = rouge::rouge(response, reference);
    m.float(sample, "rouge1", expected_f64(sample, "rouge1"), r.rouge1);
    m.float(sample, "rouge2", expected_f64(sample, "rouge2"), r.rouge2);
    m.float(sample, "rougeL", expected_f64(sample, "rougeL"), r.rouge_l);

    m.float(
        sample,
        "exact_match",
        expected_f64(sample, "exact_match"),
        qa::exact_match(response, reference),
    );
    m.float(
        sample,
        "f1",
        expected_f64(sample, "f1"),
        qa::token_f1(response, reference),
    );
}

#[test]
fn native_metrics_match_the_python_reference_on_mario_test_responses() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = manifest.join("../reference/metrics_reference.py");
    let data = manifest.join("../../../shared/data/mario");

    if !data.is_dir() {
        skip(&format!("MaRio data folder {} is absent", data.display()));
        return;
    }

    let out = TempFile(std::env::temp_dir().join(format!(
        "reward-metrics-reference-{}.jsonl",
        std::process::id()
    )));
    let run = Command::new("python3")
        .arg(&script)
        .arg("--mario-dir")
        .arg(&data)
        .arg("--out")
        .arg(&out.0)
        .arg("--limit-per-file")
        .arg(LIMIT_PER_FILE.to_string())
        .output();
    let run = match run {
        Ok(run) => run,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip("python3 is not installed");
            return;
        }
        Err(e) => panic!("cannot run python3 {}: {e}", script.display()),
    };
    let stderr = String::from_utf8_lossy(&run.stderr);
    if run.status.code() == Some(3) {
        skip(&format!(
            "the reference script cannot import rouge_score: {}",
            stderr.trim()
        ));
        return;
    }
    assert!(
        run.status.success(),
        "{} failed with {}:\n{stderr}",
        script.display(),
        run.status
    );

    let text = std::fs::read_to_string(&out.0).expect("reference output is readable UTF-8");
    let mut mismatches = Mismatches::default();
    let mut compared = 0usize;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let sample: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("reference output line {}: {e}", i + 1));
        compare(&sample, &mut mismatches);
        compared += 1;
    }

    eprintln!("compared {compared} samples with the Python reference");
    assert!(
        mismatches.0.is_empty(),
        "{} mismatches over {compared} samples (first {MAX_REPORTED} shown):\n{}",
        mismatches.0.len(),
        mismatches.0[..mismatches.0.len().min(MAX_REPORTED)].join("\n")
    );
    assert!(
        compared >= MIN_SAMPLES,
        "only {compared} samples compared (need at least {MIN_SAMPLES}); reference stderr:\n{stderr}"
    );
}
