//! A judge with the worst position bias there is: it always prefers the response
//! shown first. Under ALaRM's rule (a verdict counts only when both presentation
//! orders agree) every one of its verdicts must become a tie; the service tests
//! use it to check exactly that.

use reward_sdk::{Info, Judge, Sample, Verdict, export_judge};

struct FirstWins;

impl Judge for FirstWins {
    fn info() -> Info {
        Info::new(
            "first-wins",
            "0.0.0",
            "Always prefers the first response (position bias, for tests).",
        )
    }

    fn compare(_first: Sample, _second: Sample) -> Result<Verdict, String> {
        Ok(Verdict::First)
    }
}

export_judge!(FirstWins);
