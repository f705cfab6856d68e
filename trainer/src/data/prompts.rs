//! Prompts for RL and evaluation.
//!
//! Three forms, told apart by their content:
//! - JSON Lines in the evaluator's sample form: `{"id"?, "prompt", "reference"?, "fields"?}`
//!   (`fields` values may be strings, numbers or booleans; they reach the reward modules as
//!   the WIT `sample` carries them, as strings);
//! - JSON Lines `{"id"?, "messages": [{"role", "content"}, ...], "reference"?, "fields"?}`:
//!   rendered with the chat template, ending with the generation prompt; the reward modules
//!   see the last user message as the prompt;
//! - MaRio's one-object JSON files `{"0": {"question", "answer" | "gold_label", ...}, ...}`
//!   (the raw splits and the systems' responses): prompt = question, reference = the gold
//!   label, id = the key.
//!
//! A prompt without an `id` gets its 1-based line number (MaRio: its key) for the run's
//! own files. Eval files pushed to the evaluator carry only ids the file gave: without
//! one the evaluator keys an item by its prompt text, as it keys MaRio's own files (whose
//! object keys are positions), so a run's eval lines align with the systems already
//! stored for those questions.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::load::tokenizer::Message;

/// One prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Its id: given, or the line number / MaRio key.
    pub id: String,
    /// The file gave `id` (not a line number or MaRio's positional key).
    pub given_id: bool,
    /// The text the reward modules see as the prompt.
    pub text: String,
    /// A chat to render with the template instead of `text`.
    pub messages: Option<Vec<Message>>,
    /// The gold reference, when there is one.
    pub reference: Option<String>,
    /// Extra fields, in file order.
    pub fields: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    fields: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct MarioRecord {
    question: String,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    gold_label: Option<String>,
}

/// Reads a prompt file in any of the three forms.
pub fn read(path: &Path) -> Result<Vec<Prompt>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let err = |line: usize, message: String| Error::Data {
        path: path.to_path_buf(),
        line,
        message,
    };
    if let Some(records) = super::mario::records::<MarioRecord>(&text, path) {
        let out = records?
            .into_iter()
            .map(|(k, r)| Prompt {
                id: k,
                given_id: false,
                text: r.question,
                messages: None,
                reference: r.gold_label.or(r.answer),
                fields: Vec::new(),
            })
            .collect();
        return non_empty(out, path);
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let l: Line = serde_json::from_str(line).map_err(|e| {
            err(
                n,
                format!(
                    "{e}; expected {{\"id\"?, \"prompt\", \"reference\"?, \"fields\"?}} or \
                     {{\"id\"?, \"messages\": [...], \"reference\"?}}"
                ),
            )
        })?;
        let given_id = l.id.is_some();
        let id = match l.id {
            None => n.to_string(),
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(x)) => x.to_string(),
            Some(other) => {
                return Err(err(
                    n,
                    format!("`id` must be a string or a number, found {other}"),
                ));
            }
        };
        let fields = l
            .fields
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok((k, v.to_string())),
                other => Err(err(
                    n,
                    format!("field `{k}` must be a string, number or boolean, found {other}"),
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        let (text, messages) = match (l.prompt, l.messages) {
            (Some(_), Some(_)) => {
                return Err(err(n, "give `prompt` or `messages`, not both".into()));
            }
            (Some(p), None) => (p, None),
            (None, Some(m)) => {
                let user = m
                    .iter()
                    .rev()
                    .find(|m| m.role == "user")
                    .ok_or_else(|| err(n, "`messages` has no user message".into()))?;
                (user.content.clone(), Some(m))
            }
            (None, None) => return Err(err(n, "missing `prompt` (or `messages`)".into())),
        };
        out.push(Prompt {
            id,
            given_id,
            text,
            messages,
            reference: l.reference,
            fields,
        });
    }
    non_empty(out, path)
}

fn non_empty(out: Vec<Prompt>, path: &Path) -> Result<Vec<Prompt>> {
    if out.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: 0,
            message: "no prompts".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(f.path(), text).expect("w");
        f
    }

    #[test]
    fn the_three_forms_read_with_ids_references_and_fields() {
        let f = file(
            "{\"prompt\": \"2+2?\", \"reference\": \"4\", \"fields\": {\"level\": 1, \"src\": \"a\"}}\n\
             \n{\"id\": \"q7\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi?\"}]}\n",
        );
        let p = read(f.path()).expect("read");
        assert_eq!(p[0].id, "1");
        assert_eq!(p[0].reference.as_deref(), Some("4"));
        assert_eq!(
            p[0].fields,
            [("level".into(), "1".into()), ("src".into(), "a".into())]
        );
        assert_eq!((p[1].id.as_str(), p[1].text.as_str()), ("q7", "Hi?"));
        assert!(p[1].messages.is_some());
        // Only the second line named its id; a line number is the run's own.
        assert_eq!((p[0].given_id, p[1].given_id), (false, true));
        let m = file(
            r#"{"10": {"question": "B?", "answer": "no"}, "2": {"question": "A?", "gold_label": "yes", "predicted_label": "no"}}"#,
        );
        let p = read(m.path()).expect("mario");
        assert_eq!(
            p.iter()
                .map(|p| (p.id.as_str(), p.text.as_str(), p.reference.as_deref()))
                .collect::<Vec<_>>(),
            [("2", "A?", Some("yes")), ("10", "B?", Some("no"))]
        );
        // MaRio's keys are positions: the evaluator keys these items by their question.
        assert!(p.iter().all(|p| !p.given_id));
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for (text, says) in [
            (
                "{\"prompt\": \"a\"}\n{\"promt\": \"b\"}\n",
                ":2: unknown field `promt`",
            ),
            ("{\"reference\": \"b\"}\n", ":1: missing `prompt`"),
            (
                "{\"prompt\": \"a\", \"fields\": {\"x\": [1]}}\n",
                "field `x` must be",
            ),
            ("", "no prompts"),
        ] {
            let f = file(text);
            let e = read(f.path()).expect_err(text).to_string();
            assert!(
                e.contains(says) && e.contains(&f.path().display().to_string()),
                "{e}"
            );
        }
    }
}
