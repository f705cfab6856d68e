//! `push-generations`' importers on any body: the first byte picks the format
//! (every variant of `Format`, so a format added later is fuzzed too), the rest
//! is the file.

#![no_main]

use clap::ValueEnum;
use evaluator::import::{Format, parse, prompt_key};
use libfuzzer_sys::fuzz_target;
use multi_reward_fuzz::line_in;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let formats = Format::value_variants();
    let format = formats[selector as usize % formats.len()];
    // The API refuses non-UTF-8 bodies before parsing; lossy decoding keeps the
    // fuzzer's mutations of multi-byte text useful.
    let body = String::from_utf8_lossy(body);
    match parse(format, &body) {
        Ok(rows) => {
            assert!(!rows.is_empty(), "an empty file must be refused");
            let mut keys = std::collections::HashSet::new();
            for row in &rows {
                assert!(keys.insert(row.key.as_str()), "key {:?} twice", row.key);
                assert!(!row.origin.is_empty());
                // Nothing PostgreSQL cannot store gets past the parser.
                for text in [&row.key, &row.prompt, &row.response] {
                    assert!(!text.contains('\0'), "{row:?}");
                }
                assert!(!row.reference.as_deref().unwrap_or("").contains('\0'));
                if format != Format::Canonical {
                    assert_eq!(
                        row.key,
                        prompt_key(&row.prompt),
                        "{format:?} keys by prompt"
                    );
                }
                // The key rule must be a normal form, or two spellings of one
                // item could meet only sometimes.
                assert_eq!(prompt_key(&row.key), prompt_key(&prompt_key(&row.key)));
            }
        }
        Err(e) => {
            assert!(!e.message.is_empty() && !e.location.is_empty(), "{e:?}");
            assert_eq!(e.to_string(), format!("{}: {}", e.location, e.message));
            if let Some(line) = e.line {
                assert!(
                    line_in(&body, line),
                    "line {line} is not in the body: {e:?}"
                );
            }
        }
    }
});
