//! A template reward module: how well a response covers a list of keywords given
//! per dataset item, and whether it stays within a word budget.
//!
//! Build it with `cargo build --release --target wasm32-unknown-unknown` and try it
//! with `evaluator score --module target/wasm32-unknown-unknown/release/<name>.wasm
//! --input samples.jsonl`. Each input line may carry
//! `"fields": {"keywords": "paris, seine", "max_words": "50"}`.

use reward_sdk::{Info, Metric, Row, Sample, Scorer, export_scorer};

struct KeywordCoverage;

impl Scorer for KeywordCoverage {
    fn info() -> Info {
        // Metrics are reported in the order declared here, one value each per sample.
        Info::new(
            "keyword-coverage",
            env!("CARGO_PKG_VERSION"),
            "Share of the item's keywords that the response mentions, and a word budget.",
        )
        .metric(Metric::higher_is_better(
            "keyword_recall",
            "Keywords found (case-insensitive) / keywords listed in the `keywords` field.",
        ))
        .metric(Metric::lower_is_better(
            "over_budget",
            "Words beyond the `max_words` field, 0 when within it.",
        ))
    }

    fn score_sample(sample: &Sample) -> Result<Row, String> {
        let response = sample.response.to_lowercase();
        let recall = sample.field("keywords").and_then(|list| {
            let keywords: Vec<String> = list
                .split(',')
                .map(|k| k.trim().to_lowercase())
                .filter(|k| !k.is_empty())
                .collect();
            // An empty list makes recall meaningless for this sample: report null.
            (!keywords.is_empty()).then(|| {
                let found = keywords.iter().filter(|k| response.contains(k.as_str()));
                found.count() as f64 / keywords.len() as f64
            })
        });
        let over_budget = match sample.field("max_words") {
            Some(raw) => {
                // Returning Err fails the whole batch with this message: use it for
                // input the author cannot interpret, not for low scores.
                let budget: usize = raw
                    .trim()
                    .parse()
                    .map_err(|_| format!("max_words must be a whole number, got {raw:?}"))?;
                let words = sample.response.split_whitespace().count();
                Some(words.saturating_sub(budget) as f64)
            }
            None => None,
        };
        Ok(vec![recall, over_budget])
    }
}

export_scorer!(KeywordCoverage);
