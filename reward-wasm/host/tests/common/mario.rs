//! Reads the MaRio held-out test responses (`../shared/data/mario`) as samples;
//! shared by the tests and the benchmark through `#[path]`.

use std::path::{Path, PathBuf};

use reward_host::Sample;
use serde_json::Value;

/// `../shared/data/mario` from the repository root.
pub(crate) fn mario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mario")
}

/// The held-out test responses of the six MaRio systems of one dataset, as samples
/// (see `../shared/data/README.md` for the two file layouts).
pub(crate) fn mario_test_samples(dataset: &str) -> Vec<Sample> {
    let dir = mario_dir().join(dataset);
    let mut samples = Vec::new();
    for file in [
        "gpt3/test_gpt3_responses.jsonl",
        "flant5/test_flant5large_responses.jsonl",
        "flant5/test_flant5xl_responses.jsonl",
        "flant5/test_flant5xxl_responses.jsonl",
    ] {
        let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
            continue;
        };
        let object: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
        let mut items: Vec<(usize, Value)> = object
            .into_iter()
            .map(|(k, v)| (k.parse().unwrap(), v))
            .collect();
        items.sort_by_key(|(k, _)| *k);
        for (_, item) in items {
            let response = format!(
                "{} So the answer is {}.",
                item["predicted_rationale"].as_str().unwrap(),
                item["predicted_label"].as_str().unwrap()
            );
            samples.push(
                Sample::new(item["question"].as_str().unwrap(), response)
                    .with_reference(item["gold_label"].as_str().unwrap()),
            );
        }
    }
    for size in ["7b", "65b"] {
        let Ok(text) = std::fs::read_to_string(
            dir.join(format!("llama/llama-{size}_{dataset}_test_output.jsonl")),
        ) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let item: Value = serde_json::from_str(line).unwrap();
            samples.push(
                Sample::new(
                    item["question"].as_str().unwrap(),
                    item["trunc_output"].as_str().unwrap(),
                )
                .with_reference(item["answer"].as_str().unwrap()),
            );
        }
    }
    samples
}
