//! The `report` stage end to end: a small generated cohort run through the binary (ingest,
//! tile, stain, report), then a full page with evaluate / calibrate outputs fabricated exactly
//! in their documented formats (KM and ROC curves computed from the cohort with the survival
//! module), hostile arm names and patient ids. Both pages are loaded in headless Chromium:
//! no console message, every plot in the DOM, no request outside the page.
//!
//! Chromium absent: the browser checks are skipped with a loud message unless
//! `SPATIA_REQUIRE_CHROMIUM` is set (then they fail). Screenshots land in
//! `target/tmp/report_chromium/`.
mod common;
use common::*;
use spatia::cache::Cache;
use spatia::stages::{Need, RunCx, Upstream};
use spatia::survival::kaplan_meier::KaplanMeier;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const HOSTILE: &str = "<script>alert(1)</script>";

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    if std::env::var_os("SPATIA_REQUIRE_CHROMIUM").is_some() {
        panic!(
            "SPATIA_REQUIRE_CHROMIUM is set but no chromium is on PATH (scripts/setup.sh installs Debian's `chromium`)"
        );
    }
    eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! report_chromium: SKIPPING the browser checks: no chromium on PATH.          !!!");
    eprintln!("!!! Run scripts/setup.sh (installs Debian's chromium) or set                    !!!");
    eprintln!("!!! SPATIA_REQUIRE_CHROMIUM=1 to make this a failure.                            !!!");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
    None
}

/// What the browser saw.
struct Loaded {
    dom: String,
    log: String,
}

/// Loads `page` twice in headless Chromium: `--dump-dom` and `--screenshot` (saved as `shot`).
/// Every host name resolves to nothing, so a request leaving the page would fail and log.
fn load(chrome: &Path, page: &Path, shot: &Path) -> Loaded {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let run = |extra: &[String]| {
        let profile = tempfile::tempdir().unwrap();
        // output to files (a dumped DOM overflows a pipe) and a deadline: a hung browser fails
        // the test instead of hanging it
        let (out_path, err_path) = (profile.path().join("stdout.txt"), profile.path().join("stderr.txt"));
        let mut child = Command::new(chrome)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-extensions",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--enable-logging=stderr",
                "--v=1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .expect("spawn chromium");
        let t0 = std::time::Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if t0.elapsed() > std::time::Duration::from_secs(120) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 120 s on {url}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).to_string();
        let (stdout, stderr) = (read(&out_path), read(&err_path));
        assert!(status.success(), "chromium failed on {url}: {stderr}");
        (stdout, stderr)
    };
    let (dom, log1) = run(&["--dump-dom".to_string()]);
    let (_, log2) = run(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1280,5200".to_string(),
        "--hide-scrollbars".to_string(),
    ]);
    assert!(shot.exists(), "no screenshot written to {}", shot.display());
    Loaded { dom, log: log1 + &log2 }
}

/// No console message (the page has no script: any message is a failed load, a CSP refusal or
/// a parse error), no blocked or failed request.
fn assert_clean(l: &Loaded, what: &str) {
    let bad: Vec<&str> = l
        .log
        .lines()
        // browser-internal fetchers (sign-in, updates) also fail to resolve; only the page's
        // own messages count: Chromium logs them as CONSOLE lines, CSP refusals included
        .filter(|x| x.contains(":CONSOLE") || x.contains("Refused to"))
        .collect();
    assert!(bad.is_empty(), "{what}: console errors / blocked requests in Chromium:\n{}", bad.join("\n"));
    assert!(
        l.dom.contains("<html") && l.dom.contains("id=\"provenance\""),
        "{what}: the DOM has no page: {}",
        &l.dom[..l.dom.len().min(500)]
    );
    // nothing the browser could fetch: every src / href is inline data or an anchor
    for attr in ["src=\"", "href=\""] {
        for (i, _) in l.dom.match_indices(attr) {
            let v = &l.dom[i + attr.len()..];
            assert!(
                v.starts_with("data:") || v.starts_with('#'),
                "{what}: external reference {}…",
                &v[..v.len().min(60)]
            );
        }
    }
    for tag in ["<script", "<link", "<iframe", "<object", "<embed", "@import"] {
        assert!(!l.dom.contains(tag), "{what}: the DOM contains `{tag}`");
    }
    // CSS may only point at inline data (the figures' font)
    for (i, _) in l.dom.match_indices("url(") {
        let v = &l.dom[i + 4..];
        assert!(v.starts_with("data:"), "{what}: CSS url() to {}…", &v[..v.len().min(60)]);
    }
}

/// The checker itself: a page with a script that logs an error and an external image must fail
/// it (otherwise a clean result would mean nothing).
#[test]
fn the_browser_check_catches_console_errors_and_external_requests() {
    let Some(chrome) = chromium() else { return };
    let d = tempfile::tempdir().unwrap();
    let page = d.path().join("bad.html");
    std::fs::write(&page, "<!DOCTYPE html><html><body><div id=\"provenance\"></div><img src=\"http://example.invalid/x.png\"><script>console.error('boom')</script></body></html>").unwrap();
    let l = load(&chrome, &page, &d.path().join("bad.png"));
    let r = std::panic::catch_unwind(|| assert_clean(&l, "bad page"));
    assert!(r.is_err(), "the checker passed a page with a console error and an external image:\n{}", l.log);
    let console: Vec<&str> = l.log.lines().filter(|x| x.contains(":CONSOLE")).collect();
    assert!(console.iter().any(|x| x.contains("boom")), "console.error not seen in the log:\n{}", l.log);
}

fn svg_in(dom: &str, id: &str) -> bool {
    match dom.find(&format!("id=\"{id}\"")) {
        Some(i) => {
            let rest = &dom[i..];
            let end = rest.find("</figure>").unwrap_or(rest.len());
            rest[..end].contains("<svg")
        }
        None => false,
    }
}

fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_chromium");
    std::fs::create_dir_all(&d).unwrap();
    d
}

const SPEC: &str = r#"name: rep
seed: 7
cohort:
  clinical: demo-data/clinical.csv
  slides: demo-data/slides.csv
  id: patient_id
  time: dmfs_days
  event: dm
  causes: {1: metastasis, 2: death}
  covariates: [age, tumor_size_mm, nodes_positive, grade, er, pr, her2, ki67]
stages:
  ingest: {kind: ingest}
  tiles: {kind: tile, needs: [ingest], mpp: 0.5, size: 64, min_tissue: 0.3}
  ihc: {kind: stain, needs: [tiles]}
  page: {kind: report, needs: [ingest, tiles, ihc], qc_slides: 3, title: "QC <b>only</b> & co", publish: reports/rep}
"#;

/// The whole pipeline on a small cohort, two arms: clinical vs HE + IHC + clinical.
const SPEC_FULL: &str = r#"name: e2e
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
  eval: {kind: evaluate, needs: [model], horizons: [1095, 1825], bootstrap: 50, reference: modalities=clinical}
  calib: {kind: calibrate, needs: [model], horizon: 1825, bins: 3}
  report: {kind: report, needs: [ingest, tiles, ihc, eval, calib], qc_slides: 3, publish: reports/e2e}
matrix:
  model.modalities: [[clinical], [HE, IHC, clinical]]
"#;

/// Generates a cohort and runs `spec` (saved as `<name>.yaml`); returns the project.
fn run_project(patients: &str, size: &str, name: &str, spec: &str) -> tempfile::TempDir {
    let d = project();
    let o = spatia(d.path(), &["demo", "generate", "--patients", patients, "--size", size, "--out", "demo-data"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(d.path().join(format!("{name}.yaml")), spec).unwrap();
    let o = spatia(d.path(), &["run", &format!("{name}.yaml"), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    d
}

/// 12 patients, ingest + tile + stain + report.
fn demo_project() -> tempfile::TempDir {
    run_project("12", "1024", "rep", SPEC)
}

fn key_of(run: &serde_json::Value, stage: &str, item: Option<&str>) -> String {
    let v = &run["arms"]["main"][stage];
    match item {
        None => v.as_str().unwrap_or_else(|| panic!("{stage}: {v}")).to_string(),
        Some(i) => v[i].as_str().unwrap_or_else(|| panic!("no shard {i} in {v}")).to_string(),
    }
}

fn patient_ids(clinical: &Path) -> Vec<String> {
    let mut r = csv::Reader::from_path(clinical).unwrap();
    r.records().map(|x| x.unwrap()[0].to_string()).collect()
}

#[test]
fn qc_page_from_the_binary_is_self_contained_pseudonymised_and_loads_cleanly() {
    let d = demo_project();
    let page = d.path().join("reports/rep/index.html");
    let html = std::fs::read_to_string(&page).expect("published index.html");
    // sections present and absent
    assert!(html.contains("id=\"cohort\"") && html.contains("id=\"qc\"") && html.contains("id=\"provenance\""));
    assert!(!html.contains("id=\"performance\""), "no evaluate/calibrate: no performance section");
    // title escaped, regenerate command shown
    assert!(html.contains("QC &lt;b&gt;only&lt;&#x2f;b&gt; &amp; co"), "title not escaped");
    assert!(html.contains("spatia run rep.yaml"));
    // pseudonyms: no patient id of the cohort appears anywhere
    let ids = patient_ids(&d.path().join("demo-data/clinical.csv"));
    assert_eq!(ids.len(), 12);
    for id in &ids {
        assert!(!html.contains(id.as_str()), "patient id {id} leaked into the page");
    }
    assert!(html.contains("P-001") && html.contains("P-012"));
    // slide QC counts and the nuclear labelling index in the QC section
    assert!(html.contains("tissue tile(s) excluded by slide QC") && html.contains("Labelling index"));
    // images embedded: 3 QC cards × 3 images + 3 IHC maps
    // (escaped like every string: `/` is `&#x2f;` in the source, the browser decodes it)
    assert_eq!(html.matches("src=\"data:image&#x2f;png;base64,").count(), 12, "embedded PNGs");
    // provenance: every upstream key is on the page
    let run = last_run(d.path());
    for (what, k) in all_keys(&run, "page") {
        assert!(html.contains(&k), "key {k} of {what} is not on the page");
    }
    assert!(html.contains(&key_of(&run, "page", None)), "the page's own key");
    // the same run again: a cache hit, same bytes
    let o = spatia(d.path(), &["run", "rep.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(summary(&o)["ran"].as_u64(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&page).unwrap(), html);

    let Some(chrome) = chromium() else { return };
    let l = load(&chrome, &page, &shots().join("qc_only.png"));
    assert_clean(&l, "QC page");
    assert_eq!(l.dom.matches("<img").count(), 12);
}

/// Every upstream key of a run's arms (single stages and shards).
fn all_keys(run: &serde_json::Value, skip: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (arm, stages) in run["arms"].as_object().unwrap() {
        for (stage, v) in stages.as_object().unwrap() {
            if stage == skip {
                continue;
            }
            match v {
                serde_json::Value::String(k) => out.push((format!("{arm}/{stage}"), k.clone())),
                o => out.extend(
                    o.as_object()
                        .unwrap()
                        .values()
                        .map(|k| (format!("{arm}/{stage}"), k.as_str().unwrap().to_string())),
                ),
            }
        }
    }
    out
}

#[test]
fn full_pipeline_page_shows_every_plot_from_real_evaluate_and_calibrate() {
    let d = run_project("24", "1536", "e2e", SPEC_FULL);
    let page = d.path().join("reports/e2e/index.html");
    let html = std::fs::read_to_string(&page).expect("published index.html");
    for s in ["cohort", "qc", "performance", "competing", "provenance"] {
        assert!(html.contains(&format!("<section id=\"{s}\">")), "section {s}");
    }
    for f in ["km", "roc", "calibration", "calibration_recalibrated", "forest", "cif"] {
        assert!(d.path().join(format!("reports/e2e/figures/{f}.svg")).exists(), "figures/{f}.svg");
    }
    // the demo cohort declares `causes`: deaths without metastasis are a competing event
    assert!(html.contains("are treated as a <strong>competing event</strong>"), "competing-risks statement");
    // both arms in the tables; the last arm in the figures
    assert!(html.contains("Main figures: arm <strong>modalities=HE+IHC+clinical</strong>"));
    assert!(html.contains("modalities=clinical <span class=\"note\">(reference)</span>"));
    for arm in ["modalities=clinical", "modalities=HE+IHC+clinical"] {
        assert!(html.contains(&format!("<tr><td>{arm}</td><td class=\"num\">1825 d</td>")), "calibration row of {arm}");
    }
    // no patient id; every upstream key of every arm
    for id in patient_ids(&d.path().join("demo-data/clinical.csv")) {
        assert!(!html.contains(id.as_str()), "patient id {id} leaked");
    }
    let run = last_run(d.path());
    for (what, k) in all_keys(&run, "report") {
        assert!(html.contains(&k), "key {k} of {what} is not on the page");
    }

    let Some(chrome) = chromium() else { return };
    let l = load(&chrome, &page, &shots().join("e2e.png"));
    assert_clean(&l, "full pipeline page");
    for id in ["fig-km", "fig-roc", "fig-calibration", "fig-calibration-recalibrated", "fig-forest"] {
        assert!(svg_in(&l.dom, id), "plot {id} missing from the DOM");
    }
}

// ------------------------------------------------------------ fabricated evaluate / calibrate

fn slug(arm: &str) -> String {
    arm.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

struct Cohort {
    time: Vec<f64>,
    event: Vec<bool>,
    risk: Vec<f64>,
}

/// A risk score per patient from the cohort's own covariates (ki67, nodes, grade) plus a
/// per-arm shift in weights, so that arms differ.
fn cohort_with_risk(ingest: &Path, arm_ix: usize) -> Cohort {
    let mut r = csv::Reader::from_path(ingest.join("cohort.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (t, e, k, nd, gr) = (col("time"), col("event"), col("ki67"), col("nodes_positive"), col("grade"));
    let mut c = Cohort { time: vec![], event: vec![], risk: vec![] };
    for rec in r.records() {
        let rec = rec.unwrap();
        let f = |i: usize| rec[i].parse::<f64>().unwrap();
        c.time.push(f(t));
        c.event.push(&rec[e] == "1");
        c.risk.push(f(k) / 20.0 + (1.0 + arm_ix as f64) * 0.1 * f(nd) + 0.3 * f(gr));
    }
    c
}

/// Cumulative/dynamic ROC at `h`: cases die by h, controls survive past h.
fn roc(c: &Cohort, h: f64) -> (Vec<(f64, f64, f64)>, f64) {
    let cases: Vec<f64> = (0..c.time.len()).filter(|&i| c.event[i] && c.time[i] <= h).map(|i| c.risk[i]).collect();
    let controls: Vec<f64> = (0..c.time.len()).filter(|&i| c.time[i] > h).map(|i| c.risk[i]).collect();
    let mut th: Vec<f64> = c.risk.clone();
    th.sort_by(|a, b| b.total_cmp(a));
    th.dedup();
    let mut pts = vec![(0.0, 0.0, f64::INFINITY)];
    for &x in &th {
        let tpr = cases.iter().filter(|&&r| r >= x).count() as f64 / cases.len().max(1) as f64;
        let fpr = controls.iter().filter(|&&r| r >= x).count() as f64 / controls.len().max(1) as f64;
        pts.push((fpr, tpr, x));
    }
    let mut auc = 0.0;
    for &a in &cases {
        for &b in &controls {
            auc += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    (pts, auc / (cases.len() * controls.len()).max(1) as f64)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `metrics.json` + curves for `arms` (the first is the reference), per the contract.
fn fabricate_evaluate(dir: &Path, ingest: &Path, arms: &[&str]) {
    let horizons = [1095.0, 1825.0];
    let ticks = [0.0, 730.0, 1460.0, 2190.0, 2920.0, 3650.0];
    let mut arm_json = Vec::new();
    let mut comparisons = Vec::new();
    for (ai, arm) in arms.iter().enumerate() {
        let c = cohort_with_risk(ingest, ai);
        let s = slug(arm);
        let mut sorted = c.risk.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let cut = sorted[sorted.len() / 2 - 1];
        let mut groups = Vec::new();
        for (label, high) in [("low", false), ("high", true)] {
            let idx: Vec<usize> = (0..c.risk.len()).filter(|&i| (c.risk[i] > cut) == high).collect();
            let t: Vec<f64> = idx.iter().map(|&i| c.time[i]).collect();
            let e: Vec<bool> = idx.iter().map(|&i| c.event[i]).collect();
            let mut csv = String::from("time,survival,lower,upper,at_risk,events,censored\n0,1,1,1,");
            csv += &format!("{},0,0\n", t.len());
            let (at_risk, events) = match KaplanMeier::fit(&t, &e) {
                Ok(km) => {
                    for st in &km.steps {
                        let est = km.estimate_at(st.time);
                        csv += &format!(
                            "{},{},{},{},{},{},{}\n",
                            st.time, st.survival, est.lower, est.upper, st.at_risk, st.events, st.censored
                        );
                    }
                    (ticks.iter().map(|&x| km.at_risk_at(x)).collect::<Vec<_>>(), km.n_events)
                }
                // a group without events: flat at 1
                Err(_) => (ticks.iter().map(|&x| t.iter().filter(|&&ti| ti >= x).count()).collect(), 0),
            };
            write(&dir.join(format!("curves/{s}/km_{label}.csv")), &csv);
            groups.push(serde_json::json!({"label": label, "n": idx.len(), "events": events, "km": format!("curves/{s}/km_{label}.csv"), "at_risk": at_risk}));
        }
        let mut aucs = Vec::new();
        for &h in &horizons {
            let (pts, auc) = roc(&c, h);
            let mut csv = String::from("fpr,tpr,threshold\n");
            for (f, t, th) in pts {
                csv += &format!("{f},{t},{th}\n");
            }
            write(&dir.join(format!("curves/{s}/roc_{h}.csv")), &csv);
            aucs.push(serde_json::json!({"horizon": h, "estimate": auc, "lower": auc - 0.1, "upper": (auc + 0.1).min(1.0), "roc": format!("curves/{s}/roc_{h}.csv")}));
        }
        if ai == 0 {
            // evaluate writes `km: null` for a group without patients
            groups.push(
                serde_json::json!({"label": "mid", "n": 0, "events": 0, "km": null, "at_risk": [0, 0, 0, 0, 0, 0]}),
            );
        }
        let cidx = 0.62 + 0.04 * ai as f64;
        arm_json.push(serde_json::json!({
            "arm": arm, "slug": s, "n": c.time.len(), "events": c.event.iter().filter(|&&e| e).count(), "repeats": 1,
            "harrell_c": {"estimate": cidx, "lower": cidx - 0.12, "upper": cidx + 0.1},
            "uno_c": {"estimate": cidx - 0.01, "lower": cidx - 0.14, "upper": cidx + 0.1, "tau": 1825.0},
            "auc": aucs, "mean_auc": cidx,
            "brier": [{"horizon": 1095.0, "estimate": 0.15, "lower": 0.1, "upper": 0.2}, {"horizon": 1825.0, "estimate": 0.18, "lower": 0.12, "upper": 0.24}],
            "ibs": {"estimate": 0.14, "lower": 0.1, "upper": 0.2, "from": 10.0, "to": 1825.0},
            "risk_groups": {"method": "median", "groups": groups, "at_risk_times": ticks,
                "logrank": {"chi2": 3.1 + ai as f64, "df": 1, "p": 0.08 / (1.0 + ai as f64)},
                "hazard_ratio": {"estimate": 2.1, "lower": 0.8, "upper": 5.5, "p": 0.12}}
        }));
        if ai > 0 {
            comparisons.push(serde_json::json!({"arm": arm, "reference": arms[0], "delta_c": {"estimate": cidx - 0.62, "lower": cidx - 0.72, "upper": cidx - 0.55}, "p": 0.3}));
        }
    }
    let m = serde_json::json!({"schema": 1, "horizons": horizons, "bootstrap": 200, "ci": 0.95, "seed": 7, "reference": arms[0], "groups": "median", "arms": arm_json, "comparisons": comparisons});
    write(&dir.join("metrics.json"), &serde_json::to_string_pretty(&m).unwrap());
}

fn fabricate_calibrate(dir: &Path, arm: &str, shift: f64) {
    let bins: Vec<serde_json::Value> = (0..4)
        .map(|b| {
            let p = 0.08 + 0.12 * b as f64;
            let o = (p + shift * (b as f64 - 1.5)).clamp(0.0, 1.0);
            serde_json::json!({"bin": b, "n": 3, "predicted": p, "observed": o, "lower": (o - 0.2).max(0.0), "upper": (o + 0.25).min(1.0)})
        })
        .collect();
    // calibrate writes non-finite values as null: a bin without a CI
    let mut bins = bins;
    bins[0]["lower"] = serde_json::Value::Null;
    bins[0]["upper"] = serde_json::Value::Null;
    let c = serde_json::json!({"schema": 1, "arm": arm, "horizon": 1825.0, "n": 12, "events": 5, "bins": bins,
        "slope": 0.9, "intercept": 0.05, "ici": 0.04, "e50": 0.03, "e90": 0.08,
        "recalibrated": {"bins": bins, "slope": 1.0, "intercept": 0.0, "ici": 0.02, "e50": 0.01, "e90": 0.05, "folds": [{"repeat": 0, "fold": 0, "a": 0.1, "b": 0.9}]}});
    write(&dir.join("calibration.json"), &serde_json::to_string_pretty(&c).unwrap());
    write(&dir.join("bins.csv"), "bin,n,predicted,observed,lower,upper\n");
}

/// Replaces a patient id in a copied ingest output (cohort.csv and slides.json).
fn copy_ingest_with_id(src: &Path, dst: &Path, old: &str, new: &str) {
    std::fs::create_dir_all(dst).unwrap();
    for f in ["cohort.csv", "cohort.json", "slides.csv", "slides.json"] {
        let t = std::fs::read_to_string(src.join(f)).unwrap();
        std::fs::write(dst.join(f), t.replace(old, new)).unwrap();
    }
}

#[test]
fn full_page_with_every_plot_escapes_hostile_names_and_loads_cleanly() {
    let d = demo_project();
    let run = last_run(d.path());
    let cache = Cache::new(d.path().join("cache"));
    let ingest_real = cache.out_dir(&key_of(&run, "ingest", None));
    let ids = patient_ids(&d.path().join("demo-data/clinical.csv"));
    let victim = ids[0].clone();
    let work = tempfile::tempdir().unwrap();
    let ingest = work.path().join("ingest");
    copy_ingest_with_id(&ingest_real, &ingest, &victim, HOSTILE);

    let arms = ["modalities=clinical", HOSTILE, "modalities=HE+IHC+clinical"];
    let eval_dir = work.path().join("evaluate");
    fabricate_evaluate(&eval_dir, &ingest, &arms);
    let cal_dirs: Vec<PathBuf> = (0..arms.len()).map(|i| work.path().join(format!("calibrate{i}"))).collect();
    for (i, (a, dir)) in arms.iter().zip(&cal_dirs).enumerate() {
        fabricate_calibrate(dir, a, 0.03 * i as f64);
    }

    let item_dirs = |stage: &str| -> Vec<(Option<String>, PathBuf)> {
        run["arms"]["main"][stage]
            .as_object()
            .unwrap()
            .iter()
            .map(|(item, k)| (Some(item.replace(&victim, HOSTILE)), cache.out_dir(k.as_str().unwrap())))
            .collect()
    };
    let all = |n: usize| arms.iter().take(n).map(|a| a.to_string()).collect::<Vec<_>>();
    let tiles = item_dirs("tiles");
    let ihc = item_dirs("ihc");
    let needs = vec![
        Need { name: "ingest".into(), kind: "ingest".into(), dirs: vec![(None, ingest.clone()); 3], arms: all(3) },
        Need { name: "tiles".into(), kind: "tile".into(), arms: vec![arms[0].to_string(); tiles.len()], dirs: tiles },
        Need { name: "ihc".into(), kind: "stain".into(), arms: vec![arms[0].to_string(); ihc.len()], dirs: ihc },
        Need { name: "eval".into(), kind: "evaluate".into(), dirs: vec![(None, eval_dir.clone()); 3], arms: all(3) },
        Need {
            name: "calib".into(),
            kind: "calibrate".into(),
            dirs: cal_dirs.iter().map(|p| (None, p.clone())).collect(),
            arms: all(3),
        },
    ];
    // lineage: the real records of the binary's run (ingest, every tile and stain shard)
    let mut upstream = Vec::new();
    for stage in ["ingest", "tiles", "ihc"] {
        let v = &run["arms"]["main"][stage];
        let keys: Vec<String> = match v {
            serde_json::Value::String(k) => vec![k.clone()],
            o => o.as_object().unwrap().values().map(|k| k.as_str().unwrap().to_string()).collect(),
        };
        for k in keys {
            upstream.push(Upstream { arms: vec!["main".into()], record: cache.record(&k).unwrap() });
        }
    }

    let kind = spatia::stages::lookup("report").expect("report is registered");
    assert!(kind.gathers_arms() && kind.wants_lineage());
    let cx_check = spatia::stages::CheckCx {
        stage: "report",
        cohort: None,
        experiment: HOSTILE,
        spec_file: "experiments/ablation study.yaml",
    };
    let raw = serde_json::json!({"show_patient_ids": true, "qc_slides": 2});
    let checked = kind.check(&raw, &cx_check).unwrap();
    assert_eq!(checked.params["title"], HOSTILE, "title defaults to the experiment");
    assert!(kind.check(&serde_json::json!({"colour": "red"}), &cx_check).is_err(), "unknown fields are refused");

    // checks the (unresolved) parameters and runs the kind as the executor would
    let render = |raw: &serde_json::Value, out: &Path| -> anyhow::Result<()> {
        let checked = kind.check(raw, &cx_check).map_err(|e| anyhow::anyhow!("{}", e.msg))?;
        std::fs::create_dir_all(out).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let log = Mutex::new(std::fs::File::create(work.path().join("log.txt")).unwrap());
        let cx = RunCx {
            stage: "report",
            key: "0123abcd",
            params: &checked.params,
            typed: &checked.typed,
            out,
            scratch: scratch.path(),
            root: d.path(),
            needs: &needs,
            inputs: &[],
            item: None,
            seed: 7,
            cohort: None,
            slides: &[],
            upstream: &upstream,
            log: &log,
        };
        kind.run(&cx)
    };
    let out = work.path().join("out");
    render(&raw, &out).unwrap();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for f in ["km", "roc", "calibration", "calibration_recalibrated", "forest"] {
        let svg = std::fs::read_to_string(out.join(format!("figures/{f}.svg")))
            .unwrap_or_else(|e| panic!("figures/{f}.svg: {e}"));
        assert!(svg.starts_with("<svg"), "{f}");
    }
    // hostile names: escaped everywhere, never markup
    assert!(!html.contains("<script"), "raw <script> in the page");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"), "escaped arm / id expected");
    assert!(html.contains("experiments&#x2f;ablation study.yaml"), "spec file shown");
    assert!(
        html.contains("spatia run &#x27;experiments&#x2f;ablation study.yaml&#x27;"),
        "regenerate command quoted for the shell"
    );
    // the default arm of the main figures is the last arm
    assert!(html.contains("Main figures: arm <strong>modalities=HE+IHC+clinical</strong>"));
    // shown ids: the real ids appear (here: the other patients' slide labels)
    assert!(
        html.contains(&format!("{}_HE", ids[1]))
            || html.contains(&format!("{}_KI67", ids[1]))
            || !html.contains("P-001")
    );

    // an unknown arm is an error naming the arms
    let mut bad = raw.clone();
    bad["arm"] = serde_json::json!("modalities=HE");
    let e = render(&bad, &work.path().join("out_bad")).unwrap_err();
    assert!(format!("{e:#}").contains("modalities=clinical"), "{e:#}");

    // the reference arm (it has a `km: null` group) chosen explicitly
    let mut refarm = raw.clone();
    refarm["arm"] = serde_json::json!(arms[0]);
    render(&refarm, &work.path().join("out_ref")).unwrap();
    let html_ref = std::fs::read_to_string(work.path().join("out_ref/index.html")).unwrap();
    assert!(html_ref.contains("Main figures: arm <strong>modalities=clinical</strong> (chosen by the spec"));
    assert!(html_ref.contains("mid: 0 patients, 0 events"), "the empty group is listed");
    assert!(work.path().join("out_ref/figures/km.svg").exists());

    // pseudonymised by default: no id, hostile or not
    let mut hidden = raw.clone();
    hidden["show_patient_ids"] = serde_json::json!(false);
    let out2 = work.path().join("out_hidden");
    render(&hidden, &out2).unwrap();
    let html2 = std::fs::read_to_string(out2.join("index.html")).unwrap();
    for id in ids.iter().skip(1) {
        assert!(!html2.contains(id.as_str()), "patient id {id} leaked");
    }
    // same inputs, same bytes
    let out3 = work.path().join("out_again");
    render(&hidden, &out3).unwrap();
    assert_eq!(std::fs::read(out3.join("index.html")).unwrap(), html2.as_bytes());

    let Some(chrome) = chromium() else { return };
    let l = load(&chrome, &out.join("index.html"), &shots().join("full.png"));
    assert_clean(&l, "full page");
    for id in ["fig-km", "fig-roc", "fig-calibration", "fig-calibration-recalibrated", "fig-forest"] {
        assert!(svg_in(&l.dom, id), "plot {id} missing from the DOM");
    }
    assert!(!l.dom.contains("<script"), "the browser built a script element");
    let l2 = load(&chrome, &out2.join("index.html"), &shots().join("full_pseudonymised.png"));
    assert_clean(&l2, "pseudonymised page");
}

/// GSE7390 (real data, no slides, no model yet): the page has the cohort and provenance
/// sections and no QC or performance section; `row<N>` ids never appear.
#[test]
fn gse7390_page_without_slides_has_cohort_and_provenance_only() {
    let d = project();
    let csv = shared().join("data/clinical/breast_cancer_gse7390.csv");
    std::fs::write(
        d.path().join("g.yaml"),
        format!(
            "name: gse7390\nseed: 7\ncohort:\n  clinical: {}\n  id: \"@row\"\n  time: time\n  event: event\n  covariates: [age, er, grade, size]\n  missing: drop\nstages:\n  ingest: {{kind: ingest}}\n  report: {{kind: report, needs: [ingest], publish: reports/gse7390}}\n",
            csv.display()
        ),
    )
    .unwrap();
    let o = spatia(d.path(), &["run", "g.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let page = d.path().join("reports/gse7390/index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"cohort\"") && html.contains("id=\"provenance\""));
    assert!(!html.contains("id=\"qc\"") && !html.contains("id=\"performance\""));
    // 198 patients, 2 dropped for a missing grade (cohort.json of ingest says so)
    assert!(html.contains("<th>Patients</th><td class=\"num\">196</td>"), "patients row");
    assert!(html.contains("<td class=\"num\">2</td></tr>\n</table>"), "dropped rows");
    assert!(!html.contains("row1<") && !html.contains("row17<"), "row ids are pseudonymised too");
    // an unknown parameter is a spec error naming it
    std::fs::write(
        d.path().join("bad.yaml"),
        std::fs::read_to_string(d.path().join("g.yaml"))
            .unwrap()
            .replace("needs: [ingest],", "needs: [ingest], colour: red,"),
    )
    .unwrap();
    let o = spatia(d.path(), &["run", "bad.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("colour"), "{}", text(&o));

    let Some(chrome) = chromium() else { return };
    let l = load(&chrome, &page, &shots().join("gse7390.png"));
    assert_clean(&l, "GSE7390 page");
}

// ------------------------------------------------------------ the repository's two experiments

/// A project holding a copy of one of the repository's experiment specs (same relative path).
fn repo_project(spec: &str) -> tempfile::TempDir {
    let d = project();
    std::fs::create_dir_all(d.path().join("experiments")).unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(spec), d.path().join(spec)).unwrap();
    d
}

fn out_of(dir: &Path, run: &serde_json::Value, arm: &str, stage: &str) -> PathBuf {
    let k = run["arms"][arm][stage].as_str().unwrap_or_else(|| panic!("{arm}/{stage}"));
    dir.join("cache/entries").join(&k[..2]).join(k).join("out")
}

fn cli_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let o = spatia(dir, args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// One CV repeat's metrics from the CLI: Harrell's C, Uno's C, AUC and Brier per horizon.
type RepeatClis = (f64, f64, Vec<f64>, Vec<f64>);

/// `experiments/gse7390.yaml` as shipped: the real cohort, clinical vs clinical + 76 genes, 10
/// CV repeats and 200 whole-procedure bootstrap replicates. Every metric in `metrics.json` /
/// `calibration.json` is the mean over repeats of `spatia survival` on each repeat's
/// out-of-fold predictions, its spread across repeats is theirs, its split-aware interval is
/// `estimate ± z·SD` of the metric recomputed on every refit replicate, and the page loads
/// cleanly with every plot.
#[test]
fn gse7390_experiment_metrics_equal_the_survival_cli_and_the_page_loads() {
    let d = repo_project("experiments/gse7390.yaml");
    std::fs::create_dir_all(d.path().join("data/gse7390")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/gse7390/breast_cancer_gse7390.csv"),
        d.path().join("data/gse7390/breast_cancer_gse7390.csv"),
    )
    .unwrap();
    let o = spatia(d.path(), &["run", "experiments/gse7390.yaml", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(d.path());
    let arms = ["modalities=clinical", "modalities=clinical+genes76"];
    let eval = out_of(d.path(), &run, arms[0], "eval");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(eval.join("metrics.json")).unwrap()).unwrap();
    let horizons: Vec<f64> = metrics["horizons"].as_array().unwrap().iter().map(f).collect();
    assert_eq!(horizons, [1095.0, 1825.0, 2920.0]);
    for arm in arms {
        let m = metrics["arms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["arm"] == arm)
            .unwrap_or_else(|| panic!("{arm} not in metrics.json"));
        let model = out_of(d.path(), &run, arm, "model");
        let oof = csv_rows(&model.join("oof.csv"));
        assert_eq!(oof.len(), 196 * 10);
        let base = csv_rows(&model.join("baseline.csv"));
        // per repeat, the CLI on that repeat's predictions: (harrell, uno, auc[3], brier[3])
        let mut per: Vec<RepeatClis> = Vec::new();
        let mut cal_cli: Vec<serde_json::Value> = Vec::new();
        for rep in 0..10 {
            let (rs, bs) = (rep.to_string(), rep.to_string());
            let rows: Vec<_> = oof.iter().filter(|r| r["repeat"] == rs).collect();
            assert_eq!(rows.len(), 196);
            // the predictions as a plain CSV: risk and S(h) from the fold's Breslow baseline
            let mut table = String::from("time,event,risk");
            for h in &horizons {
                table.push_str(&format!(",s_{h}"));
            }
            table.push('\n');
            for r in rows {
                let risk: f64 = r["risk"].parse().unwrap();
                table.push_str(&format!("{},{},{:?}", r["time"], r["event"], risk));
                for &h in &horizons {
                    let h0 = base
                        .iter()
                        .rfind(|b| {
                            b["repeat"] == bs && b["fold"] == r["fold"] && b["time"].parse::<f64>().unwrap() <= h
                        })
                        .map_or(0.0, |b| b["cumhaz"].parse::<f64>().unwrap());
                    table.push_str(&format!(",{:?}", (-h0 * risk.exp()).exp()));
                }
                table.push('\n');
            }
            let csv = d.path().join(format!("{}_{rep}.csv", arm.replace(['=', '+'], "_")));
            std::fs::write(&csv, table).unwrap();
            let c = csv.to_str().unwrap();
            let base_args = ["survival", "", "--csv", c, "--time", "time", "--event", "event", "--json"];
            let with = |verb: &str, extra: &[&str]| {
                let mut a = base_args.to_vec();
                a[1] = verb;
                a.extend_from_slice(extra);
                cli_json(d.path(), &a)
            };
            let conc = with("concordance", &["--risk", "risk", "--tau", "2920"]);
            let auc = with("auc", &["--risk", "risk", "--times", "1095,1825,2920"]);
            let brier = with("brier", &["--surv", "1095:s_1095,1825:s_1825,2920:s_2920"]);
            per.push((
                f(&conc["harrell"]),
                f(&conc["uno"]),
                (0..3).map(|i| f(&auc["auc"][i])).collect(),
                (0..3).map(|i| f(&brier["brier"][i])).collect(),
            ));
            // calibration at 5 years, 5 risk-quantile bins
            cal_cli.push(with("calibration", &["--surv", "s_1825", "--horizon", "1825", "--bins", "5"]));
        }
        let mean = |g: &dyn Fn(&RepeatClis) -> f64| per.iter().map(g).sum::<f64>() / 10.0;
        let close = |x: f64, y: f64, what: &str| assert!((x - y).abs() <= 1e-12 * y.abs(), "{arm}: {what}: {x} vs {y}");
        close(f(&m["harrell_c"]["estimate"]), mean(&|p| p.0), "Harrell's C");
        close(f(&m["uno_c"]["estimate"]), mean(&|p| p.1), "Uno's C");
        for (i, a) in m["auc"].as_array().unwrap().iter().enumerate() {
            close(f(&a["estimate"]), mean(&|p| p.2[i]), &format!("AUC at {}", horizons[i]));
        }
        for (i, b) in m["brier"].as_array().unwrap().iter().enumerate() {
            close(f(&b["estimate"]), mean(&|p| p.3[i]), &format!("Brier at {}", horizons[i]));
        }
        // the spread across repeats
        let hs: Vec<f64> = per.iter().map(|p| p.0).collect();
        let spread = &m["across_repeats"]["harrell_c"];
        let lo = hs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = hs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((f(&spread["min"]), f(&spread["max"])), (lo, hi), "{arm}: range of Harrell's C across repeats");
        let mu = hs.iter().sum::<f64>() / 10.0;
        let sd = (hs.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / 9.0).sqrt();
        close(f(&spread["sd"]), sd, "SD of Harrell's C across repeats");
        // split-aware interval: Harrell's C recomputed on every refit replicate
        let refit = csv_rows(&model.join("refit_oof.csv"));
        let mut reps: Vec<f64> = Vec::new();
        for b in 0..200 {
            let bs = b.to_string();
            let rows: Vec<_> = refit.iter().filter(|r| r["replicate"] == bs).collect();
            assert_eq!(rows.len(), 196, "{arm}: replicate {b} draws every patient slot");
            let time: Vec<f64> = rows.iter().map(|r| r["time"].parse().unwrap()).collect();
            let event: Vec<bool> = rows.iter().map(|r| r["event"] == "1").collect();
            let risk: Vec<f64> = rows.iter().map(|r| r["risk"].parse().unwrap()).collect();
            reps.push(spatia::survival::harrell(&time, &event, &risk).unwrap().harrell);
        }
        let mb = reps.iter().sum::<f64>() / 200.0;
        let se = (reps.iter().map(|x| (x - mb) * (x - mb)).sum::<f64>() / 199.0).sqrt();
        let h = &m["harrell_c"];
        close(f(&h["se"]), se, "refit SE of Harrell's C");
        close(f(&h["lower"]), f(&h["estimate"]) - 1.959963984540054 * se, "lower limit of Harrell's C");
        assert_eq!(h["n_boot"], 200);
        // calibration: per-repeat statistics averaged
        let cal: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out_of(d.path(), &run, arm, "calib").join("calibration.json")).unwrap(),
        )
        .unwrap();
        for k in ["slope", "intercept", "ici", "e50", "e90"] {
            let y = cal_cli.iter().map(|c| f(&c[k])).sum::<f64>() / 10.0;
            let x = f(&cal[k]);
            assert!((x - y).abs() <= 1e-9 * (1.0 + y.abs()), "{arm}: calibration {k}: {x} vs {y}");
        }
    }
    assert_eq!((metrics["intervals"].as_str(), metrics["refit_replicates"].as_u64()), (Some("refit"), Some(200)));
    let cmp = &metrics["comparisons"][0];
    assert_eq!((cmp["arm"].as_str(), cmp["reference"].as_str()), (Some(arms[1]), Some(arms[0])));
    assert_eq!((cmp["role"].as_str(), f(&cmp["p_adjusted"])), (Some("primary"), f(&cmp["p"])));
    assert!(f(&cmp["p"]) > 0.0 && f(&cmp["p"]) <= 1.0);
    let page = d.path().join("reports/gse7390/index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // minijinja escapes `/` as `&#x2f;`
    assert!(html.contains("spatia run experiments&#x2f;gse7390.yaml"), "regenerate command");
    assert!(
        html.contains("id=\"repeats\"") && html.contains("whole-procedure bootstrap"),
        "spread and interval method"
    );
    let Some(chrome) = chromium() else { return };
    let l = load(&chrome, &page, &shots().join("experiment_gse7390.png"));
    assert_clean(&l, "experiments/gse7390.yaml page");
    for id in ["fig-km", "fig-roc", "fig-calibration", "fig-calibration-recalibrated", "fig-forest"] {
        assert!(svg_in(&l.dom, id), "plot {id} missing from the DOM");
    }
}

/// `make demo`'s study: the default generated cohort and `experiments/demo.yaml` as shipped.
/// Every image arm beats the clinical arm in every one of the 10 CV repeats (ΔC > 0 in each;
/// the split-aware interval of 60 patients is wide and is only checked to hold the estimate),
/// the primary comparison keeps its p and the exploratory ones are Holm-adjusted, the page
/// loads cleanly with every plot, and a second run is a no-op.
#[test]
fn demo_experiment_image_arms_beat_clinical_and_the_page_loads() {
    let d = repo_project("experiments/demo.yaml");
    let o = spatia(d.path(), &["demo", "generate", "--out", "demo-data"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = spatia(d.path(), &["run", "experiments/demo.yaml", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(d.path());
    let reference = "model=cox,modalities=clinical";
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_of(d.path(), &run, reference, "eval").join("metrics.json")).unwrap())
            .unwrap();
    let cmps = metrics["comparisons"].as_array().unwrap();
    assert_eq!(
        cmps.len(),
        8,
        "9 arms: Cox and attention-MIL × 4 modality sets, and Cox on HE+spatial+clinical; {cmps:?}"
    );
    // the spec's primary comparison keeps its p; the seven exploratory ones are Holm-adjusted
    let (primary, exploratory): (Vec<_>, Vec<_>) = cmps.iter().partition(|c| c["role"] == "primary");
    assert_eq!(primary.len(), 1);
    assert_eq!(primary[0]["arm"], "model=mil,modalities=HE+IHC+clinical");
    assert_eq!(f(&primary[0]["p_adjusted"]), f(&primary[0]["p"]));
    let mut ps: Vec<(f64, f64)> = exploratory.iter().map(|c| (f(&c["p"]), f(&c["p_adjusted"]))).collect();
    ps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut running: f64 = 0.0;
    for (j, (p, adj)) in ps.iter().enumerate() {
        running = running.max(((ps.len() - j) as f64 * p).min(1.0));
        assert_eq!(*adj, running, "Holm over the exploratory comparisons: {ps:?}");
    }
    for c in cmps {
        assert_eq!(c["reference"], reference);
        let (est, lo, hi) = (f(&c["delta_c"]["estimate"]), f(&c["delta_c"]["lower"]), f(&c["delta_c"]["upper"]));
        let worst = f(&c["across_repeats"]["min"]);
        eprintln!("{}: ΔC {est:.3} ({lo:.3} to {hi:.3}), smallest over repeats {worst:.3}, p {}", c["arm"], c["p"]);
        assert!(lo < est && est < hi, "{}: interval ({lo}, {hi}) around {est}", c["arm"]);
        let arm = c["arm"].as_str().unwrap();
        if arm.ends_with("modalities=clinical") {
            continue; // the clinical MIL network (an MLP) is not an image arm
        }
        assert!(worst > 0.0, "{arm}: ΔC {worst} in one repeat: the image arm does not beat the clinical arm");
        // the MIL arms are not refitted: conditional intervals, said so
        assert_eq!(c["intervals"].as_str() == Some("conditional"), arm.starts_with("model=mil"), "{c}");
    }
    // the attention-MIL fusion arm: mean C over repeats ≥ 0.86, its ΔC interval above 0
    let mil = metrics["arms"].as_array().unwrap().iter().find(|a| a["arm"] == primary[0]["arm"]).unwrap();
    assert!(f(&mil["harrell_c"]["estimate"]) >= 0.86, "{}", mil["harrell_c"]);
    assert!(f(&primary[0]["delta_c"]["lower"]) > 0.0, "{}", primary[0]["delta_c"]);
    let page = d.path().join("reports/demo/index.html");
    assert!(page.exists());
    // print-sized figures in years, each with its provenance line; the paper's Figure 2
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Time (years)") && html.contains("Predicted risk at 5 y"), "figures in years");
    assert!(html.contains("<span class=\"source\">Figure km: arm model=mil,modalities=HE+IHC+clinical; from eval "));
    assert!(html.contains("@font-face{font-family:\"DejaVu Sans\""), "the figures' font is embedded");
    for ext in ["svg", "pdf", "png"] {
        assert!(d.path().join(format!("reports/demo/figures/figure2.{ext}")).exists(), "figure2.{ext}");
    }
    let again = spatia(d.path(), &["run", "experiments/demo.yaml", "--json"]);
    let s = summary(&again);
    assert_eq!(s["ran"], 0, "second run: {s}");
    let Some(chrome) = chromium() else { return };
    let l = load(&chrome, &page, &shots().join("experiment_demo.png"));
    assert_clean(&l, "experiments/demo.yaml page");
    for id in ["fig-km", "fig-roc", "fig-calibration", "fig-calibration-recalibrated", "fig-forest", "fig-cif"] {
        assert!(svg_in(&l.dom, id), "plot {id} missing from the DOM");
    }
    // the MIL training curves of every image MIL arm
    for arm in ["model_mil_modalities_HE", "model_mil_modalities_HE_IHC_clinical"] {
        for kind in ["score", "loss"] {
            let id = format!("fig-training_{kind}_{arm}");
            assert!(svg_in(&l.dom, &id), "plot {id} missing from the DOM");
        }
    }
    assert!(l.dom.matches("<img").count() >= 8, "QC thumbnails and IHC maps");
}

/// 12 patients, ingest + tile + stain + maps + report: the "Spatial maps" section.
const SPEC_MAPS: &str = r#"name: maps
seed: 7
cohort:
  clinical: demo-data/clinical.csv
  slides: demo-data/slides.csv
  id: patient_id
  time: dmfs_days
  event: dm
  causes: {1: metastasis, 2: death}
  covariates: [age, ki67]
stages:
  ingest: {kind: ingest}
  tiles: {kind: tile, needs: [ingest], mpp: 0.5, size: 64, min_tissue: 0.3}
  ihc: {kind: stain, needs: [tiles]}
  maps: {kind: maps, needs: [ingest, tiles, ihc]}
  page: {kind: report, needs: [ingest, tiles, ihc, maps], qc_slides: 4, publish: reports/maps}
"#;

/// The PNG data URIs of `html` (escaped as the page writes them), decoded.
fn embedded_pngs(html: &str) -> Vec<image::DynamicImage> {
    use base64::Engine;
    let tag = "src=\"data:image&#x2f;png;base64,";
    html.match_indices(tag)
        .map(|(i, _)| {
            let rest = &html[i + tag.len()..];
            let b64 =
                rest[..rest.find('"').unwrap()].replace("&#x2f;", "/").replace("&#x3d;", "=").replace("&#x2b;", "+");
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
            image::load_from_memory(&bytes).expect("a PNG that decodes")
        })
        .collect()
}

#[test]
fn maps_section_shows_legends_scores_and_images_that_load() {
    let d = run_project("12", "1024", "maps", SPEC_MAPS);
    let page = d.path().join("reports/maps/index.html");
    let html = std::fs::read_to_string(&page).expect("published index.html");
    let at = html.find("<section id=\"maps\">").expect("a Spatial maps section");
    let section = &html[at..at + html[at..].find("</section>").unwrap()];
    // the patients of the QC cards (4 slides: 2 patients), each with its slides side by side and a scale bar
    assert_eq!(section.matches("<h3>P-").count(), 2, "the QC cards' two patients (H&E + Ki-67 each)");
    assert_eq!(section.matches("class=\"scalebar\"").count(), 2);
    // IHC maps: the nuclear labelling grid, a legend per map, the slide's scores and Moran's I
    assert!(section.contains("nuclear grid"), "the legend names the nuclear grid");
    let maps = section.matches("class=\"map\"").count();
    let legends = section.matches("class=\"colorbar legend\"><svg").count();
    assert!(legends >= 2, "{legends} legends");
    assert!(section.contains("labelling index 0.") && section.contains("Moran's I: labelling"));
    // Ki-67 slides: the nuclei crop with its legend
    assert!(section.contains("alt=\"detected nuclei of") && section.contains("DAB-positive nucleus"));
    // cohort view: KM by labelling-index tertile
    assert!(svg_in(section, "fig-km-ki67"), "KM by Ki-67 tertile drawn");
    // every embedded image decodes; no patient id leaks
    let pngs = embedded_pngs(section);
    assert!(pngs.len() >= maps && pngs.iter().all(|p| p.width() > 0 && p.height() > 0));
    for id in patient_ids(&d.path().join("demo-data/clinical.csv")) {
        assert!(!html.contains(id.as_str()), "patient id {id} leaked into the page");
    }
    assert!(html.len() < 3_000_000, "page {} bytes", html.len());

    let Some(chrome) = chromium() else { return };
    let l = load(&chrome, &page, &shots().join("maps.png"));
    assert_clean(&l, "maps page");
    let dom_at = l.dom.find("id=\"maps\"").expect("maps section in the DOM");
    let dom = &l.dom[dom_at..];
    let dom = &dom[..dom.find("</section>").unwrap_or(dom.len())];
    assert!(dom.matches("<img").count() >= maps, "images in the DOM");
    assert!(dom.contains("class=\"colorbar legend\"><svg"), "legends in the DOM");
}
