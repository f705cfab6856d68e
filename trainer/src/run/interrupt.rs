//! Ctrl-C and SIGTERM: the first asks the run to stop after the current step with a
//! checkpoint; a second ends the process at once.
//!
//! The binary installs the handlers ([`Interrupt::install`]); the library's loops only poll
//! [`Interrupt::requested`] between steps, so a library user (or a test) can stop a run by
//! setting the flag ([`Interrupt::request`]) without any signal.
//!
//! signal-hook is used because it makes the handlers async-signal-safe (they only store to
//! atomics) and provides the "second signal exits" arming that a hand-written `sigaction`
//! would have to re-implement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// A signal that asked the run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Signal {
    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    /// The conventional exit status of a process ended by it (128 + its number).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
        }
    }

    fn number(self) -> usize {
        match self {
            Self::Interrupt => 2,
            Self::Terminate => 15,
        }
    }
}

/// The stop request a run polls between steps.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    /// Set by the first signal; arms the immediate exit on the second.
    armed: Arc<AtomicBool>,
    /// The number of the latest signal (0: none).
    which: Arc<AtomicUsize>,
}

impl Interrupt {
    /// A request nobody will make unless [`Self::request`] is called.
    pub fn none() -> Self {
        Self::default()
    }

    /// Handles SIGINT and SIGTERM for the rest of the process's life: the first sets the
    /// request, a second exits at once with status 130 / 143.
    #[cfg(unix)]
    pub fn install() -> Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let me = Self::default();
        let io = |e: std::io::Error| Error::InvalidArgument(format!("signal handler: {e}"));
        for (sig, signal) in [(SIGINT, Signal::Interrupt), (SIGTERM, Signal::Terminate)] {
            // The exit must be registered first: it checks the flag before `register` sets it.
            flag::register_conditional_shutdown(
                sig,
                i32::from(signal.exit_code()),
                Arc::clone(&me.armed),
            )
            .map_err(io)?;
            flag::register(sig, Arc::clone(&me.armed)).map_err(io)?;
            flag::register_usize(sig, Arc::clone(&me.which), signal.number()).map_err(io)?;
        }
        Ok(me)
    }

    /// Elsewhere there are no signals to handle.
    #[cfg(not(unix))]
    pub fn install() -> Result<Self> {
        Ok(Self::default())
    }

    /// Asks the run to stop, as `signal` would.
    pub fn request(&self, signal: Signal) {
        self.which.store(signal.number(), Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// The signal that asked the run to stop, if one did.
    pub fn requested(&self) -> Option<Signal> {
        if !self.armed.load(Ordering::SeqCst) {
            return None;
        }
        Some(match self.which.load(Ordering::SeqCst) {
            15 => Signal::Terminate,
            _ => Signal::Interrupt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_seen_by_every_clone_with_its_signal() {
        let a = Interrupt::none();
        let b = a.clone();
        assert_eq!(b.requested(), None);
        a.request(Signal::Terminate);
        assert_eq!(b.requested(), Some(Signal::Terminate));
        assert_eq!(Signal::Terminate.exit_code(), 143);
        assert_eq!(Signal::Interrupt.name(), "SIGINT");
    }
}
