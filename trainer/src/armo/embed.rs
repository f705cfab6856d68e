//! `trainer armo embed`: last-token final hidden states of a backbone, in resumable shards.
//!
//! A row is a prompt and a response rendered as `trainer rm` renders a scored sample (the
//! chat template by default; the prompt keeps its last `max_prompt_len` tokens, the
//! response is cut to fit `max_len`). One forward pass gives two embeddings: the final
//! hidden state at the response's last token (what the probes read) and at the prompt's
//! last token, the generation prompt included (what the gate reads; ArmoRM's prompt
//! embedding, taken at the end of the assistant header).
//!
//! The input is either samples, JSON Lines `{"id"?, "prompt", "response", "labels"?:
//! {"NAME": number | null}}`, or preference pairs in any form [`crate::data::pairs`] reads
//! (`--pairs`). The output directory holds:
//! - `index.json`: the settings ([`Index`]), the row keys (a sample's `id`, else its line;
//!   a pair's line) and, for samples, their labels by attribute (`null`: missing);
//! - `shard-NNNNN.safetensors`: `shard_size` rows each (the last may hold fewer), f32
//!   matrices `prompt` and `response` (samples) or `prompt`, `chosen` and `rejected`
//!   (pairs), `(rows, hidden_size)`, row `i` of shard `s` being row `s·shard_size + i` of the
//!   index.
//!
//! Re-running the same command skips the shards already written (each is written through a
//! temporary file and a rename, so a killed run leaves none half-written); changed settings
//! or a changed input are refused rather than mixed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::data::pairs::PairPrompt;
use crate::error::{Error, Result};
use crate::load::{self, tokenizer::Message, tokenizer::Tokenizer};
use crate::models::CausalLm;
use crate::sft::data::{Example, Tokenized, parts};
use crate::sft::train::collate;

/// The file of settings and keys in an embeddings directory.
pub const INDEX_FILE: &str = "index.json";

/// How a backbone renders and reads rows: recorded with every embedding set and every
/// ArmoRM run, so scoring renders exactly as the probes were fitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneSettings {
    /// An HF directory or a `.gguf` file.
    pub model: PathBuf,
    /// Render prompts and responses with the chat template.
    pub chat: bool,
    /// Longest row, in tokens.
    pub max_len: usize,
    /// Longest prompt, in tokens (its last ones are kept).
    pub max_prompt_len: usize,
}

/// A loaded backbone: frozen, f32, no gradients.
pub struct Backbone {
    model: CausalLm,
    tokenizer: Tokenizer,
    /// How it renders rows.
    pub settings: BackboneSettings,
}

/// A tokenized row and how many of its first tokens are the prompt.
pub struct Row {
    tokens: Tokenized,
    prompt_len: usize,
}

impl Backbone {
    /// Loads the model of `settings` onto `device`.
    pub fn load(settings: BackboneSettings, device: &Device) -> Result<Self> {
        let l = load::load_as(&settings.model, false, DType::F32, device)?;
        let mut model = l.model;
        model.set_training(false);
        let tokenizer = l.tokenizer.ok_or_else(|| {
            Error::checkpoint(&settings.model, "has no tokenizer: a backbone needs one")
        })?;
        if settings.max_len < 2 {
            return Err(Error::InvalidArgument(format!(
                "flag --max-len: {} is too short (at least 2 tokens)",
                settings.max_len
            )));
        }
        Ok(Self {
            model,
            tokenizer,
            settings,
        })
    }

    /// The hidden size `d`.
    pub fn hidden_size(&self) -> usize {
        self.model.hidden_size()
    }

    /// The device the model is on.
    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// `prompt` + `response` rendered and truncated as `trainer rm` scores a sample.
    pub fn tokenize(&self, prompt: &PairPrompt, response: &str) -> Result<Row> {
        let ex = match prompt {
            PairPrompt::Text(p) => Example::Text {
                prompt: p.clone(),
                completion: response.to_string(),
            },
            PairPrompt::Chat(history) => Example::Chat(
                history
                    .iter()
                    .cloned()
                    .chain([Message::new("assistant", response)])
                    .collect(),
            ),
        };
        let s = &self.settings;
        let (prompt, reply) = parts(&ex, &self.tokenizer, s.chat)?;
        let keep = prompt.len().min(s.max_prompt_len);
        let n = reply.len().min(s.max_len.saturating_sub(keep).max(1));
        let ids: Vec<u32> = prompt[prompt.len() - keep..]
            .iter()
            .chain(&reply[..n])
            .copied()
            .collect();
        Ok(Row {
            tokens: Tokenized {
                ids,
                loss_mask: [vec![0; keep], vec![1; n]].concat(),
            },
            prompt_len: keep,
        })
    }

    /// Prompt and response embeddings `(rows, d)` each, `batch_size` rows per forward pass
    /// (rows of similar length batched together, to pad little).
    pub fn embed(&self, rows: &[Row], batch_size: usize) -> Result<(Tensor, Tensor)> {
        let d = self.hidden_size();
        let dev = Device::Cpu;
        if rows.is_empty() {
            let z = Tensor::zeros((0, d), DType::F32, &dev)?;
            return Ok((z.clone(), z));
        }
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| rows[i].tokens.ids.len());
        let mut prompt = vec![Vec::new(); rows.len()];
        let mut response = vec![Vec::new(); rows.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let refs: Vec<&Tokenized> = chunk.iter().map(|&i| &rows[i].tokens).collect();
            let (inputs, _, _) = collate(&refs, self.tokenizer.pad_id, self.model.device())?;
            let hidden = self.model.forward_hidden(&inputs, None)?.detach();
            let (b, t, _) = hidden.dims3()?;
            // Positions in the flattened (b·t) rows: each row's last prompt token, then its
            // last token.
            let mut at: Vec<u32> = Vec::with_capacity(2 * b);
            for (k, &i) in chunk.iter().enumerate() {
                at.push((k * t + rows[i].prompt_len.max(1) - 1) as u32);
            }
            for (k, &i) in chunk.iter().enumerate() {
                at.push((k * t + rows[i].tokens.ids.len() - 1) as u32);
            }
            let at = Tensor::from_vec(at, 2 * b, hidden.device())?;
            let h: Vec<Vec<f32>> = hidden
                .reshape((b * t, d))?
                .index_select(&at, 0)?
                .to_dtype(DType::F32)?
                .to_vec2()?;
            for (k, &i) in chunk.iter().enumerate() {
                prompt[i] = h[k].clone();
                response[i] = h[b + k].clone();
            }
        }
        let stack = |v: Vec<Vec<f32>>| -> Result<Tensor> {
            let n = v.len();
            Ok(Tensor::from_vec(v.concat(), (n, d), &dev)?)
        };
        Ok((stack(prompt)?, stack(response)?))
    }

    /// Embeddings `(prompt (n, d), response (n, d))` of `(prompt, response)` texts.
    pub fn embed_texts(
        &self,
        items: &[(&str, &str)],
        batch_size: usize,
    ) -> Result<(Tensor, Tensor)> {
        let rows: Vec<Row> = items
            .iter()
            .map(|(p, r)| self.tokenize(&PairPrompt::Text((*p).to_string()), r))
            .collect::<Result<_>>()?;
        self.embed(&rows, batch_size)
    }
}

/// What an embeddings directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Samples: `prompt`, `response`.
    Samples,
    /// Preference pairs: `prompt`, `chosen`, `rejected`.
    Pairs,
}

impl Kind {
    /// The matrices of each shard.
    pub fn tensors(self) -> &'static [&'static str] {
        match self {
            Self::Samples => &["prompt", "response"],
            Self::Pairs => &["prompt", "chosen", "rejected"],
        }
    }
}

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Samples or pairs.
    pub kind: Kind,
    /// The backbone and its rendering.
    pub backbone: BackboneSettings,
    /// The input file.
    pub input: PathBuf,
    /// SHA-256 of the input file's bytes: a resumed run embeds the same rows.
    pub input_sha256: String,
    /// Rows per shard.
    pub shard_size: usize,
    /// The embedding size.
    pub hidden_size: usize,
    /// One key per row: a sample's `id` (its 1-based line when it has none), a pair's line.
    pub keys: Vec<Value>,
    /// Samples' labels by attribute, one per row (`None`: missing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Vec<Option<f64>>>,
}

impl Index {
    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.keys.len().div_ceil(self.shard_size.max(1))
    }

    /// The rows of shard `s`.
    pub fn shard_rows(&self, s: usize) -> std::ops::Range<usize> {
        let start = s * self.shard_size;
        start..(start + self.shard_size).min(self.keys.len())
    }
}

/// The file of shard `s`.
pub fn shard_path(dir: &Path, s: usize) -> PathBuf {
    dir.join(format!("shard-{s:05}.safetensors"))
}

/// Writes safetensors through a temporary sibling and a rename.
pub fn save_atomic(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let name = path
        .file_name()
        .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().to_string());
    let tmp = path.with_file_name(format!(".tmp-{name}"));
    candle_core::safetensors::save(tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// One sample line of an input file.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLine {
    /// Its `id`, else its 1-based line number.
    pub key: Value,
    /// Its `id` as given.
    pub id: Option<Value>,
    /// The prompt.
    pub prompt: String,
    /// The response.
    pub response: String,
    /// Its `labels`.
    pub labels: BTreeMap<String, Option<f64>>,
}

/// Reads samples `{"id"?, "prompt", "response", "labels"?}`; a malformed line names its
/// file and line and the expected form.
pub fn read_samples(path: &Path) -> Result<Vec<SampleLine>> {
    const FORM: &str =
        r#"{"prompt": "...", "response": "...", "id"?, "labels"?: {"NAME": number | null}}"#;
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::Data {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let v: Value = serde_json::from_str(line)
            .map_err(|e| bad(format!("not JSON ({e}); expected {FORM}")))?;
        let text_of = |key: &str| match v.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(bad(format!("`{key}` must be a string, found {other}"))),
            None => Err(bad(format!("missing `{key}`; expected {FORM}"))),
        };
        let mut labels = BTreeMap::new();
        match v.get("labels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, x) in m {
                    let value = match x {
                        Value::Null => None,
                        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
                        other => {
                            return Err(bad(format!(
                                "label `{k}` must be a number or null, found {other}"
                            )));
                        }
                    };
                    labels.insert(k.clone(), value);
                }
            }
            Some(other) => return Err(bad(format!("`labels` must be an object, found {other}"))),
        }
        let id = v.get("id").filter(|x| !x.is_null()).cloned();
        out.push(SampleLine {
            key: id.clone().unwrap_or_else(|| Value::from(i + 1)),
            id,
            prompt: text_of("prompt")?,
            response: text_of("response")?,
            labels,
        });
    }
    if out.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: 0,
            message: format!("no samples; expected JSON Lines of {FORM}"),
        });
    }
    Ok(out)
}

/// What `embed` is asked to do.
#[derive(Debug, Clone)]
pub struct EmbedJob {
    /// The backbone and its rendering.
    pub backbone: BackboneSettings,
    /// The input file.
    pub input: PathBuf,
    /// Samples or pairs.
    pub kind: Kind,
    /// The output directory.
    pub output: PathBuf,
    /// Rows per forward pass.
    pub batch_size: usize,
    /// Rows per shard.
    pub shard_size: usize,
}

/// What `embed` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedReport {
    /// Rows in the index.
    pub rows: usize,
    /// Shards written now.
    pub written: usize,
    /// Shards found complete and skipped.
    pub skipped: usize,
}

/// Embeds the rows of `job`, skipping complete shards; `progress(done, total)` after each
/// shard.
pub fn embed(
    job: &EmbedJob,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<EmbedReport> {
    if job.shard_size == 0 || job.batch_size == 0 {
        return Err(Error::InvalidArgument(
            "flags --shard-size and --batch-size must be at least 1".into(),
        ));
    }
    let bytes = std::fs::read(&job.input).map_err(|e| Error::io(&job.input, e))?;
    let input_sha256 = format!("{:x}", Sha256::digest(&bytes));
    // Rows: (key, prompt, responses (one per tensor after `prompt`)).
    let mut rows: Vec<(Value, PairPrompt, Vec<String>)> = Vec::new();
    let mut labels: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    match job.kind {
        Kind::Samples => {
            let samples = read_samples(&job.input)?;
            let names: std::collections::BTreeSet<&String> =
                samples.iter().flat_map(|s| s.labels.keys()).collect();
            for name in names {
                labels.insert(
                    name.clone(),
                    samples
                        .iter()
                        .map(|s| s.labels.get(name).copied().flatten())
                        .collect(),
                );
            }
            for s in samples {
                rows.push((s.key, PairPrompt::Text(s.prompt), vec![s.response]));
            }
        }
        Kind::Pairs => {
            for p in crate::data::pairs::read(&job.input)?.pairs {
                rows.push((Value::from(p.line), p.prompt, vec![p.chosen, p.rejected]));
            }
        }
    }
    let backbone = Backbone::load(job.backbone.clone(), device)?;
    let index = Index {
        kind: job.kind,
        backbone: job.backbone.clone(),
        input: job.input.clone(),
        input_sha256,
        shard_size: job.shard_size,
        hidden_size: backbone.hidden_size(),
        keys: rows.iter().map(|r| r.0.clone()).collect(),
        labels,
    };
    std::fs::create_dir_all(&job.output).map_err(|e| Error::io(&job.output, e))?;
    let index_path = job.output.join(INDEX_FILE);
    if index_path.is_file() {
        let old = read_index(&job.output)?;
        let mut changed = Vec::new();
        if old.kind != index.kind {
            changed.push("the kind (--pairs)".to_string());
        }
        if old.backbone != index.backbone {
            changed.push(format!(
                "the backbone settings (--model, --chat, --max-len, --max-prompt-len: {:?} then, \
                 {:?} now)",
                old.backbone, index.backbone
            ));
        }
        if old.input_sha256 != index.input_sha256 {
            changed.push(format!("the input's contents ({})", job.input.display()));
        }
        if old.shard_size != index.shard_size {
            changed.push(format!(
                "--shard-size ({} then, {} now)",
                old.shard_size, index.shard_size
            ));
        }
        if !changed.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} holds embeddings made with other settings: {}; restore them, or choose \
                 another --output",
                job.output.display(),
                changed.join(", ")
            )));
        }
    }
    crate::run::dir::write_atomic(
        &index_path,
        serde_json::to_string_pretty(&index)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?
            .as_bytes(),
    )?;
    let names = job.kind.tensors();
    let total = index.shards();
    let (mut written, mut skipped) = (0, 0);
    for s in 0..total {
        let path = shard_path(&job.output, s);
        let range = index.shard_rows(s);
        if path.is_file() && read_shard(&path, names, range.len(), index.hidden_size).is_ok() {
            skipped += 1;
            progress(s + 1, total);
            continue;
        }
        let mut tensors = HashMap::new();
        let chunk = &rows[range];
        for (k, name) in names[1..].iter().enumerate() {
            let toks: Vec<Row> = chunk
                .iter()
                .map(|(_, p, responses)| backbone.tokenize(p, &responses[k]))
                .collect::<Result<_>>()?;
            let (prompt, response) = backbone.embed(&toks, job.batch_size)?;
            // Every response of a pair shares the prompt's tokens: one prompt embedding.
            tensors.entry("prompt".to_string()).or_insert(prompt);
            tensors.insert((*name).to_string(), response);
        }
        save_atomic(&path, &tensors)?;
        written += 1;
        progress(s + 1, total);
    }
    Ok(EmbedReport {
        rows: index.keys.len(),
        written,
        skipped,
    })
}

/// Reads `index.json` of an embeddings directory.
pub fn read_index(dir: &Path) -> Result<Index> {
    let path = dir.join(INDEX_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::InvalidArgument(format!(
            "{}: {e}; expected an embeddings directory written by `trainer armo embed`",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Json { path, source: e })
}

fn read_shard(
    path: &Path,
    names: &[&str],
    rows: usize,
    d: usize,
) -> Result<HashMap<String, Tensor>> {
    let t = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::checkpoint(path, e.to_string()))?;
    for name in names {
        match t.get(*name) {
            Some(x) if x.dims() == [rows, d] => {}
            Some(x) => {
                return Err(Error::checkpoint(
                    path,
                    format!("`{name}` is {:?}, expected [{rows}, {d}]", x.dims()),
                ));
            }
            None => return Err(Error::checkpoint(path, format!("no `{name}` tensor"))),
        }
    }
    Ok(t)
}

/// A complete embeddings directory in memory.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// Its index.
    pub index: Index,
    /// Each matrix of [`Kind::tensors`], all shards stacked: `(rows, d)` f32 on the CPU.
    pub tensors: HashMap<String, Tensor>,
}

impl Embeddings {
    /// Reads every shard; a missing one is an error saying to finish `embed`.
    pub fn read(dir: &Path) -> Result<Self> {
        let index = read_index(dir)?;
        let names = index.kind.tensors();
        let mut parts: HashMap<&str, Vec<Tensor>> = HashMap::new();
        for s in 0..index.shards() {
            let path = shard_path(dir, s);
            if !path.is_file() {
                return Err(Error::InvalidArgument(format!(
                    "{}: shard {s} of {} is missing; re-run `trainer armo embed` to finish it",
                    dir.display(),
                    index.shards()
                )));
            }
            let mut t = read_shard(&path, names, index.shard_rows(s).len(), index.hidden_size)?;
            for name in names {
                if let Some(x) = t.remove(*name) {
                    parts.entry(name).or_default().push(x);
                }
            }
        }
        let mut tensors = HashMap::new();
        for name in names {
            let list = parts.remove(name).unwrap_or_default();
            let m = if list.is_empty() {
                Tensor::zeros((0, index.hidden_size), DType::F32, &Device::Cpu)?
            } else {
                Tensor::cat(&list, 0)?
            };
            tensors.insert((*name).to_string(), m);
        }
        Ok(Self { index, tensors })
    }

    /// The matrix `name`, or an error naming what the directory holds.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "embeddings of {} have no `{name}` ({:?} holds {})",
                self.index.input.display(),
                self.index.kind,
                self.index.kind.tensors().join(", ")
            ))
        })
    }
}
