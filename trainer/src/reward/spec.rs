//! The `[[reward]]` tables of a run: which value of which source, and how it enters the
//! total.
//!
//! ```toml
//! [[reward]]
//! source = "builtin:accuracy"   # or a path to a .wasm scorer module, or rm:RUN_DIR (a
//!                               # reward model trained by `trainer rm`; metric `reward`),
//!                               # or armo:RUN_DIR (`trainer armo`'s gated score, metric
//!                               # `score`) / armo:RUN_DIR#ATTRIBUTE (one debiased
//!                               # attribute reward, metric ATTRIBUTE)
//! metric = "accuracy"           # one of the module's declared metrics (may be left out
//!                               # when it declares one)
//! weight = 1.0
//!
//! [[reward]]
//! source = "builtin:length"
//! metric = "words"              # declared lower-is-better: negated (direction = "declared")
//! weight = 0.02
//! clip_min = -40.0
//! ```
//!
//! A value goes through these steps, always in this order:
//! 1. the module's raw value (`None` when the module says "not applicable");
//! 2. direction: with `direction = "declared"` (the default) a lower-is-better metric is
//!    negated, so that every reward is higher-is-better; `"as-is"` keeps the raw sign;
//! 3. Rewarded Soups' `terms` instead of `metric`: `["0x0.4", "1-0x0.6"]` over the module's
//!    metrics by index, `i` or `i-j` with an optional `xCOEF` (default 1), combined as
//!    Σ c·v / Σ c, as the Rewarded Soups code does (each metric after step 2); `None` if
//!    any term's metric is `None`;
//! 4. affine normalisation `(v − mean) / std` (ALaRM's fixed z-scoring), when `mean` or `std`
//!    is set (defaults 0 and 1);
//! 5. clipping to `[clip_min, clip_max]` (RLLR's r = min(r_label, τ) + r_rationale is two
//!    rewards, the first with `clip_max = τ`);
//! 6. `sigmoid = true`: 1 / (1 + e^−v) (ALaRM's shaping).
//!
//! With `algorithm = "ppo"` a reward may be `level = "token"`: its source's spans (values
//! about the text ending at a byte of the response, from a module exporting
//! `score-spans`) are each transformed as above and placed on the token covering that byte
//! ([`crate::rl::placement`]); `holistic = true` marks the reward ALaRM's combinations
//! (`combine` in the RL settings) gate the others with.
//!
//! The `weight` is applied where rewards are combined (the RL loop's aggregation): there the
//! weighted values are summed, as TRL sums `reward_weights · rewards` (no division by the
//! sum of weights; only a Soups `terms` list inside one reward divides, as its seed does).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn one() -> f64 {
    1.0
}

/// Whether a lower-is-better metric is negated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirectionRule {
    /// Negate metrics the module declares lower-is-better.
    #[default]
    Declared,
    /// Use the raw value whatever the declaration.
    AsIs,
}

/// Where a reward lands in PPO's per-token rewards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// One value per sequence, on its last token.
    #[default]
    Sequence,
    /// The source's spans (a scorer exporting `score-spans`), each on the token that
    /// covers its end byte; the sequence value (logs, eval) is the spans' mean.
    Token,
}

/// One `[[reward]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardSpec {
    /// `builtin:NAME`, the path of a `.wasm` scorer module, `rm:RUN_DIR` or
    /// `armo:RUN_DIR[#ATTRIBUTE]`.
    pub source: String,
    /// The metric (by its declared name); optional when the module declares exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Rewarded Soups' metric combination, instead of `metric`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<Vec<String>>,
    /// The label in metrics and rollouts (default: the metric's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Weight in the combined reward.
    #[serde(default = "one")]
    pub weight: f64,
    /// Whether a lower-is-better metric is negated.
    #[serde(default)]
    pub direction: DirectionRule,
    /// Subtracted before dividing by `std`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Divides after subtracting `mean`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Lower clip, after normalisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_min: Option<f64>,
    /// Upper clip, after normalisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_max: Option<f64>,
    /// Apply the logistic function last.
    #[serde(default)]
    pub sigmoid: bool,
    /// `sequence` (default) or `token` (the source's spans; PPO only).
    #[serde(default, skip_serializing_if = "is_default")]
    pub level: Level,
    /// The holistic reward of `combine = "hierarchical"` (and the other ALaRM modes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub holistic: bool,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Where a reward's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A module embedded in the build (`builtin:NAME`).
    Builtin(String),
    /// A `.wasm` file.
    File(PathBuf),
    /// A reward model trained by `trainer rm` (`rm:RUN_DIR`).
    RewardModel(PathBuf),
    /// An ArmoRM run of `trainer armo` (`armo:RUN_DIR`: the gated score, metric `score`;
    /// `armo:RUN_DIR#ATTRIBUTE`: that attribute's debiased reward, metric `ATTRIBUTE`).
    Armo {
        /// The run directory.
        dir: PathBuf,
        /// The attribute after `#`, when one is named.
        attribute: Option<String>,
    },
}

impl Source {
    /// Parses `builtin:NAME`, `rm:RUN_DIR`, `armo:RUN_DIR[#ATTRIBUTE]` or a path.
    pub fn parse(s: &str) -> Self {
        if let Some(rest) = s.strip_prefix("armo:") {
            // The last `#` starts the attribute, unless what follows it is a path.
            return match rest.rsplit_once('#') {
                Some((dir, attr)) if !attr.is_empty() && !attr.contains('/') => Self::Armo {
                    dir: PathBuf::from(dir),
                    attribute: Some(attr.to_string()),
                },
                _ => Self::Armo {
                    dir: PathBuf::from(rest),
                    attribute: None,
                },
            };
        }
        if let Some(dir) = s.strip_prefix("rm:") {
            return Self::RewardModel(PathBuf::from(dir));
        }
        match s.strip_prefix("builtin:") {
            Some(name) => Self::Builtin(name.to_string()),
            None => Self::File(PathBuf::from(s)),
        }
    }
}

/// One term of a Soups combination: metric `plus` (minus metric `minus`) times `coef`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Term {
    /// The metric added.
    pub plus: usize,
    /// The metric subtracted.
    pub minus: Option<usize>,
    /// The coefficient.
    pub coef: f64,
}

/// Parses `i`, `i-j`, `ixC` or `i-jxC`.
pub fn parse_term(s: &str) -> std::result::Result<Term, String> {
    let bad = || format!("term `{s}`: expected `i`, `i-j`, `ixCOEF` or `i-jxCOEF`");
    let (metrics, coef) = match s.split_once('x') {
        Some((m, c)) => (m, c.trim().parse::<f64>().map_err(|_| bad())?),
        None => (s, 1.0),
    };
    let idx = |t: &str| t.trim().parse::<usize>().map_err(|_| bad());
    let (plus, minus) = match metrics.split_once('-') {
        Some((a, b)) => (idx(a)?, Some(idx(b)?)),
        None => (idx(metrics)?, None),
    };
    if !coef.is_finite() {
        return Err(bad());
    }
    Ok(Term { plus, minus, coef })
}

/// How a reward's value is read from a module's row and transformed: [`RewardSpec`] checked
/// against the module's declared metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// `(metric index, sign)` pairs with coefficients: a plain metric is one term.
    pub terms: Vec<Term>,
    /// `-1` for each metric that is negated (by the direction rule), else `1`.
    pub signs: Vec<f64>,
    /// `(mean, std)`.
    pub affine: Option<(f64, f64)>,
    /// `(min, max)`.
    pub clip: (Option<f64>, Option<f64>),
    /// Logistic last.
    pub sigmoid: bool,
}

impl Transform {
    /// The transform of `spec` over metrics declared as `(name, lower_is_better)`; `key`
    /// names the table in errors (`reward[1]`).
    pub fn new(spec: &RewardSpec, metrics: &[(String, bool)], key: &str) -> Result<Self> {
        let names = || {
            metrics
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let terms = match (&spec.metric, &spec.terms) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    key,
                    "give either `metric` or `terms`, not both",
                ));
            }
            (Some(m), None) => {
                let i = metrics.iter().position(|(n, _)| n == m).ok_or_else(|| {
                    Error::config(
                        format!("{key}.metric"),
                        format!(
                            "`{}` declares no metric `{m}` (it has: {})",
                            spec.source,
                            names()
                        ),
                    )
                })?;
                vec![Term {
                    plus: i,
                    minus: None,
                    coef: 1.0,
                }]
            }
            (None, Some(list)) => {
                let terms = list
                    .iter()
                    .map(|t| parse_term(t))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|m| Error::config(format!("{key}.terms"), m))?;
                if terms.is_empty() {
                    return Err(Error::config(format!("{key}.terms"), "is empty"));
                }
                for t in &terms {
                    for i in std::iter::once(t.plus).chain(t.minus) {
                        if i >= metrics.len() {
                            return Err(Error::config(
                                format!("{key}.terms"),
                                format!(
                                    "metric index {i} is out of range: `{}` has {} ({})",
                                    spec.source,
                                    metrics.len(),
                                    names()
                                ),
                            ));
                        }
                    }
                }
                let total: f64 = terms.iter().map(|t| t.coef).sum();
                if total == 0.0 {
                    return Err(Error::config(
                        format!("{key}.terms"),
                        "the coefficients sum to 0",
                    ));
                }
                terms
            }
            (None, None) if metrics.len() == 1 => vec![Term {
                plus: 0,
                minus: None,
                coef: 1.0,
            }],
            (None, None) => {
                return Err(Error::config(
                    format!("{key}.metric"),
                    format!(
                        "`{}` declares several metrics; name one of: {}",
                        spec.source,
                        names()
                    ),
                ));
            }
        };
        if let Some(s) = spec.std
            && !(s.is_finite() && s > 0.0)
        {
            return Err(Error::config(
                format!("{key}.std"),
                "must be a positive number",
            ));
        }
        if let (Some(lo), Some(hi)) = (spec.clip_min, spec.clip_max)
            && lo > hi
        {
            return Err(Error::config(
                format!("{key}.clip_min"),
                "is above clip_max",
            ));
        }
        if !spec.weight.is_finite() {
            return Err(Error::config(format!("{key}.weight"), "must be a number"));
        }
        let signs = metrics
            .iter()
            .map(|(_, lower)| {
                if *lower && spec.direction == DirectionRule::Declared {
                    -1.0
                } else {
                    1.0
                }
            })
            .collect();
        let affine = (spec.mean.is_some() || spec.std.is_some())
            .then(|| (spec.mean.unwrap_or(0.0), spec.std.unwrap_or(1.0)));
        Ok(Self {
            terms,
            signs,
            affine,
            clip: (spec.clip_min, spec.clip_max),
            sigmoid: spec.sigmoid,
        })
    }

    /// The transformed value of one module row (`None` propagates).
    pub fn apply(&self, row: &[Option<f64>]) -> Option<f64> {
        let value = |i: usize| row.get(i).copied().flatten().map(|v| v * self.signs[i]);
        let mut v = if let [t] = self.terms.as_slice()
            && t.minus.is_none()
        {
            value(t.plus)?
        } else {
            let mut sum = 0.0;
            for t in &self.terms {
                let minus = match t.minus {
                    Some(j) => value(j)?,
                    None => 0.0,
                };
                sum += t.coef * (value(t.plus)? - minus);
            }
            sum / self.terms.iter().map(|t| t.coef).sum::<f64>()
        };
        if let Some((mean, std)) = self.affine {
            v = (v - mean) / std;
        }
        if let Some(lo) = self.clip.0 {
            v = v.max(lo);
        }
        if let Some(hi) = self.clip.1 {
            v = v.min(hi);
        }
        if self.sigmoid {
            v = 1.0 / (1.0 + (-v).exp());
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> RewardSpec {
        toml::from_str(&format!("source = \"builtin:x\"\n{toml_text}")).expect("spec")
    }

    fn metrics() -> Vec<(String, bool)> {
        vec![("a".into(), false), ("b".into(), true)]
    }

    #[test]
    fn steps_run_in_the_documented_order() {
        // b is lower-is-better: negated, then z-scored, clipped, squashed.
        let t = Transform::new(
            &spec("metric = \"b\"\nmean = 1.0\nstd = 2.0\nclip_max = -1.0\nsigmoid = true"),
            &metrics(),
            "reward[0]",
        )
        .expect("t");
        let z: f64 = (-3.0 - 1.0) / 2.0; // −2, under the clip
        assert_eq!(
            t.apply(&[Some(0.0), Some(3.0)]),
            Some(1.0 / (1.0 + (-z).exp()))
        );
        let t =
            Transform::new(&spec("metric = \"b\"\nclip_max = -1.0"), &metrics(), "r").expect("t");
        assert_eq!(
            t.apply(&[None, Some(0.5)]),
            Some(-1.0),
            "−0.5 clipped to −1"
        );
        assert_eq!(t.apply(&[Some(1.0), None]), None, "none propagates");
        let t = Transform::new(
            &spec("metric = \"b\"\ndirection = \"as-is\""),
            &metrics(),
            "r",
        )
        .expect("t");
        assert_eq!(t.apply(&[None, Some(0.5)]), Some(0.5));
    }

    #[test]
    fn soups_terms_divide_by_the_sum_of_coefficients() {
        // '0x0.4' '1-0x0.6' with raw directions: (0.4·a + 0.6·(b − a)) / 1.0.
        let t = Transform::new(
            &spec("terms = [\"0x0.4\", \"1-0x0.6\"]\ndirection = \"as-is\""),
            &metrics(),
            "r",
        )
        .expect("t");
        let (a, b) = (2.0, 5.0);
        let want = (0.4 * a + 0.6 * (b - a)) / (0.4 + 0.6);
        assert!((t.apply(&[Some(a), Some(b)]).expect("v") - want).abs() < 1e-12);
        let t = Transform::new(&spec("terms = [\"0x2\", \"0\"]"), &metrics(), "r").expect("t");
        assert_eq!(t.apply(&[Some(3.0), None]), Some(3.0), "(2·3 + 3) / 3");
        assert_eq!(
            parse_term("1-0x0.6"),
            Ok(Term {
                plus: 1,
                minus: Some(0),
                coef: 0.6
            })
        );
        assert!(parse_term("a-b").is_err());
    }

    #[test]
    fn armo_sources_name_a_run_and_optionally_an_attribute() {
        assert_eq!(
            Source::parse("armo:runs/a#helpfulness"),
            Source::Armo {
                dir: PathBuf::from("runs/a"),
                attribute: Some("helpfulness".into())
            }
        );
        assert_eq!(
            Source::parse("armo:runs/a"),
            Source::Armo {
                dir: PathBuf::from("runs/a"),
                attribute: None
            }
        );
        assert_eq!(
            Source::parse("armo:x#y/run"),
            Source::Armo {
                dir: PathBuf::from("x#y/run"),
                attribute: None
            },
            "a `#` inside the path is part of it"
        );
    }

    #[test]
    fn mistakes_name_the_table_and_the_metrics() {
        let e = Transform::new(&spec("metric = \"c\""), &metrics(), "reward[2]").expect_err("c");
        assert!(
            e.to_string().contains("reward[2].metric") && e.to_string().contains("a, b"),
            "{e}"
        );
        let e = Transform::new(&spec(""), &metrics(), "reward[0]").expect_err("ambiguous");
        assert!(e.to_string().contains("several metrics"), "{e}");
        let e = Transform::new(&spec("terms = [\"5\"]"), &metrics(), "r").expect_err("range");
        assert!(e.to_string().contains("out of range"), "{e}");
        let e =
            Transform::new(&spec("metric = \"a\"\nstd = 0.0"), &metrics(), "r").expect_err("std");
        assert!(e.to_string().contains("r.std"), "{e}");
        let t = Transform::new(&spec(""), &metrics()[..1], "r").expect("one metric");
        assert_eq!(t.apply(&[Some(4.0)]), Some(4.0));
    }
}
