//! `push-scores`' parsers on any body: the scores file (`parse_scores`), its
//! provenance (`parse_provenance`) and the two together (`parse`, which checks the
//! provenance's line count). The first byte picks how the input splits: the whole
//! input as scores, the whole input as provenance, or `provenance<NUL>scores`.

#![no_main]

use evaluator::import::scores::{parse, parse_provenance, parse_scores};
use libfuzzer_sys::fuzz_target;
use multi_reward_fuzz::line_in;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let check_scores = |body: &str| match parse_scores(body) {
        Ok(rows) => {
            assert!(!rows.is_empty());
            let mut items = std::collections::HashSet::new();
            for r in &rows {
                assert!(r.score.is_finite(), "{r:?}");
                assert!(line_in(body, r.line), "line {} is not in the body", r.line);
                assert!(!r.item.key().contains('\0'), "{r:?}");
                assert!(items.insert(r.item.clone()), "{r:?} scored twice");
            }
            rows.len()
        }
        Err(e) => {
            assert!(!e.message.is_empty() && !e.location.is_empty(), "{e:?}");
            if let Some(line) = e.line {
                assert!(line_in(body, line), "line {line} is not in the body: {e:?}");
            }
            0
        }
    };
    match selector % 3 {
        0 => {
            check_scores(&text);
        }
        1 => {
            if let Err(e) = parse_provenance("p.json", &text) {
                assert!(!e.message.is_empty(), "{e:?}");
            }
        }
        _ => {
            let (prov, body) = text.split_once('\0').unwrap_or((&*text, ""));
            let rows = check_scores(body);
            match parse(
                "s.jsonl",
                body,
                parse_provenance("s.jsonl.provenance.json", prov),
            ) {
                Ok(file) => {
                    assert_eq!(file.rows.len(), rows);
                    assert_eq!(file.provenance.lines, rows as u64);
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
});
