//! What every request handler can reach, and the request-size limits the API
//! and the pages share. Kept apart from [`crate::startup`] so that the routers
//! ([`crate::api`], [`crate::pages`]) depend on it and `startup` depends on
//! them, with no cycle.

use std::sync::Arc;

use crate::modules::Sandbox;
use axum::extract::FromRef;
use sqlx::PgPool;

/// The largest module upload accepted; larger bodies get 413 before any parsing.
pub const MAX_MODULE_BYTES: usize = 32 << 20;

/// The largest generations file accepted in one request.
pub const MAX_IMPORT_BYTES: usize = 256 << 20;

/// The handlers' shared state.
#[derive(Clone)]
pub struct AppState {
    /// The database; every request's data lives there.
    pub db: PgPool,
    /// The sandbox behind its compile queue: uploads are loaded in it before
    /// they are stored.
    pub sandbox: Arc<Sandbox>,
}

impl FromRef<AppState> for Arc<Sandbox> {
    fn from_ref(state: &AppState) -> Self {
        state.sandbox.clone()
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}
