//! GCRA evaluated on the Redis server, in one script, for a block of capacity at a time.
//!
//! The state of a quota is one number per key: its theoretical arrival time (TAT), in
//! microseconds of the server's clock, which every process shares. A unit of capacity is
//! `interval` microseconds; the quota lets through whatever keeps the TAT within
//! `burst × interval` of now. redis-cell and go-redis's redis_rate keep the same state;
//! what differs here is the question asked. They ask "may one request of cost n pass now?";
//! the lease asks "grant me up to `want` units, at least `need`, the first of them
//! conforming by now + `ahead`", and the answer says when the first unit conforms. The
//! others follow one `interval` apart, exactly as single requests would have: a block is
//! never spent faster than GCRA would have let its units through one by one, so a lease may
//! be larger than the burst. A fleet at its limit thus queues its grants in the TAT instead
//! of retrying denials: each round trip brings back a block, and the processes spend their
//! blocks at the pace the quota allows.
//!
//! Several keys (a request quota and a cost quota) are evaluated together: either every key
//! grants at least its `need`, and all are booked, or nothing is booked. That is the
//! "weighted cost and keys" of the quota, atomic because Redis runs a script alone.

use std::time::Duration;

/// KEYS: one TAT per quota. ARGV[1]: `ahead` (µs); then per key: interval (µs, may be
/// fractional), tolerance (burst × interval, µs), want, need.
///
/// Returns `{1, grant_1, first_us_1, grant_2, first_us_2...}` (when the first unit of each
/// key's grant conforms, from now; negative when the quota was idle, so that several
/// units conform at once) or `{0, retry_in_us}`.
pub(crate) const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ahead = tonumber(ARGV[1])
local tats, grants = {}, {}
local retry = 0
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 4
  local interval = tonumber(ARGV[a + 1])
  local tolerance = tonumber(ARGV[a + 2])
  local want = tonumber(ARGV[a + 3])
  local need = tonumber(ARGV[a + 4])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now) or now
  if tat < now then tat = now end
  local avail = math.floor((now + ahead + tolerance - tat) / interval)
  if avail < need then
    local wait = tat + need * interval - tolerance - ahead - now
    if wait > retry then retry = wait end
  end
  local g = math.min(want, avail)
  if g < 0 then g = 0 end
  tats[i] = tat
  grants[i] = g
end
if retry > 0 then
  return {0, math.ceil(retry)}
end
local out = {1}
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 4
  local interval = tonumber(ARGV[a + 1])
  local tolerance = tonumber(ARGV[a + 2])
  local new = tats[i] + grants[i] * interval
  local first = tats[i] + interval - tolerance - now
  local ttl = math.ceil((new - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', math.ceil(new)), 'PX', ttl)
  out[#out + 1] = grants[i]
  out[#out + 1] = math.ceil(first)
end
return out
";

/// One quota as the script sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Params {
    /// Microseconds per unit.
    pub(crate) interval: f64,
    /// `burst × interval`.
    pub(crate) tolerance: f64,
}

impl Params {
    pub(crate) fn new(rate: u32, per: Duration, burst: u32) -> Params {
        let interval = per.as_secs_f64() * 1e6 / f64::from(rate.max(1));
        Params {
            interval,
            tolerance: interval * f64::from(burst),
        }
    }
}

/// One key's grant: `units`, the first conforming `first_us` microseconds from the answer
/// (negative: in the past, so that the units conform one `interval` apart from then and
/// several may be due at once), the others one interval apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) units: u32,
    pub(crate) first_us: i64,
}

impl Grant {
    /// Units due `elapsed` after the answer arrived, given one unit per `interval` µs.
    pub(crate) fn due(&self, elapsed: Duration, interval: f64) -> u32 {
        let since_first = elapsed.as_secs_f64() * 1e6 - self.first_us as f64;
        if since_first < 0.0 {
            return 0;
        }
        if interval <= 0.0 {
            return self.units;
        }
        let n = (since_first / interval).floor() + 1.0;
        n.min(f64::from(self.units)) as u32
    }

    /// When unit `k` (from 0) is due, after the answer arrived.
    pub(crate) fn due_at(&self, k: u32, interval: f64) -> Duration {
        // A microsecond late, so the unit is due by the clock's reading then, whatever the
        // rounding.
        let us = self.first_us as f64 + f64::from(k) * interval + 1.0;
        Duration::from_secs_f64((us / 1e6).max(0.0))
    }
}

/// The script's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Granted: one grant per key, in key order.
    Granted(Vec<Grant>),
    /// Not even `need` fits within `ahead`: ask again after `retry_in`.
    Denied { retry_in: Duration },
}

fn micros(n: i64) -> Duration {
    Duration::from_micros(u64::try_from(n).unwrap_or(0))
}

impl Answer {
    /// Read the script's reply; `None` for anything else (a script that answered oddly is
    /// treated as an unreachable store, never trusted).
    pub(crate) fn decode(reply: &[i64], keys: usize) -> Option<Answer> {
        match reply {
            [1, grants @ ..] if grants.len() == 2 * keys => Some(Answer::Granted(
                grants
                    .chunks_exact(2)
                    .map(|g| match g {
                        [units, first] => Some(Grant {
                            units: u32::try_from(*units).ok()?,
                            first_us: *first,
                        }),
                        _ => None,
                    })
                    .collect::<Option<Vec<Grant>>>()?,
            )),
            [0, retry, ..] => Some(Answer::Denied {
                retry_in: micros(*retry),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses_odd_replies() {
        assert_eq!(
            Answer::decode(&[1, 20, 1500, 400, -90], 2),
            Some(Answer::Granted(vec![
                Grant {
                    units: 20,
                    first_us: 1500
                },
                Grant {
                    units: 400,
                    first_us: -90
                }
            ]))
        );
        assert_eq!(
            Answer::decode(&[0, 90], 2),
            Some(Answer::Denied {
                retry_in: Duration::from_micros(90)
            })
        );
        assert_eq!(Answer::decode(&[1, 0, 3], 2), None);
        assert_eq!(Answer::decode(&[1, -3, 0], 1), None);
        assert_eq!(Answer::decode(&[], 1), None);
    }

    #[test]
    fn grants_come_due_one_interval_apart() {
        let ms = Duration::from_millis;
        // Idle quota: the first unit conformed 25 ms ago at 10 ms per unit, so three are due.
        let idle = Grant {
            units: 5,
            first_us: -25_000,
        };
        assert_eq!(idle.due(Duration::ZERO, 10_000.0), 3);
        assert_eq!(idle.due(ms(5), 10_000.0), 4);
        assert_eq!(idle.due(ms(60), 10_000.0), 5);
        // A fleet at its limit: the first unit in 2 ms.
        let queued = Grant {
            units: 2,
            first_us: 2_000,
        };
        assert_eq!(queued.due(ms(1), 10_000.0), 0);
        assert_eq!(queued.due(ms(2), 10_000.0), 1);
        assert_eq!(queued.due_at(1, 10_000.0), Duration::from_micros(12_001));
        assert_eq!(idle.due_at(0, 10_000.0), Duration::ZERO);
    }

    proptest::proptest! {
        /// Units come due in order, never more than granted, each by the instant `due_at`
        /// names for it, and never earlier than one interval after the one before.
        #[test]
        fn units_come_due_in_order(
            units in 0u32..500,
            first_us in -2_000_000i64..2_000_000,
            interval in 1.0f64..100_000.0,
            steps in proptest::collection::vec(0u64..50_000, 1..40),
        ) {
            let g = Grant { units, first_us };
            let mut elapsed = Duration::ZERO;
            let mut before = 0;
            for step in steps {
                elapsed += Duration::from_micros(step);
                let due = g.due(elapsed, interval);
                proptest::prop_assert!(due >= before && due <= units);
                before = due;
            }
            for k in 0..units.min(50) {
                proptest::prop_assert!(g.due(g.due_at(k, interval), interval) > k);
                if k > 0 {
                    let gap = g.due_at(k, interval).saturating_sub(g.due_at(k - 1, interval));
                    let at_first = g.due_at(k - 1, interval).is_zero();
                    proptest::prop_assert!(at_first || gap.as_secs_f64() * 1e6 >= interval - 1.0);
                }
            }
        }
    }

    #[test]
    fn params() {
        let p = Params::new(500, Duration::from_secs(60), 50);
        assert_eq!(p.interval, 120_000.0);
        assert_eq!(p.tolerance, 6_000_000.0);
    }
}
