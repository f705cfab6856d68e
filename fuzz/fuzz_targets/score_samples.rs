//! `evaluator score`'s JSON Lines reader on any bytes, as `--input` would give
//! them (not necessarily UTF-8).

#![no_main]

use evaluator::error::Error;
use evaluator::input::{parse_line, read_numbered_samples};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match read_numbered_samples(data, "fuzz") {
        Ok((samples, numbers)) => {
            assert_eq!(samples.len(), numbers.len());
            assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
            // The reader is the line parser applied to each non-blank line
            // (the input is UTF-8, or reading would have failed).
            let text = std::str::from_utf8(data).expect("read as UTF-8");
            let lines: Vec<&str> = text.lines().collect();
            let non_blank = lines.iter().filter(|l| !l.trim().is_empty()).count();
            assert_eq!(samples.len(), non_blank);
            for (sample, &number) in samples.iter().zip(&numbers) {
                assert_eq!(&parse_line(lines[number - 1]).expect("parsed once"), sample);
                // A sample written back in the input format reads back the same
                // (field values are strings by then; keys are unique).
                let mut line = serde_json::json!({
                    "prompt": sample.prompt,
                    "response": sample.response,
                    "fields": sample
                        .fields
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect::<serde_json::Map<_, _>>(),
                });
                if let Some(reference) = &sample.reference {
                    line["reference"] = reference.as_str().into();
                }
                let again = parse_line(&line.to_string()).expect("a written sample parses");
                assert_eq!(&again, sample);
            }
        }
        Err(Error::Input { line, message, .. }) => {
            assert!(!message.is_empty());
            let newlines = data.iter().filter(|&&b| b == b'\n').count();
            assert!((1..=newlines + 1).contains(&line), "line {line}: {message}");
        }
        Err(other) => panic!("reading samples failed with a non-input error: {other}"),
    }
});
