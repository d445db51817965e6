//! Where a stage may publish: the spec-time rules on `publish:` directories.
//!
//! A publish path is compared only after resolving it as the kernel will when it is created
//! ([`resolve`]: the longest existing prefix through its symbolic links and `..`, the rest
//! lexically), so `linkout/x` through a symlink leaving the project, or `reports/a/../b` beside
//! `reports/b`, are seen for what they are. A publish directory must lie inside the project
//! root; must not be, contain or lie inside the cache (`<root>/cache`) or `runs/`; must not be
//! or contain an input file (cohort table, slide manifest, any stage's declared inputs), the
//! spec file or the spec's directory; and must not be, contain or lie inside another stage's
//! publish directory. Each error points at the `publish` value and names what it collides with.
//! The executor repeats the checks that depend on the run (a cache moved by `--cache`, the
//! manifest's slide files) and owns the copying itself.
use super::locate::Seg;
use super::{Arm, Cohort, Ctx, SpecError};
use std::io;
use std::path::{Component, Path, PathBuf};

/// Resolves `rel` against `base` as the path will be when created: each existing component is
/// followed through symbolic links (and `..` then goes to the real parent), components that do
/// not exist yet are appended lexically. `base` must exist. A dangling symlink, a symlink loop
/// or a component under a regular file is an error naming the path.
pub fn resolve(base: &Path, rel: &Path) -> io::Result<PathBuf> {
    let start = if rel.is_absolute() { Path::new("/") } else { base };
    let mut cur = std::fs::canonicalize(start).map_err(|e| named(start, e))?;
    for c in rel.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(n) => {
                let next = cur.join(n);
                match std::fs::symlink_metadata(&next) {
                    Ok(_) => cur = std::fs::canonicalize(&next).map_err(|e| named(&next, e))?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => cur = next,
                    Err(e) => return Err(named(&next, e)),
                }
            }
        }
    }
    Ok(cur)
}

fn named(p: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// How a path `a` relates to a path `b` (both resolved): `is`, `contains` or `is inside`.
pub fn relation(a: &Path, b: &Path) -> Option<&'static str> {
    if a == b {
        Some("is")
    } else if b.starts_with(a) {
        Some("contains")
    } else if a.starts_with(b) {
        Some("is inside")
    } else {
        None
    }
}

/// `p` relative to `root` when inside it, else absolute.
pub fn shown(p: &Path, root: &Path) -> String {
    match p.strip_prefix(root) {
        Ok(r) if !r.as_os_str().is_empty() => r.display().to_string(),
        _ => p.display().to_string(),
    }
}

/// Checks every stage's `publish` directory against the project, its inputs and each other.
pub(super) fn check_publish(
    cx: &Ctx,
    root: &Path,
    file: &Path,
    cohort: Option<&Cohort>,
    arms: &[Arm],
) -> Result<(), SpecError> {
    let Some(first) = arms.first() else { return Ok(()) };
    let publishing: Vec<(&str, &str)> =
        first.stages.iter().filter_map(|d| d.publish.as_deref().map(|p| (d.name.as_str(), p))).collect();
    if publishing.is_empty() {
        return Ok(());
    }
    let at = |stage: &str| vec![Seg::key("stages"), Seg::key(stage), Seg::key("publish")];
    let root_r = resolve(root, Path::new(""))
        .map_err(|e| cx.at_value(&at(publishing[0].0), format!("cannot resolve the project root: {e}")))?;

    // what a publish directory may not touch: (resolved path, description, may the target lie inside it)
    let mut guarded: Vec<(PathBuf, String, bool)> = Vec::new();
    let mut guard = |rel: &Path, what: String, inside_ok: bool| {
        if let Ok(r) = resolve(root, rel) {
            if !guarded.iter().any(|(p, _, _)| *p == r) {
                guarded.push((r, what, inside_ok));
            }
        }
    };
    guard(Path::new("cache"), "the project's cache directory".into(), false);
    guard(Path::new("runs"), "the run records directory".into(), false);
    guard(file, "the spec file".into(), true);
    if let Some(dir) = file.parent() {
        guard(dir, "the spec's directory".into(), true);
    }
    if let Some(c) = cohort {
        guard(Path::new(&c.clinical), "the clinical table (cohort.clinical)".into(), true);
        if let Some(s) = &c.slides {
            guard(Path::new(s), "the slide manifest (cohort.slides)".into(), true);
        }
    }
    let mut seen_inputs = std::collections::HashSet::new();
    for arm in arms {
        for d in &arm.stages {
            for inp in &d.checked.inputs {
                if seen_inputs.insert(inp.path.as_str()) {
                    guard(Path::new(&inp.path), format!("input `{}` of stage `{}`", inp.role, d.name), true);
                }
            }
        }
    }

    let mut targets: Vec<(&str, &str, PathBuf)> = Vec::new();
    for &(stage, rel) in &publishing {
        let shown_rel = crate::util::display_id(rel);
        let r = resolve(root, Path::new(rel)).map_err(|e| {
            cx.at_value(&at(stage), format!("cannot resolve publish directory `{shown_rel}` of stage `{stage}`: {e}"))
        })?;
        if r == root_r || !r.starts_with(&root_r) {
            return Err(cx.at_value(
                &at(stage),
                format!(
                    "publish directory `{shown_rel}` of stage `{stage}` resolves to {}, {} the project directory {}; expected a directory inside it (symbolic links and `..` are followed)",
                    r.display(),
                    if r == root_r { "which is" } else { "outside" },
                    root_r.display()
                ),
            ));
        }
        for (g, what, inside_ok) in &guarded {
            let Some(rel_word) = relation(&r, g) else { continue };
            if *inside_ok && rel_word == "is inside" {
                continue;
            }
            return Err(cx.at_value(
                &at(stage),
                format!(
                    "publish directory `{shown_rel}` of stage `{stage}` {rel_word} `{}`, {what}; publishing there could replace it. Publish into a directory of its own, e.g. `reports/{stage}`",
                    shown(g, &root_r)
                ),
            ));
        }
        for (other, orel, or) in &targets {
            let Some(rel_word) = relation(&r, or) else { continue };
            let orel = crate::util::display_id(orel);
            let msg = match rel_word {
                "is" => format!(
                    "publish directory `{shown_rel}` of stage `{stage}` is the same directory as `{orel}` of stage `{other}` ({}); one stage's publish would replace the other's: give them separate directories",
                    shown(&r, &root_r)
                ),
                "contains" => format!(
                    "publish directory `{orel}` of stage `{other}` is inside `{shown_rel}` of stage `{stage}` ({} contains {}); one stage's publish would replace the other's: give them separate directories",
                    shown(&r, &root_r),
                    shown(or, &root_r)
                ),
                _ => format!(
                    "publish directory `{shown_rel}` of stage `{stage}` is inside `{orel}` of stage `{other}` ({} is inside {}); one stage's publish would replace the other's: give them separate directories",
                    shown(&r, &root_r),
                    shown(or, &root_r)
                ),
            };
            return Err(cx.at_value(&at(stage), msg));
        }
        targets.push((stage, rel, r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_dotdot_and_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("p");
        std::fs::create_dir_all(root.join("reports/a")).unwrap();
        let real = std::fs::canonicalize(&root).unwrap();
        assert_eq!(resolve(&root, Path::new("reports/a/../b")).unwrap(), real.join("reports/b"));
        assert_eq!(resolve(&root, Path::new("reports/zz/../b")).unwrap(), real.join("reports/b"));
        assert_eq!(resolve(&root, Path::new("./new/x")).unwrap(), real.join("new/x"));
        std::os::unix::fs::symlink(d.path(), root.join("out")).unwrap();
        let outside = std::fs::canonicalize(d.path()).unwrap();
        assert_eq!(resolve(&root, Path::new("out/x")).unwrap(), outside.join("x"));
        std::os::unix::fs::symlink("/nonexistent-spatia-target", root.join("dangling")).unwrap();
        assert!(resolve(&root, Path::new("dangling/x")).is_err());
    }

    #[test]
    fn relations() {
        let p = Path::new;
        assert_eq!(relation(p("/r/a"), p("/r/a")), Some("is"));
        assert_eq!(relation(p("/r/a"), p("/r/a/b")), Some("contains"));
        assert_eq!(relation(p("/r/a/b"), p("/r/a")), Some("is inside"));
        assert_eq!(relation(p("/r/ab"), p("/r/a")), None);
    }
}
