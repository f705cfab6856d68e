//! Generation files parsed into rows at the edge, before anything is stored.
//!
//! Four formats:
//! - `canonical`: JSON Lines of `{"id"?, "prompt", "response", "reference"?, "fields"?}`.
//! - `mario`: MaRio's files. Either ONE JSON object `{"0": {"question", "gold_label",
//!   "predicted_label", "predicted_rationale"}, ...}` (GPT-3 and FLAN-T5 responses;
//!   the response is `"<predicted_rationale> So the answer is <predicted_label>."`),
//!   or JSON Lines with `question`, `answer` and `trunc_output` (LLaMA outputs).
//! - `alarm`: ALaRM's per-item generation JSON: an array (or JSON Lines) of
//!   `{"query", "generation", ...}`; the numbers beside them (its precomputed
//!   rewards) are kept as the generation's `extra`.
//! - `alpaca_eval`: AlpacaEval's `model_outputs.json`, an array of
//!   `{"instruction", "output", "generator", "dataset"?, ...}`; items are keyed
//!   by the instruction and the source set (`dataset`) is kept as an item field.
//!   The system is named on the command line, never by `generator` (upstream's
//!   null model says `example`).
//!
//! Judgments made elsewhere are parsed by [`judgments`]; scores made
//! elsewhere (a learned reward model's) and their provenance by [`scores`].
//!
//! Every row gets a key that identifies its dataset item: the canonical `id` when
//! given (exactly as written), otherwise the prompt normalised by [`prompt_key`]
//! (Unicode NFC, whitespace runs collapsed to one space, ends trimmed; case
//! kept), so files that spell a prompt with other whitespace or another Unicode
//! form meet on the same item. Generations of different systems meet on that
//! key, never on their position in a file. Errors name the line (or entry) and
//! the field.

pub mod judgments;
pub mod scores;

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use unicode_normalization::UnicodeNormalization;

/// The item key of a prompt: the text in Unicode NFC, every run of whitespace
/// (Unicode's `White_Space`, what [`char::is_whitespace`] tests) replaced by
/// one space, and the ends trimmed. Case is kept: it can change meaning.
///
/// The migration that re-keyed stored items applies the same rule in SQL
/// (`item_prompt_key` in `migrations/*_normalised_item_keys.sql`); a test
/// holds the two together.
pub fn prompt_key(prompt: &str) -> String {
    let composed: String = prompt.nfc().collect();
    let mut key = String::with_capacity(composed.len());
    for word in composed.split_whitespace() {
        if !key.is_empty() {
            key.push(' ');
        }
        key.push_str(word);
    }
    key
}

/// One parsed generation with the dataset item it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Identifies the dataset item: the canonical `id`, else [`prompt_key`] of
    /// the prompt.
    pub key: String,
    /// The item's prompt, as the file writes it.
    pub prompt: String,
    /// The item's reference answer, if the file gives one.
    pub reference: Option<String>,
    /// The item's extra string fields (canonical `fields`).
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The system's response.
    pub response: String,
    /// Numbers found beside the response (ALaRM's rewards).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Where the row came from, for messages: `line 7` or `entry "12"`.
    pub origin: String,
}

/// The file formats `push-generations` accepts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON Lines of `{"id"?, "prompt", "response", "reference"?, "fields"?}`.
    #[default]
    Canonical,
    /// MaRio's one-object JSON or LLaMA JSON Lines.
    Mario,
    /// ALaRM's generation JSON.
    Alarm,
    /// AlpacaEval's `model_outputs.json`.
    #[value(name = "alpaca_eval")]
    #[serde(rename = "alpaca_eval")]
    AlpacaEval,
}

impl Format {
    /// The name used on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Canonical => "canonical",
            Format::Mario => "mario",
            Format::Alarm => "alarm",
            Format::AlpacaEval => "alpaca_eval",
        }
    }
}

/// Why a file cannot be imported; `location` names the line or entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ImportError {
    /// `line 7`, `entry "12"`, or `file` for problems of the whole file.
    pub location: String,
    /// What is wrong, naming the field where there is one.
    pub message: String,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// The field, when the problem has one.
    pub field: Option<String>,
}

impl ImportError {
    fn at_line(line: usize, field: Option<String>, message: impl Into<String>) -> Self {
        ImportError {
            location: format!("line {line}"),
            message: message.into(),
            line: Some(line),
            field,
        }
    }
}

/// Parses a whole file; the first problem stops it (nothing is imported from a
/// file that has one). A key that appears twice is an error: one system gives
/// one response per item.
pub fn parse(format: Format, body: &str) -> Result<Vec<Row>, ImportError> {
    let rows = match format {
        Format::Canonical => parse_lines(body, canonical_row)?,
        Format::Mario => match one_object(body) {
            Some(entries) => parse_entries(entries, mario_entry)?,
            None => parse_lines(body, llama_row)?,
        },
        Format::Alarm => match body.trim_start().starts_with('[') {
            true => parse_array(body, alarm_entry)?,
            false => parse_lines(body, alarm_row)?,
        },
        Format::AlpacaEval => parse_array(body, alpaca_entry)?,
    };
    if rows.is_empty() {
        return Err(ImportError {
            location: "file".into(),
            message: "no rows: the file is empty".into(),
            line: None,
            field: None,
        });
    }
    for row in &rows {
        check_storable(row)?;
    }
    let mut seen: HashMap<&str, &str> = HashMap::with_capacity(rows.len());
    for row in &rows {
        if let Some(first) = seen.insert(&row.key, &row.origin) {
            return Err(ImportError {
                location: row.origin.clone(),
                message: format!(
                    "the same item ({}) already appears at {first}; a system answers each item once",
                    describe_key(&row.key)
                ),
                line: row
                    .origin
                    .strip_prefix("line ")
                    .and_then(|n| n.parse().ok()),
                field: None,
            });
        }
    }
    Ok(rows)
}

/// PostgreSQL text cannot hold U+0000, which JSON can spell (`\u0000`):
/// refused here, with the field, rather than failing the whole import in the
/// database.
fn check_storable(row: &Row) -> Result<(), ImportError> {
    let mut offending = None;
    for (field, text) in [
        ("prompt", Some(row.prompt.as_str())),
        ("response", Some(row.response.as_str())),
        ("reference", row.reference.as_deref()),
        ("id", Some(row.key.as_str())),
    ] {
        if text.is_some_and(|t| t.contains('\0')) {
            offending = Some(field.to_string());
            break;
        }
    }
    if offending.is_none() {
        offending = row
            .fields
            .iter()
            .map(|(k, v)| (format!("fields.{k}"), v))
            .chain(row.extra.iter().map(|(k, v)| (k.clone(), v)))
            .find(|(k, v)| k.contains('\0') || v.as_str().is_some_and(|s| s.contains('\0')))
            .map(|(k, _)| k);
    }
    match offending {
        None => Ok(()),
        Some(field) => Err(ImportError {
            location: row.origin.clone(),
            message: format!(
                "field `{field}` contains the character U+0000, which cannot be stored"
            ),
            line: row
                .origin
                .strip_prefix("line ")
                .and_then(|n| n.parse().ok()),
            field: Some(field),
        }),
    }
}

/// Whether a JSON value holds U+0000 in any key or string.
pub fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn describe_key(key: &str) -> String {
    let mut short: String = key.chars().take(60).collect();
    if short.len() < key.len() {
        short.push('…');
    }
    format!("{short:?}")
}

/// JSON Lines: each non-blank line through `row`, with line numbers.
fn parse_lines(
    body: &str,
    row: fn(&str, usize) -> Result<Row, ImportError>,
) -> Result<Vec<Row>, ImportError> {
    let mut rows = Vec::new();
    for (index, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        rows.push(row(line, index + 1)?);
    }
    Ok(rows)
}

/// Deserializes one line, naming the field that failed.
fn from_line<T: DeserializeOwned>(line: &str, number: usize) -> Result<T, ImportError> {
    let mut deserializer = serde_json::Deserializer::from_str(line);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != ".").then_some(path);
        let what = inner.to_string();
        let what = what.split(" at line ").next().unwrap_or(&what).to_string();
        let message = match (&field, inner.classify()) {
            (_, serde_json::error::Category::Syntax | serde_json::error::Category::Eof) => {
                format!("invalid JSON: {what} (column {})", inner.column())
            }
            (Some(field), _) => format!("field `{field}`: {what}"),
            (None, _) => what,
        };
        ImportError::at_line(number, field, message)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanonicalLine {
    #[serde(default)]
    id: Option<Id>,
    prompt: String,
    response: String,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
}

/// An item id as written: a string or an integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(i64),
}

fn canonical_row(line: &str, number: usize) -> Result<Row, ImportError> {
    let parsed: CanonicalLine = from_line(line, number)?;
    for (key, value) in &parsed.fields {
        if !matches!(
            value,
            serde_json::Value::String(_)
                | serde_json::Value::Number(_)
                | serde_json::Value::Bool(_)
        ) {
            return Err(ImportError::at_line(
                number,
                Some(format!("fields.{key}")),
                format!("field `fields.{key}` must be a string, number or boolean"),
            ));
        }
    }
    let key = match parsed.id {
        Some(Id::Text(id)) if id.is_empty() => {
            return Err(ImportError::at_line(
                number,
                Some("id".into()),
                "field `id` is empty",
            ));
        }
        Some(Id::Text(id)) => id,
        Some(Id::Number(id)) => id.to_string(),
        None => prompt_key(&parsed.prompt),
    };
    Ok(Row {
        key,
        prompt: parsed.prompt,
        reference: parsed.reference,
        fields: parsed.fields,
        response: parsed.response,
        extra: serde_json::Map::new(),
        origin: format!("line {number}"),
    })
}

#[derive(Deserialize)]
struct MarioEntry {
    question: String,
    gold_label: String,
    predicted_label: String,
    predicted_rationale: String,
}

/// The one-object form, if the body is one: a JSON object whose values are all
/// objects. (A LLaMA line is an object of strings and booleans.)
fn one_object(body: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    if !body.trim_start().starts_with('{') {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map))
            if !map.is_empty() && map.values().all(serde_json::Value::is_object) =>
        {
            Some(map)
        }
        _ => None,
    }
}

fn parse_entries(
    entries: serde_json::Map<String, serde_json::Value>,
    entry: fn(&str, serde_json::Value) -> Result<Row, ImportError>,
) -> Result<Vec<Row>, ImportError> {
    entries
        .into_iter()
        .map(|(key, value)| entry(&key, value))
        .collect()
}

fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    location: &str,
) -> Result<T, ImportError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        let what = e.into_inner().to_string();
        ImportError {
            location: location.to_string(),
            message: match &field {
                Some(field) => format!("field `{field}`: {what}"),
                None => what,
            },
            line: None,
            field,
        }
    })
}

fn mario_entry(key: &str, value: serde_json::Value) -> Result<Row, ImportError> {
    let origin = format!("entry {key:?}");
    let entry: MarioEntry = from_value(value, &origin)?;
    Ok(Row {
        key: prompt_key(&entry.question),
        response: mario_response(&entry.predicted_rationale, &entry.predicted_label),
        prompt: entry.question,
        reference: Some(entry.gold_label),
        fields: serde_json::Map::new(),
        extra: serde_json::Map::new(),
        origin,
    })
}

/// MaRio's response text for its GPT-3 and FLAN-T5 files.
pub fn mario_response(rationale: &str, label: &str) -> String {
    format!("{} So the answer is {}.", rationale.trim_end(), label)
}

#[derive(Deserialize)]
struct LlamaLine {
    question: String,
    answer: String,
    trunc_output: String,
}

fn llama_row(line: &str, number: usize) -> Result<Row, ImportError> {
    let parsed: LlamaLine = from_line(line, number)?;
    Ok(Row {
        key: prompt_key(&parsed.question),
        prompt: parsed.question,
        reference: Some(parsed.answer),
        fields: serde_json::Map::new(),
        response: parsed.trunc_output,
        extra: serde_json::Map::new(),
        origin: format!("line {number}"),
    })
}

#[derive(Deserialize)]
struct AlarmItem {
    query: String,
    generation: String,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

fn alarm(item: AlarmItem, origin: String) -> Row {
    // Keep the numbers (holistic_reward, factuality_rate, ...); drop the rest.
    let extra = item
        .rest
        .into_iter()
        .filter(|(_, v)| v.is_number())
        .collect();
    Row {
        key: prompt_key(&item.query),
        prompt: item.query,
        reference: None,
        fields: serde_json::Map::new(),
        response: item.generation,
        extra,
        origin,
    }
}

fn alarm_row(line: &str, number: usize) -> Result<Row, ImportError> {
    Ok(alarm(from_line(line, number)?, format!("line {number}")))
}

fn alarm_entry(value: serde_json::Value, origin: String) -> Result<Row, ImportError> {
    Ok(alarm(from_value(value, &origin)?, origin))
}

#[derive(Deserialize)]
struct AlpacaOutput {
    instruction: String,
    output: String,
    #[serde(default)]
    dataset: Option<String>,
}

fn alpaca_entry(value: serde_json::Value, origin: String) -> Result<Row, ImportError> {
    let entry: AlpacaOutput = from_value(value, &origin)?;
    let mut fields = serde_json::Map::new();
    if let Some(source) = entry.dataset {
        fields.insert("dataset".into(), serde_json::Value::String(source));
    }
    Ok(Row {
        key: prompt_key(&entry.instruction),
        prompt: entry.instruction,
        reference: None,
        fields,
        response: entry.output,
        extra: serde_json::Map::new(),
        origin,
    })
}

/// A JSON array, each entry through `entry`. Entries are named by their index
/// and the line they start on, found from where serde's raw value sits in the
/// body, so an error in an 800-entry file points at a line an editor can open.
fn parse_array(
    body: &str,
    entry: fn(serde_json::Value, String) -> Result<Row, ImportError>,
) -> Result<Vec<Row>, ImportError> {
    entries(body)?
        .into_iter()
        .map(|(value, origin, line)| {
            entry(value, origin).map_err(|mut e| {
                e.line = e.line.or(Some(line));
                e
            })
        })
        .collect()
}

/// The entries of a JSON array with their names (`entry 3 (line 40)`) and
/// 1-based starting lines.
pub(crate) fn entries(body: &str) -> Result<Vec<(serde_json::Value, String, usize)>, ImportError> {
    let raw: Vec<&serde_json::value::RawValue> = serde_json::from_str(body).map_err(|e| {
        ImportError::at_line(
            e.line(),
            None,
            format!(
                "invalid JSON: {} (column {})",
                e.to_string().split(" at line ").next().unwrap_or_default(),
                e.column()
            ),
        )
    })?;
    let start = body.as_ptr() as usize;
    let mut line = 1;
    let mut counted_to = 0;
    let mut out = Vec::with_capacity(raw.len());
    for (index, value) in raw.into_iter().enumerate() {
        // A borrowed RawValue is a slice of `body`: its offset is exact.
        let offset = value.get().as_ptr() as usize - start;
        line += body.as_bytes()[counted_to..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = offset;
        let parsed: serde_json::Value = serde_json::from_str(value.get())
            .map_err(|e| ImportError::at_line(line, None, format!("invalid JSON: {e}")))?;
        out.push((parsed, format!("entry {index} (line {line})"), line));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_lines_take_their_id_or_their_prompt_as_key() {
        let body = "{\"id\": 7, \"prompt\": \"p\", \"response\": \"r\"}\n\n{\"prompt\": \"q\", \"response\": \"s\", \"reference\": \"x\", \"fields\": {\"k\": 1}}\n";
        let rows = parse(Format::Canonical, body).unwrap();
        assert_eq!(rows[0].key, "7");
        assert_eq!(rows[1].key, "q");
        assert_eq!(rows[1].reference.as_deref(), Some("x"));
        assert_eq!(rows[1].origin, "line 3");
    }

    #[test]
    fn prompts_key_in_nfc_with_whitespace_collapsed_and_case_kept() {
        // The issue's LLaMA/GPT-3 spellings, CRLF, tabs, a no-break space, NFD.
        let forms = [
            "Is it a week?\n(A) no (B) yes",
            "Is it a week? \n (A) no (B) yes",
            "  Is it a week?\r\n(A)\tno  (B)\u{a0}yes ",
        ];
        for form in forms {
            assert_eq!(prompt_key(form), "Is it a week? (A) no (B) yes", "{form:?}");
        }
        assert_eq!(prompt_key("Cafe\u{301} au lait"), "Caf\u{e9} au lait");
        assert_eq!(prompt_key("\u{212b}ngstr\u{f6}m"), "\u{c5}ngstr\u{f6}m");
        assert_ne!(
            prompt_key("Paris"),
            prompt_key("paris"),
            "case can change meaning"
        );
        assert_eq!(prompt_key(" \t\n"), "");
    }

    #[test]
    fn the_migrations_whitespace_class_is_rusts() {
        // migrations/*_normalised_item_keys.sql re-keyed stored items with a
        // regular-expression class of whitespace; it must be exactly the set
        // `str::split_whitespace` splits on, or old and new keys would differ.
        let sql = include_str!("../../../migrations/20261122000009_normalised_item_keys.sql");
        let class = sql
            .split("'[")
            .nth(1)
            .and_then(|rest| rest.split("]+'").next())
            .expect("the class in the migration");
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for part in class.split("\\u").filter(|p| !p.is_empty()) {
            let (code, range_end) = match part.split_once('-') {
                Some((code, end)) => (code, Some(end)),
                None => (part, None),
            };
            let code = u32::from_str_radix(code, 16).expect("hex");
            match range_end {
                Some(_) => ranges.push((code, u32::MAX)),
                None => match ranges.last_mut() {
                    Some(last) if last.1 == u32::MAX => last.1 = code,
                    _ => ranges.push((code, code)),
                },
            }
        }
        assert!(ranges.len() > 5, "{class}");
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let in_class = ranges
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&(c as u32)));
            assert_eq!(in_class, c.is_whitespace(), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn one_file_spelling_a_prompt_twice_answers_it_twice() {
        let body = "{\"prompt\": \"Why?\", \"response\": \"a\"}\n{\"prompt\": \"Why? \", \"response\": \"b\"}\n";
        let err = parse(Format::Canonical, body).unwrap_err();
        assert!(
            err.to_string().starts_with("line 2: the same item"),
            "{err}"
        );
        // Ids are keys exactly as written.
        let body = "{\"id\": \"a \", \"prompt\": \"p\", \"response\": \"r\"}\n{\"id\": \"a\", \"prompt\": \"p\", \"response\": \"s\"}\n";
        let rows = parse(Format::Canonical, body).unwrap();
        assert_eq!((rows[0].key.as_str(), rows[1].key.as_str()), ("a ", "a"));
    }

    #[test]
    fn errors_name_line_and_field() {
        let body =
            "{\"prompt\": \"p\", \"response\": \"r\"}\n{\"prompt\": \"q\", \"response\": 5}\n";
        let err = parse(Format::Canonical, body).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.field.as_deref(), Some("response"));
        assert!(
            err.to_string()
                .starts_with("line 2: field `response`: invalid type"),
            "{err}"
        );

        let err = parse(Format::Canonical, "{\"prompt\": \"q\"}").unwrap_err();
        assert_eq!(err.to_string(), "line 1: missing field `response`");

        let err = parse(Format::Canonical, "{\"prompt\": \"q\", ").unwrap_err();
        assert!(err.to_string().starts_with("line 1: invalid JSON"), "{err}");

        let err = parse(
            Format::Canonical,
            "{\"prompt\": \"q\", \"response\": \"r\", \"fields\": {\"k\": [1]}}",
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("fields.k"));

        let err = parse(
            Format::Canonical,
            "{\"prompt\":\"q\",\"response\":\"r\"}\n{\"prompt\":\"q\",\"response\":\"s\"}",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("line 2: the same item"),
            "{err}"
        );
        assert!(parse(Format::Canonical, "\n\n").is_err());

        let err = parse(
            Format::Canonical,
            "{\"prompt\": \"q\", \"response\": \"a\\u0000b\"}",
        )
        .unwrap_err();
        assert_eq!(
            (err.line, err.field.as_deref()),
            (Some(1), Some("response")),
            "{err}"
        );
    }

    #[test]
    fn mario_one_object_and_llama_lines() {
        let one = r#"{"0": {"question": "Q0?", "gold_label": "no", "predicted_label": "yes", "predicted_rationale": "Because. "},
                      "1": {"question": "Q1?", "gold_label": "(a)", "predicted_label": "(a)", "predicted_rationale": "R"}}"#;
        let rows = parse(Format::Mario, one).unwrap();
        assert_eq!(rows[0].response, "Because. So the answer is yes.");
        assert_eq!(rows[0].reference.as_deref(), Some("no"));
        assert_eq!(rows[1].key, "Q1?");

        let llama = "{\"question\": \"Q0?\", \"rationale\": \"x\", \"answer\": \"no\", \"trunc_output\": \"T. So the answer is no.\", \"trunc_output_goodformat\": true}\n";
        let rows = parse(Format::Mario, llama).unwrap();
        assert_eq!(rows[0].response, "T. So the answer is no.");
        assert_eq!(rows[0].key, "Q0?");

        // The two layouts' spellings of one question meet on one key; each row
        // keeps its own text as the prompt.
        let one = r#"{"0": {"question": "Is it? \n (A) no", "gold_label": "(a)", "predicted_label": "(a)", "predicted_rationale": "R"}}"#;
        let llama = r#"{"question": "Is it?\n(A) no", "answer": "(a)", "trunc_output": "T"}"#;
        let (one, llama) = (
            parse(Format::Mario, one).unwrap(),
            parse(Format::Mario, llama).unwrap(),
        );
        assert_eq!(one[0].key, llama[0].key);
        assert_eq!(one[0].prompt, "Is it? \n (A) no");

        let bad = r#"{"0": {"question": "Q0?", "gold_label": "no", "predicted_label": "yes"}}"#;
        let err = parse(Format::Mario, bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry \"0\": missing field `predicted_rationale`"
        );
    }

    #[test]
    fn alarm_arrays_keep_the_numbers_beside_the_generation() {
        let body = r#"[{"query": "q1", "generation": "g1", "holistic_reward": 0.5, "note": "x"},
                       {"query": "q2", "generation": "g2"}]"#;
        let rows = parse(Format::Alarm, body).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].extra.get("holistic_reward"),
            Some(&serde_json::json!(0.5))
        );
        assert!(rows[0].extra.get("note").is_none());
        let err = parse(Format::Alarm, r#"[{"query": "q1"}]"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 0 (line 1): missing field `generation`"
        );
    }
}
