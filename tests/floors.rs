//! Dependencies run one way. Lists the imports between the top-level modules of `src/`, and
//! fails on any cycle, and on any import that runs against the floors of the design:
//!
//! ```text
//!   top      stack · fleet                                  consume the layers
//!   layers   breaker · cache · chaos · ratelimit · retry · stream · timeout · …
//!   ground   classify · events · engine · budget · backoff · config · error · keyed · knobs · request · sync · time
//! ```
//!
//! A ground module imports only the ground; a layer imports only the ground, never another
//! layer; the top imports anything. `cargo test --test floors -- --nocapture` prints the list.
//! A new top-level module is a layer unless it is listed on another floor here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const GROUND: &[&str] = &[
    "backoff", "budget", "classify", "config", "engine", "error", "events", "keyed", "knobs",
    "request", "sync", "time",
];
const TOP: &[&str] = &["fleet", "stack"];

/// Every top-level module of `src/` and the files it is made of.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut mods = BTreeMap::new();
    for entry in fs::read_dir(src).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() {
            let mut files = Vec::new();
            collect(&path, &mut files);
            mods.insert(name, files);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            mods.insert(name, vec![path]);
        }
    }
    mods
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a module folder is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level modules a file's code names through `crate::`, skipping comments (doc
/// examples name `riprap::`, never `crate::`).
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a::X, b, c::{..}}`: the first segment of each item at depth 0.
                let mut depth = 0;
                let mut item = String::new();
                for ch in group.chars() {
                    match ch {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            out.extend(first_segment(&item));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        item.push(ch);
                    }
                }
                out.extend(first_segment(&item));
            } else {
                out.extend(first_segment(rest));
            }
        }
    }
    out
}

fn first_segment(s: &str) -> Option<String> {
    let s = s.trim_start();
    let name: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name.starts_with(|c: char| c.is_ascii_lowercase())).then_some(name)
}

type Graph = BTreeMap<String, BTreeSet<String>>;

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let mut graph = Graph::new();
    for (name, files) in &mods {
        let mut edges = BTreeSet::new();
        for file in files {
            let code = fs::read_to_string(file).expect("source is readable");
            edges.extend(
                imports(&code)
                    .into_iter()
                    .filter(|t| t != name && mods.contains_key(t)),
            );
        }
        graph.insert(name.clone(), edges);
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    let graph = graph();
    for (module, edges) in &graph {
        println!(
            "{module} -> {}",
            Vec::from_iter(edges.iter().map(String::as_str)).join(", ")
        );
    }
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles between modules: {cycles:?}"
    );
    println!("0 module cycles");
}

#[test]
fn imports_run_down_the_floors() {
    let ground = |m: &str| GROUND.contains(&m);
    let mut wrong = Vec::new();
    for (module, edges) in graph() {
        let top = TOP.contains(&module.as_str());
        for to in edges {
            let allowed = if top { true } else { ground(&to) };
            if !allowed {
                let floor = if ground(&module) { "ground" } else { "layer" };
                wrong.push(format!("{module} ({floor}) imports {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the floors: {wrong:#?}");
}

#[test]
fn the_check_sees_a_cycle_and_a_grouped_import() {
    // Guards the two tests above against a parser that finds nothing.
    let code = "use crate::{retry::RetryEvent, breaker, events::{Event, Listener}};\n\
                // crate::stack is only a comment\n\
                let x = crate::budget::Unlimited;";
    let found: Vec<_> = imports(code).into_iter().collect();
    assert_eq!(found, ["breaker", "budget", "events", "retry"]);
    let mut graph = Graph::new();
    graph.insert("a".into(), ["b".into()].into());
    graph.insert("b".into(), ["c".into()].into());
    graph.insert("c".into(), ["a".into()].into());
    graph.insert("d".into(), ["a".into()].into());
    assert_eq!(cycles(&graph), [vec!["a", "b", "c"]]);
    // And it reads the real tree: every ground module is found there.
    let real = self::graph();
    assert!(GROUND.iter().chain(TOP).all(|m| real.contains_key(*m)));
}
