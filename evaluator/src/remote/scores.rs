//! What `push-scores` does and prints: a learned reward model's scores
//! (`trainer score --output FILE`) and the provenance beside them, checked
//! here first (a typo or a stale provenance costs no upload), then sent.

use std::path::Path;

use super::{out, pretty};
use crate::api::types::{ScoreSummary, ScoresPush};
use crate::client::{Client, encode};
use crate::error::{Error, Result};
use crate::import::scores::{self, PROVENANCE_FORM, provenance_path};

/// `push-scores`: reads FILE and FILE.provenance.json, checks both, uploads
/// them and reports what was stored.
pub fn push_scores(
    client: &Client,
    json: bool,
    (dataset, system, metric): (&str, &str, &str),
    file: &Path,
) -> Result<()> {
    scores::MetricName::parse(metric).map_err(|e| Error::Usage(format!("--metric: {e}")))?;
    super::check_upload_size(
        file,
        "scores files",
        crate::state::MAX_IMPORT_BYTES,
        "split it into parts that score different items, each with its own provenance",
    )?;
    let body = std::fs::read_to_string(file).map_err(|source| Error::Io {
        action: "cannot read",
        path: file.to_path_buf(),
        source,
    })?;
    let side = provenance_path(file);
    let name = file.display().to_string();
    let side_name = side.display().to_string();
    let provenance_text = std::fs::read_to_string(&side).map_err(|e| {
        Error::Usage(format!(
            "{side_name}: cannot read it ({e}); push-scores reads the provenance `trainer score --output FILE` writes beside FILE, {PROVENANCE_FORM}"
        ))
    })?;
    let provenance = scores::parse_provenance(&side_name, &provenance_text);
    let parsed =
        scores::parse(&name, &body, provenance).map_err(|e| Error::Usage(e.to_string()))?;
    let provenance_value: serde_json::Value =
        serde_json::from_str(&provenance_text).map_err(|e| Error::Usage(e.to_string()))?;
    let request = ScoresPush {
        file: Some(parsed.name),
        provenance: provenance_value,
        scores: body,
    };
    let summary: ScoreSummary = client.post_json(
        &format!(
            "/api/v1/datasets/{}/scores?system={}&metric={}",
            encode(dataset),
            encode(system),
            encode(metric)
        ),
        &request,
    )?;
    if json {
        return out(&pretty(&summary));
    }
    out(&describe_push(&summary))
}

fn describe_push(s: &ScoreSummary) -> String {
    let mut text = format!(
        "{}/{}: learned reward `{}` (reward model sha256 {}): {} scores of {} generations, mean {}",
        s.dataset,
        s.system,
        s.metric,
        &s.sha256[..s.sha256.len().min(12)],
        s.scores,
        s.generations,
        web::format::plus_minus(s.mean, crate::results::Z95 * s.stderr),
    );
    if s.replaced {
        text.push_str(&format!(
            "\n  replaced the system's earlier scores from the same model ({} changed)",
            s.changed
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_report_names_the_model_and_says_what_it_replaced() {
        let mut summary = ScoreSummary {
            dataset: "qa".into(),
            system: "tuned".into(),
            metric: "helpful".into(),
            source: "reward_model".into(),
            sha256: "0123456789abcdef".repeat(4),
            scores: 3,
            generations: 4,
            replaced: false,
            changed: 0,
            mean: 0.5,
            stderr: 0.1,
        };
        let text = describe_push(&summary);
        assert_eq!(
            text,
            "qa/tuned: learned reward `helpful` (reward model sha256 0123456789ab): 3 scores of 4 generations, mean 0.50 ± 0.20"
        );
        summary.replaced = true;
        summary.changed = 2;
        assert!(describe_push(&summary).ends_with("(2 changed)"));
    }
}
