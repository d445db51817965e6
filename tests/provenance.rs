//! Provenance for reviewers and auditors, through the binary on a small generated cohort: the
//! page and every output are byte-identical from an empty cache whatever `--jobs`; the
//! run-dependent facts are in the published sidecar, not in the page; `spatia reproduce`
//! proves a run and names the node and file of a flipped byte.
mod common;
use common::{last_run, project, spatia, summary, text};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SPEC: &str = r#"name: prov
seed: 7
cohort:
  clinical: demo-data/clinical.csv
  slides: demo-data/slides.csv
  id: patient_id
  time: dmfs_days
  event: dm
  causes: {1: metastasis, 2: death}
  covariates: [age, grade, ki67]
stages:
  ingest: {kind: ingest}
  tiles: {kind: tile, needs: [ingest], mpp: 0.5, size: 64, min_tissue: 0.2}
  ihc: {kind: stain, needs: [tiles]}
  feats: {kind: extract, needs: [tiles], encoder: handcrafted}
  model: {kind: train, needs: [feats, ihc], model: cox, modalities: [HE, IHC, clinical], folds: 3, inner_folds: 3, pca: 2}
  eval: {kind: evaluate, needs: [model], horizons: [1095, 1825], bootstrap: 20}
  calib: {kind: calibrate, needs: [model], horizon: 1825, bins: 3}
  report: {kind: report, needs: [ingest, tiles, ihc, eval, calib], qc_slides: 2, publish: reports/prov}
matrix:
  model.modalities: [[clinical], [HE, IHC, clinical]]
"#;

/// Every file under `dir`, relative path → bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn rec(base: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rec(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    rec(dir, dir, &mut out);
    out
}

fn keys(run: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["stage"].as_str().unwrap().to_string(), n["key"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn out_dir(cache: &Path, key: &str) -> PathBuf {
    cache.join("entries").join(&key[..2]).join(key).join("out")
}

fn run_dir(d: &Path) -> PathBuf {
    let mut runs: Vec<_> = std::fs::read_dir(d.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    runs.sort();
    runs.pop().unwrap()
}

#[test]
fn page_is_byte_identical_whatever_jobs_and_reproduce_names_a_flipped_byte() {
    let d = project();
    let o = spatia(d.path(), &["demo", "generate", "--patients", "24", "--size", "1536", "--out", "demo-data"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(d.path().join("prov.yaml"), SPEC).unwrap();

    // one worker, from an empty cache
    let o = spatia(d.path(), &["run", "prov.yaml", "--jobs", "1", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let run1 = last_run(d.path());
    let first_run = run_dir(d.path());
    let published = tree(&d.path().join("reports/prov"));
    // the default worker count, into another empty cache
    let o = spatia(d.path(), &["run", "prov.yaml", "--cache", "cache2", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(summary(&o)["cached"].as_u64(), Some(0), "an empty cache: {}", text(&o));
    let run2 = last_run(d.path());
    assert_eq!(keys(&run1), keys(&run2));
    let mut compared = 0;
    for (stage, key) in keys(&run1) {
        let (a, b) = (tree(&out_dir(&d.path().join("cache"), &key)), tree(&out_dir(&d.path().join("cache2"), &key)));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{stage}: files");
        for (p, bytes) in &a {
            assert!(bytes == &b[p], "{stage} {key}: {} differs between --jobs 1 and the default", p.display());
            compared += 1;
        }
    }
    assert!(compared > 20, "{compared} files compared");

    // the page carries no duration; the published sidecar does, and the page links it
    let html = String::from_utf8(published[Path::new("index.html")].clone()).unwrap();
    assert!(
        html.contains("<code>run-facts.json<&#x2f;code>") || html.contains("<code>run-facts.json</code>"),
        "the page names its sidecar"
    );
    assert!(!html.contains(" s</td>"), "no duration on the page");
    let facts: serde_json::Value =
        serde_json::from_slice(&published[Path::new("run-facts.json")]).expect("run-facts.json beside the page");
    assert_eq!(facts["format"], "spatia-run-facts/1");
    assert!(facts["upstream"].as_array().unwrap().iter().all(|u| u["duration_s"].as_f64().is_some()));
    assert!(!String::from_utf8_lossy(&published[Path::new("run-facts.json")]).contains("P001"), "no patient id");

    // reproduce the first run with another worker count: every node identical
    let rd = first_run.to_string_lossy().to_string();
    let runs_before = std::fs::read_dir(d.path().join("runs")).unwrap().count();
    let o = spatia(d.path(), &["reproduce", &rd, "--jobs", "2", "--json"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {t}"));
    let n = keys(&run1).len() as u64;
    assert_eq!((v["nodes"].as_u64(), v["identical"].as_u64()), (Some(n), Some(n)), "{t}");
    assert_eq!((v["differ"].as_u64(), v["missing"].as_u64()), (Some(0), Some(0)), "{t}");
    assert!(!d.path().join(".spatia-reproduce").exists(), "the scratch directory is removed");
    assert_eq!(std::fs::read_dir(d.path().join("runs")).unwrap().count(), runs_before, "no run record added");

    // flip one byte of a cached figure: reproduce names the node and the file, exit 1
    let report_key = run1["arms"]["modalities=clinical"]["report"].as_str().unwrap().to_string();
    let km = out_dir(&d.path().join("cache"), &report_key).join("figures/km.svg");
    let mut bytes = std::fs::read(&km).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&km, &bytes).unwrap();
    let o = spatia(d.path(), &["reproduce", &rd, "--jobs", "1"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("DIFFERS") && t.contains("report"), "{t}");
    assert!(t.contains("figures/km.svg") && t.contains("first differing byte at offset 100"), "{t}");
    assert!(t.contains(&format!("{} node(s): {} identical, 1 differ, 0 could not run", n, n - 1)), "{t}");
    // from the published folder too (it records its key)
    let o = spatia(d.path(), &["reproduce", "reports/prov", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let bad: Vec<&serde_json::Value> =
        v["details"].as_array().unwrap().iter().filter(|x| x["result"] == "differs").collect();
    assert_eq!(bad.len(), 1, "{v}");
    assert_eq!(
        (bad[0]["stage"].as_str(), bad[0]["files"][0]["path"].as_str()),
        (Some("report"), Some("figures/km.svg"))
    );

    // a stat snapshot that no longer notices the change (as on a file system whose stamps
    // cannot be trusted): `run` reuses the entry; `run --rehash` re-hashes it and recomputes it
    {
        use std::os::unix::fs::MetadataExt;
        let entry = out_dir(&d.path().join("cache"), &report_key).parent().unwrap().to_path_buf();
        let mut snap: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(entry.join("stat.json")).unwrap()).unwrap();
        let m = std::fs::symlink_metadata(&km).unwrap();
        let ns = |s: i64, n: i64| s * 1_000_000_000 + n;
        snap["figures/km.svg"] =
            serde_json::json!([m.size(), ns(m.mtime(), m.mtime_nsec()), ns(m.ctime(), m.ctime_nsec()), m.ino()]);
        std::fs::write(entry.join("stat.json"), snap.to_string()).unwrap();
    }
    let o = spatia(d.path(), &["run", "prov.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(summary(&o)["ran"].as_u64(), Some(0), "the stamps match: reused, {}", text(&o));
    let o = spatia(d.path(), &["run", "prov.yaml", "--rehash", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(summary(&o)["ran"].as_u64(), Some(1), "only the report recomputed: {}", text(&o));
    let warned = last_run(d.path())["nodes"].as_array().unwrap().iter().any(|n| {
        n["stage"] == "report"
            && n["warning"].as_str().is_some_and(|w| w.contains("figures/km.svg") && w.contains("damaged"))
    });
    assert!(warned, "the run record names the file found by --rehash");
    assert!(std::fs::read(&km).unwrap() != bytes, "recomputed");

    // lineage of the page's Harrell C of the [HE, IHC, clinical] arm: the clinical table's and
    // a slide's blake3, the slide pseudonymised as on the page, that arm's model only
    let b3 = |f: &str| {
        let o = spatia(d.path(), &["hash", f]);
        String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_string()
    };
    let (clinical, slide) = (b3("demo-data/clinical.csv"), b3("demo-data/slides/P001_HE.tif"));
    let target = "reports/prov/index.html#arm=modalities=HE+IHC+clinical:harrell_c";
    let o = spatia(d.path(), &["lineage", target, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["target"], target);
    assert!(v["value"]["estimate"].as_f64().is_some_and(|c| (0.0..=1.0).contains(&c)), "{}", v["value"]);
    let chain = v["chain"].as_array().unwrap();
    assert_eq!(chain[0]["kind"], "evaluate", "the number's origin first");
    let inputs: Vec<&serde_json::Value> = chain.iter().flat_map(|n| n["inputs"].as_array().unwrap()).collect();
    assert!(inputs.iter().any(|i| i["blake3"] == clinical.as_str()), "the clinical table's blake3");
    let s = inputs.iter().find(|i| i["blake3"] == slide.as_str()).expect("a slide's blake3");
    assert!(s["path"].as_str().unwrap().starts_with("<slide P-"), "pseudonymised: {}", s["path"]);
    let json = String::from_utf8_lossy(&o.stdout);
    assert!(!json.contains("P001"), "no patient id in lineage output");
    let models: Vec<_> = chain.iter().filter(|n| n["kind"] == "train").collect();
    assert_eq!(models.len(), 1, "that arm's model only");
    assert_eq!(models[0]["params"]["modalities"], serde_json::json!(["HE", "IHC", "clinical"]));
    for n in chain {
        for k in ["stage", "kind", "key", "params", "inputs", "versions"] {
            assert!(!n[k].is_null(), "{k} in every node");
        }
    }
    // opting in shows the identifiers; the tree and DOT name the same digests
    let o = spatia(d.path(), &["lineage", target, "--show-ids"]);
    assert!(o.status.success(), "{}", text(&o));
    let tree = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(tree.contains("P001_HE.tif") && tree.contains(&clinical) && tree.contains(&slide), "{tree}");
    let o = spatia(d.path(), &["lineage", target, "--dot"]);
    let dot = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(dot.starts_with("digraph lineage {") && dot.contains(&slide[..12]), "{dot}");
    // a metric path into metrics.json gives the same number
    let eval_key = chain[0]["key"].as_str().unwrap();
    let metrics = out_dir(&d.path().join("cache"), eval_key).join("metrics.json");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    let i = m["arms"].as_array().unwrap().iter().position(|a| a["arm"] == "modalities=HE+IHC+clinical").unwrap();
    let t2 = format!("{}:arms[{i}].harrell_c", metrics.display());
    let o = spatia(d.path(), &["lineage", &t2, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v2: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v2["value"], v["value"]);
    assert_eq!(v2["chain"].as_array().unwrap().len(), chain.len());

    // explain: the exact component that changed, with both values / digests
    let spec2 = SPEC.replace("bootstrap: 20", "bootstrap: 21");
    std::fs::write(d.path().join("prov.yaml"), spec2).unwrap();
    let csv = d.path().join("demo-data/clinical.csv");
    let mut c = std::fs::read(&csv).unwrap();
    c.extend_from_slice(b"\n");
    std::fs::write(&csv, &c).unwrap();
    let clinical2 = b3("demo-data/clinical.csv");
    let o = spatia(d.path(), &["explain", "prov.yaml", "eval"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("parameter bootstrap: 20 → 21"), "{}", text(&o));
    let o = spatia(d.path(), &["explain", "prov.yaml", "ingest", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ch = &v[0]["changes"];
    assert_eq!(ch.as_array().map(|a| a.len()), Some(1), "{v}");
    assert_eq!(
        (ch[0]["component"].as_str(), ch[0]["what"].as_str()),
        (Some("input"), Some("clinical demo-data/clinical.csv"))
    );
    assert_eq!((ch[0]["old"].as_str(), ch[0]["new"].as_str()), (Some(clinical.as_str()), Some(clinical2.as_str())));

    // verify covers published folders: a changed byte in the published page is named
    let page = d.path().join("reports/prov/index.html");
    let mut html = std::fs::read(&page).unwrap();
    html[10] ^= 1;
    std::fs::write(&page, &html).unwrap();
    let o = spatia(d.path(), &["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("reports/prov: published folder: index.html differs from what was published"),
        "{}",
        text(&o)
    );
}
