//! `trainer rllr`: RLLR's pair builders from the command line, on a small MaRio-form file
//! and (when `../shared/data` is present) on MaRio's StrategyQA GPT-3 responses; the pairs
//! they write are read back by the reward model's pair reader; `tau` on a tiny reward
//! model.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

const MARIO: &str = r#"{
  "0": {"question": "Is ice cold?", "gold_label": "yes", "predicted_label": "yes", "predicted_rationale": "Ice is frozen water."},
  "1": {"question": "Is ice cold?", "gold_label": "yes", "predicted_label": "yes", "predicted_rationale": "Ice is frozen water. Frozen things are cold. Cold is the absence of heat."},
  "2": {"question": "Is ice cold?", "gold_label": "yes", "predicted_label": "no", "predicted_rationale": "Ice burns."},
  "3": {"question": "Is fire wet?", "gold_label": "no", "predicted_label": "no", "predicted_rationale": "Fire is hot. Hot things dry."},
  "4": {"question": "Is fire wet?", "gold_label": "no", "predicted_label": "no", "predicted_rationale": "Fire is a reaction."}
}"#;

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run trainer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("pairs")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn label_pairs_are_written_in_the_reward_models_form() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("mario.jsonl");
    std::fs::write(&input, MARIO).expect("write");
    let output = dir.path().join("label.jsonl");
    let err = run_ok(
        trainer()
            .args(["rllr", "label-pairs", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output),
    );
    assert!(
        err.contains("4 label pairs") && err.contains("1 wrong"),
        "{err}"
    );
    let got = lines(&output);
    assert_eq!(got.len(), 4);
    for l in &got {
        let (c, r) = (
            l["chosen"].as_str().unwrap(),
            l["rejected"].as_str().unwrap(),
        );
        let gold = if l["prompt"] == "Is ice cold?" {
            "yes"
        } else {
            "no"
        };
        let other = if gold == "yes" { "no" } else { "yes" };
        assert!(c.ends_with(&format!("So the answer is {gold}.")), "{c}");
        assert_eq!(
            r,
            c.replace(
                &format!("answer is {gold}."),
                &format!("answer is {other}.")
            )
        );
    }
    let read = trainer::data::pairs::read(&output).expect("the rm reader takes them");
    assert_eq!(read.pairs.len(), 4);
}

#[test]
fn rationale_pairs_rank_by_the_reward_tables_and_refuse_an_empty_result() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("mario.jsonl");
    std::fs::write(&input, MARIO).expect("write");
    // More sentences is better, so the three-sentence rationale wins on the first question.
    let rewards = dir.path().join("rewards.toml");
    std::fs::write(
        &rewards,
        "[[reward]]\nsource = \"builtin:length\"\nmetric = \"sentences\"\ndirection = \"as-is\"\n",
    )
    .expect("write");
    let output = dir.path().join("rat.jsonl");
    let err = run_ok(
        trainer()
            .args(["rllr", "rationale-pairs", "--margin", "--input"])
            .arg(&input)
            .arg("--rewards")
            .arg(&rewards)
            .arg("--output")
            .arg(&output),
    );
    assert!(err.contains("2 rationale pairs"), "{err}");
    let got = lines(&output);
    assert_eq!(got[0]["prompt"], "Is ice cold?");
    assert!(
        got[0]["chosen"]
            .as_str()
            .unwrap()
            .starts_with("Ice is frozen water. Frozen things")
    );
    assert_eq!(
        got[0]["rejected"],
        "Ice is frozen water. So the answer is yes."
    );
    assert_eq!(
        got[1]["rejected"],
        "Fire is a reaction. So the answer is no."
    );
    // The gap is the sentence count's (each response ends with the answer sentence).
    assert_eq!(got[0]["margin"], 2.0);
    assert_eq!(got[1]["margin"], 1.0);
    let read = trainer::data::pairs::read(&output).expect("the rm reader takes them");
    assert_eq!(read.pairs[0].margin, Some(2.0));

    // A gap no pair clears: nothing is written, and the line says why.
    let none = dir.path().join("none.jsonl");
    let out = trainer()
        .args(["rllr", "rationale-pairs", "--min-gap", "5", "--input"])
        .arg(&input)
        .arg("--rewards")
        .arg(&rewards)
        .arg("--output")
        .arg(&none)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing written") && err.contains("2 within --min-gap 5"),
        "{err}"
    );
    assert!(!none.exists());
}

fn shared(rel: &str) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel);
    if here.exists() {
        here
    } else {
        Path::new("/work/shared/data").join(rel)
    }
}

#[test]
fn strategyqa_gives_label_and_rationale_pairs() {
    let input = shared("mario/strategyqa/gpt3/train_gpt3_responses.jsonl");
    if !input.exists() {
        println!(
            "SKIPPED: {} not found (../shared/data absent)",
            input.display()
        );
        return;
    }
    let records = trainer::data::rllr::read(&input).expect("read");
    assert_eq!(records.labels, ["no", "yes"]);
    let label = trainer::data::rllr::label_pairs(&records, 0).expect("pairs");
    let groups = trainer::data::rllr::groups(&records);
    println!(
        "StrategyQA GPT-3 train: {} correct rationales, {} wrong predictions, {} empty; \
         {} label pairs; {} questions with ≥ 2 distinct correct rationales",
        records.rationales.len(),
        records.wrong_prediction,
        records.empty,
        label.len(),
        groups.len()
    );
    // 8,240 records, five per question (README's data notes): most are usable.
    assert!(label.len() > 4000, "{}", label.len());
    assert!(groups.len() > 1000, "{}", groups.len());
    let flips = label
        .iter()
        .filter(|p| p.chosen.ends_with("yes.") == p.rejected.ends_with("no."))
        .count();
    assert_eq!(flips, label.len(), "every pair swaps yes and no");
}

#[test]
fn tau_is_the_label_models_best_threshold_on_the_given_pairs() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    common::write_tiny(&p.join("model"), &common::tiny_llama_json(), 4);
    // Label pairs in the form `label-pairs` writes: the same rationale, "yes" right.
    let pairs: String = (0..8)
        .map(|k| {
            let v = serde_json::json!({"prompt": format!("q{k}"),
                "chosen": format!("r{k} So the answer is yes."),
                "rejected": format!("r{k} So the answer is no.")});
            format!("{v}\n")
        })
        .collect();
    std::fs::write(p.join("pairs.jsonl"), &pairs).expect("pairs");
    let cfg = format!(
        "model = {:?}\ntrain_data = {:?}\noutput_dir = {:?}\nbatch_size = 4\nmax_steps = 12\n\
         lr = 2e-2\nsave_every = 12\nseed = 2\nmax_len = 32\nmax_prompt_len = 8\nlora_rank = 4\n\
         lora_alpha = 8\n",
        p.join("model"),
        p.join("pairs.jsonl"),
        p.join("rm"),
    );
    let cfg = trainer::rm::RmConfig::from_toml(&cfg, Path::new("t.toml")).expect("config");
    trainer::rm::train(&cfg, &trainer::sft::TrainOptions::default()).expect("rm");
    let out = trainer()
        .args(["rllr", "tau", "--rm"])
        .arg(p.join("rm"))
        .arg("--pairs")
        .arg(p.join("pairs.jsonl"))
        .arg("--output")
        .arg(p.join("tau.json"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tau: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("τ on stdout");
    // The same threshold from the model's own scores.
    let rm = trainer::rm::RewardModel::load(&p.join("rm"), &candle_core::Device::Cpu).expect("rm");
    let texts = |label: &str| -> Vec<(String, String)> {
        (0..8)
            .map(|k| (format!("q{k}"), format!("r{k} So the answer is {label}.")))
            .collect()
    };
    let score = |v: Vec<(String, String)>| {
        let refs: Vec<(&str, &str)> = v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        rm.score_texts(&refs).expect("score")
    };
    let (c, r) = (score(texts("yes")), score(texts("no")));
    let want = trainer::data::rllr::youden_threshold(&c, &r).expect("τ");
    assert!(
        (tau - want.tau).abs() <= 1e-9 * want.tau.abs().max(1.0),
        "{tau} vs {}",
        want.tau
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("tau.json")).expect("json"))
            .expect("json");
    assert_eq!(saved["pairs"], 8);
    assert_eq!(saved["sha256"].as_str(), Some(rm.hash.as_str()));
    // The model learned the preference, so the threshold separates.
    assert!(want.tpr > want.fpr, "{want:?}");
}
