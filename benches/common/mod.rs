//! What several benches share: an error that classifies as transient, and an always-ready
//! client answering at once, so every contender wraps the same inner service.

use riprap::classify::{Class, Classified};
use tower::{Service, service_fn};

/// The inner service's error: transient, so retry layers would retry it.
#[derive(Debug, Clone)]
pub struct Fail;

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fail")
    }
}

impl std::error::Error for Fail {}

impl Classified for Fail {
    fn class(&self) -> Class {
        Class::Transient
    }
}

/// An always-ready client that answers with its request at once.
pub fn client() -> impl Service<u64, Response = u64, Error = Fail, Future = impl Send> + Clone + Send
{
    service_fn(|x: u64| async move { Ok::<u64, Fail>(x) })
}
