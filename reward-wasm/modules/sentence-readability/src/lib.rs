//! `builtin:sentence-readability` — the Flesch–Kincaid grade of each sentence of
//! the response on its own, as spans (see `reward_metrics::readability::
//! sentence_grades`); the sequence-level score is the mean sentence grade.

use reward_metrics::readability::sentence_grades;
use reward_sdk::{Info, Metric, Sample, Span, SpanScorer, export_span_scorer};

struct SentenceReadability;

impl SpanScorer for SentenceReadability {
    fn info() -> Info {
        Info::new(
            "sentence-readability",
            env!("CARGO_PKG_VERSION"),
            "Flesch-Kincaid grade level of each sentence of the response. Reports spans; \
             the score is their mean.",
        )
        .metric(Metric::lower_is_better(
            "fk_grade",
            "Per sentence: 0.39 words + 11.8 syllables/word - 15.59; null when no sentence \
             has a word.",
        ))
    }

    fn score_spans(sample: &Sample) -> Result<Vec<Span>, String> {
        Ok(sentence_grades(&sample.response)
            .into_iter()
            .map(|(sentence, grade)| Span::new(sentence.end, 0, grade))
            .collect())
    }
}

export_span_scorer!(SentenceReadability);
