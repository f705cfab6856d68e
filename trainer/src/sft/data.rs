//! SFT examples from JSONL (`{"prompt","completion"}` or `{"messages": [...]}` per line) and
//! from MaRio's one-object JSON files, tokenized with a loss mask over completion tokens.
//!
//! MaRio (`data/<ds>/gpt3/*.jsonl`) is ONE JSON object `{"0": {question, gold_label,
//! predicted_label, predicted_rationale}, ...}`; an example's prompt is the question and
//! its completion `"<predicted_rationale> So the answer is <predicted_label>."`, as in
//! MaRio's SFT stage. Keys are taken in numeric order. Records with an empty label or
//! rationale (179 and 172 of StrategyQA's 8,240 GPT-3 records) are skipped and counted: they
//! would teach the model to answer "So the answer is .".

use std::path::Path;

use serde::Deserialize;

use crate::data::pairs::PairPrompt;
use crate::error::{Error, Result};
use crate::load::tokenizer::{Message, Tokenizer};

/// One supervised example before tokenization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Example {
    /// Plain text: the loss covers `completion` only.
    Text {
        /// Conditioning text.
        prompt: String,
        /// Target text.
        completion: String,
    },
    /// A conversation: the loss covers the final assistant message only.
    Chat(Vec<Message>),
}

enum Line {
    Text { prompt: String, completion: String },
    Chat { messages: Vec<Message> },
}

/// One JSONL record, with an error that says which form was expected and what is off (serde's
/// untagged enums only say that no variant matched).
fn parse_line(line: &str) -> std::result::Result<Line, String> {
    const FORMS: &str =
        r#"{"prompt": "...", "completion": "..."} or {"messages": [{"role", "content"}, ...]}"#;
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON ({e}); expected {FORMS}"))?;
    let Some(obj) = value.as_object() else {
        return Err(format!("expected an object {FORMS}"));
    };
    let text = |key: &str| match obj.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("`{key}` must be a string, found {other}")),
        None => Err(format!("missing `{key}`; expected {FORMS}")),
    };
    if let Some(messages) = obj.get("messages") {
        let messages: Vec<Message> = serde_json::from_value(messages.clone()).map_err(|e| {
            format!("`messages` must be a list of {{\"role\", \"content\"}} objects: {e}")
        })?;
        return Ok(Line::Chat { messages });
    }
    if obj.contains_key("prompt") || obj.contains_key("completion") {
        return Ok(Line::Text {
            prompt: text("prompt")?,
            completion: text("completion")?,
        });
    }
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    Err(format!("expected {FORMS}, found keys {keys:?}"))
}

#[derive(Deserialize)]
struct MarioRecord {
    question: String,
    predicted_label: String,
    predicted_rationale: String,
}

/// The MaRio completion for a rationale and label.
pub fn mario_completion(rationale: &str, label: &str) -> String {
    format!("{} So the answer is {}.", rationale.trim(), label.trim())
}

/// Reads a data file in any supported format.
pub fn read(path: &Path) -> Result<Vec<Example>> {
    Ok(read_counting_skipped(path)?.0)
}

/// Reads a data file; also returns how many MaRio records were skipped as empty.
pub fn read_counting_skipped(path: &Path) -> Result<(Vec<Example>, usize)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let data_err = |line: usize, message: String| Error::Data {
        path: path.to_path_buf(),
        line,
        message,
    };
    if let Some(records) = crate::data::mario::records::<MarioRecord>(&text, path) {
        let mut out = Vec::new();
        let mut skipped = 0;
        for (_, r) in records? {
            if r.predicted_label.trim().is_empty() || r.predicted_rationale.trim().is_empty() {
                skipped += 1;
                continue;
            }
            out.push(Example::Text {
                prompt: r.question,
                completion: mario_completion(&r.predicted_rationale, &r.predicted_label),
            });
        }
        return Ok((out, skipped));
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parse_line(line).map_err(|m| data_err(i + 1, m))?;
        out.push(match parsed {
            Line::Text { prompt, completion } => Example::Text { prompt, completion },
            Line::Chat { messages } => {
                if messages.last().is_none_or(|m| m.role != "assistant") {
                    return Err(data_err(
                        i + 1,
                        "the last message must be the assistant's".into(),
                    ));
                }
                Example::Chat(messages)
            }
        });
    }
    if out.is_empty() {
        return Err(data_err(0, "no examples".into()));
    }
    Ok((out, 0))
}

/// A tokenized example: `ids` and a 0/1 `loss_mask` over them (1 = predicted token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// Token ids, prompt then completion.
    pub ids: Vec<u32>,
    /// 1 where the token belongs to the completion.
    pub loss_mask: Vec<u32>,
}

/// Tokenizes an example. With `chat`, plain prompts become a user turn and completions an
/// assistant turn of the chat template; otherwise the text is `prompt + "\n" + completion`
/// followed by the first EOS id. Sequences are cut to `max_len` from the end.
pub fn tokenize(ex: &Example, tok: &Tokenizer, chat: bool, max_len: usize) -> Result<Tokenized> {
    let (prompt, completion) = parts(ex, tok, chat)?;
    let mut ids = prompt.clone();
    ids.extend(&completion);
    let mut loss_mask = vec![0; prompt.len()];
    loss_mask.extend(vec![1; completion.len()]);
    ids.truncate(max_len);
    loss_mask.truncate(max_len);
    Ok(Tokenized { ids, loss_mask })
}

/// An example's prompt ids and completion ids, rendered as [`tokenize`] renders them
/// (untruncated; DPO cuts pairs its own way).
pub fn parts(ex: &Example, tok: &Tokenizer, chat: bool) -> Result<(Vec<u32>, Vec<u32>)> {
    Ok(match ex {
        Example::Text { prompt, completion } if !chat => {
            let mut c = tok.encode(completion)?;
            c.extend(tok.eos_ids.first());
            (tok.encode(&format!("{prompt}\n"))?, c)
        }
        Example::Text { prompt, completion } => chat_parts(
            tok,
            &[
                Message::new("user", prompt),
                Message::new("assistant", completion),
            ],
        )?,
        Example::Chat(messages) => chat_parts(tok, messages)?,
    })
}

/// A preference pair as two rows, prompt + chosen and prompt + rejected, each with its
/// loss mask over the response; DPO and reward models train on these.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRows {
    /// Prompt + chosen response.
    pub chosen: Tokenized,
    /// Prompt + rejected response.
    pub rejected: Tokenized,
    /// Response tokens of `chosen`.
    pub len_chosen: usize,
    /// Response tokens of `rejected`.
    pub len_rejected: usize,
    /// The pair's margin, when its file gave one.
    pub margin: Option<f64>,
    /// The probability that `chosen` is preferred, for soft-labelled pairs.
    pub label: Option<f64>,
    /// The pair's benchmark subset, when its file named one.
    pub subset: Option<String>,
}

/// The rows of pairs `idx` of `rows` as one batch: the chosen rows, then the rejected.
pub fn pair_batch<'a>(rows: &'a [PairRows], idx: &[usize]) -> Vec<&'a Tokenized> {
    idx.iter()
        .map(|&i| &rows[i].chosen)
        .chain(idx.iter().map(|&i| &rows[i].rejected))
        .collect()
}

/// Prompt + response as one row with its loss mask, truncated as [`tokenize_pairs`] does:
/// how a reward model trained on pairs scores a sample.
pub fn tokenize_scored(
    prompt: &str,
    response: &str,
    tok: &Tokenizer,
    chat: bool,
    max_len: usize,
    max_prompt: usize,
) -> Result<Tokenized> {
    let ex = Example::Text {
        prompt: prompt.to_string(),
        completion: response.to_string(),
    };
    let (prompt, reply) = parts(&ex, tok, chat)?;
    let keep = prompt.len().min(max_prompt);
    let n = reply.len().min(max_len.saturating_sub(keep).max(1));
    let ids: Vec<u32> = prompt[prompt.len() - keep..]
        .iter()
        .chain(&reply[..n])
        .copied()
        .collect();
    Ok(Tokenized {
        ids,
        loss_mask: [vec![0; keep], vec![1; n]].concat(),
    })
}

/// Tokenizes a pair file's pairs, rendered as SFT renders examples (a chat prompt with the
/// template, a text prompt plain unless `chat`). Truncation: the prompt keeps its last
/// `max_prompt` tokens (the turn being answered is at its end), then each response is cut
/// at its end to fit `max_len`. Returns the rows and a report for `data.json`.
pub fn tokenize_pairs(
    path: &Path,
    tok: &Tokenizer,
    chat: bool,
    max_len: usize,
    max_prompt: usize,
    limit: usize,
) -> Result<(Vec<PairRows>, serde_json::Value)> {
    let file = crate::data::pairs::read(path)?;
    let mut rows = Vec::with_capacity(file.pairs.len());
    let (mut cut_prompts, mut cut_responses, mut chat_prompts) = (0usize, 0usize, 0usize);
    for p in &file.pairs {
        if limit > 0 && rows.len() == limit {
            break;
        }
        chat_prompts += usize::from(matches!(p.prompt, PairPrompt::Chat(_)));
        let example = |reply: &str| match &p.prompt {
            PairPrompt::Text(t) => Example::Text {
                prompt: t.clone(),
                completion: reply.to_string(),
            },
            PairPrompt::Chat(history) => Example::Chat(
                history
                    .iter()
                    .cloned()
                    .chain([Message::new("assistant", reply)])
                    .collect(),
            ),
        };
        // The prompt is rendered on its own, so both rows share its tokens.
        let (prompt, chosen) = parts(&example(&p.chosen), tok, chat)?;
        let (_, rejected) = parts(&example(&p.rejected), tok, chat)?;
        let keep = prompt.len().min(max_prompt);
        cut_prompts += usize::from(keep < prompt.len());
        let prompt = &prompt[prompt.len() - keep..];
        let room = max_len.saturating_sub(keep).max(1);
        let mut row = |reply: &[u32]| {
            let n = reply.len().min(room);
            cut_responses += usize::from(n < reply.len());
            let ids: Vec<u32> = prompt.iter().chain(&reply[..n]).copied().collect();
            let loss_mask = [vec![0; keep], vec![1; n]].concat();
            (Tokenized { ids, loss_mask }, n)
        };
        let (chosen, len_chosen) = row(&chosen);
        let (rejected, len_rejected) = row(&rejected);
        rows.push(PairRows {
            chosen,
            rejected,
            len_chosen,
            len_rejected,
            margin: p.margin,
            label: p.label,
            subset: p.subset.clone(),
        });
    }
    let report = serde_json::json!({
        "path": path, "pairs": rows.len(), "skipped_identical": file.skipped_identical,
        "skipped_unjudged": file.skipped_unjudged,
        "soft_labels": rows.iter().filter(|r| r.label.is_some()).count(),
        "prompts_cut_at_max_prompt_len": cut_prompts, "responses_cut_at_max_len": cut_responses,
        "chat_prompts": chat_prompts,
        "response_tokens": rows.iter().map(|r| r.len_chosen + r.len_rejected).sum::<usize>(),
    });
    Ok((rows, report))
}

/// Prompt ids (everything before the last assistant message, with the generation prompt)
/// and completion ids (its content and `<|im_end|>\n`).
fn chat_parts(tok: &Tokenizer, messages: &[Message]) -> Result<(Vec<u32>, Vec<u32>)> {
    let (last, history) = messages
        .split_last()
        .ok_or_else(|| Error::InvalidArgument("empty conversation".into()))?;
    let prompt = tok.apply_chat(history, true)?;
    let completion = format!("{}<|im_end|>\n", last.content);
    Ok((tok.encode(&prompt)?, tok.encode(&completion)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_malformed_line_is_reported_with_file_and_line() {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        writeln!(f, r#"{{"prompt": "a", "completion": "b"}}"#).expect("w");
        writeln!(f).expect("w");
        writeln!(f, r#"{{"prompt": "a", "completion": 3}}"#).expect("w");
        let err = read(f.path()).expect_err("must fail").to_string();
        assert!(err.contains(&format!("{}:3:", f.path().display())), "{err}");
        assert!(
            err.contains("`completion` must be a string, found 3"),
            "{err}"
        );
        for (line, says) in [
            (r#"{"text": "a"}"#, r#"found keys ["text"]"#),
            (r#"{"prompt": "a"}"#, "missing `completion`"),
            (r#"[1]"#, "expected an object"),
            (
                r#"{"messages": [{"role": "user"}]}"#,
                "`messages` must be a list",
            ),
        ] {
            let mut g = tempfile::NamedTempFile::new().expect("tmp");
            writeln!(g, "{line}").expect("w");
            let err = read(g.path()).expect_err(line).to_string();
            assert!(err.contains(says) && err.contains(":1:"), "{line}: {err}");
        }
    }

    #[test]
    fn mario_one_object_files_become_rationale_then_answer() {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        write!(
            f,
            r#"{{"10": {{"question": "Q10?", "gold_label": "no", "predicted_label": "no", "predicted_rationale": "R10."}},
                "2": {{"question": "Q2?", "gold_label": "yes", "predicted_label": "yes", "predicted_rationale": " R2. "}}}}"#
        )
        .expect("w");
        let ex = read(f.path()).expect("read");
        assert_eq!(
            ex,
            vec![
                Example::Text {
                    prompt: "Q2?".into(),
                    completion: "R2. So the answer is yes.".into()
                },
                Example::Text {
                    prompt: "Q10?".into(),
                    completion: "R10. So the answer is no.".into()
                },
            ]
        );
    }

    #[test]
    fn pairs_keep_the_prompts_end_and_cut_responses_to_fit() {
        let json = crate::load::tokenizer::tiny_tokenizer_json(&["<|endoftext|>"]);
        let tok = Tokenizer::from_json(&json, &["<|endoftext|>"], None, None).expect("tok");
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        writeln!(
            f,
            r#"{{"prompt": "abcdef", "chosen": "xy", "rejected": "zzzzzz"}}"#
        )
        .expect("w");
        writeln!(
            f,
            r#"{{"prompt": "p", "chosen": "a", "rejected": "b", "margin": 2}}"#
        )
        .expect("w");
        // Byte-level tiny tokenizer: one token per character, "\n" after the prompt, EOS.
        let (rows, report) = tokenize_pairs(f.path(), &tok, false, 8, 4, 0).expect("pairs");
        let text = |ids: &[u32]| tok.decode(ids, false).expect("decode");
        let r = &rows[0];
        // "abcdef\n" keeps its last 4 tokens; "xy" + EOS fits in the 4 left; "zzzzzz" + EOS
        // is cut to 4.
        assert_eq!(text(&r.chosen.ids), "def\nxy<|endoftext|>");
        assert_eq!(text(&r.rejected.ids), "def\nzzzz");
        assert_eq!((r.len_chosen, r.len_rejected), (3, 4));
        assert_eq!(r.chosen.loss_mask, [0, 0, 0, 0, 1, 1, 1]);
        assert_eq!(rows[1].margin, Some(2.0));
        assert_eq!(report["prompts_cut_at_max_prompt_len"], 1);
        assert_eq!(report["responses_cut_at_max_len"], 1);
        let (rows, report) = tokenize_pairs(f.path(), &tok, false, 8, 4, 1).expect("limit");
        assert_eq!((rows.len(), report["pairs"].as_u64()), (1, Some(1)));
    }

    #[test]
    fn only_completion_tokens_carry_loss() {
        let json = crate::load::tokenizer::tiny_tokenizer_json(&[
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
        ]);
        let chat = crate::load::tokenizer::ChatTemplate {
            default_system: None,
        };
        let tok = Tokenizer::from_json(&json, &["<|im_end|>"], None, Some(chat)).expect("tok");
        let ex = Example::Text {
            prompt: "ab".into(),
            completion: "cd".into(),
        };
        let t = tokenize(&ex, &tok, false, 100).expect("t");
        assert_eq!(t.ids, vec![97, 98, 10, 99, 100, 258]);
        assert_eq!(t.loss_mask, vec![0, 0, 0, 1, 1, 1]);
        let t = tokenize(&ex, &tok, true, 100).expect("t");
        let n_completion = t.loss_mask.iter().sum::<u32>() as usize;
        let tail = tok
            .decode(&t.ids[t.ids.len() - n_completion..], false)
            .expect("d");
        assert_eq!(tail, "cd<|im_end|>\n");
        assert!(
            tok.decode(&t.ids, false)
                .expect("d")
                .starts_with("<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n")
        );
    }
}
