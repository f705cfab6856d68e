//! Preference pairs for DPO (and, next, reward models): one prompt, a chosen and a rejected
//! response.
//!
//! Three JSONL forms, told apart by their content:
//! - `{"prompt": "...", "chosen": "...", "rejected": "...", "margin"?: number, "subset"?:
//!   "..."}`: plain text (`subset` names a benchmark subset, RewardBench's column; it may
//!   be given in the other JSONL forms too);
//! - conversational, TRL's two forms: `{"prompt": [messages], "chosen": [messages],
//!   "rejected": [messages]}` (each response one assistant message), or without `prompt`,
//!   `chosen` and `rejected` being whole conversations that share their history (the
//!   history is the common prefix and each must then end with one assistant message);
//! - hh-rlhf's transcripts `{"chosen": "\n\nHuman: ...\n\nAssistant: ...", "rejected": ...}`
//!   (`../shared/data/hh-rlhf`): the prompt is the longest common prefix of the two, cut at
//!   its last `"\n\nAssistant:"`, and the responses are the rest with the leading space
//!   dropped. This is the usual rule (prompt up to the last `"\n\nAssistant:"`) whenever
//!   that gives one prompt for both, and it also splits the pairs whose response itself
//!   contains `"\n\nAssistant:"`. The prompt's turns become chat messages (`Human` → `user`,
//!   `Assistant` → `assistant`), so an instruct model sees them in its own template.
//!
//! - AlpacaEval's judge annotations (`../shared/data/alpaca_eval/annotations/<system>.json`,
//!   a JSON array of `{"instruction", "generator_1", "generator_2", "preference", ...}`):
//!   soft-labelled pairs. The two outputs are read from `../model_outputs/<generator>.json`
//!   beside the annotations' directory, by position (item *i* is the same instruction in
//!   every file; the reader checks that it is). `preference` p is in [1, 2] and p − 1 is the
//!   judge's probability that `generator_2` wins: the more likely winner becomes `chosen`
//!   and the pair's [`Pair::label`] is that probability (≥ ½). A null preference is
//!   skipped and counted.
//!
//! Pairs whose two responses are identical carry no preference and are skipped and
//! counted; an empty response (hh-rlhf has three) is kept, since preferring an answer to
//! silence is a preference.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::load::tokenizer::Message;

/// What a response is conditioned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairPrompt {
    /// Plain text.
    Text(String),
    /// A conversation history, rendered with the chat template.
    Chat(Vec<Message>),
}

/// One preference: `chosen` is preferred to `rejected` after `prompt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// The shared context.
    pub prompt: PairPrompt,
    /// The preferred response.
    pub chosen: String,
    /// The other response.
    pub rejected: String,
    /// How much more `chosen` is preferred, when the file says (reward models' margin loss).
    pub margin: Option<f64>,
    /// The probability that `chosen` is preferred, in [½, 1], for soft-labelled pairs
    /// (AlpacaEval's judge); `None` for a plain preference (probability 1).
    pub label: Option<f64>,
    /// The benchmark subset the pair belongs to (RewardBench's `subset` column), for
    /// per-subset and section-weighted accuracy ([`crate::rm::rewardbench`]).
    pub subset: Option<String>,
    /// 1-based line in the file.
    pub line: usize,
}

/// A file's pairs and what was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct PairFile {
    /// The pairs, in file order.
    pub pairs: Vec<Pair>,
    /// Lines skipped because both responses were identical.
    pub skipped_identical: usize,
    /// Items skipped because the judge gave no preference.
    pub skipped_unjudged: usize,
}

const FORMS: &str = r#"{"prompt", "chosen", "rejected"} (strings or chat messages) or hh-rlhf's {"chosen", "rejected"} transcripts"#;
const ASSISTANT: &str = "\n\nAssistant:";
const HUMAN: &str = "\n\nHuman:";

/// Reads a pair file; a malformed line names its file and line and the expected form.
pub fn read(path: &Path) -> Result<PairFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    if text.trim_start().starts_with('[') {
        return read_alpaca_annotations(path, &text);
    }
    let mut out = PairFile {
        pairs: Vec::new(),
        skipped_identical: 0,
        skipped_unjudged: 0,
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let pair = parse_line(line, i + 1).map_err(|message| Error::Data {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        })?;
        if pair.chosen == pair.rejected {
            out.skipped_identical += 1;
        } else {
            out.pairs.push(pair);
        }
    }
    if out.pairs.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: 0,
            message: format!("no preference pairs; expected JSON Lines of {FORMS}"),
        });
    }
    Ok(out)
}

fn parse_line(line: &str, number: usize) -> std::result::Result<Pair, String> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON ({e}); expected {FORMS}"))?;
    let Some(obj) = value.as_object() else {
        return Err(format!("expected an object {FORMS}"));
    };
    let (Some(chosen), Some(rejected)) = (obj.get("chosen"), obj.get("rejected")) else {
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        return Err(format!("expected {FORMS}, found keys {keys:?}"));
    };
    let margin = match obj.get("margin") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64().filter(|m| m.is_finite()),
        Some(other) => return Err(format!("`margin` must be a number, found {other}")),
    };
    let subset = match obj.get("subset") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(other) => {
            return Err(format!(
                "`subset` must be a non-empty string, found {other}"
            ));
        }
    };
    let (prompt, chosen, rejected) = match (obj.get("prompt"), chosen, rejected) {
        (Some(Value::String(p)), Value::String(c), Value::String(r)) => {
            (PairPrompt::Text(p.clone()), c.clone(), r.clone())
        }
        (None, Value::String(c), Value::String(r)) => split_transcripts(c, r)?,
        (Some(p @ Value::Array(_)), c @ Value::Array(_), r @ Value::Array(_)) => {
            let history = messages("prompt", p)?;
            let c = single_reply("chosen", &messages("chosen", c)?)?;
            let r = single_reply("rejected", &messages("rejected", r)?)?;
            (PairPrompt::Chat(history), c, r)
        }
        (None, c @ Value::Array(_), r @ Value::Array(_)) => {
            let (c, r) = (messages("chosen", c)?, messages("rejected", r)?);
            let shared = c.iter().zip(&r).take_while(|(a, b)| a == b).count();
            // The last messages must differ: they are the two replies.
            let shared = shared.min(c.len().min(r.len()).saturating_sub(1));
            let history = c[..shared].to_vec();
            let reply_c = single_reply("chosen", &c[shared..])?;
            let reply_r = single_reply("rejected", &r[shared..])?;
            (PairPrompt::Chat(history), reply_c, reply_r)
        }
        (p, c, r) => {
            let kind = |v: Option<&Value>| match v {
                None => "absent",
                Some(Value::String(_)) => "a string",
                Some(Value::Array(_)) => "a list",
                Some(_) => "another type",
            };
            return Err(format!(
                "`prompt` is {}, `chosen` {} and `rejected` {}: all three strings, all three \
                 message lists, or `chosen` and `rejected` alone (transcripts or conversations)",
                kind(p),
                kind(Some(c)),
                kind(Some(r))
            ));
        }
    };
    Ok(Pair {
        prompt,
        chosen,
        rejected,
        margin,
        label: None,
        subset,
        line: number,
    })
}

#[derive(serde::Deserialize)]
struct Annotation {
    instruction: String,
    generator_1: String,
    generator_2: String,
    preference: Option<f64>,
}

#[derive(serde::Deserialize)]
struct Output {
    instruction: String,
    output: String,
}

/// AlpacaEval annotations joined with both generators' outputs (module docs).
fn read_alpaca_annotations(path: &Path, text: &str) -> Result<PairFile> {
    let data = |line: usize, message: String| Error::Data {
        path: path.to_path_buf(),
        line,
        message,
    };
    let annotations: Vec<Annotation> = serde_json::from_str(text).map_err(|e| {
        data(
            e.line(),
            format!(
                "a JSON array here must be AlpacaEval annotations \
                 ({{\"instruction\", \"generator_1\", \"generator_2\", \"preference\"}}): {e}"
            ),
        )
    })?;
    let outputs_dir = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
        .join("model_outputs");
    let mut cache: std::collections::HashMap<String, Vec<Output>> = Default::default();
    let mut out = PairFile {
        pairs: Vec::new(),
        skipped_identical: 0,
        skipped_unjudged: 0,
    };
    for (i, a) in annotations.iter().enumerate() {
        let Some(p) = a.preference.filter(|p| p.is_finite()) else {
            out.skipped_unjudged += 1;
            continue;
        };
        if !(1.0..=2.0).contains(&p) {
            return Err(data(
                0,
                format!("item {i}: preference {p} is outside [1, 2]"),
            ));
        }
        let mut output = |generator: &str| -> Result<String> {
            if !cache.contains_key(generator) {
                let file = outputs_dir.join(format!("{generator}.json"));
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    data(
                        0,
                        format!(
                            "the outputs of `{generator}` are expected in {}: {e}",
                            file.display()
                        ),
                    )
                })?;
                let parsed: Vec<Output> = serde_json::from_str(&text).map_err(|e| Error::Data {
                    path: file.clone(),
                    line: e.line(),
                    message: format!("expected AlpacaEval model outputs: {e}"),
                })?;
                cache.insert(generator.to_string(), parsed);
            }
            let o = cache[generator].get(i).ok_or_else(|| {
                data(
                    0,
                    format!("item {i}: `{generator}` has no output at that position"),
                )
            })?;
            if o.instruction != a.instruction {
                return Err(data(
                    0,
                    format!("item {i}: `{generator}`'s output answers another instruction"),
                ));
            }
            Ok(o.output.clone())
        };
        let (baseline, system) = (output(&a.generator_1)?, output(&a.generator_2)?);
        let win = p - 1.0;
        let (chosen, rejected, label) = if win >= 0.5 {
            (system, baseline, win)
        } else {
            (baseline, system, 1.0 - win)
        };
        if chosen == rejected {
            out.skipped_identical += 1;
            continue;
        }
        out.pairs.push(Pair {
            prompt: PairPrompt::Chat(vec![Message::new("user", &a.instruction)]),
            chosen,
            rejected,
            margin: None,
            label: Some(label),
            subset: None,
            line: i + 1,
        });
    }
    if out.pairs.is_empty() {
        return Err(data(0, "no judged pairs".into()));
    }
    Ok(out)
}

fn messages(key: &str, v: &Value) -> std::result::Result<Vec<Message>, String> {
    serde_json::from_value(v.clone())
        .map_err(|e| format!("`{key}` must be a list of {{\"role\", \"content\"}} objects: {e}"))
}

fn single_reply(key: &str, reply: &[Message]) -> std::result::Result<String, String> {
    match reply {
        [m] if m.role == "assistant" => Ok(m.content.clone()),
        [m] => Err(format!(
            "`{key}` must end with one assistant message, found role `{}`",
            m.role
        )),
        _ => Err(format!(
            "`{key}` must have one assistant message after the shared history, found {}",
            reply.len()
        )),
    }
}

/// hh-rlhf's rule (module docs): the common prefix cut at its last assistant marker.
fn split_transcripts(
    chosen: &str,
    rejected: &str,
) -> std::result::Result<(PairPrompt, String, String), String> {
    if !chosen.starts_with(HUMAN) {
        return Err(format!(
            "without `prompt`, `chosen` and `rejected` must be hh-rlhf transcripts starting \
             with {HUMAN:?}; expected {FORMS}"
        ));
    }
    let common = chosen
        .char_indices()
        .zip(rejected.chars())
        .find(|((_, a), b)| a != b)
        .map_or(chosen.len().min(rejected.len()), |((i, _), _)| i);
    let Some(cut) = chosen[..common].rfind(ASSISTANT) else {
        return Err(format!(
            "the transcripts share no {ASSISTANT:?} turn: cannot tell the prompt from the replies"
        ));
    };
    let end = cut + ASSISTANT.len();
    let reply = |t: &str| t[end..].strip_prefix(' ').unwrap_or(&t[end..]).to_string();
    let history = transcript_messages(&chosen[..cut])?;
    Ok((PairPrompt::Chat(history), reply(chosen), reply(rejected)))
}

/// `"\n\nHuman: a\n\nAssistant: b\n\nHuman: c"` → user a, assistant b, user c.
fn transcript_messages(text: &str) -> std::result::Result<Vec<Message>, String> {
    let mut out: Vec<Message> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (role, marker) = if rest.starts_with(HUMAN) {
            ("user", HUMAN)
        } else if rest.starts_with(ASSISTANT) {
            ("assistant", ASSISTANT)
        } else {
            return Err(format!(
                "transcript turn does not start with {HUMAN:?} or {ASSISTANT:?}: {:?}",
                rest.chars().take(40).collect::<String>()
            ));
        };
        let body = &rest[marker.len()..];
        let next = [body.find(HUMAN), body.find(ASSISTANT)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(body.len());
        out.push(Message::new(role, body[..next].trim()));
        rest = &body[next..];
    }
    if out.last().is_none_or(|m| m.role != "user") {
        return Err("the prompt must end with a Human turn".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(lines: &[&str]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        for l in lines {
            writeln!(f, "{l}").expect("write");
        }
        f
    }

    #[test]
    fn the_three_forms_read_into_one_shape() {
        let f = file(&[
            r#"{"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 1.5}"#,
            r#"{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}], "rejected": [{"role": "assistant", "content": "go away"}]}"#,
            r#"{"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "no"}]}"#,
            r#"{"chosen": "\n\nHuman: Q1\n\nAssistant: A1\n\nHuman: Q2\n\nAssistant: good", "rejected": "\n\nHuman: Q1\n\nAssistant: A1\n\nHuman: Q2\n\nAssistant: bad"}"#,
        ]);
        let got = read(f.path()).expect("read");
        assert_eq!(got.skipped_identical, 0);
        let p = &got.pairs;
        assert_eq!(p[0].prompt, PairPrompt::Text("2+2?".into()));
        assert_eq!((p[0].chosen.as_str(), p[0].margin), ("4", Some(1.5)));
        let hi = vec![Message::new("user", "hi")];
        assert_eq!(p[1].prompt, PairPrompt::Chat(hi.clone()));
        assert_eq!(
            (p[1].chosen.as_str(), p[1].rejected.as_str()),
            ("hello", "go away")
        );
        assert_eq!(p[2].prompt, PairPrompt::Chat(hi));
        assert_eq!(p[2].rejected, "no");
        assert_eq!(
            p[3].prompt,
            PairPrompt::Chat(vec![
                Message::new("user", "Q1"),
                Message::new("assistant", "A1"),
                Message::new("user", "Q2"),
            ])
        );
        assert_eq!(
            (p[3].chosen.as_str(), p[3].rejected.as_str()),
            ("good", "bad")
        );
        assert_eq!(p[3].line, 4);
    }

    #[test]
    fn a_reply_that_contains_the_assistant_marker_still_splits_at_the_shared_prefix() {
        // The simple rule (cut at the last marker of each) would give two prompts here.
        let f = file(&[
            r#"{"chosen": "\n\nHuman: Q\n\nAssistant: one\n\nAssistant: two", "rejected": "\n\nHuman: Q\n\nAssistant: other"}"#,
        ]);
        let p = &read(f.path()).expect("read").pairs[0];
        assert_eq!(p.prompt, PairPrompt::Chat(vec![Message::new("user", "Q")]));
        assert_eq!(p.chosen, "one\n\nAssistant: two");
        assert_eq!(p.rejected, "other");
    }

    #[test]
    fn identical_pairs_are_skipped_and_empty_replies_kept() {
        let f = file(&[
            r#"{"prompt": "a", "chosen": "same", "rejected": "same"}"#,
            r#"{"chosen": "\n\nHuman: Q\n\nAssistant: yes", "rejected": "\n\nHuman: Q\n\nAssistant: "}"#,
        ]);
        let got = read(f.path()).expect("read");
        assert_eq!(got.skipped_identical, 1);
        assert_eq!(got.pairs.len(), 1);
        assert_eq!(got.pairs[0].rejected, "");
    }

    #[test]
    fn malformed_lines_name_the_line_and_the_expected_form() {
        for (line, says) in [
            (r#"{"prompt": "a", "chosen": "b"}"#, "found keys"),
            (
                r#"{"prompt": "a", "chosen": "b", "rejected": 3}"#,
                "`rejected` another type",
            ),
            (
                r#"{"chosen": "plain", "rejected": "text"}"#,
                "hh-rlhf transcripts",
            ),
            (
                r#"{"prompt": "a", "chosen": "b", "rejected": "c", "margin": "x"}"#,
                "`margin`",
            ),
            (
                r#"{"prompt": [], "chosen": [{"role": "user", "content": "x"}], "rejected": [{"role": "assistant", "content": "y"}]}"#,
                "role `user`",
            ),
            ("nope", "not JSON"),
        ] {
            let f = file(&[r#"{"prompt": "ok", "chosen": "1", "rejected": "2"}"#, line]);
            let err = read(f.path()).expect_err(line).to_string();
            assert!(err.contains(":2:") && err.contains(says), "{line}: {err}");
        }
        let f = file(&[r#"{"prompt": "a", "chosen": "s", "rejected": "s"}"#]);
        let err = read(f.path()).expect_err("empty").to_string();
        assert!(err.contains("no preference pairs"), "{err}");
    }

    /// AlpacaEval's annotations of one system joined with its and the baseline's outputs.
    #[test]
    fn alpaca_eval_annotations_become_soft_labelled_pairs() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/alpaca_eval");
        let path = dir.join("annotations/alpaca-7b.json");
        if !path.is_file() {
            eprintln!("SKIPPED: {} is absent (the shared data)", path.display());
            return;
        }
        let got = read(&path).expect("annotations");
        assert_eq!(
            got.pairs.len() + got.skipped_identical + got.skipped_unjudged,
            805
        );
        assert!(
            got.pairs
                .iter()
                .all(|p| p.label.is_some_and(|l| (0.5..=1.0).contains(&l)))
        );
        // The first item: the judge prefers the baseline (preference 1.0000001827).
        let first = &got.pairs[0];
        assert!((first.label.expect("label") - (2.0 - 1.000_000_182_7)).abs() < 1e-12);
        let outputs: Vec<serde_json::Value> = serde_json::from_str(
            &std::fs::read_to_string(dir.join("model_outputs/gpt4_1106_preview.json")).expect("o"),
        )
        .expect("json");
        assert_eq!(first.chosen, outputs[0]["output"].as_str().expect("output"));
        assert_eq!(
            first.prompt,
            PairPrompt::Chat(vec![Message::new(
                "user",
                "What are the names of some famous actors that started their careers on Broadway?"
            )])
        );
    }

    /// The shared hh-rlhf files: every line splits, into one prompt, as their README counts.
    #[test]
    fn every_hh_rlhf_pair_splits() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/hh-rlhf");
        let path = dir.join("test.jsonl");
        if !path.is_file() {
            eprintln!("SKIPPED: {} is absent (the shared data)", path.display());
            return;
        }
        let got = read(&path).expect("hh-rlhf test split");
        // 300 lines, none with chosen == rejected (README's table).
        assert_eq!(got.pairs.len() + got.skipped_identical, 300);
        assert_eq!(got.skipped_identical, 0);
        let empty = got.pairs.iter().filter(|p| p.rejected.is_empty()).count();
        assert_eq!(empty, 1, "the README counts one empty final turn in test");
        assert!(
            got.pairs
                .iter()
                .all(|p| matches!(&p.prompt, PairPrompt::Chat(m) if !m.is_empty()))
        );
    }
}
