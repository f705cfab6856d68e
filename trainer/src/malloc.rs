//! Keeps freed heap memory inside a training process (glibc).
//!
//! A training step frees and reallocates hundreds of megabytes of activations and
//! gradients. By default glibc serves large requests with fresh `mmap`s and hands a freed
//! heap top back to the kernel once it passes a (dynamically raised) trim threshold, so
//! the next step faults every page in again, zero-filled by the kernel. Fixing the mmap
//! threshold at its maximum and the trim threshold far above a step's working set keeps
//! those blocks in the heap for reuse. On the GPT-2 bench this cut page faults over six
//! steps from about 223,000 to 92,000 and CPU time by 8% (`trainer/PERFORMANCE.md`). The
//! cost is that resident memory stays at its peak, which the SFT memory guard measures
//! anyway.

/// The largest mmap threshold glibc accepts on 64-bit targets (half its 64 MiB heap).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 256 << 20;
/// Freed memory at the heap top is returned to the kernel only above this.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 1 << 30;
/// Extra room taken whenever the heap grows, so growth is rare.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 64 << 20;

/// Tunes glibc's allocator for a training process; returns whether every setting took.
/// Call it once, early in `main`. On other platforms it does nothing and returns false.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        [
            (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (libc::M_TOP_PAD, TOP_PAD),
        ]
        .into_iter()
        .all(|(param, value)| {
            #[allow(unsafe_code, reason = "FFI call into glibc, see the SAFETY note")]
            // SAFETY: `mallopt` only changes allocator parameters, takes plain integers and
            // is thread-safe (glibc takes its arena locks); it returns 0 for a rejected value.
            let ok = unsafe { libc::mallopt(param, value) };
            ok == 1
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_the_settings() {
        let took = super::keep_freed_memory();
        assert_eq!(took, cfg!(all(target_os = "linux", target_env = "gnu")));
    }
}
