//! The fallback layer's knobs as plain data, for config files.

use serde::{Deserialize, Serialize};

use super::FallbackOn;
use crate::error::ConfigError;

/// Which failures of the primary go to the fallback, as data (feature `serde`): the class
/// names of [`Class::as_str`](crate::classify::Class::as_str). Left out, every failure
/// another try may fix.
///
/// ```
/// use riprap::fallback::{FallbackLayer, FallbackSpec};
///
/// let spec: FallbackSpec = toml::from_str(r#"on = ["throttled", "timed_out", "permanent"]"#)?;
/// let on = spec.on()?;
/// assert_eq!(on.names(), ["timed_out", "throttled", "permanent"]);
/// # let _ = FallbackLayer::new(tower::service_fn(|_: ()| async { Ok::<(), std::io::Error>(()) })).on(on);
///
/// let spec: FallbackSpec = toml::from_str(r#"on = ["sometimes"]"#)?;
/// assert_eq!(spec.on().unwrap_err().knob(), "fallback.on");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackSpec {
    /// The classes that fall back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<String>>,
}

impl FallbackSpec {
    /// The set of classes, checked.
    pub fn on(&self) -> Result<FallbackOn, ConfigError> {
        let Some(names) = &self.on else {
            return Ok(FallbackOn::failures());
        };
        names.iter().try_fold(FallbackOn::none(), |on, name| {
            on.with_name(name).ok_or_else(|| {
                ConfigError::new(
                    "fallback.on",
                    format!(
                        "unknown class {name:?}: expected transient, timed_out, throttled, \
                         refused or permanent"
                    ),
                )
            })
        })
    }
}
