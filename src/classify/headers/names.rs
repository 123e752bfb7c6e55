//! Every header a [`RateLimitSignal`](super::RateLimitSignal) reads, by name.
//!
//! The readers ask for headers by this enum rather than by string, so a header map can be
//! scanned once into a table ([`Table`]) instead of being searched once per name: a response
//! carries a dozen headers, while the signal knows thirty names.

macro_rules! headers {
    ($($variant:ident = $name:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Header {
            $($variant,)*
        }

        // Counting and lookup by name serve `Table`, which only the `http` feature needs.
        #[cfg_attr(not(feature = "http"), allow(dead_code))]
        impl Header {
            const COUNT: usize = [$($name,)*].len();

            /// The lowercase header name.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Header::$variant => $name,)*
                }
            }

            /// The header called `name` (lowercase), if the signal reads it.
            fn from_name(name: &str) -> Option<Header> {
                match name {
                    $($name => Some(Header::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

headers! {
    RetryAfter = "retry-after",
    RetryAfterMs = "retry-after-ms",
    ShouldRetry = "x-should-retry",
    RateLimit = "ratelimit",
    RateLimitPolicy = "ratelimit-policy",
    RateLimitLimit = "ratelimit-limit",
    RateLimitRemaining = "ratelimit-remaining",
    RateLimitReset = "ratelimit-reset",
    OpenAiLimitRequests = "x-ratelimit-limit-requests",
    OpenAiRemainingRequests = "x-ratelimit-remaining-requests",
    OpenAiResetRequests = "x-ratelimit-reset-requests",
    OpenAiLimitTokens = "x-ratelimit-limit-tokens",
    OpenAiRemainingTokens = "x-ratelimit-remaining-tokens",
    OpenAiResetTokens = "x-ratelimit-reset-tokens",
    AnthropicRequestsLimit = "anthropic-ratelimit-requests-limit",
    AnthropicRequestsRemaining = "anthropic-ratelimit-requests-remaining",
    AnthropicRequestsReset = "anthropic-ratelimit-requests-reset",
    AnthropicTokensLimit = "anthropic-ratelimit-tokens-limit",
    AnthropicTokensRemaining = "anthropic-ratelimit-tokens-remaining",
    AnthropicTokensReset = "anthropic-ratelimit-tokens-reset",
    AnthropicInputTokensLimit = "anthropic-ratelimit-input-tokens-limit",
    AnthropicInputTokensRemaining = "anthropic-ratelimit-input-tokens-remaining",
    AnthropicInputTokensReset = "anthropic-ratelimit-input-tokens-reset",
    AnthropicOutputTokensLimit = "anthropic-ratelimit-output-tokens-limit",
    AnthropicOutputTokensRemaining = "anthropic-ratelimit-output-tokens-remaining",
    AnthropicOutputTokensReset = "anthropic-ratelimit-output-tokens-reset",
    GitHubLimit = "x-ratelimit-limit",
    GitHubRemaining = "x-ratelimit-remaining",
    GitHubReset = "x-ratelimit-reset",
}

/// The first value of every header the signal reads, gathered in one pass over a header map.
#[cfg(feature = "http")]
pub(crate) struct Table<'a>([Option<&'a [u8]>; Header::COUNT]);

#[cfg(feature = "http")]
impl<'a> Table<'a> {
    /// Gather from `(lowercase name, value)` pairs; a repeated header keeps its first value.
    pub(crate) fn scan(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut table = [None; Header::COUNT];
        for (name, value) in pairs {
            if let Some(h) = Header::from_name(name) {
                table[h as usize].get_or_insert(value);
            }
        }
        Table(table)
    }

    /// Gather from an `http::HeaderMap`, whose names are already lowercase.
    pub(crate) fn from_headers(headers: &'a http::HeaderMap) -> Self {
        Self::scan(headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
    }

    pub(crate) fn get(&self, header: Header) -> Option<&'a [u8]> {
        self.0[header as usize]
    }
}
