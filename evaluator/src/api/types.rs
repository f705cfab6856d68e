//! The API's wire types: request bodies and query strings, the envelopes its
//! responses come in, and the error body. The records inside the envelopes are
//! [`crate::domain::records`]', re-exported here so a client needs one import.
//! Every type derives `ToSchema`: the OpenAPI document is generated from these
//! and the handlers' `#[utoipa::path]` attributes, never written by hand.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use crate::db::judgments::{Judge, JudgmentSummary};
pub use crate::db::scores::ScoreSummary;
pub use crate::domain::{
    BaselineLeaderboard, BaselineRow, Dataset, DatasetResults, ImportSummary, Job, JobId,
    Leaderboard, LeaderboardEntry, LearnedReward, Metric, MetricSummary, Module, PairResult,
    System, SystemResults,
};
pub use crate::import::Format;
pub use crate::import::judgments::JudgmentFormat;
pub use crate::jobs::{CompareRequest, ScoreRequest};
pub use crate::pareto::{Better, Directions, Pareto, ParetoPoint, Sweep};

/// Every error: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for a program (`code`) and a person (`message`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable cause: `unauthorized`, `bad_request`, `not_found`,
    /// `conflict`, `payload_too_large`, `invalid_request`, `no_common_items`,
    /// `internal`, or the sandbox's error code for a refused module.
    pub code: String,
    /// One sentence naming the cause.
    pub message: String,
}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` when the database answers.
    pub status: String,
}

/// `GET /api/v1/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The team the token belongs to.
    pub team: String,
}

/// `GET /api/v1/modules`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModuleList {
    /// Newest first.
    pub modules: Vec<Module>,
}

/// `GET /api/v1/datasets`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatasetList {
    /// By name.
    pub datasets: Vec<Dataset>,
}

/// `GET /api/v1/datasets/{dataset}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatasetDetail {
    /// The dataset and its sizes.
    pub dataset: Dataset,
    /// The systems with generations on it, by name, counting those generations.
    pub systems: Vec<System>,
}

/// `GET /api/v1/systems`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SystemList {
    /// By name.
    pub systems: Vec<System>,
}

/// `GET /api/v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    /// The 100 most recent, newest first.
    pub jobs: Vec<Job>,
}

/// `GET /api/v1/jobs/{id}/pairs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobPairs {
    /// The comparison.
    pub job: Job,
    /// Its pairs so far (all of them once it succeeded).
    pub pairs: Vec<PairResult>,
}

/// `GET /api/v1/jobs/{id}/leaderboard`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobLeaderboard {
    /// The comparison.
    pub job: Job,
    /// Its leaderboard.
    #[serde(flatten)]
    pub leaderboard: Leaderboard,
}

/// `GET /api/v1/datasets/{dataset}/leaderboard`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatasetLeaderboard {
    /// The dataset's name.
    pub dataset: String,
    /// The comparison the leaderboard is of.
    pub job: JobId,
    /// Its leaderboard.
    #[serde(flatten)]
    pub leaderboard: Leaderboard,
}

/// `?system=NAME[&format=canonical|mario|alarm]`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The system the generations belong to (created if new).
    pub system: String,
    /// The file's format.
    #[serde(default)]
    #[param(inline)]
    pub format: Format,
}

/// `?x=METRIC&y=METRIC`, both optional.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ParetoQuery {
    /// The x axis's metric, `<module>/<metric>` (default: the dataset's first by name).
    #[serde(default)]
    pub x: Option<String>,
    /// The y axis's metric (default: its second, or the first when it has one).
    #[serde(default)]
    pub y: Option<String>,
}

/// `?judge=MODULE[&metric=METRIC]`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JudgeQuery {
    /// The judge: a module id or declared name.
    pub judge: String,
    /// For a scorer judge: the metric.
    #[serde(default)]
    pub metric: Option<String>,
}

/// `?judge=NAME[&format=canonical|alpaca_eval][&system=NAME][&baseline=NAME]`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JudgmentsQuery {
    /// The judge's name on the dataset (created if new), e.g. the annotator.
    pub judge: String,
    /// The file's format.
    #[serde(default)]
    #[param(inline)]
    pub format: JudgmentFormat,
    /// AlpacaEval files: the system `generator_2` stands for.
    #[serde(default)]
    pub system: Option<String>,
    /// AlpacaEval files: the system `generator_1` stands for.
    #[serde(default)]
    pub baseline: Option<String>,
}

/// `?judge=NAME&baseline=SYSTEM`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BaselineQuery {
    /// The judge, by name (`GET .../judges` lists them).
    pub judge: String,
    /// The system every other is compared with.
    pub baseline: String,
}

/// `GET /api/v1/datasets/{dataset}/judges`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JudgeList {
    /// The dataset's name.
    pub dataset: String,
    /// Its judges, by name.
    pub judges: Vec<Judge>,
}

/// `?system=NAME&metric=NAME`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScoresQuery {
    /// The system the scores are of (it must have generations on the dataset).
    pub system: String,
    /// The metric's name on the dataset (created if new; bound to the
    /// model's sha256): letters, digits and `_.:+=-`, no `/`.
    pub metric: String,
}

/// `POST /api/v1/datasets/{dataset}/scores`: a scores file and its provenance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoresPush {
    /// The scores file's name, for messages and the provenance shown
    /// (default `scores.jsonl`).
    #[serde(default)]
    pub file: Option<String>,
    /// The `.provenance.json` beside the file, as `trainer score` wrote it:
    /// `{"reward_model", "sha256", "command", "input", "lines"}`.
    #[schema(value_type = Object)]
    pub provenance: serde_json::Value,
    /// The scores file's text: JSON Lines of `{"id"?, "prompt", "score"}`.
    pub scores: String,
}
