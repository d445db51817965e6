//! `spatia export ro-crate` through the binary on a small generated cohort: the crate describes
//! every node as an action with its files' blake3, copies the report and small outputs, hides
//! patient ids and slide file names unless `--show-ids`, refuses a foreign non-empty `--out`,
//! and passes the RO-Crate community validator (`rocrate-validator`, roc-validator 0.13) at the
//! REQUIRED level for the Process, Workflow and Provenance Run Crate 0.5 profiles, offline.
//!
//! Validator absent (scripts/setup-rocrate.sh installs it): the validation is skipped with a
//! loud message unless `SPATIA_REQUIRE_ROCRATE` is set (then it fails). It runs with
//! `--offline` against the cache the set-up script seeded from assets/rocrate/, with the HTTP
//! proxies pointed at a closed port and, where `unshare -n` works, with no network at all.
mod common;
use common::{last_run, project, spatia, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const SPEC: &str = r#"name: roc
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
  feats: {kind: extract, needs: [tiles], encoder: handcrafted}
  model: {kind: train, needs: [feats], model: cox, modalities: [HE, clinical], folds: 3, inner_folds: 3, pca: 1}
  eval: {kind: evaluate, needs: [model], horizons: [1095], bootstrap: 5}
  report: {kind: report, needs: [ingest, tiles, eval], qc_slides: 1, publish: reports/roc}
"#;

const PROFILES: [&str; 3] = ["process-run-crate", "workflow-run-crate", "provenance-run-crate"];

/// The validator: `$SPATIA_ROCRATE_VALIDATOR`, else the venv scripts/setup-rocrate.sh makes.
fn validator() -> Option<PathBuf> {
    let p = match std::env::var_os("SPATIA_ROCRATE_VALIDATOR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let venv = std::env::var_os("SPATIA_ROCRATE_VENV").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/spatia/roc-validator-0.13")
            });
            venv.join("bin/rocrate-validator")
        }
    };
    if p.is_file() {
        return Some(p);
    }
    if std::env::var_os("SPATIA_REQUIRE_ROCRATE").is_some() {
        panic!("SPATIA_REQUIRE_ROCRATE is set but {} is missing (run scripts/setup-rocrate.sh)", p.display());
    }
    eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! rocrate: SKIPPING the RO-Crate validator: {} is missing.", p.display());
    eprintln!("!!! Run scripts/setup-rocrate.sh, or set SPATIA_REQUIRE_ROCRATE=1 to make this a failure.");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
    None
}

/// Runs the validator on `krate` for `profile`, offline; prints its report; returns the REQUIRED issues.
fn validate(v: &Path, krate: &Path, profile: &str, work: &Path) -> Vec<String> {
    // the seeded cache sits in the venv (scripts/rocrate-seed-cache.py)
    let cache = v.parent().and_then(|b| b.parent()).unwrap().join("http_cache");
    assert!(
        cache.with_extension("sqlite").is_file(),
        "{}: the validator's offline cache is missing (run scripts/setup-rocrate.sh)",
        cache.display()
    );
    let report = work.join(format!("validator-{profile}.json"));
    let no_net = Command::new("unshare").args(["-n", "true"]).status().is_ok_and(|s| s.success());
    let mut cmd = if no_net {
        let mut c = Command::new("unshare");
        c.arg("-n").arg(v);
        c
    } else {
        Command::new(v)
    };
    cmd.args(["-y", "--disable-color", "validate", "--offline", "--no-paging", "-p", profile, "-f", "json", "-o"])
        .arg(&report)
        .arg("--cache-path")
        .arg(&cache)
        .arg(krate)
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "")
        .env("COLUMNS", "120");
    let o = cmd.output().expect("spawn rocrate-validator");
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    eprintln!(
        "---- rocrate-validator -p {profile} ({}network namespace) exit {:?}\n{out}",
        if no_net { "no-" } else { "own " },
        o.status.code()
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{e}: {out}")))
        .unwrap_or_else(|e| panic!("validator report not JSON: {e}: {out}"));
    eprintln!("statistics: {}", r["statistics"]);
    assert_eq!(r["validation_settings"]["offline"], true);
    let issues: Vec<String> = r["issues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["severity"] == "REQUIRED")
        .map(|i| format!("{} {}: {}", i["check"]["identifier"], i["violatingEntity"], i["message"]))
        .collect();
    let checks = r["statistics"]["total_checks"].as_u64().unwrap_or(0);
    assert!(checks > 20, "{profile}: only {checks} checks ran: {out}");
    if issues.is_empty() {
        assert_eq!(r["passed"], true, "{out}");
    }
    issues
}

fn graph(krate: &Path) -> (String, Vec<Value>) {
    let t = std::fs::read_to_string(krate.join("ro-crate-metadata.json")).unwrap();
    let v: Value = serde_json::from_str(&t).unwrap();
    (t, v["@graph"].as_array().unwrap().clone())
}

fn entity<'a>(g: &'a [Value], id: &str) -> &'a Value {
    g.iter().find(|e| e["@id"] == id).unwrap_or_else(|| panic!("no entity {id}"))
}

fn types(e: &Value) -> Vec<String> {
    match &e["@type"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

#[test]
fn a_run_exports_as_a_provenance_run_crate_that_the_validator_accepts_offline() {
    let d = project();
    let o = spatia(
        d.path(),
        &["demo", "generate", "--patients", "16", "--size", "1024", "--stains", "HE", "--out", "demo-data"],
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(d.path().join("roc.yaml"), SPEC).unwrap();
    let o = spatia(d.path(), &["run", "roc.yaml", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(d.path());
    let mut runs: Vec<_> = std::fs::read_dir(d.path().join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    runs.sort();
    let rd = runs.pop().unwrap().to_string_lossy().to_string();

    let o = spatia(
        d.path(),
        &[
            "export",
            "ro-crate",
            &rd,
            "--out",
            "crate",
            "--agent",
            "A. Reviewer",
            "--license",
            "https://spdx.org/licenses/CC-BY-4.0",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let krate = d.path().join("crate");
    let (t, g) = graph(&krate);

    // the workflow: the spec, copied byte for byte
    let root = entity(&g, "./");
    let wf = root["mainEntity"]["@id"].as_str().unwrap();
    assert_eq!(std::fs::read(krate.join(wf)).unwrap(), SPEC.as_bytes());
    for ty in ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"] {
        assert!(types(entity(&g, wf)).contains(&ty.to_string()), "{ty}");
    }
    let conforms: Vec<&str> = root["conformsTo"].as_array().unwrap().iter().filter_map(|c| c["@id"].as_str()).collect();
    assert!(conforms.contains(&"https://w3id.org/ro/wfrun/provenance/0.5"), "{conforms:?}");

    // one CreateAction per node, instrument its kind's tool, times from the record
    let nodes: std::collections::BTreeSet<&str> =
        run["nodes"].as_array().unwrap().iter().map(|n| n["key"].as_str().unwrap()).collect();
    let actions: Vec<&Value> =
        g.iter().filter(|e| e["@id"].as_str().is_some_and(|i| i.starts_with("#action-"))).collect();
    assert_eq!(actions.len(), nodes.len());
    assert!(actions.iter().all(|a| a["@type"] == "CreateAction" && a["startTime"].is_string()));
    assert!(actions.iter().all(|a| a["agent"]["@id"].is_string()), "the agent on every action");
    let report_key = run["arms"].as_object().unwrap().values().next().unwrap()["report"].as_str().unwrap();
    let report = entity(&g, &format!("#action-{report_key}"));
    assert_eq!(report["instrument"]["@id"], "#tool-report");
    assert!(entity(&g, "#tool-report")["softwareVersion"].as_str().unwrap().contains("spatia"));
    // the report is copied, with its blake3
    let page = report["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["@id"].as_str())
        .find(|i| i.ends_with("/index.html"))
        .expect("the report's page among its results");
    let bytes = std::fs::read(krate.join(page)).expect("the page is in the crate");
    assert_eq!(entity(&g, page)["blake3"], blake3::hash(&bytes).to_hex().as_str());
    assert!(report["object"].as_array().unwrap().iter().any(|o| {
        let id = o["@id"].as_str().unwrap_or_default();
        id.starts_with("#pv-") && entity(&g, id)["name"] == "qc_slides"
    }));
    // inputs referenced, not copied: the clinical table by file URI with its digest
    let clinical = g
        .iter()
        .find(|e| e["@id"].as_str().is_some_and(|i| i.starts_with("file://") && i.ends_with("/clinical.csv")))
        .expect("the clinical table as a file:// entity");
    let want = blake3::hash(&std::fs::read(d.path().join("demo-data/clinical.csv")).unwrap()).to_hex().to_string();
    assert_eq!(clinical["blake3"], want.as_str());

    // no patient id or slide file name unless asked
    let patients: Vec<String> = common::csv_rows(&d.path().join("demo-data/clinical.csv"))
        .into_iter()
        .map(|r| r["patient_id"].clone())
        .collect();
    assert!(patients.len() == 16 && patients.iter().all(|p| !p.is_empty()));
    for p in &patients {
        assert!(!t.contains(p.as_str()), "patient id {p} in the crate's metadata");
    }
    assert!(t.contains("#slide-P-0"), "slides by pseudonym");
    for e in walk(&krate) {
        let rel = e.strip_prefix(&krate).unwrap().to_string_lossy().to_string();
        assert!(patients.iter().all(|p| !rel.contains(p.as_str())), "{rel} names a patient");
        let b = std::fs::read(&e).unwrap();
        for p in &patients {
            assert!(!b.windows(p.len()).any(|w| w == p.as_bytes()), "{rel} holds patient id {p}");
        }
    }

    // never over a directory Spatia did not write; its own crate is replaced
    std::fs::create_dir(d.path().join("mine")).unwrap();
    std::fs::write(d.path().join("mine/notes.txt"), "keep").unwrap();
    let o = spatia(d.path(), &["export", "ro-crate", &rd, "--out", "mine"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not empty"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(d.path().join("mine/notes.txt")).unwrap(), "keep");
    assert_eq!(std::fs::read_dir(d.path().join("mine")).unwrap().count(), 1);
    let o = spatia(d.path(), &["export", "ro-crate", &rd, "--out", "crate", "--show-ids", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let (t2, _) = graph(&krate);
    assert!(patients.iter().any(|p| t2.contains(p.as_str())), "--show-ids shows the ids");
    let o = spatia(
        d.path(),
        &[
            "export",
            "ro-crate",
            &rd,
            "--out",
            "crate",
            "--agent",
            "A. Reviewer",
            "--license",
            "https://spdx.org/licenses/CC-BY-4.0",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(graph(&krate).0, t, "the same run exports to the same metadata");

    // the community validator, offline, REQUIRED level, the three profiles
    let Some(v) = validator() else { return };
    let mut failed = Vec::new();
    for p in PROFILES {
        let issues = validate(&v, &krate, p, d.path());
        eprintln!("{p}: {} REQUIRED issue(s)", issues.len());
        failed.extend(issues.into_iter().map(|i| format!("{p}: {i}")));
    }
    assert!(failed.is_empty(), "REQUIRED issues:\n{}", failed.join("\n"));
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
