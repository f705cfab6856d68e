//! `sqlx::migrate!` embeds `../migrations` at compile time, but cargo does not
//! watch that directory: without this, a new migration file would not reach the
//! binary until some Rust source changed.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
