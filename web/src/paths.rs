//! The pages' addresses, built in one place: the tab bar, the links between
//! pages and the forms' actions all come from here (the evaluator's router
//! serves the same patterns).

use crate::format::query_value;

/// `/datasets/{dataset}`: the results page.
pub fn dataset(name: &str) -> String {
    format!("/datasets/{}", query_value(name))
}

/// `/datasets/{dataset}/winrates`.
pub fn winrates(name: &str) -> String {
    format!("{}/winrates", dataset(name))
}

/// `/datasets/{dataset}/pareto`.
pub fn pareto(name: &str) -> String {
    format!("{}/pareto", dataset(name))
}

/// `/datasets/{dataset}/leaderboard`: a judge's judgments against a baseline.
pub fn baseline(name: &str) -> String {
    format!("{}/leaderboard", dataset(name))
}

/// `/datasets/{dataset}/compare`.
pub fn compare(name: &str) -> String {
    format!("{}/compare", dataset(name))
}

/// `/datasets/{dataset}/results.csv`.
pub fn results_csv(name: &str) -> String {
    format!("{}/results.csv", dataset(name))
}

/// `/datasets/{dataset}/results.json`.
pub fn results_json(name: &str) -> String {
    format!("{}/results.json", dataset(name))
}

/// `/datasets/{dataset}/jobs`: the form that starts a job.
pub fn jobs_form(name: &str) -> String {
    format!("{}/jobs", dataset(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_once_in_every_address() {
        assert_eq!(dataset("a b"), "/datasets/a%20b");
        assert_eq!(compare("x+y"), "/datasets/x%2By/compare");
        assert_eq!(results_csv("q"), "/datasets/q/results.csv");
    }
}
