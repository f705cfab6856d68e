//! Rewards for training: sources of per-sample values, and how each enters the total.
//!
//! - [`spec`]: the `[[reward]]` tables ([`RewardSpec`]) and the documented transform of a
//!   value ([`spec::Transform`]: direction, Soups terms, normalisation, clipping, sigmoid).
//! - [`RewardSource`]: anything that scores a batch of samples with one or more declared
//!   metrics. [`ModuleSource`] runs a WebAssembly scorer in the reward host's sandbox, the
//!   same module file (and the same host) the evaluator runs, so training and evaluation
//!   see bit-identical values; learned reward models (`rm:RUN_DIR`,
//!   [`crate::rm::RewardModel`]) implement the same trait.
//! - [`Rewards`]: the run's rewards, each source loaded and called once per batch however
//!   many `[[reward]]` tables read it.

pub mod spec;

use std::sync::Arc;

use reward_host::{Direction, Host, HostConfig, Limits, RewardModule};
pub use reward_host::{Sample, Span};
pub use spec::RewardSpec;
use spec::{Source, Transform};

use crate::error::{Error, Result};

/// A scorer of samples: declared metrics, and one row of values (`None`: not applicable)
/// per sample.
pub trait RewardSource: Send + Sync {
    /// The declared metrics: name and whether lower is better.
    fn metrics(&self) -> Vec<(String, bool)>;
    /// One row per sample, one value per declared metric.
    fn score(&self, batch: &[Sample]) -> std::result::Result<Vec<Vec<Option<f64>>>, String>;
    /// Whether [`Self::score_spans`] answers (a module exporting `score-spans`).
    fn has_spans(&self) -> bool {
        false
    }
    /// Per sample, the spans `(end byte in the response, metric index, value)`.
    fn score_spans(&self, batch: &[Sample]) -> std::result::Result<Vec<Vec<Span>>, String> {
        let _ = batch;
        Err("this source reports no spans".into())
    }
}

/// The per-metric mean of each sample's spans (`None` where a metric has none): the value
/// the SDK's `score` of a span scorer returns, so logs and evaluations agree with training.
pub fn span_means(spans: &[Vec<Span>], metrics: usize) -> Vec<Vec<Option<f64>>> {
    spans
        .iter()
        .map(|row| {
            let mut sum = vec![(0.0, 0usize); metrics];
            for s in row {
                if let Some(e) = sum.get_mut(s.metric as usize) {
                    e.0 += s.value;
                    e.1 += 1;
                }
            }
            sum.into_iter()
                .map(|(s, n)| (n > 0).then(|| s / n as f64))
                .collect()
        })
        .collect()
}

/// The `[[reward]]` tables of a TOML file given with `flag` (other keys are ignored, so an
/// RL config serves too); a file without one is an error naming the file.
pub fn read_tables(flag: &str, path: &std::path::Path) -> Result<Vec<RewardSpec>> {
    #[derive(serde::Deserialize)]
    struct Tables {
        #[serde(default)]
        reward: Vec<RewardSpec>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let t: Tables = toml::from_str(&text)
        .map_err(|e| Error::InvalidArgument(format!("flag {flag}: {}: {e}", path.display())))?;
    if t.reward.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "flag {flag}: {}: no [[reward]] table",
            path.display()
        )));
    }
    Ok(t.reward)
}

/// A WebAssembly scorer module run by the reward host, under per-call limits.
pub struct ModuleSource {
    module: Arc<RewardModule>,
    limits: Limits,
}

impl ModuleSource {
    /// Loads `builtin:NAME` or a `.wasm` file with `host`.
    pub fn load(host: &Host, source: &str, limits: Limits) -> Result<Self> {
        let bytes: std::borrow::Cow<'static, [u8]> = match Source::parse(source) {
            Source::Builtin(name) => reward_builtins::builtin(&name)
                .map(|m| m.wasm.into())
                .ok_or_else(|| {
                    let names: Vec<&str> = reward_builtins::builtins().map(|m| m.name).collect();
                    Error::config(
                        "reward.source",
                        format!(
                            "no built-in module `{name}` (built-ins: {})",
                            names.join(", ")
                        ),
                    )
                })?,
            Source::File(path) => std::fs::read(&path)
                .map_err(|e| Error::config("reward.source", format!("{}: {e}", path.display())))?
                .into(),
            Source::RewardModel(dir) => {
                return Err(Error::config(
                    "reward.source",
                    format!("rm:{} is a reward model, not a module", dir.display()),
                ));
            }
            Source::Armo { .. } => {
                return Err(Error::config(
                    "reward.source",
                    format!("{source} is an ArmoRM run, not a module"),
                ));
            }
        };
        let module = host
            .load(&bytes)
            .map_err(|e| Error::config("reward.source", format!("{source}: {e}")))?;
        if module.kind() != reward_host::Kind::Scorer {
            return Err(Error::config(
                "reward.source",
                format!("{source} is a judge, not a scorer: a reward needs a value per sample"),
            ));
        }
        Ok(Self { module, limits })
    }
}

impl RewardSource for ModuleSource {
    fn metrics(&self) -> Vec<(String, bool)> {
        self.module
            .info()
            .metrics
            .iter()
            .map(|m| (m.name.clone(), m.direction == Direction::LowerIsBetter))
            .collect()
    }

    fn score(&self, batch: &[Sample]) -> std::result::Result<Vec<Vec<Option<f64>>>, String> {
        self.module
            .score_with(batch, &self.limits)
            .map_err(|e| e.to_string())
    }

    fn has_spans(&self) -> bool {
        self.module.has_spans()
    }

    fn score_spans(&self, batch: &[Sample]) -> std::result::Result<Vec<Vec<Span>>, String> {
        self.module
            .score_spans_with(batch, &self.limits)
            .map_err(|e| e.to_string())
    }
}

/// One `[[reward]]` of a run, resolved against its source.
struct Entry {
    name: String,
    source: usize,
    transform: Transform,
    raw: Transform,
    weight: f64,
    level: spec::Level,
    holistic: bool,
}

/// The values of a batch: per sample, per reward.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scored {
    /// The module's value (a Soups combination before any transform).
    pub raw: Vec<Vec<Option<f64>>>,
    /// After the reward's transform.
    pub value: Vec<Vec<Option<f64>>>,
    /// Per sample, per reward: a token-level reward's spans as `(end byte, value after the
    /// transform)`, in the module's order; empty for sequence-level rewards.
    pub spans: Vec<Vec<Vec<(usize, f64)>>>,
}

impl Scored {
    /// `n` samples with no value for any of `rewards` rewards.
    pub fn none(n: usize, rewards: usize) -> Self {
        Self {
            raw: vec![vec![None; rewards]; n],
            value: vec![vec![None; rewards]; n],
            spans: vec![vec![Vec::new(); rewards]; n],
        }
    }
}

/// A run's rewards.
pub struct Rewards {
    sources: Vec<(String, Box<dyn RewardSource>)>,
    entries: Vec<Entry>,
}

impl Rewards {
    /// Loads every source of `specs` in a fresh sandbox host with `limits` per call; reward
    /// models (`rm:DIR`) on the CPU.
    pub fn load(specs: &[RewardSpec], limits: Limits) -> Result<Self> {
        Self::load_on(specs, limits, &candle_core::Device::Cpu)
    }

    /// [`Self::load`] with reward models on `device` (the policy's).
    pub fn load_on(
        specs: &[RewardSpec],
        limits: Limits,
        device: &candle_core::Device,
    ) -> Result<Self> {
        if specs.is_empty() {
            return Err(Error::config(
                "reward",
                "no [[reward]] table: name at least one source (builtin:NAME, a .wasm file or rm:RUN_DIR)",
            ));
        }
        let host = Host::new(HostConfig::default())
            .map_err(|e| Error::InvalidArgument(format!("reward host: {e}")))?;
        let mut sources: Vec<(String, Box<dyn RewardSource>)> = Vec::new();
        for spec in specs {
            if !sources.iter().any(|(s, _)| *s == spec.source) {
                let source: Box<dyn RewardSource> = match Source::parse(&spec.source) {
                    Source::RewardModel(dir) => {
                        Box::new(crate::rm::RewardModel::load(&dir, device)?)
                    }
                    Source::Armo { dir, attribute } => Box::new(crate::armo::ArmoSource::load(
                        &dir,
                        attribute.as_deref(),
                        device,
                    )?),
                    _ => Box::new(ModuleSource::load(&host, &spec.source, limits)?),
                };
                sources.push((spec.source.clone(), source));
            }
        }
        Self::with_sources(specs, sources)
    }

    /// The rewards of `specs` over sources already loaded (keyed by their `source` string).
    pub fn with_sources(
        specs: &[RewardSpec],
        sources: Vec<(String, Box<dyn RewardSource>)>,
    ) -> Result<Self> {
        let mut entries: Vec<Entry> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let key = format!("reward[{i}]");
            let source = sources
                .iter()
                .position(|(s, _)| *s == spec.source)
                .ok_or_else(|| Error::config(format!("{key}.source"), "not loaded"))?;
            let metrics = sources[source].1.metrics();
            let transform = Transform::new(spec, &metrics, &key)?;
            let as_is = RewardSpec {
                direction: spec::DirectionRule::AsIs,
                mean: None,
                std: None,
                clip_min: None,
                clip_max: None,
                sigmoid: false,
                ..spec.clone()
            };
            let raw = Transform::new(&as_is, &metrics, &key)?;
            let name = spec
                .name
                .clone()
                .unwrap_or_else(|| match (&spec.metric, &spec.terms) {
                    (Some(m), _) => m.clone(),
                    (None, Some(t)) => format!("{}[{}]", spec.source, t.join(" ")),
                    (None, None) => metrics[0].0.clone(),
                });
            if entries.iter().any(|e| e.name == name) {
                return Err(Error::config(
                    format!("{key}.name"),
                    format!("two rewards are called `{name}`: give one a `name`"),
                ));
            }
            if spec.level == spec::Level::Token {
                if !sources[source].1.has_spans() {
                    return Err(Error::config(
                        format!("{key}.level"),
                        format!(
                            "`{}` reports no spans (it does not export score-spans): use \
                             level = \"sequence\", or a span scorer such as builtin:grounding",
                            spec.source
                        ),
                    ));
                }
                if transform.terms.len() != 1 || transform.terms[0].minus.is_some() {
                    return Err(Error::config(
                        format!("{key}.terms"),
                        "a token-level reward reads one metric: use `metric`",
                    ));
                }
            }
            entries.push(Entry {
                name,
                source,
                transform,
                raw,
                weight: spec.weight,
                level: spec.level,
                holistic: spec.holistic,
            });
        }
        Ok(Self { sources, entries })
    }

    /// The rewards' names, in `[[reward]]` order.
    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    /// The rewards' weights, in `[[reward]]` order.
    pub fn weights(&self) -> Vec<f64> {
        self.entries.iter().map(|e| e.weight).collect()
    }

    /// Per reward, whether it is token-level.
    pub fn token_level(&self) -> Vec<bool> {
        self.entries
            .iter()
            .map(|e| e.level == spec::Level::Token)
            .collect()
    }

    /// The index of the holistic reward, if one is marked.
    pub fn holistic(&self) -> Option<usize> {
        self.entries.iter().position(|e| e.holistic)
    }

    /// Scores `batch` with every source once; a source's fault is [`Error::Reward`] naming
    /// the source and the rewards that read it. A source read by a token-level reward is
    /// asked for its spans, and its row is their per-metric mean ([`span_means`]).
    pub fn score(&self, batch: &[Sample]) -> Result<Scored> {
        let mut rows = Vec::with_capacity(self.sources.len());
        let mut source_spans: Vec<Option<Vec<Vec<Span>>>> = Vec::with_capacity(self.sources.len());
        for (i, (name, source)) in self.sources.iter().enumerate() {
            let fault = |message| Error::Reward {
                source_name: name.clone(),
                rewards: self
                    .entries
                    .iter()
                    .filter(|e| e.source == i)
                    .map(|e| e.name.clone())
                    .collect(),
                message,
            };
            let wants_spans = self
                .entries
                .iter()
                .any(|e| e.source == i && e.level == spec::Level::Token);
            if wants_spans {
                let spans = source.score_spans(batch).map_err(fault)?;
                rows.push(span_means(&spans, source.metrics().len()));
                source_spans.push(Some(spans));
            } else {
                rows.push(source.score(batch).map_err(fault)?);
                source_spans.push(None);
            }
        }
        let spans = (0..batch.len())
            .map(|s| {
                self.entries
                    .iter()
                    .map(|e| match (&source_spans[e.source], e.level) {
                        (Some(all), spec::Level::Token) => {
                            let metric = e.transform.terms[0].plus;
                            let width = self.sources[e.source].1.metrics().len();
                            all[s]
                                .iter()
                                .filter(|sp| sp.metric as usize == metric)
                                .filter_map(|sp| {
                                    let mut row = vec![None; width];
                                    row[metric] = Some(sp.value);
                                    e.transform.apply(&row).map(|v| (sp.end as usize, v))
                                })
                                .collect()
                        }
                        _ => Vec::new(),
                    })
                    .collect()
            })
            .collect();
        let per_sample = |f: fn(&Transform, &[Option<f64>]) -> Option<f64>, raw: bool| {
            (0..batch.len())
                .map(|s| {
                    self.entries
                        .iter()
                        .map(|e| f(if raw { &e.raw } else { &e.transform }, &rows[e.source][s]))
                        .collect()
                })
                .collect()
        };
        Ok(Scored {
            raw: per_sample(Transform::apply, true),
            value: per_sample(Transform::apply, false),
            spans,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(text: &str) -> Vec<RewardSpec> {
        #[derive(serde::Deserialize)]
        struct Doc {
            reward: Vec<RewardSpec>,
        }
        toml::from_str::<Doc>(text).expect("specs").reward
    }

    #[test]
    fn builtin_modules_score_in_the_sandbox_and_lower_is_better_is_negated() {
        let rewards = Rewards::load(
            &specs(
                "[[reward]]\nsource = \"builtin:accuracy\"\n\
                 [[reward]]\nsource = \"builtin:length\"\nmetric = \"words\"\nweight = 0.1\n\
                 [[reward]]\nsource = \"builtin:length\"\nmetric = \"sentences\"\n",
            ),
            Limits::default(),
        )
        .expect("load");
        assert_eq!(rewards.names(), ["accuracy", "words", "sentences"]);
        assert_eq!(rewards.weights(), [1.0, 0.1, 1.0]);
        let batch = [
            Sample::new("Q?", "It is. So the answer is yes.").with_reference("yes"),
            Sample::new("Q?", "No idea"),
        ];
        let s = rewards.score(&batch).expect("score");
        // The same values the native metric functions give.
        let words = |t: &str| reward_metrics::length::length(t).words as f64;
        assert_eq!(
            s.raw[0],
            [Some(1.0), Some(words(&batch[0].response)), Some(2.0)]
        );
        assert_eq!(s.value[0][1], Some(-words(&batch[0].response)));
        assert_eq!(s.raw[1][0], None, "no reference: not applicable");
    }

    #[test]
    fn unknown_sources_and_metrics_are_named() {
        let e = Rewards::load(
            &specs("[[reward]]\nsource = \"builtin:nope\"\n"),
            Limits::default(),
        )
        .err()
        .expect("unknown");
        assert!(e.to_string().contains("no built-in module `nope`"), "{e}");
        let e = Rewards::load(
            &specs("[[reward]]\nsource = \"builtin:length\"\n"),
            Limits::default(),
        )
        .err()
        .expect("ambiguous");
        assert!(
            e.to_string().contains("reward[0].metric") && e.to_string().contains("words"),
            "{e}"
        );
        let e = Rewards::load(
            &specs("[[reward]]\nsource = \"/no/such.wasm\"\n"),
            Limits::default(),
        )
        .err()
        .expect("missing file");
        assert!(e.to_string().contains("/no/such.wasm"), "{e}");
        assert!(Rewards::load(&[], Limits::default()).is_err());
    }
}
