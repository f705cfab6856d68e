//! `builtin:rouge` — ROUGE-1, ROUGE-2 and ROUGE-L F1 against the reference (see
//! `reward_metrics::rouge` for the tokenization).

use reward_metrics::rouge::rouge;
use reward_sdk::{Info, Metric, Row, Sample, Scorer, export_scorer};

struct Rouge;

impl Scorer for Rouge {
    fn info() -> Info {
        Info::new(
            "rouge",
            env!("CARGO_PKG_VERSION"),
            "ROUGE F1 of the response against the reference (rouge-score tokenization, no stemming).",
        )
        .metric(Metric::higher_is_better("rouge1", "Unigram F1."))
        .metric(Metric::higher_is_better("rouge2", "Bigram F1."))
        .metric(Metric::higher_is_better("rougeL", "Longest-common-subsequence F1."))
    }

    fn score_sample(sample: &Sample) -> Result<Row, String> {
        Ok(match sample.reference.as_deref() {
            Some(reference) => {
                let scores = rouge(&sample.response, reference);
                vec![
                    Some(scores.rouge1),
                    Some(scores.rouge2),
                    Some(scores.rouge_l),
                ]
            }
            None => vec![None, None, None],
        })
    }
}

export_scorer!(Rouge);
