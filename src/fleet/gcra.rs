//! GCRA evaluated on the Redis server, in one script, for a block of capacity at a time.
//!
//! The state of a quota is one number per key: its theoretical arrival time (TAT), in
//! microseconds of the server's clock, which every process shares. A unit of capacity is
//! `interval` microseconds; the quota lets through whatever keeps the TAT within
//! `burst × interval` of now. redis-cell and go-redis's redis_rate keep the same state;
//! what differs here is the question asked. They ask "may one request of cost n pass now?";
//! the lease asks "grant me up to `want` units, at least `need`, ready by now + `ahead`",
//! and the answer carries the instant the grant may be spent. A fleet at its limit thus
//! queues its grants in the TAT instead of retrying denials: each round trip brings back a
//! block, and the processes spend their blocks at the pace the quota allows.
//!
//! Several keys (a request quota and a cost quota) are evaluated together: either every key
//! grants at least its `need`, and all are booked, or nothing is booked. That is the
//! "weighted cost and keys" of the quota, atomic because Redis runs a script alone.

use std::time::Duration;

/// KEYS: one TAT per quota. ARGV[1]: `ahead` (µs); then per key: interval (µs, may be
/// fractional), tolerance (burst × interval, µs), want, need.
///
/// Returns `{1, ready_in_us, grant...}` or `{0, retry_in_us}`.
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
local ready = now
local out = {1, 0}
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 4
  local interval = tonumber(ARGV[a + 1])
  local tolerance = tonumber(ARGV[a + 2])
  local new = tats[i] + grants[i] * interval
  if new - tolerance > ready then ready = new - tolerance end
  local ttl = math.ceil((new - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', math.ceil(new)), 'PX', ttl)
  out[i + 2] = grants[i]
end
out[2] = math.ceil(ready - now)
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

/// The script's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Granted, spendable after `ready_in`; one grant per key, in key order.
    Granted {
        ready_in: Duration,
        grants: Vec<u32>,
    },
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
            [1, ready, grants @ ..] if grants.len() == keys => Some(Answer::Granted {
                ready_in: micros(*ready),
                grants: grants
                    .iter()
                    .map(|g| u32::try_from(*g).ok())
                    .collect::<Option<Vec<u32>>>()?,
            }),
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
            Answer::decode(&[1, 1500, 20, 400], 2),
            Some(Answer::Granted {
                ready_in: Duration::from_micros(1500),
                grants: vec![20, 400]
            })
        );
        assert_eq!(
            Answer::decode(&[0, 90], 2),
            Some(Answer::Denied {
                retry_in: Duration::from_micros(90)
            })
        );
        assert_eq!(Answer::decode(&[1, 0, 3], 2), None);
        assert_eq!(Answer::decode(&[1, 0, -3], 1), None);
        assert_eq!(Answer::decode(&[], 1), None);
    }

    #[test]
    fn params() {
        let p = Params::new(500, Duration::from_secs(60), 50);
        assert_eq!(p.interval, 120_000.0);
        assert_eq!(p.tolerance, 6_000_000.0);
    }
}
