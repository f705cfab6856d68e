//! Data order: a pure function of the seed and the position in the run.
//!
//! Batch `k` takes the examples at flat positions `k·batch ..`; epoch `e` is a permutation
//! seeded by (seed, e). A resumed run therefore sees exactly the batches it would have seen,
//! with no RNG state in its checkpoints.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// The indices of the examples of global batch `k` (of `batch` each, over `n` examples).
pub fn batch(k: usize, batch: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut out = Vec::with_capacity(batch);
    let mut cache: Option<(usize, Vec<usize>)> = None;
    for j in 0..batch {
        let flat = k * batch + j;
        let (epoch, pos) = (flat / n, flat % n);
        if cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut perm: Vec<usize> = (0..n).collect();
            perm.shuffle(&mut StdRng::seed_from_u64(
                seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64),
            ));
            cache = Some((epoch, perm));
        }
        if let Some((_, perm)) = &cache {
            out.push(perm[pos]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_order_is_a_function_of_seed_and_index_and_covers_each_epoch() {
        let n = 10;
        let epoch0: Vec<usize> = (0..5).flat_map(|k| batch(k, 2, n, 7)).collect();
        let mut sorted = epoch0.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        assert_eq!(batch(3, 2, n, 7), batch(3, 2, n, 7));
        assert_ne!(
            (0..5).flat_map(|k| batch(k, 2, n, 8)).collect::<Vec<_>>(),
            epoch0
        );
    }
}
