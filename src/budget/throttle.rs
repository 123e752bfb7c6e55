//! gRPC-style retry throttling: failures drain tokens, successes refill them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Attempt, Budget, Withdrawal};
use crate::classify::Class;
use crate::error::ConfigError;

/// Tokens are kept in thousandths, as gRPC specifies `token_ratio` to three decimals.
const MILLI: u64 = 1000;

/// `ratio` in thousandths with the decimals past the third dropped, as gRFC A6 says
/// (0.5466 is 0.546). A ratio that is a whole number of thousandths but not exactly so in
/// binary (0.57 × 1000 = 570.0000000000001, 0.29 × 1000 = 289.99999999999997) keeps its
/// value rather than losing a thousandth to the representation.
fn thousandths(ratio: f64) -> u64 {
    let scaled = ratio * MILLI as f64;
    let nearest = scaled.round();
    if (scaled - nearest).abs() < 1e-6 {
        nearest as u64
    } else {
        scaled.floor() as u64
    }
}

/// gRPC's retry throttle: the token count starts at `max_tokens`; every retryable failure
/// takes one token, every success adds `token_ratio`; retries are allowed only while more than
/// half of `max_tokens` remain.
///
/// It reacts to the failure *rate* rather than to traffic volume: with the defaults
/// (`max_tokens` 100, `token_ratio` 0.1) retries stop after about 50 more failures than ten
/// times the successes, and resume once successes pull the count back above half. No clock is
/// involved. Retries cost nothing directly, so [`Budget::refund`] does nothing.
///
/// ```
/// use riprap::budget::{Budget, Attempt, TokenThrottle};
/// use riprap::classify::Class;
///
/// let throttle = TokenThrottle::builder().max_tokens(10).token_ratio(0.5).build()?;
/// let failed = Class::Transient;
/// for _ in 0..5 {
///     throttle.record(Attempt::Failed(failed)); // 10 → 5 tokens
/// }
/// assert!(throttle.try_withdraw(failed).is_none()); // 5 is not above half of 10
/// throttle.record(Attempt::Succeeded { spent: Default::default() }); // 5.5
/// assert!(throttle.try_withdraw(failed).is_some());
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokenThrottle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max: u64,
    ratio: u64,
    tokens: AtomicU64,
}

/// Builder for [`TokenThrottle`]; see [`TokenThrottle::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct TokenThrottleBuilder {
    knobs: Knobs,
}

crate::knobs::knobs! {
    /// The builder's knobs. [`TokenThrottleSpec`] is written from the same list.
    #[derive(Debug, Clone)]
    struct Knobs;

    impl TokenThrottleBuilder;

    /// A [`TokenThrottle`] as plain data (feature `serde`); a knob left out keeps the
    /// builder's default (`max_tokens` 100, `token_ratio` 0.1).
    ///
    /// ```
    /// use riprap::budget::TokenThrottleSpec;
    ///
    /// let spec: TokenThrottleSpec = toml::from_str("max_tokens = 10\ntoken_ratio = 0.5")?;
    /// assert_eq!(spec.build()?.tokens(), 10.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct TokenThrottleSpec;

    /// The token count's ceiling and starting point, from 1 to 1000 (default 100).
    max_tokens: u32 = 100,

    /// Tokens a success adds, from 0.001 to 1 (default 0.1). As in gRFC A6, decimals past the
    /// third are ignored: 0.5466 adds 0.546.
    token_ratio: f64 = 0.1,
}

impl TokenThrottleBuilder {
    /// Check every knob and build the throttle.
    ///
    /// ```
    /// use riprap::budget::TokenThrottle;
    /// let err = TokenThrottle::builder().max_tokens(0).build().unwrap_err();
    /// assert_eq!(err.knob(), "token_throttle.max_tokens");
    /// ```
    pub fn build(self) -> Result<TokenThrottle, ConfigError> {
        let k = self.knobs;
        if !(1..=1000).contains(&k.max_tokens) {
            return Err(ConfigError::new(
                "token_throttle.max_tokens",
                format!("must be from 1 to 1000 (got {})", k.max_tokens),
            ));
        }
        if !(k.token_ratio.is_finite() && (0.001..=1.0).contains(&k.token_ratio)) {
            return Err(ConfigError::new(
                "token_throttle.token_ratio",
                format!("must be from 0.001 to 1 (got {})", k.token_ratio),
            ));
        }
        let max = u64::from(k.max_tokens) * MILLI;
        Ok(TokenThrottle {
            inner: Arc::new(Inner {
                max,
                ratio: thousandths(k.token_ratio),
                tokens: AtomicU64::new(max),
            }),
        })
    }
}

impl Default for TokenThrottle {
    /// `max_tokens` 100, `token_ratio` 0.1.
    fn default() -> Self {
        TokenThrottle {
            inner: Arc::new(Inner {
                max: 100 * MILLI,
                ratio: 100,
                tokens: AtomicU64::new(100 * MILLI),
            }),
        }
    }
}

impl TokenThrottle {
    /// A builder starting from the defaults (`max_tokens` 100, `token_ratio` 0.1).
    pub fn builder() -> TokenThrottleBuilder {
        TokenThrottleBuilder {
            knobs: Knobs::default(),
        }
    }

    /// The current token count.
    pub fn tokens(&self) -> f64 {
        self.inner.tokens.load(Ordering::Acquire) as f64 / MILLI as f64
    }

    fn above_half(&self) -> bool {
        self.inner.tokens.load(Ordering::Acquire) * 2 > self.inner.max
    }
}

impl Budget for TokenThrottle {
    fn deposit(&self) {}

    fn try_withdraw(&self, _after: Class) -> Option<Withdrawal> {
        self.above_half().then_some(Withdrawal::NONE)
    }

    fn refund(&self, _withdrawal: Withdrawal) {}

    fn record(&self, attempt: Attempt) {
        let Inner { max, ratio, tokens } = &*self.inner;
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = match attempt {
            Attempt::Succeeded { .. } => {
                tokens.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    Some(t.saturating_add(*ratio).min(*max))
                })
            }
            // gRPC counts only the server's failures worth retrying: a permanent error says
            // nothing about the server's health, and a local refusal never reached it.
            Attempt::Failed(f) if f.is_retryable() && !f.is_refused() => {
                tokens.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    Some(t.saturating_sub(MILLI))
                })
            }
            Attempt::Failed(_) => return,
        };
    }

    fn can_withdraw(&self, _after: Class) -> bool {
        self.above_half()
    }
}
