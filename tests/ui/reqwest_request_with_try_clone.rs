// The same client with `TryClone`: it fits as it is.
use riprap::classify::HttpStatus;
use riprap::retry::TryClone;
use riprap::stack::{LlmStack, StackBuilder};

fn main() {
    let stack = StackBuilder::llm_api(HttpStatus::new())
        .clone_requests(TryClone)
        .build()
        .unwrap();
    let _client: LlmStack<reqwest::Client, HttpStatus, riprap::ratelimit::NoSignal, TryClone> =
        stack.layer(reqwest::Client::new());
}
