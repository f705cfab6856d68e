//! `builtin:label-judge` — a pairwise judge for rationale-then-label responses:
//! the response with the correct label wins; when both or neither are correct, the
//! more diverse rationale wins; otherwise a tie.

use reward_metrics::{accuracy::accuracy, diversity::diversity};
use reward_sdk::{Info, Judge, Sample, Verdict, export_judge};

/// Diversity differences below this are ties: both values come from small integer
/// ratios, so anything smaller is float noise, not a preference.
const DIVERSITY_EPSILON: f64 = 1e-9;

struct LabelJudge;

impl Judge for LabelJudge {
    fn info() -> Info {
        Info::new(
            "label-judge",
            env!("CARGO_PKG_VERSION"),
            "Prefers the correct label (needs a reference), then the more diverse rationale.",
        )
    }

    fn compare(first: Sample, second: Sample) -> Result<Verdict, String> {
        let reference = first
            .reference
            .as_deref()
            .or(second.reference.as_deref())
            .ok_or_else(|| "label-judge needs a reference label on the samples".to_string())?;
        let (a, b) = (
            accuracy(&first.response, reference),
            accuracy(&second.response, reference),
        );
        if a != b {
            return Ok(if a > b {
                Verdict::First
            } else {
                Verdict::Second
            });
        }
        let delta = diversity(&first.response) - diversity(&second.response);
        Ok(if delta > DIVERSITY_EPSILON {
            Verdict::First
        } else if delta < -DIVERSITY_EPSILON {
            Verdict::Second
        } else {
            Verdict::Tie
        })
    }
}

export_judge!(LabelJudge);
