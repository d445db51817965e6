//! `spatia explain`: for a stage whose key is new, the exact components of its key that
//! changed since the last run of the same arm/stage/item — each parameter by its leaf path with
//! both values, each input file with both blake3 digests, each upstream stage with both keys,
//! the kind's version, the seed. The previous key's components come from its `record.json`
//! (parameters, inputs with digests, upstream keys, kind version, seed: all recorded).
use crate::cache::Cache;
use crate::dag::Node;
use crate::provenance::RunSummary;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One changed component of a key.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    /// `parameter`, `input`, `upstream`, `kind_version`, `seed`, `item`.
    pub component: String,
    /// The parameter path, input file, upstream stage or kind.
    pub what: String,
    pub old: String,
    pub new: String,
}

/// Why a node would run.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub stage: String,
    pub item: Option<String>,
    pub key: String,
    /// The key of the same arm/stage/item in the last run (None: not in it, or no run).
    pub previous_key: Option<String>,
    /// One line when there is nothing finer to say (never run, same key, record gone).
    pub summary: String,
    pub changes: Vec<Change>,
}

/// The parameters that differ between two resolved parameter objects, each as its leaf path
/// (`mil.epochs`, `penalties[2]`) with the old and new values (`(unset)` where absent); values
/// compared as canonical JSON (`1` ≡ `1.0`). Lists of another length are one change.
pub fn param_changes(old: &Value, new: &Value) -> Vec<(String, String, String)> {
    fn same(a: &Value, b: &Value) -> bool {
        crate::util::canonical_json(a) == crate::util::canonical_json(b)
    }
    fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<(String, String, String)>) {
        let shown = |v: Option<&Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "(unset)".into());
        match (a, b) {
            (Some(a), Some(b)) if same(a, b) => {}
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(&p, x.get(k), y.get(k), out);
                }
            }
            (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}[{i}]"), Some(u), Some(v), out);
                }
            }
            _ => out.push((if path.is_empty() { "(all)".into() } else { path.to_string() }, shown(a), shown(b))),
        }
    }
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    out
}

/// The key of node `n` in run `prev` (its arm/stage/item).
pub fn previous_key(n: &Node, prev: &RunSummary) -> Option<String> {
    n.arms.iter().find_map(|arm| {
        let v = prev.arms.get(arm)?.get(&n.stage)?;
        match (v, &n.item) {
            (Value::String(k), None) => Some(k.clone()),
            (Value::Object(m), Some(it)) => m.get(&it.id).and_then(|k| k.as_str()).map(str::to_string),
            _ => None,
        }
    })
}

/// Explains node `n` against the last run `prev` and the records in `cache`.
/// Input paths are shown relative to `root`, as records hold them.
pub fn explain(n: &Node, prev: Option<&RunSummary>, cache: &Cache, root: &std::path::Path) -> Explanation {
    let mut e = Explanation {
        stage: n.stage.clone(),
        item: n.item.as_ref().map(|x| x.id.clone()),
        key: n.key.clone(),
        previous_key: None,
        summary: String::new(),
        changes: Vec::new(),
    };
    let Some(prev) = prev else {
        e.summary = "never run".into();
        return e;
    };
    let Some(old_key) = previous_key(n, prev) else {
        e.summary = match &n.item {
            Some(it) => format!("new item `{}` (not in the last run)", it.shown()),
            None => "new stage (not in the last run)".into(),
        };
        return e;
    };
    e.previous_key = Some(old_key.clone());
    if old_key == n.key {
        e.summary = if cache.contains(&n.key) {
            "same key as the last run: nothing changed".into()
        } else {
            "same key as the last run, but its entry is gone from the cache".into()
        };
        return e;
    }
    let Ok(old) = cache.record(&old_key) else {
        e.summary = format!("key changed (the last run's key {old_key} has no record in the cache)");
        return e;
    };
    let mut push = |component: &str, what: String, old: String, new: String| {
        e.changes.push(Change { component: component.into(), what, old, new })
    };
    if old.kind_version != n.hashable.kind_version {
        push("kind_version", old.kind.clone(), old.kind_version.to_string(), n.hashable.kind_version.to_string());
    }
    for (path, a, b) in param_changes(&old.params, &n.decl.checked.params) {
        push("parameter", path, a, b);
    }
    let old_inputs: BTreeMap<&str, (&str, &str)> =
        old.inputs.iter().map(|i| (i.role.as_str(), (i.path.as_str(), i.blake3.as_str()))).collect();
    for inp in &n.inputs {
        let shown = inp.path.strip_prefix(root).unwrap_or(&inp.path).display().to_string();
        match old_inputs.get(inp.role.as_str()) {
            Some((_, d)) if *d == inp.digest => {}
            Some((p, d)) => {
                let what = if *p == shown { shown.clone() } else { format!("{p} → {shown}") };
                push("input", format!("{} {what}", inp.role), d.to_string(), inp.digest.clone());
            }
            None => push("input", format!("{} {shown}", inp.role), "(none)".into(), inp.digest.clone()),
        }
    }
    for (name, keys) in &n.hashable.upstream {
        let before = old.upstream.get(name);
        if before != Some(keys) {
            let show = |v: Option<&Vec<String>>| match v {
                None => "(none)".to_string(),
                Some(v) if v.len() == 1 => v[0].clone(),
                Some(v) => {
                    format!("{} key(s), digest {}", v.len(), &blake3::hash(v.join(",").as_bytes()).to_hex()[..12])
                }
            };
            push("upstream", name.clone(), show(before), show(Some(keys)));
        }
    }
    if old.seed != n.hashable.seed {
        let s = |x: Option<u64>| x.map(|v| v.to_string()).unwrap_or_else(|| "(none)".into());
        push("seed", "seed".into(), s(old.seed), s(n.hashable.seed));
    }
    if e.changes.is_empty() {
        e.summary = match &n.item {
            Some(it) => {
                format!("key changed: the content of item `{}` (its slide or its slice of the cohort)", it.shown())
            }
            None => "key changed".into(),
        };
    } else {
        e.summary = format!("{} component(s) of the key changed", e.changes.len());
    }
    e
}

impl Explanation {
    /// Lines for the terminal.
    pub fn text(&self) -> String {
        let item = self.item.as_ref().map(|x| format!(" [{}]", crate::util::display_id(x))).unwrap_or_default();
        let mut s = format!("{}{item}: key {}\n  {}\n", self.stage, self.key, self.summary);
        if let Some(p) = &self.previous_key {
            if *p != self.key {
                s.push_str(&format!("  last run's key {p}\n"));
            }
        }
        for c in &self.changes {
            let w = crate::util::display_text(&c.what);
            s.push_str(&format!("  {} {w}: {} → {}\n", c.component, c.old, c.new));
        }
        s
    }
}
