//! [`RewardModule`]: a validated, compiled, pre-linked module, and the calls into it.
//!
//! Load-time checks (in order): the shape limits, wasm magic and version,
//! componentization of core modules, wasmtime validation and compilation (all in
//! [`crate::compiler`]); no imports at all; exports that
//! type-check against `scorer` (or `scorer-packed`, or `scorer-spans`) or `judge`;
//! a well-formed [`Info`]. Each call then instantiates from the pre-linked
//! `InstancePre` into a fresh store, so no state survives from one call to the
//! next. Every output is checked against the contract before it is returned:
//! rows in `check_rows`, spans in `check_spans`.

use std::collections::HashSet;
use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime::component::types::ComponentItem;
use wasmtime::{ResourceLimiter, Store, Trap, WasmBacktrace};

use crate::bindings::judge::JudgePre;
use crate::bindings::scorer::ScorerPre;
use crate::bindings::scorer_packed::ScorerPackedPre;
use crate::bindings::scorer_spans::ScorerSpansPre;
use crate::bindings::{Info, Sample, Span, Verdict};
use crate::config::Limits;
use crate::error::{Error, Result, SpanRule, truncate_message};
use crate::host::{Inner, validate_limits};

/// One row of a scorer's output: the value of each declared metric, in order, or
/// `None` where the metric does not apply to the sample.
pub type Row = Vec<Option<f64>>;

/// Which world a module exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `reward:wasm/scorer`: per-sample metric values.
    Scorer,
    /// `reward:wasm/judge`: pairwise verdicts.
    Judge,
}

impl Kind {
    /// `scorer` or `judge`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Scorer => "scorer",
            Kind::Judge => "judge",
        }
    }
}

/// The two verdicts of a judge on a pair asked in both presentation orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairOutcome {
    /// The verdict on `(a, b)`.
    pub a_first: Verdict,
    /// The verdict on `(b, a)`, as the judge reported it (`First` means b).
    pub b_first: Verdict,
}

impl PairOutcome {
    /// ALaRM's rule: a verdict counts only when both orders agree; anything else is
    /// a tie. `First` means a wins, `Second` means b wins.
    pub fn combined(self) -> Verdict {
        match (self.a_first, self.b_first) {
            (Verdict::First, Verdict::Second) => Verdict::First,
            (Verdict::Second, Verdict::First) => Verdict::Second,
            _ => Verdict::Tie,
        }
    }

    /// Whether the two orders agree (both prefer the same response, or both tie).
    pub fn is_position_consistent(self) -> bool {
        matches!(
            (self.a_first, self.b_first),
            (Verdict::First, Verdict::Second)
                | (Verdict::Second, Verdict::First)
                | (Verdict::Tie, Verdict::Tie)
        )
    }
}

enum Pre {
    Scorer(ScorerPre<StoreState>),
    /// A scorer that also exports `score-packed`.
    ScorerPacked(ScorerPackedPre<StoreState>),
    /// A scorer that also exports `score-packed` and `score-spans`.
    ScorerSpans(ScorerSpansPre<StoreState>),
    Judge(JudgePre<StoreState>),
}

/// A loaded module. Share it freely: calls take `&self` and never interfere.
pub struct RewardModule {
    host: Arc<Inner>,
    sha256: [u8; 32],
    info: Info,
    pre: Pre,
}

impl std::fmt::Debug for RewardModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewardModule")
            .field("name", &self.info.name)
            .field("kind", &self.kind())
            .field("sha256", &self.sha256_hex())
            .finish()
    }
}

impl RewardModule {
    pub(crate) fn compile(host: Arc<Inner>, bytes: &[u8], sha256: [u8; 32]) -> Result<Self> {
        let component = crate::compiler::compile(&host, bytes, &sha256)?;
        let ty = component.component_type();
        // The worlds' only import is the `types` interface, which carries type
        // definitions and no function: anything callable is a way out of the sandbox.
        let forbidden: Vec<String> = ty
            .imports(&host.engine)
            .filter(|(_, item)| !is_type_only(&host.engine, &item.ty))
            .map(|(name, _)| name.to_string())
            .collect();
        if !forbidden.is_empty() {
            return Err(Error::ForbiddenImport { names: forbidden });
        }
        let exports: Vec<String> = ty
            .exports(&host.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let linker = Linker::<StoreState>::new(&host.engine);
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| Error::Runtime(Box::new(e)))?;
        let mismatch = |world: &str, e: wasmtime::Error| Error::InvalidModule {
            reason: format!("exports do not match reward:wasm/{world}: {e:#}"),
        };
        let pre = if exports.iter().any(|e| e == "score-spans") {
            Pre::ScorerSpans(
                ScorerSpansPre::new(instance_pre).map_err(|e| mismatch("scorer-spans", e))?,
            )
        } else if exports.iter().any(|e| e == "score-packed") {
            Pre::ScorerPacked(
                ScorerPackedPre::new(instance_pre).map_err(|e| mismatch("scorer-packed", e))?,
            )
        } else if exports.iter().any(|e| e == "score") {
            Pre::Scorer(ScorerPre::new(instance_pre).map_err(|e| mismatch("scorer", e))?)
        } else if exports.iter().any(|e| e == "compare") {
            Pre::Judge(JudgePre::new(instance_pre).map_err(|e| mismatch("judge", e))?)
        } else {
            return Err(Error::InvalidModule {
                reason: format!(
                    "exports neither `score` (world scorer) nor `compare` (world judge); it exports {exports:?}"
                ),
            });
        };
        let mut module = RewardModule {
            host,
            sha256,
            info: Info {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                metrics: Vec::new(),
            },
            pre,
        };
        let limits = module.host.config.default_limits;
        module.info = module.run(&limits, |store, pre| match pre {
            Pre::Scorer(pre) => pre.instantiate(&mut *store)?.call_info(&mut *store),
            Pre::ScorerPacked(pre) => pre.instantiate(&mut *store)?.call_info(&mut *store),
            Pre::ScorerSpans(pre) => pre.instantiate(&mut *store)?.call_info(&mut *store),
            Pre::Judge(pre) => pre.instantiate(&mut *store)?.call_info(&mut *store),
        })?;
        validate_info(module.kind(), &module.info)?;
        Ok(module)
    }

    /// What the module declared about itself.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Scorer or judge.
    pub fn kind(&self) -> Kind {
        match self.pre {
            Pre::Scorer(_) | Pre::ScorerPacked(_) | Pre::ScorerSpans(_) => Kind::Scorer,
            Pre::Judge(_) => Kind::Judge,
        }
    }

    /// Whether the module exports `score-spans` (world `scorer-spans`), so that
    /// [`RewardModule::score_spans_with`] can be called on it.
    pub fn has_spans(&self) -> bool {
        matches!(self.pre, Pre::ScorerSpans(_))
    }

    /// SHA-256 of the bytes the module was loaded from.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// [`RewardModule::sha256`] as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// Scores a batch under the host's default limits.
    pub fn score(&self, batch: &[Sample]) -> Result<Vec<Row>> {
        self.score_with(batch, &self.host.config.default_limits)
    }

    /// Scores a batch under the given limits (they bound the whole batch). The
    /// result has one row per sample and one finite-or-null value per metric.
    pub fn score_with(&self, batch: &[Sample], limits: &Limits) -> Result<Vec<Row>> {
        self.expect_kind(Kind::Scorer)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let packed = self.host.config.use_packed;
        let result = self.run(limits, |store, pre| match pre {
            Pre::ScorerPacked(pre) if packed => {
                let (text, spans) = pack(batch);
                pre.instantiate(&mut *store)?
                    .call_score_packed(&mut *store, &text, &spans)
            }
            Pre::ScorerSpans(pre) if packed => {
                let (text, spans) = pack(batch);
                pre.instantiate(&mut *store)?
                    .call_score_packed(&mut *store, &text, &spans)
            }
            Pre::ScorerPacked(pre) => pre.instantiate(&mut *store)?.call_score(&mut *store, batch),
            Pre::ScorerSpans(pre) => pre.instantiate(&mut *store)?.call_score(&mut *store, batch),
            Pre::Scorer(pre) => pre.instantiate(&mut *store)?.call_score(&mut *store, batch),
            Pre::Judge(_) => unreachable!("kind checked above"),
        })?;
        let rows = result.map_err(|message| Error::Guest {
            message: truncate_message(&message),
        })?;
        check_rows(&rows, batch.len(), self.info.metrics.len())?;
        Ok(rows)
    }

    /// The spans of a batch under the host's default limits; see
    /// [`RewardModule::score_spans_with`].
    pub fn score_spans(&self, batch: &[Sample]) -> Result<Vec<Vec<Span>>> {
        self.score_spans_with(batch, &self.host.config.default_limits)
    }

    /// The spans of a batch (world `scorer-spans`) under the given limits, in the
    /// same sandbox as [`RewardModule::score_with`]: one list per sample, in
    /// order, each span checked: `end` at most the response's
    /// byte length and on a character boundary, `metric` a declared metric, the
    /// value finite, and at most (response bytes + 1) × metrics spans per sample.
    ///
    /// A module without the export is [`Error::NoSpans`] (see
    /// [`RewardModule::has_spans`]); a judge is [`Error::WrongKind`].
    pub fn score_spans_with(&self, batch: &[Sample], limits: &Limits) -> Result<Vec<Vec<Span>>> {
        self.expect_kind(Kind::Scorer)?;
        if !self.has_spans() {
            return Err(Error::NoSpans {
                module: self.info.name.clone(),
            });
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // The guest's whole answer lives in its capped linear memory before it is
        // lifted (and lifting is charged fuel per element), so a module answering
        // a million spans costs the host about what it cost the guest, bounded by
        // `limits.memory_bytes`; the count bound below then refuses it.
        let result = self.run(limits, |store, pre| match pre {
            Pre::ScorerSpans(pre) => pre
                .instantiate(&mut *store)?
                .call_score_spans(&mut *store, batch),
            _ => unreachable!("has_spans checked above"),
        })?;
        let spans = result.map_err(|message| Error::Guest {
            message: truncate_message(&message),
        })?;
        check_spans(&spans, batch, self.info.metrics.len())?;
        Ok(spans)
    }

    /// Asks a judge about one ordered pair under the default limits.
    pub fn compare(&self, first: &Sample, second: &Sample) -> Result<Verdict> {
        let verdicts = self.compare_batch(&[(first, second)], &self.host.config.default_limits)?;
        Ok(verdicts[0])
    }

    /// Asks a judge about both orders of each pair, in one instance under one set
    /// of limits.
    pub fn judge_pairs(
        &self,
        pairs: &[(&Sample, &Sample)],
        limits: &Limits,
    ) -> Result<Vec<PairOutcome>> {
        let ordered: Vec<(&Sample, &Sample)> =
            pairs.iter().flat_map(|&(a, b)| [(a, b), (b, a)]).collect();
        let verdicts = self.compare_batch(&ordered, limits)?;
        Ok(verdicts
            .chunks_exact(2)
            .map(|v| PairOutcome {
                a_first: v[0],
                b_first: v[1],
            })
            .collect())
    }

    /// Asks a judge about each ordered pair, in one instance under one set of
    /// limits (they bound the whole batch).
    pub fn compare_batch(
        &self,
        pairs: &[(&Sample, &Sample)],
        limits: &Limits,
    ) -> Result<Vec<Verdict>> {
        self.expect_kind(Kind::Judge)?;
        let results = self.run(limits, |store, pre| match pre {
            Pre::Judge(pre) => {
                let judge = pre.instantiate(&mut *store)?;
                let mut out = Vec::with_capacity(pairs.len());
                for (first, second) in pairs {
                    match judge.call_compare(&mut *store, first, second)? {
                        Ok(verdict) => out.push(Ok(verdict)),
                        Err(message) => {
                            out.push(Err(message));
                            break;
                        }
                    }
                }
                Ok(out)
            }
            Pre::Scorer(_) | Pre::ScorerPacked(_) | Pre::ScorerSpans(_) => {
                unreachable!("kind checked above")
            }
        })?;
        results
            .into_iter()
            .map(|r| {
                r.map_err(|message| Error::Guest {
                    message: truncate_message(&message),
                })
            })
            .collect()
    }

    fn expect_kind(&self, wanted: Kind) -> Result<()> {
        if self.kind() == wanted {
            Ok(())
        } else {
            Err(Error::WrongKind {
                module: self.info.name.clone(),
                wanted: wanted.as_str(),
                actual: self.kind().as_str(),
            })
        }
    }

    /// Runs `call` in a fresh store under `limits`, turning any failure into the
    /// typed error naming its cause.
    fn run<R>(
        &self,
        limits: &Limits,
        call: impl FnOnce(&mut Store<StoreState>, &Pre) -> wasmtime::Result<R>,
    ) -> Result<R> {
        validate_limits(&self.host.config, limits)?;
        let mut store = Store::new(
            &self.host.engine,
            StoreState {
                limiter: Limiter {
                    memory_bytes: limits.memory_bytes,
                    table_elements: limits.table_elements,
                    exceeded: None,
                },
            },
        );
        store.limiter(|state| &mut state.limiter);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| Error::Runtime(Box::new(e)))?;
        let tick = self.host.config.epoch_tick.as_nanos().max(1);
        let ticks = u64::try_from(limits.timeout.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX);
        // +1: the current tick may be about to end.
        store.set_epoch_deadline(ticks.saturating_add(1));
        call(&mut store, &self.pre).map_err(|e| classify(e, &store.data().limiter, limits))
    }
}

/// Length standing for a missing reference in `score-packed` spans.
const NO_REFERENCE: u32 = u32::MAX;

/// Encodes a batch for `score-packed` (layout in reward.wit): the strings back to
/// back, and per sample the lengths of prompt, response, reference, the field
/// count and each field's key and value.
// Public (hidden) only so that fuzz/'s packed_codec target can round-trip it.
#[doc(hidden)]
pub fn pack(batch: &[Sample]) -> (String, Vec<u32>) {
    let bytes = batch
        .iter()
        .map(|s| {
            s.prompt.len()
                + s.response.len()
                + s.reference.as_ref().map_or(0, String::len)
                + s.fields
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    let mut text = String::with_capacity(bytes);
    let mut spans = Vec::with_capacity(batch.len() * 4);
    // Lengths are u32 in the contract; a single string over 4 GiB cannot reach a
    // guest whose memory is capped far below that anyway.
    let len = |s: &str| u32::try_from(s.len()).unwrap_or(u32::MAX - 1);
    for sample in batch {
        spans.push(len(&sample.prompt));
        spans.push(len(&sample.response));
        spans.push(sample.reference.as_deref().map_or(NO_REFERENCE, len));
        spans.push(u32::try_from(sample.fields.len()).unwrap_or(u32::MAX));
        text.push_str(&sample.prompt);
        text.push_str(&sample.response);
        if let Some(reference) = &sample.reference {
            text.push_str(reference);
        }
        for (key, value) in &sample.fields {
            spans.push(len(key));
            spans.push(len(value));
            text.push_str(key);
            text.push_str(value);
        }
    }
    (text, spans)
}

/// What a store carries: only the limiter. The worlds import nothing, so there is
/// no other host state a guest could reach.
pub(crate) struct StoreState {
    limiter: Limiter,
}

/// Caps memory and tables, and remembers which cap was hit so the error can say so
/// (the trap itself only says that growth failed).
struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    exceeded: Option<Exceeded>,
}

#[derive(Clone, Copy)]
enum Exceeded {
    Memory(usize),
    Table(usize),
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.exceeded = Some(Exceeded::Memory(desired));
            // Trap now rather than let memory.grow return -1: a Rust guest would
            // abort anyway, and this keeps the cause exact.
            return Err(wasmtime::format_err!("memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.exceeded = Some(Exceeded::Table(desired));
            return Err(wasmtime::format_err!("table limit exceeded"));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

fn classify(error: wasmtime::Error, limiter: &Limiter, limits: &Limits) -> Error {
    match limiter.exceeded {
        Some(Exceeded::Memory(requested)) => {
            return Error::MemoryLimit {
                requested,
                limit: limits.memory_bytes,
            };
        }
        Some(Exceeded::Table(requested)) => {
            return Error::TableLimit {
                requested,
                limit: limits.table_elements,
            };
        }
        None => {}
    }
    let frames: Vec<String> = error
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .filter_map(|f| f.func_name())
                // `{:#}` drops the hash suffix: `core::panicking::panic_fmt`.
                .map(|name| format!("{:#}", rustc_demangle::demangle(name)))
                .collect()
        })
        .unwrap_or_default();
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Error::Timeout {
            limit: limits.timeout,
        },
        Some(Trap::OutOfFuel) => Error::OutOfFuel {
            budget: limits.fuel,
        },
        Some(Trap::StackOverflow) => Error::StackOverflow,
        Some(Trap::UnreachableCodeReached) if frames.iter().any(|f| is_panic_machinery(f)) => {
            Error::GuestPanic {
                location: frames
                    .iter()
                    .find(|f| !is_panic_machinery(f) && !is_runtime_library(f))
                    .cloned()
                    .unwrap_or_else(|| "an unnamed function".into()),
            }
        }
        Some(trap) => Error::GuestTrap {
            trap: match frames.first() {
                Some(function) => format!("{trap} in {function}"),
                None => trap.to_string(),
            },
        },
        None => Error::Runtime(Box::new(error)),
    }
}

fn is_panic_machinery(function: &str) -> bool {
    ["panic", "abort", "rust_begin_unwind"]
        .iter()
        .any(|marker| function.contains(marker))
}

fn is_runtime_library(function: &str) -> bool {
    [
        "std::", "core::", "alloc::", "__rust", "<std::", "<core::", "<alloc::",
    ]
    .iter()
    .any(|prefix| function.starts_with(prefix))
}

fn is_type_only(engine: &wasmtime::Engine, item: &ComponentItem) -> bool {
    match item {
        ComponentItem::Type(_) => true,
        ComponentItem::ComponentInstance(instance) => instance
            .exports(engine)
            .all(|(_, item)| is_type_only(engine, &item.ty)),
        _ => false,
    }
}

const MAX_NAME: usize = 128;

fn validate_info(kind: Kind, info: &Info) -> Result<()> {
    let invalid = |reason: String| {
        Err(Error::InvalidOutput {
            reason: format!("info(): {reason}"),
        })
    };
    if info.name.trim().is_empty() || info.name.len() > MAX_NAME {
        return invalid(format!(
            "module name must be 1 to {MAX_NAME} bytes, got {:?}",
            info.name
        ));
    }
    if kind == Kind::Scorer && info.metrics.is_empty() {
        return invalid("a scorer must declare at least one metric".into());
    }
    // Declared text is shown and stored (PostgreSQL text cannot hold U+0000):
    // control characters other than line breaks and tabs are refused.
    let texts = [&info.name, &info.version, &info.description]
        .into_iter()
        .chain(info.metrics.iter().flat_map(|m| [&m.name, &m.description]));
    for text in texts {
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return invalid(format!("{text:?} contains a control character"));
        }
    }
    let mut seen = HashSet::new();
    for metric in &info.metrics {
        if metric.name.trim().is_empty() || metric.name.len() > MAX_NAME {
            return invalid(format!(
                "metric names must be 1 to {MAX_NAME} bytes, got {:?}",
                metric.name
            ));
        }
        if !seen.insert(metric.name.as_str()) {
            return invalid(format!("metric `{}` is declared twice", metric.name));
        }
    }
    Ok(())
}

fn check_rows(rows: &[Row], samples: usize, metrics: usize) -> Result<()> {
    let invalid = |reason: String| Err(Error::InvalidOutput { reason });
    if rows.len() != samples {
        return invalid(format!("{} rows for {samples} samples", rows.len()));
    }
    for (i, row) in rows.iter().enumerate() {
        if row.len() != metrics {
            return invalid(format!(
                "row {i} has {} values for {metrics} metrics",
                row.len()
            ));
        }
        if let Some(j) = row.iter().position(|v| v.is_some_and(|v| !v.is_finite())) {
            return invalid(format!(
                "row {i}, metric {j} is {:?} (values must be finite or null)",
                row[j].unwrap()
            ));
        }
    }
    Ok(())
}

/// The most spans a sample may carry: a value of every metric at every byte
/// offset of its response (0 to `response_bytes` inclusive). Linear in the input,
/// so no module can make the host hold more spans than the batch has bytes times
/// metrics.
pub fn max_spans(response_bytes: usize, metrics: usize) -> usize {
    response_bytes.saturating_add(1).saturating_mul(metrics)
}

/// Checks `score-spans` output against the contract: one list per sample, at most
/// [`max_spans`] spans in each, and every span within its sample's response, on a
/// character boundary, of a declared metric, with a finite value. The first
/// violation (samples and spans in order) is the error.
pub(crate) fn check_spans(spans: &[Vec<Span>], batch: &[Sample], metrics: usize) -> Result<()> {
    if spans.len() != batch.len() {
        return Err(Error::InvalidOutput {
            reason: format!(
                "score-spans returned {} span lists for {} samples",
                spans.len(),
                batch.len()
            ),
        });
    }
    for (i, (list, sample)) in spans.iter().zip(batch).enumerate() {
        let response = sample.response.as_str();
        let limit = max_spans(response.len(), metrics);
        if list.len() > limit {
            return Err(Error::TooManySpans {
                sample: i,
                count: list.len(),
                limit,
            });
        }
        for (index, span) in list.iter().enumerate() {
            let end = span.end as usize;
            let rule = if end > response.len() {
                Some(SpanRule::PastEnd {
                    response_bytes: response.len(),
                })
            } else if !response.is_char_boundary(end) {
                Some(SpanRule::NotCharBoundary)
            } else if span.metric as usize >= metrics {
                Some(SpanRule::UndeclaredMetric { metrics })
            } else if !span.value.is_finite() {
                Some(SpanRule::NotFinite)
            } else {
                None
            };
            if let Some(rule) = rule {
                return Err(Error::InvalidSpan {
                    sample: i,
                    index,
                    span: *span,
                    rule,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(end: u32, metric: u32, value: f64) -> Span {
        Span { end, metric, value }
    }

    #[test]
    fn spans_within_the_contract_pass() {
        let batch = [Sample::new("q", "Ça va."), Sample::new("q", "")];
        // "Ça va." is 7 bytes (Ç is 2): ends 0, 2 and 7 are char boundaries.
        let spans = vec![
            vec![span(7, 0, 1.0), span(2, 1, -3.5), span(0, 0, 0.0)],
            vec![span(0, 1, 2.0)],
        ];
        check_spans(&spans, &batch, 2).unwrap();
        check_spans(&[vec![], vec![]], &batch, 2).unwrap();
    }

    #[test]
    fn each_broken_span_rule_is_named_with_its_sample_and_span() {
        let batch = [Sample::new("q", "ok"), Sample::new("q", "Ça va.")];
        let cases = [
            (span(8, 0, 1.0), SpanRule::PastEnd { response_bytes: 7 }),
            (span(1, 0, 1.0), SpanRule::NotCharBoundary),
            (span(7, 2, 1.0), SpanRule::UndeclaredMetric { metrics: 2 }),
            (span(7, 0, f64::NAN), SpanRule::NotFinite),
            (span(7, 0, f64::INFINITY), SpanRule::NotFinite),
        ];
        for (bad, expected) in cases {
            let spans = vec![vec![], vec![span(7, 0, 1.0), bad]];
            match check_spans(&spans, &batch, 2).unwrap_err() {
                Error::InvalidSpan {
                    sample: 1,
                    index: 1,
                    rule,
                    ..
                } => assert_eq!(rule, expected),
                other => panic!("{bad:?}: {other}"),
            }
        }
    }

    #[test]
    fn span_lists_must_match_the_samples_and_stay_under_the_cap() {
        let batch = [Sample::new("q", "ab")];
        let err = check_spans(&[vec![], vec![]], &batch, 1).unwrap_err();
        assert!(
            err.to_string().contains("2 span lists for 1 samples"),
            "{err}"
        );
        // "ab" with 2 metrics: offsets 0, 1, 2 × 2 metrics = 6 spans at most.
        assert_eq!(max_spans(2, 2), 6);
        let full: Vec<Span> = (0..3)
            .flat_map(|e| [span(e, 0, 1.0), span(e, 1, 1.0)])
            .collect();
        check_spans(std::slice::from_ref(&full), &batch, 2).unwrap();
        let over = [full, vec![span(0, 0, 1.0)]].concat();
        assert!(matches!(
            check_spans(&[over], &batch, 2),
            Err(Error::TooManySpans {
                sample: 0,
                count: 7,
                limit: 6
            })
        ));
    }

    #[test]
    fn both_orders_must_agree_for_a_verdict_to_count() {
        use Verdict::*;
        let outcome = |a_first, b_first| PairOutcome { a_first, b_first };
        assert_eq!(outcome(First, Second).combined(), First);
        assert_eq!(outcome(Second, First).combined(), Second);
        assert_eq!(outcome(First, First).combined(), Tie);
        assert_eq!(outcome(Second, Second).combined(), Tie);
        assert_eq!(outcome(First, Tie).combined(), Tie);
        assert!(outcome(Tie, Tie).is_position_consistent());
        assert!(!outcome(First, First).is_position_consistent());
    }

    #[test]
    fn rows_are_checked_against_samples_and_metrics() {
        assert!(check_rows(&[vec![Some(1.0), None]], 1, 2).is_ok());
        assert!(check_rows(&[vec![Some(1.0)]], 2, 1).is_err());
        assert!(check_rows(&[vec![Some(1.0)]], 1, 2).is_err());
        assert!(check_rows(&[vec![Some(f64::NAN)]], 1, 1).is_err());
        assert!(check_rows(&[vec![Some(f64::NEG_INFINITY)]], 1, 1).is_err());
    }
}
