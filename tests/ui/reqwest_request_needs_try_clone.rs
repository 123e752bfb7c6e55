// A `reqwest::Client` under a stack with the default copy policy: `reqwest::Request` is not
// `Clone`, so rustc must name the copy policy that is missing and the one that fits.
use riprap::classify::HttpStatus;
use riprap::stack::StackBuilder;

fn main() {
    let stack = StackBuilder::llm_api(HttpStatus::new()).build().unwrap();
    let _client = stack.layer(reqwest::Client::new());
}
