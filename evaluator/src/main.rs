//! `evaluator`: see `evaluator --help` and the crate docs of the `evaluator` library.

fn main() -> std::process::ExitCode {
    evaluator::cli::main()
}
