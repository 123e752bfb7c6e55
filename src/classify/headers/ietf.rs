//! The IETF draft rate-limit fields (draft-ietf-httpapi-ratelimit-headers): the structured
//! `RateLimit` / `RateLimit-Policy` fields and the older `RateLimit-Limit/Remaining/Reset`.

use std::time::Duration;

use super::{Quota, malformed, saturating_u64};

/// One quota policy a server announced in `RateLimit-Policy`: `limit` units per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// The quota (`q`): how many units the window allows.
    pub limit: u64,
    /// The window (`w`), if the server gave one. A window is a length of time, not a delay, so
    /// it is not capped.
    pub window: Option<Duration>,
}

impl RateLimitPolicy {
    /// `true` if `self` allows fewer units per unit of time than `other` (compared by quota
    /// alone when either window is unknown).
    fn tighter_than(&self, other: &RateLimitPolicy) -> bool {
        match (self.window, other.window) {
            (Some(w), Some(v)) => {
                u128::from(self.limit) * v.as_nanos() < u128::from(other.limit) * w.as_nanos()
            }
            _ => self.limit < other.limit,
        }
    }
}

/// Parse the draft IETF `RateLimit` field, e.g. `"default";r=45;t=30`: `r` units remain, and
/// the window resets in `t` seconds (capped at `ceiling`).
///
/// The value is a structured-field list (RFC 8941); when it has several items (one per
/// policy), the most constraining one is returned: the fewest remaining, then the longest
/// reset. Items without `r` are skipped. The returned quota's `limit` is `None` (that lives in
/// `RateLimit-Policy`; [`RateLimitSignal::from_lookup`](super::RateLimitSignal::from_lookup)
/// joins the two by policy name). Every item counts as a request quota whatever its quota unit.
/// A malformed field, or one with no usable item, is `None`, with a `tracing` debug event.
// Only the tests and the fuzz targets call it on its own.
#[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
pub fn parse_ratelimit(value: &[u8], ceiling: Duration) -> Option<Quota> {
    tightest_ratelimit(value, ceiling).map(|(_, quota)| quota)
}

/// The most constraining `RateLimit` item and its policy name.
pub(super) fn tightest_ratelimit(value: &[u8], ceiling: Duration) -> Option<(&[u8], Quota)> {
    let mut best: Option<(&[u8], Quota)> = None;
    let parsed = for_each_member(value.trim_ascii(), |m| {
        let Some(remaining) = m.r else { return };
        let quota = Quota {
            limit: None,
            remaining: Some(remaining),
            reset_after: m.t.map(|t| Duration::from_secs(t).min(ceiling)),
        };
        let better = match &best {
            None => true,
            Some((_, b)) => {
                (remaining, std::cmp::Reverse(quota.reset_after))
                    < (
                        b.remaining.unwrap_or(u64::MAX),
                        std::cmp::Reverse(b.reset_after),
                    )
            }
        };
        if better {
            best = Some((m.name, quota));
        }
    });
    match (parsed, best) {
        (Some(()), Some(best)) => Some(best),
        _ => malformed("ratelimit", value),
    }
}

/// Parse the draft IETF `RateLimit-Policy` field, e.g. `"default";q=100;w=60`.
///
/// With several items, the most constraining one is returned: the fewest units per second of
/// window (by quota alone where a window is missing). Items without `q` are skipped. A
/// malformed field, or one with no usable item, is `None`, with a `tracing` debug event.
// Only the tests and the fuzz targets call it on its own.
#[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
pub fn parse_ratelimit_policy(value: &[u8]) -> Option<RateLimitPolicy> {
    policy(value, None)
}

/// The policy named `name`, or without a name the most constraining one.
pub(super) fn policy(value: &[u8], name: Option<&[u8]>) -> Option<RateLimitPolicy> {
    let mut best: Option<RateLimitPolicy> = None;
    let parsed = for_each_member(value.trim_ascii(), |m| {
        let Some(limit) = m.q else { return };
        let p = RateLimitPolicy {
            limit,
            window: m.w.map(Duration::from_secs),
        };
        let wanted = match name {
            Some(name) => m.name == name && best.is_none(),
            None => best.is_none_or(|b| p.tighter_than(&b)),
        };
        if wanted {
            best = Some(p);
        }
    });
    match (parsed, best) {
        (Some(()), Some(best)) => Some(best),
        (Some(()), None) if name.is_some() => None,
        _ => malformed("ratelimit-policy", value),
    }
}

/// Parse a count from the older draft fields `RateLimit-Limit` and `RateLimit-Remaining`
/// (and GitHub's and OpenAI's limit/remaining headers): a non-negative integer, optionally
/// followed by policy details after a `,` or `;` (`100, 100;w=60`), which are ignored. Counts
/// too large for a `u64` saturate. Anything else is `None`, with a `tracing` debug event.
pub fn parse_count(value: &[u8]) -> Option<u64> {
    let s = value.trim_ascii();
    let end = s
        .iter()
        .position(|&b| b == b',' || b == b';')
        .unwrap_or(s.len());
    saturating_u64(s[..end].trim_ascii()).or_else(|| malformed("count", value))
}

/// Parse delay-seconds, as in the older draft `RateLimit-Reset` field: a non-negative integer
/// number of seconds, capped at `ceiling` (values too large for a `u64` are `ceiling` too).
/// Anything else is `None`, with a `tracing` debug event.
pub fn parse_delta_seconds(value: &[u8], ceiling: Duration) -> Option<Duration> {
    match saturating_u64(value.trim_ascii()) {
        Some(secs) => Some(Duration::from_secs(secs).min(ceiling)),
        None => malformed("delta-seconds", value),
    }
}

/// The parameters riprap reads from one list member; others are parsed and ignored.
#[derive(Default)]
struct Member<'a> {
    /// The member's bare item as written (a string's contents or a token), used to join
    /// `RateLimit` items to their `RateLimit-Policy`.
    name: &'a [u8],
    r: Option<u64>,
    t: Option<u64>,
    q: Option<u64>,
    w: Option<u64>,
}

/// Walk a structured-field list (RFC 8941 §4.2.1), calling `each` per member; `None` if the
/// field is malformed anywhere (as RFC 8941 requires, one bad member fails the whole field).
///
/// Deliberate leniencies: integers may have more than 15 digits (they saturate, and delays are
/// capped later), and inner lists are rejected rather than parsed, since no rate-limit field
/// uses them.
fn for_each_member<'a>(mut s: &'a [u8], mut each: impl FnMut(Member<'a>)) -> Option<()> {
    if s.is_empty() {
        return None;
    }
    loop {
        let (item, rest) = bare_item(s)?;
        s = rest;
        let mut member = Member {
            name: match item {
                Bare::Text(text) => text,
                Bare::Integer { .. } => &[],
            },
            ..Member::default()
        };
        while let Some(rest) = s.strip_prefix(b";") {
            s = skip(rest, b" ");
            let key_len = key_len(s)?;
            let key = &s[..key_len];
            s = &s[key_len..];
            let value = match s.strip_prefix(b"=") {
                Some(rest) => {
                    let (value, rest) = bare_item(rest)?;
                    s = rest;
                    value
                }
                None => Bare::Text(b"?1"),
            };
            let slot = match key {
                b"r" => &mut member.r,
                b"t" => &mut member.t,
                b"q" => &mut member.q,
                b"w" => &mut member.w,
                _ => continue,
            };
            match value {
                Bare::Integer {
                    negative: false,
                    value,
                } => *slot = Some(value),
                _ => return None,
            }
        }
        each(member);
        s = skip(s, b" \t");
        if s.is_empty() {
            return Some(());
        }
        s = skip(s.strip_prefix(b",")?, b" \t");
        if s.is_empty() {
            return None;
        }
    }
}

enum Bare<'a> {
    Integer {
        negative: bool,
        value: u64,
    },
    /// Any other bare item (string contents, token, decimal, boolean, byte sequence).
    Text(&'a [u8]),
}

fn bare_item(s: &[u8]) -> Option<(Bare<'_>, &[u8])> {
    let first = *s.first()?;
    match first {
        b'-' | b'0'..=b'9' => {
            let negative = first == b'-';
            let digits_from = usize::from(negative);
            let n = s[digits_from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if n == 0 {
                return None;
            }
            let int_end = digits_from + n;
            if let Some(frac) = s[int_end..].strip_prefix(b".") {
                let f = frac.iter().take_while(|b| b.is_ascii_digit()).count();
                if f == 0 || f > 3 {
                    return None;
                }
                let end = int_end + 1 + f;
                return Some((Bare::Text(&s[..end]), &s[end..]));
            }
            let value = saturating_u64(&s[digits_from..int_end])?;
            Some((Bare::Integer { negative, value }, &s[int_end..]))
        }
        b'"' => {
            let mut i = 1;
            loop {
                match *s.get(i)? {
                    b'"' => return Some((Bare::Text(&s[1..i]), &s[i + 1..])),
                    b'\\' => match s.get(i + 1)? {
                        b'"' | b'\\' => i += 2,
                        _ => return None,
                    },
                    0x20..=0x7e => i += 1,
                    _ => return None,
                }
            }
        }
        b'?' => match s.get(1)? {
            b'0' | b'1' => Some((Bare::Text(&s[..2]), &s[2..])),
            _ => None,
        },
        b':' => {
            let n = s[1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
                .count();
            let end = 1 + n;
            (s.get(end)? == &b':').then(|| (Bare::Text(&s[..=end]), &s[end + 1..]))
        }
        b'*' | b'a'..=b'z' | b'A'..=b'Z' => {
            let n = s
                .iter()
                .take_while(|&&b| is_tchar(b) || b == b':' || b == b'/')
                .count();
            Some((Bare::Text(&s[..n]), &s[n..]))
        }
        _ => None,
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Length of the parameter key at the start of `s`, if one starts there.
fn key_len(s: &[u8]) -> Option<usize> {
    match s.first()? {
        b'*' | b'a'..=b'z' => Some(
            s.iter()
                .take_while(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*'))
                .count(),
        ),
        _ => None,
    }
}

fn skip<'a>(s: &'a [u8], set: &[u8]) -> &'a [u8] {
    let n = s.iter().take_while(|b| set.contains(b)).count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_policy_examples() {
        use std::time::Duration;

        assert_eq!(
            parse_ratelimit_policy(br#""default";q=100;w=60"#),
            Some(RateLimitPolicy {
                limit: 100,
                window: Some(Duration::from_secs(60))
            }),
        );
    }

    #[test]
    fn parse_ratelimit_examples() {
        use std::time::Duration;

        let ceiling = Duration::from_secs(300);
        let q = parse_ratelimit(br#""hour";r=900;t=1800, "minute";r=0;t=30"#, ceiling).unwrap();
        assert_eq!(q.remaining, Some(0));
        assert_eq!(q.reset_after, Some(Duration::from_secs(30)));
    }

    #[test]
    fn parse_ratelimit_policy_examples() {
        let p = parse_ratelimit_policy(br#""burst";q=100;w=1, "daily";q=1000;w=86400"#).unwrap();
        assert_eq!(p.limit, 1000);
    }

    #[test]
    fn parse_count_examples() {
        assert_eq!(parse_count(b"5000"), Some(5000));
        assert_eq!(parse_count(b"100, 100;w=60"), Some(100));
        assert_eq!(parse_count(b"-1"), None);
    }

    #[test]
    fn parse_delta_seconds_examples() {
        use std::time::Duration;

        let ceiling = Duration::from_secs(300);
        assert_eq!(
            parse_delta_seconds(b"30", ceiling),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_delta_seconds(b"86400", ceiling), Some(ceiling));
        assert_eq!(parse_delta_seconds(b"1.5", ceiling), None);
    }
}
