//! View models: one askama template struct per page (templates in
//! `web/templates/`), and the rows they show. Handlers fill them with
//! already-formatted strings and hrefs; the templates only lay them out.
//! Every template extends `base.html`, which needs `team` (empty: signed out).

use askama::Template;

/// An `<option>` of a `<select>`.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectOption {
    /// The submitted value.
    pub value: String,
    /// What the user reads.
    pub label: String,
    /// Whether it is the current choice.
    pub selected: bool,
}

/// A link in the dataset pages' tab bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Tab {
    /// The label.
    pub label: &'static str,
    /// The address.
    pub href: String,
    /// Whether it is the page shown.
    pub current: bool,
}

/// The tabs of a dataset's pages, `current` naming the one shown.
pub fn dataset_tabs(dataset: &str, current: &str) -> Vec<Tab> {
    use crate::paths;
    [
        ("Results", paths::dataset(dataset)),
        ("Win rates", paths::winrates(dataset)),
        ("Pareto", paths::pareto(dataset)),
        ("Leaderboard", paths::baseline(dataset)),
        ("Compare", paths::compare(dataset)),
    ]
    .into_iter()
    .map(|(label, href)| Tab {
        current: label == current,
        label,
        href,
    })
    .collect()
}

/// `/login`.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Always empty: nobody is signed in.
    pub team: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
}

/// A page that only says something: 404s and failures.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// The signed-in team, or empty.
    pub team: String,
    /// The heading (and title).
    pub title: String,
    /// What happened.
    pub message: String,
}

/// A job in a list, with its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// Its id.
    pub id: i64,
    /// `score` or `compare`.
    pub kind: String,
    /// Its state.
    pub state: String,
    /// The dataset's name.
    pub dataset: String,
    /// Units done.
    pub done: i64,
    /// Units planned.
    pub total: i64,
    /// 0 to 100.
    pub percent: i64,
    /// For a failed job: code and cause.
    pub error: Option<String>,
    /// Creation time.
    pub created: String,
    /// Where its results are (win rates for a comparison, results for a score run).
    pub href: String,
}

/// The recent jobs table, alone: what the htmx poll swaps in.
#[derive(Template)]
#[template(path = "jobs_fragment.html")]
pub struct JobsFragment {
    /// The jobs shown.
    pub jobs: Vec<JobRow>,
    /// Whether any is unfinished (the fragment then polls itself).
    pub live: bool,
    /// The fragment's own address.
    pub poll_url: String,
}

/// A dataset in the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRow {
    /// Its name.
    pub name: String,
    /// Its results page.
    pub href: String,
    /// Items.
    pub items: i64,
    /// Systems with generations.
    pub systems: i64,
    /// Generations.
    pub generations: i64,
}

/// A system in the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemRow {
    /// The datasets it has generations on, comma-separated.
    pub datasets: String,
    /// Its name.
    pub name: String,
    /// Its metadata as compact JSON.
    pub metadata: String,
    /// Generations over all datasets.
    pub generations: i64,
}

/// A module's metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// Its name.
    pub name: String,
    /// `↑ higher is better` or `↓ lower is better`.
    pub direction: String,
    /// Its description.
    pub description: String,
}

/// A stored module.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleRow {
    /// Its id.
    pub id: i64,
    /// The name it declares.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `scorer` or `judge`.
    pub kind: String,
    /// Its description.
    pub description: String,
    /// The first 12 hex digits of its SHA-256.
    pub sha: String,
    /// Its metrics (none for a judge).
    pub metrics: Vec<MetricRow>,
}

/// `/`.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    /// The signed-in team.
    pub team: String,
    /// Its datasets.
    pub datasets: Vec<DatasetRow>,
    /// Its systems.
    pub systems: Vec<SystemRow>,
    /// Its modules.
    pub modules: Vec<ModuleRow>,
    /// Recent jobs.
    pub jobs: Vec<JobRow>,
    /// Whether any recent job is unfinished.
    pub live: bool,
    /// The jobs fragment's address.
    pub poll_url: String,
    /// Failed jobs among the recent ones, with their causes.
    pub failures: Vec<JobRow>,
}

/// `/modules`.
#[derive(Template)]
#[template(path = "modules.html")]
pub struct ModulesPage {
    /// The signed-in team.
    pub team: String,
    /// Its modules, newest first.
    pub modules: Vec<ModuleRow>,
    /// Why the last upload was refused.
    pub error: Option<String>,
    /// What the last upload did.
    pub notice: Option<String>,
}

/// A column of the results table.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultColumn {
    /// `<module>/<metric>`.
    pub key: String,
    /// `↑` or `↓`.
    pub arrow: &'static str,
    /// `higher is better` or `lower is better`.
    pub direction: &'static str,
    /// The address sorting by this column (toggling the order when sorted).
    pub sort_href: String,
    /// `ascending`, `descending` or `none` (for `aria-sort`).
    pub aria_sort: &'static str,
    /// For a learned reward (scores pushed from outside the sandbox): what
    /// its badge says on hover, naming the model. `None` for a module's metric.
    pub learned: Option<String>,
}

/// One cell of the results table.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultCell {
    /// Whether it is the column's best mean, by the metric's direction.
    pub best: bool,
    /// `mean ± 1.96·stderr`, or empty.
    pub text: String,
    /// The unrounded mean (for tests and scripts), or empty.
    pub mean: String,
    /// n, nulls and the interval.
    pub title: String,
    /// Whether the column is a learned reward's.
    pub learned: bool,
}

/// One system's row.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// The system.
    pub system: String,
    /// Its metadata as compact JSON (empty for `{}`).
    pub metadata: String,
    /// One cell per column.
    pub cells: Vec<ResultCell>,
}

/// `/datasets/{dataset}`.
#[derive(Template)]
#[template(path = "results.html")]
pub struct ResultsPage {
    /// The signed-in team.
    pub team: String,
    /// The dataset.
    pub dataset: String,
    /// Tabs.
    pub tabs: Vec<Tab>,
    /// Items, systems, generations.
    pub summary: String,
    /// The metric columns.
    pub columns: Vec<ResultColumn>,
    /// The systems.
    pub rows: Vec<ResultRow>,
    /// Address sorting by system name.
    pub name_sort_href: String,
    /// CSV export.
    pub csv_href: String,
    /// JSON export.
    pub json_href: String,
    /// Where the job forms post.
    pub jobs_action: String,
    /// Scorers to run.
    pub scorers: Vec<SelectOption>,
    /// Judges (judge modules, and scorer metrics) to compare with.
    pub judges: Vec<SelectOption>,
    /// Why the last job request was refused.
    pub error: Option<String>,
    /// The learned rewards' provenance, one row per metric and system.
    pub learned: Vec<LearnedRewardRow>,
}

/// Where one system's learned-reward scores came from (`push-scores`).
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedRewardRow {
    /// The metric (its column).
    pub metric: String,
    /// The system.
    pub system: String,
    /// What scored: `reward model`.
    pub source: String,
    /// The model's directory on the machine that scored.
    pub model: String,
    /// The first 12 digits of its SHA-256.
    pub sha: String,
    /// All 64.
    pub sha256: String,
    /// The command line that wrote the scores.
    pub command: String,
    /// The generations file it read, and the lines it scored.
    pub input: String,
    /// Who pushed them (a token's prefix) and when.
    pub imported: String,
}

/// A row of the Bradley–Terry leaderboard.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderRow {
    /// 1-based rank.
    pub rank: usize,
    /// The system.
    pub system: String,
    /// Its rating.
    pub rating: String,
    /// Its 95% interval.
    pub ci: String,
    /// Its connected group of the comparison graph (1-based; shown only when
    /// there are several).
    pub group: usize,
}

/// A pair of the comparison, as a table row (the heatmap's numbers in words).
#[derive(Debug, Clone, PartialEq)]
pub struct PairRow {
    /// First system.
    pub a: String,
    /// Second system.
    pub b: String,
    /// Win rate of a.
    pub win_rate: String,
    /// Its 95% interval.
    pub ci: String,
    /// Win rate excluding ties.
    pub excluding_ties: String,
    /// Length-controlled win rate.
    pub lc: String,
    /// Items compared.
    pub n: u64,
    /// For a pair compared on part of its systems' items: how many each
    /// answered (`of 458 / 229 answered`).
    pub partial: Option<String>,
    /// `W / L / T`.
    pub counts: String,
    /// Position-inconsistent items.
    pub inconsistent: u64,
    /// The side-by-side view of the pair.
    pub href: String,
}

/// `/datasets/{dataset}/winrates`.
#[derive(Template)]
#[template(path = "winrates.html")]
pub struct WinratesPage {
    /// Whether the length-controlled rate applies (not when the judge is a
    /// length metric itself: controlling for length would explain it away).
    pub show_lc: bool,
    /// The colours of the heatmap, for its legend: (fill, meaning).
    pub legend: Vec<(String, &'static str)>,
    /// The signed-in team.
    pub team: String,
    /// The dataset.
    pub dataset: String,
    /// Tabs.
    pub tabs: Vec<Tab>,
    /// The page's own path (the job select submits to it).
    pub action: String,
    /// The dataset's comparison jobs.
    pub job_options: Vec<SelectOption>,
    /// The comparison shown, described.
    pub job_label: String,
    /// The heatmap SVG (built by [`crate::charts::heatmap_svg`]).
    pub heatmap: String,
    /// The leaderboard.
    pub leaderboard: Vec<LeaderRow>,
    /// Set when the comparison graph is disconnected: the ratings form several
    /// scales, which the page must say.
    pub leaderboard_warning: Option<String>,
    /// Set when some pairs were compared on part of their systems' items.
    pub overlap_note: Option<String>,
    /// The pairs.
    pub pairs: Vec<PairRow>,
    /// The job while it runs (progress, polled).
    pub jobs: Vec<JobRow>,
    /// Whether the job is unfinished.
    pub live: bool,
    /// The jobs fragment's address.
    pub poll_url: String,
    /// What to say when there is nothing to show.
    pub message: Option<String>,
}

/// A system on the Pareto page, as a table row.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoRow {
    /// The system.
    pub system: String,
    /// Its sweep's label, or empty.
    pub sweep: String,
    /// Its sweep's marker (built by [`crate::charts::sweep_marker_svg`]), or empty.
    pub marker: String,
    /// Its x value.
    pub x: String,
    /// Its y value.
    pub y: String,
    /// Whether it is on the front.
    pub on_front: bool,
    /// Its λ, when it has one.
    pub lambda: String,
    /// Its metadata `weights` (a MORL run's), formatted, or empty.
    pub weights: String,
    /// What hovering its point says, also the row's `title`.
    pub title: String,
    /// Its compare view.
    pub href: String,
}

/// A sweep on the Pareto page: its own front and hypervolume.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoSweepRow {
    /// Its label, as the chart's legend names it.
    pub label: String,
    /// Its marker (built by [`crate::charts::sweep_marker_svg`]).
    pub marker: String,
    /// Its systems shown.
    pub points: usize,
    /// Those no other system of the sweep dominates.
    pub on_front: usize,
    /// The area its points dominate from the common reference, formatted.
    pub hypervolume: String,
}

/// `/datasets/{dataset}/pareto`.
#[derive(Template)]
#[template(path = "pareto.html")]
pub struct ParetoPage {
    /// The axes' metrics, for the hypervolume's units.
    pub units: String,
    /// The signed-in team.
    pub team: String,
    /// The dataset.
    pub dataset: String,
    /// Tabs.
    pub tabs: Vec<Tab>,
    /// The page's own path (the axis selects submit to it).
    pub action: String,
    /// Metrics for the x axis.
    pub x_options: Vec<SelectOption>,
    /// Metrics for the y axis.
    pub y_options: Vec<SelectOption>,
    /// The scatter SVG (built by [`crate::charts::scatter_svg`]).
    pub chart: String,
    /// The systems.
    pub rows: Vec<ParetoRow>,
    /// Whether any system has `weights` (the table shows them then).
    pub show_weights: bool,
    /// The sweeps, each with its own front's hypervolume.
    pub sweeps: Vec<ParetoSweepRow>,
    /// The hypervolume, formatted.
    pub hypervolume: String,
    /// The reference point, formatted.
    pub reference: String,
    /// What to say when there is nothing to plot.
    pub message: Option<String>,
}

/// A sortable column header of the leaderboard against a baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct SortHeader {
    /// What it says.
    pub label: &'static str,
    /// The page sorted by this column.
    pub href: String,
    /// Whether the table is sorted by it.
    pub current: bool,
    /// Whether it holds numbers (right-aligned).
    pub numeric: bool,
    /// `ascending` or `descending`: the order sorting by it gives.
    pub order: &'static str,
}

/// A system against the baseline, formatted.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRowView {
    /// 1-based position in the current order.
    pub position: usize,
    /// The system.
    pub system: String,
    /// Whether it is the baseline.
    pub is_baseline: bool,
    /// Length-controlled win rate ± its 95% half-width.
    pub lc: String,
    /// Win rate ± its 95% half-width.
    pub win_rate: String,
    /// Discrete win rate.
    pub discrete: String,
    /// `wins / draws / losses`.
    pub counts: String,
    /// Average length in characters.
    pub avg_length: String,
    /// Bradley–Terry rating and interval.
    pub rating: String,
    /// The system side by side with the baseline.
    pub href: String,
}

/// `/datasets/{dataset}/leaderboard`.
#[derive(Template)]
#[template(path = "leaderboard.html")]
pub struct BaselinePage {
    /// The signed-in team.
    pub team: String,
    /// The dataset.
    pub dataset: String,
    /// Tabs.
    pub tabs: Vec<Tab>,
    /// The page's own path (the selects submit to it).
    pub action: String,
    /// The dataset's judges.
    pub judge_options: Vec<SelectOption>,
    /// Systems that can be the baseline.
    pub baseline_options: Vec<SelectOption>,
    /// The current sort, kept by the selects.
    pub sort: String,
    /// Column headers, each a link sorting by it.
    pub headers: Vec<SortHeader>,
    /// The rows.
    pub rows: Vec<BaselineRowView>,
    /// LC win rate against average length (built by [`crate::charts::scatter_svg`]).
    pub chart: String,
    /// How the length-controlled column was computed.
    pub length_control: String,
    /// What to say when there is nothing to show.
    pub message: Option<String>,
}

/// One metric of one item for both systems.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorePair {
    /// `<module>/<metric>`.
    pub metric: String,
    /// System A's score.
    pub a: String,
    /// System B's score.
    pub b: String,
}

/// One item side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareItem {
    /// A's response cut to a preview when long (the whole text is behind a
    /// disclosure); `None` when short enough to show whole.
    pub preview_a: Option<String>,
    /// B's preview, likewise.
    pub preview_b: Option<String>,
    /// The item's key.
    pub key: String,
    /// The prompt.
    pub prompt: String,
    /// The reference answer, if any.
    pub reference: Option<String>,
    /// A's response.
    pub response_a: String,
    /// B's response.
    pub response_b: String,
    /// Every metric of both generations.
    pub scores: Vec<ScorePair>,
    /// The verdict with A shown first (`A`, `B`, `tie`, `—`).
    pub a_first: &'static str,
    /// With B shown first.
    pub b_first: &'static str,
    /// What counted.
    pub outcome: &'static str,
    /// The outcome in words.
    pub outcome_long: &'static str,
    /// Whether the two orders disagreed.
    pub inconsistent: bool,
    /// External judges' preferences on this item for the pair, in words
    /// (`judge: P(B better) = 0.83`).
    pub judge_preferences: Vec<String>,
}

/// `/datasets/{dataset}/compare`.
#[derive(Template)]
#[template(path = "compare.html")]
pub struct ComparePage {
    /// For a comparison decided by a scorer's metric: that metric, shown
    /// instead of the two presentation orders a judge module has.
    pub metric_judge: Option<String>,
    /// The signed-in team.
    pub team: String,
    /// The dataset.
    pub dataset: String,
    /// Tabs.
    pub tabs: Vec<Tab>,
    /// The page's own path (the form submits to it).
    pub action: String,
    /// Systems for A.
    pub a_options: Vec<SelectOption>,
    /// Systems for B.
    pub b_options: Vec<SelectOption>,
    /// Comparison jobs covering the pair.
    pub job_options: Vec<SelectOption>,
    /// The filters.
    pub filter_options: Vec<SelectOption>,
    /// The search text.
    pub q: String,
    /// System A.
    pub a: String,
    /// System B.
    pub b: String,
    /// The items of this page.
    pub items: Vec<CompareItem>,
    /// `items 1–50 of 812`.
    pub range: String,
    /// The previous page, if any.
    pub prev_href: Option<String>,
    /// The next page, if any.
    pub next_href: Option<String>,
    /// What to say when there is nothing to show.
    pub message: Option<String>,
}
