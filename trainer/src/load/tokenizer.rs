//! Tokenizers (HF `tokenizer.json`, or built from GGUF metadata) and the ChatML chat template.
//!
//! Chat templates in HF checkpoints are Jinja programs; the project renders only ChatML
//! (`<|im_start|>role\ncontent<|im_end|>\n`), which SmolLM2, Qwen2 and many others use.
//! A template that does not mention `<|im_start|>` is refused rather than guessed. If the
//! template inserts a literal default system prompt when the conversation has none (as
//! SmolLM2's does), that prompt is extracted and inserted too.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// ChatML rendering, with the template's default system prompt if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    /// Inserted when the conversation does not start with a system message.
    pub default_system: Option<String>,
}

impl ChatTemplate {
    /// Recognises a ChatML Jinja template; `None` for anything else.
    pub fn from_jinja(template: &str) -> Option<Self> {
        if !template.contains("<|im_start|>") {
            return None;
        }
        let marker = "<|im_start|>system\n";
        let default_system = template.find(marker).and_then(|i| {
            let rest = &template[i + marker.len()..];
            let end = rest.find("<|im_end|>")?;
            let text = &rest[..end];
            // Only a literal prompt, not an expression such as `' + message['content'] + '`.
            (!text.is_empty()
                && !text.contains('\'')
                && !text.contains("{{")
                && !text.contains('+'))
            .then(|| text.to_string())
        });
        Some(Self { default_system })
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends with an open
    /// assistant turn for the model to complete.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> String {
        let mut s = String::new();
        if let Some(sys) = &self.default_system
            && messages.first().is_none_or(|m| m.role != "system")
        {
            s.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
        }
        for m in messages {
            s.push_str(&format!(
                "<|im_start|>{}\n{}<|im_end|>\n",
                m.role, m.content
            ));
        }
        if add_generation_prompt {
            s.push_str("<|im_start|>assistant\n");
        }
        s
    }
}

/// A tokenizer with the special ids generation and training need.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Generation stops at any of these.
    pub eos_ids: Vec<u32>,
    /// Prepended by [`Tokenizer::encode`] with `add_bos` when the model wants one.
    pub bos_id: Option<u32>,
    /// Used to pad batches (never attended to).
    pub pad_id: u32,
    /// The chat template, when the checkpoint has a ChatML one.
    pub chat: Option<ChatTemplate>,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// Builds from `tokenizer.json` text and the special tokens' names.
    pub fn from_json(
        json: &str,
        eos: &[&str],
        bos: Option<&str>,
        chat: Option<ChatTemplate>,
    ) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_bytes(json.as_bytes()).map_err(tok_err)?;
        let mut eos_ids: Vec<u32> = Vec::new();
        for id in eos.iter().filter_map(|t| inner.token_to_id(t)) {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        let bos_id = bos.and_then(|b| inner.token_to_id(b));
        let pad_id = eos_ids.first().copied().unwrap_or(0);
        Ok(Self {
            inner,
            eos_ids,
            bos_id,
            pad_id,
            chat,
        })
    }

    /// Reads `tokenizer.json` and, when present, `tokenizer_config.json` (EOS/BOS names
    /// and chat template) from an HF directory.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let json = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = match std::fs::read_to_string(&cfg_path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| Error::Json {
                path: cfg_path.clone(),
                source: e,
            })?,
            Err(_) => serde_json::Value::Null,
        };
        let name = |k: &str| -> Option<String> {
            match &cfg[k] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => {
                    o.get("content").and_then(|c| c.as_str()).map(String::from)
                }
                _ => None,
            }
        };
        let mut eos: Vec<String> = name("eos_token").into_iter().collect();
        let chat = cfg["chat_template"]
            .as_str()
            .and_then(ChatTemplate::from_jinja);
        if chat.is_some() {
            eos.push("<|im_end|>".into());
        }
        if eos.is_empty() {
            eos.push("<|endoftext|>".into());
        }
        let eos: Vec<&str> = eos.iter().map(String::as_str).collect();
        let bos = name("bos_token");
        Self::from_json(&json, &eos, bos.as_deref(), chat)
    }

    /// Token ids of `text` (special tokens such as `<|im_start|>` are recognised).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(tok_err)?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids`, dropping special tokens when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(tok_err)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token string.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The `tokenizer.json` text.
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(false).map_err(tok_err)
    }

    /// A `tokenizer_config.json` that [`Tokenizer::from_hf_dir`] reads back to the same
    /// special ids and ChatML template.
    pub fn tokenizer_config_json(&self) -> String {
        let name = |id: Option<u32>| id.and_then(|i| self.inner.id_to_token(i));
        let mut cfg = serde_json::Map::new();
        if let Some(e) = name(self.eos_ids.first().copied()) {
            cfg.insert("eos_token".into(), json!(e));
        }
        if let Some(b) = name(self.bos_id) {
            cfg.insert("bos_token".into(), json!(b));
        }
        if let Some(chat) = &self.chat {
            let system = chat.default_system.as_ref().map_or(String::new(), |s| {
                format!("{{% if loop.first and messages[0]['role'] != 'system' %}}{{{{ '<|im_start|>system\n{s}<|im_end|>\n' }}}}{{% endif %}}")
            });
            let t = format!(
                "{{% for message in messages %}}{system}{{{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}}}{{% endfor %}}{{% if add_generation_prompt %}}{{{{ '<|im_start|>assistant\n' }}}}{{% endif %}}"
            );
            cfg.insert("chat_template".into(), json!(t));
        }
        serde_json::Value::Object(cfg).to_string()
    }

    /// Renders a conversation with the chat template.
    pub fn apply_chat(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let chat = self.chat.as_ref().ok_or_else(|| {
            Error::Tokenizer("this tokenizer has no (ChatML) chat template".into())
        })?;
        Ok(chat.render(messages, add_generation_prompt))
    }
}

/// GPT-2's reversible byte → printable-char map used by byte-level BPE vocabularies.
pub fn byte_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    table
}

/// A byte-level BPE `tokenizer.json`: `tokens[i]` has id `i`; `special` names the ids to
/// add as special tokens; `split_digits` splits numbers into single digits first (SmolLM).
pub fn byte_level_bpe_json(
    tokens: &[String],
    merges: &[String],
    special: &[u32],
    split_digits: bool,
) -> String {
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<_> = special
        .iter()
        .filter_map(|&id| tokens.get(id as usize).map(|t| (id, t)))
        .map(|(id, t)| {
            json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": true})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre = if split_digits {
        json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level]})
    } else {
        byte_level.clone()
    };
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": pre, "post_processor": null, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    })
    .to_string()
}

/// A tiny byte-level tokenizer for tests: the 256 byte symbols, then `specials`.
pub fn tiny_tokenizer_json(specials: &[&str]) -> String {
    let mut tokens: Vec<String> = byte_to_unicode().iter().map(|c| c.to_string()).collect();
    let first = tokens.len() as u32;
    tokens.extend(specials.iter().map(|s| s.to_string()));
    let ids: Vec<u32> = (first..first + specials.len() as u32).collect();
    byte_level_bpe_json(&tokens, &[], &ids, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_template_yields_its_default_system_prompt() {
        let t = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";
        let c = ChatTemplate::from_jinja(t).expect("chatml");
        assert_eq!(
            c.default_system.as_deref(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        let s = c.render(&[Message::new("user", "Hi")], true);
        assert!(s.starts_with("<|im_start|>system\nYou are"));
        assert!(s.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    }

    #[test]
    fn a_non_chatml_template_is_not_recognised() {
        assert!(ChatTemplate::from_jinja("{{ bos_token }}[INST] {{ m }} [/INST]").is_none());
    }

    #[test]
    fn tiny_tokenizer_round_trips_text_and_keeps_specials_whole() {
        let json = tiny_tokenizer_json(&["<|endoftext|>", "<|im_start|>", "<|im_end|>"]);
        let t = Tokenizer::from_json(&json, &["<|endoftext|>"], None, None).expect("tokenizer");
        let ids = t.encode("<|im_start|>héllo 12").expect("encode");
        assert_eq!(ids[0], 257);
        assert_eq!(ids.len(), 1 + "héllo 12".len());
        assert_eq!(t.decode(&ids, true).expect("decode"), "héllo 12");
        assert_eq!(t.eos_ids, vec![256]);
    }
}
