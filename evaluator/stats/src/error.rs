//! The crate's one error type.
//!
//! Every fallible function in `evaluator-stats` returns [`Result`]. Variants carry
//! the name of the input or parameter at fault and, where it helps the caller
//! point at the offending row, its index.

use thiserror::Error;

/// What went wrong with the input to a statistic.
///
/// Nothing in this crate panics on user input; bad input surfaces as one of these.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    // === Shape errors ===
    /// An input that needs at least one element was empty.
    #[error("{what}: input is empty")]
    Empty {
        /// The input at fault (for example `"per_item"`).
        what: &'static str,
    },

    /// Two inputs that must be parallel have different lengths.
    #[error("{what}: lengths differ ({left} vs {right})")]
    LengthMismatch {
        /// The pair of inputs at fault.
        what: &'static str,
        /// Length of the first input.
        left: usize,
        /// Length of the second input.
        right: usize,
    },

    /// A point's number of coordinates differs from the number of directions.
    #[error("point {index} has {found} coordinates but {expected} directions were given")]
    DimensionMismatch {
        /// Index of the point at fault.
        index: usize,
        /// The dimension given by the directions.
        expected: usize,
        /// The point's actual dimension.
        found: usize,
    },

    // === Value errors ===
    /// A value was NaN or infinite.
    #[error("{what}: value at index {index} is not finite ({value})")]
    NonFinite {
        /// The input at fault.
        what: &'static str,
        /// Position of the value.
        index: usize,
        /// The value itself.
        value: f64,
    },

    /// A value lies outside the range the statistic accepts.
    #[error("{what}: value {value} at index {index} is outside [{min}, {max}]")]
    OutOfRange {
        /// The input at fault.
        what: &'static str,
        /// Position of the value.
        index: usize,
        /// The value itself.
        value: f64,
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },

    /// A per-item outcome was not one of 1 (win), 0.5 (tie) or 0 (loss).
    #[error("outcome at index {index} is {value}; expected 1, 0.5 or 0")]
    NotAnOutcome {
        /// Position of the value.
        index: usize,
        /// The value itself.
        value: f64,
    },

    /// A tuning parameter (confidence level, round count, penalty...) is invalid.
    #[error("{name} must be {expected}, got {value}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What the parameter must be, in words.
        expected: &'static str,
        /// The value given.
        value: f64,
    },

    // === Battle errors ===
    /// A battle names a system index `>= n_systems`.
    #[error("battle {index}: system {system} is out of range for {n_systems} systems")]
    SystemOutOfRange {
        /// Position of the battle.
        index: usize,
        /// The system index given.
        system: usize,
        /// The number of systems.
        n_systems: usize,
    },

    /// A battle pits a system against itself.
    #[error("battle {index}: system {system} cannot battle itself")]
    SelfBattle {
        /// Position of the battle.
        index: usize,
        /// The system index given on both sides.
        system: usize,
    },

    /// A judged item names an item index `>= n_items`.
    #[error("item {index}: item index {item} is out of range for {n_items} items")]
    ItemOutOfRange {
        /// Position of the entry at fault.
        index: usize,
        /// The item index given.
        item: usize,
        /// The number of items.
        n_items: usize,
    },

    // === Numerical errors ===
    /// An iterative fit did not reach its tolerance. This should not happen for
    /// finite input (the objectives are strictly convex); it is reported rather
    /// than returning a half-converged answer.
    #[error("{what}: did not converge in {iterations} iterations")]
    NotConverged {
        /// The fit at fault.
        what: &'static str,
        /// Iterations performed.
        iterations: usize,
    },
}

/// `Result` with this crate's [`Error`](enum@Error) as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that every value is finite.
pub(crate) fn check_finite(what: &'static str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Checks that `confidence` lies strictly between 0 and 1.
pub(crate) fn check_confidence(confidence: f64) -> Result<()> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name: "confidence",
            expected: "strictly between 0 and 1",
            value: confidence,
        })
    }
}
