//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Run `check` over every file in `fuzz/corpus/<target>/`, so the fuzz targets' invariants are
/// exercised on stable by `cargo test`. Panics (failing the test) if the corpus is missing or
/// empty. The published package ships the checks (`tests/checks/`) but not `fuzz/`: built from
/// it, with no `fuzz/` at all, there is nothing to replay.
pub fn replay_corpus(target: &str, check: impl Fn(&[u8])) {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    if !fuzz.is_dir() {
        eprintln!("no fuzz/ directory (a packaged crate): corpus {target} not replayed");
        return;
    }
    let dir = fuzz.join("corpus").join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "corpus {} is empty", dir.display());
    for path in entries {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check(&data);
    }
}
