//! Property test of spec compilation: generated and mutated specs (the shipped experiments and
//! one spec per stage kind, with keys, values, structure, numbers and strings changed, text cut
//! and spliced, plus random YAML documents) never make `compile_str` panic, and every error it
//! returns carries a location (`file:line:col` with both ≥ 1).
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_yaml_ng::{Mapping, Value as Y};
use spatia::spec::{compile_str, SpecError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Valid specs the mutations start from.
fn seeds() -> Vec<String> {
    let ex = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments");
    let mut v: Vec<String> = ["demo.yaml", "gse7390.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(Path::new(ex).join(f)).expect("shipped experiment"))
        .collect();
    v.push(
        "name: kinds\nseed: 3\ncohort:\n  clinical: c.csv\n  slides: s.csv\n  time: t\n  event: e\n  covariates: [age, grade]\n  categorical: [grade]\n  mpp_override: 0.5\n  missing: drop\nstages:\n  ingest: {kind: ingest}\n  tiles: {kind: tile, needs: [ingest], mpp: 1.0, size: 224, min_tissue: 0.3, stains: [HE, KI67], tissue: {threshold: 10, min_object_mm2: 0.1, min_hole_mm2: 0.2}}\n  ihc: {kind: stain, needs: [tiles], dab_threshold: 0.1, tissue_od: 0.05, stains: [KI67]}\n  feats: {kind: extract, needs: [tiles], encoder: handcrafted, batch: 16, workers: 2, precision: f16}\n  pre: {kind: extract, needs: [tiles], encoder: precomputed}\n  model: {kind: train, needs: [feats, ihc], modalities: [HE, stain, clinical, genes], blocks: {genes: {prefix: g}}, folds: 3, inner_folds: 3, repeats: 2, penalty: auto, penalties: [0.1, 1], pca: 3}\n  eval: {kind: evaluate, needs: [model], horizons: [365, 730], bootstrap: 50, ci: 0.9, groups: tertiles}\n  calib: {kind: calibrate, needs: [model], horizon: 730, bins: 4, ci: 0.9, recalibrate: false}\n  sh: {kind: command, needs: [eval], cmd: 'ls', inputs: [c.csv], shell: sh, foreach: patient, publish: out/sh}\n  report: {kind: report, needs: [eval, calib], title: T, qc_slides: 2, show_patient_ids: false, publish: out/report}\nmatrix:\n  tiles.size: [224, 256]\n  model.penalty: [auto, 0.5]\n"
            .to_string(),
    );
    v.push("name: m\nstages:\n  a: {kind: command, cmd: 'echo a', shell: bash}\n  b.c: {kind: command, cmd: 'echo b', needs: [a]}\nmatrix:\n  a.cmd: ['echo 1', 'echo 2', 'echo 3']\n  a.shell: [bash, sh]\n  b.c.cmd: [x, y]\n".to_string());
    v
}

/// A project root where the seeds' input files exist, so compilation gets past them.
fn root() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    let r = d.path().to_path_buf();
    for f in
        ["demo-data/clinical.csv", "demo-data/slides.csv", "data/gse7390/breast_cancer_gse7390.csv", "c.csv", "s.csv"]
    {
        let p = r.join(f);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, "patient_id,time,event\n").expect("write");
    }
    std::fs::write(r.join("spatia.toml"), "").expect("write");
    (d, r)
}

/// Strings a user (or an attacker) might write.
fn strings() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", "..", ".", "/", "a/b", "../../x", "/etc/passwd", "x\u{202e}y", "a\0b", "a-b", "a_b", "A_B", " ", "\t",
            "kind", "needs", "publish", "command", "tile", "ingest", "extract", "train", "evaluate", "calibrate", "report",
            "stain", "auto", "cox", "HE", "KI67", "clinical", "IHC", "patient", "slide", "handcrafted", "precomputed", "@row",
            "1e12", "-1", "NaN", ".nan", ".inf", "1000000000000", "modalities=clinical", "ü", "🧫",
        ]).prop_map(str::to_string),
        1 => "[a-zA-Z0-9_.\\-]{0,12}",
        1 => any::<String>().prop_map(|s| s.chars().take(40).collect()),
    ]
}

/// Keys: the spec's own vocabulary, mostly.
fn keys() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "name", "seed", "description", "cohort", "stages", "matrix", "kind", "needs", "publish", "clinical", "slides",
            "id", "time", "event", "covariates", "categorical", "missing", "mpp_override", "mpp", "size", "min_tissue",
            "stains", "tissue", "threshold", "encoder", "batch", "workers", "precision", "torchscript", "modalities",
            "folds", "repeats", "inner_folds", "penalty", "penalties", "pca", "blocks", "horizons", "bootstrap", "ci",
            "reference", "groups", "horizon", "bins", "recalibrate", "cmd", "inputs", "foreach", "shell", "title",
            "qc_slides", "arm", "model.modalities", "tiles.mpp", "eval.bootstrap", "a.cmd", "model.x.y", "causes",
            "competing", "model.competing",
        ]).prop_map(str::to_string),
        1 => strings(),
    ]
}

fn numbers() -> impl Strategy<Value = Y> {
    prop_oneof![
        prop::sample::select(vec![
            0i64,
            1,
            -1,
            2,
            7,
            16,
            100,
            1024,
            1025,
            100_000,
            100_001,
            4_294_967_296,
            1_000_000_000_000,
            i64::MAX,
            i64::MIN
        ])
        .prop_map(|i| Y::Number(i.into())),
        any::<u64>().prop_map(|u| Y::Number(u.into())),
        any::<i64>().prop_map(|i| Y::Number(i.into())),
        prop::sample::select(vec![
            0.0f64,
            -0.0,
            0.0001,
            0.05,
            0.5,
            0.9999,
            1.0,
            1.5,
            1e12,
            1e308,
            -1e308,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            5e-324
        ])
        .prop_map(|f| Y::Number(f.into())),
        any::<f64>().prop_map(|f| Y::Number(f.into())),
    ]
}

fn scalars() -> impl Strategy<Value = Y> {
    prop_oneof![
        1 => Just(Y::Null),
        1 => any::<bool>().prop_map(Y::Bool),
        3 => numbers(),
        3 => strings().prop_map(Y::String),
    ]
}

/// Random YAML values (scalars, lists, mappings), a few levels deep.
fn values() -> impl Strategy<Value = Y> {
    scalars().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Y::Sequence),
            prop::collection::vec((keys(), inner), 0..6).prop_map(|kv| {
                let mut m = Mapping::new();
                for (k, v) in kv {
                    m.insert(Y::String(k), v);
                }
                Y::Mapping(m)
            }),
        ]
    })
}

/// One change to a document: `at` picks a node (pre-order, modulo the node count).
#[derive(Debug, Clone)]
enum Op {
    Set { at: usize, v: Y },
    Delete { at: usize },
    Insert { at: usize, key: String, v: Y },
    Rename { at: usize, key: String },
    Graft { from: usize, to: usize },
    Number { at: usize, v: Y },
}

fn ops() -> impl Strategy<Value = Op> {
    let at = || any::<usize>();
    prop_oneof![
        3 => (at(), scalars()).prop_map(|(at, v)| Op::Set { at, v }),
        1 => (at(), values()).prop_map(|(at, v)| Op::Set { at, v }),
        2 => at().prop_map(|at| Op::Delete { at }),
        2 => (at(), keys(), values()).prop_map(|(at, key, v)| Op::Insert { at, key, v }),
        2 => (at(), keys()).prop_map(|(at, key)| Op::Rename { at, key }),
        1 => (at(), at()).prop_map(|(from, to)| Op::Graft { from, to }),
        3 => (at(), numbers()).prop_map(|(at, v)| Op::Number { at, v }),
    ]
}

fn count(v: &Y) -> usize {
    1 + match v {
        Y::Sequence(s) => s.iter().map(count).sum(),
        Y::Mapping(m) => m.values().map(count).sum(),
        _ => 0,
    }
}

/// The node at pre-order index `i` (0 is the root).
fn node_mut<'a>(v: &'a mut Y, i: &mut usize) -> Option<&'a mut Y> {
    if *i == 0 {
        return Some(v);
    }
    *i -= 1;
    match v {
        Y::Sequence(s) => s.iter_mut().find_map(|c| node_mut(c, i)),
        Y::Mapping(m) => m.values_mut().find_map(|c| node_mut(c, i)),
        _ => None,
    }
}

fn at_mut(doc: &mut Y, at: usize) -> &mut Y {
    let mut i = at % count(doc);
    node_mut(doc, &mut i).expect("index within the count")
}

fn apply(doc: &mut Y, op: &Op) {
    match op {
        Op::Set { at, v } => *at_mut(doc, *at) = v.clone(),
        Op::Number { at, v } => {
            // prefer a number or scalar: walk forward to the next scalar
            let n = count(doc);
            for k in 0..n {
                let node = at_mut(doc, at.wrapping_add(k));
                if !matches!(node, Y::Mapping(_) | Y::Sequence(_)) {
                    *node = v.clone();
                    return;
                }
            }
        }
        Op::Delete { at } => match at_mut(doc, *at) {
            Y::Mapping(m) if !m.is_empty() => {
                let k = m.keys().nth(at % m.len()).cloned();
                if let Some(k) = k {
                    m.remove(&k);
                }
            }
            Y::Sequence(s) if !s.is_empty() => {
                s.remove(at % s.len());
            }
            _ => {}
        },
        Op::Insert { at, key, v } => match at_mut(doc, *at) {
            Y::Mapping(m) => {
                m.insert(Y::String(key.clone()), v.clone());
            }
            Y::Sequence(s) => s.push(v.clone()),
            _ => {}
        },
        Op::Rename { at, key } => {
            if let Y::Mapping(m) = at_mut(doc, *at) {
                if !m.is_empty() {
                    let old = m.keys().nth(at % m.len()).cloned();
                    if let Some(old) = old {
                        if let Some(v) = m.remove(&old) {
                            m.insert(Y::String(key.clone()), v);
                        }
                    }
                }
            }
        }
        Op::Graft { from, to } => {
            let v = at_mut(doc, *from).clone();
            *at_mut(doc, *to) = v;
        }
    }
}

/// A text-level change (syntax errors, truncation, splices).
#[derive(Debug, Clone)]
enum TextOp {
    None,
    Cut { pos: usize, len: usize },
    Insert { pos: usize, s: String },
    Truncate { pos: usize },
}

fn text_ops() -> impl Strategy<Value = TextOp> {
    prop_oneof![
        6 => Just(TextOp::None),
        1 => (any::<usize>(), 0usize..20).prop_map(|(pos, len)| TextOp::Cut { pos, len }),
        1 => (any::<usize>(), prop_oneof![
            prop::sample::select(vec![":", "- ", "{", "}", "[", "]", "\n", "  ", "&a ", "*a", "!!str ", "? ", "|", ">", "#", "'", "\"", "\t", "\u{feff}", "%YAML 1.2\n---\n", "...\n", "---\n"]).prop_map(str::to_string),
            "[ -~]{0,8}",
        ]).prop_map(|(pos, s)| TextOp::Insert { pos, s }),
        1 => any::<usize>().prop_map(|pos| TextOp::Truncate { pos }),
    ]
}

fn char_boundary(s: &str, pos: usize) -> usize {
    let mut p = if s.is_empty() { 0 } else { pos % (s.len() + 1) };
    while !s.is_char_boundary(p) {
        p -= 1;
    }
    p
}

fn apply_text(mut s: String, op: &TextOp) -> String {
    match op {
        TextOp::None => s,
        TextOp::Cut { pos, len } => {
            let a = char_boundary(&s, *pos);
            let b = char_boundary(&s, (a + len).min(s.len()));
            if b > a {
                s.replace_range(a..b, "");
            }
            s
        }
        TextOp::Insert { pos, s: ins } => {
            let a = char_boundary(&s, *pos);
            s.insert_str(a, ins);
            s
        }
        TextOp::Truncate { pos } => {
            let a = char_boundary(&s, *pos);
            s.truncate(a);
            s
        }
    }
}

/// One generated spec text.
fn specs(seeds: Vec<Y>) -> impl Strategy<Value = String> {
    let n = seeds.len();
    let mutated = (0..n, prop::collection::vec(ops(), 1..5), text_ops()).prop_map(move |(i, ops, t)| {
        let mut doc = seeds[i].clone();
        for op in &ops {
            apply(&mut doc, op);
        }
        apply_text(serde_yaml_ng::to_string(&doc).unwrap_or_default(), &t)
    });
    prop_oneof![
        8 => mutated,
        1 => values().prop_map(|v| serde_yaml_ng::to_string(&v).unwrap_or_default()),
        1 => "[ -~\n]{0,200}",
    ]
}

/// Compiles one text; `Ok(true)` when it compiled, `Ok(false)` when it was refused properly.
fn check(text: &str, root: &Path) -> Result<bool, TestCaseError> {
    match compile_str(text, "spec.yaml", root.join("spec.yaml"), root.to_path_buf()) {
        Ok(_) => Ok(true),
        Err(SpecError::Read { .. }) => Ok(false),
        Err(SpecError::At { line, col, msg, .. }) => {
            prop_assert!(line >= 1 && col >= 1, "error without a location ({line}:{col}): {msg}\n--- spec:\n{text}");
            prop_assert!(!msg.is_empty(), "empty message\n--- spec:\n{text}");
            Ok(false)
        }
    }
}

#[test]
fn generated_and_mutated_specs_never_panic_and_errors_have_locations() {
    let (_keep, root) = root();
    let texts = seeds();
    let docs: Vec<Y> = texts.iter().map(|s| serde_yaml_ng::from_str(s).expect("seed parses")).collect();
    // the seeds themselves compile
    for s in &texts {
        compile_str(s, "spec.yaml", root.join("spec.yaml"), root.clone())
            .unwrap_or_else(|e| panic!("seed does not compile: {e}\n{s}"));
    }
    // SPATIA_FUZZ_CASES raises the count for a longer hunt (never below the 10,000 floor)
    let cases = std::env::var("SPATIA_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(10_000u32).max(10_000);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 2_000, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let (ok, err) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let result = runner.run(&specs(docs), |text| {
        let compiled = check(&text, &root)?;
        (if compiled { &ok } else { &err }).fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (ok, err) = (ok.into_inner(), err.into_inner());
    eprintln!("{cases} cases: {ok} specs compiled, {err} refused with a location");
    // the generator must reach past the parser: a fair share of valid specs
    assert!(ok * 20 >= cases as usize, "only {ok} of {cases} generated specs compiled");
}
