//! The `score-packed` batch codec between host and guest:
//! - the guest's decoder (`reward_sdk::__unpack`) on any text and spans, as a
//!   hostile or buggy host could send them: an error, never a panic or an
//!   allocation sized by an untrusted count;
//! - the round trip: the host's `pack` of any batch decodes to the same batch.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct ArbitrarySample {
    prompt: String,
    response: String,
    reference: Option<String>,
    fields: Vec<(String, String)>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Decode { text: String, spans: Vec<u32> },
    RoundTrip(Vec<ArbitrarySample>),
}

fuzz_target!(|input: Input| match input {
    Input::Decode { text, spans } => {
        if let Ok(samples) = reward_sdk::__unpack(&text, &spans) {
            // Whatever decodes covers the text exactly, piece by piece.
            let covered: usize = samples
                .iter()
                .map(|s| {
                    s.prompt.len()
                        + s.response.len()
                        + s.reference.as_ref().map_or(0, String::len)
                        + s.fields
                            .iter()
                            .map(|(k, v)| k.len() + v.len())
                            .sum::<usize>()
                })
                .sum();
            assert_eq!(covered, text.len());
        }
    }
    Input::RoundTrip(batch) => {
        let batch: Vec<reward_host::Sample> = batch
            .into_iter()
            .map(|s| reward_host::Sample {
                prompt: s.prompt,
                response: s.response,
                reference: s.reference,
                fields: s.fields,
            })
            .collect();
        let (text, spans) = reward_host::__pack(&batch);
        let decoded = reward_sdk::__unpack(&text, &spans).expect("a packed batch decodes");
        assert_eq!(decoded.len(), batch.len());
        for (got, sent) in decoded.iter().zip(&batch) {
            assert_eq!(got.prompt, sent.prompt);
            assert_eq!(got.response, sent.response);
            assert_eq!(got.reference, sent.reference);
            assert_eq!(got.fields, sent.fields);
        }
    }
});
