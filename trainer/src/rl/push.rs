//! `push_to`: each eval's generations go to an evaluation service as a system
//! `<run>:step-N` (the service's system names allow `[A-Za-z0-9_.:+=-]`, so not the `@`
//! one might expect; other characters of the run name become `-`), with metadata (step, algorithm, reward weights), so the service's pages
//! compare checkpoints next to other systems. Over HTTP, as any client would: the trainer
//! depends on the reward host, never on the evaluator.
//!
//! A failed push is reported and recorded in the metrics, and training goes on: the eval
//! file stays in the run directory, and `evaluator push-generations` can send it later.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// Where to push, and as whom.
#[derive(Debug, Clone)]
pub struct Target {
    /// The service's base URL (`http://127.0.0.1:8080`).
    pub url: String,
    /// A bearer token of the team (`EVALUATOR_TOKEN`).
    pub token: String,
    /// The dataset the generations belong to.
    pub dataset: String,
}

/// Pushes `file` (canonical generation lines) as `system` with `metadata`; returns the
/// service's import summary or one line saying what failed.
pub fn push(target: &Target, system: &str, file: &Path, metadata: &Value) -> Result<Value, String> {
    let body = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    // A small blocking client: one request at a time, between training steps.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(300)))
        .http_status_as_error(false)
        .build()
        .into();
    let base = target.url.trim_end_matches('/');
    let auth = format!("Bearer {}", target.token);
    let send =
        |method: &str, url: String, content_type: &str, body: &[u8]| -> Result<Value, String> {
            let request = match method {
                "PUT" => agent.put(&url),
                _ => agent.post(&url),
            };
            let mut response = request
                .header("Authorization", &auth)
                .header("Content-Type", content_type)
                .send(body)
                .map_err(|e| format!("{url}: {e}"))?;
            let status = response.status().as_u16();
            let text = response
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("{url}: {e}"))?;
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if status >= 400 {
                let message = value["error"]["message"]
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                return Err(format!("{url}: the service answered {status}: {message}"));
            }
            Ok(value)
        };
    let summary = send(
        "POST",
        format!(
            "{base}/api/v1/datasets/{}/generations?system={}&format=canonical",
            encode(&target.dataset),
            encode(system)
        ),
        "application/x-ndjson",
        &body,
    )?;
    send(
        "PUT",
        format!("{base}/api/v1/systems/{}/metadata", encode(system)),
        "application/json",
        metadata.to_string().as_bytes(),
    )?;
    Ok(summary)
}

/// The system name of the eval of `run` at `step`: `<run>:step-N`, with the characters the
/// service does not allow in names replaced by `-`.
pub fn system_name(run: &str, step: usize) -> String {
    format!("{}:step-{step}", clean_name(run))
}

/// `name` as a system name the service accepts: characters outside `[A-Za-z0-9_.:+=-]`
/// become `-`, and a name that does not start with a letter or digit gets `run` in front.
pub fn clean_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:+=-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        clean
    } else {
        format!("run{clean}")
    }
}

/// The metadata of an eval pushed at `step`.
pub fn metadata(step: usize, algorithm: &str, rewards: &[(String, f64)]) -> Value {
    let weights: serde_json::Map<String, Value> =
        rewards.iter().map(|(n, w)| (n.clone(), json!(w))).collect();
    json!({"step": step.to_string(), "algorithm": algorithm, "reward_weights": Value::Object(weights).to_string(),
           "trainer": "trainer rl"})
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_and_metadata_is_strings() {
        assert_eq!(encode("run@step-3 a/b"), "run%40step-3%20a%2Fb");
        assert_eq!(system_name("sqa grpo", 8), "sqa-grpo:step-8");
        assert_eq!(system_name(".hidden", 0), "run.hidden:step-0");
        let m = metadata(3, "grpo", &[("accuracy".into(), 1.0)]);
        assert_eq!(m["step"], "3");
        assert_eq!(m["reward_weights"], "{\"accuracy\":1.0}");
    }
}
