//! Progress of a run: a bar on a terminal, plain lines elsewhere.
//!
//! On a terminal, indicatif draws a bar on stderr. Without one (CI, `nohup`, a pipe) the bar
//! would print nothing until the end, so the same information goes to stderr as plain lines:
//! after the first step, then whenever a twentieth of the run is done or a minute has
//! passed, and after the last step.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often plain progress lines are written at most apart in time.
const PLAIN_EVERY: Duration = Duration::from_secs(60);

enum Draw {
    Bar(indicatif::ProgressBar),
    Lines { last: Option<Instant>, every: usize },
    Quiet,
}

/// A run's progress display.
pub struct Progress {
    draw: Draw,
    start: usize,
    total: usize,
    t0: Instant,
}

impl Progress {
    /// Progress of steps `start+1..=total`; `show = false` prints no progress at all (messages
    /// written with [`Self::println`] still appear).
    pub fn new(show: bool, start: usize, total: usize) -> Self {
        Self::with_terminal(show, std::io::stderr().is_terminal(), start, total)
    }

    fn with_terminal(show: bool, terminal: bool, start: usize, total: usize) -> Self {
        let draw = match (show, terminal) {
            (false, _) => Draw::Quiet,
            (true, true) => {
                let bar = indicatif::ProgressBar::new(total as u64);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar.set_position(start as u64);
                Draw::Bar(bar)
            }
            (true, false) => Draw::Lines {
                last: None,
                every: (total / 20).max(1),
            },
        };
        Self {
            draw,
            start,
            total,
            t0: Instant::now(),
        }
    }

    /// Reports that `step` finished, with `msg` (losses, rewards, throughput).
    pub fn step(&mut self, step: usize, msg: &str) {
        let line = self.line(step, msg);
        match &mut self.draw {
            Draw::Bar(bar) => {
                bar.set_position(step as u64);
                bar.set_message(msg.to_string());
            }
            Draw::Lines { last, every } => {
                let due = last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY)
                    || step.is_multiple_of(*every)
                    || step == self.total;
                if due {
                    eprintln!("{line}");
                    *last = Some(Instant::now());
                }
            }
            Draw::Quiet => {}
        }
    }

    /// The plain line for `step`: position, `msg`, time spent and an estimate of time left.
    fn line(&self, step: usize, msg: &str) -> String {
        let done = step.saturating_sub(self.start).max(1) as f64;
        let secs = self.t0.elapsed().as_secs_f64();
        let left = secs / done * self.total.saturating_sub(step) as f64;
        let pct = 100.0 * step as f64 / self.total.max(1) as f64;
        format!(
            "step {step}/{} ({pct:.0}%) {msg} | {} elapsed, ~{} left",
            self.total,
            clock(secs),
            clock(left)
        )
    }

    /// Prints a message above the bar (or as a line).
    pub fn println(&self, msg: &str) {
        match &self.draw {
            Draw::Bar(bar) => bar.println(msg),
            _ => eprintln!("{msg}"),
        }
    }

    /// Leaves the bar as it is (a stop before the end).
    pub fn abandon(&self) {
        if let Draw::Bar(bar) = &self.draw {
            bar.abandon();
        }
    }

    /// Completes the bar.
    pub fn finish(&self) {
        if let Draw::Bar(bar) = &self.draw {
            bar.finish();
        }
    }
}

/// `h:mm:ss`.
fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_name_the_step_the_total_and_the_time_left() {
        let p = Progress::with_terminal(true, false, 10, 30);
        let line = p.line(12, "loss 1.0000");
        assert!(
            line.starts_with("step 12/30 (40%) loss 1.0000 | 0:00:00 elapsed"),
            "{line}"
        );
        assert!(matches!(p.draw, Draw::Lines { every: 1, .. }));
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
