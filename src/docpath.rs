//! Paths into a YAML document (`stages.model.needs[1]`): what a parameter error points at.
//! The spec turns a path into a `file:line:col` ([`crate::spec::locate`]); stage kinds build
//! them without knowing about the spec.

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    pub fn key(s: &str) -> Seg {
        Seg::Key(s.to_string())
    }
}

/// Renders a path as `stages.model.needs[1]`.
pub fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}
