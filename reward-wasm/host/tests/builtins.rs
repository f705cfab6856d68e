//! The built-in modules, run through the sandbox: their declared metrics, known
//! values, and bit-for-bit agreement with the native `reward-metrics` functions on
//! every MaRio held-out test response. (`reward-metrics`' own tests pin the native
//! functions to the independent Python reference, so the wasm modules agree with it
//! too.)

#[path = "common/mario.rs"]
mod mario;

use mario::{mario_dir, mario_test_samples};
use reward_builtins::{builtin, builtins};
use reward_host::{Direction, Host, HostConfig, Sample, Verdict};
use reward_metrics::{accuracy, diversity, length, qa, readability, rouge};

/// The built-in scorers (every built-in but the judge).
const SCORERS: [&str; 6] = [
    "accuracy",
    "diversity",
    "length",
    "readability",
    "rouge",
    "qa",
];

fn host() -> Host {
    Host::new(HostConfig::default()).unwrap()
}

#[test]
fn every_builtin_loads_and_declares_its_metrics() {
    let host = host();
    let expected: &[(&str, &[&str])] = &[
        ("accuracy", &["accuracy"]),
        ("diversity", &["diversity"]),
        ("length", &["words", "sentences", "characters"]),
        ("readability", &["fk_grade"]),
        ("rouge", &["rouge1", "rouge2", "rougeL"]),
        ("qa", &["exact_match", "f1"]),
        ("label-judge", &[]),
    ];
    let names: Vec<_> = builtins().map(|m| m.name).collect();
    assert_eq!(names, expected.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    for (name, metrics) in expected {
        let module = host.load(builtin(name).unwrap().wasm).unwrap();
        assert_eq!(module.info().name, *name);
        let declared: Vec<_> = module
            .info()
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(declared, *metrics, "{name}");
    }
    let readability = host.load(builtin("readability").unwrap().wasm).unwrap();
    assert_eq!(
        readability.info().metrics[0].direction,
        Direction::LowerIsBetter
    );
}

#[test]
fn builtins_score_known_examples() {
    let host = host();
    let score = |name: &str, sample: Sample| {
        host.load(builtin(name).unwrap().wasm)
            .unwrap()
            .score(&[sample])
            .unwrap()
    };

    let answer = Sample::new("Is the sky blue?", "The sky is blue. So the answer is Yes.")
        .with_reference("yes");
    assert_eq!(score("accuracy", answer.clone()), vec![vec![Some(1.0)]]);
    assert_eq!(
        score("accuracy", Sample::new("q", "no phrase")),
        vec![vec![None]]
    );
    // "The sky is blue." has 4 tokens: 3 bigrams, 2 trigrams, 1 4-gram, all unique.
    assert_eq!(score("diversity", answer.clone()), vec![vec![Some(1.0)]]);
    // "a a a a": bigrams 1 unique / 3, trigrams 1/2, 4-grams 1/1 -> 1/6.
    let repetitive = score("diversity", Sample::new("q", "a a a a So the answer is x"));
    assert!((repetitive[0][0].unwrap() - 1.0 / 6.0).abs() < 1e-12);
    assert_eq!(
        score("length", answer.clone()),
        vec![vec![Some(9.0), Some(2.0), Some(38.0)]]
    );
    assert_eq!(
        score("rouge", Sample::new("q", "x")),
        vec![vec![None, None, None]]
    );
    assert_eq!(
        score(
            "qa",
            Sample::new("q", "The Eiffel Tower").with_reference("eiffel tower")
        ),
        vec![vec![Some(1.0), Some(1.0)]]
    );
}

#[test]
fn the_label_judge_prefers_the_correct_label_then_diversity_in_both_orders() {
    let host = host();
    let judge = host.load(builtin("label-judge").unwrap().wasm).unwrap();
    let right = Sample::new("q", "Paris is in France. So the answer is yes.").with_reference("yes");
    let wrong =
        Sample::new("q", "Paris is in Spain, in Spain. So the answer is no.").with_reference("yes");
    let dull = Sample::new("q", "yes yes yes yes. So the answer is yes.").with_reference("yes");
    let limits = host.config().default_limits;
    let outcomes = judge
        .judge_pairs(
            &[
                (&right, &wrong),
                (&wrong, &right),
                (&right, &dull),
                (&right, &right),
            ],
            &limits,
        )
        .unwrap();
    let combined: Vec<_> = outcomes.iter().map(|o| o.combined()).collect();
    assert_eq!(
        combined,
        vec![
            Verdict::First,
            Verdict::Second,
            Verdict::First,
            Verdict::Tie
        ]
    );
    assert!(outcomes.iter().all(|o| o.is_position_consistent()));
    let no_reference = Sample::new("q", "x");
    assert!(judge.compare(&no_reference, &no_reference).is_err());
}

/// The native computation of every scorer's row, in each module's metric order.
fn native_rows(name: &str, sample: &Sample) -> Vec<Option<f64>> {
    let response = sample.response.as_str();
    let reference = sample.reference.as_deref().unwrap();
    match name {
        "accuracy" => vec![Some(accuracy::accuracy(response, reference))],
        "diversity" => vec![Some(diversity::diversity(response))],
        "length" => {
            let s = length::length(response);
            vec![
                Some(s.words as f64),
                Some(s.sentences as f64),
                Some(s.characters as f64),
            ]
        }
        "readability" => vec![readability::flesch_kincaid_grade(response)],
        "rouge" => {
            let r = rouge::rouge(response, reference);
            vec![Some(r.rouge1), Some(r.rouge2), Some(r.rouge_l)]
        }
        "qa" => vec![
            Some(qa::exact_match(response, reference)),
            Some(qa::token_f1(response, reference)),
        ],
        other => panic!("no native form for {other}"),
    }
}

#[test]
fn sandboxed_builtins_equal_native_metrics_bit_for_bit_on_mario_test_data() {
    if !mario_dir().is_dir() {
        eprintln!(
            "SKIPPED: MaRio data folder {} is absent",
            mario_dir().display()
        );
        return;
    }
    let host = host();
    let mut compared = 0;
    for dataset in ["strategyqa", "obqa", "quarel"] {
        let samples = mario_test_samples(dataset);
        assert!(
            samples.len() > 1_000,
            "{dataset}: only {} samples",
            samples.len()
        );
        for name in SCORERS {
            let module = host.load(builtin(name).unwrap().wasm).unwrap();
            for batch in samples.chunks(256) {
                let rows = module.score(batch).unwrap();
                for (sample, row) in batch.iter().zip(rows) {
                    let native = native_rows(name, sample);
                    let same = row.len() == native.len()
                        && row
                            .iter()
                            .zip(&native)
                            .all(|(a, b)| a.map(f64::to_bits) == b.map(f64::to_bits));
                    assert!(
                        same,
                        "{name} on {:?}: wasm {row:?} vs native {native:?}",
                        sample.response
                    );
                    compared += 1;
                }
            }
        }
    }
    eprintln!("compared {compared} (module, sample) rows");
}

#[test]
fn the_template_module_works_as_documented() {
    let host = host();
    let template = host
        .load(reward_builtins::test_module("template").unwrap().wasm)
        .unwrap();
    assert_eq!(template.info().name, "keyword-coverage");
    let covered = Sample::new("q", "The Seine flows through Paris.")
        .with_field("keywords", "seine, paris, loire")
        .with_field("max_words", "3");
    let rows = template
        .score(&[covered, Sample::new("q", "no fields")])
        .unwrap();
    // 2 of 3 keywords; 5 words against a budget of 3. No fields: both null.
    assert_eq!(
        rows,
        vec![vec![Some(2.0 / 3.0), Some(2.0)], vec![None, None]]
    );
    let bad_budget = Sample::new("q", "x").with_field("max_words", "many");
    let err = template.score(&[bad_budget]).unwrap_err();
    assert!(
        err.to_string().contains("max_words must be a whole number"),
        "{err}"
    );
}

#[test]
fn score_packed_gives_exactly_what_score_gives() {
    let packed = Host::new(HostConfig::default()).unwrap();
    let plain = Host::new(HostConfig {
        use_packed: false,
        ..HostConfig::default()
    })
    .unwrap();
    // Every shape the packed layout encodes: references present and absent, empty
    // strings, multi-byte text, fields with empty keys and values.
    let batch = vec![
        Sample::new("Is it?", "Yes it is. So the answer is yes.").with_reference("yes"),
        Sample::new("", ""),
        Sample::new("Ünïcödé ✓", "日本語のテキスト。 So the answer is (b).")
            .with_reference("(B)")
            .with_field("keywords", "テキスト, ✓")
            .with_field("", "")
            .with_field("max_words", "3"),
        Sample::new("q", "The Seine flows through Paris.").with_field("keywords", "seine, paris"),
    ];
    for name in SCORERS {
        let bytes = builtin(name).unwrap().wasm;
        let a = packed.load(bytes).unwrap().score(&batch).unwrap();
        let b = plain.load(bytes).unwrap().score(&batch).unwrap();
        assert_eq!(a, b, "{name}");
    }
    let template = reward_builtins::test_module("template").unwrap().wasm;
    let rows = packed.load(template).unwrap().score(&batch).unwrap();
    assert_eq!(rows, plain.load(template).unwrap().score(&batch).unwrap());
    // The fields really arrived through the packed path: one of the two keywords
    // (テキスト, not ✓), and 6 words against a budget of 3.
    assert_eq!(rows[2], vec![Some(0.5), Some(3.0)]);
    assert_eq!(rows[3][0], Some(1.0));
}

#[test]
fn scores_are_bit_identical_across_calls_and_hosts() {
    let batch: Vec<Sample> = (0..64)
        .map(|i| {
            Sample::new(
                "q",
                format!(
                    "Claim {i} holds because {} and more. So the answer is yes.",
                    "x y ".repeat(i % 7)
                ),
            )
            .with_reference("yes")
        })
        .collect();
    let bits = |host: &Host, name: &str| -> Vec<Option<u64>> {
        let rows = host
            .load(builtin(name).unwrap().wasm)
            .unwrap()
            .score(&batch)
            .unwrap();
        rows.into_iter()
            .flatten()
            .map(|v| v.map(f64::to_bits))
            .collect()
    };
    let (first, second) = (host(), host());
    for name in ["diversity", "readability", "rouge"] {
        let expected = bits(&first, name);
        for _ in 0..10 {
            assert_eq!(bits(&first, name), expected, "{name}");
            assert_eq!(bits(&second, name), expected, "{name}");
        }
    }
}
