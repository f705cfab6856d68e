//! `trainer armo` end to end on a tiny model the tests write: embeddings in resumable
//! shards, probes that recover a known linear labelling, debiasing, a gate that learns the
//! preference, scoring that agrees with the embeddings, `armo:` as a reward source, and the
//! command line.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use trainer::armo::debias;
use trainer::armo::embed::{self, BackboneSettings, EmbedJob, Embeddings, Kind};
use trainer::armo::fit::{self, GatingJob, ProbeJob};
use trainer::armo::gate::GateTraining;
use trainer::armo::{ArmoModel, ArmoSource};
use trainer::reward::RewardSource;

const PROMPTS: usize = 6;
const PER_PROMPT: usize = 12;

fn prompt(k: usize) -> String {
    format!("question {k}: what is {}?", k * 7)
}

fn response(k: usize, i: usize) -> String {
    // Varied content and lengths, so the embeddings span many directions.
    let words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta"];
    let n = 1 + (i * 5 + k) % 9;
    (0..n)
        .map(|w| words[(w * 3 + i + 2 * k) % words.len()])
        .collect::<Vec<_>>()
        .join(" ")
        + &format!(" {i}")
}

fn write_samples(path: &Path) {
    let mut f = std::fs::File::create(path).expect("samples");
    for k in 0..PROMPTS {
        for i in 0..PER_PROMPT {
            let v = serde_json::json!({"id": format!("s{k}-{i}"), "prompt": prompt(k), "response": response(k, i)});
            writeln!(f, "{v}").expect("w");
        }
    }
}

fn backbone(dir: &Path) -> BackboneSettings {
    BackboneSettings {
        model: dir.join("model"),
        chat: true,
        max_len: 48,
        max_prompt_len: 24,
    }
}

fn embed_job(dir: &Path, input: &str, kind: Kind, output: &str) -> EmbedJob {
    EmbedJob {
        backbone: backbone(dir),
        input: dir.join(input),
        kind,
        output: dir.join(output),
        batch_size: 5,
        shard_size: 16,
    }
}

fn lcg(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
        .collect()
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(candle_core::DType::F64)
        .expect("f64")
        .to_vec2()
        .expect("rows")
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Everything one pipeline run leaves behind.
struct Pipeline {
    dir: tempfile::TempDir,
    /// The labelling's true weights per attribute: `quality`, `style`, `verbosity`.
    truth: Vec<Vec<f64>>,
    /// The samples' response embeddings.
    samples: Vec<Vec<f64>>,
}

impl Pipeline {
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn run(&self) -> PathBuf {
        self.path().join("run")
    }
}

/// Embeds the samples, labels them with known linear functions of their embeddings (some
/// labels missing), fits the probes and debiases on the samples.
fn pipeline() -> Pipeline {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    common::write_tiny(&p.join("model"), &common::tiny_llama_json(), 11);
    write_samples(&p.join("samples.jsonl"));
    let job = embed_job(p, "samples.jsonl", Kind::Samples, "emb");
    let r = embed::embed(&job, &Device::Cpu, |_, _| {}).expect("embed");
    assert_eq!(
        (r.rows, r.written, r.skipped),
        (72, 5, 0),
        "72 rows in 5 shards of 16"
    );
    let emb = Embeddings::read(&p.join("emb")).expect("read");
    let samples = rows(emb.get("response").expect("response"));
    let d = samples[0].len();
    assert_eq!(d, 32, "the tiny model's hidden size");
    let truth: Vec<Vec<f64>> = (0..3).map(|j| lcg(100 + j, d)).collect();
    // Labels: exact linear functions, a few missing (null) per attribute.
    let mut f = std::fs::File::create(p.join("labels.jsonl")).expect("labels");
    for (n, e) in samples.iter().enumerate() {
        let (k, i) = (n / PER_PROMPT, n % PER_PROMPT);
        let label = |j: usize| {
            if (n + j).is_multiple_of(13) {
                serde_json::Value::Null
            } else {
                dot(e, &truth[j]).into()
            }
        };
        let v = serde_json::json!({"id": format!("s{k}-{i}"), "prompt": prompt(k), "response": response(k, i),
            "labels": {"quality": label(0), "style": label(1), "verbosity": label(2)}});
        writeln!(f, "{v}").expect("w");
    }
    drop(f);
    let probes = fit::fit_probes(&ProbeJob {
        embeddings: p.join("emb"),
        labels: Some(p.join("labels.jsonl")),
        attributes: vec![],
        seed: 42,
        run: p.join("run"),
    })
    .expect("probes");
    let names: Vec<&str> = probes.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["quality", "style", "verbosity"],
        "sorted label names"
    );
    fit::debias(
        &p.join("run"),
        &p.join("emb"),
        "verbosity",
        debias::THRESHOLD,
    )
    .expect("debias");
    Pipeline {
        dir,
        truth,
        samples,
    }
}

#[test]
fn probes_recover_a_linear_labelling_and_skip_missing_labels() {
    let pl = pipeline();
    let meta: fit::ProbesMeta = fit::read_meta(&pl.run(), fit::PROBES_META).expect("meta");
    let w = rows(&fit::read_probes(&pl.run(), &Device::Cpu).expect("w"));
    for (j, a) in meta.attributes.iter().enumerate() {
        // 72 rows, 5 or 6 missing per attribute, 20% held out.
        let missing = (0..72).filter(|n| (n + j) % 13 == 0).count();
        assert_eq!(a.n_train + a.n_val, 72 - missing, "{}", a.name);
        assert_eq!(a.n_val, ((72 - missing) as f64 * 0.2).ceil() as usize);
        assert!(a.val_r2 > 0.999, "{}: R² {}", a.name, a.val_r2);
        assert_eq!(
            a.alpha, 1e-4,
            "{}: exact labels want the least shrinkage",
            a.name
        );
        // The probe predicts the labels (the embeddings may be rank-deficient, so compare
        // predictions, not coefficients).
        let worst = pl
            .samples
            .iter()
            .map(|e| (dot(e, &w[j]) - dot(e, &pl.truth[j])).abs())
            .fold(0.0, f64::max);
        let scale = pl
            .samples
            .iter()
            .map(|e| dot(e, &pl.truth[j]).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-2 * scale, "{}: {worst} of {scale}", a.name);
    }
}

#[test]
fn debiasing_meets_the_threshold_it_records() {
    let pl = pipeline();
    let d: fit::DebiasMeta = fit::read_meta(&pl.run(), fit::DEBIAS_META).expect("debias");
    assert_eq!(d.verbosity, "verbosity");
    assert_eq!(d.lambdas[2], 0.0, "verbosity itself is left alone");
    let w = rows(&fit::read_probes(&pl.run(), &Device::Cpu).expect("w"));
    let r: Vec<Vec<f64>> = (0..3)
        .map(|j| pl.samples.iter().map(|e| dot(e, &w[j])).collect())
        .collect();
    for j in 0..2 {
        let lambda = d.lambdas[j];
        let x: Vec<f64> = r[j]
            .iter()
            .zip(&r[2])
            .map(|(a, v)| a - lambda * v)
            .collect();
        let rho = debias::spearman(&x, &r[2]);
        assert!(
            (rho - d.spearman[j].expect("defined")).abs() < 1e-6,
            "recorded ρ {j}"
        );
        if d.met[j] {
            assert!(
                rho <= debias::THRESHOLD,
                "attribute {j}: ρ {rho} at λ {lambda}"
            );
            if let Some(i) = debias::LAMBDAS.iter().position(|&l| l == lambda)
                && i > 0
            {
                let prev: Vec<f64> = r[j]
                    .iter()
                    .zip(&r[2])
                    .map(|(a, v)| a - debias::LAMBDAS[i - 1] * v)
                    .collect();
                assert!(
                    debias::spearman(&prev, &r[2]) > debias::THRESHOLD,
                    "smallest λ"
                );
            }
        } else {
            assert_eq!(lambda, 1.0);
        }
    }
    let e = fit::debias(&pl.run(), &pl.path().join("emb"), "length", 0.03).expect_err("name");
    assert!(e.to_string().contains("quality, style, verbosity"), "{e}");
}

#[test]
fn embedding_resumes_by_shard_and_refuses_changed_settings() {
    let pl = pipeline();
    let p = pl.path();
    let before = rows(
        Embeddings::read(&p.join("emb"))
            .expect("read")
            .get("prompt")
            .expect("p"),
    );
    // A killed run: one shard missing, a temporary file left behind.
    std::fs::remove_file(embed::shard_path(&p.join("emb"), 2)).expect("rm");
    std::fs::write(p.join("emb/.tmp-shard-00002.safetensors"), b"partial").expect("tmp");
    let e = Embeddings::read(&p.join("emb")).expect_err("incomplete");
    assert!(e.to_string().contains("shard 2 of 5 is missing"), "{e}");
    let job = embed_job(p, "samples.jsonl", Kind::Samples, "emb");
    let r = embed::embed(&job, &Device::Cpu, |_, _| {}).expect("resume");
    assert_eq!((r.written, r.skipped), (1, 4));
    let emb = Embeddings::read(&p.join("emb")).expect("read");
    assert_eq!(
        rows(emb.get("prompt").expect("p")),
        before,
        "the same rows, bit for bit"
    );
    assert_eq!(
        emb.index.keys[17],
        serde_json::json!("s1-5"),
        "keys are the ids"
    );
    // Same prompt, same prompt embedding; another prompt, another.
    assert_eq!(before[0], before[PER_PROMPT - 1]);
    assert_ne!(before[0], before[PER_PROMPT]);
    let mut changed = job.clone();
    changed.backbone.max_len = 40;
    let e = embed::embed(&changed, &Device::Cpu, |_, _| {}).expect_err("changed");
    assert!(
        e.to_string().contains("other settings") && e.to_string().contains("backbone"),
        "{e}"
    );
}

/// Pairs from the samples: within a prompt, the response of higher true `quality` is
/// chosen.
fn write_pairs(pl: &Pipeline, path: &Path, prompts: std::ops::Range<usize>) {
    let mut f = std::fs::File::create(path).expect("pairs");
    for k in prompts {
        for i in 0..PER_PROMPT {
            for j in [(i + 1) % PER_PROMPT, (i + 5) % PER_PROMPT] {
                let q = |n: usize| dot(&pl.samples[k * PER_PROMPT + n], &pl.truth[0]);
                let (c, r) = if q(i) > q(j) { (i, j) } else { (j, i) };
                let v = serde_json::json!({"prompt": prompt(k), "chosen": response(k, c), "rejected": response(k, r)});
                writeln!(f, "{v}").expect("w");
            }
        }
    }
}

fn train_gate(pl: &Pipeline) -> fit::GatingMeta {
    let p = pl.path();
    write_pairs(pl, &p.join("train_pairs.jsonl"), 0..4);
    write_pairs(pl, &p.join("eval_pairs.jsonl"), 4..PROMPTS);
    for (input, out) in [
        ("train_pairs.jsonl", "train_emb"),
        ("eval_pairs.jsonl", "eval_emb"),
    ] {
        embed::embed(
            &embed_job(p, input, Kind::Pairs, out),
            &Device::Cpu,
            |_, _| {},
        )
        .expect("embed pairs");
    }
    let job = GatingJob {
        run: pl.run(),
        train: p.join("train_emb"),
        eval: Some(p.join("eval_emb")),
        hidden: vec![16],
        dropout: 0.1,
        temperature: 1.0,
        training: GateTraining {
            lr: 2e-2,
            weight_decay: 0.0,
            steps: 150,
            batch_size: 32,
            seed: 3,
            eval_every: 50,
        },
    };
    fit::fit_gating(&job, &Device::Cpu, |_| {}).expect("gate")
}

#[test]
fn the_gate_learns_the_preference_and_the_model_scores_as_trained() {
    let pl = pipeline();
    let g = train_gate(&pl);
    assert!(
        g.train_accuracy >= 0.9,
        "train accuracy {}",
        g.train_accuracy
    );
    let eval_accuracy = g.eval_accuracy.expect("eval");
    assert!(eval_accuracy >= 0.8, "held-out accuracy {eval_accuracy}");
    let log = std::fs::read_to_string(pl.run().join(fit::GATING_METRICS)).expect("log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 150);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["eval_accuracy"].is_number())
            .count(),
        3,
        "eval at 50, 100, 150"
    );

    // The loaded model renders and reads rows as `embed` did: the same raw rewards, and
    // the same held-out ordering as training measured.
    let m = ArmoModel::load(&pl.run(), &Device::Cpu).expect("load");
    let items: Vec<(String, String)> = (0..8)
        .map(|n| {
            (
                prompt(n / PER_PROMPT),
                response(n / PER_PROMPT, n % PER_PROMPT),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = items
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let scores = m.score_texts(&refs).expect("score");
    let w = rows(&fit::read_probes(&pl.run(), &Device::Cpu).expect("w"));
    for (n, s) in scores.iter().enumerate() {
        for (j, wj) in w.iter().enumerate() {
            let want = dot(&pl.samples[n], wj);
            assert!(
                (s.raw[j] - want).abs() < 1e-4 * want.abs().max(1.0),
                "row {n} attr {j}"
            );
        }
        let combined: f64 = s.gate.iter().zip(&s.rewards).map(|(g, r)| g * r).sum();
        assert!((combined - s.score).abs() < 1e-5, "score = Σ gate·rewards");
        let total: f64 = s.gate.iter().sum();
        assert!(
            (total - g.scale).abs() < 1e-5,
            "gate weights sum to the scale"
        );
    }
    let pairs = trainer::data::pairs::read(&pl.path().join("eval_pairs.jsonl")).expect("pairs");
    let text = |r: &str, p: &trainer::data::pairs::Pair| match &p.prompt {
        trainer::data::pairs::PairPrompt::Text(t) => (t.clone(), r.to_string()),
        other => panic!("{other:?}"),
    };
    let c: Vec<(String, String)> = pairs.pairs.iter().map(|p| text(&p.chosen, p)).collect();
    let r: Vec<(String, String)> = pairs.pairs.iter().map(|p| text(&p.rejected, p)).collect();
    let as_refs = |v: &[(String, String)]| -> Vec<(String, String)> { v.to_vec() };
    let score = |v: Vec<(String, String)>| -> Vec<f64> {
        let refs: Vec<(&str, &str)> = v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        m.score_texts(&refs)
            .expect("s")
            .iter()
            .map(|s| s.score)
            .collect()
    };
    let (sc, sr) = (score(as_refs(&c)), score(as_refs(&r)));
    let right = sc.iter().zip(&sr).filter(|(a, b)| a > b).count() as f64 / sc.len() as f64;
    assert!(
        (right - eval_accuracy).abs() < 1e-9,
        "{right} vs {eval_accuracy}"
    );
}

#[test]
fn armo_runs_are_reward_sources_for_the_score_or_one_attribute() {
    let pl = pipeline();
    train_gate(&pl);
    let run = pl.run();
    #[derive(serde::Deserialize)]
    struct Doc {
        reward: Vec<trainer::reward::RewardSpec>,
    }
    let doc: Doc = toml::from_str(&format!(
        "[[reward]]\nsource = \"armo:{0}\"\n[[reward]]\nsource = \"armo:{0}#style\"\nweight = 0.5\n",
        run.display()
    ))
    .expect("toml");
    let rewards = trainer::reward::Rewards::load_on(
        &doc.reward,
        reward_host::Limits::default(),
        &Device::Cpu,
    )
    .expect("load");
    assert_eq!(rewards.names(), ["score", "style"]);
    let batch = [
        trainer::reward::Sample::new(prompt(0), response(0, 3)),
        trainer::reward::Sample::new(prompt(5), response(5, 7)),
    ];
    let got = rewards.score(&batch).expect("score");
    let m = ArmoModel::load(&run, &Device::Cpu).expect("model");
    let want = m
        .score_texts(&[(&prompt(0), &response(0, 3)), (&prompt(5), &response(5, 7))])
        .expect("want");
    for (g, w) in got.value.iter().zip(&want) {
        assert!((g[0].expect("score") - w.score).abs() < 1e-6);
        assert!((g[1].expect("style") - w.rewards[1]).abs() < 1e-6);
    }
    let e = ArmoSource::load(&run, Some("tone"), &Device::Cpu)
        .err()
        .expect("unknown attribute");
    assert!(e.to_string().contains("quality, style, verbosity"), "{e}");
    let s = ArmoSource::load(&run, None, &Device::Cpu).expect("source");
    assert_eq!(s.metrics(), [("score".to_string(), false)]);
    let e = ArmoSource::load(&pl.path().join("emb"), None, &Device::Cpu)
        .err()
        .expect("not a run");
    assert!(e.to_string().contains("fit-probes"), "{e}");
}

#[test]
fn the_command_line_scores_files_and_names_bad_lines() {
    let pl = pipeline();
    train_gate(&pl);
    let p = pl.path();
    let input = p.join("gens.jsonl");
    std::fs::write(
        &input,
        format!(
            "{}\n{}\n",
            serde_json::json!({"id": 7, "prompt": prompt(1), "response": response(1, 2)}),
            serde_json::json!({"prompt": prompt(2), "response": response(2, 4)})
        ),
    )
    .expect("gens");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["armo", "score", "--run"])
        .arg(pl.run())
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(p.join("scores.jsonl"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(p.join("scores.jsonl")).expect("scores");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], 7);
    assert!(lines[1].get("id").is_none());
    let m = ArmoModel::load(&pl.run(), &Device::Cpu).expect("model");
    let want = m.score_texts(&[(&prompt(1), &response(1, 2))]).expect("s");
    assert!((lines[0]["score"].as_f64().expect("score") - want[0].score).abs() < 1e-6);
    for key in ["rewards", "raw_rewards", "gate"] {
        let o = lines[0][key].as_object().expect(key);
        assert_eq!(
            o.keys().collect::<Vec<_>>(),
            ["quality", "style", "verbosity"],
            "{key}"
        );
    }
    // The provenance `evaluator push-scores` needs, naming this run and its hash.
    let prov: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.join("scores.jsonl.provenance.json")).expect("provenance"),
    )
    .expect("provenance json");
    assert_eq!(prov["lines"], 2);
    assert_eq!(prov["sha256"].as_str(), Some(m.hash.as_str()));
    assert!(
        prov["command"]
            .as_str()
            .is_some_and(|c| c.contains("armo score"))
    );
    std::fs::write(&input, "{\"prompt\": \"a\"}\n").expect("bad");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["armo", "score", "--run"])
        .arg(pl.run())
        .arg("--input")
        .arg(&input)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:1:", input.display())) && err.contains("missing `response`"),
        "{err}"
    );
}

#[test]
fn label_turns_reward_tables_into_attribute_labels() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    std::fs::write(
        p.join("in.jsonl"),
        "{\"id\": 1, \"prompt\": \"q\", \"response\": \"one two three. Four.\"}\n\
         {\"prompt\": \"q\", \"response\": \"\", \"reference\": \"x\"}\n",
    )
    .expect("in");
    std::fs::write(
        p.join("attrs.toml"),
        "[[reward]]\nsource = \"builtin:length\"\nmetric = \"words\"\ndirection = \"as-is\"\n\
         [[reward]]\nsource = \"builtin:length\"\nmetric = \"sentences\"\nname = \"n_sentences\"\n",
    )
    .expect("toml");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["armo", "label", "--input"])
        .arg(p.join("in.jsonl"))
        .arg("--rewards")
        .arg(p.join("attrs.toml"))
        .arg("--output")
        .arg(p.join("out.jsonl"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = embed::read_samples(&p.join("out.jsonl")).expect("labelled samples");
    assert_eq!(
        lines[0].id,
        Some(serde_json::json!(1)),
        "other keys are kept"
    );
    assert_eq!(lines[0].labels["words"], Some(4.0));
    // Lower-is-better under the declared direction: negated, as a reward.
    assert_eq!(lines[0].labels["n_sentences"], Some(-2.0));
    assert_eq!(lines[1].labels["words"], Some(0.0));
}

#[test]
fn the_baseline_is_a_linear_bradley_terry_head_on_the_same_embeddings() {
    let pl = pipeline();
    train_gate(&pl);
    let p = pl.path();
    let t = GateTraining {
        lr: 1e-1,
        weight_decay: 0.0,
        steps: 150,
        batch_size: 32,
        seed: 3,
        eval_every: 50,
    };
    let mut evals = 0;
    let meta = trainer::armo::baseline::fit_baseline(
        &pl.run(),
        &p.join("train_emb"),
        Some(&p.join("eval_emb")),
        &t,
        &Device::Cpu,
        |l| evals += usize::from(l.eval_accuracy.is_some()),
    )
    .expect("baseline");
    assert_eq!(evals, 3, "eval at 50, 100, 150");
    // The preference is linear in the embeddings, so a linear head can order every pair
    // the true direction orders (pairs whose responses embed identically are ties, which
    // count as wrong): it must come within 5 points of that.
    let attainable = {
        let emb = trainer::armo::embed::Embeddings::read(&p.join("train_emb")).expect("emb");
        let (c, r) = (
            rows(emb.get("chosen").expect("c")),
            rows(emb.get("rejected").expect("r")),
        );
        let t = &pl.truth[0];
        c.iter()
            .zip(&r)
            .filter(|(c, r)| dot(c, t) > dot(r, t))
            .count() as f64
            / c.len() as f64
    };
    assert!(attainable > 0.85, "{attainable}");
    assert!(
        meta.train_accuracy >= attainable - 0.05,
        "{} of {attainable} attainable",
        meta.train_accuracy
    );
    let eval_accuracy = meta.eval_accuracy.expect("eval");
    assert!(eval_accuracy >= 0.8, "{eval_accuracy}");
    // The saved head reproduces the held-out accuracy from the embeddings.
    let head = candle_core::safetensors::load(
        pl.run().join(trainer::armo::baseline::BASELINE_FILE),
        &Device::Cpu,
    )
    .expect("head");
    let w = rows(&head["score.weight"]);
    assert_eq!(w.len(), 1);
    let emb = trainer::armo::embed::Embeddings::read(&p.join("eval_emb")).expect("emb");
    let (c, r) = (
        rows(emb.get("chosen").expect("c")),
        rows(emb.get("rejected").expect("r")),
    );
    let right = c
        .iter()
        .zip(&r)
        .filter(|(c, r)| dot(c, &w[0]) > dot(r, &w[0]))
        .count() as f64
        / c.len() as f64;
    assert!(
        (right - eval_accuracy).abs() < 1e-9,
        "{right} vs {eval_accuracy}"
    );
    let log = std::fs::read_to_string(pl.run().join(trainer::armo::baseline::BASELINE_METRICS))
        .expect("log");
    assert_eq!(log.lines().count(), 150);
    // Samples are refused with the flag named.
    let err = trainer::armo::baseline::fit_baseline(
        &pl.run(),
        &p.join("emb"),
        None,
        &t,
        &Device::Cpu,
        |_| {},
    )
    .expect_err("samples")
    .to_string();
    assert!(err.contains("--train") && err.contains("pairs"), "{err}");
}
