//! The fleet retry budget: a ratio budget whose deposits and withdrawals are summed across
//! every process, in Redis counters per time slot.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::redis::{Conn, Fleet};
use crate::ConfigError;
use crate::budget::{Budget, RatioBudget, Withdrawal};
use crate::classify::Class;
use crate::time::nanos;

/// Add this process's net units to the current slot, keep it for the window, and answer the
/// sum of every live slot. KEYS: the current slot, then the older ones of the window.
/// ARGV: the net units, the slot key's lifetime in ms.
const SYNC: &str = r"
if tonumber(ARGV[1]) ~= 0 then
  redis.call('INCRBY', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local sum = 0
for i = 1, #KEYS do
  sum = sum + (tonumber(redis.call('GET', KEYS[i])) or 0)
end
return sum
";

/// Slots per window, as in the local [`RatioBudget`].
const SLOTS: u64 = 10;
/// Units per retry, as in the local budget: a deposit is `ratio × 1000`.
const RETRY_COST: i64 = 1000;

/// A retry budget for the whole fleet: retries may be at most `ratio` of the first attempts
/// *every process* made in the last `ttl`, plus one reserve of `min_retries_per_sec × ttl`
/// for the fleet, not per process. Forty replicas retrying on their own multiply the load
/// forty times; on one fleet budget, they add `ratio` to it.
///
/// Each process counts its deposits and withdrawals locally (lock-free, no round trip) and
/// every `sync_every` (default 100 ms) adds its net to a Redis counter per time slot, reading
/// back the fleet's sum. A withdrawal spends from that sum as last read, so the fleet may
/// overdraw by what the processes withdraw between two syncs, never more. Until the first
/// answer, and whenever Redis does not answer for `3 × sync_every`, withdrawals fall back to
/// a local [`RatioBudget`] with the same knobs, which every deposit keeps warm.
///
/// ```no_run
/// use riprap::budget::{Budget, RatioBudget};
/// use riprap::fleet::Fleet;
///
/// # #[tokio::main] async fn main() -> Result<(), riprap::ConfigError> {
/// let fleet = Fleet::redis("redis://127.0.0.1:6379/")?;
/// let budget = fleet.budget("payments-api", RatioBudget::builder().ratio(0.1))?;
/// budget.deposit(); // a first attempt, counted for the whole fleet
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FleetBudget {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Arc<Conn>,
    local: RatioBudget,
    key_prefix: String,
    slot_ms: u64,
    deposit_units: i64,
    reserve: i64,
    sync_every: Duration,
    /// The fleet's balance as last read, minus what this process spent since.
    balance: AtomicI64,
    deposits: AtomicU64,
    /// Units withdrawn (net of refunds) since the last sync.
    withdrawn: AtomicI64,
    /// When the balance was last read, nanoseconds since `base`; 0: never.
    synced_at: AtomicU64,
    base: Instant,
    syncing: AtomicBool,
    script: Script,
    task: OnceLock<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = self.task.get() {
            t.abort();
        }
    }
}

impl Fleet {
    /// A retry budget named `name` shared by every process; see [`FleetBudget`]. Takes the
    /// local budget's builder for its knobs (ratio, reserve, ttl). Must be called inside a
    /// tokio runtime.
    pub fn budget(
        &self,
        name: &str,
        knobs: crate::budget::RatioBudgetBuilder,
    ) -> Result<FleetBudget, ConfigError> {
        self.budget_synced(name, knobs, Duration::from_millis(100))
    }

    /// Like [`budget`](Fleet::budget), syncing with Redis every `sync_every` (from 1 ms to
    /// a tenth of the ttl): more often bounds the overdraft tighter, for more round trips.
    pub fn budget_synced(
        &self,
        name: &str,
        knobs: crate::budget::RatioBudgetBuilder,
        sync_every: Duration,
    ) -> Result<FleetBudget, ConfigError> {
        let (ratio, per_sec, ttl) = knobs.knobs();
        let local = knobs.build()?;
        let reserve_retries = f64::from(per_sec) * ttl.as_secs_f64();
        if sync_every < Duration::from_millis(1) || sync_every > ttl / 10 {
            return Err(ConfigError::new(
                "fleet.budget.sync_every",
                format!("must be from 1 ms to a tenth of the ttl (got {sync_every:?})"),
            ));
        }
        let slot_ms = u64::try_from((ttl / SLOTS as u32).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let conn = Arc::clone(&self.conn);
        let inner = Arc::new(Inner {
            key_prefix: conn.key(name, "budget"),
            conn,
            local,
            slot_ms,
            deposit_units: (ratio * RETRY_COST as f64).round() as i64,
            reserve: (reserve_retries * RETRY_COST as f64).round() as i64,
            sync_every,
            balance: AtomicI64::new(0),
            deposits: AtomicU64::new(0),
            withdrawn: AtomicI64::new(0),
            synced_at: AtomicU64::new(0),
            base: Instant::now(),
            syncing: AtomicBool::new(false),
            script: Script::new(SYNC),
            task: OnceLock::new(),
        });
        let task = tokio::spawn(sync_loop(Arc::downgrade(&inner)));
        let _ = inner.task.set(task.abort_handle());
        Ok(FleetBudget { inner })
    }
}

impl FleetBudget {
    /// Whether withdrawals spend from the fleet's sum (`false`: from the local budget,
    /// because Redis has not answered lately).
    pub fn is_shared(&self) -> bool {
        self.inner.fresh()
    }

    /// Retries' worth of credit available to this process now: the fleet's, as last read,
    /// or the local budget's.
    pub fn balance(&self) -> f64 {
        if self.inner.fresh() {
            self.inner.balance.load(Relaxed).max(0) as f64 / RETRY_COST as f64
        } else {
            self.inner.local.balance()
        }
    }
}

impl fmt::Debug for FleetBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetBudget")
            .field("key", &self.inner.key_prefix)
            .field("shared", &self.is_shared())
            .field("balance", &self.balance())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.base)).max(1)
    }

    fn fresh(&self) -> bool {
        let at = self.synced_at.load(Relaxed);
        let stale = nanos(self.sync_every.saturating_mul(3));
        at != 0 && self.now().saturating_sub(at) <= stale
    }

    async fn sync(&self) {
        let deposits = self.deposits.swap(0, Relaxed);
        let withdrawn = self.withdrawn.swap(0, Relaxed);
        let delta = i64::try_from(deposits)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.deposit_units)
            .saturating_sub(withdrawn);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let slot = now_ms / self.slot_ms;
        let keys: Vec<String> = (0..SLOTS)
            .filter_map(|i| slot.checked_sub(i))
            .map(|s| format!("{}:{s}", self.key_prefix))
            .collect();
        let life_ms = self.slot_ms.saturating_mul(SLOTS + 1);
        let sum: Option<i64> = self
            .conn
            .run(|mut con| {
                let mut call = self.script.prepare_invoke();
                for k in &keys {
                    call.key(k);
                }
                call.arg(delta).arg(life_ms);
                async move { call.invoke_async(&mut con).await }
            })
            .await;
        match sum {
            Some(sum) => {
                // What happened here since the swap is not in the sum yet: count it in.
                let since = i64::try_from(self.deposits.load(Relaxed))
                    .unwrap_or(i64::MAX)
                    .saturating_mul(self.deposit_units)
                    .saturating_sub(self.withdrawn.load(Relaxed));
                self.balance.store(
                    self.reserve.saturating_add(sum).saturating_add(since),
                    Relaxed,
                );
                self.synced_at.store(self.now(), Relaxed);
            }
            None => {
                // Not counted by the fleet: carry it to the next sync.
                self.deposits.fetch_add(deposits, Relaxed);
                self.withdrawn.fetch_add(withdrawn, Relaxed);
            }
        }
    }
}

async fn sync_loop(budget: Weak<Inner>) {
    let Some(me) = budget.upgrade() else { return };
    let every = me.sync_every;
    drop(me);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(me) = budget.upgrade() else { return };
        if !me.syncing.swap(true, Relaxed) {
            me.sync().await;
            me.syncing.store(false, Relaxed);
        }
    }
}

impl Budget for FleetBudget {
    #[inline]
    fn deposit(&self) {
        self.inner.deposits.fetch_add(1, Relaxed);
        self.inner
            .balance
            .fetch_add(self.inner.deposit_units, Relaxed);
        self.inner.local.deposit();
    }

    fn try_withdraw(&self, after: Class) -> Option<Withdrawal> {
        let s = &*self.inner;
        if !s.fresh() {
            return s.local.try_withdraw(after);
        }
        let taken = s.balance.fetch_update(Relaxed, Relaxed, |b| {
            (b >= RETRY_COST).then_some(b - RETRY_COST)
        });
        taken.ok()?;
        s.withdrawn.fetch_add(RETRY_COST, Relaxed);
        Some(Withdrawal::new(RETRY_COST as u64))
    }

    fn refund(&self, withdrawal: Withdrawal) {
        let s = &*self.inner;
        if !s.fresh() {
            return s.local.refund(withdrawal);
        }
        let units = i64::try_from(withdrawal.units()).unwrap_or(i64::MAX);
        s.balance.fetch_add(units, Relaxed);
        s.withdrawn.fetch_sub(units, Relaxed);
    }

    fn can_withdraw(&self, after: Class) -> bool {
        let s = &*self.inner;
        if !s.fresh() {
            return s.local.can_withdraw(after);
        }
        s.balance.load(Relaxed) >= RETRY_COST
    }
}
