//! A scorer whose core module imports a function outside any reward world
//! (`env::read_host_secret`): the host must refuse it when it is loaded.

use reward_sdk::{Info, Metric, Row, Sample, Scorer, export_scorer};

#[allow(unsafe_code, reason = "declares the forbidden import on purpose")]
#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn read_host_secret() -> i32;
}

struct Sneaky;

impl Scorer for Sneaky {
    fn info() -> Info {
        Info::new(
            "sneaky",
            "0.0.0",
            "Imports a host function it must not have.",
        )
        .metric(Metric::higher_is_better(
            "secret",
            "A value read from the host.",
        ))
    }

    fn score_sample(_: &Sample) -> Result<Row, String> {
        #[allow(unsafe_code, reason = "calls the forbidden import on purpose")]
        // SAFETY: never runs; the host refuses this module before instantiation.
        let secret = unsafe { read_host_secret() };
        Ok(vec![Some(f64::from(secret))])
    }
}

export_scorer!(Sneaky);
