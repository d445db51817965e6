//! Stage kinds. Each kind is one file implementing [`StageKind`] plus one line in [`REGISTRY`].
//!
//! A kind validates its own parameters into a typed struct (the checked form of the YAML),
//! declares the files it reads and whether it fans out per cohort item, and runs into a fresh
//! output directory. Kinds never see the cache, keys of other stages or the DAG: the executor
//! hands them directories.
use crate::cohort::Cohort;
use crate::contracts::Output;
use crate::docpath::Seg;
use crate::slide::Stain;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::any::Any;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use crate::cohort::Item;

pub mod calibrate;
pub mod command;
pub mod evaluate;
pub mod extract;
pub mod ingest;
pub mod maps;
pub mod report;
pub mod stain;
pub mod tile;
pub mod train;
pub mod train_mil;

/// Every registered kind. Adding a kind: one file, one entry here.
pub static REGISTRY: &[&dyn StageKind] = &[
    &ingest::Ingest,
    &command::Command,
    &tile::Tile,
    &stain::Stain,
    &maps::Maps,
    &extract::Extract,
    &train::Train,
    &evaluate::Evaluate,
    &calibrate::Calibrate,
    &report::Report,
];

/// Looks a kind up by name.
pub fn lookup(name: &str) -> Option<&'static dyn StageKind> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

/// How many times a stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fanout {
    /// Once.
    Single,
    /// Once per patient of the cohort's clinical table (one shard each).
    PerPatient,
    /// Once per slide of the cohort's slide manifest.
    PerSlide,
}

/// A file a stage reads, as written in the spec (relative to the project root).
#[derive(Debug, Clone)]
pub struct InputRef {
    /// Stable name of the input in the key (`clinical`, `inputs[0]` …), never an absolute path.
    pub role: String,
    /// Path relative to the project root.
    pub path: String,
    /// Where it is written in the spec, relative to the stage's mapping (or absolute from the
    /// document root when `absolute` is set), for error messages.
    pub at: Vec<Seg>,
    pub absolute: bool,
}

/// Result of parameter validation.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Resolved parameters, defaults filled in: this is what the key covers.
    pub params: Value,
    /// The same parameters as the kind's typed struct, handed to its `run` ([`RunCx::typed`]).
    pub typed: Typed,
    pub inputs: Vec<InputRef>,
    pub fanout: Fanout,
    /// The spec's `seed` is part of the key (stages that draw random numbers).
    pub uses_seed: bool,
    /// For per-slide stages: only slides of these stains (None: every slide).
    pub stains: Option<Vec<Stain>>,
}

impl Checked {
    /// A stage that runs once, reads no files and draws no random numbers.
    pub fn single(params: Value) -> Checked {
        Checked {
            params,
            typed: Typed::none(),
            inputs: Vec::new(),
            fanout: Fanout::Single,
            uses_seed: false,
            stains: None,
        }
    }

    /// Keeps the typed parameters `params` was resolved from, for the kind's `run`.
    pub fn with_typed<P: Any + Send + Sync>(mut self, typed: P) -> Checked {
        self.typed = Typed::new(typed);
        self
    }
}

/// A kind's checked parameters as its own typed struct: what `check` validated, kept so that
/// `run` does not parse the resolved JSON again. Not part of the key (the key covers
/// [`Checked::params`], the same values resolved).
#[derive(Clone)]
pub struct Typed {
    value: Option<Arc<dyn Any + Send + Sync>>,
    type_name: &'static str,
}

impl Typed {
    /// Typed parameters of type `P`.
    pub fn new<P: Any + Send + Sync>(value: P) -> Typed {
        Typed { value: Some(Arc::new(value)), type_name: std::any::type_name::<P>() }
    }

    /// No typed parameters (a kind whose `run` reads none).
    pub fn none() -> Typed {
        Typed { value: None, type_name: "nothing" }
    }

    /// The parameters as a `P`, or None when they are of another type.
    pub fn get<P: Any>(&self) -> Option<&P> {
        self.value.as_deref().and_then(|v| v.downcast_ref::<P>())
    }
}

impl std::fmt::Debug for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Typed({})", self.type_name)
    }
}

/// A parameter error: where (path inside the stage's mapping) and what was expected.
#[derive(Debug, Clone)]
pub struct ParamError {
    pub path: Vec<Seg>,
    pub msg: String,
}

impl ParamError {
    pub fn at(path: Vec<Seg>, msg: impl Into<String>) -> ParamError {
        ParamError { path, msg: msg.into() }
    }
}

/// What a kind may look at while checking.
pub struct CheckCx<'a> {
    pub stage: &'a str,
    pub cohort: Option<&'a Cohort>,
    /// The spec's `name` (the experiment).
    pub experiment: &'a str,
    /// The spec file, relative to the project root (as a user would type it).
    pub spec_file: &'a str,
}

/// A needed stage's output, as handed to a running stage.
#[derive(Debug, Clone)]
pub struct Need {
    pub name: String,
    pub kind: String,
    /// One directory for a single stage; one per item (item id, dir) for a fanned-out one.
    /// For a kind that gathers arms ([`StageKind::gathers_arms`]): the needed stage's
    /// directories of every arm, arm by arm (a node shared by arms appears once per arm for a
    /// single stage, once in all for a fanned-out one).
    pub dirs: Vec<(Option<String>, PathBuf)>,
    /// The arm each entry of `dirs` comes from (same length as `dirs`).
    pub arms: Vec<String>,
}

impl Need {
    /// Whether the needed stage is of kind `kind` (a constant of [`crate::contracts`]).
    pub fn is(&self, kind: &str) -> bool {
        self.kind == kind
    }

    /// The need's directories as handles of the contract `T`, each with its item (per-item
    /// stages) and its arm (empty when the executor gave none); `None` when the needed stage
    /// is not of kind `T::KIND`.
    pub fn outputs<T: Output>(&self) -> Option<Vec<(Option<&str>, &str, T)>> {
        self.is(T::KIND).then(|| {
            self.dirs
                .iter()
                .enumerate()
                .map(|(i, (item, dir))| (item.as_deref(), self.arms.get(i).map_or("", String::as_str), T::at(dir)))
                .collect()
        })
    }
}

/// The record of a stage upstream of the running one (for kinds that want lineage).
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Arms sharing the node.
    pub arms: Vec<String>,
    /// Its cache record (key, kind, params, inputs, timings, versions).
    pub record: crate::cache::Record,
}

/// A resolved input file.
#[derive(Debug, Clone)]
pub struct ResolvedInput {
    pub role: String,
    pub path: PathBuf,
    pub digest: String,
}

/// What a running stage gets.
pub struct RunCx<'a> {
    pub stage: &'a str,
    pub key: &'a str,
    pub params: &'a Value,
    /// The typed parameters the kind's `check` kept ([`Checked::typed`]); read with
    /// [`RunCx::typed`].
    pub typed: &'a Typed,
    /// Fresh, empty output directory: everything in it becomes the cache entry.
    pub out: &'a Path,
    /// Scratch directory beside `out`, discarded with the temporary entry.
    pub scratch: &'a Path,
    pub root: &'a Path,
    pub needs: &'a [Need],
    pub inputs: &'a [ResolvedInput],
    pub item: Option<&'a Item>,
    pub seed: u64,
    pub cohort: Option<&'a Cohort>,
    /// Every slide of the cohort's manifest (empty without one).
    pub slides: &'a [Item],
    /// Every transitive upstream node's record, in topological order (filled only for kinds
    /// whose [`StageKind::wants_lineage`] is true; empty otherwise).
    pub upstream: &'a [Upstream],
    pub log: &'a Mutex<std::fs::File>,
}

impl RunCx<'_> {
    /// Appends a line to the stage's log (bidi and control characters other than line
    /// breaks and tabs shown as `<U+XXXX>`, so an id quoted in it shows as what it is).
    pub fn log(&self, msg: &str) {
        if let Ok(mut f) = self.log.lock() {
            let _ = writeln!(f, "{}", crate::util::display_text(msg));
        }
    }

    /// The stage's checked parameters as the kind's typed struct `P` (what its `check` kept
    /// with [`Checked::with_typed`]); an error naming the stage and both types otherwise.
    pub fn typed<P: Any>(&self) -> anyhow::Result<&P> {
        self.typed.get::<P>().ok_or_else(|| {
            anyhow::anyhow!(
                "stage `{}`: its checked parameters are {}, not the {} its kind runs with",
                self.stage,
                self.typed.type_name,
                std::any::type_name::<P>()
            )
        })
    }

    /// The needs of kind `kind` (a constant of [`crate::contracts`]), in spec order.
    pub fn needs_of<'s>(&'s self, kind: &'s str) -> impl Iterator<Item = &'s Need> + 's {
        self.needs.iter().filter(move |n| n.is(kind))
    }

    /// The only need of a kind that reads exactly one stage of kind `T::KIND` and nothing else
    /// (`evaluate`, `calibrate`), or an error naming what the stage has instead.
    pub fn sole_need<T: Output>(&self, consumer: &str) -> anyhow::Result<&Need> {
        match self.needs {
            [n] if n.is(T::KIND) => Ok(n),
            _ => {
                let found: Vec<String> = self.needs.iter().map(|n| format!("`{}` ({})", n.name, n.kind)).collect();
                let found = if found.is_empty() { "none".to_string() } else { format!("[{}]", found.join(", ")) };
                anyhow::bail!(
                    "stage `{}`: `{consumer}` needs exactly one stage of kind `{}`, found {found}",
                    self.stage,
                    T::KIND
                )
            }
        }
    }

    /// The resolved input with this role.
    pub fn input(&self, role: &str) -> anyhow::Result<&ResolvedInput> {
        self.inputs
            .iter()
            .find(|i| i.role == role)
            .ok_or_else(|| anyhow::anyhow!("stage `{}` has no input `{role}`", self.stage))
    }
}

/// One stage kind.
pub trait StageKind: Send + Sync {
    /// The name used as `kind:` in specs.
    fn name(&self) -> &'static str;
    /// Implementation version, folded into every key: bump it when outputs change.
    fn version(&self) -> u32;
    /// One line for `--help`-style listings.
    fn about(&self) -> &'static str;
    /// Validates the kind-specific parameters (everything but `kind`, `needs`, `publish`).
    fn check(&self, params: &Value, cx: &CheckCx) -> Result<Checked, ParamError>;
    /// For a single stage feeding fanned-out shards: whether each shard may depend only on its
    /// own item's slice of this stage (so adding one item re-runs only that item's shards).
    fn item_scoped(&self) -> bool {
        false
    }
    /// Whether one node of this kind sees every arm of the matrix: its needs resolve to the
    /// needed stages of all arms (labelled by arm in [`Need::arms`]), and its key covers them
    /// all. Used by `evaluate` (arm comparison) and `report` (one page per experiment).
    fn gathers_arms(&self) -> bool {
        false
    }
    /// Whether the running stage gets the records of every upstream node in [`RunCx::upstream`].
    fn wants_lineage(&self) -> bool {
        false
    }
    /// Whether [`StageKind::plan_slide`] wants the facts of every slide the stage runs for
    /// (read from each slide's header when the DAG is built).
    fn plans_slides(&self) -> bool {
        false
    }
    /// Checks the resolved parameters against one slide at plan time, for limits that depend
    /// on the data (a tile µm/px finer than the slide's own, too many tiles). The error's path
    /// is inside the stage's mapping.
    fn plan_slide(&self, _params: &Value, _slide: &SlideFacts) -> Result<(), ParamError> {
        Ok(())
    }
    /// How `spatia reproduce` compares a recomputed entry of this kind with the one in `out`:
    /// `None`, bit for bit (the default: every CPU computation is deterministic whatever the
    /// worker and thread counts); `Some(rel)` where `out` says it was computed where bit
    /// identity cannot hold (a CUDA device): numbers in JSON and CSV files compared with this
    /// relative tolerance, and so for everything downstream.
    fn reproduce_tolerance(&self, _out: &std::path::Path) -> Option<f64> {
        None
    }
    /// Produces the outputs into `cx.out`.
    fn run(&self, cx: &RunCx) -> anyhow::Result<()>;
}

/// What a plan-time check knows of a slide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlideFacts {
    /// Level-0 size in pixels.
    pub width: u64,
    pub height: u64,
    /// Level-0 µm/px (the manifest's or the cohort's override when given, else the file's;
    /// the mean of x and y).
    pub mpp: f64,
}

/// Deserialises a kind's typed parameters, mapping serde's errors to a path and message.
/// Integral floats are read as integers (`bootstrap: 1e3` is 1000; `repeats: 1e12` is then
/// refused by its range, not by its type).
pub fn typed<T: DeserializeOwned>(params: &Value) -> Result<T, ParamError> {
    let mut params = params.clone();
    crate::util::normalize_numbers(&mut params);
    serde_path_to_error::deserialize::<_, T>(&params).map_err(|e| {
        let mut path: Vec<Seg> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                _ => None,
            })
            .collect();
        let mut msg = e.inner().to_string();
        if (msg.starts_with("invalid type") || msg.starts_with("invalid value")) && !path.is_empty() {
            // name the parameter, and say what a Rust type means
            for (rust, words) in [
                ("expected usize", "expected a whole number ≥ 0"),
                ("expected u32", "expected a whole number ≥ 0"),
                ("expected u64", "expected a whole number ≥ 0"),
                ("expected f64", "expected a number"),
                ("expected f32", "expected a number"),
            ] {
                if let Some(head) = msg.strip_suffix(rust) {
                    msg = format!("{head}{words}");
                }
            }
            msg = format!("`{}`: {msg}", crate::docpath::render(&path));
        }
        if let Some(rest) = msg.strip_prefix("unknown field `") {
            if let Some(end) = rest.find('`') {
                let field = &rest[..end];
                if path.last() != Some(&Seg::Key(field.to_string())) {
                    path.push(Seg::Key(field.to_string()));
                }
            }
        }
        ParamError { path, msg }
    })
}

/// Serialises resolved parameters back to JSON (with integral floats normalised).
pub fn resolved<T: serde::Serialize>(p: &T) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    crate::util::normalize_numbers(&mut v);
    v
}

/// Checks an integer parameter against its documented range ([`crate::bounds`]).
pub fn in_range_usize(at: Vec<Seg>, r: &crate::bounds::Range, v: usize) -> Result<(), ParamError> {
    r.check_usize(v).map_err(|m| ParamError::at(at, m))
}

/// Checks a real parameter against its documented range ([`crate::bounds`]).
pub fn in_range_f64(at: Vec<Seg>, r: &crate::bounds::Range, v: f64) -> Result<(), ParamError> {
    r.check_f64(v).map_err(|m| ParamError::at(at, m))
}
