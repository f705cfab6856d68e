//! The HTTP client behind the CLI's service commands (`push-module`, `run`,
//! `compare`, `status`, `results`, ...): one blocking request at a time, errors
//! mapped to [`Error::Api`] with the server's code and message.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A connection to an evaluator service.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: String,
}

/// Responses larger than this are refused (results of very large datasets fit).
const MAX_RESPONSE: u64 = 512 << 20;

/// Bodies larger than this ask the service first (`Expect: 100-continue`);
/// smaller ones are not worth the round trip.
const EXPECT_CONTINUE_ABOVE: usize = 1 << 20;

impl Client {
    /// A client for the service at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: &str) -> Result<Client> {
        if token.is_empty() {
            return Err(Error::Usage(
                "no API token: set EVALUATOR_TOKEN or pass --token (`evaluator admin create-team NAME` prints one)"
                    .into(),
            ));
        }
        let config = ureq::Agent::config_builder()
            // Imports of large files and first compilations can take a while;
            // connecting should not.
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(600)))
            // 4xx/5xx bodies carry the error's code and message: read them.
            .http_status_as_error(false)
            .build();
        Ok(Client {
            agent: config.into(),
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`, decoded.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = self.url(path);
        let response = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .call();
        self.decode(&url, response)
    }

    /// `POST path` with a JSON body, decoded.
    pub fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let url = self.url(path);
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Usage(e.to_string()))?;
        self.send(&url, "POST", "application/json", &bytes)
    }

    /// `PUT path` with a JSON body, decoded.
    pub fn put_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let url = self.url(path);
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Usage(e.to_string()))?;
        self.send(&url, "PUT", "application/json", &bytes)
    }

    /// `POST path` with raw bytes, decoded.
    pub fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<T> {
        let url = self.url(path);
        self.send(&url, "POST", content_type, bytes)
    }

    fn send<T: DeserializeOwned>(
        &self,
        url: &str,
        method: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<T> {
        let auth = format!("Bearer {}", self.token);
        for attempt in 1.. {
            let mut request = match method {
                "PUT" => self.agent.put(url),
                _ => self.agent.post(url),
            }
            .header("Authorization", &auth)
            .header("Content-Type", content_type);
            if bytes.len() > EXPECT_CONTINUE_ABOVE {
                // The service looks at Content-Length before reading a body, so with
                // `Expect: 100-continue` a refusal (413) arrives before the body is
                // sent and is read as an answer, rather than the server closing the
                // connection mid-upload and the client seeing only a broken pipe.
                request = request.header("Expect", "100-continue");
            }
            let response = request.send(bytes);
            if let Err(ureq::Error::Io(e)) = &response
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                )
            {
                return Err(Error::Http {
                    url: url.to_string(),
                    message: format!(
                        "the service closed the connection while {:.1} MiB were being sent, without \
                         an answer the client could read ({e}); it refuses bodies over its limits \
                         ({} MiB for modules, {} MiB for generations files)",
                        bytes.len() as f64 / f64::from(1u32 << 20),
                        crate::state::MAX_MODULE_BYTES >> 20,
                        crate::state::MAX_IMPORT_BYTES >> 20,
                    ),
                });
            }
            // A busy service (its compile queue is full) says when to come back;
            // a pipeline would rather wait than fail.
            if let Ok(busy) = &response
                && busy.status() == 503
                && attempt < BUSY_ATTEMPTS
                && let Some(wait) = retry_after(busy)
            {
                eprintln!(
                    "evaluator: the service is busy (503); retrying in {} s (attempt {attempt} of {BUSY_ATTEMPTS})",
                    wait.as_secs()
                );
                std::thread::sleep(wait);
                continue;
            }
            return self.decode(url, response);
        }
        unreachable!("the loop returns")
    }

    fn decode<T: DeserializeOwned>(
        &self,
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T> {
        let mut response = response.map_err(|e| Error::Http {
            url: url.to_string(),
            message: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_string()
            .map_err(|e| Error::Http {
                url: url.to_string(),
                message: format!("cannot read the response: {e}"),
            })?;
        if !(200..300).contains(&status) {
            let parsed: Option<serde_json::Value> = serde_json::from_str(&body).ok();
            let field = |name: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v["error"][name].as_str())
                    .map(str::to_string)
            };
            return Err(Error::Api {
                status,
                code: field("code").unwrap_or_else(|| "http".into()),
                message: field("message").unwrap_or_else(|| body.chars().take(500).collect()),
            });
        }
        serde_json::from_str(&body).map_err(|e| Error::Http {
            url: url.to_string(),
            message: format!(
                "unexpected response ({e}): {}",
                body.chars().take(200).collect::<String>()
            ),
        })
    }
}

/// Tries of a request the service answers 503 with `Retry-After` to.
const BUSY_ATTEMPTS: u32 = 5;

/// The `Retry-After` of a response in seconds (capped at a minute), if any.
fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<std::time::Duration> {
    let seconds: u64 = response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::Duration::from_secs(seconds.clamp(1, 60)))
}

/// Percent-encodes a path segment or query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
