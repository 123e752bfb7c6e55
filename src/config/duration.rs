//! Human-readable durations for config files: `"250ms"`, `"2m"`, `"1h30m"`, `"1.5s"`.
//!
//! Every duration in riprap's config specs (see [the guide](super)) is read and written
//! through this module, and you can use it for your own config structs with
//! `#[serde(with = "riprap::config::duration")]` (or [`riprap::config::duration::option`](option)
//! for an `Option<Duration>`).
//!
//! The syntax is Go's `time.ParseDuration`, the same parser riprap uses for OpenAI's
//! rate-limit headers: one or more decimal numbers, each with an
//! optional fraction and a unit — `h`, `m`, `s`, `ms`, `us` (or `µs`), `ns` — such as `"90s"`,
//! `"1m30s"`, `"0.5s"`, `"20ms"`, or a bare `"0"`. A unit is required, so `5` is refused
//! rather than guessed to be seconds or milliseconds; negative durations are refused.
//! Durations are written back as Go's `time.Duration.String()` writes them (`"1h30m0s"`,
//! `"250ms"`), which this module reads back exactly.
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Deserialize, Serialize)]
//! struct Job {
//!     #[serde(with = "riprap::config::duration")]
//!     every: Duration,
//!     #[serde(default, with = "riprap::config::duration::option")]
//!     timeout: Option<Duration>,
//! }
//!
//! let job: Job = toml::from_str(r#"every = "1h30m""#).unwrap();
//! assert_eq!(job, Job { every: Duration::from_secs(5_400), timeout: None });
//! assert_eq!(toml::to_string(&job).unwrap().trim(), r#"every = "1h30m0s""#);
//!
//! let err = toml::from_str::<Job>(r#"every = "5 parsecs""#).unwrap_err();
//! assert!(err.to_string().contains("expected a duration with a unit"));
//! ```

use std::fmt;
use std::time::Duration;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserializer, Serializer};

use crate::classify::headers::{format_go_duration, parse_go_duration};

/// Write `d` as a Go-style duration string such as `"1m30s"`.
pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_go_duration(*d))
}

/// Read a Go-style duration string such as `"250ms"` or `"1h30m"`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_str(HumanDuration)
}

struct HumanDuration;

impl Visitor<'_> for HumanDuration {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration with a unit, such as \"250ms\", \"1.5s\", \"2m\" or \"1h30m\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        if let Some(d) = parse_go_duration(v.as_bytes()) {
            return Ok(d);
        }
        // The parser refuses negative durations like any other malformed one; say why, since
        // "-5s" otherwise looks well-formed to whoever wrote it.
        if v.trim_start().starts_with('-') {
            return Err(E::invalid_value(
                Unexpected::Str(v),
                &"a duration that is not negative",
            ));
        }
        Err(E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// `#[serde(with = "riprap::config::duration::option")]` for an `Option<Duration>`: `None` is
/// written as nothing at all (pair it with `skip_serializing_if = "Option::is_none"`, since
/// TOML has no null) and read from a missing field (with `default`) or a null.
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize, Serialize)]
    #[serde(transparent)]
    struct Human(#[serde(with = "super")] Duration);

    /// Write `Some(d)` as a duration string and `None` as a null.
    pub fn serialize<S: Serializer>(
        d: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        d.map(Human).serialize(serializer)
    }

    /// Read a duration string, or a null as `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Human>::deserialize(deserializer)?.map(|h| h.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, StrDeserializer};

    fn parse(s: &str) -> Result<Duration, String> {
        let d: StrDeserializer<'_, Error> = s.into_deserializer();
        deserialize(d).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_human_durations() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_garbage_and_negatives_with_a_reason() {
        let err = parse("5 parsecs").unwrap_err();
        assert!(err.contains("\"5 parsecs\""), "{err}");
        assert!(err.contains("expected a duration with a unit"), "{err}");
        assert!(parse("10").unwrap_err().contains("with a unit"));
        assert!(parse("").is_err());
        let err = parse("-5s").unwrap_err();
        assert!(err.contains("not negative"), "{err}");
    }
}
