//! Request tracing and error logging, in one place for the API and the pages.
//!
//! A handler that fails with an internal error answers a generic 500 and puts
//! the error itself in the response's extensions ([`ErrorReport`]);
//! [`log_errors`], a layer around every route, logs it once with its whole
//! chain of causes. Responses never carry the details, and no `IntoResponse`
//! has a logging side effect (axum's error-handling example does the same).

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// An internal error travelling from a handler's response to [`log_errors`].
#[derive(Clone)]
pub struct ErrorReport(pub Arc<dyn std::error::Error + Send + Sync>);

impl ErrorReport {
    /// The error and each of its sources, `: `-separated.
    pub fn chain(&self) -> String {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// Logs the internal error a response carries, if any, with the request's
/// method and path.
pub async fn log_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if let Some(report) = response.extensions().get::<ErrorReport>() {
        tracing::error!(%method, %path, status = %response.status(), error = %report.chain(), "request failed");
    }
    response
}

/// Initialises logging for the binary: `RUST_LOG` (default `info`, sqlx at
/// `warn`) to standard error, coloured only on a terminal.
pub fn init() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
