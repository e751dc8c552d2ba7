//! The house rule of the Layout of docs/DESIGN.md: no module of a crate imports one that imports it back.
//! Each crate's top-level modules (and their submodules, counted as the top-level one) form
//! a graph by the `crate::` paths their code names outside tests and comments; the graph
//! must have no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod common;

/// Top-level module → the top-level modules its code names.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn graph_of(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let first = relative.components().next().unwrap();
            let name = first.as_os_str().to_string_lossy();
            let module = name.trim_end_matches(".rs").to_string();
            if matches!(module.as_str(), "lib" | "main") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let deps = graph.entry(module.clone()).or_default();
            for target in crate_paths(&text) {
                if target != module {
                    deps.insert(target);
                }
            }
        }
    }
    graph
}

/// The first segment of every `crate::` path in the code before its tests, comments left out.
fn crate_paths(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// A cycle through `graph`, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_cycle() {
    for krate in ["codec", "player", "trainer"] {
        let graph = graph_of(&common::root().join(krate).join("src"));
        assert!(graph.len() > 4, "{krate}: only {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{krate}: {}", cycle.join(" -> "));
        }
    }
}

/// The names the crate root itself defines (not those it re-exports).
fn root_items(lib: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in lib.split("#[cfg(test)]").next().unwrap_or("").lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let start = match words.first() {
            Some(&"pub") | Some(&"pub(crate)") => 1,
            _ => 0,
        };
        if let (Some(kind), Some(name)) = (words.get(start), words.get(start + 1)) {
            if ["fn", "struct", "enum", "const", "static", "type", "trait"].contains(kind) {
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
        }
    }
    names
}

/// The root ties every module together, so a module that imports what the root defines is
/// tied to every module the root uses: shared items live in a module of their own.
#[test]
fn no_module_imports_what_the_crate_root_defines() {
    for krate in ["codec", "player", "trainer"] {
        let src = common::root().join(krate).join("src");
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let defined = root_items(&lib);
        for (module, deps) in graph_of(&src) {
            let tied: Vec<_> = deps.iter().filter(|d| defined.contains(d)).collect();
            assert!(
                tied.is_empty(),
                "{krate}: {module} imports {tied:?} from the crate root"
            );
        }
    }
}

#[test]
fn the_root_check_reads_definitions_not_re_exports() {
    let lib = "pub mod stream;\npub use frame::RgbFrame;\npub(crate) fn run_stage() {}\npub struct PlayOutcome {\nconst DEPTH: usize = 8;\n";
    assert_eq!(root_items(lib), ["run_stage", "PlayOutcome", "DEPTH"]);
}

#[test]
fn the_check_sees_a_cycle() {
    let mut graph = Graph::new();
    let edge = |g: &mut Graph, a: &str, b: &str| {
        g.entry(a.into()).or_default().insert(b.into());
    };
    edge(&mut graph, "registry", "coders");
    edge(&mut graph, "coders", "model_file");
    assert_eq!(find_cycle(&graph), None);
    edge(&mut graph, "model_file", "registry");
    assert_eq!(
        find_cycle(&graph).unwrap(),
        ["coders", "model_file", "registry", "coders"]
    );
    assert_eq!(
        crate_paths("use crate::a::B; // crate::b\nlet x = crate::c::f();\n#[cfg(test)] crate::d"),
        ["a", "c"]
    );
}
