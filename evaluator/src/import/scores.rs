//! Scores computed outside the sandbox (a learned reward model run by
//! `trainer score --output FILE`), parsed at the edge into domain values.
//!
//! Two files:
//! - the scores, JSON Lines of `{"id"?, "prompt", "score"}`, one per
//!   generation line that was scored. The item is named as `push-generations`
//!   keyed it: the canonical `id` when the line has one (a string or an
//!   integer, exactly as written), else the prompt through
//!   [`prompt_key`](super::prompt_key). `score` is a finite number (`null`,
//!   what a NaN becomes in JSON, is refused: a reward model that returns NaN
//!   is broken, and a mean over the other lines would hide it).
//! - its provenance, `FILE.provenance.json` beside it:
//!   `{"reward_model", "sha256", "command", "input", "lines"}` ([`Provenance`]).
//!   `sha256` names the model (its head and adapter) and binds the metric on
//!   the dataset to it; `lines` must be the number of score lines, so a
//!   provenance left over from another run is caught.
//!
//! Errors name the file, the line and the field; nothing is stored from a
//! file that has one. Whether the items exist is checked against the dataset
//! when the rows are stored (`db::scores`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ImportError, from_line, prompt_key};

/// What a provenance file must hold, for messages.
pub const PROVENANCE_FORM: &str = r#"{"reward_model", "sha256", "command", "input", "lines"}"#;

/// `FILE.provenance.json`: where `trainer score --output FILE` writes the
/// provenance of FILE.
pub fn provenance_path(scores: &Path) -> PathBuf {
    let mut side = scores.as_os_str().to_owned();
    side.push(".provenance.json");
    PathBuf::from(side)
}

/// What produced a set of scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScoreSource {
    /// A learned reward model (`trainer rm`), run by `trainer score`.
    RewardModel,
}

impl ScoreSource {
    /// The `external_metrics.source` text.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreSource::RewardModel => "reward_model",
        }
    }
}

/// A metric name for scores pushed from outside: letters, digits and
/// `_.:+=-`, starting with a letter or digit, at most 64. No `/`: module
/// metrics are `<module>/<metric>`, so the two kinds of keys never meet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricName(String);

/// A metric name that breaks the rule of [`MetricName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "metric name {0:?} is invalid: letters, digits and _.:+=- only, starting with a letter or digit, at most 64 (no `/`: `<module>/<metric>` names a module's metric)"
)]
pub struct InvalidMetricName(pub String);

impl MetricName {
    /// Checks the rule.
    pub fn parse(name: &str) -> Result<MetricName, InvalidMetricName> {
        let mut chars = name.chars();
        let valid = name.len() <= 64
            && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || "_.:+=-".contains(c));
        if valid {
            Ok(MetricName(name.to_string()))
        } else {
            Err(InvalidMetricName(name.to_string()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A model's SHA-256: 64 hexadecimal digits, kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sha256(String);

impl Sha256 {
    /// 64 hex digits, either case; `None` otherwise.
    pub fn parse(text: &str) -> Option<Sha256> {
        (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Sha256(text.to_ascii_lowercase()))
    }

    /// The 64 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a scores file came from, as its `.provenance.json` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// What scored.
    pub source: ScoreSource,
    /// The reward model's directory, as the scoring machine named it.
    pub reward_model: String,
    /// The model's hash (head + adapter).
    pub sha256: Sha256,
    /// The command line that wrote the scores.
    pub command: String,
    /// The generations file it read.
    pub input: String,
    /// Lines scored.
    pub lines: u64,
}

/// A provenance file that cannot be used: one line naming the file, the
/// field and the form expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}: {message}; expected {PROVENANCE_FORM}, the provenance `trainer score --output FILE` writes beside FILE"
)]
pub struct ProvenanceError {
    /// The provenance file, as named to the user.
    pub file: String,
    /// The field, when the problem has one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
struct RawProvenance {
    reward_model: String,
    sha256: String,
    command: String,
    input: String,
    lines: u64,
}

/// Parses a provenance file's text.
pub fn parse_provenance(file: &str, text: &str) -> Result<Provenance, ProvenanceError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ProvenanceError {
        file: file.to_string(),
        field: None,
        message: format!(
            "invalid JSON: {} (line {}, column {})",
            e.to_string().split(" at line ").next().unwrap_or_default(),
            e.line(),
            e.column()
        ),
    })?;
    provenance_from_value(file, value)
}

/// Parses a provenance object (as the API receives it).
pub fn provenance_from_value(
    file: &str,
    value: serde_json::Value,
) -> Result<Provenance, ProvenanceError> {
    let error = |field: Option<&str>, message: String| ProvenanceError {
        file: file.to_string(),
        field: field.map(str::to_string),
        message,
    };
    if !value.is_object() {
        return Err(error(
            None,
            format!("not a JSON object but {}", kind(&value)),
        ));
    }
    let raw: RawProvenance = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let what = e.into_inner().to_string();
        if path == "." {
            error(None, what)
        } else {
            error(Some(&path), format!("field `{path}`: {what}"))
        }
    })?;
    let sha256 = Sha256::parse(&raw.sha256).ok_or_else(|| {
        error(
            Some("sha256"),
            format!(
                "field `sha256` is {:?}, not 64 hexadecimal digits",
                raw.sha256.chars().take(80).collect::<String>()
            ),
        )
    })?;
    for (field, text) in [
        ("reward_model", &raw.reward_model),
        ("command", &raw.command),
        ("input", &raw.input),
    ] {
        if text.trim().is_empty() {
            return Err(error(Some(field), format!("field `{field}` is empty")));
        }
        if text.contains('\0') {
            return Err(error(
                Some(field),
                format!("field `{field}` contains the character U+0000, which cannot be stored"),
            ));
        }
    }
    if raw.lines == 0 {
        return Err(error(Some("lines"), "field `lines` is 0".into()));
    }
    Ok(Provenance {
        source: ScoreSource::RewardModel,
        reward_model: raw.reward_model,
        sha256,
        command: raw.command,
        input: raw.input,
        lines: raw.lines,
    })
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// How a score line names its item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemRef {
    /// By the canonical `id`, as written.
    Id(String),
    /// By the prompt, through [`prompt_key`].
    Prompt(String),
}

impl ItemRef {
    /// The item key it stands for.
    pub fn key(&self) -> &str {
        match self {
            ItemRef::Id(key) | ItemRef::Prompt(key) => key,
        }
    }

    /// The field it came from.
    pub fn field(&self) -> &'static str {
        match self {
            ItemRef::Id(_) => "id",
            ItemRef::Prompt(_) => "prompt",
        }
    }

    /// `id "q1"` or `prompt "What is…"`, for messages.
    pub fn describe(&self) -> String {
        let mut short: String = self.key().chars().take(60).collect();
        if short.len() < self.key().len() {
            short.push('…');
        }
        format!("{} {short:?}", self.field())
    }
}

/// One parsed score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// The item it scores.
    pub item: ItemRef,
    /// The value, finite.
    pub score: f64,
    /// The 1-based line.
    pub line: usize,
}

#[derive(Deserialize)]
struct RawScore {
    #[serde(default)]
    id: Option<Id>,
    prompt: String,
    #[serde(default, deserialize_with = "present")]
    score: Option<Option<f64>>,
}

/// Distinguishes `"score": null` from an absent key.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(i64),
}

/// Parses a scores file; the first problem stops it. An item scored twice is
/// an error (one generation, one score).
pub fn parse_scores(body: &str) -> Result<Vec<ScoreRow>, ImportError> {
    let mut rows = Vec::new();
    let mut seen: HashMap<ItemRef, usize> = HashMap::new();
    for (index, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let raw: RawScore = from_line(line, number)?;
        let at = |field: &str, message: String| {
            ImportError::at_line(number, Some(field.into()), message)
        };
        let score = match raw.score {
            None => {
                return Err(at(
                    "score",
                    "missing field `score`; expected {\"id\"?, \"prompt\", \"score\"}".into(),
                ));
            }
            Some(None) => {
                return Err(at(
                    "score",
                    "field `score` is null (the model gave NaN?); expected a finite number".into(),
                ));
            }
            Some(Some(score)) if !score.is_finite() => {
                return Err(at(
                    "score",
                    format!("field `score` is {score}; expected a finite number"),
                ));
            }
            Some(Some(score)) => score,
        };
        let item = match raw.id {
            Some(Id::Text(id)) if id.is_empty() => {
                return Err(at("id", "field `id` is empty".into()));
            }
            Some(Id::Text(id)) => ItemRef::Id(id),
            Some(Id::Number(id)) => ItemRef::Id(id.to_string()),
            None => ItemRef::Prompt(prompt_key(&raw.prompt)),
        };
        // PostgreSQL text cannot hold U+0000; no stored key has it either.
        if item.key().contains('\0') {
            return Err(at(
                item.field(),
                format!(
                    "field `{}` contains the character U+0000, which no item key holds",
                    item.field()
                ),
            ));
        }
        if let Some(first) = seen.insert(item.clone(), number) {
            return Err(ImportError::at_line(
                number,
                Some(item.field().into()),
                format!(
                    "the item with {} is already scored at line {first}; a generation has one score",
                    item.describe()
                ),
            ));
        }
        rows.push(ScoreRow {
            item,
            score,
            line: number,
        });
    }
    if rows.is_empty() {
        return Err(ImportError {
            location: "file".into(),
            message: "no scores: the file is empty".into(),
            line: None,
            field: None,
        });
    }
    Ok(rows)
}

/// A scores file with its provenance, each checked against the other.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreFile {
    /// The file's name, for messages.
    pub name: String,
    /// Where the scores came from.
    pub provenance: Provenance,
    /// The scores, in file order.
    pub rows: Vec<ScoreRow>,
}

/// Why a scores file (or its provenance) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreFileError {
    /// The scores file has a bad line.
    #[error("{file}: {error}")]
    Scores {
        /// The scores file.
        file: String,
        /// The line and the field.
        error: ImportError,
    },
    /// The provenance is missing a field, or malformed.
    #[error(transparent)]
    Provenance(#[from] ProvenanceError),
}

/// Parses both; the provenance's `lines` must count the score lines.
pub fn parse(
    name: &str,
    body: &str,
    provenance: Result<Provenance, ProvenanceError>,
) -> Result<ScoreFile, ScoreFileError> {
    let provenance = provenance?;
    let rows = parse_scores(body).map_err(|error| ScoreFileError::Scores {
        file: name.to_string(),
        error,
    })?;
    if provenance.lines != rows.len() as u64 {
        return Err(ProvenanceError {
            file: provenance_path(Path::new(name)).display().to_string(),
            field: Some("lines".into()),
            message: format!(
                "field `lines` is {} but {name} has {} score lines, so it describes another run's output",
                provenance.lines,
                rows.len()
            ),
        }
        .into());
    }
    Ok(ScoreFile {
        name: name.to_string(),
        provenance,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn provenance(lines: u64) -> String {
        serde_json::json!({
            "reward_model": "runs/rm/final", "sha256": SHA.to_uppercase(),
            "command": "trainer score --rm runs/rm --input gens.jsonl --output s.jsonl",
            "input": "gens.jsonl", "lines": lines,
        })
        .to_string()
    }

    #[test]
    fn lines_name_their_item_by_id_else_by_the_normalised_prompt() {
        let body = "{\"id\": \"q1\", \"prompt\": \"A?\", \"score\": 0.5}\n\n{\"prompt\": \"  Two\\n words \", \"score\": -1}\n{\"id\": 7, \"prompt\": \"x\", \"score\": 2e3}\n";
        let file = parse("s.jsonl", body, parse_provenance("p", &provenance(3))).unwrap();
        let got: Vec<_> = file
            .rows
            .iter()
            .map(|r| (r.item.clone(), r.score, r.line))
            .collect();
        assert_eq!(
            got,
            [
                (ItemRef::Id("q1".into()), 0.5, 1),
                (ItemRef::Prompt("Two words".into()), -1.0, 3),
                (ItemRef::Id("7".into()), 2000.0, 4),
            ]
        );
        assert_eq!(file.provenance.sha256.as_str(), SHA, "kept in lower case");
        assert_eq!(file.provenance.source, ScoreSource::RewardModel);
    }

    #[test]
    fn bad_lines_name_the_line_and_the_field() {
        let cases = [
            (
                "{\"prompt\": \"a\"}",
                "line 1: missing field `score`",
                "score",
            ),
            (
                "{\"prompt\": \"a\", \"score\": null}",
                "line 1: field `score` is null",
                "score",
            ),
            (
                "{\"prompt\": \"a\", \"score\": \"high\"}",
                "line 1: field `score`: invalid type: string \"high\", expected f64",
                "score",
            ),
            ("{\"score\": 1}", "line 1: missing field `prompt`", ""),
            (
                "{\"id\": \"\", \"prompt\": \"a\", \"score\": 1}",
                "line 1: field `id` is empty",
                "id",
            ),
        ];
        for (body, expected, field) in cases {
            let err = parse_scores(body).unwrap_err();
            assert!(err.to_string().starts_with(expected), "{body}: {err}");
            assert_eq!(err.line, Some(1), "{body}");
            if !field.is_empty() {
                assert_eq!(err.field.as_deref(), Some(field), "{body}");
            }
        }
        let twice = "{\"prompt\": \"a b\", \"score\": 1}\n{\"prompt\": \"a  b\", \"score\": 2}";
        assert_eq!(
            parse_scores(twice).unwrap_err().to_string(),
            "line 2: the item with prompt \"a b\" is already scored at line 1; a generation has one score"
        );
        assert_eq!(
            parse_scores("\n").unwrap_err().to_string(),
            "file: no scores: the file is empty"
        );
        let err = parse(
            "s.jsonl",
            "{\"prompt\": 1, \"score\": 1}",
            parse_provenance("p", &provenance(1)),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("s.jsonl: line 1: field `prompt`"),
            "{err}"
        );
    }

    #[test]
    fn a_provenance_error_names_the_file_the_field_and_the_form() {
        let err = parse_provenance("s.jsonl.provenance.json", r#"{"sha256": "ab"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("s.jsonl.provenance.json: missing field `reward_model`; expected {\"reward_model\", \"sha256\", \"command\", \"input\", \"lines\"}"),
            "{err}"
        );
        let short = provenance(1).replace(&SHA.to_uppercase(), "abc");
        let err = parse_provenance("p.json", &short).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("sha256"));
        assert!(
            err.to_string()
                .starts_with("p.json: field `sha256` is \"abc\", not 64 hexadecimal digits"),
            "{err}"
        );
        let err = parse_provenance("p.json", "not json").unwrap_err();
        assert!(err.to_string().starts_with("p.json: invalid JSON"), "{err}");
        let err = parse_provenance("p.json", "[1]").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("p.json: not a JSON object but an array"),
            "{err}"
        );
        let err = parse_provenance(
            "p.json",
            &provenance(1).replace("\"lines\":1", "\"lines\":\"1\""),
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("lines"), "{err}");
    }

    #[test]
    fn a_provenance_of_another_length_is_another_runs() {
        let body = "{\"prompt\": \"a\", \"score\": 1}\n{\"prompt\": \"b\", \"score\": 2}\n";
        let err = parse("out/s.jsonl", body, parse_provenance("p", &provenance(3))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "out/s.jsonl.provenance.json: field `lines` is 3 but out/s.jsonl has 2 score lines, so it describes another run's output; expected {PROVENANCE_FORM}, the provenance `trainer score --output FILE` writes beside FILE"
            )
        );
    }

    #[test]
    fn metric_names_cannot_look_like_module_metrics() {
        assert!(MetricName::parse("helpful_rm-v2").is_ok());
        for bad in ["", "rm/score", "-x", &"x".repeat(65), "a b"] {
            assert!(MetricName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
