//! JSON Lines samples: `{"prompt", "response", "reference"?, "fields"?: {k: v}}`.
//!
//! Parsing happens before anything is scored, so a malformed line stops the run
//! with its line number and no output at all.

use std::io::BufRead;

use reward_host::Sample;
use serde::Deserialize;

use crate::error::{Error, Result};

/// One input line as written. Unknown keys are refused, so a misspelt
/// `"referense"` fails loudly instead of silently scoring without a reference;
/// extra columns belong under `fields`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    prompt: String,
    response: String,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
}

/// Reads every sample of a JSON Lines input. Blank lines are skipped (they still
/// count for line numbers); `source_name` appears in errors.
pub fn read_samples(reader: impl BufRead, source_name: &str) -> Result<Vec<Sample>> {
    Ok(read_numbered_samples(reader, source_name)?.0)
}

/// [`read_samples`], with each sample's 1-based input line, so that later
/// errors (a module failing on a batch) can name lines, not positions among
/// the non-blank ones.
pub fn read_numbered_samples(
    reader: impl BufRead,
    source_name: &str,
) -> Result<(Vec<Sample>, Vec<usize>)> {
    let mut samples = Vec::new();
    let mut numbers = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let error = |message: String| Error::Input {
            source_name: source_name.to_string(),
            line: number,
            message,
        };
        let line = line.map_err(|e| error(format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        samples.push(parse_line(&line).map_err(error)?);
        numbers.push(number);
    }
    Ok((samples, numbers))
}

/// Parses one line into a sample; the error names the problem and, where serde
/// knows it, the column.
pub fn parse_line(line: &str) -> Result<Sample, String> {
    let parsed: Line = serde_json::from_str(line).map_err(|e| {
        let what = e.to_string();
        // serde_json appends "at line 1 column N"; the line is ours to name.
        let what = what.split(" at line ").next().unwrap_or(&what).to_string();
        match e.classify() {
            serde_json::error::Category::Data => format!("{what} (column {})", e.column()),
            _ => format!("invalid JSON: {what} (column {})", e.column()),
        }
    })?;
    let mut fields = Vec::with_capacity(parsed.fields.len());
    for (key, value) in parsed.fields {
        let value = match value {
            serde_json::Value::String(s) => s,
            // Numbers and booleans keep their JSON spelling: "max_words": 50 is "50".
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "field `fields.{key}` must be a string, number or boolean, got {}",
                    json_kind(&other)
                ));
            }
        };
        fields.push((key, value));
    }
    Ok(Sample {
        prompt: parsed.prompt,
        response: parsed.response,
        reference: parsed.reference,
        fields,
    })
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
        _ => "a scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_line_becomes_a_sample_with_ordered_fields() {
        let sample = parse_line(
            r#"{"prompt":"q","response":"r","reference":"yes","fields":{"b":"1","a":2,"c":true}}"#,
        )
        .unwrap();
        assert_eq!(sample.reference.as_deref(), Some("yes"));
        assert_eq!(
            sample.fields,
            vec![
                ("b".into(), "1".into()),
                ("a".into(), "2".into()),
                ("c".into(), "true".into())
            ]
        );
    }

    #[test]
    fn malformed_lines_name_line_and_problem() {
        let input = "{\"prompt\":\"q\",\"response\":\"r\"}\n\n{\"prompt\":\"q\"}\n";
        let err = read_samples(input.as_bytes(), "in.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("in.jsonl line 3: missing field `response`"),
            "{err}"
        );

        let err = read_samples("{\"prompt\": 1".as_bytes(), "stdin")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("stdin line 1: invalid type"), "{err}");

        let err = read_samples("not json".as_bytes(), "stdin")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("stdin line 1: invalid JSON"), "{err}");

        let err = parse_line(r#"{"prompt":"q","response":"r","referense":"x"}"#).unwrap_err();
        assert!(err.contains("unknown field `referense`"), "{err}");

        let err = parse_line(r#"{"prompt":"q","response":"r","fields":{"k":[1]}}"#).unwrap_err();
        assert_eq!(
            err,
            "field `fields.k` must be a string, number or boolean, got an array"
        );
    }

    #[test]
    fn blank_lines_are_skipped_but_counted() {
        let samples = read_samples(
            "\n{\"prompt\":\"q\",\"response\":\"r\"}\n  \n".as_bytes(),
            "x",
        )
        .unwrap();
        assert_eq!(samples.len(), 1);
    }
}
