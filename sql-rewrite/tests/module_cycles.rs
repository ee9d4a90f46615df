//! No module cycles inside a crate (issue 9): for every crate of the
//! workspace (each `src/lib.rs`, `src/main.rs` and `src/bin/*.rs` root), the
//! modules are found by following `mod x;` declarations (and inline
//! `mod x { … }` blocks), every path that names a module of the crate
//! (`crate::a::b`, `super::x`, `self::x`, or a child module's name, in `use`
//! trees too) is an edge from the module it appears in to the deepest module
//! it names, and the test fails with every cycle printed, each edge with the
//! file and line it comes from.
//!
//! Comments and string literals are skipped, so doc links do not count. A
//! path is resolved by its longest prefix that is a module: `super::Shards`
//! (an item of the parent) is an edge to the parent, `crate::route::Param`
//! to `route` even when `Param` is re-exported from elsewhere — which is the
//! point: a module depending on its parent while the parent depends on it
//! is a cycle.
//!
//! Pure string scanning (no parser crate), so `cargo test --workspace` runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Reads a source file, `None` when it does not exist.
type Read<'a> = &'a dyn Fn(&Path) -> Option<String>;

/// A token of Rust source, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`.
    PathSep,
    Punct(char),
}

/// The tokens of `src` that matter for paths, each with its 1-based line:
/// identifiers, `::` and punctuation, without comments, strings, chars,
/// lifetimes and numbers.
fn tokenize(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skips a (raw) string starting at `i` (the quote or the `#`s); counts lines.
    let skip_string = |i: &mut usize, line: &mut usize, raw: bool| {
        let mut hashes = 0;
        if raw {
            while c.get(*i) == Some(&'#') {
                hashes += 1;
                *i += 1;
            }
        }
        *i += 1; // the opening quote
        while *i < c.len() {
            match c[*i] {
                '\\' if !raw => *i += 2,
                '"' => {
                    let closing = (1..=hashes).all(|h| c.get(*i + h) == Some(&'#'));
                    *i += 1;
                    if closing {
                        *i += hashes;
                        return;
                    }
                }
                ch => {
                    if ch == '\n' {
                        *line += 1;
                    }
                    *i += 1;
                }
            }
        }
    };
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        match ch {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if next == Some('/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if c[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => skip_string(&mut i, &mut line, false),
            '\'' => {
                // 'x', '\n', '\u{..}' are chars; 'a (no closing quote) a lifetime
                if next == Some('\\') {
                    i += 2;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                    while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                        i += 1;
                    }
                }
            }
            ':' if next == Some(':') => {
                out.push((Tok::PathSep, line));
                i += 2;
            }
            ch if ch.is_alphabetic() || ch == '_' => {
                // raw strings: r"…", r#"…"#, br"…", br#"…"#
                let after = |n: usize| c.get(i + n).copied();
                let raw_at = match (ch, next) {
                    ('r', Some('"' | '#')) => Some(1),
                    ('b', Some('r')) if matches!(after(2), Some('"' | '#')) => Some(2),
                    _ => None,
                };
                if let Some(n) = raw_at {
                    let mut j = i + n;
                    while c.get(j) == Some(&'#') {
                        j += 1;
                    }
                    if c.get(j) == Some(&'"') {
                        i += n;
                        skip_string(&mut i, &mut line, true);
                        continue;
                    }
                    if ch == 'r' && next == Some('#') {
                        i += 2; // a raw identifier r#name: the name follows
                        continue;
                    }
                }
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                if word == "b" && c.get(i) == Some(&'"') {
                    continue; // b"…": the string follows
                }
                out.push((Tok::Ident(word), line));
            }
            ch if ch.is_ascii_digit() => {
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
            ch if ch.is_whitespace() => i += 1,
            ch => {
                out.push((Tok::Punct(ch), line));
                i += 1;
            }
        }
    }
    out
}

/// A module path inside a crate (`[]` is the crate root).
type ModPath = Vec<String>;

/// A scanned file: its path, its module and its tokens.
type ScannedFile = (PathBuf, ModPath, Vec<(Tok, usize)>);

/// A path naming a module of the crate, before resolution.
#[derive(Debug)]
struct Reference {
    /// The module it appears in.
    from: ModPath,
    /// The absolute path it names (module and maybe an item).
    target: ModPath,
    file: PathBuf,
    line: usize,
}

/// A crate's modules and the paths between them.
#[derive(Debug, Default)]
struct Crate {
    modules: BTreeSet<ModPath>,
    references: Vec<Reference>,
    /// Each module's child module names (file and inline).
    children: BTreeMap<ModPath, BTreeSet<String>>,
}

/// The file of module `name` declared in a file whose children live in `dir`.
fn module_file(dir: &Path, name: &str, read: Read<'_>) -> Option<(PathBuf, String)> {
    let flat = dir.join(format!("{name}.rs"));
    if let Some(text) = read(&flat) {
        return Some((flat, text));
    }
    let nested = dir.join(name).join("mod.rs");
    read(&nested).map(|text| (nested, text))
}

/// The directory where the child modules of `file` live.
fn children_dir(file: &Path, is_root: bool) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if is_root || stem == "mod" {
        dir
    } else {
        dir.join(stem)
    }
}

/// Scans the crate rooted at `root` (e.g. `src/lib.rs`).
fn scan_crate(root: &Path, read: Read<'_>) -> Crate {
    let mut krate = Crate::default();
    let mut files: Vec<ScannedFile> = Vec::new();
    let mut pending = vec![(root.to_path_buf(), Vec::new(), true)];
    // Pass 1: the module tree.
    while let Some((file, path, is_root)) = pending.pop() {
        let Some(text) = read(&file) else { continue };
        let toks = tokenize(&text);
        let dir = children_dir(&file, is_root);
        krate.modules.insert(path.clone());
        // (module, brace depth at which it ends)
        let mut stack: Vec<(ModPath, usize)> = vec![(path.clone(), 0)];
        let mut depth = 0;
        for (k, (t, _)) in toks.iter().enumerate() {
            match t {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => {
                    depth -= 1;
                    if stack.len() > 1 && stack.last().is_some_and(|s| s.1 == depth) {
                        stack.pop();
                    }
                }
                Tok::Ident(m) if m == "mod" => {
                    let (Some((Tok::Ident(name), _)), Some((after, _))) =
                        (toks.get(k + 1), toks.get(k + 2))
                    else {
                        continue;
                    };
                    let current = stack.last().map(|s| s.0.clone()).unwrap_or_default();
                    let mut child = current.clone();
                    child.push(name.clone());
                    krate
                        .children
                        .entry(current)
                        .or_default()
                        .insert(name.clone());
                    match after {
                        // inline modules' files are not followed (no #[path] either)
                        Tok::Punct(';') if stack.len() == 1 => {
                            if let Some((f, _)) = module_file(&dir, name, read) {
                                pending.push((f, child, false));
                            }
                        }
                        Tok::Punct('{') => {
                            krate.modules.insert(child.clone());
                            stack.push((child, depth));
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        files.push((file, path, toks));
    }
    // Pass 2: the paths.
    for (file, path, toks) in &files {
        collect_references(&mut krate, file, path, toks);
    }
    krate
}

/// Records every path of `toks` (the file of module `path`) that starts
/// with `crate`, `super`, `self` or a child module's name.
fn collect_references(krate: &mut Crate, file: &Path, path: &ModPath, toks: &[(Tok, usize)]) {
    let mut stack: Vec<(ModPath, usize)> = vec![(path.clone(), 0)];
    let mut depth = 0;
    let mut k = 0;
    while k < toks.len() {
        let current = stack.last().map(|s| s.0.clone()).unwrap_or_default();
        match &toks[k].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth -= 1;
                if stack.len() > 1 && stack.last().is_some_and(|s| s.1 == depth) {
                    stack.pop();
                }
            }
            Tok::Ident(m) if m == "mod" => {
                if let (Some((Tok::Ident(name), _)), Some((Tok::Punct('{'), _))) =
                    (toks.get(k + 1), toks.get(k + 2))
                {
                    let mut child = current.clone();
                    child.push(name.clone());
                    depth += 1;
                    stack.push((child, depth - 1));
                    k += 3;
                    continue;
                }
            }
            Tok::Ident(head) => {
                let starts_path = k == 0 || toks[k - 1].0 != Tok::PathSep;
                let followed = toks.get(k + 1).map(|t| &t.0) == Some(&Tok::PathSep);
                let base = match head.as_str() {
                    // `pub(crate)`, `self.x`: not paths
                    _ if !starts_path || !followed => None,
                    "crate" => Some(Vec::new()),
                    "self" => Some(current.clone()),
                    "super" => {
                        let mut b = current.clone();
                        b.pop();
                        Some(b)
                    }
                    name if krate
                        .children
                        .get(&current)
                        .is_some_and(|c| c.contains(name)) =>
                    {
                        let mut b = current.clone();
                        b.push(name.to_string());
                        Some(b)
                    }
                    _ => None,
                };
                if let Some(base) = base {
                    let line = toks[k].1;
                    let mut targets = Vec::new();
                    k = use_tree(toks, k + 1, base, &mut targets);
                    for target in targets {
                        krate.references.push(Reference {
                            from: current.clone(),
                            target,
                            file: file.to_path_buf(),
                            line,
                        });
                    }
                    continue;
                }
            }
            _ => {}
        }
        k += 1;
    }
}

/// Reads the rest of a path (or `use` tree) at `k`, after a head resolved
/// to `base`: `::a::b`, `::{a, b::c}`, `::*`, `super::super::x`. Pushes
/// every absolute path it names; returns the index after it.
fn use_tree(
    toks: &[(Tok, usize)],
    mut k: usize,
    mut base: ModPath,
    out: &mut Vec<ModPath>,
) -> usize {
    loop {
        if toks.get(k).map(|t| &t.0) != Some(&Tok::PathSep) {
            out.push(base);
            return k;
        }
        match toks.get(k + 1).map(|t| &t.0) {
            Some(Tok::Ident(s)) if s == "super" => {
                base.pop();
                k += 2;
            }
            Some(Tok::Ident(s)) if s == "self" => k += 2,
            Some(Tok::Ident(s)) => {
                base.push(s.clone());
                k += 2;
            }
            Some(Tok::Punct('{')) => return use_group(toks, k + 2, &base, out),
            _ => {
                // `::*`, `::<T>` and the like: the path so far
                out.push(base);
                return k + 1;
            }
        }
    }
}

/// Reads the items of a `use` group at `k` (after its `{`) up to the
/// matching `}`; returns the index after it.
fn use_group(toks: &[(Tok, usize)], mut k: usize, base: &ModPath, out: &mut Vec<ModPath>) -> usize {
    loop {
        match toks.get(k).map(|t| &t.0) {
            None => return k,
            Some(Tok::Punct('}')) => return k + 1,
            Some(Tok::Ident(s)) if s == "self" => {
                out.push(base.clone());
                k += 1;
            }
            Some(Tok::Ident(s)) if s == "as" => k += 2,
            Some(Tok::Ident(s)) => {
                let mut item = base.clone();
                item.push(s.clone());
                k = use_tree(toks, k + 1, item, out);
            }
            Some(Tok::Punct('*')) => {
                out.push(base.clone());
                k += 1;
            }
            Some(Tok::Punct('{')) => k = use_group(toks, k + 1, base, out),
            Some(_) => k += 1,
        }
    }
}

/// The module graph: edges between distinct modules, each with where it
/// comes from (the first reference).
fn graph(krate: &Crate) -> BTreeMap<ModPath, BTreeMap<ModPath, String>> {
    let mut g: BTreeMap<ModPath, BTreeMap<ModPath, String>> = BTreeMap::new();
    for r in &krate.references {
        let mut target = r.target.clone();
        while !krate.modules.contains(&target) {
            if target.pop().is_none() {
                break;
            }
        }
        if target == r.from {
            continue;
        }
        g.entry(r.from.clone())
            .or_default()
            .entry(target)
            .or_insert_with(|| format!("{}:{}", r.file.display(), r.line));
    }
    g
}

/// `crate::a::b`.
fn show(p: &ModPath) -> String {
    std::iter::once("crate")
        .chain(p.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("::")
}

/// A cycle: the modules of its strongly connected component (`crate::a`,
/// …) and one cycle through them, printed as `a -> b (file:line) -> … -> a`.
type Cycle = (BTreeSet<String>, String);

/// One cycle per strongly connected component of more than one module.
fn cycles(g: &BTreeMap<ModPath, BTreeMap<ModPath, String>>) -> Vec<Cycle> {
    // Tarjan's algorithm, recursive: module trees are shallow.
    struct State<'a> {
        g: &'a BTreeMap<ModPath, BTreeMap<ModPath, String>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        sccs: Vec<Vec<&'a ModPath>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModPath) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flat_map(BTreeMap::keys) {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w);
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                s.sccs.push(scc);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        sccs: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    // A shortest cycle through the first module of each component.
    s.sccs
        .iter()
        .map(|scc| {
            let members: BTreeSet<&ModPath> = scc.iter().copied().collect();
            let start = *members.iter().next().expect("non-empty");
            let mut prev: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut found = None;
            'bfs: while let Some(v) = queue.pop_front() {
                for w in g.get(v).into_iter().flat_map(BTreeMap::keys) {
                    if !members.contains(w) {
                        continue;
                    }
                    if w == start {
                        found = Some(v);
                        break 'bfs;
                    }
                    if !prev.contains_key(w) {
                        prev.insert(w, v);
                        queue.push_back(w);
                    }
                }
            }
            let mut chain = Vec::new();
            let mut cur = found.expect("a component has a cycle");
            while cur != start {
                chain.push(cur);
                cur = prev[cur];
            }
            chain.reverse();
            let path: Vec<&ModPath> = std::iter::once(start)
                .chain(chain)
                .chain(std::iter::once(start))
                .collect();
            let mut text = show(path[0]);
            for pair in path.windows(2) {
                text.push_str(&format!(" -> {} ({})", show(pair[1]), g[pair[0]][pair[1]]));
            }
            let names: BTreeSet<String> = members.iter().map(|m| show(m)).collect();
            (names, text)
        })
        .collect()
}

/// Cycles known and tolerated for now: the crate root, the modules of the
/// component, and why. The check fails on any other cycle, and on a known
/// one that is gone (so that this list only shrinks).
const KNOWN_CYCLES: &[(&str, &[&str], &str)] = &[];

/// The cycles of every crate under `roots`, each `root: cycle`, with the
/// components of each root (for [`KNOWN_CYCLES`]).
fn scan(roots: &[PathBuf], read: Read<'_>) -> Vec<(PathBuf, Cycle)> {
    let mut out = Vec::new();
    for root in roots {
        for c in cycles(&graph(&scan_crate(root, read))) {
            out.push((root.clone(), c));
        }
    }
    out
}

/// The cycles of every crate under `roots`, printed.
fn check(roots: &[PathBuf], read: Read<'_>) -> Vec<String> {
    scan(roots, read)
        .into_iter()
        .map(|(root, (members, text))| {
            let names: Vec<&str> = members.iter().map(String::as_str).collect();
            format!(
                "{}: {text}  [component: {}]",
                root.display(),
                names.join(", ")
            )
        })
        .collect()
}

/// The workspace directory.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is inside the workspace")
        .to_path_buf()
}

/// The workspace's crate roots, relative to it: each member's
/// `src/lib.rs`, `src/main.rs` and `src/bin/*.rs`.
fn workspace_roots(workspace: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(workspace.join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .split_once("members")
        .and_then(|(_, rest)| rest.split_once('['))
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("workspace members");
    let mut roots = Vec::new();
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        if member.is_empty() {
            continue;
        }
        let src = Path::new(member).join("src");
        for root in ["lib.rs", "main.rs"] {
            if workspace.join(&src).join(root).exists() {
                roots.push(src.join(root));
            }
        }
        if let Ok(bins) = std::fs::read_dir(workspace.join(&src).join("bin")) {
            for b in bins.flatten() {
                if b.path().extension().is_some_and(|e| e == "rs") {
                    roots.push(src.join("bin").join(b.file_name()));
                }
            }
        }
    }
    roots.sort();
    roots
}

#[test]
fn no_module_cycles_in_any_crate() {
    let workspace = workspace();
    let roots = workspace_roots(&workspace);
    assert!(
        roots.iter().any(|r| r.ends_with("sql-rewrite/src/lib.rs")),
        "found the crates: {roots:?}"
    );
    let read = |p: &Path| std::fs::read_to_string(workspace.join(p)).ok();
    let found = scan(&roots, &read);
    let known = |root: &Path, members: &BTreeSet<String>| {
        KNOWN_CYCLES.iter().any(|(r, m, _)| {
            root == Path::new(r)
                && m.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>() == *members
        })
    };
    let gone: Vec<String> = KNOWN_CYCLES
        .iter()
        .filter(|(r, m, _)| {
            !found.iter().any(|(root, (members, _))| {
                root == Path::new(r)
                    && m.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>() == *members
            })
        })
        .map(|(r, m, _)| format!("{r}: {}", m.join(", ")))
        .collect();
    assert!(
        gone.is_empty(),
        "known cycles that are gone (remove them from KNOWN_CYCLES):\n{}",
        gone.join("\n")
    );
    let found: Vec<String> = found
        .into_iter()
        .filter(|(root, (members, _))| !known(root, members))
        .map(|(root, (_, text))| format!("{}: {text}", root.display()))
        .collect();
    assert!(
        found.is_empty(),
        "module cycles (make dependencies go one way: move what both sides need into a leaf module):\n{}",
        found.join("\n")
    );
}

/// A synthetic crate from `(path, text)` pairs, checked from `src/lib.rs`.
fn synthetic(files: &[(&str, &str)]) -> Vec<String> {
    let files: BTreeMap<PathBuf, String> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    let read = |p: &Path| files.get(p).cloned();
    check(&[PathBuf::from("src/lib.rs")], &read)
}

#[test]
fn detects_a_cycle_between_siblings() {
    let found = synthetic(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        (
            "src/a.rs",
            "use crate::b::helper;\npub fn f() { helper() }\n",
        ),
        (
            "src/b.rs",
            "pub fn helper() {}\npub fn g() { crate::a::f() }\n",
        ),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("crate::a -> crate::b (src/a.rs:1) -> crate::a (src/b.rs:2)"),
        "{found:?}"
    );
}

#[test]
fn detects_a_child_using_its_parent() {
    // route/mod.rs uses its child; the child reaches into the parent (a use group).
    let found = synthetic(&[
        ("src/lib.rs", "pub mod route;\n"),
        (
            "src/route/mod.rs",
            "mod insert;\npub struct Topology;\nfn plan() { insert::bind() }\n",
        ),
        (
            "src/route/insert.rs",
            "use super::{Topology, other::X};\npub fn bind() {}\n",
        ),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("crate::route -> crate::route::insert (src/route/mod.rs:3)"));
    assert!(found[0].contains("-> crate::route (src/route/insert.rs:1)"));
}

#[test]
fn detects_a_longer_cycle_through_a_flat_module_dir() {
    let found = synthetic(&[
        ("src/lib.rs", "mod a;\nmod c;\n"),
        ("src/a.rs", "mod b;\nuse b::*;\n"),
        ("src/a/b.rs", "use crate::c::{self};\n"),
        ("src/c.rs", "fn f() { let _ = crate::a::X; }\n"),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("crate::a::b"), "{found:?}");
}

#[test]
fn one_way_dependencies_comments_and_strings_are_no_cycle() {
    let found = synthetic(&[
        ("src/lib.rs", "mod a;\nmod b;\npub use a::f;\n"),
        (
            "src/a.rs",
            "//! see [`crate::b`]\nuse crate::b::g;\n/* crate::b::x */\npub fn f() { g(); let _ = \"crate::lib\"; }\n",
        ),
        (
            "src/b.rs",
            "/// uses [`crate::a::f`] in docs only\npub fn g() { let _ = r#\"crate::a\"#; let _c = 'x'; }\nfn h<'a>(_: &'a str) {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::a::f;\n}\n",
        ),
    ]);
    assert!(found.is_empty(), "{found:?}");
}
