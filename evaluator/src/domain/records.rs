//! The records the service hands out: stored modules, datasets, systems,
//! imports, jobs, aggregated results, pairwise results and leaderboards.
//!
//! They are what the database layer returns (built from its private row
//! types), what the statistics service computes, and the bodies the API sends
//! and the client reads. Each derives `ToSchema`, so the OpenAPI document
//! describes exactly these shapes, and the API tests validate every response
//! against it: a field changed here changes the documented API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    DatasetId, Direction, JobId, JobKind, JobState, ModuleId, ModuleKind, SystemId, TeamId,
};

/// [`Direction`] and [`ModuleKind`] are the sandbox's types, which do not
/// implement serde: they travel as their text (`higher-is-better`, `scorer`).
mod text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::{Direction, ModuleKind, parse_direction, parse_module_kind};

    pub(super) mod direction {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(d: &Direction, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(d.as_str())
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Direction, D::Error> {
            let text = String::deserialize(d)?;
            parse_direction(&text).map_err(serde::de::Error::custom)
        }
    }

    pub(super) mod kind {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(k: &ModuleKind, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(k.as_str())
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ModuleKind, D::Error> {
            let text = String::deserialize(d)?;
            parse_module_kind(&text).map_err(serde::de::Error::custom)
        }
    }
}

/// The schema of a [`Direction`] on the wire.
#[derive(ToSchema)]
#[schema(as = Direction)]
#[allow(dead_code, reason = "only its schema is used")]
enum DirectionSchema {
    #[schema(rename = "higher-is-better")]
    HigherIsBetter,
    #[schema(rename = "lower-is-better")]
    LowerIsBetter,
}

/// The schema of a [`ModuleKind`] on the wire.
#[derive(ToSchema)]
#[schema(as = ModuleKind)]
#[allow(dead_code, reason = "only its schema is used")]
enum ModuleKindSchema {
    #[schema(rename = "scorer")]
    Scorer,
    #[schema(rename = "judge")]
    Judge,
}

/// A team, as the token or session that authenticated a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    /// Primary key.
    pub id: TeamId,
    /// Unique name.
    pub name: String,
}

/// A stored module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Module {
    /// Primary key.
    pub id: ModuleId,
    /// Hex SHA-256 of the uploaded bytes.
    pub sha256: String,
    /// Declared name.
    pub name: String,
    /// Declared version.
    pub version: String,
    /// Declared description.
    pub description: String,
    /// `scorer` or `judge`.
    #[serde(with = "text::kind")]
    #[schema(value_type = ModuleKindSchema)]
    pub kind: ModuleKind,
    /// Declared metrics, in column order.
    pub metrics: Vec<Metric>,
}

/// One declared metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Metric {
    /// Metric name.
    pub name: String,
    /// Metric description.
    pub description: String,
    /// `higher-is-better` or `lower-is-better`.
    #[serde(with = "text::direction")]
    #[schema(value_type = DirectionSchema)]
    pub direction: Direction,
}

/// A dataset, with its sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Dataset {
    /// Primary key.
    pub id: DatasetId,
    /// Name, unique within the team.
    pub name: String,
    /// Number of items.
    pub items: i64,
    /// Systems with at least one generation on it.
    pub systems: i64,
    /// Number of generations.
    pub generations: i64,
}

/// A system (a model, a checkpoint, a mixture...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct System {
    /// Primary key.
    pub id: SystemId,
    /// Name, unique within the team.
    pub name: String,
    /// Free-form metadata (checkpoint step, mixing weight λ, ...).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Generations on the dataset asked about (all datasets when listing the team's).
    pub generations: i64,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportSummary {
    /// The dataset's name.
    pub dataset: String,
    /// The system's name.
    pub system: String,
    /// Rows in the file.
    pub rows: u64,
    /// Items the dataset did not have before (new items).
    pub items_created: u64,
    /// Rows that met an item the dataset already had (by `id`, else by the
    /// normalised prompt; see [`crate::import::prompt_key`]).
    pub items_matched: u64,
    /// Items that other systems answered on the dataset and this system has no
    /// generation for, after this import.
    pub items_missing: u64,
    /// Other systems on the dataset sharing no item with this one: a comparison
    /// with them would be refused.
    pub systems_without_common_items: Vec<String>,
    /// Generations stored by this import.
    pub generations_created: u64,
    /// Rows identical to a generation already stored (a repeated push).
    pub generations_unchanged: u64,
    /// Rows whose reference differs from the one the item already has; the
    /// item keeps its first reference.
    pub reference_mismatches: u64,
}

/// A job, with its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Primary key.
    pub id: JobId,
    /// `score` or `compare`.
    pub kind: JobKind,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: JobState,
    /// The dataset's name.
    pub dataset: String,
    /// Chunks finished.
    pub done_chunks: i32,
    /// Chunks planned.
    pub total_chunks: i32,
    /// Samples (score) or item pairs (compare) finished.
    pub done_units: i64,
    /// Samples or item pairs planned.
    pub total_units: i64,
    /// For a failed job: the cause's code (the sandbox's error code for a module fault).
    pub error_code: Option<String>,
    /// For a failed job: what went wrong.
    pub error: Option<String>,
    /// Compare jobs: the judge module's id.
    pub judge_module_id: Option<ModuleId>,
    /// Compare jobs with a scorer judge: the metric's name.
    pub judge_metric: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// When a worker first claimed a chunk.
    pub started_at: Option<String>,
    /// When it reached a final state.
    pub finished_at: Option<String>,
}

impl Job {
    /// Whether the job reached a final state.
    pub fn is_finished(&self) -> bool {
        self.state.is_finished()
    }
}

/// One metric's summary for one system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricSummary {
    /// Mean over the generations with a value.
    pub mean: f64,
    /// Standard error of the mean (sample standard deviation / √n; 0 when n = 1).
    pub stderr: f64,
    /// Generations with a value (nulls are not counted).
    pub n: i64,
    /// Generations the metric did not apply to (null).
    pub nulls: i64,
    /// `higher-is-better` or `lower-is-better`.
    #[serde(with = "text::direction")]
    #[schema(value_type = DirectionSchema)]
    pub direction: Direction,
    /// Set for a metric pushed from outside the sandbox (`push-scores`): a
    /// learned reward, with where its scores came from. Absent for the
    /// sandboxed modules' metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<LearnedReward>,
}

/// Where a learned reward's scores for one system came from: the
/// `.provenance.json` of the push, who pushed it and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LearnedReward {
    /// What scored: `reward_model`.
    pub source: String,
    /// The reward model's directory, as the scoring machine named it.
    pub model: String,
    /// The model's SHA-256 (head + adapter); one per metric and dataset.
    pub sha256: String,
    /// The command line that wrote the scores.
    pub command: String,
    /// The generations file it read.
    pub input: String,
    /// Lines it scored.
    pub lines: i64,
    /// The scores file, as the push named it.
    pub file: String,
    /// The prefix of the token that pushed them.
    pub imported_by: String,
    /// When, `YYYY-MM-DD HH:MM` UTC.
    pub imported_at: String,
}

/// One system's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemResults {
    /// The system's name.
    pub system: String,
    /// The system's metadata.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// By `"<module>/<metric>"`, and learned rewards by their name (which
    /// has no `/`).
    pub metrics: BTreeMap<String, MetricSummary>,
}

/// A dataset's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatasetResults {
    /// The dataset's name.
    pub dataset: String,
    /// Systems by name.
    pub systems: Vec<SystemResults>,
}

/// One pair of systems in a comparison, wins counted for `a`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PairResult {
    /// The first system.
    pub a: String,
    /// The second system.
    pub b: String,
    /// Items compared so far (wins + losses + ties): the items both systems
    /// answered, once the comparison has finished.
    pub n: u64,
    /// Items `a` had answered on the dataset when the comparison was created;
    /// more than `n` when `b` lacks some.
    pub a_items: u64,
    /// Items `b` had answered then.
    pub b_items: u64,
    /// Items where the judge preferred `a`.
    pub wins: u64,
    /// Items where it preferred `b`.
    pub losses: u64,
    /// Ties (including verdicts the two presentation orders disagreed on).
    pub ties: u64,
    /// (wins + ties/2) / (wins + losses + ties); null with no items.
    pub win_rate: Option<f64>,
    /// 95% Wilson interval of the win rate.
    pub ci: Option<[f64; 2]>,
    /// Items whose verdict changed with the presentation order (judge modules only).
    pub inconsistent: u64,
    /// ALaRM's win rate: wins / (wins + losses), ties left out; null without a
    /// decisive item.
    pub win_rate_excluding_ties: Option<f64>,
    /// The length-controlled win rate (AlpacaEval 2.0's idea: a logistic model
    /// of the outcome with a length-difference term, read at equal length; see
    /// `evaluator_stats::length_control`); null when it cannot be fitted.
    pub lc_win_rate: Option<f64>,
}

/// One row of a Bradley–Terry leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaderboardEntry {
    /// The system's name.
    pub system: String,
    /// Rating on the Elo scale (400·log10-odds + 1000; the ratings of a group
    /// average 1000).
    pub rating: f64,
    /// 95% bootstrap interval (100 rounds, seeded).
    pub ci: [f64; 2],
    /// 1 + the number of systems of its group whose interval lies entirely
    /// above this one's.
    pub rank: usize,
    /// The connected group of the comparison graph it belongs to (1-based,
    /// the index into [`Leaderboard::groups`] + 1); always 1 when connected.
    pub group: usize,
}

/// A comparison's Bradley–Terry leaderboard, and whether it is one scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Leaderboard {
    /// The rated systems, group by group, best first within a group.
    pub systems: Vec<LeaderboardEntry>,
    /// Whether every system was compared, directly or through others, with
    /// every other: only then are all ratings on one scale.
    pub connected: bool,
    /// The connected groups of the comparison graph (systems as nodes, pairs
    /// with a compared item as edges), by name; a system with no compared item
    /// is a group of its own, and not rated.
    pub groups: Vec<Vec<String>>,
    /// For a disconnected graph: what that means, in one sentence.
    pub warning: Option<String>,
}

impl Leaderboard {
    /// Orders the entries (group, rank, rating, name) and states whether the
    /// groups make one scale.
    pub fn new(mut systems: Vec<LeaderboardEntry>, groups: Vec<Vec<String>>) -> Self {
        systems.sort_by(|x, y| {
            x.group
                .cmp(&y.group)
                .then(x.rank.cmp(&y.rank))
                .then(y.rating.total_cmp(&x.rating))
                .then(x.system.cmp(&y.system))
        });
        let connected = groups.len() <= 1;
        let warning = (!connected).then(|| {
            let listed = groups
                .iter()
                .map(|g| format!("{{{}}}", g.join(", ")))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "the comparison graph is disconnected: {} groups of systems were never compared \
                 with each other ({listed}); ratings and ranks are comparable only within a group",
                groups.len()
            )
        });
        Leaderboard {
            systems,
            connected,
            groups,
            warning,
        }
    }
}

/// One system's row against a fixed baseline: AlpacaEval's leaderboard
/// columns, under their names and in their units (percentages), plus a
/// Bradley–Terry rating from the same soft preferences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BaselineRow {
    /// The system's name.
    pub system: String,
    /// 100 × mean P(the system beats the baseline).
    pub win_rate: f64,
    /// 100 × its standard error (sample SD over √n).
    pub standard_error: f64,
    /// Items the system more likely won (P > ½).
    pub n_wins: u64,
    /// Items the baseline more likely won (P < ½).
    pub n_wins_base: u64,
    /// Items with P = ½ exactly.
    pub n_draws: u64,
    /// Items with a verdict.
    pub n_total: u64,
    /// 100 × (n_wins + n_draws/2) / n_total.
    pub discrete_win_rate: f64,
    /// Mean output length in characters (Unicode code points), truncated.
    pub avg_length: i64,
    /// AlpacaEval 2.0's length-controlled win rate (the GLM with instruction
    /// difficulties, `evaluator_stats::glm_winrate`), in percent; null when it
    /// cannot be fitted.
    pub length_controlled_winrate: Option<f64>,
    /// 100 × the spread of the per-item length-controlled predictions over √n,
    /// as AlpacaEval reports it.
    pub lc_standard_error: Option<f64>,
    /// Bradley–Terry rating (Elo scale) from the soft preferences, the
    /// baseline included.
    pub rating: f64,
    /// 95% bootstrap interval of the rating.
    pub rating_ci: [f64; 2],
}

/// The leaderboard of a judge's judgments against one baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BaselineLeaderboard {
    /// The dataset.
    pub dataset: String,
    /// The judge, by name.
    pub judge: String,
    /// The baseline system.
    pub baseline: String,
    /// How the length-controlled column was computed, in one sentence.
    pub length_control: String,
    /// Why the length-controlled column is empty, when its fit failed.
    pub length_control_error: Option<String>,
    /// Rows, best length-controlled win rate first (the baseline among them).
    pub systems: Vec<BaselineRow>,
}
