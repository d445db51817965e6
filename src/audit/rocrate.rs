//! `spatia export ro-crate`: a recorded run as a Workflow Run RO-Crate (RO-Crate 1.1; profiles
//! Process Run Crate, Workflow Run Crate and Provenance Run Crate 0.5, and Workflow RO-Crate
//! 1.0), written as `ro-crate-metadata.json` plus copied files in one new directory.
//!
//! **Mapping** (docs/provenance.md):
//! - the spec is the workflow: copied to `workflow/<spec file name>`, typed `File`,
//!   `SoftwareSourceCode`, `ComputationalWorkflow`, `HowTo`, the root's `mainEntity`; its
//!   `input`/`output` are `FormalParameter`s for the run's input files (by role) and the files
//!   of its sink stages (no other node reads them); its `hasPart` is one `SoftwareApplication`
//!   per stage kind (`#tool-<kind>`: the kind, its version and the Spatia version), its `step`
//!   one `HowToStep` per stage name (`#step-<stage>`);
//! - every node of the run with a cache record is a `CreateAction` (`#action-<key>`):
//!   `instrument` its kind's tool, `object` its input files, the output files of the nodes it
//!   read and one `PropertyValue` per top-level parameter (`exampleOfWork` the kind's
//!   `FormalParameter` for it), `result` its output files, `startTime`/`endTime` from its
//!   record; a `ControlAction` links it to its step, and the `OrganizeAction` (Spatia, the
//!   engine) to the run's own `CreateAction` (the spec as `instrument`, run start and end);
//! - files carry `contentSize` and `blake3` (a term the crate's context defines as
//!   [`BLAKE3_TERM`]); sha256 is not computed (no profile requires it).
//!
//! **Payload:** output files up to `copy_limit` bytes are copied into the crate under
//! `nodes/<stage>/<key prefix>/…`; larger ones and every input file are referenced by
//! absolute `file://` URI (the RO-Crate rule for data not in the payload), never copied.
//!
//! **Pseudonyms** (unless `show_ids`): a slide input (recognised by its blake3 in the run's
//! `slides.json`) and any file whose path names a patient or slide id get a local id
//! (`#slide-<label>`, `#file-<digest prefix>`) and a name with the page's pseudonyms
//! ([`crate::report::page::Pseudonyms`], as `lineage` shows them); an item is shown by its
//! pseudonym; a small file whose bytes contain an id is referenced, not copied.
//!
//! **Safety:** nothing is written outside `out`; an existing `out` must be empty or hold
//! [`MARKER`] (a crate Spatia wrote, replaced as a whole). Copied paths are built from
//! sanitised components only.
use crate::cache::{Cache, Record};
use crate::contracts::ingest::CohortCsv;
use crate::provenance::RunSummary;
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The file that marks a directory as a crate Spatia wrote (so a later export may replace it).
pub const MARKER: &str = ".spatia-ro-crate";
/// The IRI of the `blake3` term the crate's context adds (hex digest of a file's bytes).
pub const BLAKE3_TERM: &str = "urn:spatia:terms:blake3";
/// The RO-Crate 1.1 context and the Workflow Run terms (vendored under assets/rocrate/).
pub const CONTEXTS: [&str; 2] =
    ["https://w3id.org/ro/crate/1.1/context", "https://w3id.org/ro/terms/workflow-run/context"];
const PROFILES: [(&str, &str, &str); 4] = [
    ("https://w3id.org/ro/wfrun/process/0.5", "Process Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/workflow/0.5", "Workflow Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/provenance/0.5", "Provenance Run Crate", "0.5"),
    ("https://w3id.org/workflowhub/workflow-ro-crate/1.0", "Workflow RO-Crate", "1.0"),
];

/// Who ran it (`--agent`): a `Person` unless `organization`.
#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    /// An IRI (ORCID, ROR, web page); without one the agent gets a local id.
    pub id: Option<String>,
    pub organization: bool,
}

/// What to export and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    pub show_ids: bool,
    /// Output files up to this many bytes are copied into the crate.
    pub copy_limit: u64,
    pub agent: Option<Agent>,
    /// The crate's licence (a URL or SPDX id); None: a `CreativeWork` saying none was stated.
    pub license: Option<String>,
}

/// What the export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub out: PathBuf,
    pub actions: usize,
    pub files_copied: usize,
    pub files_referenced: usize,
    pub bytes_copied: u64,
    /// Nodes of the run with no cache record (failed, skipped, or the entry is gone).
    pub nodes_without_record: usize,
}

/// `out` ready for a new crate: created, or emptied when it holds [`MARKER`]; refused when it
/// is a non-empty directory Spatia did not write, or not a directory.
fn prepare_out(out: &Path) -> Result<()> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        }
        Err(e) => bail!("{}: {e}", out.display()),
        Ok(m) if !m.is_dir() => bail!("{}: exists and is not a directory", out.display()),
        Ok(_) => {
            let mut entries = std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))?;
            if entries.next().is_some() {
                if !out.join(MARKER).is_file() {
                    bail!(
                        "{}: not empty and not a crate Spatia wrote (no {MARKER}); name a new or empty directory",
                        out.display()
                    );
                }
                for e in std::fs::read_dir(out)? {
                    let p = e?.path();
                    let md = std::fs::symlink_metadata(&p)?;
                    if md.is_dir() {
                        std::fs::remove_dir_all(&p).with_context(|| format!("cannot remove {}", p.display()))?;
                    } else {
                        std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
                    }
                }
            }
        }
    }
    std::fs::write(out.join(MARKER), "spatia-ro-crate/1\n")
        .with_context(|| format!("cannot write in {}", out.display()))
}

/// A path component safe to create: ASCII letters, digits, `-`, `_`, `.` (not leading), else `_`.
fn safe_component(s: &str) -> String {
    let mut c: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).take(120).collect();
    if c.is_empty() || c.starts_with('.') {
        c.insert(0, '_');
    }
    c
}

/// The first `n` characters of a key or digest as a safe component (records are input too).
fn short(s: &str, n: usize) -> String {
    safe_component(&s.chars().take(n).collect::<String>())
}

/// A `file://` URI for an absolute path (bytes outside the unreserved set and `/` percent-encoded).
fn file_uri(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut s = String::from("file://");
    for &b in p.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The Bioschemas profile a `FormalParameter` conforms to.
const FORMAL_PARAMETER_PROFILE: &str = "https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE";

/// A `FormalParameter` for files: `name`, with the file `work_example` as its example.
fn file_parameter(fp: &str, name: &str, work_example: &str) -> Value {
    json!({
        "@id": fp, "@type": "FormalParameter", "name": name, "additionalType": "File",
        "workExample": id(work_example), "conformsTo": id(FORMAL_PARAMETER_PROFILE),
    })
}

/// A JSON-LD reference.
fn id(s: &str) -> Value {
    json!({ "@id": s })
}

/// Identifiers to hide, longest first, each with its label.
struct Hider {
    show: bool,
    ids: Vec<(String, String)>,
}

impl Hider {
    /// `text` with every id replaced by its label.
    fn text(&self, text: &str) -> String {
        if self.show {
            return text.to_string();
        }
        let mut t = text.to_string();
        for (i, label) in &self.ids {
            if t.contains(i.as_str()) {
                t = t.replace(i.as_str(), label);
            }
        }
        t
    }

    fn names_an_id(&self, text: &str) -> bool {
        !self.show && self.ids.iter().any(|(i, _)| text.contains(i.as_str()))
    }

    fn bytes_hold_an_id(&self, bytes: &[u8]) -> bool {
        !self.show && self.ids.iter().any(|(i, _)| bytes.windows(i.len()).any(|w| w == i.as_bytes()))
    }
}

/// The graph being built: entities by id, in insertion order.
#[derive(Default)]
struct Graph {
    order: Vec<String>,
    by_id: HashMap<String, Map<String, Value>>,
}

impl Graph {
    fn add(&mut self, v: Value) {
        let Value::Object(m) = v else { return };
        let Some(k) = m.get("@id").and_then(Value::as_str).map(str::to_string) else { return };
        if !self.by_id.contains_key(&k) {
            self.order.push(k.clone());
            self.by_id.insert(k, m);
        }
    }

    fn has(&self, k: &str) -> bool {
        self.by_id.contains_key(k)
    }

    /// Appends `v` to the list property `prop` of entity `k` (once).
    fn push(&mut self, k: &str, prop: &str, v: Value) {
        if let Some(m) = self.by_id.get_mut(k) {
            let e = m.entry(prop.to_string()).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = e {
                if !a.contains(&v) {
                    a.push(v);
                }
            }
        }
    }

    fn into_value(mut self, context: Value) -> Value {
        let graph: Vec<Value> = self.order.iter().filter_map(|k| self.by_id.remove(k)).map(Value::Object).collect();
        json!({ "@context": context, "@graph": graph })
    }
}

/// The JSON type of a parameter value as a schema.org `additionalType`.
fn value_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "Float",
        Value::String(_) => "Text",
        _ => "Text",
    }
}

/// The media type of a file by its extension (None: unknown).
fn media_type(path: &str) -> Option<&'static str> {
    let ext = Path::new(path).extension()?.to_string_lossy().to_ascii_lowercase();
    Some(match ext.as_str() {
        "html" => "text/html",
        "json" => "application/json",
        "csv" => "text/csv",
        "txt" | "log" => "text/plain",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "tif" | "tiff" => "image/tiff",
        "h5" | "hdf5" => "application/x-hdf5",
        "yaml" | "yml" => "application/yaml",
        _ => return None,
    })
}

/// Exports `run` (recorded in `run_file`) from `cache` as a crate in `opts.out`.
pub fn export(root: &Path, cache: &Cache, run_file: &Path, run: &RunSummary, opts: &Options) -> Result<Summary> {
    // the records of the run's nodes, in run order, each key once
    let mut records: Vec<Record> = Vec::new();
    let mut seen = HashSet::new();
    let mut without = 0;
    for n in &run.nodes {
        if !seen.insert(n.key.clone()) {
            continue;
        }
        match cache.record(&n.key) {
            Ok(r) => records.push(r),
            Err(_) => without += 1,
        }
    }
    if records.is_empty() {
        bail!("{}: none of the run's nodes has a record in {}", run_file.display(), cache.root.display());
    }
    let spec_file = root.join(&run.spec);
    let spec_bytes =
        std::fs::read(&spec_file).with_context(|| format!("cannot read the run's spec {}", spec_file.display()))?;
    if blake3::hash(&spec_bytes).to_hex().as_str() != run.spec_blake3 {
        bail!(
            "{}: the spec changed since run {} (blake3 {}, recorded {}); the crate needs the spec as it was",
            spec_file.display(),
            run_file.display(),
            blake3::hash(&spec_bytes).to_hex(),
            run.spec_blake3
        );
    }
    let out = std::path::absolute(&opts.out).unwrap_or_else(|_| opts.out.clone());
    let cache_root = std::path::absolute(&cache.root).unwrap_or_else(|_| cache.root.clone());
    if out.starts_with(&cache_root) || cache_root.starts_with(&out) {
        bail!("{}: the crate cannot be written in or above the cache {}", out.display(), cache_root.display());
    }

    let (ps, slide_of, slide_file) = super::lineage::pseudonyms(cache, &records, opts.show_ids);
    let mut ids: Vec<(String, String)> = Vec::new();
    for (sid, (path, _)) in &slide_file {
        ids.push((sid.clone(), ps.slide(sid)));
        if let Some(stem) = Path::new(path).file_stem().map(|s| s.to_string_lossy().to_string()) {
            if stem != *sid && !stem.is_empty() {
                ids.push((stem, ps.slide(sid)));
            }
        }
    }
    for r in &records {
        if let Some(it) = &r.item {
            ids.push((it.clone(), ps.item(it)));
        }
    }
    if let Some(ing) = records.iter().find(|r| r.kind == crate::contracts::INGEST) {
        if let Ok(c) = CohortCsv::read(&cache.out_dir(&ing.key).join(CohortCsv::FILE)) {
            for row in c.rows {
                let label = ps.patient(&row.patient_id);
                ids.push((row.patient_id, label));
            }
        }
    }
    ids.retain(|(i, _)| !i.is_empty());
    ids.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    ids.dedup();
    let hide = Hider { show: opts.show_ids, ids };

    prepare_out(&out)?;
    let mut g = Graph::default();
    let mut sum = Summary {
        out: out.clone(),
        actions: 0,
        files_copied: 0,
        files_referenced: 0,
        bytes_copied: 0,
        nodes_without_record: without,
    };
    let tool = records.first().map(|r| r.tool.clone()).unwrap_or_else(crate::provenance::tool_version);

    // descriptor, root, profiles
    g.add(json!({
        "@id": "ro-crate-metadata.json",
        "@type": "CreativeWork",
        "conformsTo": [id("https://w3id.org/ro/crate/1.1"), id("https://w3id.org/workflowhub/workflow-ro-crate/1.0")],
        "about": id("./"),
    }));
    let started = run.started.clone();
    let finished = if run.finished.is_empty() { run.updated.clone() } else { run.finished.clone() };
    let spec_name = Path::new(&run.spec).file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let wf_id = format!("workflow/{}", safe_component(&spec_name));
    let license = match &opts.license {
        Some(l) => Value::from(l.clone()),
        None => id("#license-not-stated"),
    };
    g.add(json!({
        "@id": "./",
        "@type": "Dataset",
        "name": format!("Spatia run of {} ({})", run.name, started),
        "description": format!(
            "The provenance of one run of the Spatia experiment spec `{}`: every stage computed or reused, \
             with its parameters, input and output files (blake3 digests), as recorded in {} and the cache.",
            run.spec,
            run_file.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default()
        ),
        "datePublished": finished,
        "license": license,
        "conformsTo": PROFILES.iter().map(|p| id(p.0)).collect::<Vec<_>>(),
        "mainEntity": id(&wf_id),
        "hasPart": [id(&wf_id)],
    }));
    for (iri, name, version) in PROFILES {
        g.add(json!({ "@id": iri, "@type": "CreativeWork", "name": name, "version": version }));
    }
    if opts.license.is_none() {
        g.add(json!({
            "@id": "#license-not-stated",
            "@type": "CreativeWork",
            "name": "No licence stated",
            "description": "The exporter named no licence (spatia export ro-crate --license): ask the data owner.",
        }));
    }
    let agent_id = opts.agent.as_ref().map(|a| {
        let aid = a.id.clone().unwrap_or_else(|| format!("#agent-{}", safe_component(&a.name)));
        g.add(json!({
            "@id": aid,
            "@type": if a.organization { "Organization" } else { "Person" },
            "name": a.name,
        }));
        aid
    });
    if let Some(a) = &agent_id {
        g.push("./", "creator", id(a));
    }

    // the engine and the workflow
    g.add(json!({
        "@id": "#spatia",
        "@type": "SoftwareApplication",
        "name": "Spatia",
        "softwareVersion": tool,
        "description": "Declarative, content-hashed experiments for computational pathology: YAML spec → DAG → cache → report.",
    }));
    g.add(json!({
        "@id": "#spatia-spec",
        "@type": "ComputerLanguage",
        "name": "Spatia experiment spec",
        "alternateName": "YAML",
        "version": format!("{}", run.schema_version),
    }));
    std::fs::create_dir_all(out.join("workflow"))?;
    std::fs::write(out.join(&wf_id), &spec_bytes)
        .with_context(|| format!("cannot write {}", out.join(&wf_id).display()))?;
    sum.files_copied += 1;
    sum.bytes_copied += spec_bytes.len() as u64;
    g.add(json!({
        "@id": wf_id,
        "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
        "name": run.name,
        "description": format!("The experiment spec ({}).", run.spec),
        "programmingLanguage": id("#spatia-spec"),
        "contentSize": spec_bytes.len().to_string(),
        "blake3": run.spec_blake3,
        "encodingFormat": "application/yaml",
    }));

    // which node read which: the run's keys per stage resolve item-scoped needs
    let mut stage_keys: super::lineage::StageKeys = HashMap::new();
    for n in &run.nodes {
        let v = stage_keys.entry(n.stage.clone()).or_default();
        if !v.contains(&n.key) {
            v.push(n.key.clone());
        }
    }
    let by_key: HashMap<&str, &Record> = records.iter().map(|r| (r.key.as_str(), r)).collect();
    let upstream: HashMap<String, Vec<String>> = records
        .iter()
        .map(|r| {
            let ups =
                super::lineage::upstream_keys(r, &stage_keys).into_iter().filter(|k| by_key.contains_key(k.as_str()));
            (r.key.clone(), ups.collect())
        })
        .collect();
    let read: HashSet<&str> = upstream.values().flatten().map(String::as_str).collect();

    // output files: copied or referenced; key → file ids
    let mut outputs: HashMap<String, Vec<String>> = HashMap::new();
    for r in &records {
        let dir = cache.out_dir(&r.key);
        let stage_dir = format!("nodes/{}/{}", safe_component(&r.stage), short(&r.key, 16));
        let mut fids = Vec::new();
        for f in &r.outputs {
            let src = dir.join(&f.path);
            let shown = hide.text(&f.path);
            let small = f.size <= opts.copy_limit;
            let bytes = if small { std::fs::read(&src).ok() } else { None };
            let copy = bytes
                .as_ref()
                .is_some_and(|b| !hide.bytes_hold_an_id(b) && blake3::hash(b).to_hex().as_str() == f.blake3);
            let fid = if copy {
                let rel: Vec<String> = shown.split('/').filter(|c| !c.is_empty()).map(safe_component).collect();
                let fid = format!("{stage_dir}/{}", rel.join("/"));
                let dst = out.join(&fid);
                if let Some(p) = dst.parent() {
                    std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
                }
                std::fs::write(&dst, bytes.as_deref().unwrap_or_default())
                    .with_context(|| format!("cannot write {}", dst.display()))?;
                sum.files_copied += 1;
                sum.bytes_copied += f.size;
                fid
            } else if hide.names_an_id(&f.path) {
                sum.files_referenced += 1;
                format!("#file-{}", short(&f.blake3, 24))
            } else {
                sum.files_referenced += 1;
                file_uri(&std::path::absolute(&src).unwrap_or(src.clone()))
            };
            if !g.has(&fid) {
                let mut e = json!({
                    "@id": fid,
                    "@type": "File",
                    "name": format!("{} (output of {})", shown, r.stage),
                    "contentSize": f.size.to_string(),
                    "blake3": f.blake3,
                });
                if let Some(m) = media_type(&f.path) {
                    e["encodingFormat"] = Value::from(m);
                }
                if !copy {
                    e["description"] = Value::from(if fid.starts_with('#') {
                        "Not copied (its path or bytes name a patient or slide); in the run's cache.".to_string()
                    } else {
                        "Not copied (larger than the copy limit, or it names a patient or slide): in the run's cache."
                            .to_string()
                    });
                }
                g.add(e);
                g.push("./", "hasPart", id(&fid));
            }
            fids.push(fid);
        }
        outputs.insert(r.key.clone(), fids);
    }

    // input files (role → ids), slides from slides.json for `tile` shards
    let mut input_ids: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for r in &records {
        let slide_input = (r.kind == crate::contracts::TILE)
            .then(|| r.item.as_ref().and_then(|it| slide_file.get(it)))
            .flatten()
            .map(|(path, b3)| crate::cache::InputRecord {
                role: "slide".into(),
                path: path.clone(),
                blake3: b3.clone(),
            });
        let mut v = Vec::new();
        for i in r.inputs.iter().chain(slide_input.as_ref()) {
            let abs = root.join(&i.path);
            let (fid, name) = match slide_of.get(&i.blake3) {
                Some(sid) if !opts.show_ids => {
                    let ext =
                        Path::new(&i.path).extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
                    let label = format!("{}{ext}", ps.slide(sid));
                    (format!("#slide-{}", safe_component(&label)), format!("slide {label}"))
                }
                _ if hide.names_an_id(&i.path) => (format!("#file-{}", short(&i.blake3, 24)), hide.text(&i.path)),
                _ => (file_uri(&std::path::absolute(&abs).unwrap_or(abs.clone())), i.path.clone()),
            };
            if !g.has(&fid) {
                let mut e = json!({ "@id": fid, "@type": "File", "name": name, "blake3": i.blake3 });
                if let Ok(m) = std::fs::metadata(&abs) {
                    e["contentSize"] = Value::from(m.len().to_string());
                }
                e["description"] = Value::from(format!("Input file ({}), referenced, not copied.", i.role));
                if let Some(m) = media_type(&i.path) {
                    e["encodingFormat"] = Value::from(m);
                }
                g.add(e);
                g.push("./", "hasPart", id(&fid));
                sum.files_referenced += 1;
            }
            v.push((i.role.clone(), fid));
        }
        input_ids.insert(r.key.clone(), v);
    }

    // tools (one per kind), steps (one per stage), actions (one per node)
    let mut stage_order: Vec<String> = Vec::new();
    for r in &records {
        if !stage_order.contains(&r.stage) {
            stage_order.push(r.stage.clone());
        }
    }
    let mut control_ids = Vec::new();
    for r in &records {
        let tool_id = format!("#tool-{}", safe_component(&r.kind));
        if !g.has(&tool_id) {
            g.add(json!({
                "@id": tool_id,
                "@type": "SoftwareApplication",
                "name": format!("Spatia stage kind {}", r.kind),
                "softwareVersion": format!("{} (kind version {})", r.tool, r.kind_version),
                "isPartOf": id("#spatia"),
            }));
            g.push(&wf_id, "hasPart", id(&tool_id));
        }
        let step_id = format!("#step-{}", safe_component(&r.stage));
        if !g.has(&step_id) {
            let pos = stage_order.iter().position(|s| s == &r.stage).unwrap_or(0);
            g.add(json!({
                "@id": step_id,
                "@type": "HowToStep",
                "name": r.stage,
                "position": pos.to_string(),
                "workExample": id(&tool_id),
            }));
            g.push(&wf_id, "step", id(&step_id));
        }
        let kind = safe_component(&r.kind);
        let aid = format!("#action-{}", r.key);
        let item = r.item.as_deref().map(|x| ps.item(x));
        let mut action = json!({
            "@id": aid,
            "@type": "CreateAction",
            "name": match &item { Some(i) => format!("{} {} ({i})", r.stage, r.kind), None => format!("{} {}", r.stage, r.kind) },
            "instrument": id(&tool_id),
            "startTime": r.started,
            "endTime": r.finished,
            "actionStatus": id("http://schema.org/CompletedActionStatus"),
            "identifier": r.key,
            "description": format!("Stage `{}` (kind {} version {}), cache key {}.", r.stage, r.kind, r.kind_version, r.key),
            "object": [],
            "result": [],
        });
        if let Some(a) = &agent_id {
            action["agent"] = id(a);
        }
        g.add(action);
        g.push("./", "mentions", id(&aid));
        sum.actions += 1;
        // parameters
        if let Value::Object(params) = &r.params {
            for (name, v) in params {
                let fp = format!("#{kind}-param-{}", safe_component(name));
                let pv = format!("#pv-{}-{}", short(&r.key, 16), safe_component(name));
                let value = match v {
                    Value::String(s) => Value::from(hide.text(s)),
                    Value::Number(_) | Value::Bool(_) => v.clone(),
                    other => Value::from(hide.text(&other.to_string())),
                };
                g.add(json!({ "@id": pv, "@type": "PropertyValue", "name": name, "value": value, "exampleOfWork": id(&fp) }));
                if !g.has(&fp) {
                    g.add(json!({
                        "@id": fp,
                        "@type": "FormalParameter",
                        "name": name,
                        "additionalType": value_type(v),
                        "valueRequired": "False",
                        "workExample": id(&pv),
                        "conformsTo": id(FORMAL_PARAMETER_PROFILE),
                    }));
                    g.push(&tool_id, "input", id(&fp));
                }
                g.push(&aid, "object", id(&pv));
            }
        }
        // input files and the files of the nodes it read
        for (role, fid) in input_ids.get(&r.key).into_iter().flatten() {
            let fp = format!("#{kind}-in-{}", safe_component(role));
            if !g.has(&fp) {
                g.add(file_parameter(&fp, role, fid));
                g.push(&tool_id, "input", id(&fp));
            }
            g.push(fid, "exampleOfWork", id(&fp));
            g.push(&aid, "object", id(fid));
        }
        for u in upstream.get(&r.key).into_iter().flatten() {
            let ustage = by_key.get(u.as_str()).map(|x| x.stage.clone()).unwrap_or_default();
            let fp = format!("#{kind}-in-{}", safe_component(&ustage));
            for fid in outputs.get(u).into_iter().flatten() {
                if !g.has(&fp) {
                    g.add(file_parameter(&fp, &format!("output of {ustage}"), fid));
                    g.push(&tool_id, "input", id(&fp));
                }
                g.push(&aid, "object", id(fid));
            }
        }
        let out_fp = format!("#{kind}-out");
        for fid in outputs.get(&r.key).into_iter().flatten() {
            if !g.has(&out_fp) {
                g.add(file_parameter(&out_fp, &format!("{} outputs", r.kind), fid));
                g.push(&tool_id, "output", id(&out_fp));
            }
            g.push(fid, "exampleOfWork", id(&out_fp));
            g.push(&aid, "result", id(fid));
        }
        let cid = format!("#control-{}", r.key);
        g.add(json!({
            "@id": cid,
            "@type": "ControlAction",
            "name": format!("orchestrate {}", r.stage),
            "instrument": id(&step_id),
            "object": id(&aid),
        }));
        control_ids.push(id(&cid));
    }

    // the workflow's own inputs and outputs, and the run
    let run_id = "#run".to_string();
    let mut run_action = json!({
        "@id": run_id,
        "@type": "CreateAction",
        "name": format!("Run of {} with {}", run.spec, tool),
        "instrument": id(&wf_id),
        "startTime": started,
        "endTime": finished,
        "actionStatus": id(if run.ok { "http://schema.org/CompletedActionStatus" } else { "http://schema.org/FailedActionStatus" }),
        "object": [],
        "result": [],
    });
    if let Some(a) = &agent_id {
        run_action["agent"] = id(a);
    }
    g.add(run_action);
    g.push("./", "mentions", id(&run_id));
    let mut roles_done = BTreeSet::new();
    for r in &records {
        for (role, fid) in input_ids.get(&r.key).into_iter().flatten() {
            let fp = format!("#input-{}", safe_component(role));
            if roles_done.insert(fp.clone()) {
                g.add(file_parameter(&fp, role, fid));
                g.push(&wf_id, "input", id(&fp));
            }
            g.push(fid, "exampleOfWork", id(&fp));
            g.push(&run_id, "object", id(fid));
        }
        if !read.contains(r.key.as_str()) {
            let fp = format!("#output-{}", safe_component(&r.stage));
            for fid in outputs.get(&r.key).into_iter().flatten() {
                if roles_done.insert(fp.clone()) {
                    g.add(file_parameter(&fp, &format!("{} outputs", r.stage), fid));
                    g.push(&wf_id, "output", id(&fp));
                }
                g.push(fid, "exampleOfWork", id(&fp));
                g.push(&run_id, "result", id(fid));
            }
        }
    }
    g.add(json!({
        "@id": "#orchestration",
        "@type": "OrganizeAction",
        "name": format!("Spatia orchestrating run {}", run.name),
        "instrument": id("#spatia"),
        "object": control_ids,
        "result": id(&run_id),
        "startTime": started,
        "endTime": finished,
    }));
    if let Some(a) = &agent_id {
        g.push("#orchestration", "agent", id(a));
    }
    g.push("./", "mentions", id("#orchestration"));

    let mut context: Vec<Value> = CONTEXTS.iter().map(|c| Value::from(*c)).collect();
    context.push(json!({ "blake3": BLAKE3_TERM }));
    let doc = g.into_value(Value::Array(context));
    let text = serde_json::to_string_pretty(&doc).context("cannot encode the crate")?;
    std::fs::write(out.join("ro-crate-metadata.json"), text + "\n")
        .with_context(|| format!("cannot write {}", out.join("ro-crate-metadata.json").display()))?;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_uris_cannot_escape_or_break() {
        assert_eq!(safe_component(".."), "_..");
        assert_eq!(safe_component("a/b c"), "a_b_c");
        assert_eq!(safe_component(""), "_");
        assert_eq!(short("é/é/é", 2), "__");
        assert_eq!(file_uri(Path::new("/a b/c%.txt")), "file:///a%20b/c%25.txt");
        let h = Hider { show: false, ids: vec![("P0011".into(), "P-002".into()), ("P001".into(), "P-001".into())] };
        assert_eq!(h.text("x/P0011_HE.png P001"), "x/P-002_HE.png P-001");
        assert!(h.bytes_hold_an_id(b"..P001.."));
        assert!(!h.bytes_hold_an_id(b"..P00.."));
        let shown = Hider { show: true, ids: h.ids.clone() };
        assert_eq!(shown.text("P001"), "P001");
    }

    #[test]
    fn a_foreign_non_empty_directory_is_refused_and_ours_replaced() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("crate");
        prepare_out(&out).unwrap();
        std::fs::write(out.join("old.txt"), "x").unwrap();
        prepare_out(&out).unwrap();
        assert!(!out.join("old.txt").exists() && out.join(MARKER).is_file());
        let foreign = d.path().join("mine");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("thesis.tex"), "x").unwrap();
        let e = prepare_out(&foreign).unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
        assert!(foreign.join("thesis.tex").is_file());
        std::fs::write(d.path().join("f"), "x").unwrap();
        assert!(prepare_out(&d.path().join("f")).is_err());
    }
}
