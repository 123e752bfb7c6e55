use std::hash::{BuildHasher, Hasher};

/// SplitMix64: tiny, fast, statistically fine for jitter, and reproducible from a seed.
/// Jitter needs spread, not cryptographic strength, so riprap carries no `rand` dependency.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A seed nobody chose: std's per-process random hasher keys, mixed with a counter so
    /// schedules created in the same instant still differ.
    pub(crate) fn random_seed(salt: u64) -> u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.finish()
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]` (inclusive); `lo` when `hi <= lo`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = u128::from(hi - lo) + 1;
        // Lemire's multiply-shift: the bias is below 2^-64 per draw, irrelevant for jitter.
        let offset = (u128::from(self.next_u64()) * span) >> 64;
        lo + offset as u64
    }

    /// Mix two words into one well-spread seed.
    pub(crate) fn mix(a: u64, b: u64) -> u64 {
        SplitMix64::new(a ^ b.rotate_left(32)).next_u64()
    }
}
