//! `ingest` with a slide manifest, `tile` and `stain` end to end through the binary, on the
//! real slides in ../shared/data/slides and on a small generated cohort.
mod common;
use common::*;
use std::path::Path;

fn slides() -> std::path::PathBuf {
    shared().join("data/slides")
}

/// A project whose manifest points at the real CMU (H&E) and OS-2 (Ki-67) slides.
fn real_project(extra_rows: &str) -> tempfile::TempDir {
    let d = project();
    let s = slides();
    std::fs::write(d.path().join("clin.csv"), "patient_id,age,time,event\nA,50,100,1\nB,60,200,0\n").unwrap();
    std::fs::write(
        d.path().join("slides.csv"),
        format!(
            "patient_id,path,stain\nA,{}/CMU-1-Small-Region.svs,HE\nB,{}/OS-2-ndpi.ome.tif,KI67\n{extra_rows}",
            s.display(),
            s.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.path().join("s.yaml"),
        "name: real\ncohort: {clinical: clin.csv, slides: slides.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n  tiles: {kind: tile, needs: [ingest], mpp: 0.5, size: 256}\n  ihc: {kind: stain, needs: [tiles]}\n",
    )
    .unwrap();
    d
}

fn out_of(dir: &Path, stage: &str, item: Option<&str>) -> std::path::PathBuf {
    let run = last_run(dir);
    let v = &run["arms"]["main"][stage];
    let key = match item {
        None => v.as_str().unwrap().to_string(),
        Some(i) => v[i].as_str().unwrap_or_else(|| panic!("no shard {i} in {v}")).to_string(),
    };
    dir.join("cache/entries").join(&key[..2]).join(&key).join("out")
}

#[test]
fn real_slides_are_ingested_tiled_and_measured() {
    let d = real_project("");
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = summary(&o);
    // ingest, 2 tile shards, 1 stain shard (only the IHC slide)
    assert_eq!(s["ran"].as_u64(), Some(4), "{s}");

    let slides: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_of(d.path(), "ingest", None).join("slides.json")).unwrap())
            .unwrap();
    let he = &slides["slides"][0];
    assert_eq!(he["vendor"], "aperio");
    assert_eq!(he["width"], 2220);
    assert_eq!(he["blake3"], "7f57b01edcce1177ea6b5e2117adaa99850fefaece99d3ebc2f4036f792b3983");
    assert_eq!(slides["slides"][1]["vendor"], "ome-tiff");

    let qc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_of(d.path(), "tiles", Some("A_HE")).join("qc.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(qc["slide"], "A_HE", "outputs name slides by id, not by path");
    assert!(qc["tiles"].as_u64().unwrap() > 10, "{qc}");
    // slide QC keeps every tissue tile of the real H&E slide at the defaults
    for k in ["blur", "pen", "fold", "bubble"] {
        assert_eq!(qc["qc_excluded"][k], 0, "{qc}");
    }
    let tdir = out_of(d.path(), "tiles", Some("A_HE"));
    for f in ["mask.png", "thumbnail.png", "overlay.png", "tiles.csv", "tiling.json"] {
        assert!(tdir.join(f).exists(), "missing {f}");
    }
    let st: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_of(d.path(), "ihc", Some("B_KI67")).join("stain.json")).unwrap(),
    )
    .unwrap();
    let idx = st["index"].as_f64().unwrap();
    assert!(idx > 0.02 && idx < 0.5, "Ki-67 index {idx}");
    // nuclear scores on the tiling: the kept tiles cover part of the crop (661 of the whole
    // crop's ~1,200 nuclei), the labelling index within QuPath's 11.9–20.5 % for the crop
    let (n, pos) = (st["nuclei"].as_u64().unwrap(), st["positive_nuclei"].as_u64().unwrap());
    let li = st["labelling_index"].as_f64().unwrap();
    assert!((400..=1323).contains(&n) && pos < n, "{n} nuclei, {pos} positive");
    assert!((0.119..=0.205).contains(&li), "labelling index {li}");
    assert!(st["h_score"].is_null(), "H-score only for ER and PR");
    let grid = st["nuclei_grid"].as_array().unwrap();
    assert_eq!(grid.len() as u64, st["rows"].as_u64().unwrap() * st["cols"].as_u64().unwrap());
    assert_eq!(grid.iter().filter_map(|v| v.as_u64()).sum::<u64>(), n);
    let csv = std::fs::read_to_string(out_of(d.path(), "ihc", Some("B_KI67")).join("stain.csv")).unwrap();
    assert!(
        csv.starts_with("col,row,")
            && csv.lines().next().unwrap().ends_with(",nuclei,positive_nuclei,weak,moderate,strong")
    );
    assert!(out_of(d.path(), "ihc", Some("B_KI67")).join("positivity.png").exists());
    assert!(last_run(d.path())["arms"]["main"]["ihc"].get("A_HE").is_none(), "H&E slides get no stain shard");
}

#[test]
fn adding_a_slide_runs_only_its_shards() {
    let d = real_project("");
    assert!(spatia(d.path(), &["run", "s.yaml", "-q"]).status.success());
    // patient A gets a second (Ki-67-tagged) slide
    let s = slides();
    std::fs::write(
        d.path().join("slides.csv"),
        format!(
            "patient_id,path,stain\nA,{0}/CMU-1-Small-Region.svs,HE\nB,{0}/OS-2-ndpi.ome.tif,KI67\nA,{0}/OS-2-ndpi.ome.tif,KI67\n",
            s.display()
        ),
    )
    .unwrap();
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = summary(&o);
    // ingest + the new slide's tile and stain shards; the old shards are cached
    assert_eq!((s["ran"].as_u64(), s["cached"].as_u64()), (Some(3), Some(3)), "{s}");
}

#[test]
fn manifest_errors_name_the_row() {
    // a missing file is found while listing the slides (exit 2)
    let d = real_project("B,nowhere.svs,HE\n");
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("row 3") && text(&o).contains("nowhere.svs"), "{}", text(&o));

    // an unknown stain
    let d = real_project(&format!("B,{}/boxes.tiff,CD8\n", slides().display()));
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("row 3") && text(&o).contains("CD8"), "{}", text(&o));

    // a slide of an unknown patient, a file that is no slide, a slide without µm/px: ingest fails
    let d = real_project(&format!(
        "Z,{}/CMU-1-Small-Region.svs,HE\nB,not-a-slide.svs,HE\nB,{}/boxes.tiff,ER\n",
        slides().display(),
        slides().display()
    ));
    std::fs::write(d.path().join("not-a-slide.svs"), b"this is not a slide").unwrap();
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("row 3 (line 4): patient \"Z\" is not in the clinical table"), "{t}");
    assert!(t.contains("row 4 (line 5)"), "{t}");
    assert!(t.contains("row 5 (line 6)") && t.contains("mpp"), "{t}");
}

#[test]
fn generated_cohort_runs_end_to_end() {
    let d = project();
    let o = spatia(d.path(), &["demo", "generate", "--out", "demo", "--patients", "4", "--size", "1200"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(
        d.path().join("s.yaml"),
        "name: mini\ncohort: {clinical: demo/clinical.csv, slides: demo/slides.csv, time: dmfs_days, event: dm, causes: {1: metastasis, 2: death}, covariates: [age, grade, ki67]}\nstages:\n  ingest: {kind: ingest}\n  tiles: {kind: tile, needs: [ingest]}\n  ihc: {kind: stain, needs: [tiles]}\n",
    )
    .unwrap();
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    if !o.status.success() {
        panic!("{}", text(&o));
    }
    let s = summary(&o);
    assert_eq!(s["ran"].as_u64(), Some(1 + 8 + 4), "{s}");
}

#[test]
fn per_slide_commands_see_the_slide() {
    let d = real_project("");
    std::fs::write(
        d.path().join("s.yaml"),
        "name: c\ncohort: {clinical: clin.csv, slides: slides.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n  info:\n    kind: command\n    needs: [ingest]\n    foreach: slide\n    cmd: echo \"$SPATIA_ITEM $SPATIA_ITEM_PATIENT_ID $SPATIA_ITEM_STAIN $(basename $SPATIA_ITEM_PATH) $SPATIA_ITEM_DIGEST\" > info.txt\n",
    )
    .unwrap();
    let o = spatia(d.path(), &["run", "s.yaml", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    let info = std::fs::read_to_string(out_of(d.path(), "info", Some("A_HE")).join("info.txt")).unwrap();
    assert_eq!(
        info.trim(),
        "A_HE A HE CMU-1-Small-Region.svs 7f57b01edcce1177ea6b5e2117adaa99850fefaece99d3ebc2f4036f792b3983"
    );
}

/// A cohort generated with `--missing-ihc 0.5` runs through `tile`, `extract` and the Cox
/// `train`: half the patients have no Ki-67 slide, so their Ki-67 features are imputed, and
/// every patient still gets an out-of-fold risk.
#[test]
fn cohort_with_missing_ihc_trains() {
    let d = project();
    let gen = ["demo", "generate", "--out", "demo", "--patients", "24", "--size", "1600", "--missing-ihc", "0.5"];
    let o = spatia(d.path(), &gen);
    assert!(o.status.success(), "{}", text(&o));
    let manifest = std::fs::read_to_string(d.path().join("demo/slides.csv")).unwrap();
    assert_eq!(manifest.lines().filter(|l| l.ends_with(",HE")).count(), 24, "{manifest}");
    assert_eq!(manifest.lines().filter(|l| l.ends_with(",KI67")).count(), 12, "{manifest}");
    std::fs::write(
        d.path().join("s.yaml"),
        "name: mini\nseed: 7\ncohort: {clinical: demo/clinical.csv, slides: demo/slides.csv, time: dmfs_days, event: dm, causes: {1: metastasis, 2: death}, covariates: [age, nodes_positive]}\nstages:\n  ingest: {kind: ingest}\n  tiles: {kind: tile, needs: [ingest], mpp: 0.5, size: 256}\n  feats: {kind: extract, needs: [tiles], encoder: handcrafted}\n  model: {kind: train, needs: [feats], model: cox, modalities: [HE, KI67, clinical], pca: 2, folds: 3, repeats: 1}\n",
    )
    .unwrap();
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = out_of(d.path(), "model", None);
    let model: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    let ki67 = model["inputs"].as_array().unwrap().iter().find(|i| i["modality"] == "KI67").unwrap();
    assert_eq!((ki67["slides"].as_u64(), ki67["patients_without"].as_u64()), (Some(12), Some(12)), "{ki67}");
    let oof = std::fs::read_to_string(dir.join("oof.csv")).unwrap();
    assert_eq!(oof.lines().count(), 1 + 24, "{oof}");
    assert!(oof.lines().skip(1).all(|l| l.split(',').nth(3).unwrap().parse::<f64>().unwrap().is_finite()), "{oof}");
}
