//! Valid modules of any size, for testing compile-time limits (feature
//! `hostile`): a real scorer with extra functions the hostile team of issue 22
//! added to make compilation expensive.
//!
//! [`pad`] copies a core module section by section and appends functions whose
//! bodies are `body_bytes` of `i32.const; drop` pairs, optionally inside deeply
//! nested blocks and with many locals, ending in `unreachable` (which type-checks
//! against any signature, so every padding function can reuse type 0). The
//! original functions keep their indices, so the module still scores.

use wasm_encoder::{
    CodeSection, Function, FunctionSection, Instruction, Module, RawSection, ValType,
};
use wasmparser::{BinaryReader, CodeSectionReader, Parser, Payload};

/// What to add to a module.
#[derive(Debug, Clone, Copy, Default)]
pub struct Padding {
    /// Extra functions.
    pub functions: u32,
    /// Approximate bytes of each extra function's body.
    pub body_bytes: usize,
    /// Locals each extra function declares.
    pub locals: u32,
    /// Blocks nested inside each extra function.
    pub nesting: u32,
    /// Mixed into the bodies so that two paddings of one module differ (and
    /// have different SHA-256s).
    pub seed: i32,
}

/// `core` (a core module) with `padding` appended. Panics on a module that
/// does not parse: the inputs are this crate's own test modules.
pub fn pad(core: &[u8], padding: &Padding) -> Vec<u8> {
    let mut module = Module::new();
    for payload in Parser::new(0).parse_all(core) {
        let payload = payload.expect("a valid core module");
        match payload {
            Payload::Version { .. } | Payload::End(_) | Payload::CodeSectionEntry(_) => {}
            Payload::FunctionSection(reader) => {
                let mut section = FunctionSection::new();
                for ty in reader {
                    section.function(ty.expect("type index"));
                }
                for _ in 0..padding.functions {
                    section.function(0);
                }
                module.section(&section);
            }
            Payload::CodeSectionStart { range, .. } => {
                let mut section = CodeSection::new();
                let reader =
                    CodeSectionReader::new(BinaryReader::new(&core[range.clone()], range.start))
                        .expect("code section");
                for body in reader {
                    let body = body.expect("function body");
                    section.raw(&core[body.range()]);
                }
                let filler = filler(padding);
                for _ in 0..padding.functions {
                    section.function(&filler);
                }
                module.section(&section);
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    module.section(&RawSection {
                        id,
                        data: &core[range],
                    });
                }
            }
        }
    }
    module.finish()
}

fn filler(padding: &Padding) -> Function {
    let locals = (padding.locals > 0).then_some((padding.locals, ValType::I32));
    let mut f = Function::new(locals);
    for _ in 0..padding.nesting {
        f.instruction(&Instruction::Block(wasm_encoder::BlockType::Empty));
    }
    // `i32.const` (1 byte), a 5-byte LEB and `drop` (1 byte): 7 bytes a pair.
    let constant = padding.seed | 0x1000_0000;
    for _ in 0..padding.body_bytes / 7 {
        f.instruction(&Instruction::I32Const(constant));
        f.instruction(&Instruction::Drop);
    }
    for _ in 0..padding.nesting {
        f.instruction(&Instruction::End);
    }
    f.instruction(&Instruction::Unreachable);
    f.instruction(&Instruction::End);
    f
}
