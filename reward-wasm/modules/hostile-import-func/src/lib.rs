//! A well-formed component whose world imports a clock, which no reward world
//! offers: the host must refuse it by name when it is loaded.
//!
//! Written against raw `wit-bindgen` (not the SDK, which offers no such
//! import), whose generated glue is unsafe and undocumented.
#![allow(unsafe_code, missing_docs, reason = "wit-bindgen's generated bindings")]

wit_bindgen::generate!({
    inline: r#"
        package hostile:clock;

        world scorer {
            import now-nanos: func() -> u64;
            export score: func(batch: list<string>) -> list<f64>;
        }
    "#,
});

struct Clocked;

impl Guest for Clocked {
    fn score(batch: Vec<String>) -> Vec<f64> {
        batch.iter().map(|_| now_nanos() as f64).collect()
    }
}

export!(Clocked);
