//! Domain values: what the service's rows mean, as types rather than strings
//! and bare integers.
//!
//! - ids ([`TeamId`], [`ModuleId`], [`DatasetId`], [`SystemId`], [`ItemId`],
//!   [`GenerationId`], [`JobId`], [`ChunkId`], [`JudgeId`]): one newtype per table, so a
//!   module id cannot be passed where a job id is expected. Each is a
//!   transparent `BIGINT` to sqlx and a plain integer on the wire;
//! - [`JobKind`], [`JobState`]: the `jobs.kind` and `jobs.state` columns;
//! - [`Direction`] and [`ModuleKind`] are the sandbox's own
//!   ([`reward_host::Direction`], [`reward_host::Kind`]), read from their text
//!   form here;
//! - pairwise outcomes are [`evaluator_stats::Outcome`], shared with the
//!   statistics and the pages; [`outcome_from_db`] / [`outcome_to_db`] are the
//!   `int2` encoding the tables use;
//! - [`records`]: the records the service hands out (modules, datasets,
//!   systems, jobs, results, leaderboards), the API's response shapes.

pub mod records;

use std::fmt;

use evaluator_stats::Outcome;
pub use records::{
    BaselineLeaderboard, BaselineRow, Dataset, DatasetResults, ImportSummary, Job, Leaderboard,
    LeaderboardEntry, LearnedReward, Metric, MetricSummary, Module, PairResult, System,
    SystemResults, Team,
};
pub use reward_host::{Direction, Kind as ModuleKind};
use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[schema(value_type = i64)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name)
            }
        }
    };
}

id!(
    /// `teams.id`.
    TeamId
);
id!(
    /// `modules.id`.
    ModuleId
);
id!(
    /// `datasets.id`.
    DatasetId
);
id!(
    /// `systems.id`.
    SystemId
);
id!(
    /// `items.id`.
    ItemId
);
id!(
    /// `generations.id`.
    GenerationId
);
id!(
    /// `jobs.id`.
    JobId
);
id!(
    /// `job_chunks.id`.
    ChunkId
);
id!(
    /// `judges.id`.
    JudgeId
);

/// A text column held a value the code does not know (a newer schema, or a
/// row written by hand).
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} `{value}`")]
pub struct UnknownValue {
    /// Which kind of value.
    pub what: &'static str,
    /// The text found.
    pub value: String,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Scorer modules × systems: one value per generation and metric.
    Score,
    /// Pairs of systems × a judge: one outcome per item both answered.
    Compare,
}

impl JobKind {
    /// The `jobs.kind` text.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Score => "score",
            JobKind::Compare => "compare",
        }
    }
}

impl TryFrom<String> for JobKind {
    type Error = UnknownValue;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "score" => Ok(JobKind::Score),
            "compare" => Ok(JobKind::Compare),
            _ => Err(UnknownValue {
                what: "job kind",
                value,
            }),
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Created; no chunk claimed yet.
    Queued,
    /// A worker has claimed a chunk.
    Running,
    /// Every chunk finished.
    Succeeded,
    /// A module fault, or a chunk out of attempts.
    Failed,
    /// Cancelled by its team.
    Cancelled,
}

impl JobState {
    /// The `jobs.state` text.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job reached a final state.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl TryFrom<String> for JobState {
    type Error = UnknownValue;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Ok(match value.as_str() {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => {
                return Err(UnknownValue {
                    what: "job state",
                    value,
                });
            }
        })
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A metric direction from its stored text (`module_metrics.direction`).
pub fn parse_direction(text: &str) -> Result<Direction, UnknownValue> {
    match text {
        "higher-is-better" => Ok(Direction::HigherIsBetter),
        "lower-is-better" => Ok(Direction::LowerIsBetter),
        _ => Err(UnknownValue {
            what: "metric direction",
            value: text.to_string(),
        }),
    }
}

/// A module kind from its stored text (`modules.kind`).
pub fn parse_module_kind(text: &str) -> Result<ModuleKind, UnknownValue> {
    match text {
        "scorer" => Ok(ModuleKind::Scorer),
        "judge" => Ok(ModuleKind::Judge),
        _ => Err(UnknownValue {
            what: "module kind",
            value: text.to_string(),
        }),
    }
}

/// The direction the statistics crate's Pareto and hypervolume functions take.
pub fn stats_direction(direction: Direction) -> evaluator_stats::Direction {
    match direction {
        Direction::HigherIsBetter => evaluator_stats::Direction::HigherIsBetter,
        Direction::LowerIsBetter => evaluator_stats::Direction::LowerIsBetter,
    }
}

/// An outcome as the tables store it (`int2`, from the first system's point
/// of view): 1, -1 or 0.
pub fn outcome_to_db(outcome: Outcome) -> i16 {
    match outcome {
        Outcome::AWins => 1,
        Outcome::BWins => -1,
        Outcome::Tie => 0,
    }
}

/// The stored `int2` read back; any other value than ±1 is a tie, as the
/// aggregates have always counted it.
pub fn outcome_from_db(value: i16) -> Outcome {
    match value {
        1 => Outcome::AWins,
        -1 => Outcome::BWins,
        _ => Outcome::Tie,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_states_round_trip_through_their_text() {
        for kind in [JobKind::Score, JobKind::Compare] {
            assert_eq!(JobKind::try_from(kind.as_str().to_string()).unwrap(), kind);
        }
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            assert_eq!(
                JobState::try_from(state.as_str().to_string()).unwrap(),
                state
            );
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::String(state.as_str().into())
            );
        }
        assert!(JobState::try_from("paused".to_string()).is_err());
    }

    #[test]
    fn directions_parse_from_the_sandbox_spelling() {
        for d in [Direction::HigherIsBetter, Direction::LowerIsBetter] {
            assert_eq!(parse_direction(d.as_str()).unwrap(), d);
        }
        assert!(parse_direction("up").is_err());
    }

    #[test]
    fn outcomes_round_trip_through_their_stored_encoding() {
        for o in [Outcome::AWins, Outcome::BWins, Outcome::Tie] {
            assert_eq!(outcome_from_db(outcome_to_db(o)), o);
        }
    }
}
