//! A deliberately misbehaving scorer for the host's hostile-module tests. It is
//! never embedded in the evaluator. The first sample's prompt picks the misdeed, so
//! one module covers every case and any other prompt scores normally.
//!
//! It is a span scorer (world `scorer-spans`): `score` misbehaves as the prompts
//! below `score` say, `score-spans` as those in `score_spans_batch` (all named
//! `span-…`); behaving, every sample gets one span of value 1.0 at its end, whose
//! mean is the 1.0 that `score` reports.

use std::hint::black_box;

use reward_sdk::{Info, Metric, Row, Sample, Span, SpanScorer, export_span_scorer};

struct Hostile;

#[allow(
    unconditional_recursion,
    reason = "exhausting the guest's stack is this misdeed's point"
)]
fn recurse(depth: u64) -> u64 {
    // black_box keeps the optimizer from turning this into a loop.
    black_box(recurse(black_box(depth + 1))) + 1
}

impl SpanScorer for Hostile {
    fn info() -> Info {
        Info::new(
            "hostile",
            "0.0.0",
            "Misbehaves on request, for sandbox tests.",
        )
        .metric(Metric::higher_is_better("value", "1.0 when behaving."))
    }

    fn score_spans(sample: &Sample) -> Result<Vec<Span>, String> {
        Ok(vec![Span::new(sample.response.len(), 0, 1.0)])
    }

    fn score_spans_batch(batch: &[Sample]) -> Result<Vec<Vec<Span>>, String> {
        let good = || {
            batch
                .iter()
                .map(Self::score_spans)
                .collect::<Result<Vec<_>, _>>()
        };
        let Some(first) = batch.first() else {
            return good();
        };
        // Misdeeds break the first sample's spans; the others stay valid.
        let mut spans = good()?;
        let response = first.response.as_str();
        match first.prompt.as_str() {
            "span-past-end" => spans[0] = vec![Span::new(response.len() + 1, 0, 1.0)],
            "span-mid-char" => {
                // One byte into the first multi-byte character (or byte 1).
                let inside = response
                    .char_indices()
                    .find(|(_, c)| c.len_utf8() > 1)
                    .map_or(1, |(at, _)| at + 1);
                spans[0] = vec![Span::new(inside, 0, 1.0)];
            }
            "span-metric" => spans[0] = vec![Span::new(0, 1, 1.0)],
            "span-nan" => spans[0].push(Span::new(0, 0, f64::NAN)),
            "span-infinity" => spans[0].push(Span::new(0, 0, f64::NEG_INFINITY)),
            // Each span valid, far too many of them: 16 MB of guest memory.
            "span-million" => spans[0] = vec![Span::new(0, 0, 1.0); 1_000_000],
            "span-rows" => spans.push(Vec::new()),
            "span-error" => return Err("the span scorer refused this batch".to_string()),
            "span-loop" => {
                let mut counter = 0u64;
                loop {
                    counter = black_box(counter.wrapping_add(1));
                }
            }
            _ => {}
        }
        Ok(spans)
    }

    fn score(batch: Vec<Sample>) -> Result<Vec<Row>, String> {
        let good = || batch.iter().map(|_| vec![Some(1.0)]).collect::<Vec<_>>();
        let misdeed = batch.first().map(|s| s.prompt.as_str()).unwrap_or("");
        match misdeed {
            "loop" => {
                let mut counter = 0u64;
                loop {
                    counter = black_box(counter.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "recurse" => Ok(vec![vec![Some(recurse(0) as f64)]]),
            "panic" => panic!("deliberate panic in a guest"),
            "rows" => {
                let mut rows = good();
                rows.push(vec![Some(1.0)]);
                Ok(rows)
            }
            "columns" => Ok(batch.iter().map(|_| vec![Some(1.0), Some(2.0)]).collect()),
            "nan" => Ok(batch.iter().map(|_| vec![Some(f64::NAN)]).collect()),
            "infinity" => Ok(batch.iter().map(|_| vec![Some(f64::INFINITY)]).collect()),
            "error" => Err("the scorer refused this batch".to_string()),
            "huge-error" => Err("E".repeat(32 << 20)),
            // Not a misdeed: honest work that takes a while (the number after
            // "slow " is millions of steps per sample), for tests that need a job
            // to be caught in the middle.
            slow if slow.starts_with("slow ") => {
                let millions: u64 = slow[5..]
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{slow}`: expected `slow <millions>`"))?;
                let mut counter = 0u64;
                for _ in 0..batch.len() as u64 * millions * 1_000_000 {
                    counter = black_box(counter.wrapping_add(1));
                }
                Ok(good())
            }
            _ => Ok(good()),
        }
    }
}

export_span_scorer!(Hostile);
