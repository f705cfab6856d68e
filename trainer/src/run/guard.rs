//! The checks at the end of a step that decide whether a run may go on: a checkpoint is
//! written only of finite parameters, and the memory guard ([`super::memory`]) stops a run
//! that has outgrown its limit while a checkpoint can still be written.

use super::Checkpoints;
use crate::error::{Error, Result};
use crate::optim::AdamW;

/// Writes the checkpoint of `step` when it is due (every `save_every` steps and at
/// `max_steps`); a parameter that is not finite refuses it with [`Error::NonFiniteLoss`]
/// naming the last good checkpoint, since resuming from a NaN state would only repeat it.
pub fn checkpoint_if_due(
    ckpts: &mut Checkpoints,
    opt: &AdamW,
    step: usize,
    save_every: usize,
    max_steps: usize,
) -> Result<()> {
    if !step.is_multiple_of(save_every) && step != max_steps {
        return Ok(());
    }
    if !super::checkpoint::all_finite(opt)? {
        return Err(Error::NonFiniteLoss {
            step,
            loss: f32::NAN,
            last_checkpoint: ckpts.last.clone(),
        });
    }
    ckpts.save(step, opt).map(drop)
}

/// The memory limit and the probe that reads the process's peak resident memory (MiB).
pub struct MemoryGuard<'a> {
    limit_mib: Option<u64>,
    peak_mib: &'a mut dyn FnMut() -> Option<u64>,
    /// The first forward pass of this process has been checked.
    pub checked_forward: bool,
}

impl<'a> MemoryGuard<'a> {
    /// A guard at `limit_mib` (none: off) reading the peak with `peak_mib`.
    pub fn new(limit_mib: Option<u64>, peak_mib: &'a mut dyn FnMut() -> Option<u64>) -> Self {
        Self {
            limit_mib,
            peak_mib,
            checked_forward: false,
        }
    }

    /// `(peak, limit)` when the peak is over the limit.
    pub fn over(&mut self) -> Option<(u64, u64)> {
        let limit = self.limit_mib?;
        let peak = (self.peak_mib)()?;
        (peak > limit).then_some((peak, limit))
    }

    /// Whether a step that is not the last must stop here: after the eval and the
    /// checkpoint, so their memory counts too. After the last step the work is done, and
    /// writing the final weights needs no more than the checkpoint just written.
    pub fn stop_after(&mut self, step: usize, max_steps: usize) -> Option<(u64, u64)> {
        if step < max_steps { self.over() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_trips_only_over_its_limit_and_never_after_the_last_step() {
        let mut under = || Some(900);
        assert_eq!(MemoryGuard::new(Some(1000), &mut under).over(), None);
        let mut over = || Some(1200);
        let mut g = MemoryGuard::new(Some(1000), &mut over);
        assert_eq!(g.stop_after(3, 5), Some((1200, 1000)));
        assert_eq!(g.stop_after(5, 5), None);
        assert_eq!(MemoryGuard::new(None, &mut over).over(), None);
    }
}
