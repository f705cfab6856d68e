//! `builtin:grounding` — per sentence of the response, the share of its content
//! words found among the words of the sample's passages: a span reward for
//! retrieval-grounded answers (see `reward_metrics::grounding` for the rule).
//!
//! The passages are the sample's `passages` field; a sample without one is
//! grounded against its prompt instead, so a dataset that inlines its context in
//! the prompt needs no extra column.

use reward_metrics::grounding::grounding;
use reward_sdk::{Info, Metric, Sample, Span, SpanScorer, export_span_scorer};

struct Grounding;

impl SpanScorer for Grounding {
    fn info() -> Info {
        Info::new(
            "grounding",
            env!("CARGO_PKG_VERSION"),
            "Per sentence: share of its content words that occur in the passages \
             (field `passages`, else the prompt). Reports spans; the score is their mean.",
        )
        .metric(Metric::higher_is_better(
            "grounding",
            "Content words (lower-cased, not stop words) found in the passages / content words, \
             per sentence; null when no sentence has a content word.",
        ))
    }

    fn score_spans(sample: &Sample) -> Result<Vec<Span>, String> {
        let source = sample.field("passages").unwrap_or(&sample.prompt);
        Ok(grounding(&sample.response, source)
            .into_iter()
            .map(|(sentence, value)| Span::new(sentence.end, 0, value))
            .collect())
    }
}

export_span_scorer!(Grounding);
