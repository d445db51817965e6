//! Where input files may live: inside the project root, or under a data root the project
//! declares in `<root>/spatia.toml`:
//!
//! ```toml
//! data_roots = ["/mnt/share/slides", "../data"]   # relative entries: relative to the root
//! ```
//!
//! Every input file a spec names (the cohort's clinical table and slide manifest, stage
//! inputs) and every slide and bag a manifest lists is compared after resolving symlinks and
//! `..`; a file outside the project and every declared root is refused, so a spec (or a
//! manifest row) cannot make Spatia read, hash or echo files elsewhere on the machine.
//! Other keys of `spatia.toml` are left to their owners.
use std::path::{Component, Path, PathBuf};

/// The project's file name that marks its root and declares data roots.
pub const CONFIG: &str = "spatia.toml";

/// The project root and its declared data roots, resolved.
#[derive(Debug, Clone)]
pub struct DataRoots {
    /// The project root as given (for messages) and resolved.
    root: PathBuf,
    root_canon: PathBuf,
    /// (as written in spatia.toml, resolved)
    roots: Vec<(String, PathBuf)>,
}

/// A `spatia.toml` that cannot be used: `file:line:col: message`.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.msg)
    }
}

impl std::error::Error for ConfigError {}

/// `path` made absolute and `.`/`..` folded lexically (for roots that do not exist yet).
fn lexical_abs(path: &Path) -> PathBuf {
    let abs =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(path) };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The path with symlinks and `..` resolved as far as it exists ([`super::paths::resolve`], the
/// same resolution publish targets get), else lexically.
fn resolve(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    super::paths::resolve(&cwd, path).unwrap_or_else(|_| lexical_abs(path))
}

fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let before = &text[..byte.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

impl DataRoots {
    /// Reads `<root>/spatia.toml` (a missing file declares no data root).
    pub fn load(root: &Path) -> Result<DataRoots, ConfigError> {
        let file = root.join(CONFIG);
        let mut dr = DataRoots { root: root.to_path_buf(), root_canon: resolve(root), roots: Vec::new() };
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(dr),
            Err(e) => return Err(ConfigError { file, line: 1, col: 1, msg: format!("cannot read: {e}") }),
        };
        let err = |span: Option<std::ops::Range<usize>>, msg: String| {
            let (line, col) = span.map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            ConfigError { file: file.clone(), line, col, msg }
        };
        let doc: toml::Table =
            toml::from_str(&text).map_err(|e| err(e.span(), format!("not valid TOML: {}", e.message())))?;
        let Some(v) = doc.get("data_roots") else { return Ok(dr) };
        // spans of the values: re-parse the key as spanned strings
        #[derive(serde::Deserialize)]
        struct Spanned {
            data_roots: Vec<toml::Spanned<String>>,
        }
        #[derive(serde::Deserialize)]
        struct Loose {
            data_roots: toml::Spanned<toml::Value>,
        }
        let entries = match toml::from_str::<Spanned>(&text) {
            Ok(s) => s.data_roots,
            Err(_) => {
                let span = toml::from_str::<Loose>(&text).ok().map(|l| l.data_roots.span());
                return Err(err(
                    span,
                    format!("`data_roots` must be a list of directory paths (strings), found {}", v.type_str()),
                ));
            }
        };
        for e in entries {
            let s = e.get_ref();
            if s.is_empty() || s.chars().any(char::is_control) {
                return Err(err(
                    Some(e.span()),
                    "a data root must be a non-empty path without control characters".into(),
                ));
            }
            dr.roots.push((s.clone(), resolve(&root.join(s))));
        }
        Ok(dr)
    }

    /// The declared data roots (as written, resolved).
    pub fn declared(&self) -> &[(String, PathBuf)] {
        &self.roots
    }

    /// Whether `path` (resolved after symlinks and `..`) lies inside the project root or a
    /// declared data root. A path that does not exist is judged lexically.
    pub fn contains(&self, path: &Path) -> bool {
        self.contains_resolved(&resolve(path))
    }

    fn contains_resolved(&self, p: &Path) -> bool {
        p.starts_with(&self.root_canon) || self.roots.iter().any(|(_, r)| p.starts_with(r))
    }

    /// Checks `path`; the error says what is wrong and how to declare a data root.
    pub fn check(&self, path: &Path) -> Result<(), String> {
        let p = resolve(path);
        if self.contains_resolved(&p) {
            return Ok(());
        }
        let dir = p.parent().unwrap_or(&p);
        let declared = if self.roots.is_empty() {
            "it declares none".to_string()
        } else {
            format!("it declares {}", self.roots.iter().map(|(s, _)| format!("`{s}`")).collect::<Vec<_>>().join(", "))
        };
        Err(format!(
            "{} is outside the project {} and its data roots ({declared}); to read files there, declare the directory in {}: `data_roots = [\"{}\"]`",
            p.display(),
            self.root.display(),
            self.root.join(CONFIG).display(),
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_root_and_declared_roots_only() {
        let d = tempfile::tempdir().unwrap();
        let proj = d.path().join("p");
        let data = d.path().join("data");
        std::fs::create_dir_all(&proj).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("c.csv"), "x").unwrap();
        std::fs::write(proj.join("a.csv"), "x").unwrap();
        let none = DataRoots::load(&proj).unwrap();
        assert!(none.check(&proj.join("a.csv")).is_ok());
        let e = none.check(&proj.join("../data/c.csv")).unwrap_err();
        assert!(e.contains("outside the project") && e.contains("data_roots"), "{e}");
        std::fs::write(proj.join(CONFIG), "data_roots = [\"../data\"]\n").unwrap();
        let some = DataRoots::load(&proj).unwrap();
        assert!(some.check(&proj.join("../data/c.csv")).is_ok());
        assert!(some.check(Path::new("/etc/passwd")).is_err());
        // a symlink inside the project pointing out of it is outside
        std::os::unix::fs::symlink("/etc", proj.join("etc")).unwrap();
        assert!(some.check(&proj.join("etc/passwd")).is_err());
    }

    #[test]
    fn bad_config_names_line_and_column() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(CONFIG), "# c\ndata_roots = \"x\"\n").unwrap();
        let e = DataRoots::load(d.path()).unwrap_err();
        assert_eq!((e.line, e.col), (2, 14), "{e}");
        assert!(e.msg.contains("list"), "{e}");
        std::fs::write(d.path().join(CONFIG), "data_roots = [\"a\",\n").unwrap();
        assert!(DataRoots::load(d.path()).unwrap_err().to_string().contains("not valid TOML"));
    }
}
