//! `spatia figure` and the spec's `figures:` block on a real run (GSE7390, clinical Cox arms):
//! figures drawn from the recorded outputs only, byte-identical across two calls and across
//! `--jobs`, at a journal's size in SVG, PNG and PDF; clear errors for bad requests.
mod common;

use common::{last_run, project, spatia, text};
use std::path::Path;

const SPEC: &str = r#"name: figs
seed: 7
cohort:
  clinical: gse7390.csv
  id: "@row"
  time: time
  event: event
  covariates: [age, er, grade, size]
  missing: drop
stages:
  ingest: {kind: ingest}
  model: {kind: train, needs: [ingest], model: cox, modalities: [clinical], folds: 3}
  eval: {kind: evaluate, needs: [model], horizons: [1095, 1826.25], bootstrap: 50, reference: modalities=clinical}
  calib: {kind: calibrate, needs: [model], horizon: 1826.25, bins: 4}
  report:
    kind: report
    needs: [ingest, eval, calib]
    publish: reports/figs
    display_unit: years
    figures:
      figure2:
        width_mm: 174
        formats: [svg, png, pdf]
        dpi: 150
        panels:
          - {kind: km}
          - {kind: roc}
          - {kind: calibration}
          - {kind: forest}
matrix:
  model.modalities: [[clinical], [clinical, genes]]
"#;

/// A project with GSE7390 and the spec (a 76-gene block as the second arm's modality).
fn gse_project() -> tempfile::TempDir {
    let d = project();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/gse7390/breast_cancer_gse7390.csv");
    std::fs::copy(src, d.path().join("gse7390.csv")).unwrap();
    let spec = SPEC.replace(
        "modalities: [clinical], folds: 3}",
        "modalities: [clinical], folds: 3, blocks: {genes: {prefix: X}}, pca: 3}",
    );
    std::fs::write(d.path().join("figs.yaml"), spec).unwrap();
    d
}

fn figure(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut a = vec!["figure"];
    a.extend_from_slice(args);
    spatia(dir, &a)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn figures_are_byte_identical_across_calls_and_jobs_and_print_sized() {
    let d = gse_project();
    let o = spatia(d.path(), &["run", "figs.yaml", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let run_dir = {
        let runs: Vec<_> = std::fs::read_dir(d.path().join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(runs.len(), 1);
        runs[0].clone()
    };
    // the spec's declared figure, published with the report
    for ext in ["svg", "png", "pdf"] {
        let p = d.path().join(format!("reports/figs/figures/figure2.{ext}"));
        assert!(p.exists(), "{}", p.display());
    }
    let fig2 = String::from_utf8(read(&d.path().join("reports/figs/figures/figure2.svg"))).unwrap();
    assert!(fig2.starts_with("<svg width=\"174mm\""), "{}", &fig2[..80]);
    let texts: Vec<String> = roxmltree::Document::parse(&fig2)
        .unwrap()
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    for l in ["A", "B", "C", "D", "Time (years)", "Predicted risk at 5 y"] {
        assert!(texts.iter().any(|t| t == l), "figure2 lacks {l}: {texts:?}");
    }
    // the page: the same renderer, years on the axes, each figure's provenance under it
    let html = std::fs::read_to_string(d.path().join("reports/figs/index.html")).unwrap();
    assert!(html.contains("Time (years)") && html.contains("@font-face"), "page figures");
    assert!(html.contains("<span class=\"source\">Figure km: arm modalities=clinical+genes; from eval "), "caption");

    // the same figure twice, from the published folder and from the run: same bytes
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for fmt in ["svg", "png", "pdf"] {
        for kind in ["km", "roc", "calibration", "forest"] {
            let a = out.join(format!("{kind}-a.{fmt}"));
            let b = out.join(format!("{kind}-b.{fmt}"));
            let o =
                figure(d.path(), &["reports/figs", "--kind", kind, "--width-mm", "85", "--out", a.to_str().unwrap()]);
            assert!(o.status.success(), "{}", text(&o));
            let o = figure(d.path(), &[run_dir.to_str().unwrap(), "--kind", kind, "--out", b.to_str().unwrap()]);
            assert!(o.status.success(), "{}", text(&o));
            if fmt == "svg" {
                // the run's figure names its run in the metadata; otherwise identical
                let (sa, sb) = (String::from_utf8(read(&a)).unwrap(), String::from_utf8(read(&b)).unwrap());
                assert!(sb.contains(&format!(
                    "&quot;run&quot;:&quot;{}&quot;",
                    run_dir.file_name().unwrap().to_string_lossy()
                )));
                assert!(!sa.contains("&quot;run&quot;:"));
                assert!(sa.starts_with("<svg width=\"85mm\""), "{}", &sa[..60]);
            }
            let c = out.join(format!("{kind}-c.{fmt}"));
            let o = figure(d.path(), &["reports/figs", "--kind", kind, "--out", c.to_str().unwrap()]);
            assert!(o.status.success(), "{}", text(&o));
            assert!(read(&a) == read(&c), "{kind}.{fmt}: two calls differ");
        }
    }
    // PNG at 300 dpi: 85 mm = 1004 px wide; PDF with the font embedded
    let png = out.join("km-300.png");
    let o = figure(d.path(), &["reports/figs", "--kind", "km", "--dpi", "300", "--out", png.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let bytes = read(&png);
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1004);
    assert!(String::from_utf8_lossy(&read(&out.join("km-a.pdf"))).contains("/FontFile2"));

    // a second cache, one job: every node recomputed, the same figure bytes
    let o = spatia(d.path(), &["run", "figs.yaml", "--quiet", "--jobs", "1", "--cache", "cache-j1"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(d.path());
    assert!(run["nodes"].as_array().unwrap().iter().all(|n| n["status"] == "miss"), "not recomputed");
    let mut runs: Vec<_> = std::fs::read_dir(d.path().join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    runs.sort();
    let j1_run = runs.last().unwrap().to_str().unwrap().to_string();
    for fmt in ["svg", "png", "pdf"] {
        let j1 = out.join(format!("km-j1.{fmt}"));
        let o = figure(d.path(), &[&j1_run, "--cache", "cache-j1", "--kind", "km", "--out", j1.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        let first = read(&out.join(format!("km-b.{fmt}")));
        let mut again = read(&j1);
        if fmt == "svg" {
            // the metadata names the run: compare with the first run's name put in its place
            let name = |p: &str| Path::new(p).file_name().unwrap().to_string_lossy().to_string();
            again = String::from_utf8(again)
                .unwrap()
                .replace(&name(&j1_run), &name(run_dir.to_str().unwrap()))
                .into_bytes();
        }
        assert!(again == first, "km.{fmt} differs with --jobs 1");
    }
    let a = read(&d.path().join("reports/figs/figures/figure2.pdf"));
    let o = spatia(d.path(), &["run", "figs.yaml", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(a == read(&d.path().join("reports/figs/figures/figure2.pdf")));
}

#[test]
fn bad_requests_are_clear_errors_and_nothing_is_overwritten() {
    let d = gse_project();
    let o = spatia(d.path(), &["run", "figs.yaml", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = d.path().join("keep.svg");
    std::fs::write(&out, "mine").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["reports/figs", "--kind", "pie", "--out", "x.svg"], "--kind: expected one of km, roc"),
        (&["reports/figs", "--kind", "km", "--out", "x.tiff"], "--format: expected svg, png or pdf"),
        (&["reports/figs", "--kind", "km", "--width-mm", "10", "--out", "x.svg"], "--width-mm: expected 40 to 400 mm"),
        (
            &["reports/figs", "--kind", "km", "--arm", "nope", "--out", "x.svg"],
            "no km figure for arm \"nope\"; arms with one: modalities=clinical, modalities=clinical+genes",
        ),
        (&["reports/figs", "--kind", "calibration", "--horizon", "7", "--out", "x.svg"], "horizons recorded: 1826.25"),
        (&["reports/figs", "--kind", "cif", "--out", "x.svg"], "this report has no cif figure"),
        (&["reports", "--kind", "km", "--out", "x.svg"], "expected a report folder"),
        (&["reports/figs", "--kind", "km", "--out", "keep.svg"], "keep.svg: exists"),
        (
            &["reports/figs", "--kind", "km", "--unit", "weeks", "--out", "x.svg"],
            "--unit: expected days, months or years",
        ),
    ];
    for (args, expect) in cases {
        let o = figure(d.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(expect), "{args:?}: expected {expect:?} in\n{}", text(&o));
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "mine");
    assert!(!d.path().join("x.svg").exists());
    let o = figure(d.path(), &["reports/figs", "--kind", "km", "--out", "keep.svg", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("<svg"));
    // a bad `figures:` declaration is a spec error naming the key
    let spec = std::fs::read_to_string(d.path().join("figs.yaml")).unwrap().replace("width_mm: 174", "width_mm: 1000");
    std::fs::write(d.path().join("bad.yaml"), spec).unwrap();
    let o = spatia(d.path(), &["plan", "bad.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("figures.figure2.width_mm") && text(&o).contains("expected 40 to 400 mm"),
        "{}",
        text(&o)
    );
}
