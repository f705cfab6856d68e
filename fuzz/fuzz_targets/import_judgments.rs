//! `push-judgments`' importers on any body. The first byte picks the format
//! (every variant of `JudgmentFormat`) and whether `--system` / `--baseline`
//! renames are given; the names are then the first line of the body
//! (`system<TAB>baseline`), so the fuzzer chooses them too.

#![no_main]

use clap::ValueEnum;
use evaluator::import::judgments::{JudgmentFormat, Renames, parse};
use libfuzzer_sys::fuzz_target;
use multi_reward_fuzz::line_in;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let formats = JudgmentFormat::value_variants();
    let format = formats[selector as usize % formats.len()];
    let text = String::from_utf8_lossy(rest);
    let (renames, body) = match selector >> 4 & 3 {
        0 => (Renames::default(), &*text),
        which => {
            let (header, body) = text.split_once('\n').unwrap_or((&*text, ""));
            let (system, baseline) = header.split_once('\t').unwrap_or((header, ""));
            let renames = Renames {
                system: (which & 1 != 0).then(|| system.to_string()),
                baseline: (which & 2 != 0).then(|| baseline.to_string()),
            };
            (renames, body)
        }
    };
    match parse(format, body, &renames) {
        Ok(file) => {
            assert!(!file.rows.is_empty() || file.self_judgments > 0);
            let mut pairs = std::collections::HashSet::new();
            for row in &file.rows {
                // The store refuses a system judged against itself
                // (CHECK system_a <> system_b); the parser must say so first.
                assert_ne!(row.a, row.b, "a self-judgment got through: {row:?}");
                if let Some(p) = row.preference {
                    assert!((0.0..=1.0).contains(&p), "preference {p}: {row:?}");
                }
                assert!(!row.origin.is_empty());
                assert!(pairs.insert((&row.item, &row.a, &row.b)), "{row:?} twice");
                // Renames are AlpacaEval's (its files name generators, not
                // systems); canonical files name the systems themselves.
                if format == JudgmentFormat::AlpacaEval {
                    if let Some(system) = &renames.system {
                        assert_eq!(&row.b, system);
                    }
                    if let Some(baseline) = &renames.baseline {
                        assert_eq!(&row.a, baseline);
                    }
                }
            }
        }
        Err(e) => {
            assert!(!e.message.is_empty() && !e.location.is_empty(), "{e:?}");
            if let Some(line) = e.line {
                assert!(line_in(body, line), "line {line} is not in the body: {e:?}");
            }
        }
    }
});
