//! `reward-compile --memory-bytes N`: the child side of
//! `Isolation::Subprocess` as a program of its own, for embedders without a
//! binary of their own to re-run (the evaluator runs itself instead) and for
//! this crate's tests.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let memory_bytes = match args.as_slice() {
        [flag, n] if flag == "--memory-bytes" => n.parse::<u64>().ok(),
        _ => None,
    };
    let Some(memory_bytes) = memory_bytes else {
        eprintln!(
            "usage: reward-compile --memory-bytes N  (module on stdin, compiled code on stdout)"
        );
        return ExitCode::from(64);
    };
    reward_host::compiler::serve(
        std::io::stdin().lock(),
        std::io::stdout().lock(),
        memory_bytes,
    )
}
