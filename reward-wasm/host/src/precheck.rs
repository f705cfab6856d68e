//! The shape check a module passes before anything compiles it.
//!
//! wasmtime bounds what a guest does when it runs (fuel, epochs, memory caps) but
//! leaves compilation to the embedder: a valid module with 200,000 small
//! functions takes Cranelift seconds and over a GiB of memory. No reward module
//! needs that, so the host reads the module's sections with `wasmparser` and
//! refuses, in milliseconds, anything past [`CompileLimits`] — naming the limit
//! and the value. Nested core modules and components are walked too (a
//! component carries its code in them), and the counts add up across all of
//! them.
//!
//! The scan stops at the first limit passed, so a huge module is refused after
//! reading only as far as it takes to see that. Malformed bytes are left to the
//! validator that runs next: this check only refuses what it can measure.

use wasmparser::{Operator, Parser, Payload};

use crate::error::{Error, Result};

/// Static bounds on a module's shape, checked before compilation.
///
/// The defaults are about ten times what the largest built-in module uses
/// (`reward-wasm/host/tests/precheck.rs` prints those figures), so ordinary Rust
/// scorers pass with room to spare; modules built from interpreters (Python,
/// JavaScript) are far larger and need raised limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// Core modules and components in all, the outermost included.
    pub max_modules: u64,
    /// Functions defined (with a body), over all core modules.
    pub max_functions: u64,
    /// Bytes of function bodies, over all core modules.
    pub max_code_bytes: u64,
    /// Bytes of the largest single function body.
    pub max_function_bytes: u64,
    /// Locals declared by a single function.
    pub max_locals: u64,
    /// Depth of nested blocks, loops and ifs in a single function.
    pub max_block_depth: u64,
    /// Data segments, over all core modules.
    pub max_data_segments: u64,
    /// Imports, core and component, over all modules.
    pub max_imports: u64,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            max_modules: 32,
            max_functions: 20_000,
            max_code_bytes: 16 << 20,
            max_function_bytes: 1 << 20,
            max_locals: 10_000,
            max_block_depth: 1_000,
            max_data_segments: 1_000,
            max_imports: 1_000,
        }
    }
}

/// What the scan measured: the figures [`CompileLimits`] bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Core modules and components, the outermost included.
    pub modules: u64,
    /// Functions with a body.
    pub functions: u64,
    /// Bytes of all function bodies.
    pub code_bytes: u64,
    /// Bytes of the largest function body.
    pub largest_function_bytes: u64,
    /// Most locals in one function.
    pub most_locals: u64,
    /// Deepest block nesting in one function.
    pub deepest_blocks: u64,
    /// Data segments.
    pub data_segments: u64,
    /// Imports.
    pub imports: u64,
}

/// Measures `bytes` and checks each figure against `limits` as soon as it is
/// known; the first one over its limit is the error.
pub fn check(bytes: &[u8], limits: &CompileLimits) -> Result<Shape> {
    let mut shape = Shape::default();
    for payload in Parser::new(0).parse_all(bytes) {
        // A parse error is the validator's to report, with its own wording.
        let Ok(payload) = payload else { break };
        match payload {
            Payload::Version { .. } => {
                shape.modules += 1;
                over(
                    "core modules and components",
                    shape.modules,
                    limits.max_modules,
                )?;
            }
            Payload::ImportSection(reader) => {
                shape.imports += u64::from(reader.count());
                over("imports", shape.imports, limits.max_imports)?;
            }
            Payload::ComponentImportSection(reader) => {
                shape.imports += u64::from(reader.count());
                over("imports", shape.imports, limits.max_imports)?;
            }
            Payload::DataSection(reader) => {
                shape.data_segments += u64::from(reader.count());
                over(
                    "data segments",
                    shape.data_segments,
                    limits.max_data_segments,
                )?;
            }
            Payload::CodeSectionStart { count, size, .. } => {
                shape.functions += u64::from(count);
                over("functions", shape.functions, limits.max_functions)?;
                shape.code_bytes += u64::from(size);
                over("bytes of code", shape.code_bytes, limits.max_code_bytes)?;
            }
            Payload::CodeSectionEntry(body) => {
                let size = body.range().len() as u64;
                shape.largest_function_bytes = shape.largest_function_bytes.max(size);
                over(
                    "bytes in one function",
                    shape.largest_function_bytes,
                    limits.max_function_bytes,
                )?;
                let Some((locals, depth)) = measure_body(&body, limits) else {
                    break;
                };
                shape.most_locals = shape.most_locals.max(locals);
                over(
                    "locals in one function",
                    shape.most_locals,
                    limits.max_locals,
                )?;
                shape.deepest_blocks = shape.deepest_blocks.max(depth);
                over(
                    "nested blocks in one function",
                    shape.deepest_blocks,
                    limits.max_block_depth,
                )?;
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// A function's declared locals and deepest block nesting; `None` when the body
/// does not parse (the validator will say why). Stops counting depth once it
/// passes the limit, so a million nested blocks cost no more than the limit's.
fn measure_body(body: &wasmparser::FunctionBody<'_>, limits: &CompileLimits) -> Option<(u64, u64)> {
    let mut locals = 0u64;
    for declaration in body.get_locals_reader().ok()? {
        let (count, _) = declaration.ok()?;
        locals += u64::from(count);
        if locals > limits.max_locals {
            return Some((locals, 0));
        }
    }
    let mut operators = body.get_operators_reader().ok()?;
    let (mut depth, mut deepest) = (0u64, 0u64);
    while !operators.eof() {
        match operators.read().ok()? {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::TryTable { .. }
            | Operator::Try { .. } => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limits.max_block_depth {
                    break;
                }
            }
            Operator::End => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Some((locals, deepest))
}

fn over(what: &'static str, value: u64, limit: u64) -> Result<()> {
    if value > limit {
        return Err(Error::TooLarge { what, value, limit });
    }
    Ok(())
}
