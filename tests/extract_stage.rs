//! The `extract` stage end to end: handcrafted bags from real slides (CLAM/TRIDENT layout,
//! same bytes in any directory), precomputed bags brought by the user, and — with the `torch`
//! feature — a TorchScript encoder whose model file is part of the key.
mod common;
use common::*;
use spatia::features::bag::Bag;
use std::path::{Path, PathBuf};

fn slides() -> PathBuf {
    shared().join("data/slides")
}

fn project_with(extra_cols: &str, rows: &[String], stage: &str) -> tempfile::TempDir {
    let d = project();
    std::fs::write(d.path().join("clin.csv"), "patient_id,age,time,event\nA,50,100,1\nB,60,200,0\n").unwrap();
    let mut m = format!("patient_id,path,stain{extra_cols}\n");
    for r in rows {
        m.push_str(r);
        m.push('\n');
    }
    std::fs::write(d.path().join("slides.csv"), m).unwrap();
    std::fs::write(
        d.path().join("s.yaml"),
        format!("name: ex\ncohort: {{clinical: clin.csv, slides: slides.csv, covariates: [age]}}\nstages:\n  ingest: {{kind: ingest}}\n  tiles: {{kind: tile, needs: [ingest]}}\n  feats: {stage}\n"),
    )
    .unwrap();
    d
}

fn shard_out(dir: &Path, stage: &str, item: &str) -> PathBuf {
    let run = last_run(dir);
    let key = run["arms"]["main"][stage][item].as_str().unwrap_or_else(|| panic!("no {stage}/{item}")).to_string();
    dir.join("cache/entries").join(&key[..2]).join(&key).join("out")
}

fn two_slides() -> Vec<String> {
    vec![
        format!("A,{}/CMU-1-Small-Region.svs,HE", slides().display()),
        format!("B,{}/OS-2-ndpi.ome.tif,KI67", slides().display()),
    ]
}

#[test]
fn handcrafted_bags_follow_the_tiling_and_are_reproducible() {
    let mut digests = Vec::new();
    for _ in 0..2 {
        let d = project_with("", &two_slides(), "{kind: extract, needs: [tiles], encoder: handcrafted}");
        let o = spatia(d.path(), &["run", "s.yaml", "-q", "-j", "2"]);
        assert!(o.status.success(), "{}", text(&o));
        let bag = Bag::read(&shard_out(d.path(), "feats", "A_HE").join("features.h5")).unwrap();
        let tiling: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(shard_out(d.path(), "tiles", "A_HE").join("tiling.json")).unwrap(),
        )
        .unwrap();
        let tiles = tiling["tiles"].as_array().unwrap();
        assert_eq!(bag.len(), tiles.len());
        assert_eq!(bag.dim(), 64);
        assert_eq!(bag.coords[[0, 0]], tiles[0]["x"].as_i64().unwrap());
        assert_eq!(bag.meta.patch_size_level0, Some(tiling["tile_size_level0"].as_i64().unwrap()));
        assert_eq!(bag.meta.encoder.as_deref(), Some("handcrafted"));
        assert!(bag.features.iter().all(|x| x.is_finite()));
        let run = last_run(d.path());
        let key = run["arms"]["main"]["feats"]["A_HE"].as_str().unwrap().to_string();
        let rec: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(d.path().join("cache/entries").join(&key[..2]).join(&key).join("record.json"))
                .unwrap(),
        )
        .unwrap();
        digests.push((key, rec["output_digest"].as_str().unwrap().to_string()));
    }
    assert_eq!(digests[0], digests[1], "same key and same bytes in two directories");
}

/// Declares `dir` (where the bag is written) as a data root of the project, beside the shared data.
fn declare_root(project: &Path, dir: &Path) {
    let roots = [shared().join("data"), dir.to_path_buf()]
        .map(|r| format!("{:?}", r.canonicalize().unwrap_or(r).display().to_string()));
    std::fs::write(project.join("spatia.toml"), format!("data_roots = [{}]\n", roots.join(", "))).unwrap();
}

#[test]
fn precomputed_bags_are_validated_and_used() {
    let d = tempfile::tempdir().unwrap();
    let bag = d.path().join("cmu.h5");
    let o = spatia(
        d.path(),
        &["extract", slides().join("CMU-1-Small-Region.svs").to_str().unwrap(), "--out", bag.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let rows = vec![format!("A,{}/CMU-1-Small-Region.svs,HE,{}", slides().display(), bag.display())];
    let p = project_with(",features", &rows, "{kind: extract, needs: [tiles], encoder: precomputed}");
    declare_root(p.path(), d.path());
    let o = spatia(p.path(), &["run", "s.yaml", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    let got = Bag::read(&shard_out(p.path(), "feats", "A_HE").join("features.h5")).unwrap();
    assert_eq!(got.features, Bag::read(&bag).unwrap().features);

    // the same bag declared for a smaller slide: its coordinates fall outside
    let rows = vec![format!("A,{}/small.svs,HE,{}", slides().display(), bag.display())];
    let p = project_with(",features", &rows, "{kind: extract, needs: [ingest], encoder: precomputed}");
    declare_root(p.path(), d.path());
    std::fs::write(
        p.path().join("s.yaml"),
        "name: ex\ncohort: {clinical: clin.csv, slides: slides.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n  feats: {kind: extract, needs: [ingest], encoder: precomputed}\n",
    )
    .unwrap();
    let o = spatia(p.path(), &["run", "s.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("cmu.h5"), "{}", text(&o));
}

#[test]
fn encoder_errors_are_located() {
    let d = project_with("", &two_slides(), "{kind: extract, needs: [tiles], encoder: resnet}");
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("s.yaml:6:") && text(&o).contains("unknown encoder `resnet`"), "{}", text(&o));
    let d =
        project_with("", &two_slides(), "{kind: extract, needs: [tiles], encoder: {torchscript: nope.pt, size: 224}}");
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("nope.pt"), "{}", text(&o));
}

#[cfg(feature = "torch")]
#[test]
fn torchscript_encoder_in_a_spec() {
    let d = project_with(
        "",
        &two_slides(),
        "{kind: extract, needs: [tiles], encoder: {torchscript: tiny.pt, size: 64, device: cpu, threads: 1}}",
    );
    let python = std::env::var("SPATIA_TORCH_PYTHON").unwrap_or_else(|_| {
        format!("{}/.cache/spatia/torch-2.11.0/bin/python", std::env::var("HOME").unwrap_or_default())
    });
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_models.py");
    let out = std::process::Command::new(&python)
        .args([models, "trace", "tiny", "64"])
        .arg(d.path().join("tiny.pt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let bag = Bag::read(&shard_out(d.path(), "feats", "A_HE").join("features.h5")).unwrap();
    assert!(bag.dim() > 0 && bag.len() > 10);
    assert!(bag.meta.encoder.as_deref().unwrap_or("").contains("tiny.pt"));
    // the two shards ran in one process: the model was read once and reused by the other shard
    let logs: Vec<String> = ["A_HE", "B_KI67"]
        .iter()
        .map(|item| {
            let log = shard_out(d.path(), "feats", item).parent().unwrap().join("log.txt");
            std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        })
        .collect();
    let count = |what: &str| logs.iter().filter(|l| l.contains(&format!("model tiny.pt: {what}"))).count();
    assert_eq!((count("loaded"), count("reused")), (1, 1), "{logs:?}");
    // a different model file (new weights) gives new extract keys and nothing else
    let out = std::process::Command::new(&python)
        .env("SPATIA_MODEL_SEED", "5")
        .args([models, "trace", "tiny", "64"])
        .arg(d.path().join("tiny.pt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let o = spatia(d.path(), &["plan", "s.yaml"]);
    let t = text(&o);
    assert!(t.contains("input file `tiny.pt` changed"), "{t}");
    assert!(t.contains("2 of 5 stage(s) to run"), "{t}");
}
