//! The evaluation service's pages, without the service: what a page shows and
//! how, never where the data comes from (no database, no HTTP here; the
//! evaluator's `pages` module queries, builds these views and serves them).
//!
//! # Layout
//! - [`views`]: one askama template struct per page and the rows they show;
//!   the templates themselves are in `web/templates/` (`base.html` is the
//!   frame every page extends; `jobs_table.html` is shared by the overview, the
//!   win-rate page and the htmx progress fragment).
//! - [`charts`]: SVG builders, the win-rate heatmap and the Pareto scatter.
//! - [`format`]: numbers, escaping, query strings, verdicts.
//! - [`paths`]: every page's address, built once for links, tabs and forms.
//! - [`assets`]: the static files (`web/static/`): the hand-written stylesheet
//!   and a vendored htmx 2 (`htmx.min.js`, licence in `htmx.LICENSE`).
//!
//! askama escapes every value it prints as HTML; the only `|safe` output is
//! the SVG the chart builders return, which escape user text themselves.

pub mod assets;
pub mod charts;
pub mod format;
pub mod paths;
pub mod views;

pub use askama::{Error as TemplateError, Template};
