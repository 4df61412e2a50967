//! The layout of `idp/src`, as ARCHITECTURE.md shows it: the import graph
//! between top-level modules has no cycle and no edge from the engine to a
//! runtime (`native`, `workers`), and the graph between files no cycle but
//! the one known and listed here; every file and function is one a reader can
//! hold (at most 500 lines of code and 600 in all per file, 80 per
//! function, test modules aside); and the engine keeps no mutable `static`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const RUNTIMES: [&str; 2] = ["native", "workers"];

/// `crate::name` references in code (comments and test modules left out).
fn references(source: &str) -> BTreeSet<String> {
    let code = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![root.clone()];
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
            let rel = path.strip_prefix(&root).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if matches!(top.as_str(), "lib" | "testing" | "encoding") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let deps = graph.entry(top.clone()).or_default();
            for r in references(&source) {
                if r != top && !matches!(r.as_str(), "testing" | "encoding" | "__private") {
                    deps.insert(r);
                }
            }
        }
    }
    graph
}

/// A cycle of the graph, as the path that closes it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if done.contains(m) {
            return None;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_owned());
            return Some(cycle);
        }
        path.push(m.to_owned());
        for d in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_engine_imports_no_runtime_and_no_module_imports_itself_back() {
    let graph = graph();
    assert!(graph.len() > 10, "{graph:?}");
    for (module, deps) in &graph {
        if !RUNTIMES.contains(&module.as_str()) {
            for runtime in RUNTIMES {
                assert!(
                    !deps.contains(runtime),
                    "{module} imports the runtime {runtime}"
                );
            }
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn a_cycle_is_found() {
    let edge = |a: &str, b: &str| (a.to_owned(), BTreeSet::from([b.to_owned()]));
    let cyclic = BTreeMap::from([edge("a", "b"), edge("b", "c"), edge("c", "a")]);
    assert_eq!(find_cycle(&cyclic).unwrap().len(), 4);
    let acyclic = BTreeMap::from([edge("a", "b"), edge("b", "c")]);
    assert_eq!(find_cycle(&acyclic), None);
    assert!(references("use crate::flow::X; // crate::native").contains("flow"));
    assert!(!references("// use crate::native::X").contains("native"));
}

/// Every source file, with its lines of code (not blank, not a comment,
/// before its test module).
fn code_lines() -> Vec<(std::path::PathBuf, usize)> {
    sources()
        .into_iter()
        .map(|(path, code)| {
            let n = code
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("//"))
                .count();
            (path, n)
        })
        .collect()
}

#[test]
fn every_file_is_one_a_reader_can_hold() {
    let files = code_lines();
    assert!(files.len() > 20);
    let long: Vec<_> = files.iter().filter(|(_, n)| *n > 500).collect();
    assert!(long.is_empty(), "over 500 lines of code: {long:?}");
}

/// Statements on the schema's tables in a file's code (tests aside).
fn table_statements(source: &str) -> usize {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    [
        "\"SELECT ",
        "\"INSERT ",
        "\"DELETE ",
        "\"UPDATE ",
        "\"CREATE ",
    ]
    .iter()
    .map(|k| code.matches(k).filter(|_| code.contains("idp_")).count())
    .sum()
}

#[test]
fn every_statement_on_a_table_lives_beside_the_statement_that_creates_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let beside = root.join("store/sql/tables.rs");
    assert!(table_statements(&std::fs::read_to_string(&beside).unwrap()) > 20);
    // The schema's own version table and the migrations' older layouts.
    // PostgreSQL's dialect has its own file of tables and statements.
    let allowed = [
        beside,
        root.join("store/sql/schema.rs"),
        root.join("native/postgres/tables.rs"),
    ];
    let mut stack = vec![root.clone()];
    let mut elsewhere = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !allowed.contains(&path) {
                let n = table_statements(&std::fs::read_to_string(&path).unwrap());
                if n > 0 {
                    elsewhere.push((path, n));
                }
            }
        }
    }
    assert!(
        elsewhere.is_empty(),
        "statements outside store/sql/tables.rs: {elsewhere:?}"
    );
}

/// `static` items in a file's code (tests aside) that can change:
/// interior mutability or `static mut`.
fn mutable_statics(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .map(str::trim_start)
        .filter(|l| {
            l.starts_with("static ") || l.starts_with("pub static ") || l.contains(" static ")
        })
        .filter(|l| !l.starts_with("//"))
        .filter(|l| {
            l.contains("static mut")
                || [
                    "Mutex", "RwLock", "Cell", "Atomic", "OnceLock", "LazyLock", "OnceCell",
                ]
                .iter()
                .any(|m| l.contains(m))
        })
        .map(str::to_owned)
        .collect()
}

/// The engine keeps no state of its own: what changes between calls
/// (nonces, counters, caches) lives in structs a runtime owns.
#[test]
fn the_engine_has_no_mutable_statics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let runtime = RUNTIMES
                .iter()
                .any(|r| path == root.join(r) || path == root.join(format!("{r}.rs")));
            if runtime {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).unwrap();
                for s in mutable_statics(&source) {
                    found.push(format!("{}: {s}", path.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "mutable statics in the engine: {found:#?}"
    );
    assert_eq!(
        mutable_statics("static NONCES: Mutex<Option<u8>> = Mutex::new(None);\nconst A: u8 = 1;")
            .len(),
        1
    );
    assert!(mutable_statics("pub const ALGORITHM: &str = \"ES256\";").is_empty());
    assert!(mutable_statics("fn f() -> &'static str { \"x\" }").is_empty());
}

/// The code of every source file before its test module.
fn sources() -> Vec<(std::path::PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).unwrap();
                let code = source
                    .split("#[cfg(test)]\nmod tests")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                out.push((path, code));
            }
        }
    }
    out
}

/// Each function in `code` with its length in lines, from its `fn` line
/// to its closing brace (braces in strings, characters and comments are
/// not counted).
fn function_lengths(code: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(at) = t.find("fn ") else { continue };
        let head = &t[..at];
        let is_fn = !t.starts_with("//")
            && head.split_whitespace().all(|w| {
                [
                    "pub",
                    "pub(crate)",
                    "pub(super)",
                    "async",
                    "const",
                    "unsafe",
                ]
                .contains(&w)
            });
        if !is_fn {
            continue;
        }
        let name: String = t[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let mut depth = 0i32;
        let mut opened = false;
        for (j, l) in lines[i..].iter().enumerate() {
            let code = strip(l);
            if !opened && code.trim_end().ends_with(';') {
                break;
            }
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth == 0 {
                out.push((name.clone(), j + 1));
                break;
            }
        }
    }
    out
}

/// A line without its comment, strings and character literals.
fn strip(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '"' => {
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                // A character literal ('{', '\'') or a lifetime ('a).
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') {
                    chars.next();
                    chars.next();
                    chars.next();
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.next();
                    chars.next();
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// No function a reader cannot hold (80 lines), and no file longer than
/// 600 lines before its tests.
#[test]
fn every_function_and_file_is_one_a_reader_can_hold() {
    let mut long = Vec::new();
    for (path, code) in sources() {
        let name = path.display().to_string();
        let lines = code.lines().count();
        if lines > 600 {
            long.push(format!("{name}: {lines} lines"));
        }
        for (f, n) in function_lengths(&code) {
            if n > 80 {
                long.push(format!("{name}: fn {f}, {n} lines"));
            }
        }
    }
    assert!(long.is_empty(), "too long to hold: {long:#?}");
    let sample = "pub async fn a() {\n    let s = \"}\";\n    let c = '{';\n    // }\n}\nfn b();\nfn c<'a>(x: &'a str) {\n}\n";
    assert_eq!(
        function_lengths(sample),
        [("a".to_owned(), 5), ("c".to_owned(), 2)]
    );
}

/// The module a source file is (`flow::device` for `flow/device.rs`, `fetch`
/// for `fetch/mod.rs`, the empty path for `lib.rs`).
fn module_of(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = path.strip_prefix(&root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The modules each file's code names (`crate::a::b`, `super::c`), each
/// resolved to the deepest module that is a file; a module and the modules
/// inside it are one family and not counted.
fn file_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files: BTreeMap<String, String> = sources()
        .into_iter()
        .map(|(p, code)| (module_of(&p), code))
        .collect();
    let resolve = |path: &str| -> Option<String> {
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        (1..=segs.len())
            .rev()
            .map(|i| segs[..i].join("::"))
            .find(|m| files.contains_key(m))
    };
    let family = |a: &str, b: &str| {
        a.is_empty()
            || b.is_empty()
            || a == b
            || a.starts_with(&format!("{b}::"))
            || b.starts_with(&format!("{a}::"))
    };
    let mut graph = BTreeMap::new();
    for (module, code) in &files {
        let mut deps = BTreeSet::new();
        for line in code.lines().map(str::trim_start) {
            if line.starts_with("//") {
                continue;
            }
            for (prefix, base) in [("crate::", String::new()), ("super::", parent(module))] {
                let mut rest = line;
                while let Some(at) = rest.find(prefix) {
                    rest = &rest[at + prefix.len()..];
                    let named: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                        .collect();
                    let full = [base.as_str(), named.trim_end_matches(':')]
                        .iter()
                        .filter(|s| !s.is_empty())
                        .copied()
                        .collect::<Vec<_>>()
                        .join("::");
                    if let Some(dep) = resolve(&full).filter(|d| !family(module, d)) {
                        deps.insert(dep);
                    }
                }
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_owned())
}

/// No cycle between files either (a module and the modules inside it
/// aside), but the one that the Workers object's wire protocol still makes:
/// `protocol` dispatches each call to the object, which answers with
/// `protocol`'s types.
#[test]
fn no_file_imports_itself_back() {
    let mut graph = file_graph();
    assert!(
        graph["fetch::drive"].contains("flow"),
        "{:?}",
        graph["fetch::drive"]
    );
    let known = graph.get_mut("workers::protocol").unwrap();
    assert!(
        known.remove("workers::object"),
        "the known cycle is gone: remove this"
    );
    assert_eq!(find_cycle(&graph), None);
}
