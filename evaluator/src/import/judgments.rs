//! Judgment files made outside the service, parsed into rows at the edge.
//!
//! Two formats:
//! - `canonical`: JSON Lines of `{"id", "a", "b", "preference" | "verdict",
//!   "order"?}`. `id` names the item as `push-generations` keyed it (the
//!   canonical `id`, or the prompt, which is keyed by
//!   [`prompt_key`](super::prompt_key)); `a` and `b` are systems;
//!   `preference` is P(b's output is preferred) in [0, 1] (`null`: listed
//!   without a verdict), `verdict` one of `"a"`, `"b"`, `"tie"`; `order` is
//!   `"ab"` or `"ba"`, the order the judge saw them in.
//! - `alpaca_eval`: AlpacaEval's `annotations.json`, an array of
//!   `{"instruction", "generator_1", "generator_2", "preference", ...}` with
//!   the preference in [1, 2] (2 − P(the judge names generator_1)): stored as
//!   preference − 1, the probability that generator_2 wins. As upstream
//!   (`metrics/helpers.py`), a preference of 0 is the old spelling of a draw
//!   and `null` is an item without a verdict; any other value outside [1, 2]
//!   is refused here (upstream drops it silently, which hides a broken file).
//!   `--system` and `--baseline` rename `generator_2` and `generator_1`
//!   (upstream's null model calls itself `example`). A row judging a system
//!   against itself (upstream's baseline file) says nothing and is skipped;
//!   the count is reported. The price and time per example are kept.
//!
//! Errors name the line and the field; nothing is stored from a file that has
//! one. Whether the systems and items exist is checked against the dataset
//! when the rows are stored (`db::judgments`).

use std::collections::HashMap;

use serde::Deserialize;

use super::{ImportError, entries, from_line, from_value, prompt_key};

/// The judgment file formats `push-judgments` accepts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JudgmentFormat {
    /// JSON Lines of `{"id", "a", "b", "preference" | "verdict", "order"?}`.
    #[default]
    Canonical,
    /// AlpacaEval's `annotations.json`.
    #[value(name = "alpaca_eval")]
    #[serde(rename = "alpaca_eval")]
    AlpacaEval,
}

impl JudgmentFormat {
    /// The name used on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JudgmentFormat::Canonical => "canonical",
            JudgmentFormat::AlpacaEval => "alpaca_eval",
        }
    }
}

/// One parsed judgment.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgmentRow {
    /// The item as the file names it: tried as a stored key first, then as a
    /// prompt through [`prompt_key`].
    pub item: String,
    /// The first system.
    pub a: String,
    /// The second system.
    pub b: String,
    /// P(b's output is preferred) in [0, 1]; `None` without a verdict.
    pub preference: Option<f64>,
    /// Whether the judge saw a's output first, when the file says.
    pub a_first: Option<bool>,
    /// Numbers the file gives beside the verdict.
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// `line 7` or `entry 3 (line 40)`.
    pub origin: String,
}

/// A parsed file: its rows and what it says about itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JudgmentFile {
    /// The judgments, in file order.
    pub rows: Vec<JudgmentRow>,
    /// Rows skipped because they judge a system against itself.
    pub self_judgments: u64,
    /// The annotator the file names (AlpacaEval's `annotator`), if one.
    pub annotator: Option<String>,
}

/// Names that replace the file's own (AlpacaEval's files name the system
/// by its generator, which need not be the system's name here).
#[derive(Debug, Clone, Default)]
pub struct Renames {
    /// Replaces `generator_2`.
    pub system: Option<String>,
    /// Replaces `generator_1`.
    pub baseline: Option<String>,
}

/// Parses a whole file; the first problem stops it. The same pair judged twice
/// on one item is an error.
pub fn parse(
    format: JudgmentFormat,
    body: &str,
    renames: &Renames,
) -> Result<JudgmentFile, ImportError> {
    let mut file = match format {
        JudgmentFormat::Canonical => canonical(body)?,
        JudgmentFormat::AlpacaEval => alpaca(body, renames)?,
    };
    if file.rows.is_empty() && file.self_judgments == 0 {
        return Err(ImportError {
            location: "file".into(),
            message: "no judgments: the file is empty".into(),
            line: None,
            field: None,
        });
    }
    let mut seen: HashMap<(&str, &str, &str), &str> = HashMap::with_capacity(file.rows.len());
    for row in &file.rows {
        let key = (row.item.as_str(), row.a.as_str(), row.b.as_str());
        if let Some(first) = seen.insert(key, &row.origin) {
            return Err(at(
                &row.origin,
                None,
                format!(
                    "{} vs {} on this item is already judged at {first}",
                    row.a, row.b
                ),
            ));
        }
    }
    // Keys are compared after normalisation when stored; the map above only
    // catches exact repeats, the store catches the rest.
    file.rows.shrink_to_fit();
    Ok(file)
}

fn at(origin: &str, field: Option<&str>, message: impl Into<String>) -> ImportError {
    ImportError {
        location: origin.to_string(),
        message: message.into(),
        line: line_of(origin),
        field: field.map(str::to_string),
    }
}

/// The line number inside `line 7` or `entry 3 (line 40)`.
fn line_of(origin: &str) -> Option<usize> {
    let (_, rest) = origin.split_once("line ")?;
    rest.trim_end_matches(')').parse().ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanonicalJudgment {
    id: Id,
    a: String,
    b: String,
    #[serde(default, deserialize_with = "present")]
    preference: Option<Option<f64>>,
    #[serde(default)]
    verdict: Option<Verdict>,
    #[serde(default)]
    order: Option<Order>,
}

/// Distinguishes `"preference": null` (listed, no verdict) from an absent key.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(i64),
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    A,
    B,
    Tie,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Order {
    Ab,
    Ba,
}

fn canonical(body: &str) -> Result<JudgmentFile, ImportError> {
    let mut rows = Vec::new();
    for (index, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let origin = format!("line {number}");
        let parsed: CanonicalJudgment = from_line(line, number)?;
        let preference = match (parsed.preference, parsed.verdict) {
            (Some(_), Some(_)) => {
                return Err(at(
                    &origin,
                    Some("verdict"),
                    "give `preference` or `verdict`, not both",
                ));
            }
            (None, None) => {
                return Err(at(
                    &origin,
                    Some("preference"),
                    "missing field `preference` (P(b wins) in [0, 1]) or `verdict` (\"a\", \"b\" or \"tie\")",
                ));
            }
            (Some(p), None) => p,
            (None, Some(Verdict::A)) => Some(0.0),
            (None, Some(Verdict::B)) => Some(1.0),
            (None, Some(Verdict::Tie)) => Some(0.5),
        };
        if let Some(p) = preference
            && !(0.0..=1.0).contains(&p)
        {
            return Err(at(
                &origin,
                Some("preference"),
                format!("field `preference` is {p}; expected P(b wins) in [0, 1]"),
            ));
        }
        let item = match parsed.id {
            Id::Text(id) if id.is_empty() => {
                return Err(at(&origin, Some("id"), "field `id` is empty"));
            }
            Id::Text(id) => id,
            Id::Number(id) => id.to_string(),
        };
        if parsed.a == parsed.b {
            return Err(at(
                &origin,
                Some("b"),
                format!(
                    "`a` and `b` are both {}; a judgment compares two systems",
                    parsed.a
                ),
            ));
        }
        rows.push(JudgmentRow {
            item,
            a: parsed.a,
            b: parsed.b,
            preference,
            a_first: parsed.order.map(|o| matches!(o, Order::Ab)),
            extra: serde_json::Map::new(),
            origin,
        });
    }
    Ok(JudgmentFile {
        rows,
        self_judgments: 0,
        annotator: None,
    })
}

#[derive(Deserialize)]
struct AlpacaAnnotation {
    instruction: String,
    generator_1: String,
    generator_2: String,
    #[serde(default)]
    preference: Option<f64>,
    #[serde(default)]
    annotator: Option<String>,
    #[serde(default)]
    price_per_example: Option<f64>,
    #[serde(default)]
    time_per_example: Option<f64>,
}

fn alpaca(body: &str, renames: &Renames) -> Result<JudgmentFile, ImportError> {
    let mut file = JudgmentFile::default();
    for (value, origin, line) in entries(body)? {
        let entry: AlpacaAnnotation = from_value(value, &origin).map_err(|mut e| {
            e.line = Some(line);
            e
        })?;
        let preference = match entry.preference {
            None => None,
            // Upstream's old encoding of a draw.
            Some(0.0) => Some(0.5),
            Some(p) if (1.0..=2.0).contains(&p) => Some(p - 1.0),
            Some(p) => {
                return Err(at(
                    &origin,
                    Some("preference"),
                    format!(
                        "field `preference` is {p}; AlpacaEval's preference is in [1, 2] (0 is a draw, null no verdict)"
                    ),
                ));
            }
        };
        if entry.generator_1 == entry.generator_2 {
            file.self_judgments += 1;
            continue;
        }
        if file.annotator.is_none() {
            file.annotator = entry.annotator;
        }
        let mut extra = serde_json::Map::new();
        for (name, value) in [
            ("price_per_example", entry.price_per_example),
            ("time_per_example", entry.time_per_example),
        ] {
            if let Some(number) = value.and_then(serde_json::Number::from_f64) {
                extra.insert(name.into(), serde_json::Value::Number(number));
            }
        }
        let a = renames.baseline.clone().unwrap_or(entry.generator_1);
        let b = renames.system.clone().unwrap_or(entry.generator_2);
        // Two different generators can become one system by renaming (`--system`
        // naming the file's baseline); the store refuses such a row
        // (system_a <> system_b) with a database error, so say which row here.
        if a == b {
            return Err(at(
                &origin,
                Some("generator_2"),
                format!("after renaming, both systems are {a}; a judgment compares two systems"),
            ));
        }
        file.rows.push(JudgmentRow {
            item: prompt_key(&entry.instruction),
            a,
            b,
            preference,
            a_first: None,
            extra,
            origin,
        });
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_lines_take_a_preference_or_a_verdict() {
        let body = concat!(
            "{\"id\": 3, \"a\": \"x\", \"b\": \"y\", \"preference\": 0.8, \"order\": \"ba\"}\n",
            "\n",
            "{\"id\": \"q\", \"a\": \"x\", \"b\": \"y\", \"verdict\": \"tie\"}\n",
            "{\"id\": \"r\", \"a\": \"x\", \"b\": \"y\", \"preference\": null}\n",
        );
        let file = parse(JudgmentFormat::Canonical, body, &Renames::default()).unwrap();
        let got: Vec<_> = file
            .rows
            .iter()
            .map(|r| (r.item.as_str(), r.preference, r.a_first, r.origin.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("3", Some(0.8), Some(false), "line 1"),
                ("q", Some(0.5), None, "line 3"),
                ("r", None, None, "line 4"),
            ]
        );
    }

    #[test]
    fn canonical_errors_name_line_and_field() {
        let cases = [
            (
                "{\"id\": 1, \"a\": \"x\", \"b\": \"y\"}",
                "line 1: missing field `preference`",
            ),
            (
                "{\"id\": 1, \"a\": \"x\", \"b\": \"y\", \"preference\": 1.5}",
                "line 1: field `preference` is 1.5; expected P(b wins) in [0, 1]",
            ),
            (
                "{\"id\": 1, \"a\": \"x\", \"b\": \"y\", \"preference\": 1, \"verdict\": \"a\"}",
                "line 1: give `preference` or `verdict`, not both",
            ),
            (
                "{\"id\": 1, \"a\": \"x\", \"b\": \"x\", \"verdict\": \"a\"}",
                "line 1: `a` and `b` are both x",
            ),
            (
                "{\"id\": 1, \"a\": \"x\", \"b\": \"y\", \"verdict\": \"c\"}",
                "line 1: field `verdict`: unknown variant `c`",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(JudgmentFormat::Canonical, body, &Renames::default()).unwrap_err();
            assert!(err.to_string().starts_with(expected), "{body}: {err}");
            assert_eq!(err.line, Some(1), "{body}");
        }
        let twice = "{\"id\": 1, \"a\": \"x\", \"b\": \"y\", \"verdict\": \"a\"}\n{\"id\": 1, \"a\": \"x\", \"b\": \"y\", \"verdict\": \"b\"}";
        let err = parse(JudgmentFormat::Canonical, twice, &Renames::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: x vs y on this item is already judged at line 1"
        );
        assert!(parse(JudgmentFormat::Canonical, "\n", &Renames::default()).is_err());
    }

    #[test]
    fn alpaca_preferences_become_probabilities_with_upstreams_draw_rules() {
        let body = r#"[
  {"instruction": "Hi  there", "generator_1": "base", "generator_2": "example", "preference": 1.75,
   "annotator": "weighted_alpaca_eval_gpt4_turbo", "price_per_example": 0.01, "time_per_example": null},
  {"instruction": "Two", "generator_1": "base", "generator_2": "example", "preference": 0},
  {"instruction": "Three", "generator_1": "base", "generator_2": "example", "preference": null},
  {"instruction": "Four", "generator_1": "base", "generator_2": "base", "preference": 1.5}
]"#;
        let renames = Renames {
            system: Some("NullModel".into()),
            baseline: None,
        };
        let file = parse(JudgmentFormat::AlpacaEval, body, &renames).unwrap();
        assert_eq!(file.self_judgments, 1);
        assert_eq!(
            file.annotator.as_deref(),
            Some("weighted_alpaca_eval_gpt4_turbo")
        );
        let got: Vec<_> = file
            .rows
            .iter()
            .map(|r| (r.item.as_str(), r.a.as_str(), r.b.as_str(), r.preference))
            .collect();
        assert_eq!(
            got,
            [
                ("Hi there", "base", "NullModel", Some(0.75)),
                ("Two", "base", "NullModel", Some(0.5)),
                ("Three", "base", "NullModel", None),
            ]
        );
        assert_eq!(file.rows[0].origin, "entry 0 (line 2)");
        assert_eq!(
            file.rows[0].extra,
            serde_json::json!({"price_per_example": 0.01})
                .as_object()
                .unwrap()
                .clone()
        );

        let bad = "[\n{\"instruction\": \"a\", \"generator_1\": \"x\", \"generator_2\": \"y\", \"preference\": 1},\n{\"instruction\": \"b\", \"generator_1\": \"x\", \"generator_2\": \"y\", \"preference\": 2.5}\n]";
        let err = parse(JudgmentFormat::AlpacaEval, bad, &Renames::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("entry 1 (line 3): field `preference` is 2.5"),
            "{err}"
        );
        assert_eq!(
            (err.line, err.field.as_deref()),
            (Some(3), Some("preference"))
        );
        let err = parse(
            JudgmentFormat::AlpacaEval,
            "[{\"instruction\": \"a\", \"generator_1\": \"x\"}]",
            &Renames::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 0 (line 1): missing field `generator_2`"
        );
    }

    /// Found while writing the invariants of `fuzz/`'s import_judgments
    /// target (rows never judge a system against itself): `--system` naming
    /// the file's baseline turned `gpt4` vs `model` into `gpt4` vs `gpt4`,
    /// which the store refused with a database error instead of a 422.
    #[test]
    fn a_rename_that_makes_both_sides_one_system_is_refused() {
        let body = "[\n{\"instruction\": \"a\", \"generator_1\": \"gpt4\", \"generator_2\": \"model\", \"preference\": 1.5}\n]";
        for renames in [
            Renames {
                system: Some("gpt4".into()),
                baseline: None,
            },
            Renames {
                system: None,
                baseline: Some("model".into()),
            },
            Renames {
                system: Some("same".into()),
                baseline: Some("same".into()),
            },
        ] {
            let err = parse(JudgmentFormat::AlpacaEval, body, &renames).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("entry 0 (line 2): after renaming, both systems are"),
                "{renames:?}: {err}"
            );
            assert_eq!(
                (err.line, err.field.as_deref()),
                (Some(2), Some("generator_2"))
            );
        }
    }
}
