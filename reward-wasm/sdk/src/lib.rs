//! Guest SDK for `reward:wasm@0.1.0` modules.
//!
//! A reward module is a WebAssembly component exporting the `scorer` (or
//! `scorer-spans`) or the `judge` world of `reward-wasm/wit/reward.wit`. This crate
//! hides `wit-bindgen`: an author implements [`Scorer`] (or [`SpanScorer`], or
//! [`Judge`]) on a unit struct and invokes [`export_scorer!`] (or
//! [`export_span_scorer!`], or [`export_judge!`]) once.
//!
//! ```ignore
//! use reward_sdk::{Info, Metric, Sample, Scorer, export_scorer};
//!
//! struct Shouting;
//!
//! impl Scorer for Shouting {
//!     fn info() -> Info {
//!         Info::new("shouting", env!("CARGO_PKG_VERSION"), "Share of upper-case letters.")
//!             .metric(Metric::lower_is_better("upper_share", "Upper-case letters / letters."))
//!     }
//!
//!     fn score_sample(sample: &Sample) -> Result<Vec<Option<f64>>, String> {
//!         let letters = sample.response.chars().filter(|c| c.is_alphabetic()).count();
//!         let upper = sample.response.chars().filter(|c| c.is_uppercase()).count();
//!         // No letters: the metric does not apply to this sample.
//!         Ok(vec![(letters > 0).then(|| upper as f64 / letters as f64)])
//!     }
//! }
//!
//! export_scorer!(Shouting);
//! ```
//!
//! # Span (token-level) scorers
//!
//! A scorer that can say *where* in the response its values come from implements
//! [`SpanScorer`] instead and invokes [`export_span_scorer!`]: each [`Span`] ties a
//! value of a declared metric to the text ending at a byte offset of the response,
//! so a trainer can credit the tokens that earned it. The module also gets the
//! ordinary `score`: per sample and metric, the mean of that metric's span values
//! ([`span_means`]), so an evaluation reports what training optimizes.
//!
//! ```ignore
//! use reward_sdk::{Info, Metric, Sample, Span, SpanScorer, export_span_scorer};
//!
//! struct Commas;
//!
//! impl SpanScorer for Commas {
//!     fn info() -> Info {
//!         Info::new("commas", env!("CARGO_PKG_VERSION"), "Commas per clause.")
//!             .metric(Metric::lower_is_better("comma", "1 at each comma, 0 at each word end."))
//!     }
//!
//!     fn score_spans(sample: &Sample) -> Result<Vec<Span>, String> {
//!         // One span per comma, ending right after it (byte offsets, exclusive).
//!         Ok(sample
//!             .response
//!             .match_indices(',')
//!             .map(|(at, comma)| Span::new(at + comma.len(), 0, 1.0))
//!             .collect())
//!     }
//! }
//!
//! export_span_scorer!(Commas);
//! ```
//!
//! The host rejects a whole call when a span breaks the contract: `end` past the
//! response or inside a multi-byte character, `metric` not declared, a value that
//! is not finite, or more than (response bytes + 1) × metrics spans for a sample.
//!
//! Build it as a `cdylib` for `wasm32-unknown-unknown` with `panic = "abort"`; the
//! host accepts the resulting core module directly (it carries the world in a custom
//! section) and turns it into a component on load. `reward-wasm/modules/template` is a
//! complete crate to copy.
//!
//! # Layout
//! - [`Scorer`], [`SpanScorer`], [`Judge`]: the traits an author implements.
//! - [`Sample`], [`Info`], [`Metric`], [`Direction`], [`Verdict`], [`Span`]: the WIT
//!   types, with small constructors.
//! - [`span_means`]: how a span scorer's `score` is derived from its spans.
//! - `__bindings`: the generated glue, public only for the export macros.

// wit-bindgen's generated export glue is `unsafe extern "C"` code; it is the only
// unsafe code here and this crate writes none by hand.
#![allow(unsafe_code, reason = "generated wit-bindgen glue")]

// The export macros expand in the author's crate and name this crate by an absolute
// path; this alias makes the same path resolve inside the SDK itself.
extern crate self as reward_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

#[doc(hidden)]
pub mod __bindings {
    /// Bindings of the `scorer` world.
    pub mod scorer {
        wit_bindgen::generate!({
            path: "../wit",
            world: "scorer",
            pub_export_macro: true,
            export_macro_name: "export_scorer_world",
            default_bindings_module: "::reward_sdk::__bindings::scorer",
            runtime_path: "::reward_sdk::__wit_bindgen::rt",
        });
    }
    /// Bindings of the `scorer-packed` world, which every SDK scorer exports.
    pub mod scorer_packed {
        wit_bindgen::generate!({
            path: "../wit",
            world: "scorer-packed",
            with: { "reward:wasm/types@0.1.0": crate::__bindings::scorer::reward::wasm::types },
            pub_export_macro: true,
            export_macro_name: "export_scorer_packed_world",
            default_bindings_module: "::reward_sdk::__bindings::scorer_packed",
            runtime_path: "::reward_sdk::__wit_bindgen::rt",
        });
    }
    /// Bindings of the `scorer-spans` world, which [`export_span_scorer!`] exports.
    pub mod scorer_spans {
        wit_bindgen::generate!({
            path: "../wit",
            world: "scorer-spans",
            with: { "reward:wasm/types@0.1.0": crate::__bindings::scorer::reward::wasm::types },
            pub_export_macro: true,
            export_macro_name: "export_scorer_spans_world",
            default_bindings_module: "::reward_sdk::__bindings::scorer_spans",
            runtime_path: "::reward_sdk::__wit_bindgen::rt",
        });
    }
    /// Bindings of the `judge` world; its types are the scorer's, so authors see one
    /// `Sample` type.
    pub mod judge {
        wit_bindgen::generate!({
            path: "../wit",
            world: "judge",
            with: { "reward:wasm/types@0.1.0": crate::__bindings::scorer::reward::wasm::types },
            pub_export_macro: true,
            export_macro_name: "export_judge_world",
            default_bindings_module: "::reward_sdk::__bindings::judge",
            runtime_path: "::reward_sdk::__wit_bindgen::rt",
        });
    }
}

pub use __bindings::scorer::reward::wasm::types::{Direction, Info, Metric, Sample, Span, Verdict};

/// One row of scores: metric j of the module's [`Info::metrics`] at index j, `None`
/// where the metric does not apply to the sample.
pub type Row = Vec<Option<f64>>;

/// A reward or metric function.
///
/// Implement [`Scorer::score_sample`] for per-sample metrics, or override
/// [`Scorer::score`] when the batch as a whole matters (corpus statistics, caching).
/// An `Err` fails the whole call with that message; the host truncates long messages.
pub trait Scorer {
    /// The module's name, version, description and metrics, in column order.
    fn info() -> Info;

    /// Scores one sample: one value per declared metric.
    fn score_sample(sample: &Sample) -> Result<Row, String> {
        let _ = sample;
        Err("this scorer implements neither score nor score_sample".to_string())
    }

    /// Scores a batch: one row per sample, in order.
    fn score(batch: Vec<Sample>) -> Result<Vec<Row>, String> {
        batch.iter().map(Self::score_sample).collect()
    }
}

/// A scorer whose values belong to pieces of the response (sentences, tokens).
///
/// Implement [`SpanScorer::score_spans`] per sample, or override
/// [`SpanScorer::score_spans_batch`] when the batch as a whole matters. Export it
/// with [`export_span_scorer!`], which also exports the ordinary `score` as
/// [`SpanScorer::score`].
pub trait SpanScorer {
    /// The module's name, version, description and metrics; a [`Span::metric`] is
    /// an index into these metrics.
    fn info() -> Info;

    /// The spans of one sample, in any order. Offsets are UTF-8 byte offsets into
    /// `sample.response`: a span's value is about the text that ends at `end`.
    fn score_spans(sample: &Sample) -> Result<Vec<Span>, String>;

    /// The spans of a batch: one list per sample, in order.
    fn score_spans_batch(batch: &[Sample]) -> Result<Vec<Vec<Span>>, String> {
        batch.iter().map(Self::score_spans).collect()
    }

    /// The sequence-level rows the module's `score` returns: per sample and
    /// metric, the mean of that metric's span values ([`span_means`]).
    ///
    /// Keep the default: the contract (and the evaluator, which calls `score`)
    /// relies on these rows being the span means, and the host cannot check it.
    /// Only `reward-wasm/modules/hostile` overrides it, to misbehave.
    fn score(batch: Vec<Sample>) -> Result<Vec<Row>, String> {
        let metrics = Self::info().metrics.len();
        let spans = Self::score_spans_batch(&batch)?;
        Ok(spans.iter().map(|s| span_means(s, metrics)).collect())
    }
}

/// One row of a span scorer's `score`: for each of `metrics` metrics, the mean of
/// the values of its spans, summed in the order given and divided by their count;
/// `None` when no span has that metric. Spans naming an undeclared metric are
/// ignored here (the host rejects them in `score-spans`).
pub fn span_means(spans: &[Span], metrics: usize) -> Row {
    let mut sums = vec![(0.0f64, 0usize); metrics];
    for span in spans {
        if let Some((sum, count)) = sums.get_mut(span.metric as usize) {
            *sum += span.value;
            *count += 1;
        }
    }
    sums.into_iter()
        .map(|(sum, count)| (count > 0).then(|| sum / count as f64))
        .collect()
}

/// A pairwise judge: which of two responses to the same prompt is better.
///
/// The host asks in both presentation orders and counts a verdict only when both
/// agree, so a judge need not correct for position bias itself.
pub trait Judge {
    /// The module's name, version and description (judges declare no metrics).
    fn info() -> Info;

    /// Compares two samples that share a prompt.
    fn compare(first: Sample, second: Sample) -> Result<Verdict, String>;
}

impl Info {
    /// Module metadata with no metric yet; add them with [`Info::metric`].
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Info {
            name: name.to_string(),
            version: version.to_string(),
            description: description.to_string(),
            metrics: Vec::new(),
        }
    }

    /// Appends a metric; metrics are reported in the order they are added.
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }
}

impl Metric {
    /// A metric where larger values are better (rewards, accuracies).
    pub fn higher_is_better(name: &str, description: &str) -> Self {
        Self::new(name, description, Direction::HigherIsBetter)
    }

    /// A metric where smaller values are better (error rates, grade levels).
    pub fn lower_is_better(name: &str, description: &str) -> Self {
        Self::new(name, description, Direction::LowerIsBetter)
    }

    fn new(name: &str, description: &str, direction: Direction) -> Self {
        Metric {
            name: name.to_string(),
            description: description.to_string(),
            direction,
        }
    }
}

impl Span {
    /// The value of metric `metric` (an index into [`Info::metrics`]) for the text
    /// of the response that ends at byte offset `end` (exclusive). An offset past
    /// `u32::MAX` is kept as `u32::MAX`, which the host rejects as past the end.
    pub fn new(end: usize, metric: u32, value: f64) -> Self {
        Span {
            end: u32::try_from(end).unwrap_or(u32::MAX),
            metric,
            value,
        }
    }
}

impl Sample {
    /// The value of an extra field of the dataset item, if present.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Exports a [`Scorer`] implementation as this module's `scorer` world (more
/// exactly `scorer-packed`, which adds a faster way in for the same batch).
///
/// Invoke it once per crate, with a type implementing [`Scorer`].
#[macro_export]
macro_rules! export_scorer {
    ($ty:ty) => {
        const _: () = {
            struct __RewardSdkScorerExport;
            impl $crate::__bindings::scorer_packed::Guest for __RewardSdkScorerExport {
                fn info() -> $crate::Info {
                    <$ty as $crate::Scorer>::info()
                }
                fn score(
                    batch: ::std::vec::Vec<$crate::Sample>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Row>, ::std::string::String>
                {
                    <$ty as $crate::Scorer>::score(batch)
                }
                fn score_packed(
                    text: ::std::string::String,
                    spans: ::std::vec::Vec<u32>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Row>, ::std::string::String>
                {
                    <$ty as $crate::Scorer>::score($crate::__unpack(&text, &spans)?)
                }
            }
            $crate::__bindings::scorer_packed::export_scorer_packed_world!(
                __RewardSdkScorerExport with_types_in $crate::__bindings::scorer_packed
            );
        };
    };
}

/// Sentinel length for a missing reference in `score-packed` spans.
const NO_REFERENCE: u32 = u32::MAX;

/// Decodes a `score-packed` batch (see the WIT for the layout) into samples.
///
/// The spans come from the host, so nothing in them is trusted: a field count
/// is checked against the spans actually sent before it sizes anything (a
/// count near `u32::MAX` once asked for a 32 GiB vector, and `2 * fields`
/// wrapped in u32), and offsets are added without overflow (wasm32's usize is
/// 32 bits).
#[doc(hidden)]
pub fn __unpack(text: &str, spans: &[u32]) -> Result<Vec<Sample>, String> {
    let mut at = 0usize;
    let mut take = |len: u32| -> Result<String, String> {
        let piece = at
            .checked_add(len as usize)
            .and_then(|end| Some((end, text.get(at..end)?)));
        let Some((end, piece)) = piece else {
            return Err(format!(
                "packed batch: a span of {len} bytes at {at} is not a string of the text"
            ));
        };
        at = end;
        Ok(piece.to_string())
    };
    let mut samples = Vec::new();
    let mut rest = spans;
    while !rest.is_empty() {
        let [prompt, response, reference, fields, tail @ ..] = rest else {
            return Err("packed batch: spans end mid-sample".to_string());
        };
        let lengths = (*fields as usize)
            .checked_mul(2)
            .and_then(|n| tail.get(..n))
            .ok_or_else(|| {
                format!(
                    "packed batch: spans end mid-sample ({fields} fields, {} spans left)",
                    tail.len()
                )
            })?;
        rest = &tail[lengths.len()..];
        let prompt = take(*prompt)?;
        let response = take(*response)?;
        let reference = match *reference {
            NO_REFERENCE => None,
            len => Some(take(len)?),
        };
        let mut pairs = Vec::with_capacity(lengths.len() / 2);
        for kv in lengths.chunks_exact(2) {
            pairs.push((take(kv[0])?, take(kv[1])?));
        }
        samples.push(Sample {
            prompt,
            response,
            reference,
            fields: pairs,
        });
    }
    if at != text.len() {
        return Err(format!(
            "packed batch: {} bytes of text are not covered by spans",
            text.len() - at
        ));
    }
    Ok(samples)
}

/// Exports a [`SpanScorer`] implementation as this module's `scorer-spans` world:
/// `score-spans` from [`SpanScorer::score_spans_batch`], and `score` and
/// `score-packed` from [`SpanScorer::score`] (the span means).
///
/// Invoke it once per crate, with a type implementing [`SpanScorer`].
#[macro_export]
macro_rules! export_span_scorer {
    ($ty:ty) => {
        const _: () = {
            struct __RewardSdkSpanScorerExport;
            impl $crate::__bindings::scorer_spans::Guest for __RewardSdkSpanScorerExport {
                fn info() -> $crate::Info {
                    <$ty as $crate::SpanScorer>::info()
                }
                fn score(
                    batch: ::std::vec::Vec<$crate::Sample>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Row>, ::std::string::String>
                {
                    <$ty as $crate::SpanScorer>::score(batch)
                }
                fn score_packed(
                    text: ::std::string::String,
                    spans: ::std::vec::Vec<u32>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Row>, ::std::string::String>
                {
                    <$ty as $crate::SpanScorer>::score($crate::__unpack(&text, &spans)?)
                }
                fn score_spans(
                    batch: ::std::vec::Vec<$crate::Sample>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<::std::vec::Vec<$crate::Span>>,
                    ::std::string::String,
                > {
                    <$ty as $crate::SpanScorer>::score_spans_batch(&batch)
                }
            }
            $crate::__bindings::scorer_spans::export_scorer_spans_world!(
                __RewardSdkSpanScorerExport with_types_in $crate::__bindings::scorer_spans
            );
        };
    };
}

/// Exports a [`Judge`] implementation as this module's `judge` world.
///
/// Invoke it once per crate, with a type implementing [`Judge`].
#[macro_export]
macro_rules! export_judge {
    ($ty:ty) => {
        const _: () = {
            struct __RewardSdkJudgeExport;
            impl $crate::__bindings::judge::Guest for __RewardSdkJudgeExport {
                fn info() -> $crate::Info {
                    <$ty as $crate::Judge>::info()
                }
                fn compare(
                    first: $crate::Sample,
                    second: $crate::Sample,
                ) -> ::std::result::Result<$crate::Verdict, ::std::string::String> {
                    <$ty as $crate::Judge>::compare(first, second)
                }
            }
            $crate::__bindings::judge::export_judge_world!(
                __RewardSdkJudgeExport with_types_in $crate::__bindings::judge
            );
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_batch_decodes_in_order() {
        // prompt "Q?", response "A.", no reference, one field ("k", "v"); then a
        // sample with an empty prompt and a reference.
        let spans = [2, 2, NO_REFERENCE, 1, 1, 1, 0, 1, 3, 0];
        let samples = __unpack("Q?A.kvxyes", &spans).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(
            (samples[0].prompt.as_str(), samples[0].response.as_str()),
            ("Q?", "A.")
        );
        assert_eq!(samples[0].reference, None);
        assert_eq!(samples[0].fields, [("k".to_string(), "v".to_string())]);
        assert_eq!(samples[1].prompt, "");
        assert_eq!(samples[1].reference.as_deref(), Some("yes"));
    }

    /// Found by `fuzz/`'s packed_codec target: a field count of 0xFFFF7FFF made
    /// the decoder reserve 2 × that many u32 lengths (34 GB) before reading
    /// one, and a count of 2^31 or more wrapped `2 * fields` in u32.
    #[test]
    fn a_field_count_beyond_the_spans_is_an_error_not_an_allocation() {
        for fields in [0xFFFF_7FFF, u32::MAX, 1 << 31, (1 << 31) + 1, 2] {
            let err = __unpack("", &[0, 0, NO_REFERENCE, fields, 0, 0]).unwrap_err();
            assert!(err.contains("spans end mid-sample"), "{fields}: {err}");
        }
    }

    #[test]
    fn span_means_average_each_metric_and_leave_absent_ones_null() {
        let spans = [
            Span::new(3, 0, 1.0),
            Span::new(7, 1, 0.25),
            Span::new(9, 0, 0.5),
            // Undeclared with two metrics: ignored.
            Span::new(9, 2, 100.0),
        ];
        assert_eq!(span_means(&spans, 2), vec![Some(0.75), Some(0.25)]);
        assert_eq!(span_means(&spans, 3)[2], Some(100.0));
        assert_eq!(span_means(&[], 2), vec![None, None]);
        assert_eq!(span_means(&spans[..1], 2), vec![Some(1.0), None]);
    }

    #[test]
    fn a_span_offset_beyond_u32_is_kept_out_of_range() {
        assert_eq!(Span::new(usize::MAX, 0, 0.0).end, u32::MAX);
        assert_eq!(Span::new(12, 1, 0.5).end, 12);
    }

    #[test]
    fn spans_outside_the_text_are_errors() {
        let cases: [(&str, &[u32]); 5] = [
            ("abc", &[u32::MAX - 1, 0, NO_REFERENCE, 0]),
            ("abc", &[2, 2, NO_REFERENCE, 0]),
            ("abc", &[1, 1, NO_REFERENCE, 0]),
            // A span ending inside a multi-byte character.
            ("\u{e9}", &[1, 1, NO_REFERENCE, 0]),
            ("abc", &[1, 1, 1]),
        ];
        for (text, spans) in cases {
            assert!(__unpack(text, spans).is_err(), "{text:?} {spans:?}");
        }
        assert!(__unpack("", &[]).unwrap().is_empty());
    }
}
