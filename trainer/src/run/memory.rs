//! The memory guard: a run that outgrows memory stops with a message and a checkpoint.
//!
//! On Linux a process that exceeds its memory is usually ended by the kernel's (or its
//! cgroup's) OOM killer with SIGKILL: no message, and no checkpoint newer than the cadence.
//! So the loop watches itself instead. It reads the process's peak resident set (`VmHWM` in
//! `/proc/self/status`; the high-water mark, because the activations and gradients of a step
//! are freed by the time the step returns, so the current resident set afterwards understates
//! what the next step needs) after the first forward pass of a run and after every optimizer
//! step, and stops with [`Error::OutOfMemory`](crate::Error::OutOfMemory) once it is over
//! `memory_limit_mib`, after writing a checkpoint. Before the first step, [`Estimate`] refuses
//! a configuration that cannot fit even by a rough count, so an impossible batch size fails
//! in seconds rather than after minutes of loading and a kill.
//!
//! The default limit ([`default_limit_mib`]) is 90% of what this process can have: the
//! smaller of its cgroup's limit (v2 `memory.max`, v1 `memory.limit_in_bytes`, on the
//! process's cgroup and every ancestor) and `MemAvailable` at start plus what the process
//! already holds. The 10% margin leaves room for the part of a step that is allocated after
//! the last measurement (the next, possibly longer, batch). Where `/proc` cannot be read
//! (not Linux) there is no default and the guard is off unless a limit is given; the peak is
//! then unknown and only the pre-flight estimate applies.
//!
//! The peak is the whole process's: it includes loading the checkpoint (dequantizing a GGUF
//! file can briefly hold two copies), and, in a test binary, other tests' memory.

use std::path::{Path, PathBuf};

/// Resident memory of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resident {
    /// Peak resident set since the process started (`VmHWM`), MiB.
    pub peak_mib: u64,
    /// Current resident set (`VmRSS`), MiB.
    pub current_mib: u64,
}

/// This process's resident memory, or `None` where `/proc/self/status` cannot be read.
pub fn resident() -> Option<Resident> {
    parse_status(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// `VmHWM` and `VmRSS` from the text of `/proc/<pid>/status` (kB there), in MiB rounded up.
fn parse_status(text: &str) -> Option<Resident> {
    let current = kib_field(text, "VmRSS:")?;
    // Some kernels (and gVisor) omit VmHWM; the current value is then the best known peak.
    let peak = kib_field(text, "VmHWM:").unwrap_or(current).max(current);
    Some(Resident {
        peak_mib: peak.div_ceil(1024),
        current_mib: current.div_ceil(1024),
    })
}

/// The value of a `Key:   123 kB` line of `/proc/self/status` or `/proc/meminfo`.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The limit used when `memory_limit_mib` is not set: 90% of the smaller of the cgroup limit
/// and `MemAvailable` + this process's resident set, in MiB; `None` when neither is known.
pub fn default_limit_mib() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| cgroup_limit_bytes(&t, Path::new("/sys/fs/cgroup")));
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| kib_field(&t, "MemAvailable:"));
    let held = resident().map_or(0, |r| r.current_mib);
    derive_limit_mib(cgroup, available, held)
}

fn derive_limit_mib(
    cgroup_bytes: Option<u64>,
    available_kib: Option<u64>,
    held_mib: u64,
) -> Option<u64> {
    let machine = available_kib.map(|k| k / 1024 + held_mib);
    let cgroup = cgroup_bytes.map(|b| b >> 20);
    let limit = match (cgroup, machine) {
        (Some(c), Some(m)) => c.min(m),
        (c, m) => c.or(m)?,
    };
    // MiB: no overflow at any real size.
    Some(limit * 9 / 10)
}

/// The tightest memory limit of the cgroups listed in `proc_cgroup` (the text of
/// `/proc/self/cgroup`) and their ancestors, under the cgroup mount `root`.
///
/// Ancestors count because a parent's limit caps its children. v1 has a `memory` hierarchy
/// at `root/memory`; v2 is unified at `root` (or `root/unified` on hybrid systems). A
/// container usually sees its own cgroup as the root, so the walk ends there.
fn cgroup_limit_bytes(proc_cgroup: &str, root: &Path) -> Option<u64> {
    let mut best: Option<u64> = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (base, file) = if controllers.is_empty() {
            let unified = root.join("unified");
            let base = if !root.join("cgroup.controllers").exists() && unified.exists() {
                unified
            } else {
                root.to_path_buf()
            };
            (base, "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut dir = PathBuf::from(path.trim_start_matches('/'));
        loop {
            if let Some(v) = read_limit(&base.join(&dir).join(file)) {
                best = Some(best.map_or(v, |b| b.min(v)));
            }
            if !dir.pop() {
                break;
            }
        }
    }
    best
}

/// A cgroup limit file: bytes, or `None` for no limit (`max` in v2; v1 writes "unlimited" as
/// a number near 2⁶³).
fn read_limit(path: &Path) -> Option<u64> {
    let v: u64 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    (v < 1 << 60).then_some(v)
}

/// What the model looks like to the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelShape {
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden width.
    pub hidden: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Attention heads.
    pub heads: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Bytes of every weight (frozen or trainable), adapters included.
    pub weight_bytes: u64,
    /// Bytes of the training state beyond the weights: the f32 gradient sums and the
    /// optimizer's moments and master copies (12 bytes per trainable weight in f32, 16 for a
    /// bf16 weight with its f32 master).
    pub optimizer_bytes: u64,
    /// Bytes per activation element: 4 (f32) or 2 (bf16).
    pub activation_bytes: u64,
    /// Whether the fused CPU kernels run (CPU, f32): attention then keeps no probabilities
    /// and the LM head never forms the whole logits (`crate::ops`, `crate::loss`).
    pub fused_kernels: bool,
}

/// A rough count of the memory training needs, in bytes.
///
/// It errs low on purpose: it is used to refuse a run before it starts, which should happen
/// only when even an optimistic count does not fit; the measured peak does the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The model's weights.
    pub weights: u64,
    /// Gradients, the two AdamW moments and any master copies of the trainable tensors.
    pub optimizer: u64,
    /// Activations kept for the backward pass of one micro-batch, and its logits.
    pub activations: u64,
}

impl Estimate {
    /// Counts a micro-batch of `batch` sequences of `seq` tokens.
    ///
    /// Per token and layer the backward pass keeps about the block's inputs, normed inputs,
    /// q/k/v, attention output, projections and residuals (~10 × hidden), the MLP's up, gate,
    /// activation and product (~4 × intermediate), and, unless the fused attention
    /// recomputes them, attention scores and probabilities (2 × heads × seq); the LM head
    /// adds logits and their gradient (2 × vocab per token), or one chunk of them when it is
    /// fused with the loss.
    pub fn new(shape: &ModelShape, batch: usize, seq: usize) -> Self {
        let tokens = (batch * seq) as u64;
        let scores = if shape.fused_kernels {
            0
        } else {
            2 * shape.heads * seq
        };
        let per_layer = (10 * shape.hidden + 4 * shape.intermediate + scores) as u64;
        let head = if shape.fused_kernels {
            2 * (crate::loss::HEAD_CHUNK_LOGITS as u64).min(tokens * shape.vocab as u64)
        } else {
            2 * tokens * shape.vocab as u64
        };
        Self {
            weights: shape.weight_bytes,
            optimizer: shape.optimizer_bytes,
            activations: shape.activation_bytes * (tokens * shape.layers as u64 * per_layer + head),
        }
    }

    /// The total, in MiB rounded up.
    pub fn total_mib(&self) -> u64 {
        (self.weights + self.optimizer + self.activations).div_ceil(1 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_give_peak_and_current_in_mib() {
        let text =
            "Name:\ttrainer\nVmPeak:\t  900000 kB\nVmHWM:\t    5000 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Resident {
                peak_mib: 5,
                current_mib: 2
            })
        );
        assert_eq!(
            parse_status("VmRSS:\t 3072 kB\n").map(|r| r.peak_mib),
            Some(3),
            "no VmHWM: the current value stands in"
        );
        assert_eq!(parse_status("Name: x\n"), None);
        let me = resident().expect("this test runs on Linux");
        assert!(
            me.peak_mib >= me.current_mib && me.current_mib > 0,
            "{me:?}"
        );
    }

    #[test]
    fn the_default_is_ninety_percent_of_the_tighter_of_cgroup_and_machine() {
        // 8 GiB cgroup, 10 GiB available + 1 GiB held: the cgroup wins.
        assert_eq!(
            derive_limit_mib(Some(8 << 30), Some(10 << 20), 1024),
            Some(8192 * 9 / 10)
        );
        // No cgroup limit: available + held.
        assert_eq!(derive_limit_mib(None, Some(3 << 20), 1024), Some(3686));
        assert_eq!(derive_limit_mib(Some(1000 << 20), None, 0), Some(900));
        assert_eq!(derive_limit_mib(None, None, 500), None);
    }

    #[test]
    fn cgroup_limits_are_read_for_v1_and_v2_and_the_tightest_ancestor_wins() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        };
        // v2: the job's own cgroup says "max", its parent caps it at 2 GiB.
        write("cgroup.controllers", "memory\n");
        write("user.slice/memory.max", "2147483648\n");
        write("user.slice/job/memory.max", "max\n");
        assert_eq!(
            cgroup_limit_bytes("0::/user.slice/job\n", root),
            Some(2 << 30)
        );
        // v1: the memory line is used, "unlimited" (2⁶³ rounded to a page) is no limit.
        write("memory/memory.limit_in_bytes", "9223372036854771712\n");
        write("memory/box/memory.limit_in_bytes", "1073741824\n");
        assert_eq!(
            cgroup_limit_bytes("4:memory:/box\n3:cpu:/\n", root),
            Some(1 << 30)
        );
        assert_eq!(cgroup_limit_bytes("4:memory:/\n", root), None);
        // Both listed: the tighter one.
        assert_eq!(
            cgroup_limit_bytes("4:memory:/box\n0::/user.slice/job\n", root),
            Some(1 << 30)
        );
        assert_eq!(
            cgroup_limit_bytes("0::/elsewhere\n", dir.path().join("none").as_path()),
            None
        );
    }

    #[test]
    fn the_estimate_counts_weights_moments_and_activations() {
        let shape = ModelShape {
            layers: 2,
            hidden: 32,
            intermediate: 64,
            heads: 4,
            vocab: 272,
            weight_bytes: 1000,
            optimizer_bytes: 300,
            activation_bytes: 4,
            fused_kernels: false,
        };
        let e = Estimate::new(&shape, 4, 16);
        assert_eq!(e.weights, 1000);
        assert_eq!(e.optimizer, 300);
        // 64 tokens × 4 bytes × (2 × (320 + 256 + 128) + 544).
        assert_eq!(e.activations, 64 * 4 * (2 * (320 + 256 + 128) + 544));
        assert_eq!(e.total_mib(), 1);
        // Twice the batch, twice the activations; bf16 activations, half.
        assert_eq!(Estimate::new(&shape, 8, 16).activations, 2 * e.activations);
        let bf16 = ModelShape {
            activation_bytes: 2,
            ..shape
        };
        assert_eq!(Estimate::new(&bf16, 4, 16).activations * 2, e.activations);
        // The fused kernels keep no attention probabilities, and at most one chunk of
        // logits (here all 64 × 272 of them fit in one).
        let fused = ModelShape {
            fused_kernels: true,
            ..shape
        };
        let f = Estimate::new(&fused, 4, 16).activations;
        assert_eq!(f, 64 * 4 * (2 * (320 + 256) + 544));
        let big_vocab = ModelShape {
            vocab: 1 << 20,
            ..fused
        };
        let chunk = 2 * crate::loss::HEAD_CHUNK_LOGITS as u64;
        assert_eq!(
            Estimate::new(&big_vocab, 4, 16).activations,
            64 * 4 * (2 * (320 + 256)) + 4 * chunk
        );
    }
}
