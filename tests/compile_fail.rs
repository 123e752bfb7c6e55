//! What rustc tells a user whose client does not fit the stack (feature `reqwest`): the
//! messages in `tests/ui/*.stderr` name the missing policy and the fix. The check builds riprap
//! again in a project of its own, which takes minutes, so it is not part of the default run:
//! `.ci/run` runs it with `cargo test --features reqwest --test compile_fail -- --ignored`.
//! Regenerate the messages after an intended change by adding `TRYBUILD=overwrite`.

#[cfg(feature = "reqwest")]
#[test]
#[ignore = "builds riprap again in its own project; .ci/run runs it with --ignored"]
fn a_client_that_does_not_fit_is_told_what_to_change() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/reqwest_request_needs_try_clone.rs");
    t.pass("tests/ui/reqwest_request_with_try_clone.rs");
}
