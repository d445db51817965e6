//! `spatia lineage`: the chain of cache records behind a file, a key or one number, back to
//! the input files.
//!
//! **Targets** ([`resolve`]): a key (or a unique prefix of ≥ 6 hex digits); a file in the cache
//! (`entries/<k[0..2]>/<key>/out/…`) or in a published folder (the nearest
//! `.spatia-publish.json` above it names the key); a metric path, `<file>:<selector>` where
//! the selector is a dotted path with `[i]` indices into the JSON file
//! (`…/metrics.json:arms[0].harrell_c`), or `<page>#arm=<arm>:<field>` for a number the page
//! shows (the page's `evaluate` upstream record, its `metrics.json`, that arm's field).
//! A metric of one arm follows that arm only (its keys in the newest run that planned the
//! node); other targets follow every upstream key their records name.
//!
//! **Chain** ([`Chain`]): each node once, the target's first, then upstream depth first:
//! stage, kind, key, item, resolved parameters, inputs (path at run time and blake3), kind
//! version, tool and library versions, host and duration — everything from `record.json`.
//!
//! **Pseudonyms:** items and slide files are shown as the page shows them
//! ([`crate::report::page::Pseudonyms`], from the chain's `ingest` outputs and the seed its
//! records hold; a slide input is recognised by its blake3 in `slides.json`) unless the caller
//! opts in to identifiers.
//!
//! Errors name the target and what is missing (no entry, no marker, a selector that does not
//! reach a value).
use crate::cache::{Cache, Record};
use crate::contracts::ingest::{CohortCsv, SlidesJson};
use crate::exec::publish::{Marker, MARKER};
use crate::report::page::Pseudonyms;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// What the target resolved to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The key the chain starts at.
    pub key: String,
    /// The number or value selected, for a metric path.
    pub value: Option<Value>,
    /// Keys the chain may follow (one arm's), None: all.
    pub allowed: Option<HashSet<String>>,
    /// Where the target was found (a published folder, the cache entry).
    pub found_in: String,
    /// The stages of the newest run that planned the key.
    pub stages: StageKeys,
}

/// One input of a node, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct ChainInput {
    pub role: String,
    pub path: String,
    pub blake3: String,
}

/// One node of the chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainNode {
    pub stage: String,
    pub kind: String,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    pub params: Value,
    pub inputs: Vec<ChainInput>,
    /// `kind` (the kind's version), `tool`, and each library's.
    pub versions: BTreeMap<String, Value>,
    pub host: String,
    pub duration_s: f64,
    /// The keys it was computed from (those the chain follows).
    pub upstream: Vec<String>,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct Chain {
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub found_in: String,
    pub chain: Vec<ChainNode>,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The key of the entry or published folder holding `file`.
fn key_of_file(cache: &Cache, file: &Path) -> Result<(String, String)> {
    let abs = file.canonicalize().with_context(|| format!("{}: no such file", file.display()))?;
    let entries = cache.root.join("entries").canonicalize().ok();
    if let Some(e) = entries.as_ref().filter(|e| abs.starts_with(e)) {
        // entries/<k2>/<key>/…
        if let Some(key) =
            abs.strip_prefix(e).ok().and_then(|r| r.iter().nth(1)).map(|k| k.to_string_lossy().to_string())
        {
            if key.len() == 64 && is_hex(&key) {
                let at = format!("cache entry {}", cache.entry_dir(&key).display());
                return Ok((key, at));
            }
        }
    }
    let mut dir = if abs.is_dir() { Some(abs.as_path()) } else { abs.parent() };
    while let Some(d) = dir {
        if let Ok(text) = std::fs::read_to_string(d.join(MARKER)) {
            let m: Marker = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a publish marker", d.join(MARKER).display()))?;
            if let Some(k) = m.key {
                return Ok((k, format!("published folder {}", d.display())));
            }
        }
        dir = d.parent();
    }
    bail!(
        "{}: not in the cache ({}) nor in a published folder (no {MARKER} above it)",
        file.display(),
        cache.root.display()
    )
}

/// Follows a dotted selector with `[i]` indices (`arms[0].harrell_c`) into a JSON value.
pub fn select<'a>(v: &'a Value, selector: &str) -> Result<&'a Value> {
    let mut cur = v;
    for part in selector.split('.').filter(|p| !p.is_empty()) {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            cur = cur.get(name).with_context(|| format!("selector `{selector}`: no field `{name}`"))?;
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            let n: usize = idx
                .trim_end_matches(']')
                .parse()
                .with_context(|| format!("selector `{selector}`: `[{idx}` is not an index"))?;
            cur = cur.get(n).with_context(|| format!("selector `{selector}`: no element {n}"))?;
        }
    }
    Ok(cur)
}

/// The keys of `arm` in the newest run of `root` that planned `key`.
fn arm_keys(root: &Path, key: &str, arm: &str) -> Option<HashSet<String>> {
    for p in crate::provenance::list_runs(root).iter().rev() {
        let Ok(r) = crate::provenance::RunSummary::read(p) else { continue };
        if !r.keys().any(|k| k == key) {
            continue;
        }
        let stages = r.arms.get(arm)?;
        let mut out = HashSet::new();
        for v in stages.values() {
            match v {
                Value::String(k) => {
                    out.insert(k.clone());
                }
                Value::Object(m) => out.extend(m.values().filter_map(|k| k.as_str().map(str::to_string))),
                _ => {}
            }
        }
        return Some(out);
    }
    None
}

/// Resolves a target (see the module doc).
pub fn resolve(root: &Path, cache: &Cache, target: &str) -> Result<Resolved> {
    if target.len() >= 6 && is_hex(target) {
        let keys: Vec<String> = cache.keys()?.into_iter().filter(|k| k.starts_with(target)).collect();
        return match keys.len() {
            1 => Ok(Resolved {
                key: keys[0].clone(),
                value: None,
                allowed: None,
                found_in: "cache".into(),
                stages: stage_keys(root, &keys[0]),
            }),
            0 => bail!("no cache entry with key {target} in {}", cache.root.display()),
            n => bail!("key prefix {target} is ambiguous: {n} entries match"),
        };
    }
    // `<file>[#arm=<arm>]:<selector>`; a plain file otherwise
    let (file_part, selector) = match target.rsplit_once(':') {
        Some((f, s)) if !Path::new(target).exists() => (f, Some(s)),
        _ => (target, None),
    };
    let (file, fragment) = match file_part.split_once('#') {
        Some((f, frag)) => (f, Some(frag)),
        None => (file_part, None),
    };
    let (key, found_in) = key_of_file(cache, Path::new(file))?;
    let Some(selector) = selector else {
        let stages = stage_keys(root, &key);
        return Ok(Resolved { key, value: None, allowed: None, found_in, stages });
    };
    if let Some(frag) = fragment {
        // a number the page shows: the page's evaluate upstream, that arm's field
        let arm = frag.strip_prefix("arm=").with_context(|| format!("`#{frag}`: expected `#arm=<arm>`"))?;
        let page = cache.record(&key).with_context(|| format!("no cache record for {key} (the page's key)"))?;
        let mut names: Vec<String> = Vec::new();
        for k in &upstream_keys(&page, &stage_keys(root, &key)) {
            let Ok(r) = cache.record(k) else { continue };
            if r.kind != crate::contracts::EVALUATE {
                continue;
            }
            let m = read_json(&cache.out_dir(k).join("metrics.json"))?;
            let arms = m.get("arms").and_then(|a| a.as_array()).cloned().unwrap_or_default();
            if let Some(a) = arms.iter().find(|a| a.get("arm").and_then(|x| x.as_str()) == Some(arm)) {
                let value = select(a, selector)?.clone();
                let allowed = arm_keys(root, k, arm).map(|mut s| {
                    s.insert(k.clone());
                    s
                });
                let stages = stage_keys(root, k);
                return Ok(Resolved { key: k.clone(), value: Some(value), allowed, found_in, stages });
            }
            names.extend(arms.iter().filter_map(|a| a.get("arm").and_then(|x| x.as_str()).map(str::to_string)));
        }
        if names.is_empty() {
            bail!("{file}: the page has no evaluate stage upstream: no metrics to trace");
        }
        bail!("{file}: no arm `{arm}` in the page's metrics; arms: {}", names.join(", "));
    }
    let v = read_json(Path::new(file))?;
    let value = select(&v, selector)?.clone();
    // a metric of one arm (`arms[i].…`): that arm's keys only
    let arm = selector
        .split('.')
        .next()
        .filter(|s| s.starts_with("arms["))
        .and_then(|s| select(&v, s).ok())
        .and_then(|a| a.get("arm"))
        .and_then(|a| a.as_str());
    let allowed = arm.and_then(|arm| arm_keys(root, &key, arm)).map(|mut s| {
        s.insert(key.clone());
        s
    });
    let stages = stage_keys(root, &key);
    Ok(Resolved { key, value: Some(value), allowed, found_in, stages })
}

/// Stage name → the keys a run planned for it (every arm): how an item-scoped need
/// (recorded as `item:<digest of the item's slice>`, not as a key) is followed.
pub type StageKeys = HashMap<String, Vec<String>>;

/// The stage keys of the newest run of `root` that planned `key` (empty: none did).
pub fn stage_keys(root: &Path, key: &str) -> StageKeys {
    let mut out: StageKeys = HashMap::new();
    for p in crate::provenance::list_runs(root).iter().rev() {
        let Ok(r) = crate::provenance::RunSummary::read(p) else { continue };
        if !r.keys().any(|k| k == key) {
            continue;
        }
        for n in &r.nodes {
            let v = out.entry(n.stage.clone()).or_default();
            if !v.contains(&n.key) {
                v.push(n.key.clone());
            }
        }
        break;
    }
    out
}

/// The keys a record was computed from (a need gathered over arms records `<arm>=<key>`; an
/// item-scoped one, `item:<digest>`, is the run's single node of that stage).
pub fn upstream_keys(r: &Record, stages: &StageKeys) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (stage, vals) in &r.upstream {
        for k in vals {
            let keys: Vec<String> = if k.starts_with("item:") {
                match stages.get(stage) {
                    Some(v) if v.len() == 1 => v.clone(),
                    _ => Vec::new(),
                }
            } else {
                vec![k.rsplit('=').next().unwrap_or(k).to_string()]
            };
            out.extend(keys.into_iter().filter(|k| seen.insert(k.clone())));
        }
    }
    out
}

fn read_json(p: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", p.display()))
}

/// The records of the chain from `key`, depth first, each once.
fn walk(cache: &Cache, key: &str, allowed: Option<&HashSet<String>>, stages: &StageKeys) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![key.to_string()];
    while let Some(k) = stack.pop() {
        if !seen.insert(k.clone()) {
            continue;
        }
        let r = cache.record(&k).with_context(|| format!("no cache record for key {k} in {}", cache.root.display()))?;
        let ups: Vec<String> =
            upstream_keys(&r, stages).into_iter().filter(|u| allowed.is_none_or(|a| a.contains(u))).collect();
        for u in ups.iter().rev() {
            stack.push(u.clone());
        }
        out.push(r);
    }
    Ok(out)
}

/// Pseudonyms for the chain: from its `ingest` outputs (patients, slides), the seed its
/// records hold; with `show`, identifiers.
/// Also: slide blake3 → slide id, and slide id → (path as the manifest wrote it, blake3).
#[allow(clippy::type_complexity)]
pub(crate) fn pseudonyms(
    cache: &Cache,
    records: &[Record],
    show: bool,
) -> (Pseudonyms, HashMap<String, String>, HashMap<String, (String, String)>) {
    let seed = records.iter().find_map(|r| r.seed).unwrap_or(0);
    let mut patients = Vec::new();
    let mut slides = Vec::new();
    let mut by_digest = HashMap::new();
    let mut files = HashMap::new();
    if let Some(ing) = records.iter().find(|r| r.kind == crate::contracts::INGEST) {
        let dir = cache.out_dir(&ing.key);
        if let Ok(c) = CohortCsv::read(&dir.join(CohortCsv::FILE)) {
            patients = c.rows.into_iter().map(|r| r.patient_id).collect();
        }
        if let Ok(s) = SlidesJson::read(&dir.join(SlidesJson::FILE)) {
            for x in s.slides {
                by_digest.insert(x.blake3.clone(), x.slide_id.clone());
                files.insert(x.slide_id.clone(), (x.path.clone(), x.blake3.clone()));
                slides.push((x.slide_id, x.patient_id, x.stain.to_string()));
            }
        }
    }
    (Pseudonyms::new(seed, &patients, &slides, show), by_digest, files)
}

/// The chain behind a resolved target; ids pseudonymised unless `show_ids`.
pub fn chain(cache: &Cache, target: &str, r: &Resolved, show_ids: bool) -> Result<Chain> {
    let records = walk(cache, &r.key, r.allowed.as_ref(), &r.stages)?;
    let (ps, slide_of, slide_file) = pseudonyms(cache, &records, show_ids);
    let nodes = records
        .iter()
        .map(|rec| {
            let mut versions = BTreeMap::new();
            versions.insert("kind".to_string(), Value::from(rec.kind_version));
            versions.insert("tool".to_string(), Value::from(rec.tool.clone()));
            for (k, v) in &rec.libraries {
                versions.insert(k.clone(), Value::from(v.clone()));
            }
            // the slide a `tile` shard reads is its item (its digest in the key through the
            // item): shown as an input, with the blake3 `slides.json` recorded
            let slide_input = (rec.kind == crate::contracts::TILE)
                .then(|| rec.item.as_ref().and_then(|it| slide_file.get(it)))
                .flatten()
                .map(|(path, b3)| crate::cache::InputRecord {
                    role: "slide".into(),
                    path: path.clone(),
                    blake3: b3.clone(),
                });
            let inputs = rec
                .inputs
                .iter()
                .chain(slide_input.as_ref())
                .map(|i| {
                    let path = match slide_of.get(&i.blake3) {
                        // a slide file: its name holds identifiers
                        Some(sid) if !show_ids => {
                            let ext = Path::new(&i.path).extension().map(|e| format!(".{}", e.to_string_lossy()));
                            format!("<slide {}{}>", ps.slide(sid), ext.unwrap_or_default())
                        }
                        _ => i.path.clone(),
                    };
                    ChainInput { role: i.role.clone(), path, blake3: i.blake3.clone() }
                })
                .collect();
            ChainNode {
                stage: rec.stage.clone(),
                kind: rec.kind.clone(),
                key: rec.key.clone(),
                item: rec.item.as_deref().map(|x| ps.item(x)),
                params: rec.params.clone(),
                inputs,
                versions,
                host: rec.host.clone(),
                duration_s: rec.duration_s,
                upstream: upstream_keys(rec, &r.stages)
                    .into_iter()
                    .filter(|u| r.allowed.as_ref().is_none_or(|a| a.contains(u)))
                    .collect(),
            }
        })
        .collect();
    Ok(Chain { target: target.to_string(), value: r.value.clone(), found_in: r.found_in.clone(), chain: nodes })
}

impl Chain {
    /// The indented tree: each node under the one computed from it; a node met again is named
    /// with "(above)".
    pub fn tree(&self) -> String {
        let by_key: HashMap<&str, &ChainNode> = self.chain.iter().map(|n| (n.key.as_str(), n)).collect();
        let mut s = crate::util::display_text(&self.target);
        if let Some(v) = &self.value {
            s.push_str(&format!(" = {v}"));
        }
        s.push_str(&format!("  ({})\n", self.found_in));
        let mut shown = HashSet::new();
        fn rec(
            s: &mut String,
            n: &ChainNode,
            depth: usize,
            by_key: &HashMap<&str, &ChainNode>,
            shown: &mut HashSet<String>,
        ) {
            let pad = "  ".repeat(depth);
            let item = n.item.as_ref().map(|x| format!(" [{x}]")).unwrap_or_default();
            let kv = n.versions.get("kind").map(|v| v.to_string()).unwrap_or_default();
            if !shown.insert(n.key.clone()) {
                s.push_str(&format!("{pad}└ {}{item} {} (above)\n", n.stage, &n.key[..12.min(n.key.len())]));
                return;
            }
            s.push_str(&format!("{pad}└ {}{item}: {} v{kv}, key {}\n", n.stage, n.kind, n.key));
            s.push_str(&format!("{pad}    params {}\n", crate::util::canonical_json(&n.params)));
            for i in &n.inputs {
                s.push_str(&format!(
                    "{pad}    input {} {}  blake3 {}\n",
                    i.role,
                    crate::util::display_text(&i.path),
                    i.blake3
                ));
            }
            let tool = n.versions.get("tool").and_then(|t| t.as_str()).unwrap_or("");
            s.push_str(&format!("{pad}    {tool}; host {}; {:.2} s\n", n.host, n.duration_s));
            for u in &n.upstream {
                if let Some(x) = by_key.get(u.as_str()) {
                    rec(s, x, depth + 1, by_key, shown);
                }
            }
        }
        if let Some(first) = self.chain.first() {
            rec(&mut s, first, 0, &by_key, &mut shown);
        }
        s
    }

    /// Graphviz DOT: nodes (stage, kind, short key), input files (name, short blake3), edges
    /// from what was read to what was computed.
    pub fn dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut s = String::from("digraph lineage {\n  rankdir=BT;\n  node [fontname=\"DejaVu Sans\", fontsize=10];\n");
        let mut files = HashSet::new();
        for n in &self.chain {
            let item = n.item.as_ref().map(|x| format!(" [{x}]")).unwrap_or_default();
            let label = format!(
                "{}{item}\\n{} v{}\\n{}",
                n.stage,
                n.kind,
                n.versions.get("kind").map(|v| v.to_string()).unwrap_or_default(),
                &n.key[..12.min(n.key.len())]
            );
            s.push_str(&format!("  {} [shape=box, label={}];\n", q(&n.key), q(&label)));
            for u in &n.upstream {
                s.push_str(&format!("  {} -> {};\n", q(u), q(&n.key)));
            }
            for i in &n.inputs {
                let id = format!("file:{}", i.blake3);
                if files.insert(id.clone()) {
                    let name = Path::new(&i.path)
                        .file_name()
                        .map(|f| f.to_string_lossy().to_string())
                        .unwrap_or(i.path.clone());
                    let label = format!("{name}\\n{}", &i.blake3[..12.min(i.blake3.len())]);
                    s.push_str(&format!("  {} [shape=note, label={}];\n", q(&id), q(&label)));
                }
                s.push_str(&format!("  {} -> {};\n", q(&id), q(&n.key)));
            }
        }
        s.push_str("}\n");
        s
    }
}

/// Resolves and follows a target in one call.
pub fn lineage(root: &Path, cache: &Cache, target: &str, show_ids: bool) -> Result<Chain> {
    let r = resolve(root, cache, target)?;
    chain(cache, target, &r, show_ids)
}

#[cfg(test)]
mod tests {
    use super::select;
    use serde_json::json;

    #[test]
    fn selectors_reach_fields_and_indices_and_name_what_is_missing() {
        let v = json!({"arms": [{"arm": "a", "harrell_c": {"estimate": 0.7}}, {"arm": "b"}]});
        assert_eq!(select(&v, "arms[0].harrell_c.estimate").unwrap(), &json!(0.7));
        assert_eq!(select(&v, "arms[1].arm").unwrap(), &json!("b"));
        let e = select(&v, "arms[2].arm").unwrap_err().to_string();
        assert!(e.contains("no element 2"), "{e}");
        let e = select(&v, "arms[0].brier").unwrap_err().to_string();
        assert!(e.contains("no field `brier`"), "{e}");
    }
}
