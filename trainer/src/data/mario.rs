//! MaRio's one-object JSON files: the whole file is `{"0": {"question", ...}, "1": ...}`
//! (the raw splits and every system's responses). SFT examples and RL prompts read
//! different fields of the same records, so this module only recognises the form and
//! yields the records in MaRio's own order; the callers deserialize their fields.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The records of a MaRio file as `(key, record)` in numeric key order (as MaRio's loader
/// takes them), or `None` when `text` is not one JSON object of `question` records.
/// A record that does not deserialize names its key.
pub fn records<T: DeserializeOwned>(text: &str, path: &Path) -> Option<Result<Vec<(String, T)>>> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return None;
    };
    if map
        .values()
        .next()
        .is_none_or(|v| v.get("question").is_none())
    {
        return None;
    }
    let mut keyed: Vec<(String, serde_json::Value)> = map.into_iter().collect();
    keyed.sort_by_key(|(k, _)| (k.parse::<u64>().unwrap_or(u64::MAX), k.clone()));
    Some(
        keyed
            .into_iter()
            .map(|(k, v)| {
                let r = serde_json::from_value(v).map_err(|e| Error::Data {
                    path: path.to_path_buf(),
                    line: 0,
                    message: format!("record \"{k}\": {e}"),
                })?;
                Ok((k, r))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Q {
        question: String,
    }

    #[test]
    fn records_come_in_numeric_key_order_and_other_files_are_not_mario() {
        let p = Path::new("m.json");
        let text = r#"{"10": {"question": "b"}, "2": {"question": "a"}, "x": {"question": "c"}}"#;
        let got: Vec<(String, Q)> = records(text, p).expect("mario").expect("records");
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["2", "10", "x"]);
        assert_eq!(got[0].1.question, "a");
        assert!(records::<Q>("{\"prompt\": \"a\"}\n", p).is_none());
        assert!(records::<Q>(r#"{"0": {"prompt": "a"}}"#, p).is_none());
        let bad = records::<Q>(r#"{"0": {"question": 3}}"#, p).expect("mario form");
        let e = bad.expect_err("a number is no question").to_string();
        assert!(e.contains("m.json") && e.contains("record \"0\""), "{e}");
    }
}
