//! The fleet quota: GCRA on Redis, spent locally from leased blocks.

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::Script;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::events::FleetEvent;
use super::gcra::{Answer, Grant, Params, SCRIPT};
use super::redis::{Conn, Fleet};
use crate::ConfigError;
use crate::time::nanos;

use crate::ratelimit::shared::{SharedGate, SharedQuota, Take};
use crate::ratelimit::{QuotaConfig, RateLimitConfig, RateLimitError, RateLimiter};

/// Builds a [`RateLimiter`] whose quotas are shared by every process of a fleet; see
/// [`Fleet::limiter`] for the two-line version and the bound on overshoot.
#[must_use = "a builder does nothing until `build()` is called"]
pub struct FleetLimiterBuilder {
    fleet: Fleet,
    name: String,
    config: RateLimitConfig,
    lease: Option<u32>,
    cost_lease: Option<u32>,
    local_share: f64,
    reserve_ahead: Option<Duration>,
    shared_gate: bool,
}

impl fmt::Debug for FleetLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLimiterBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("lease", &self.lease)
            .field("cost_lease", &self.cost_lease)
            .field("local_share", &self.local_share)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A [`RateLimiter`] enforcing `config`'s quotas across every process that uses the
    /// same `name` on this Redis, with the shared server gate ([`gate`](Fleet::gate)) and
    /// the defaults of [`limiter_builder`](Fleet::limiter_builder). Everything else in
    /// `config` (maximum wait, default pause, adaptive rate) stays per process.
    ///
    /// This is the two-line change from a local quota to a fleet quota:
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use riprap::fleet::Fleet;
    /// use riprap::ratelimit::{RateLimitConfig, RateLimiter};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), riprap::ConfigError> {
    /// let config = RateLimitConfig::builder().requests(500, Duration::from_secs(60)).build()?;
    /// // One process:
    /// let local = RateLimiter::new(config.clone());
    /// // Every process:
    /// let fleet = Fleet::redis("redis://127.0.0.1:6379/")?;
    /// let limiter = fleet.limiter("openai", config)?;
    /// # Ok(()) }
    /// ```
    ///
    /// ## Leases and the bound on overshoot
    ///
    /// A round trip to Redis leases a block of capacity (20 requests by default) which the
    /// process then spends locally, lock-free; a new block is fetched in the background when
    /// an eighth of the block is left. GCRA on the server bounds what is *granted* in any
    /// window of length `T` to `burst + rate × T`; what is *spent* in it may add what the
    /// processes held when it began, at most one lease each. So with `P` processes:
    ///
    /// ```text
    /// calls in any window T  ≤  burst + rate × T + P × lease        (cost: P × cost_lease)
    /// round trips per acquire ≈  1 / (⅞ × lease)                    at steady state
    /// ```
    ///
    /// A bigger lease means fewer round trips and more slack; `lease(1)` asks Redis on every
    /// acquire and has no slack. A block's units are released into the process one GCRA
    /// interval apart, each when it conforms on the server's schedule (the first `burst` at
    /// once when the quota is idle), so a block is never spent faster than single requests
    /// would have been let through, whatever its size. When the fleet is at its limit those
    /// instants lie ahead, queued in the server's TAT: every round trip still brings back a
    /// whole block, and no process polls a refusal.
    ///
    /// ## When Redis is down
    ///
    /// The process spends what it holds, then falls back to a local quota of `local_share`
    /// of each rate (default 0.1), while riprap's backoff paces attempts to reach Redis
    /// again. No caller waits longer than the fleet's timeout for Redis.
    pub fn limiter(&self, name: &str, config: RateLimitConfig) -> Result<RateLimiter, ConfigError> {
        self.limiter_builder(name, config).build()
    }

    /// Every knob of a fleet limiter; see [`limiter`](Fleet::limiter).
    pub fn limiter_builder(&self, name: &str, config: RateLimitConfig) -> FleetLimiterBuilder {
        FleetLimiterBuilder {
            fleet: self.clone(),
            name: name.to_owned(),
            config,
            lease: None,
            cost_lease: None,
            local_share: 0.1,
            reserve_ahead: None,
            shared_gate: true,
        }
    }
}

impl FleetLimiterBuilder {
    /// The most requests leased per round trip (default 20; a process leases what it spent
    /// over the last second, up to this). Each process may spend this many beyond the
    /// fleet's GCRA bound: the slack. It may exceed the burst: a block's units are released
    /// one GCRA interval apart, as they conform, never all at once.
    pub fn lease(mut self, requests: u32) -> Self {
        self.lease = Some(requests);
        self
    }

    /// Cost units leased per round trip (default: what `lease` requests are worth at the
    /// quotas' ratio, or a tenth of the cost burst without a request quota).
    pub fn cost_lease(mut self, units: u32) -> Self {
        self.cost_lease = Some(units);
        self
    }

    /// The fraction of each rate this process allows itself while Redis is unreachable
    /// (default 0.1; `1 / processes` splits the quota evenly).
    pub fn local_share(mut self, share: f64) -> Self {
        self.local_share = share;
        self
    }

    /// How far ahead Redis may schedule a grant when the fleet is at its limit (default: the
    /// config's maximum wait, at most 1 s).
    pub fn reserve_ahead(mut self, ahead: Duration) -> Self {
        self.reserve_ahead = Some(ahead);
        self
    }

    /// Whether a 429 seen here pauses every process (default `true`; see
    /// [`Fleet::gate`]).
    pub fn shared_gate(mut self, on: bool) -> Self {
        self.shared_gate = on;
        self
    }

    /// Check every knob and build the limiter. Must be called inside a tokio runtime.
    pub fn build(self) -> Result<RateLimiter, ConfigError> {
        let quota = self.quota()?;
        let gate = self
            .shared_gate
            .then(|| Arc::new(self.fleet.gate(&self.name)) as Arc<dyn SharedGate>);
        let mut local = self.config;
        local.requests = None;
        local.cost = None;
        // The limiter's events go to the config's listener, as for any limiter.
        Ok(RateLimiter::build_shared(
            local,
            quota.map(|q| Arc::new(q) as Arc<dyn SharedQuota>),
            gate,
        ))
    }

    fn quota(&self) -> Result<Option<FleetQuota>, ConfigError> {
        let requests = self.config.request_quota();
        let cost = self.config.cost_quota();
        if requests.is_none() && cost.is_none() {
            return Ok(None);
        }
        if self.name.is_empty() || self.name.contains(['{', '}']) {
            return Err(ConfigError::new(
                "fleet.name",
                "must be non-empty and free of `{` and `}`",
            ));
        }
        let share = self.local_share;
        if !(share.is_finite() && share > 0.0 && share <= 1.0) {
            return Err(ConfigError::new(
                "fleet.local_share",
                format!("must be in (0, 1] (got {share})"),
            ));
        }
        let lease = match requests {
            Some(_) => {
                let lease = self.lease.unwrap_or(20);
                check_lease("fleet.lease", lease)?;
                lease
            }
            None => 0,
        };
        let cost_lease = match cost {
            Some(q) => {
                let default = match requests {
                    Some(r) => {
                        let worth = u64::from(q.rate) * u64::from(lease) / u64::from(r.rate);
                        u32::try_from(worth).unwrap_or(u32::MAX)
                    }
                    None => q.burst / 10,
                };
                let lease = self.cost_lease.unwrap_or(default.clamp(1, q.burst));
                check_lease("fleet.cost_lease", lease)?;
                lease
            }
            None => 0,
        };
        let ahead = self
            .reserve_ahead
            .unwrap_or(self.config.max_wait().min(Duration::from_secs(1)));
        crate::error::check_duration("fleet.reserve_ahead", ahead)?;
        let fallback = fallback(&self.config, share)?;
        let conn = Arc::clone(&self.fleet.conn);
        let mut keys = Vec::new();
        let mut params = Vec::new();
        for (what, q) in [("requests", requests), ("cost", cost)] {
            if let Some(q) = q {
                keys.push(conn.key(&self.name, what));
                params.push(Params::new(q.rate, q.per, q.burst));
            }
        }
        Ok(Some(FleetQuota {
            inner: Arc::new(Inner {
                conn,
                script: Script::new(SCRIPT),
                keys,
                params,
                requests: requests.is_some(),
                cost: cost.map(|q: QuotaConfig| q.burst),
                lease,
                cost_lease,
                ahead,
                held: AtomicU64::new(0),
                refilling: AtomicBool::new(false),
                wait_until: AtomicU64::new(0),
                base: Instant::now(),
                need_cost: AtomicU32::new(0),
                answered: Notify::new(),
                fallback,
                granted: (AtomicU64::new(0), AtomicU64::new(0)),
                block: AtomicU64::new(pack(lease, cost_lease)),
                demand: Mutex::new(Demand {
                    at: Instant::now(),
                    spent: (0, 0),
                    // Start as if the process spent a whole lease a horizon: a busy
                    // process starts at full blocks, a light one shrinks within seconds.
                    rate: (
                        f64::from(lease) / DEMAND_HORIZON.as_secs_f64(),
                        f64::from(cost_lease) / DEMAND_HORIZON.as_secs_f64(),
                    ),
                }),
            }),
        }))
    }
}

fn check_lease(knob: &'static str, lease: u32) -> Result<(), ConfigError> {
    if lease == 0 {
        return Err(ConfigError::new(knob, "must be at least 1"));
    }
    Ok(())
}

/// The local quota a process falls back to: `share` of each rate and of the request burst.
/// The cost burst stays whole, so a request the fleet quota could pass is never refused
/// outright while Redis is down, only paced.
fn fallback(config: &RateLimitConfig, share: f64) -> Result<RateLimiter, ConfigError> {
    let part = |n: u32| ((f64::from(n) * share).ceil() as u32).max(1);
    let mut b = RateLimitConfig::builder().reject_when_limited();
    if let Some(q) = config.request_quota() {
        b = b.requests(part(q.rate), q.per).request_burst(part(q.burst));
    }
    if let Some(q) = config.cost_quota() {
        b = b.cost(part(q.rate), q.per).cost_burst(q.burst);
    }
    b.build().map(RateLimiter::new)
}

/// The shared quota behind a fleet limiter.
struct FleetQuota {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Arc<Conn>,
    script: Script,
    keys: Vec<String>,
    params: Vec<Params>,
    /// Whether a request quota is configured.
    requests: bool,
    /// The cost quota's burst, if configured.
    cost: Option<u32>,
    lease: u32,
    cost_lease: u32,
    ahead: Duration,
    /// Capacity held: requests in the high word, cost units in the low word.
    held: AtomicU64,
    refilling: AtomicBool,
    /// While a refill waits (for a scheduled grant, or after a denial): until when, in
    /// nanoseconds since `base`; 0 while a round trip is in flight or none is.
    wait_until: AtomicU64,
    base: Instant,
    /// The largest cost a caller is waiting for.
    need_cost: AtomicU32,
    answered: Notify,
    fallback: RateLimiter,
    /// Units ever granted (requests, cost): with what is held, what was spent.
    granted: (AtomicU64, AtomicU64),
    /// Touched by the one refill in flight only.
    demand: Mutex<Demand>,
    /// The blocks the last refill aimed for (requests, cost), packed: the low-water mark is
    /// an eighth of them.
    block: AtomicU64,
}

/// What this process spent by the previous refill, to size the next one.
struct Demand {
    at: Instant,
    spent: (u64, u64),
    /// Units spent per second, smoothed over [`DEMAND_HORIZON`].
    rate: (f64, f64),
}

/// A process leases what it spends in this long, at most a lease: a light process (a
/// poller) holds little of the fleet's capacity idle, a busy one grows to the whole lease.
/// It is also the smoothing time of the spending rate, so a burst at start-up does not
/// make a poller hold a whole lease for seconds.
const DEMAND_HORIZON: Duration = Duration::from_secs(1);

/// Fold `spent` units over `over` into the smoothed `rate` (units per second).
fn smoothed(rate: f64, spent: u64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs <= 0.0 {
        return rate;
    }
    let weight = 1.0 - (-secs / DEMAND_HORIZON.as_secs_f64()).exp();
    rate + weight * (spent as f64 / secs - rate)
}

/// The block to hold at `rate`: a horizon's worth, within `[1, lease]`.
fn sized(lease: u32, rate: f64) -> u32 {
    let wanted = (rate * DEMAND_HORIZON.as_secs_f64()).ceil();
    (wanted.min(f64::from(lease)) as u32).max(1)
}

fn pack(requests: u32, cost: u32) -> u64 {
    (u64::from(requests) << 32) | u64::from(cost)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

impl SharedQuota for FleetQuota {
    #[inline]
    fn try_take(&self, cost: u32) -> Take {
        let s = &*self.inner;
        if let Some(burst) = s.cost {
            if cost > burst {
                return Take::TooLarge { burst };
            }
        }
        let (r_need, c_need) = (
            u32::from(s.requests),
            if s.cost.is_some() { cost } else { 0 },
        );
        // Twice at most: a refill that ends between the first look and starting another may
        // have brought what this caller needs.
        for _ in 0..2 {
            let taken = s.held.fetch_update(Relaxed, Relaxed, |word| {
                let (r, c) = unpack(word);
                (r >= r_need && c >= c_need).then(|| pack(r - r_need, c - c_need))
            });
            if let Ok(word) = taken {
                let (r, c) = unpack(word);
                let (r, c) = (r - r_need, c - c_need);
                // Low water: fetch the next block while an eighth of this one is left, so a
                // steady caller rarely waits for a round trip (a round trip on loopback or
                // in one zone is far shorter than spending an eighth of a block).
                let (rb, cb) = unpack(s.block.load(Relaxed));
                if (s.requests && r <= rb / 8) || (s.cost.is_some() && c <= cb / 8) {
                    s.start_refill(&self.inner);
                }
                return Take::Taken;
            }
            if !s.conn.health.is_up() {
                // Degraded: a background attempt when the backoff allows, the local share now.
                s.start_refill(&self.inner);
                return self.local(cost);
            }
            s.need_cost.fetch_max(c_need, Relaxed);
            s.start_refill(&self.inner);
            if s.refilling.load(Relaxed) {
                return match s.wait_until.load(Relaxed) {
                    // A round trip is in flight: its answer is due within the timeout.
                    0 => Take::Pending,
                    n => Take::Until(s.base + Duration::from_nanos(n)),
                };
            }
            if tokio::runtime::Handle::try_current().is_err() {
                // No runtime to fetch in (a synchronous `try_acquire`): the local share.
                return self.local(cost);
            }
        }
        Take::Pending
    }

    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let mut answered = pin!(inner.answered.notified());
            answered.as_mut().enable();
            if inner.refilling.load(Relaxed) && inner.wait_until.load(Relaxed) == 0 {
                answered.await;
            }
        })
    }
}

impl FleetQuota {
    fn local(&self, cost: u32) -> Take {
        match self.inner.fallback.try_acquire(cost) {
            Ok(_) => Take::Taken,
            Err(RateLimitError::Limited {
                retry_after: Some(d),
                ..
            }) => Take::Until(Instant::now() + d),
            Err(RateLimitError::CostExceedsBurst { burst, .. }) => Take::TooLarge { burst },
            Err(_) => Take::Until(Instant::now() + self.inner.conn.timeout),
        }
    }
}

impl Inner {
    fn start_refill(&self, me: &Arc<Inner>) {
        if self.refilling.load(Relaxed) || !self.conn.health.due() {
            return;
        }
        if self
            .refilling
            .compare_exchange(false, true, Relaxed, Relaxed)
            .is_err()
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.refilling.store(false, Relaxed);
            return;
        };
        let me = Arc::clone(me);
        rt.spawn(async move {
            me.refill().await;
            me.refilling.store(false, Relaxed);
            me.answered.notify_waiters();
        });
    }

    /// Top the held capacity up to a block, in as few round trips as the server allows,
    /// and release the grant into it at the pace its units conform.
    async fn refill(&self) {
        // A denial says when the need will fit; a few in a row mean the fleet is far beyond
        // its quota, and the waiting callers' own deadlines take over.
        let (lease, cost_lease) = self.block();
        for _ in 0..4 {
            let (r, c) = unpack(self.held.load(Relaxed));
            let need_cost = self.need_cost.swap(0, Relaxed);
            let mut args: Vec<(u32, u32)> = Vec::with_capacity(2);
            if self.requests {
                let want = lease.saturating_sub(r);
                args.push((want, u32::from(r == 0).min(want)));
            }
            if self.cost.is_some() {
                let want = cost_lease.max(need_cost).saturating_sub(c);
                args.push((want, need_cost.saturating_sub(c).min(want)));
            }
            if args.iter().all(|(want, _)| *want == 0) {
                return;
            }
            let answer = self.ask(&args).await;
            match answer {
                None => return,
                Some(Answer::Granted(grants)) => {
                    let mut g = grants.into_iter();
                    let none = Grant {
                        units: 0,
                        first_us: 0,
                    };
                    let req = if self.requests { g.next() } else { None };
                    let cost = if self.cost.is_some() { g.next() } else { None };
                    let (req, cost) = (req.unwrap_or(none), cost.unwrap_or(none));
                    self.conn.health.emit(FleetEvent::Leased {
                        requests: req.units,
                        cost: cost.units,
                        ready_in: Duration::from_micros(
                            u64::try_from(req.first_us.max(cost.first_us)).unwrap_or(0),
                        ),
                    });
                    self.drip(req, cost).await;
                    return;
                }
                Some(Answer::Denied { retry_in }) => {
                    self.need_cost.fetch_max(need_cost, Relaxed);
                    self.wait_until(Instant::now() + retry_in.max(Duration::from_millis(1)))
                        .await;
                }
            }
        }
    }

    /// Release a grant into the capacity held as its units conform: the first after its
    /// `first_in` (counted from the answer's arrival, so never earlier than on the server's
    /// clock), the others one interval apart.
    async fn drip(&self, req: Grant, cost: Grant) {
        let arrived = Instant::now();
        let mut params = self.params.iter();
        let mut interval = |on: bool| {
            if on {
                params.next().map_or(0.0, |p| p.interval)
            } else {
                0.0
            }
        };
        let keys = [
            (req, interval(self.requests)),
            (cost, interval(self.cost.is_some())),
        ];
        let mut released = [0u32; 2];
        loop {
            let elapsed = Instant::now().saturating_duration_since(arrived);
            let mut add = [0u32; 2];
            let mut next: Option<Duration> = None;
            for (i, (grant, every)) in keys.iter().enumerate() {
                let due = grant.due(elapsed, *every).max(released[i]);
                add[i] = due - released[i];
                released[i] = due;
                if due < grant.units {
                    let at = grant.due_at(due, *every);
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            if add != [0, 0] {
                self.held.fetch_add(pack(add[0], add[1]), Relaxed);
                self.granted.0.fetch_add(u64::from(add[0]), Relaxed);
                self.granted.1.fetch_add(u64::from(add[1]), Relaxed);
                self.answered.notify_waiters();
            }
            match next {
                None => return,
                Some(at) => self.wait_until(arrived + at).await,
            }
        }
    }

    /// The blocks to hold, sized by what this process spent since the previous refill.
    fn block(&self) -> (u32, u32) {
        let (r, c) = unpack(self.held.load(Relaxed));
        let spent = (
            self.granted.0.load(Relaxed).saturating_sub(u64::from(r)),
            self.granted.1.load(Relaxed).saturating_sub(u64::from(c)),
        );
        let mut d = self.demand.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let over = now.saturating_duration_since(d.at);
        let rate = (
            smoothed(d.rate.0, spent.0.saturating_sub(d.spent.0), over),
            smoothed(d.rate.1, spent.1.saturating_sub(d.spent.1), over),
        );
        *d = Demand {
            at: now,
            spent,
            rate,
        };
        let sizes = (sized(self.lease, rate.0), sized(self.cost_lease, rate.1));
        self.block.store(pack(sizes.0, sizes.1), Relaxed);
        sizes
    }

    /// Sleep until `until` with the instant published, so callers wait for it against
    /// their own deadline rather than for the refill as a whole.
    async fn wait_until(&self, until: Instant) {
        let n = nanos(until.saturating_duration_since(self.base)).max(1);
        self.wait_until.store(n, Relaxed);
        self.answered.notify_waiters();
        tokio::time::sleep_until(until).await;
        self.wait_until.store(0, Relaxed);
    }

    async fn ask(&self, args: &[(u32, u32)]) -> Option<Answer> {
        let ahead = u64::try_from(self.ahead.as_micros()).unwrap_or(u64::MAX);
        let reply: Vec<i64> = self
            .conn
            .run(|mut con| {
                let mut call = self.script.prepare_invoke();
                for key in &self.keys {
                    call.key(key);
                }
                call.arg(ahead);
                for (p, (want, need)) in self.params.iter().zip(args) {
                    call.arg(p.interval).arg(p.tolerance).arg(*want).arg(*need);
                }
                async move { call.invoke_async(&mut con).await }
            })
            .await?;
        let answer = Answer::decode(&reply, self.keys.len());
        if answer.is_none() {
            self.conn.health.failed();
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_follow_demand() {
        let ms = Duration::from_millis;
        assert_eq!(sized(20, 0.0), 1);
        assert_eq!(sized(20, 7.2), 8);
        assert_eq!(sized(20, 1e6), 20);
        // A burst of 8 in 10 ms moves the rate by about 1 % of 800/s.
        let burst = smoothed(0.0, 8, ms(10));
        assert!((7.0..9.0).contains(&burst), "{burst}");
        // A steady 50/s converges on it.
        let mut rate = 0.0;
        for _ in 0..100 {
            rate = smoothed(rate, 5, ms(100));
        }
        assert!((rate - 50.0).abs() < 0.5, "{rate}");
        assert_eq!(smoothed(3.0, 9, Duration::ZERO), 3.0);
    }

    #[test]
    fn packs() {
        assert_eq!(unpack(pack(7, u32::MAX)), (7, u32::MAX));
    }
}
