//! Knobs for [`Resumable`](super::Resumable) and [`Checkpointed`](super::Checkpointed).

use std::time::Duration;

use crate::engine::DEFAULT_MAX_RETRY_AFTER;
use crate::error::{ConfigError, check_duration};

/// What an end of the source's stream means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnEnd {
    /// The source should never end (a log tail, a change stream): an end is a dropped
    /// connection, and the stream reconnects after the last delivered offset.
    #[default]
    Reconnect,
    /// The source ends when it is done (an object, a bounded range): an end ends the stream.
    /// A source that can end early should report that as an error (the object store source
    /// does).
    Finish,
}

/// What to do when dense offsets jump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnGap {
    /// End the stream with [`ResumeError::Gap`](super::ResumeError::Gap): data was lost at
    /// the source, and someone has to decide what that means.
    #[default]
    Fail,
    /// Emit [`StreamEvent::Gap`](super::StreamEvent::Gap), count it, and keep going.
    Report,
}

/// How a [`Resumable`](super::Resumable) reconnects. Build with [`ResumeConfig::builder`];
/// [`ResumeConfig::default`] is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeConfig {
    /// Reconnect attempts allowed in one outage (attempts since the last delivered item).
    pub max_reconnects: u32,
    /// What an end of the source's stream means.
    pub on_end: OnEnd,
    /// What a jump in dense offsets means.
    pub on_gap: OnGap,
    /// The longest server-requested wait sat out before a reconnect (default 60 s, as for the
    /// retry layer). A longer one is never shortened: the stream ends with
    /// [`GiveUp::WaitTooLong`](crate::retry::GiveUp::WaitTooLong) and the instant the server
    /// named.
    pub max_retry_after: Duration,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        ResumeConfig {
            max_reconnects: 10,
            on_end: OnEnd::Reconnect,
            on_gap: OnGap::Fail,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

impl ResumeConfig {
    /// A builder starting from the defaults: 10 reconnects per outage, reconnect on end,
    /// fail on a gap.
    ///
    /// ```
    /// use riprap::stream::{OnEnd, OnGap, ResumeConfig};
    ///
    /// let config = ResumeConfig::builder()
    ///     .max_reconnects(5)
    ///     .on_end(OnEnd::Finish)
    ///     .on_gap(OnGap::Report)
    ///     .build()?;
    /// assert_eq!(config.max_reconnects, 5);
    /// assert_eq!(
    ///     ResumeConfig::builder().max_reconnects(0).build().unwrap_err().knob(),
    ///     "stream.max_reconnects"
    /// );
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn builder() -> ResumeConfigBuilder {
        ResumeConfigBuilder {
            config: ResumeConfig::default(),
        }
    }
}

/// Builder for [`ResumeConfig`]; checked in [`build`](ResumeConfigBuilder::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct ResumeConfigBuilder {
    config: ResumeConfig,
}

impl ResumeConfigBuilder {
    /// Reconnect attempts allowed per outage (default 10); at least 1. The backoff schedule
    /// may stop sooner.
    pub fn max_reconnects(mut self, n: u32) -> Self {
        self.config.max_reconnects = n;
        self
    }

    /// What an end of the source's stream means (default [`OnEnd::Reconnect`]).
    pub fn on_end(mut self, on_end: OnEnd) -> Self {
        self.config.on_end = on_end;
        self
    }

    /// What a jump in dense offsets means (default [`OnGap::Fail`]).
    pub fn on_gap(mut self, on_gap: OnGap) -> Self {
        self.config.on_gap = on_gap;
        self
    }

    /// The longest server-requested wait sat out before a reconnect (default 60 s).
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.config.max_retry_after = max;
        self
    }

    /// Check the knobs.
    pub fn build(self) -> Result<ResumeConfig, ConfigError> {
        if self.config.max_reconnects == 0 {
            return Err(ConfigError::new(
                "stream.max_reconnects",
                "must be at least 1 (a stream that never reconnects needs no Resumable)",
            ));
        }
        check_duration("stream.max_retry_after", self.config.max_retry_after)?;
        Ok(self.config)
    }
}

/// When a [`Checkpointed`](super::Checkpointed) stream commits. Build with
/// [`CommitConfig::builder`]; [`CommitConfig::default`] is valid.
///
/// After a crash, a restart redelivers what was acknowledged but not yet committed: at most
/// `every` items, or `interval` worth of them, plus whatever was delivered but not acked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitConfig {
    /// Commit once this many more items are acknowledged (contiguously) than at the last commit.
    pub every: u64,
    /// Commit acknowledged items at least this often.
    pub interval: Duration,
    /// How many delivered items may be outstanding (not yet covered by the contiguously
    /// acknowledged prefix) before the stream waits for acks. Bounds the memory held for
    /// out-of-order acks. A consumer that holds back the oldest item's ack while polling for
    /// more than this many items, in the same task, waits forever: size batches below it.
    pub max_unacked: usize,
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            every: 1_000,
            interval: Duration::from_secs(5),
            max_unacked: 4_096,
        }
    }
}

impl CommitConfig {
    /// A builder starting from the defaults: every 1,000 items or 5 s, at most 4,096
    /// outstanding.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::stream::CommitConfig;
    ///
    /// let config = CommitConfig::builder()
    ///     .every(100)
    ///     .interval(Duration::from_secs(1))
    ///     .max_unacked(1_024)
    ///     .build()?;
    /// assert_eq!(config.every, 100);
    /// assert_eq!(CommitConfig::builder().every(0).build().unwrap_err().knob(), "commit.every");
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn builder() -> CommitConfigBuilder {
        CommitConfigBuilder {
            config: CommitConfig::default(),
        }
    }
}

/// Builder for [`CommitConfig`]; checked in [`build`](CommitConfigBuilder::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct CommitConfigBuilder {
    config: CommitConfig,
}

impl CommitConfigBuilder {
    /// Commit after this many more acknowledged items (default 1,000); at least 1.
    pub fn every(mut self, n: u64) -> Self {
        self.config.every = n;
        self
    }

    /// Commit at least this often while acks arrive (default 5 s); non-zero.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.config.interval = interval;
        self
    }

    /// Outstanding items allowed before the stream waits for acks (default 4,096); at least 1.
    pub fn max_unacked(mut self, n: usize) -> Self {
        self.config.max_unacked = n;
        self
    }

    /// Check the knobs.
    pub fn build(self) -> Result<CommitConfig, ConfigError> {
        let c = self.config;
        if c.every == 0 {
            return Err(ConfigError::new("commit.every", "must be at least 1"));
        }
        if c.interval.is_zero() {
            return Err(ConfigError::new("commit.interval", "must be non-zero"));
        }
        check_duration("commit.interval", c.interval)?;
        if c.max_unacked == 0 {
            return Err(ConfigError::new("commit.max_unacked", "must be at least 1"));
        }
        Ok(c)
    }
}
