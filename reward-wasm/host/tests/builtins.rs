//! The built-in modules, run through the sandbox: their declared metrics, known
//! values, and bit-for-bit agreement with the native `reward-metrics` functions on
//! every MaRio held-out test response. (`reward-metrics`' own tests pin the native
//! functions to the independent Python reference, so the wasm modules agree with it
//! too.)

#[path = "common/mario.rs"]
mod mario;

use mario::{mario_dir, mario_test_samples};
use reward_builtins::{builtin, builtins};
use reward_host::{Direction, Host, HostConfig, Sample, Span, Verdict};
use reward_metrics::{accuracy, diversity, grounding, length, qa, readability, rouge};

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
        ("grounding", &["grounding"]),
        ("sentence-readability", &["fk_grade"]),
        ("qa-judge", &[]),
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
    for (name, direction) in [
        ("grounding", Direction::HigherIsBetter),
        ("sentence-readability", Direction::LowerIsBetter),
    ] {
        let module = host.load(builtin(name).unwrap().wasm).unwrap();
        assert!(module.has_spans(), "{name}");
        assert_eq!(module.info().metrics[0].direction, direction, "{name}");
    }
    for name in SCORERS {
        let module = host.load(builtin(name).unwrap().wasm).unwrap();
        assert!(!module.has_spans(), "{name}");
    }
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

// === Span built-ins ===

/// The built-ins that report spans.
const SPAN_SCORERS: [&str; 2] = ["grounding", "sentence-readability"];

/// The native computation of a span built-in's spans: each sentence's value at
/// the sentence's end, as the modules report them.
fn native_spans(name: &str, sample: &Sample) -> Vec<Span> {
    let values = match name {
        "grounding" => {
            let source = sample
                .fields
                .iter()
                .find(|(k, _)| k == "passages")
                .map_or(sample.prompt.as_str(), |(_, v)| v.as_str());
            grounding::grounding(&sample.response, source)
        }
        "sentence-readability" => readability::sentence_grades(&sample.response),
        other => panic!("no native form for {other}"),
    };
    values
        .into_iter()
        .map(|(sentence, value)| Span {
            end: u32::try_from(sentence.end).unwrap(),
            metric: 0,
            value,
        })
        .collect()
}

/// Samples that exercise the sentence rule and the passages fallback.
fn span_samples() -> Vec<Sample> {
    vec![
        Sample::new(
            "Where is the Eiffel Tower?",
            "The Eiffel Tower is in Paris. It was built by aliens! Really?",
        )
        .with_field("passages", "The Eiffel Tower is a tower in Paris, France."),
        // No passages field: grounded against the prompt.
        Sample::new(
            "Dr. Smith measured 3.5 litres of water.",
            "Dr. Smith measured 3.5 litres. Water, e.g. rain, is wet.\nNo terminator here",
        ),
        Sample::new("Ça va?", "Ça va. Très bien! « Oui. » Fin"),
        Sample::new("q", ""),
        Sample::new("q", "... !!! 42."),
        Sample::new("q", "the of and. It is."),
    ]
}

/// The spans equal the native functions', and `score` reports their mean (the
/// evaluator calls `score`, a trainer `score-spans`; they must agree).
#[track_caller]
fn assert_spans_match_native_and_score_is_their_mean(host: &Host, name: &str, batch: &[Sample]) {
    let module = host.load(builtin(name).unwrap().wasm).unwrap();
    let spans = module.score_spans(batch).unwrap();
    let rows = module.score(batch).unwrap();
    assert_eq!(spans.len(), batch.len());
    for ((sample, spans), row) in batch.iter().zip(&spans).zip(&rows) {
        let native = native_spans(name, sample);
        let bits = |s: &[Span]| -> Vec<(u32, u32, u64)> {
            s.iter()
                .map(|s| (s.end, s.metric, s.value.to_bits()))
                .collect()
        };
        assert_eq!(
            bits(spans),
            bits(&native),
            "{name} on {:?}",
            sample.response
        );
        // Summed in order and divided by the count, as the SDK does.
        let mean = (!spans.is_empty())
            .then(|| spans.iter().map(|s| s.value).sum::<f64>() / spans.len() as f64);
        assert_eq!(
            row[0].map(f64::to_bits),
            mean.map(f64::to_bits),
            "{name} on {:?}: score {row:?}, spans {spans:?}",
            sample.response
        );
    }
}

#[test]
fn span_builtins_give_the_native_spans_and_score_their_mean() {
    let host = host();
    let batch = span_samples();
    for name in SPAN_SCORERS {
        assert_spans_match_native_and_score_is_their_mean(&host, name, &batch);
    }
}

#[test]
fn span_builtins_report_known_values() {
    let host = host();
    let grounding = host.load(builtin("grounding").unwrap().wasm).unwrap();
    let batch = span_samples();
    let spans = grounding.score_spans(&batch[..1]).unwrap();
    // Passages words: the eiffel tower is a tower in paris france.
    // "The Eiffel Tower is in Paris." → eiffel, tower, paris: 3/3, ends at 29.
    // "It was built by aliens!" → built, aliens: 0/2, ends at 53.
    // "Really?" → really: 0/1, ends at 61.
    let expected = [(29, 1.0), (53, 0.0), (61, 0.0)].map(|(end, value)| Span {
        end,
        metric: 0,
        value,
    });
    assert_eq!(spans, vec![expected.to_vec()]);
    assert_eq!(
        grounding.score(&batch[..1]).unwrap(),
        vec![vec![Some(1.0 / 3.0)]]
    );
    // Without a content word anywhere there is no span, and the score is null.
    let empty = [Sample::new("q", ""), Sample::new("q", "It is what it is.")];
    assert_eq!(grounding.score_spans(&empty).unwrap(), vec![vec![], vec![]]);
    assert_eq!(
        grounding.score(&empty).unwrap(),
        vec![vec![None], vec![None]]
    );

    let readability = host
        .load(builtin("sentence-readability").unwrap().wasm)
        .unwrap();
    let text = Sample::new("q", "The cat sat. Water is beautiful.");
    let spans = readability
        .score_spans(std::slice::from_ref(&text))
        .unwrap();
    // "The cat sat." W = 3, Y = 3 → 0.39·3 + 11.8·1 − 15.59, ends at 12;
    // "Water is beautiful." W = 3, Y = 6 → 0.39·3 + 11.8·2 − 15.59, ends at 32.
    let first = 0.39 * 3.0 + 11.8 * 1.0 - 15.59;
    let second = 0.39 * 3.0 + 11.8 * 2.0 - 15.59;
    assert_eq!(spans[0].iter().map(|s| s.end).collect::<Vec<_>>(), [12, 32]);
    assert!((spans[0][0].value - first).abs() < 1e-12);
    assert!((spans[0][1].value - second).abs() < 1e-12);
    let row = readability.score(&[text]).unwrap();
    assert!((row[0][0].unwrap() - (first + second) / 2.0).abs() < 1e-12);
}

#[test]
fn span_builtins_equal_native_spans_on_mario_test_data() {
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
        // The prompts stand in for passages (no `passages` field).
        let samples = mario_test_samples(dataset);
        for name in SPAN_SCORERS {
            for batch in samples.chunks(256) {
                assert_spans_match_native_and_score_is_their_mean(&host, name, batch);
                compared += batch.len();
            }
        }
    }
    eprintln!("compared {compared} (module, sample) span lists");
}

/// Components built before the span world existed (the fuzz corpus keeps the
/// built-ins as they were then) still load, report no spans, and score exactly
/// as today's builds of the same modules.
#[test]
fn modules_built_before_the_span_world_load_and_score_as_before() {
    let host = host();
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/host_load");
    let batch = vec![
        Sample::new("Is it?", "Yes it is. So the answer is yes.").with_reference("yes"),
        Sample::new("Ünïcödé", "日本語のテキスト。 So the answer is (b).").with_reference("(B)"),
    ];
    for name in [
        "accuracy",
        "length",
        "readability",
        "rouge",
        "qa",
        "diversity",
    ] {
        let old = std::fs::read(corpus.join(format!("{name}.component.wasm"))).unwrap();
        let old = host.load(&old).unwrap();
        assert!(!old.has_spans(), "{name}");
        let new = host.load(builtin(name).unwrap().wasm).unwrap();
        assert_eq!(
            old.score(&batch).unwrap(),
            new.score(&batch).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn qa_judge_prefers_the_better_answer_then_the_better_grounded_one() {
    let host = host();
    let judge = host.load(builtin("qa-judge").unwrap().wasm).unwrap();
    let passages = "Apples grow on trees in orchards. Pears ripen in autumn.";
    let sample = |r: &str| {
        Sample::new("Where do apples grow?", r)
            .with_reference("Apples grow on trees.")
            .with_field("passages", passages)
    };
    // F1 against the reference decides first.
    let right = sample("Apples grow on trees.");
    let wrong = sample("Bananas are yellow.");
    assert_eq!(judge.compare(&right, &wrong).unwrap(), Verdict::First);
    assert_eq!(judge.compare(&wrong, &right).unwrap(), Verdict::Second);
    // Equal F1 (both 0 against the reference): the sentence grounded in the passages wins.
    let grounded = sample("Pears ripen in autumn.");
    let invented = sample("Mangoes sing at dawn.");
    assert_eq!(judge.compare(&grounded, &invented).unwrap(), Verdict::First);
    // Same answer: a tie; no reference: the judge says what it needs.
    assert_eq!(judge.compare(&right, &right).unwrap(), Verdict::Tie);
    let e = judge
        .compare(&Sample::new("q", "a"), &Sample::new("q", "b"))
        .unwrap_err();
    assert!(e.to_string().contains("needs a reference"), "{e}");
}
