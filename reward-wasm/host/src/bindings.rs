//! Host bindings generated from the single contract, `reward-wasm/wit/reward.wit`:
//! one module per world, all sharing the `types` interface of `scorer`.

#[allow(missing_docs, reason = "generated from the documented WIT")]
pub(crate) mod scorer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "scorer",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

#[allow(missing_docs, reason = "generated from the documented WIT")]
pub(crate) mod scorer_packed {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "scorer-packed",
        with: { "reward:wasm/types": super::scorer::reward::wasm::types },
    });
}

#[allow(missing_docs, reason = "generated from the documented WIT")]
pub(crate) mod scorer_spans {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "scorer-spans",
        with: { "reward:wasm/types": super::scorer::reward::wasm::types },
    });
}

#[allow(missing_docs, reason = "generated from the documented WIT")]
pub(crate) mod judge {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "judge",
        with: { "reward:wasm/types": super::scorer::reward::wasm::types },
    });
}

pub use scorer::reward::wasm::types::{Direction, Info, Metric, Sample, Span, Verdict};
