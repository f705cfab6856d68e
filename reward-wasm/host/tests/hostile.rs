//! Hostile modules: each misdeed must end as its typed error within seconds, keep
//! the host's memory bounded, and leave the host able to serve the next call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reward_builtins::test_module;
use reward_host::{Error, Host, HostConfig, Limits, RewardModule, Sample, Span, SpanRule};

fn host() -> Host {
    Host::new(HostConfig::default()).expect("engine")
}

fn hostile(host: &Host) -> Arc<RewardModule> {
    host.load(test_module("hostile").unwrap().wasm)
        .expect("hostile module loads")
}

/// A batch whose first prompt names the misdeed.
fn batch(misdeed: &str) -> Vec<Sample> {
    vec![
        Sample::new(misdeed, "response"),
        Sample::new("-", "response"),
    ]
}

fn tight() -> Limits {
    Limits {
        timeout: Duration::from_secs(5),
        fuel: 2_000_000_000,
        memory_bytes: 64 << 20,
        table_elements: 10_000,
    }
}

/// The host still works after a failure: the same module scores a benign batch.
#[track_caller]
fn assert_recovers(module: &RewardModule) {
    let rows = module
        .score_with(&batch("behave"), &tight())
        .expect("benign call after a failure");
    assert_eq!(rows, vec![vec![Some(1.0)], vec![Some(1.0)]]);
}

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn an_infinite_loop_hits_the_wall_clock_deadline() {
    let host = host();
    let module = hostile(&host);
    let limits = Limits {
        timeout: Duration::from_millis(300),
        fuel: u64::MAX,
        ..tight()
    };
    let start = Instant::now();
    let err = module.score_with(&batch("loop"), &limits).unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        matches!(err, Error::Timeout { limit } if limit == limits.timeout),
        "{err}"
    );
    assert!(
        elapsed >= Duration::from_millis(300),
        "stopped early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "stopped late: {elapsed:?}"
    );
    assert_recovers(&module);
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_deterministically() {
    let host = host();
    let module = hostile(&host);
    let limits = Limits {
        fuel: 50_000_000,
        timeout: Duration::from_secs(60),
        ..tight()
    };
    for _ in 0..2 {
        let err = module.score_with(&batch("loop"), &limits).unwrap_err();
        assert!(
            matches!(err, Error::OutOfFuel { budget: 50_000_000 }),
            "{err}"
        );
    }
    assert_recovers(&module);
}

#[test]
fn a_memory_bomb_hits_the_memory_cap_and_memory_stays_bounded() {
    let host = host();
    let module = hostile(&host);
    let before = rss_bytes();
    for _ in 0..10 {
        let err = module.score_with(&batch("memory"), &tight()).unwrap_err();
        match err {
            Error::MemoryLimit { requested, limit } => {
                assert_eq!(limit, 64 << 20);
                assert!(requested > limit);
            }
            other => panic!("expected MemoryLimit, got {other}"),
        }
    }
    let grown = rss_bytes().saturating_sub(before);
    // Ten bombs at a 64 MiB cap: the slots are reset between calls, so resident
    // memory grows by at most about one cap, not ten.
    assert!(grown < 200 << 20, "RSS grew by {} MiB", grown >> 20);
    assert_recovers(&module);
}

#[test]
fn deep_recursion_overflows_the_wasm_stack_not_the_host() {
    let host = host();
    let module = hostile(&host);
    let err = module.score_with(&batch("recurse"), &tight()).unwrap_err();
    assert!(matches!(err, Error::StackOverflow), "{err}");
    assert_recovers(&module);
}

#[test]
fn a_guest_panic_is_reported_as_a_panic() {
    let host = host();
    let module = hostile(&host);
    let err = module.score_with(&batch("panic"), &tight()).unwrap_err();
    assert!(matches!(err, Error::GuestPanic { .. }), "{err}");
    assert_recovers(&module);
}

#[test]
fn contract_breaking_outputs_are_rejected() {
    let host = host();
    let module = hostile(&host);
    for (misdeed, needle) in [
        ("rows", "3 rows for 2 samples"),
        ("columns", "row 0 has 2 values for 1 metrics"),
        ("nan", "NaN"),
        ("infinity", "inf"),
    ] {
        let err = module.score_with(&batch(misdeed), &tight()).unwrap_err();
        match &err {
            Error::InvalidOutput { reason } => {
                assert!(reason.contains(needle), "{misdeed}: {reason}")
            }
            other => panic!("{misdeed}: expected InvalidOutput, got {other}"),
        }
    }
    assert_recovers(&module);
}

#[test]
fn guest_error_strings_are_passed_on_and_huge_ones_truncated() {
    let host = host();
    let module = hostile(&host);
    let err = module.score_with(&batch("error"), &tight()).unwrap_err();
    assert!(
        matches!(&err, Error::Guest { message } if message == "the scorer refused this batch"),
        "{err}"
    );
    let err = module
        .score_with(&batch("huge-error"), &tight())
        .unwrap_err();
    match err {
        Error::Guest { message } => {
            assert!(message.len() < reward_host::error::MAX_GUEST_MESSAGE + 64);
            assert!(
                message.ends_with(&format!("({} bytes in all)", 32 << 20)),
                "{message}"
            );
        }
        other => panic!("expected Guest, got {other}"),
    }
    assert_recovers(&module);
}

#[test]
fn garbage_and_truncated_bytes_are_invalid_modules() {
    let host = host();
    for bytes in [
        b"definitely not wasm".to_vec(),
        Vec::new(),
        // A real module cut in half.
        test_module("hostile").unwrap().wasm[..10_000].to_vec(),
        // A real component cut in half.
        reward_builtins::builtin("length").unwrap().wasm[..10_000].to_vec(),
    ] {
        let err = host.load(&bytes).unwrap_err();
        assert!(matches!(err, Error::InvalidModule { .. }), "{err}");
    }
    hostile(&host);
}

#[test]
fn a_core_module_importing_outside_the_world_is_refused() {
    let host = host();
    let err = host
        .load(test_module("hostile-import-core").unwrap().wasm)
        .unwrap_err();
    match err {
        Error::InvalidModule { reason } => assert!(reason.contains("env"), "{reason}"),
        other => panic!("expected InvalidModule, got {other}"),
    }
}

#[test]
fn a_component_importing_a_clock_is_refused_by_name() {
    let host = host();
    let err = host
        .load(test_module("hostile-import-func").unwrap().wasm)
        .unwrap_err();
    match err {
        Error::ForbiddenImport { names } => assert_eq!(names, vec!["now-nanos".to_string()]),
        other => panic!("expected ForbiddenImport, got {other}"),
    }
}

#[test]
fn limits_above_the_hosts_ceiling_are_a_config_error() {
    let host = host();
    let module = hostile(&host);
    let limits = Limits {
        memory_bytes: 4 << 30,
        ..tight()
    };
    let err = module.score_with(&batch("behave"), &limits).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
}

#[test]
fn a_scorer_is_not_a_judge() {
    let host = host();
    let module = hostile(&host);
    let sample = Sample::new("q", "a");
    let err = module.compare(&sample, &sample).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongKind {
                wanted: "judge",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn many_threads_share_one_host_and_failures_stay_isolated() {
    let host = Arc::new(host());
    let module = hostile(&host);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let module = module.clone();
            std::thread::spawn(move || {
                let misdeed = if i % 2 == 0 { "panic" } else { "behave" };
                (i, module.score_with(&batch(misdeed), &tight()))
            })
        })
        .collect();
    for handle in handles {
        let (i, result) = handle.join().unwrap();
        if i % 2 == 0 {
            assert!(matches!(result, Err(Error::GuestPanic { .. })));
        } else {
            assert_eq!(result.unwrap().len(), 2);
        }
    }
}

#[test]
fn loading_the_same_bytes_twice_reuses_the_compiled_module() {
    let host = host();
    let a = hostile(&host);
    let b = hostile(&host);
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.sha256_hex().len(), 64);
}

// === Span scorers (world scorer-spans) ===

/// A batch for `score-spans` whose first prompt names the misdeed; the first
/// response has multi-byte characters ("Ça va." is 7 bytes, Ç taking 2).
fn span_batch(misdeed: &str) -> Vec<Sample> {
    vec![Sample::new(misdeed, "Ça va."), Sample::new("-", "response")]
}

#[track_caller]
fn assert_spans_recover(module: &RewardModule) {
    let spans = module
        .score_spans_with(&span_batch("behave"), &tight())
        .expect("benign span call after a failure");
    assert_eq!(
        spans,
        vec![
            vec![Span {
                end: 7,
                metric: 0,
                value: 1.0
            }],
            vec![Span {
                end: 8,
                metric: 0,
                value: 1.0
            }],
        ]
    );
}

#[track_caller]
fn span_error(module: &RewardModule, misdeed: &str) -> Error {
    let err = module
        .score_spans_with(&span_batch(misdeed), &tight())
        .unwrap_err();
    // Every span error names the sample, the span and the rule.
    let message = err.to_string();
    assert!(message.contains("sample 0"), "{misdeed}: {message}");
    err
}

#[test]
fn the_hostile_module_reports_spans_and_behaves_by_default() {
    let host = host();
    let module = hostile(&host);
    assert!(module.has_spans());
    assert_spans_recover(&module);
    // Its `score` is still the misbehaving one the tests above use.
    assert_recovers(&module);
}

#[test]
fn a_span_past_the_response_end_is_refused() {
    let host = host();
    let module = hostile(&host);
    let err = span_error(&module, "span-past-end");
    assert!(
        matches!(
            err,
            Error::InvalidSpan {
                sample: 0,
                index: 0,
                span: Span { end: 8, .. },
                rule: SpanRule::PastEnd { response_bytes: 7 },
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("past the response's 7 bytes"),
        "{err}"
    );
    assert_spans_recover(&module);
}

#[test]
fn a_span_inside_a_multi_byte_character_is_refused() {
    let host = host();
    let module = hostile(&host);
    let err = span_error(&module, "span-mid-char");
    assert!(
        matches!(
            err,
            Error::InvalidSpan {
                sample: 0,
                span: Span { end: 1, .. },
                rule: SpanRule::NotCharBoundary,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("char boundary"), "{err}");
    assert_spans_recover(&module);
}

#[test]
fn a_span_of_an_undeclared_metric_is_refused() {
    let host = host();
    let module = hostile(&host);
    let err = span_error(&module, "span-metric");
    assert!(
        matches!(
            err,
            Error::InvalidSpan {
                sample: 0,
                span: Span { metric: 1, .. },
                rule: SpanRule::UndeclaredMetric { metrics: 1 },
                ..
            }
        ),
        "{err}"
    );
    assert_spans_recover(&module);
}

#[test]
fn nan_and_infinite_span_values_are_refused() {
    let host = host();
    let module = hostile(&host);
    for misdeed in ["span-nan", "span-infinity"] {
        let err = span_error(&module, misdeed);
        // The valid span comes first, the bad one second.
        assert!(
            matches!(
                err,
                Error::InvalidSpan {
                    sample: 0,
                    index: 1,
                    rule: SpanRule::NotFinite,
                    ..
                }
            ),
            "{misdeed}: {err}"
        );
        assert!(err.to_string().contains("not finite"), "{err}");
    }
    assert_spans_recover(&module);
}

#[test]
fn a_million_spans_fail_fast_with_bounded_memory() {
    let host = host();
    let module = hostile(&host);
    let before = rss_bytes();
    let start = Instant::now();
    for _ in 0..5 {
        let err = span_error(&module, "span-million");
        // "Ça va." (7 bytes) allows (7 + 1) × 1 metric = 8 spans.
        assert!(
            matches!(
                err,
                Error::TooManySpans {
                    sample: 0,
                    count: 1_000_000,
                    limit: 8
                }
            ),
            "{err}"
        );
    }
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    // A million spans are 16 MB in the guest and about as much lifted; five calls
    // must not keep them.
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 200 << 20, "RSS grew by {} MiB", grown >> 20);
    assert_spans_recover(&module);
}

#[test]
fn the_wrong_number_of_span_lists_is_refused() {
    let host = host();
    let module = hostile(&host);
    let err = module
        .score_spans_with(&span_batch("span-rows"), &tight())
        .unwrap_err();
    match &err {
        Error::InvalidOutput { reason } => {
            assert!(reason.contains("3 span lists for 2 samples"), "{reason}")
        }
        other => panic!("expected InvalidOutput, got {other}"),
    }
    assert_spans_recover(&module);
}

#[test]
fn span_guest_errors_and_traps_are_typed_as_for_score() {
    let host = host();
    let module = hostile(&host);
    let err = module
        .score_spans_with(&span_batch("span-error"), &tight())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Guest { message } if message == "the span scorer refused this batch"),
        "{err}"
    );
    // The sandbox is the same: fuel runs out, and the deadline passes, in
    // score-spans as in score.
    let limits = Limits {
        fuel: 50_000_000,
        timeout: Duration::from_secs(60),
        ..tight()
    };
    let err = module
        .score_spans_with(&span_batch("span-loop"), &limits)
        .unwrap_err();
    assert!(
        matches!(err, Error::OutOfFuel { budget: 50_000_000 }),
        "{err}"
    );
    let limits = Limits {
        fuel: u64::MAX,
        timeout: Duration::from_millis(300),
        ..tight()
    };
    let err = module
        .score_spans_with(&span_batch("span-loop"), &limits)
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_spans_recover(&module);
}

#[test]
fn modules_without_spans_say_so_by_name() {
    let host = host();
    let length = host
        .load(reward_builtins::builtin("length").unwrap().wasm)
        .unwrap();
    assert!(!length.has_spans());
    let err = length.score_spans(&[Sample::new("q", "a")]).unwrap_err();
    assert!(
        matches!(&err, Error::NoSpans { module } if module == "length"),
        "{err}"
    );
    assert!(
        err.to_string().contains("`length` exports no spans"),
        "{err}"
    );
    assert!(!err.is_module_fault());
    let judge = host
        .load(reward_builtins::builtin("label-judge").unwrap().wasm)
        .unwrap();
    assert!(!judge.has_spans());
    let err = judge.score_spans(&[Sample::new("q", "a")]).unwrap_err();
    assert!(matches!(err, Error::WrongKind { .. }), "{err}");
}
