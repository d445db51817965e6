//! Experiment specs: YAML text → checked [`Spec`].
//!
//! [`raw::RawSpec`] mirrors the YAML (serde, unknown keys rejected, no I/O); [`compile`] checks
//! it — kinds exist, `needs` name stages, no cycles, matrix paths name parameters, input files
//! exist, outputs stay inside the project — and expands the matrix into arms. Every error names
//! `file:line:column` and what was expected. `spec` never hashes or runs anything.
pub mod locate;
pub mod paths;
pub mod raw;
pub mod roots;
pub mod slurm;

use crate::stages::{self, CheckCx, Checked, StageKind};
use locate::{render, Locator, Seg};
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

/// The checked cohort block (owned by [`crate::cohort`]).
pub use crate::cohort::Cohort;

impl From<raw::RawCohort> for Cohort {
    fn from(c: raw::RawCohort) -> Cohort {
        let raw::RawCohort {
            clinical,
            id,
            time,
            event,
            causes,
            covariates,
            categorical,
            missing,
            slides,
            mpp_override,
        } = c;
        Cohort { clinical, id, time, event, causes, covariates, categorical, missing, slides, mpp_override }
    }
}

/// A spec error: where it is and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{file}:{line}:{col}: {msg}")]
    At { file: String, line: usize, col: usize, msg: String },
}

/// A checked spec.
#[derive(Debug)]
pub struct Spec {
    pub name: String,
    pub seed: u64,
    pub description: Option<String>,
    /// The spec file (absolute).
    pub file: PathBuf,
    /// The project root: inputs and outputs are relative to it; `cache/`, `runs/`,
    /// `reports/` live in it.
    pub root: PathBuf,
    pub cohort: Option<Cohort>,
    /// At least one arm (`main` when there is no matrix).
    pub arms: Vec<Arm>,
    /// blake3 of the spec text (recorded in runs, not in keys).
    pub text_digest: String,
    /// The spec file as named in messages (as given on the command line).
    pub display: String,
    /// The spec text, to locate errors found after compilation (at plan time).
    pub text: String,
}

impl Spec {
    /// An error at a place of the spec (the value at `path`), for checks made after
    /// compilation, e.g. against a slide's own µm/px when the DAG is built.
    pub fn error_at(&self, path: &[Seg], msg: impl Into<String>) -> SpecError {
        let (line, col) = Locator::new(&self.text).value(path);
        SpecError::At { file: self.display.clone(), line, col, msg: msg.into() }
    }
}

/// One arm of the matrix: a full DAG of stages.
#[derive(Debug)]
pub struct Arm {
    pub name: String,
    /// The matrix settings of this arm (path, value).
    pub settings: Vec<(String, Json)>,
    /// Stages in declaration order.
    pub stages: Vec<std::sync::Arc<StageDecl>>,
}

/// One stage of one arm, checked.
#[derive(Debug, Clone)]
pub struct StageDecl {
    pub name: String,
    pub kind: &'static dyn StageKind,
    pub needs: Vec<String>,
    pub checked: Checked,
    /// Canonical JSON of `checked.params` (what the key hashes).
    pub params_canonical: String,
    /// Directory (relative to the root) the outputs are copied to after a run.
    pub publish: Option<String>,
    /// Slurm resources of this stage's jobs (`slurm:`; never in the key).
    pub slurm: Option<slurm::Resources>,
}

impl std::fmt::Debug for dyn StageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Finds the project root of a spec: the nearest ancestor holding `spatia.toml` or `.git`,
/// else the spec's own directory.
pub fn find_root(spec: &Path) -> PathBuf {
    let dir = spec.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let mut cur = Some(dir.as_path());
    while let Some(d) = cur {
        if d.join("spatia.toml").exists() || d.join(".git").exists() {
            return d.to_path_buf();
        }
        cur = d.parent();
    }
    dir
}

struct Ctx<'a> {
    file: String,
    text: &'a str,
    loc: std::sync::OnceLock<Locator>,
    /// The project's data roots (`spatia.toml`), read on the first input checked.
    roots: std::sync::OnceLock<Result<roots::DataRoots, roots::ConfigError>>,
}

impl Ctx<'_> {
    fn locator(&self) -> &Locator {
        self.loc.get_or_init(|| Locator::new(self.text))
    }
    fn at_value(&self, path: &[Seg], msg: impl Into<String>) -> SpecError {
        let (line, col) = self.locator().value(path);
        SpecError::At { file: self.file.clone(), line, col, msg: msg.into() }
    }
    fn at_key(&self, path: &[Seg], msg: impl Into<String>) -> SpecError {
        let (line, col) = self.locator().key(path);
        SpecError::At { file: self.file.clone(), line, col, msg: msg.into() }
    }
}

fn p(parts: &[&str]) -> Vec<Seg> {
    parts.iter().map(|s| Seg::key(s)).collect()
}

/// Reads and checks a spec file. `root` overrides the project root.
pub fn compile(path: &Path, root: Option<&Path>) -> Result<Spec, SpecError> {
    let text = read_bounded(path).map_err(|source| SpecError::Read { path: path.display().to_string(), source })?;
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let root = match root {
        Some(r) => std::path::absolute(r).unwrap_or_else(|_| r.to_path_buf()),
        None => find_root(&file),
    };
    compile_str(&text, &path.display().to_string(), file, root)
}

/// Largest spec file read (a spec is hand-written text; this keeps `/dev/zero` or a slide given
/// by mistake from being read whole).
pub const MAX_SPEC_BYTES: u64 = 4 << 20;

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?.take(MAX_SPEC_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_SPEC_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB; expected a YAML experiment spec", MAX_SPEC_BYTES >> 20),
        ));
    }
    String::from_utf8(buf).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {}); expected a YAML experiment spec",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// From how many stages an arm's parameter checks run on the thread pool.
const PARALLEL_CHECKS_FROM: usize = 4096;

/// Checks spec text; `display` is the file name used in messages.
pub fn compile_str(text: &str, display: &str, file: PathBuf, root: PathBuf) -> Result<Spec, SpecError> {
    let cx =
        Ctx { file: display.to_string(), text, loc: std::sync::OnceLock::new(), roots: std::sync::OnceLock::new() };
    let spec_rel = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
    let t0 = std::time::Instant::now();
    let raw = raw::parse(text).map_err(|e| {
        let (mut line, mut col) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        let mut msg = e.to_string();
        if let Some(i) = msg.rfind(" at line ") {
            msg.truncate(i);
        }
        if msg.contains("duplicate entry") {
            if let Some((path, first, second)) = cx.locator().duplicates.first() {
                (line, col) = *second;
                let what = if path.len() == 2 && path[0] == Seg::key("stages") { "stage name" } else { "key" };
                msg = format!(
                    "duplicate {what} `{}` (first written at line {}); names must be unique",
                    render(path),
                    first.0
                );
            }
        }
        SpecError::At { file: display.to_string(), line, col, msg }
    })?;

    crate::util::timing("parse yaml", t0);
    if let Err(why) = check_name(&raw.name) {
        return Err(
            cx.at_value(&p(&["name"]), format!("experiment name `{}` {why}", crate::util::display_id(&raw.name)))
        );
    }
    // cohort
    if let Some(c) = &raw.cohort {
        check_input(&cx, &root, &c.clinical, &p(&["cohort", "clinical"]))?;
        if let Some(s) = &c.slides {
            check_input(&cx, &root, s, &p(&["cohort", "slides"]))?;
        }
        if let Some(m) = &c.missing {
            if !["error", "drop", "impute"].contains(&m.as_str()) {
                return Err(cx.at_value(
                    &p(&["cohort", "missing"]),
                    format!("cohort.missing must be one of error, drop, impute, found `{m}`"),
                ));
            }
        }
        if let Some(m) = c.mpp_override {
            crate::bounds::COHORT_MPP_OVERRIDE
                .check_f64(m)
                .map_err(|e| cx.at_value(&p(&["cohort", "mpp_override"]), e))?;
        }
        if let Some(causes) = &c.causes {
            let at = p(&["cohort", "causes"]);
            if !causes.contains_key(&1) {
                return Err(cx.at_value(
                    &at,
                    "cohort.causes must declare code 1 (the event of interest), e.g. `{1: metastasis, 2: death}`",
                ));
            }
            if causes.contains_key(&0) {
                return Err(cx.at_value(&at, "cohort.causes: code 0 means censored and cannot name a cause"));
            }
            let mut names = BTreeSet::new();
            for (k, name) in causes {
                if name.trim().is_empty() || !names.insert(name.as_str()) {
                    return Err(cx.at_value(
                        &at,
                        format!("cohort.causes: cause {k} needs a non-empty name used by no other cause"),
                    ));
                }
            }
        }
        for cat in &c.categorical {
            if !c.covariates.contains(cat) {
                return Err(cx.at_value(
                    &p(&["cohort", "categorical"]),
                    format!("categorical covariate `{cat}` is not listed in cohort.covariates"),
                ));
            }
        }
    }
    let cohort: Option<Cohort> = raw.cohort.map(Cohort::from);

    // stages: names, kinds, needs, publish; kind parameters kept raw for per-arm checks
    struct Base {
        name: String,
        kind: &'static dyn StageKind,
        needs: Vec<String>,
        publish: Option<String>,
        slurm: Option<slurm::Resources>,
        params: serde_json::Map<String, Json>,
    }
    let mut bases: Vec<Base> = Vec::new();
    // `SPATIA_NEEDS_<NAME>` of every stage so far → the first stage with it
    let mut env_names: HashMap<String, usize> = HashMap::new();
    let kinds: Vec<&str> = stages::REGISTRY.iter().map(|k| k.name()).collect();
    if raw.stages.is_empty() {
        return Err(cx.at_value(&p(&["stages"]), "`stages` is empty; expected at least one stage"));
    }
    for (k, v) in &raw.stages {
        let Some(name) = k.as_str() else {
            return Err(cx.at_value(&p(&["stages"]), "stage names must be strings"));
        };
        let sp = p(&["stages", name]);
        if let Err(why) = check_name(name) {
            return Err(cx.at_key(&sp, format!("stage name `{}` {why}", crate::util::display_id(name))));
        }
        // `SPATIA_NEEDS_<NAME>` must name one stage
        let env = crate::util::env_name(name);
        if let Some(&other) = env_names.get(&env) {
            return Err(cx.at_key(
                &sp,
                format!(
                    "stage names `{}` and `{name}` both map to the environment variable SPATIA_NEEDS_{env}; rename one (names must differ in more than case and `-`, `_`, `.`)",
                    bases[other].name
                ),
            ));
        }
        env_names.insert(env, bases.len());
        let Yaml::Mapping(m) = v else {
            return Err(cx.at_value(&sp, format!("stage `{name}` must be a mapping with a `kind`")));
        };
        let kind_name = match m.get("kind") {
            None => {
                return Err(
                    cx.at_key(&sp, format!("stage `{name}` has no `kind`; expected one of: {}", kinds.join(", ")))
                )
            }
            Some(Yaml::String(s)) => s.clone(),
            Some(_) => return Err(cx.at_value(&[sp.clone(), p(&["kind"])].concat(), "`kind` must be a string")),
        };
        let Some(kind) = stages::lookup(&kind_name) else {
            let hint = did_you_mean(&kind_name, &kinds).map(|s| format!("did you mean `{s}`? ")).unwrap_or_default();
            return Err(cx.at_value(
                &[sp.clone(), p(&["kind"])].concat(),
                format!("unknown stage kind `{kind_name}`; {hint}known kinds: {}", kinds.join(", ")),
            ));
        };
        let needs = match m.get("needs") {
            None | Some(Yaml::Null) => Vec::new(),
            Some(Yaml::String(s)) => vec![s.clone()],
            Some(Yaml::Sequence(seq)) => {
                let mut out = Vec::new();
                for (i, n) in seq.iter().enumerate() {
                    match n.as_str() {
                        Some(s) => out.push(s.to_string()),
                        None => {
                            let mut at = [sp.clone(), p(&["needs"])].concat();
                            at.push(Seg::Index(i));
                            return Err(cx.at_value(&at, "`needs` entries must be stage names (strings)"));
                        }
                    }
                }
                out
            }
            Some(_) => {
                return Err(cx.at_value(&[sp.clone(), p(&["needs"])].concat(), "`needs` must be a list of stage names"))
            }
        };
        let publish = match m.get("publish") {
            None | Some(Yaml::Null) => None,
            Some(Yaml::String(s)) => {
                check_output(&cx, &root, s, &[sp.clone(), p(&["publish"])].concat())?;
                Some(s.clone())
            }
            Some(_) => {
                return Err(cx.at_value(&[sp.clone(), p(&["publish"])].concat(), "`publish` must be a directory path"))
            }
        };
        let slurm = match m.get("slurm") {
            None | Some(Yaml::Null) => None,
            Some(v) => Some(
                slurm::Resources::from_json(&crate::util::yaml_to_json(v))
                    .map_err(|why| cx.at_value(&[sp.clone(), p(&["slurm"])].concat(), why))?,
            ),
        };
        let mut params = serde_json::Map::new();
        for (pk, pv) in m {
            let Some(pk) = pk.as_str() else { continue };
            if raw::COMMON_KEYS.contains(&pk) {
                continue;
            }
            params.insert(pk.to_string(), crate::util::yaml_to_json(pv));
        }
        bases.push(Base { name: name.to_string(), kind, needs, publish, slurm, params });
    }

    // needs name stages; no self-needs; no cycles
    let index: HashMap<&str, usize> = bases.iter().enumerate().map(|(i, b)| (b.name.as_str(), i)).collect();
    let names: Vec<&str> = bases.iter().map(|b| b.name.as_str()).collect();
    for b in &bases {
        for (i, n) in b.needs.iter().enumerate() {
            if !index.contains_key(n.as_str()) {
                let mut at = p(&["stages", &b.name, "needs"]);
                at.push(Seg::Index(i));
                let hint = did_you_mean(n, &names).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
                return Err(cx.at_value(
                    &at,
                    format!(
                        "stage `{}` needs `{n}`, which is not a stage{hint}; stages are: {}",
                        b.name,
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(
        &bases.iter().map(|b| b.needs.iter().map(|n| index[n.as_str()]).collect()).collect::<Vec<Vec<usize>>>(),
    ) {
        let path: Vec<&str> = cycle.iter().map(|&i| bases[i].name.as_str()).collect();
        let first = &bases[cycle[0]];
        return Err(
            cx.at_value(&p(&["stages", &first.name, "needs"]), format!("`needs` form a cycle: {}", path.join(" → ")))
        );
    }

    // matrix
    let mut axes: Vec<(String, usize, Vec<String>, Vec<Json>)> = Vec::new(); // (path, stage idx, param path, values)
    if let Some(mx) = &raw.matrix {
        for (k, v) in mx {
            let Some(key) = k.as_str() else {
                return Err(cx.at_value(&p(&["matrix"]), "matrix keys must be `stage.parameter` paths"));
            };
            if key == MATRIX_EXCLUDE {
                continue;
            }
            let at = p(&["matrix", key]);
            // stage names may contain `.`: the longest stage name followed by `.` wins
            let stage = names
                .iter()
                .filter(|n| key.len() > n.len() && key.starts_with(*n) && key.as_bytes()[n.len()] == b'.')
                .max_by_key(|n| n.len())
                .copied()
                .unwrap_or_else(|| key.split('.').next().unwrap_or(""));
            let rest: Vec<String> =
                key.get(stage.len() + 1..).map(|r| r.split('.').map(str::to_string).collect()).unwrap_or_default();
            let Some(&si) = index.get(stage) else {
                let hint = did_you_mean(stage, &names).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
                return Err(cx.at_key(&at, format!("matrix path `{key}` names no stage `{stage}`{hint}")));
            };
            if rest.is_empty() {
                return Err(
                    cx.at_key(&at, format!("matrix path `{key}` names no parameter; expected `stage.parameter`"))
                );
            }
            if raw::COMMON_KEYS.contains(&rest[0].as_str()) {
                return Err(
                    cx.at_key(&at, format!("matrix path `{key}` names `{}`, which is not a parameter", rest[0]))
                );
            }
            let mut cur = Json::Object(bases[si].params.clone());
            for seg in &rest {
                match cur.get(seg) {
                    Some(x) => cur = x.clone(),
                    None => {
                        return Err(cx.at_key(
                            &at,
                            format!(
                                "matrix path `{key}` names no parameter: stage `{stage}` has no `{}` (give it a default value in the stage)",
                                rest.join(".")
                            ),
                        ))
                    }
                }
            }
            let Yaml::Sequence(vals) = v else {
                return Err(cx.at_value(&at, format!("matrix `{key}` must be a list of values, one per arm")));
            };
            if vals.is_empty() {
                return Err(cx.at_value(&at, format!("matrix `{key}` is an empty list; expected at least one value")));
            }
            axes.push((key.to_string(), si, rest, vals.iter().map(crate::util::yaml_to_json).collect()));
        }
    }

    // the number of arms, bounded before anything is expanded
    let mut n_arms: u64 = 1;
    for (_, _, _, vals) in &axes {
        n_arms = n_arms.saturating_mul(vals.len() as u64);
    }
    if let Err(e) = crate::bounds::MATRIX_ARMS.check_u64(n_arms) {
        let counts: Vec<String> = axes.iter().map(|(_, _, _, v)| v.len().to_string()).collect();
        let shown = if n_arms == u64::MAX { "more than 18446744073709551615".to_string() } else { n_arms.to_string() };
        return Err(cx.at_key(
            &p(&["matrix"]),
            format!(
                "the matrix has {shown} arms ({}); {e}: split the study into several specs or use fewer values",
                counts.join(" × ")
            ),
        ));
    }
    // arms: cartesian product, first axis slowest, less the excluded combinations
    let mut combos: Vec<Vec<usize>> = vec![Vec::new()];
    for (_, _, _, vals) in &axes {
        combos = combos.into_iter().flat_map(|c| (0..vals.len()).map(move |i| [c.clone(), vec![i]].concat())).collect();
    }
    if let Some(ex) = raw.matrix.as_ref().and_then(|m| m.get(MATRIX_EXCLUDE)) {
        combos = exclude_combos(combos, ex, &axes, &cx)?;
    }
    let mut arms = Vec::new();
    let mut seen_names = BTreeSet::new();
    for combo in combos {
        let mut params: Vec<serde_json::Map<String, Json>> = bases.iter().map(|b| b.params.clone()).collect();
        let mut settings = Vec::new();
        let mut origin: HashMap<(usize, String), Vec<Seg>> = HashMap::new();
        for (ai, &vi) in combo.iter().enumerate() {
            let (key, si, rest, vals) = &axes[ai];
            set_path(&mut params[*si], rest, vals[vi].clone());
            settings.push((key.clone(), vals[vi].clone()));
            let mut at = p(&["matrix", key]);
            at.push(Seg::Index(vi));
            origin.insert((*si, rest[0].clone()), at);
        }
        let mut name = if settings.is_empty() {
            "main".to_string()
        } else {
            settings
                .iter()
                .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), compact(v)))
                .collect::<Vec<_>>()
                .join(",")
        };
        if !seen_names.insert(name.clone()) {
            name = format!("{name}#{}", arms.len());
            seen_names.insert(name.clone());
        }
        // the first error in declaration order wins
        let check = |(i, b): (usize, &Base)| -> Result<StageDecl, SpecError> {
            let ccx = CheckCx { stage: &b.name, cohort: cohort.as_ref(), experiment: &raw.name, spec_file: &spec_rel };
            let checked = b.kind.check(&Json::Object(params[i].clone()), &ccx).map_err(|e| {
                let first = match e.path.first() {
                    Some(Seg::Key(k)) => k.clone(),
                    _ => String::new(),
                };
                let msg = format!("stage `{}` ({}): {}", b.name, b.kind.name(), e.msg);
                if let Some(at) = origin.get(&(i, first)) {
                    return cx.at_value(at, format!("{msg} (value from the matrix, arm `{name}`)"));
                }
                let at = [p(&["stages", &b.name]), e.path.clone()].concat();
                if e.msg.starts_with("unknown field") {
                    cx.at_key(&at, msg)
                } else {
                    cx.at_value(&at, msg)
                }
            })?;
            Ok(StageDecl {
                name: b.name.clone(),
                kind: b.kind,
                needs: b.needs.clone(),
                params_canonical: crate::util::canonical_json(&checked.params),
                checked,
                publish: b.publish.clone(),
                slurm: b.slurm.clone(),
            })
        };
        // Parameter checks are pure and cheap (about a microsecond a stage): a thread pool would
        // cost a no-op run more to start than it saves, except on very large specs.
        let checked: Vec<Result<StageDecl, SpecError>> = if bases.len() >= PARALLEL_CHECKS_FROM {
            use rayon::prelude::*;
            bases.par_iter().enumerate().map(check).collect()
        } else {
            bases.iter().enumerate().map(check).collect()
        };
        let mut decls = Vec::with_capacity(checked.len());
        for d in checked {
            let d = d?;
            for inp in &d.checked.inputs {
                let at = if inp.absolute { inp.at.clone() } else { [p(&["stages", &d.name]), inp.at.clone()].concat() };
                check_input(&cx, &root, &inp.path, &at)?;
            }
            decls.push(std::sync::Arc::new(d));
        }
        arms.push(Arm { name, settings, stages: decls });
    }

    paths::check_publish(&cx, &root, &file, cohort.as_ref(), &arms)?;

    Ok(Spec {
        name: raw.name,
        seed: raw.seed,
        description: raw.description,
        file,
        root,
        cohort,
        arms,
        text_digest: blake3::hash(text.as_bytes()).to_hex().to_string(),
        display: display.to_string(),
        text: text.to_string(),
    })
}

/// The rule for experiment and stage names (they name directories, run records, report pages
/// and environment variables): 1 to 64 characters, ASCII letters, digits, `-`, `_` and `.`, not
/// starting with `.`. Returns what is wrong.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty; expected 1 to 64 characters of letters, digits, `-`, `_`, `.`".into());
    }
    if name.chars().count() > 64 {
        return Err(format!("is {} characters long; expected at most 64", name.chars().count()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!(
            "contains {}; expected only letters, digits, `-`, `_`, `.`",
            if c.is_ascii_graphic() { format!("`{c}`") } else { format!("U+{:04X}", c as u32) }
        ));
    }
    if name.starts_with('.') {
        return Err("starts with `.`; expected a letter, digit, `-` or `_` first".into());
    }
    Ok(())
}

fn set_path(m: &mut serde_json::Map<String, Json>, path: &[String], v: Json) {
    if path.len() == 1 {
        m.insert(path[0].clone(), v);
    } else if let Some(Json::Object(inner)) = m.get_mut(&path[0]) {
        set_path(inner, &path[1..], v);
    }
}

/// The matrix key that lists combinations to leave out (`matrix.exclude`): each entry maps some
/// matrix paths to one of their values, and removes every arm having all of them.
const MATRIX_EXCLUDE: &str = "exclude";

/// `combos` without those `matrix.exclude` names; an entry naming a path that is not a matrix
/// axis, a value not among the axis' values, or excluding no arm is an error (a typo would
/// otherwise keep arms silently), as is excluding every arm.
fn exclude_combos(
    combos: Vec<Vec<usize>>,
    ex: &Yaml,
    axes: &[(String, usize, Vec<String>, Vec<Json>)],
    cx: &Ctx,
) -> Result<Vec<Vec<usize>>, SpecError> {
    let at = p(&["matrix", MATRIX_EXCLUDE]);
    let Yaml::Sequence(entries) = ex else {
        return Err(cx.at_value(&at, "`matrix.exclude` must be a list of mappings `stage.parameter: value`"));
    };
    let mut rules: Vec<Vec<(usize, usize)>> = Vec::new(); // per entry: (axis, value index)
    for (e, entry) in entries.iter().enumerate() {
        let mut eat = at.clone();
        eat.push(Seg::Index(e));
        let Yaml::Mapping(m) = entry else {
            return Err(cx.at_value(&eat, "an exclusion must be a mapping `stage.parameter: value`"));
        };
        let mut rule = Vec::new();
        for (k, v) in m {
            let key = k.as_str().unwrap_or("");
            let Some(ai) = axes.iter().position(|a| a.0 == key) else {
                let known: Vec<&str> = axes.iter().map(|a| a.0.as_str()).collect();
                return Err(
                    cx.at_value(&eat, format!("`{key}` is not a matrix path; expected one of {}", known.join(", ")))
                );
            };
            let value = crate::util::yaml_to_json(v);
            let Some(vi) = axes[ai].3.iter().position(|x| *x == value) else {
                return Err(cx.at_value(
                    &eat,
                    format!("`{key}: {}` is not one of the matrix values of `{key}`", compact(&value)),
                ));
            };
            rule.push((ai, vi));
        }
        if rule.is_empty() || !combos.iter().any(|c| rule.iter().all(|&(a, v)| c[a] == v)) {
            return Err(cx.at_value(&eat, "this exclusion removes no arm"));
        }
        rules.push(rule);
    }
    let kept: Vec<Vec<usize>> =
        combos.into_iter().filter(|c| !rules.iter().any(|r| r.iter().all(|&(a, v)| c[a] == v))).collect();
    if kept.is_empty() {
        return Err(cx.at_value(&at, "`matrix.exclude` removes every arm"));
    }
    Ok(kept)
}

/// Short label of a matrix value: scalars as written, lists joined with `+`.
fn compact(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Array(a) => a.iter().map(compact).collect::<Vec<_>>().join("+"),
        other => crate::util::canonical_json(other),
    }
}

fn did_you_mean<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (strsim::jaro_winkler(word, o), *o))
        .filter(|(s, _)| *s > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, o)| o)
}

/// Returns a cycle (first node repeated at the end) if the graph has one.
fn find_cycle(adj: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut g = petgraph::graph::DiGraph::<(), ()>::new();
    let nodes: Vec<_> = (0..adj.len()).map(|_| g.add_node(())).collect();
    for (i, ns) in adj.iter().enumerate() {
        for &n in ns {
            g.add_edge(nodes[i], nodes[n], ());
        }
    }
    let start = match petgraph::algo::toposort(&g, None) {
        Ok(_) => return None,
        Err(c) => c.node_id().index(),
    };
    // DFS from start for a path back to start
    fn dfs(adj: &[Vec<usize>], cur: usize, target: usize, seen: &mut Vec<bool>, path: &mut Vec<usize>) -> bool {
        for &n in &adj[cur] {
            if n == target {
                path.push(n);
                return true;
            }
            if !seen[n] {
                seen[n] = true;
                path.push(n);
                if dfs(adj, n, target, seen, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut seen = vec![false; adj.len()];
    let mut path = vec![start];
    if dfs(adj, start, start, &mut seen, &mut path) {
        // start the reported cycle at its first-declared stage
        path.pop();
        let m = path.iter().enumerate().min_by_key(|(_, &v)| v).map(|(i, _)| i).unwrap_or(0);
        path.rotate_left(m);
        path.push(path[0]);
        Some(path)
    } else {
        Some(vec![start, start])
    }
}

fn check_input(cx: &Ctx, root: &Path, rel: &str, at: &[Seg]) -> Result<(), SpecError> {
    let full = root.join(rel);
    // inside the project or a declared data root, after symlinks and `..`
    let dr = cx.roots.get_or_init(|| roots::DataRoots::load(root));
    let dr = dr.as_ref().map_err(|e| SpecError::At {
        file: e.file.display().to_string(),
        line: e.line,
        col: e.col,
        msg: e.msg.clone(),
    })?;
    if let Err(why) = dr.check(&full) {
        return Err(cx.at_value(at, format!("input file `{}`: {why}", crate::util::display_id(rel))));
    }
    match std::fs::metadata(&full) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => {
            Err(cx.at_value(at, format!("`{}`: expected a file, found a directory ({})", render(at), full.display())))
        }
        Err(_) => Err(cx.at_value(
            at,
            format!(
                "input file `{rel}` does not exist (looked for {}; paths are relative to the project root {})",
                full.display(),
                root.display()
            ),
        )),
    }
}

/// An output path must be relative and stay inside the project directory.
fn check_output(cx: &Ctx, root: &Path, rel: &str, at: &[Seg]) -> Result<(), SpecError> {
    let path = Path::new(rel);
    let mut depth: i64 = 0;
    let mut escapes = rel.is_empty();
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => escapes = true,
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
        }
        if depth < 0 {
            escapes = true;
        }
    }
    if escapes || depth == 0 {
        return Err(cx.at_value(
            at,
            format!(
                "output path `{rel}` escapes the project directory {}; expected a relative path inside it",
                root.display()
            ),
        ));
    }
    Ok(())
}
