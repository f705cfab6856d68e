//! RLLR's preference pairs, built from labelled rationale data (MaRio's files).
//!
//! RLLR trains two reward models: a *label-sensitive* one, whose pairs share a rationale and
//! differ only in the label (the gold one chosen, a wrong one rejected), and a
//! *rationale-sensitive* one, whose pairs share the gold label and differ in the rationale
//! (the better one chosen). Both kinds are built here from MaRio's one-object files:
//!
//! - a system's responses `{question, gold_label, predicted_label, predicted_rationale}`
//!   (e.g. `strategyqa/gpt3/train_gpt3_responses.jsonl`, five samples per question). Only
//!   the responses whose predicted label is the gold one are used: their rationale argues
//!   for the gold label, so swapping the label makes a response that contradicts itself;
//! - a raw split `{question, rationale, answer}`: the rationale is the gold one. MaRio's raw
//!   OBQA and QuaRel dev/test splits carry the placeholder rationale `"dummy"`, which is
//!   treated as missing.
//!
//! Responses are written as the policy writes them after SFT
//! ([`crate::sft::data::mario_completion`]: `"<rationale> So the answer is <label>."`), so
//! the reward models see the form they will score.
//!
//! Rules, written down because the paper does not give them:
//! - **Wrong label:** drawn uniformly from the file's other gold labels (labels are compared
//!   after trimming, as written), by a generator seeded with `(seed, record key)`, so a
//!   record's pair does not change when other records are added or removed.
//! - **Duplicates:** a (question, rationale) seen before gives no second pair.
//! - **Rationale ranking:** each question's distinct correct rationales are scored by the
//!   caller (the weighted sum of `[[reward]]` tables, `trainer rllr rationale-pairs`); the
//!   best is chosen and the worst rejected, one pair per question, when the gap exceeds
//!   `min_gap` (ties carry no preference). A rationale whose score is undefined is left out.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::sft::data::mario_completion;

/// One labelled rationale of a MaRio file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rationale {
    /// The record's key in the file.
    pub key: String,
    /// The question (the pair's prompt).
    pub question: String,
    /// The rationale text.
    pub rationale: String,
    /// The gold label.
    pub gold: String,
}

/// What [`read`] kept and why it left the rest out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// Correct, non-empty rationales in the file's key order.
    pub rationales: Vec<Rationale>,
    /// Every gold label of the file, sorted (the wrong labels are drawn from these).
    pub labels: Vec<String>,
    /// Records whose predicted label is not the gold one.
    pub wrong_prediction: usize,
    /// Records with an empty (or placeholder) rationale or label.
    pub empty: usize,
}

#[derive(Deserialize)]
struct Record {
    question: String,
    #[serde(default)]
    gold_label: Option<String>,
    #[serde(default)]
    predicted_label: Option<String>,
    #[serde(default)]
    predicted_rationale: Option<String>,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    rationale: Option<String>,
}

const FORMS: &str = "MaRio's one-object JSON of responses {\"0\": {\"question\", \"gold_label\", \
     \"predicted_label\", \"predicted_rationale\"}, ...} or of a raw split {\"0\": {\"question\", \
     \"rationale\", \"answer\"}, ...}";

/// Reads a MaRio responses file or raw split (module docs).
pub fn read(path: &Path) -> Result<Records> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |message: String| Error::Data {
        path: path.to_path_buf(),
        line: 0,
        message,
    };
    let records = crate::data::mario::records::<Record>(&text, path)
        .ok_or_else(|| bad(format!("expected {FORMS}")))??;
    let mut out = Records::default();
    let mut labels = BTreeSet::new();
    for (key, r) in records {
        let (gold, label, rationale) = match (r.gold_label, r.answer) {
            (Some(gold), _) => (gold, r.predicted_label, r.predicted_rationale),
            (None, Some(answer)) => (answer.clone(), Some(answer), r.rationale),
            (None, None) => {
                return Err(bad(format!(
                    "record \"{key}\" has neither `gold_label` nor `answer`; expected {FORMS}"
                )));
            }
        };
        let gold = gold.trim().to_string();
        if !gold.is_empty() {
            labels.insert(gold.clone());
        }
        let label = label.as_deref().map(str::trim).unwrap_or_default();
        let rationale = rationale.as_deref().map(str::trim).unwrap_or_default();
        if gold.is_empty() || label.is_empty() || rationale.is_empty() || rationale == "dummy" {
            out.empty += 1;
        } else if label != gold {
            out.wrong_prediction += 1;
        } else {
            out.rationales.push(Rationale {
                key,
                question: r.question,
                rationale: rationale.to_string(),
                gold,
            });
        }
    }
    out.labels = labels.into_iter().collect();
    Ok(out)
}

/// One built preference pair, in the JSONL form `trainer rm` reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BuiltPair {
    /// The source record's key (for label pairs) or the question's first key.
    pub id: String,
    /// The question.
    pub prompt: String,
    /// The preferred response.
    pub chosen: String,
    /// The other response.
    pub rejected: String,
    /// The score gap, when asked for (the margin loss reads it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
}

/// The label-sensitive pairs of `records`: each rationale with its gold label (chosen) and
/// with a seeded wrong label (rejected). `None` when the file has fewer than two labels.
pub fn label_pairs(records: &Records, seed: u64) -> Option<Vec<BuiltPair>> {
    if records.labels.len() < 2 {
        return None;
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in &records.rationales {
        if !seen.insert((r.question.as_str(), r.rationale.as_str())) {
            continue;
        }
        let others: Vec<&String> = records.labels.iter().filter(|l| **l != r.gold).collect();
        let mut rng = StdRng::seed_from_u64(seed ^ key_hash(&r.key));
        let Some(wrong) = others.choose(&mut rng) else {
            continue;
        };
        out.push(BuiltPair {
            id: r.key.clone(),
            prompt: r.question.clone(),
            chosen: mario_completion(&r.rationale, &r.gold),
            rejected: mario_completion(&r.rationale, wrong),
            margin: None,
        });
    }
    Some(out)
}

/// FNV-1a: a stable hash of a key (std's hasher is not guaranteed across releases, and a
/// pair file must rebuild the same from the same seed).
fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One question's distinct correct rationales, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group<'a> {
    /// The question's first key.
    pub key: &'a str,
    /// The question.
    pub question: &'a str,
    /// The gold label.
    pub gold: &'a str,
    /// The distinct rationales.
    pub rationales: Vec<&'a str>,
}

/// The questions with at least two distinct correct rationales, in file order.
pub fn groups(records: &Records) -> Vec<Group<'_>> {
    let mut out: Vec<Group<'_>> = Vec::new();
    let mut index: std::collections::HashMap<(&str, &str), usize> = Default::default();
    for r in &records.rationales {
        let slot = *index
            .entry((r.question.as_str(), r.gold.as_str()))
            .or_insert_with(|| {
                out.push(Group {
                    key: &r.key,
                    question: &r.question,
                    gold: &r.gold,
                    rationales: Vec::new(),
                });
                out.len() - 1
            });
        let g = &mut out[slot];
        if !g.rationales.contains(&r.rationale.as_str()) {
            g.rationales.push(&r.rationale);
        }
    }
    out.retain(|g| g.rationales.len() > 1);
    out
}

/// The rationale-sensitive pair of one group given each rationale's score (`None`:
/// undefined, left out): best chosen, worst rejected, when their gap exceeds `min_gap`.
/// The first of equal scores wins, so the result does not depend on sort stability.
pub fn rationale_pair(
    group: &Group<'_>,
    scores: &[Option<f64>],
    min_gap: f64,
    with_margin: bool,
) -> Option<BuiltPair> {
    let scored: Vec<(&str, f64)> = group
        .rationales
        .iter()
        .zip(scores)
        .filter_map(|(r, s)| s.filter(|s| s.is_finite()).map(|s| (*r, s)))
        .collect();
    let best = scored
        .iter()
        .copied()
        .reduce(|a, b| if b.1 > a.1 { b } else { a })?;
    let worst = scored
        .iter()
        .copied()
        .reduce(|a, b| if b.1 < a.1 { b } else { a })?;
    let gap = best.1 - worst.1;
    (gap > min_gap).then(|| BuiltPair {
        id: group.key.to_string(),
        prompt: group.question.to_string(),
        chosen: mario_completion(best.0, group.gold),
        rejected: mario_completion(worst.0, group.gold),
        margin: with_margin.then_some(gap),
    })
}

/// RLLR's cap τ on the label reward (r = min(r_label, τ) + r_rationale), chosen on held-out
/// label pairs: the label model's decision threshold, the score at and above which a
/// response counts as correctly labelled. It maximises Youden's J = TPR − FPR over the
/// chosen (correct) and rejected (wrong-label) responses' scores, scikit-learn's
/// `roc_curve` thresholds (`drop_intermediate=False`), the first maximum in their
/// decreasing order (numpy's `argmax`). Above τ a response gains nothing more from its
/// label, so the rationale reward decides among the correct ones; below it the label
/// reward still pulls towards the right answer.
///
/// RLLR's paper gives τ per model (3.9 for Llama-2 7B) without the rule; this is the
/// rule written down here (README, "RLLR's pairs").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// τ (+∞ when no threshold beats labelling nothing correct: the model does not
    /// separate the two).
    pub tau: f64,
    /// Share of correct responses scoring ≥ τ.
    pub tpr: f64,
    /// Share of wrong-label responses scoring ≥ τ.
    pub fpr: f64,
}

/// [`Threshold`] of the scores of correct and wrong responses; `None` without both, or
/// with a non-finite score.
pub fn youden_threshold(correct: &[f64], wrong: &[f64]) -> Option<Threshold> {
    if correct.is_empty() || wrong.is_empty() || !correct.iter().chain(wrong).all(|s| s.is_finite())
    {
        return None;
    }
    let mut thresholds: Vec<f64> = correct.iter().chain(wrong).copied().collect();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    let rate = |v: &[f64], t: f64| v.iter().filter(|&&s| s >= t).count() as f64 / v.len() as f64;
    // roc_curve's first point is +∞ (nothing predicted correct): J = 0.
    let mut best = Threshold {
        tau: f64::INFINITY,
        tpr: 0.0,
        fpr: 0.0,
    };
    for t in thresholds {
        let (tpr, fpr) = (rate(correct, t), rate(wrong, t));
        if tpr - fpr > best.tpr - best.fpr {
            best = Threshold { tau: t, tpr, fpr };
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("m.jsonl");
        std::fs::write(&p, text).expect("write");
        (dir, p)
    }

    const RESPONSES: &str = r#"{
      "0": {"question": "Q1", "gold_label": "yes", "predicted_label": "yes", "predicted_rationale": "Short."},
      "1": {"question": "Q1", "gold_label": "yes", "predicted_label": "yes", "predicted_rationale": "A longer reason. With two sentences."},
      "2": {"question": "Q1", "gold_label": "yes", "predicted_label": "no", "predicted_rationale": "Wrong way."},
      "3": {"question": "Q1", "gold_label": "yes", "predicted_label": "yes", "predicted_rationale": "Short."},
      "4": {"question": "Q2", "gold_label": "no", "predicted_label": "no", "predicted_rationale": " "},
      "10": {"question": "Q3", "gold_label": "maybe", "predicted_label": "maybe", "predicted_rationale": "Only one."}
    }"#;

    #[test]
    fn responses_keep_correct_rationales_and_count_the_rest() {
        let (_d, p) = file(RESPONSES);
        let r = read(&p).expect("read");
        assert_eq!(r.labels, ["maybe", "no", "yes"]);
        assert_eq!((r.wrong_prediction, r.empty), (1, 1));
        let keys: Vec<&str> = r.rationales.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["0", "1", "3", "10"]);
    }

    #[test]
    fn raw_splits_use_the_gold_rationale_and_skip_the_placeholder() {
        let (_d, p) = file(
            r#"{"0": {"question": "Q", "rationale": "dummy", "answer": "(a)"},
                "1": {"question": "R", "rationale": "Because.", "answer": "(b)"}}"#,
        );
        let r = read(&p).expect("read");
        assert_eq!(r.empty, 1);
        assert_eq!(r.rationales.len(), 1);
        assert_eq!(r.rationales[0].gold, "(b)");
        assert_eq!(r.labels, ["(a)", "(b)"]);
    }

    #[test]
    fn other_files_are_refused_with_the_expected_form() {
        let (_d, p) = file("{\"prompt\": \"a\"}\n");
        let e = read(&p).expect_err("not MaRio").to_string();
        assert!(
            e.contains("m.jsonl") && e.contains("predicted_rationale"),
            "{e}"
        );
        let (_d, p) = file(r#"{"0": {"question": "Q"}}"#);
        let e = read(&p).expect_err("no label").to_string();
        assert!(
            e.contains("record \"0\"") && e.contains("gold_label"),
            "{e}"
        );
    }

    #[test]
    fn label_pairs_swap_only_the_label_and_are_a_function_of_seed_and_key() {
        let (_d, p) = file(RESPONSES);
        let r = read(&p).expect("read");
        let pairs = label_pairs(&r, 7).expect("labels");
        // Record 3 repeats record 0's rationale and gives no second pair.
        let ids: Vec<&str> = pairs.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["0", "1", "10"]);
        for (pair, gold) in pairs.iter().zip(["yes", "yes", "maybe"]) {
            assert!(pair.chosen.ends_with(&format!(" So the answer is {gold}.")));
            let stem = |s: &str| {
                s.rsplit_once(" So the answer is ")
                    .map(|(a, _)| a.to_string())
            };
            assert_eq!(stem(&pair.chosen), stem(&pair.rejected));
            assert_ne!(pair.chosen, pair.rejected);
            assert!(!pair.rejected.ends_with(&format!(" {gold}.")));
        }
        // Dropping a record leaves the others' wrong labels as they were.
        let mut fewer = r.clone();
        fewer.rationales.remove(1);
        let again = label_pairs(&fewer, 7).expect("labels");
        assert_eq!(again[0], pairs[0]);
        assert_eq!(again[1], pairs[2]);
        // Across seeds, both wrong labels of "maybe" turn up.
        let wrongs: BTreeSet<String> = (0..32)
            .map(|s| label_pairs(&r, s).expect("labels")[2].rejected.clone())
            .collect();
        assert_eq!(wrongs.len(), 2, "{wrongs:?}");
        let one_label = Records {
            labels: vec!["yes".into()],
            ..r
        };
        assert!(label_pairs(&one_label, 0).is_none());
    }

    #[test]
    fn rationale_pairs_take_best_against_worst_above_the_gap() {
        let (_d, p) = file(RESPONSES);
        let r = read(&p).expect("read");
        let gs = groups(&r);
        // Only Q1 has two distinct correct rationales.
        assert_eq!(gs.len(), 1);
        assert_eq!(
            gs[0].rationales,
            ["Short.", "A longer reason. With two sentences."]
        );
        let pair = rationale_pair(&gs[0], &[Some(1.0), Some(3.0)], 0.0, true).expect("pair");
        assert_eq!(
            pair.chosen,
            "A longer reason. With two sentences. So the answer is yes."
        );
        assert_eq!(pair.rejected, "Short. So the answer is yes.");
        assert_eq!(pair.margin, Some(2.0));
        assert!(rationale_pair(&gs[0], &[Some(1.0), Some(3.0)], 2.0, false).is_none());
        assert!(rationale_pair(&gs[0], &[Some(1.0), Some(1.0)], 0.0, false).is_none());
        assert!(rationale_pair(&gs[0], &[None, Some(1.0)], 0.0, false).is_none());
        assert!(rationale_pair(&gs[0], &[Some(f64::NAN), Some(1.0)], 0.0, false).is_none());
    }

    #[test]
    fn the_cap_is_the_threshold_that_best_separates_right_from_wrong_labels() {
        // Correct ones score high but one; at τ = 2, 3 of 4 correct and 0 of 3 wrong.
        let t = youden_threshold(&[3.0, 2.5, 2.0, -1.0], &[1.0, 0.5, -2.0]).expect("τ");
        assert_eq!((t.tau, t.tpr, t.fpr), (2.0, 0.75, 0.0));
        // A model that ranks the wrong ones higher never beats J = 0: no cap.
        let t = youden_threshold(&[0.0, 1.0], &[2.0, 3.0]).expect("τ");
        assert_eq!(t.tau, f64::INFINITY);
        assert!(youden_threshold(&[], &[1.0]).is_none());
        assert!(youden_threshold(&[f64::NAN], &[1.0]).is_none());
    }
}
