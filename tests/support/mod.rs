//! Support shared by the integration tests that need more than the crate.
#![allow(dead_code)]

pub mod servers;
