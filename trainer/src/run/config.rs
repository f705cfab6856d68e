//! A command's settings: a TOML file with `--key value` flags laid over it.
//!
//! Each command declares its keys once, as a [`Key`] list next to its config struct (a test
//! there checks the two agree); the command line is derived from that list, so every key is
//! also a flag (`lora_rank` ↔ `--lora-rank`) and flags win over the file. Values are typed by
//! the list: `--lora-targets q_proj,v_proj` is a list, `--chat` alone is `true`.
//!
//! Every error is one line naming where the bad value came from: the flag, or the file and
//! line of the key; a missing key says how to give it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The type of a setting's value, which decides how its flag is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file or directory.
    Path,
    /// Text.
    Str,
    /// A whole number.
    Int,
    /// A number.
    Float,
    /// `true` / `false`; the bare flag means `true`.
    Bool,
    /// Comma-separated text values.
    List,
}

/// One setting of a command.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Its name in the TOML file.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// One line of help.
    pub help: &'static str,
}

impl Key {
    /// A setting.
    pub const fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Self { name, kind, help }
    }

    /// Its flag, `--lora-rank` for `lora_rank`.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }
}

/// The text `trainer CMD --help` shows for `keys`.
pub fn help(keys: &[Key]) -> String {
    let width = keys.iter().map(|k| k.flag().len()).max().unwrap_or(0);
    let mut s = String::from(
        "Settings (a key in the --config TOML file, or a flag; flags win over the file):\n",
    );
    for k in keys {
        let value = match k.kind {
            Kind::Path => "PATH",
            Kind::Str => "TEXT",
            Kind::Int => "N",
            Kind::Float => "X",
            Kind::Bool => "[BOOL]",
            Kind::List => "A,B,..",
        };
        s += &format!(
            "  {:width$} {value:7} {}\n",
            k.flag(),
            k.help,
            width = width
        );
    }
    s
}

/// Parses `--key value`, `--key=value` and bare boolean flags into a table of typed values.
pub fn parse_flags(args: &[String], keys: &[Key]) -> Result<toml::Table> {
    let mut table = toml::Table::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(body) = arg.strip_prefix("--") else {
            return Err(Error::config(
                "?",
                format!("unexpected argument `{arg}`: settings are given as --key value"),
            ));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let key = keys
            .iter()
            .find(|k| k.name == name.replace('-', "_"))
            .ok_or_else(|| {
                let near = nearest(name, keys)
                    .map(|k| format!(" (did you mean {}?)", k.flag()))
                    .unwrap_or_default();
                Error::config(
                    name.replace('-', "_"),
                    format!("unknown flag `--{name}`{near}; `--help` lists the settings"),
                )
            })?;
        let next_is_value = args.get(i + 1).is_some_and(|n| !n.starts_with("--"));
        let raw = match (inline, key.kind) {
            (Some(v), _) => v,
            (None, Kind::Bool) if !next_is_value => "true".into(),
            (None, _) => {
                i += 1;
                args.get(i).cloned().ok_or_else(|| {
                    Error::config(key.name, format!("flag {} needs a value", key.flag()))
                })?
            }
        };
        table.insert(key.name.to_string(), typed(key, &raw)?);
        i += 1;
    }
    Ok(table)
}

fn typed(key: &Key, raw: &str) -> Result<toml::Value> {
    use toml::Value;
    let bad = |what: &str| {
        Error::config(
            key.name,
            format!("flag {}: expected {what}, got `{raw}`", key.flag()),
        )
    };
    Ok(match key.kind {
        Kind::Path | Kind::Str => Value::String(raw.to_string()),
        Kind::Int => Value::Integer(raw.parse().map_err(|_| bad("a whole number"))?),
        Kind::Float => Value::Float(raw.parse().map_err(|_| bad("a number"))?),
        Kind::Bool => Value::Boolean(raw.parse().map_err(|_| bad("true or false"))?),
        Kind::List => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
    })
}

/// The key whose flag is a small edit away from `name`.
fn nearest<'a>(name: &str, keys: &'a [Key]) -> Option<&'a Key> {
    let name = name.replace('-', "_");
    keys.iter()
        .map(|k| (edit_distance(&name, k.name), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Where a command's settings came from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The `--config` file and its text.
    pub file: Option<(PathBuf, String)>,
    /// The flags, already typed.
    pub flags: toml::Table,
}

impl Sources {
    /// Reads the `--config` file (if any) and types the flags.
    pub fn read(file: Option<&Path>, args: &[String], keys: &[Key]) -> Result<Self> {
        let file = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::config(
                        "config",
                        format!("cannot read --config {}: {e}", p.display()),
                    )
                })?;
                Some((p.to_path_buf(), text))
            }
            None => None,
        };
        Ok(Self {
            file,
            flags: parse_flags(args, keys)?,
        })
    }

    /// The file's table with the flags laid over it.
    pub fn merged(&self) -> Result<toml::Table> {
        let mut table = match &self.file {
            Some((path, text)) => text.parse::<toml::Table>().map_err(|e| Error::Data {
                path: path.clone(),
                line: e.span().map_or(0, |s| line_of(text, s.start)),
                message: format!("not valid TOML: {}", e.message().trim()),
            })?,
            None => toml::Table::new(),
        };
        for (k, v) in &self.flags {
            table.insert(k.clone(), v.clone());
        }
        Ok(table)
    }

    /// The typed config: errors name the flag, or the file and line, of the bad key.
    pub fn resolve<T: DeserializeOwned>(&self) -> Result<T> {
        self.resolve_keys(|_| true)
    }

    /// [`Self::resolve`] over only the keys `keep` accepts: a command whose settings are
    /// another command's plus its own (DPO's are SFT's and `beta`, ...) types each part
    /// with its own struct, and each still refuses a key neither knows.
    pub fn resolve_keys<T: DeserializeOwned>(&self, keep: impl Fn(&str) -> bool) -> Result<T> {
        let mut table = self.merged()?;
        table.retain(|k, _| keep(k));
        let result: std::result::Result<T, _> =
            serde_path_to_error::deserialize(toml::Value::Table(table));
        result.map_err(|e| {
            let message = e.inner().to_string();
            let message = message
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            // "missing field `x`" / "unknown field `x`" quote the key; other errors carry it
            // in their path.
            let quoted = message.split('`').nth(1).map(str::to_string);
            let path = e.path().to_string();
            let key =
                if message.starts_with("missing field") || message.starts_with("unknown field") {
                    quoted.unwrap_or(path)
                } else {
                    path
                };
            self.error(&key, &message)
        })
    }

    /// A config error for `key`, naming where its value came from.
    pub fn error(&self, key: &str, message: &str) -> Error {
        let flag = format!("--{}", key.replace('_', "-"));
        if message.starts_with("missing field") {
            let file = self.file.as_ref().map_or_else(
                || "the --config file".to_string(),
                |(p, _)| p.display().to_string(),
            );
            return Error::config(
                key,
                format!("missing: set `{key} = ...` in {file}, or pass {flag}"),
            );
        }
        let origin = if self.flags.contains_key(key) {
            format!("flag {flag}")
        } else if let Some((path, text)) = &self.file {
            match key_line(text, key) {
                Some(line) => format!("{}:{line}", path.display()),
                None => path.display().to_string(),
            }
        } else {
            "settings".to_string()
        };
        Error::config(key, format!("{origin}: {message}"))
    }
}

/// Checks that `path`, the value of `key`, is a model: an HF directory or a `.gguf` file.
pub fn check_model_path(key: &str, path: &Path) -> Result<()> {
    const EXPECTED: &str = "expected an HF model directory (config.json, *.safetensors, \
                            tokenizer.json) or a .gguf file";
    let problem = if !path.exists() {
        "no such file or directory"
    } else if path.is_dir() && !path.join("config.json").is_file() {
        "the directory has no config.json"
    } else {
        return Ok(());
    };
    Err(Error::config(
        key,
        format!("{}: {problem}; {EXPECTED}", path.display()),
    ))
}

/// Checks that `path`, the value of `key`, is a readable file.
pub fn check_file(key: &str, path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::config(
            key,
            format!("{}: not a file", path.display()),
        )),
        Err(e) => Err(Error::config(key, format!("{}: {e}", path.display()))),
    }
}

/// The 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// The 1-based line where `key` (its last dotted part) is assigned.
fn key_line(text: &str, key: &str) -> Option<usize> {
    let last = key.rsplit('.').next()?;
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(last)
                .or_else(|| l.strip_prefix(&format!("\"{last}\"")))
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[Key] = &[
        Key::new("model", Kind::Path, "m"),
        Key::new("lr", Kind::Float, "lr"),
        Key::new("max_steps", Kind::Int, "n"),
        Key::new("chat", Kind::Bool, "c"),
        Key::new("lora_targets", Kind::List, "t"),
    ];

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only deserialised")]
    struct Cfg {
        model: PathBuf,
        #[serde(default)]
        lr: f64,
        #[serde(default)]
        max_steps: usize,
        #[serde(default)]
        chat: bool,
        #[serde(default)]
        lora_targets: Vec<String>,
    }

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn flags_are_typed_by_their_key() {
        let t = parse_flags(
            &args("--model 7 --lr=1e-3 --chat --max-steps 5 --lora-targets q,v"),
            KEYS,
        )
        .expect("flags");
        assert_eq!(t["model"].as_str(), Some("7"), "a path stays text");
        assert_eq!(t["lr"].as_float(), Some(1e-3));
        assert_eq!(t["chat"].as_bool(), Some(true));
        assert_eq!(t["max_steps"].as_integer(), Some(5));
        assert_eq!(t["lora_targets"].as_array().map(Vec::len), Some(2));
        let e = parse_flags(&args("--max-stpes 5"), KEYS).expect_err("typo");
        assert!(e.to_string().contains("did you mean --max-steps?"), "{e}");
        let e = parse_flags(&args("--max-steps many"), KEYS).expect_err("type");
        assert!(
            e.to_string()
                .contains("expected a whole number, got `many`"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_flag_or_the_file_and_line() {
        let src = |file: Option<&str>, flags: &str| Sources {
            file: file.map(|t| (PathBuf::from("run.toml"), t.to_string())),
            flags: parse_flags(&args(flags), KEYS).expect("flags"),
        };
        let e = src(None, "--lr 1").resolve::<Cfg>().expect_err("missing");
        let s = e.to_string();
        assert!(
            s.contains("key `model`") && s.contains("pass --model") && !s.contains('\n'),
            "{s}"
        );
        let e = src(Some("model = \"m\"\n\nlr = \"fast\"\n"), "")
            .resolve::<Cfg>()
            .expect_err("type");
        let s = e.to_string();
        assert!(s.contains("key `lr`: run.toml:3: invalid type"), "{s}");
        let e = src(Some("model = \"m\"\nbatchsize = 4\n"), "")
            .resolve::<Cfg>()
            .expect_err("unknown");
        assert!(e.to_string().contains("key `batchsize`: run.toml:2"), "{e}");
        let e = src(Some("model = \"m\"\nlr = [\n"), "")
            .resolve::<Cfg>()
            .expect_err("syntax");
        assert!(e.to_string().contains("run.toml:"), "{e}");
        let ok = src(Some("model = \"m\"\nlr = 0.5\n"), "--lr 0.25")
            .resolve::<Cfg>()
            .expect("flags win");
        assert_eq!(ok.lr, 0.25);
    }
}
