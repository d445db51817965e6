//! The layering of `src/` (ARCHITECTURE.md), checked on the source text: every `use` path and
//! every `crate::…`, `super::…`, `self::…` or child-module path in code (comments, strings and
//! `#[cfg(test)]` modules left out) is resolved to the file that defines it.
//!
//! - (a) the domain libraries import nothing from the orchestrator ([`FORBIDDEN`]);
//! - (b) no import cycle between top-level modules;
//! - (c) no import cycle between the files of one module. A `mod.rs` may use the files below it
//!   (it declares and re-exports them); every other edge counts.
//!
//! `SPATIA_LAYERS_ROOT` points the checks at another `src/` (e.g. an older checkout's).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer rules, as in ARCHITECTURE.md: util, bounds → survival, slide, features → contracts,
/// cohort → model, report → stages → spec, dag → exec, provenance, cache → cli, main.
/// Each row: a module, and the modules it must not import from.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("survival", ORCHESTRATOR),
    ("slide", ORCHESTRATOR),
    ("features", ORCHESTRATOR),
    ("contracts", ORCHESTRATOR),
    ("cohort", ORCHESTRATOR),
    ("model", ORCHESTRATOR),
    ("report", ORCHESTRATOR),
];

/// Specs, the DAG, running it, the stage kinds and the command line.
const ORCHESTRATOR: &[&str] = &["spec", "dag", "exec", "stages", "cli"];

/// A module path, e.g. `["report", "page"]` for `src/report/page/mod.rs`.
type ModPath = Vec<String>;

/// One dependency of a file on another, with where it was seen.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    line: usize,
    path: String,
}

/// The files of a source tree and the edges between them.
struct Graph {
    /// File (relative to the root, `/`-separated) → its module path.
    files: BTreeMap<String, ModPath>,
    edges: Vec<Edge>,
}

fn root() -> PathBuf {
    match std::env::var_os("SPATIA_LAYERS_ROOT") {
        Some(r) => PathBuf::from(r),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    }
}

fn rs_files(dir: &Path, base: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: cannot list: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, base, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(base).expect("under the root").to_string_lossy().replace('\\', "/");
            out.push(rel);
        }
    }
}

/// The module a file defines: `a/b/mod.rs` and `a/b.rs` are `a::b`; `lib.rs` and `main.rs`
/// the crate root.
fn module_of(rel: &str) -> ModPath {
    let mut segs: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if segs.last().is_some_and(|s| s == "mod") || (segs.len() == 1 && (segs[0] == "lib" || segs[0] == "main")) {
        segs.pop();
    }
    segs
}

/// The text with comments, string and char literals blanked (newlines kept, so offsets keep
/// their line numbers).
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(b.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push(' ');
                    out.push(' ');
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push(' ');
                    out.push(' ');
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&b, i) {
            // raw string r"…", r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let end: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let end: Vec<char> = end.chars().collect();
            let mut k = j + 1;
            while k < b.len() && b[k..].iter().take(end.len()).ne(end.iter()) {
                k += 1;
            }
            let stop = (k + end.len()).min(b.len());
            out.extend(b[i..stop].iter().map(|&c| blank(c)));
            i = stop;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // a char literal ('x', '\n', '\u{..}') or a lifetime ('a)
            if next == Some('\\') {
                let mut k = i + 3;
                while k < b.len() && b[k] != '\'' {
                    k += 1;
                }
                out.extend(std::iter::repeat_n(' ', k + 1 - i));
                i = k + 1;
            } else if b.get(i + 2) == Some(&'\'') {
                out.extend([' ', ' ', ' ']);
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out.truncate(b.len());
    out.into_iter().collect()
}

fn prev_is_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// Blanks `#[cfg(test)]` items (test modules): what tests import is not a dependency.
fn strip_tests(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    let text: String = out.iter().collect();
    let mut from = 0;
    while let Some(pos) = text[from..].find("#[cfg(test)]") {
        let start = from + pos;
        let chars_start = text[..start].chars().count();
        // the item ends at its first `;` before any `{`, or at the matching `}`
        let rest: Vec<char> = text[start..].chars().collect();
        let mut depth = 0;
        let mut end = rest.len();
        for (k, &c) in rest.iter().enumerate() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        for c in out.iter_mut().skip(chars_start).take(end) {
            if *c != '\n' {
                *c = ' ';
            }
        }
        from = start + "#[cfg(test)]".len();
    }
    out.into_iter().collect()
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths a `use` tree names: `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    fn go(prefix: &[String], s: &str, out: &mut Vec<Vec<String>>) {
        let s = s.trim();
        if s.is_empty() {
            return;
        }
        if let Some(open) = s.find('{') {
            let head: Vec<String> =
                s[..open].split("::").map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect();
            let inner = &s[open + 1..s.rfind('}').unwrap_or(s.len())];
            let mut p = prefix.to_vec();
            p.extend(head);
            // split the group on top-level commas
            let (mut depth, mut last) = (0, 0);
            let bytes: Vec<char> = inner.chars().collect();
            for (k, &c) in bytes.iter().enumerate() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        go(&p, &bytes[last..k].iter().collect::<String>(), out);
                        last = k + 1;
                    }
                    _ => {}
                }
            }
            go(&p, &bytes[last..].iter().collect::<String>(), out);
        } else {
            let s = s.split(" as ").next().unwrap_or(s);
            let mut p = prefix.to_vec();
            p.extend(s.split("::").map(|x| x.trim().to_string()).filter(|x| !x.is_empty()));
            out.push(p);
        }
    }
    let mut out = Vec::new();
    go(&[], tree, &mut out);
    out
}

/// Names of the child modules a file declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`).
fn child_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let t = line.trim_start();
        let t = t.strip_prefix("pub(crate) ").or_else(|| t.strip_prefix("pub(super) ")).unwrap_or(t);
        let t = t.strip_prefix("pub ").unwrap_or(t);
        if let Some(rest) = t.strip_prefix("mod ") {
            let name: String = rest.chars().take_while(|&c| is_ident_char(c)).collect();
            if rest[name.len()..].trim_start().starts_with(';') {
                out.insert(name);
            }
        }
    }
    out
}

/// Every path in `code` that may name a module of the crate, with its line: `use` trees, and
/// `crate::`, `super::`, `self::` and `<child module>::` paths elsewhere.
fn paths_in(code: &str, children: &BTreeSet<String>) -> Vec<(usize, Vec<String>)> {
    let line_of = |off: usize| code[..off].matches('\n').count() + 1;
    let mut out = Vec::new();
    let mut use_spans = Vec::new();
    let mut from = 0;
    while let Some(pos) = code[from..].find("use ") {
        let start = from + pos;
        from = start + 4;
        let before = code[..start].chars().next_back();
        if before.is_some_and(is_ident_char) {
            continue;
        }
        let Some(len) = code[start..].find(';') else { break };
        let tree = &code[start + 4..start + len];
        for p in expand_use(tree) {
            out.push((line_of(start), p));
        }
        use_spans.push(start..start + len);
    }
    let chars: Vec<(usize, char)> = code.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (off, c) = chars[k];
        let starts_word = is_ident_char(c) && (k == 0 || !is_ident_char(chars[k - 1].1));
        if !starts_word || use_spans.iter().any(|s| s.contains(&off)) {
            k += 1;
            continue;
        }
        // preceded by `::`: the middle of a longer path
        let before: String = code[..off].trim_end().chars().rev().take(2).collect();
        let mut j = k;
        let mut segs = Vec::new();
        loop {
            let word: String = chars[j..].iter().map(|x| x.1).take_while(|&c| is_ident_char(c)).collect();
            if word.is_empty() {
                break;
            }
            segs.push(word.clone());
            j += word.chars().count();
            let rest: String = chars[j..].iter().map(|x| x.1).take(3).collect();
            if rest.starts_with("::") && rest.chars().nth(2).is_some_and(is_ident_char) {
                j += 2;
            } else {
                break;
            }
        }
        let first = segs[0].as_str();
        let names_module = matches!(first, "crate" | "super" | "self") || children.contains(first);
        if before != "::" && segs.len() > 1 && names_module {
            out.push((line_of(off), segs));
        }
        k = j.max(k + 1);
    }
    out
}

/// The module an absolute or relative path points into, from the file of module `here`.
fn resolve(here: &ModPath, segs: &[String], children: &BTreeSet<String>) -> Option<ModPath> {
    let mut m: ModPath;
    let mut rest = segs;
    match segs.first().map(String::as_str) {
        Some("crate") => {
            m = Vec::new();
            rest = &segs[1..];
        }
        Some("super") | Some("self") => {
            m = here.clone();
            while let Some(s) = rest.first() {
                match s.as_str() {
                    "super" => {
                        m.pop()?;
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        Some(first) if children.contains(first) => m = here.clone(),
        _ => return None,
    }
    m.extend(rest.iter().cloned());
    Some(m)
}

/// The file defining the longest prefix of `m` that is a module of the tree.
fn file_of(m: &ModPath, by_module: &BTreeMap<ModPath, String>) -> Option<String> {
    (0..=m.len()).rev().find_map(|k| by_module.get(&m[..k].to_vec()).cloned())
}

fn scan(root: &Path) -> Graph {
    let mut rels = Vec::new();
    rs_files(root, root, &mut rels);
    let files: BTreeMap<String, ModPath> = rels.iter().map(|r| (r.clone(), module_of(r))).collect();
    let by_module: BTreeMap<ModPath, String> =
        files.iter().filter(|(f, _)| f.as_str() != "main.rs").map(|(f, m)| (m.clone(), f.clone())).collect();
    let mut edges = Vec::new();
    for (file, here) in &files {
        if here.is_empty() {
            continue; // the crate roots only declare and dispatch
        }
        let src = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: cannot read: {e}"));
        let code = strip_tests(&strip(&src));
        let children = child_modules(&code);
        for (line, segs) in paths_in(&code, &children) {
            let Some(m) = resolve(here, &segs, &children) else { continue };
            let Some(to) = file_of(&m, &by_module) else { continue };
            if &to != file {
                edges.push(Edge { from: file.clone(), to, line, path: segs.join("::") });
            }
        }
    }
    Graph { files, edges }
}

/// A shortest cycle through each strongly connected part of `edges` (as node lists, the first
/// node repeated at the end, then a note listing the part's members when it has more), each
/// named once.
fn cycles(nodes: &BTreeSet<String>, edges: &[(String, String)]) -> Vec<Vec<String>> {
    let mut adj: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, b) in edges {
        adj.entry(a).or_default().insert(b);
    }
    let reach = |from: &str| -> BTreeMap<String, String> {
        // BFS parents from `from`
        let mut parent: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.to_string()]);
        while let Some(n) = queue.pop_front() {
            for &m in adj.get(n.as_str()).into_iter().flatten() {
                if !parent.contains_key(m) {
                    parent.insert(m.to_string(), n.clone());
                    queue.push_back(m.to_string());
                }
            }
        }
        parent
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for n in nodes {
        if seen.contains(n) {
            continue;
        }
        let parent = reach(n);
        if !parent.contains_key(n) {
            continue;
        }
        let mut cycle = vec![n.clone()];
        let mut cur = parent[n].clone();
        while &cur != n {
            cycle.push(cur.clone());
            cur = parent[&cur].clone();
        }
        cycle.push(n.clone());
        cycle.reverse();
        // everything on a cycle with `n` is reported with it
        let mut members = Vec::new();
        for m in parent.keys() {
            if reach(m).contains_key(n) {
                seen.insert(m.clone());
                members.push(m.clone());
            }
        }
        if members.len() + 1 > cycle.len() {
            cycle.push(format!("(all on a cycle together: {})", members.join(", ")));
        }
        out.push(cycle);
    }
    out
}

/// Where the edge `a → b` was seen (first occurrence).
fn evidence(g: &Graph, a: &str, b: &str, by_top: bool) -> String {
    let top = |f: &str| f.split(['/', '.']).next().unwrap_or("").to_string();
    g.edges
        .iter()
        .find(|e| if by_top { top(&e.from) == a && top(&e.to) == b } else { e.from == a && e.to == b })
        .map(|e| format!("{}:{} uses {}", e.from, e.line, e.path))
        .unwrap_or_default()
}

fn name_cycle(g: &Graph, c: &[String], by_top: bool) -> String {
    let (c, note) = match c.last() {
        Some(l) if l.starts_with('(') => (&c[..c.len() - 1], format!("\n  {l}")),
        _ => (c, String::new()),
    };
    let steps: Vec<String> =
        c.windows(2).map(|w| format!("  {} → {}   ({})", w[0], w[1], evidence(g, &w[0], &w[1], by_top))).collect();
    format!("cycle {}\n{}{note}", c.join(" → "), steps.join("\n"))
}

fn top_of(file: &str) -> String {
    file.split(['/', '.']).next().unwrap_or("").to_string()
}

fn layer_violations(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for e in &g.edges {
        let (a, b) = (top_of(&e.from), top_of(&e.to));
        if let Some((_, banned)) = FORBIDDEN.iter().find(|(m, _)| *m == a) {
            if banned.contains(&b.as_str()) {
                out.push(format!("{}:{}: `{a}` imports `{}` (from `{b}`)", e.from, e.line, e.path));
            }
        }
    }
    out
}

fn module_cycles(g: &Graph) -> Vec<String> {
    let nodes: BTreeSet<String> = g.files.keys().map(|f| top_of(f)).collect();
    let edges: Vec<(String, String)> = g
        .edges
        .iter()
        .map(|e| (top_of(&e.from), top_of(&e.to)))
        .filter(|(a, b)| a != b && !matches!(b.as_str(), "lib" | "main"))
        .collect();
    cycles(&nodes, &edges).iter().map(|c| name_cycle(g, c, true)).collect()
}

fn file_cycles(g: &Graph) -> Vec<String> {
    // a mod.rs may use the files below it: it declares and re-exports them
    let facade_down = |e: &Edge| e.from.ends_with("mod.rs") && e.to.starts_with(e.from.trim_end_matches("mod.rs"));
    let nodes: BTreeSet<String> = g.files.keys().cloned().collect();
    let edges: Vec<(String, String)> = g
        .edges
        .iter()
        .filter(|e| top_of(&e.from) == top_of(&e.to) && !facade_down(e))
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect();
    cycles(&nodes, &edges).iter().map(|c| name_cycle(g, c, false)).collect()
}

fn report(what: &str, root: &Path, found: &[String]) {
    assert!(
        found.is_empty(),
        "{} {what} in {} (see ARCHITECTURE.md):\n{}",
        found.len(),
        root.display(),
        found.join("\n")
    );
}

#[test]
fn domain_libraries_import_nothing_from_the_orchestrator() {
    let root = root();
    report("layer violation(s)", &root, &layer_violations(&scan(&root)));
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let root = root();
    report("cycle(s) between top-level modules", &root, &module_cycles(&scan(&root)));
}

#[test]
fn no_import_cycle_between_the_files_of_a_module() {
    let root = root();
    report("cycle(s) between files of one module", &root, &file_cycles(&scan(&root)));
}

/// The scanner itself, on a small tree written here: it must see what the checks rely on.
#[test]
fn the_scanner_sees_use_trees_relative_paths_and_child_modules_but_not_comments() {
    let dir = tempfile::tempdir().unwrap();
    let w = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("lib.rs", "pub mod model;\npub mod stages;\npub mod util;\n");
    w("util.rs", "//! no imports\n// use crate::stages::X;\nconst S: &str = \"crate::stages::Y\";\n");
    w("model/mod.rs", "mod a;\nmod b;\npub use a::A;\nfn f() { let _ = b::g(); }\n");
    w("model/a.rs", "use super::{b::{self, G}, c};\npub struct A;\n");
    w("model/b.rs", "pub fn g() { super::a::A; }\n#[cfg(test)]\nmod tests { use crate::stages::T; }\n");
    w("model/c.rs", "fn h<'a>(x: &'a str) -> char { let _ = r#\"crate::stages\"#; 'x' }\n");
    w("stages/mod.rs", "use crate::model::A;\nfn k() { crate::util::f(); }\n");
    w("stages/kind.rs", "pub fn run() { crate::model::b::g(); }\n");
    let g = scan(dir.path());
    let has = |a: &str, b: &str| g.edges.iter().any(|e| e.from == a && e.to == b);
    assert!(has("model/a.rs", "model/b.rs") && has("model/b.rs", "model/a.rs"), "{:?}", g.edges);
    assert!(has("model/mod.rs", "model/a.rs") && has("model/mod.rs", "model/b.rs"));
    assert!(has("stages/mod.rs", "model/mod.rs") && has("stages/kind.rs", "model/b.rs"));
    assert!(!g.edges.iter().any(|e| e.from == "util.rs" || e.from == "model/c.rs"), "{:?}", g.edges);
    assert!(!g.edges.iter().any(|e| e.from == "model/b.rs" && e.to.starts_with("stages")), "test modules are left out");
    assert!(layer_violations(&g).is_empty());
    assert!(module_cycles(&g).is_empty());
    let fc = file_cycles(&g);
    assert_eq!(fc.len(), 1, "{fc:?}");
    assert!(fc[0].starts_with("cycle model/a.rs → model/b.rs → model/a.rs"), "{}", fc[0]);
    // a domain library that imports a stage kind: a violation and a cycle between modules
    w("model/b.rs", "pub fn g() { crate::stages::kind::run(); }\n");
    let g = scan(dir.path());
    let v = layer_violations(&g);
    assert!(v.len() == 1 && v[0].starts_with("model/b.rs:1: `model` imports `crate::stages::kind::run`"), "{v:?}");
    let mc = module_cycles(&g);
    assert!(mc.len() == 1 && mc[0].contains("model → stages → model"), "{mc:?}");
}
