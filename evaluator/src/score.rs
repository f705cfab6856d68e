//! Scoring a list of samples and writing one JSON object per sample.

use std::io::Write;

use reward_host::{Limits, RewardModule, Row, Sample};

use crate::error::{Error, Result};

/// How to drive a scorer over many samples.
#[derive(Debug, Clone, Copy)]
pub struct ScoreOptions {
    /// Samples per call into the module; the limits bound each call.
    pub batch_size: usize,
    /// Bounds on each call.
    pub limits: Limits,
}

/// Scores `samples` in batches and writes, for each sample in order, a JSON object
/// mapping each declared metric to its value or `null`.
///
/// `module_name` is how the user named the module, for errors; `lines` holds
/// each sample's input line (empty: samples are lines 1, 2, ...). A failing
/// batch stops the run naming the input lines it covered.
pub fn score_to_writer(
    module: &RewardModule,
    module_name: &str,
    samples: &[Sample],
    lines: &[usize],
    options: &ScoreOptions,
    out: &mut impl Write,
) -> Result<()> {
    if options.batch_size == 0 {
        return Err(Error::Usage("--batch-size must be at least 1".into()));
    }
    let names: Vec<&str> = module
        .info()
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    let line = |index: usize| lines.get(index).copied().unwrap_or(index + 1);
    for (index, batch) in samples.chunks(options.batch_size).enumerate() {
        let first = index * options.batch_size;
        let rows = module
            .score_with(batch, &options.limits)
            .map_err(|source| Error::Module {
                module: module_name.to_string(),
                context: failed_lines(line(first), line(first + batch.len() - 1), batch.len()),
                source,
            })?;
        for row in &rows {
            writeln!(out, "{}", row_json(&names, row)).map_err(write_error)?;
        }
    }
    out.flush().map_err(write_error)
}

/// Where a batch failed: its input line, or its lines when the batch held
/// several (the sandbox's error does not say which sample of a call failed).
fn failed_lines(first: usize, last: usize, samples: usize) -> String {
    if samples == 1 {
        format!("failed on input line {first}")
    } else {
        format!(
            "failed on input lines {first}-{last} (one batch of {samples}; the module's error does \
             not say which line: --batch-size 1 finds it)"
        )
    }
}

/// `{"metric": value|null, ...}` in the module's metric order.
pub fn row_json(names: &[&str], row: &Row) -> String {
    let object: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(row)
        .map(|(name, value)| {
            (
                (*name).to_string(),
                value.map_or(serde_json::Value::Null, serde_json::Value::from),
            )
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

fn write_error(source: std::io::Error) -> Error {
    Error::Io {
        action: "cannot write to",
        path: "the output".into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::failed_lines;

    #[test]
    fn a_failed_batch_names_its_input_lines() {
        assert_eq!(failed_lines(2, 2, 1), "failed on input line 2");
        let text = failed_lines(1, 3, 2);
        assert!(
            text.starts_with("failed on input lines 1-3 (one batch of 2;"),
            "{text}"
        );
    }
}
