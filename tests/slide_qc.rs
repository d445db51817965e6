//! Slide QC in the `tile` stage (`spatia::slide::qc`): a generated H&E fixture slide with a
//! painted pen stroke and a blurred region loses exactly those tiles; the demo cohort's tiles
//! (H&E, ER, PR, Ki-67; a 1,200 px demo HER2 slide has no tissue at the mask's resolution,
//! unrelated to QC) all pass the default thresholds; a slide with too little usable tissue fails
//! its `tile` shard with a message naming it. Also: `train`'s `stain` modality reads the
//! `stain` stage's nuclear scores.
mod common;
use common::*;
use spatia::demo::texture::{render_tile, Lut, SlidePlan, Stain as DemoStain, TILE};
use spatia::demo::tiff_writer::{PyramidOptions, PyramidWriter};
use spatia::demo::{clinical, generate, n_levels, DemoParams};
use spatia::slide::qc::{QcFlag, QcParams};
use spatia::slide::tiling::{exclude_tiles, tile_slide, TileParams};
use spatia::slide::tissue::{detect_tissue, TissueParams};
use spatia::slide::{Slide, Stain};
use std::path::Path;

const PEN_ROW: u32 = 2;
const BLUR_ROW: u32 = 4;

/// A 1,536 px square demo H&E slide (0.5 µm/px, 6 × 6 tiles of 256 px): a green marker
/// stroke across tile row `PEN_ROW`, tile row `BLUR_ROW` Gaussian-blurred (σ 4 px).
fn fixture(path: &Path) {
    let side = 6 * TILE;
    let p = clinical::draw_patient(5, 0, 1);
    let plan = SlidePlan::new(99, side, side, DemoStain::HE, clinical::look_of(&p.latent, DemoStain::HE));
    let lut = Lut::default();
    let opts = PyramidOptions {
        width: side,
        height: side,
        n_levels: n_levels(side),
        mpp: 0.5,
        quality: 90,
        description: format!(
            "Aperio Image Library v10.0.51\n{side}x{side} [0,0 {side}x{side}] (256x256) JPEG/RGB Q=90|AppMag = 20|MPP = 0.5"
        ),
        software: "slide_qc test".into(),
    };
    let mut w = PyramidWriter::create(path, opts).unwrap();
    for ty in 0..w.tiles_y() {
        let row = (0..w.tiles_x())
            .map(|tx| {
                let mut buf = vec![0u8; (TILE * TILE * 3) as usize];
                render_tile(&plan, &lut, tx, ty, &mut buf);
                let mut img = image::RgbImage::from_raw(TILE, TILE, buf).unwrap();
                if ty == PEN_ROW {
                    for y in 100..140 {
                        for x in 0..TILE {
                            let p = img.get_pixel_mut(x, y);
                            p.0 = [p.0[0] / 5 + 20, p.0[1] / 3 + 110, p.0[2] / 4 + 50];
                        }
                    }
                }
                if ty == BLUR_ROW {
                    img = image::imageops::blur(&img, 4.0);
                }
                img.into_raw()
            })
            .collect();
        w.push_row(row).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn pen_stroke_and_blur_are_excluded() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("qc.tif");
    fixture(&path);
    let slide = Slide::open(&path, None).unwrap();
    let mask = detect_tissue(&slide, &TissueParams::for_stain(Stain::HE)).unwrap();
    let mut tiling = tile_slide(&slide, &mask, &TileParams::new(0.5, 256)).unwrap();
    let before = tiling.tiles.clone();
    let excluded = exclude_tiles(&slide, &mut tiling, &QcParams::default(), 8).unwrap();
    assert_eq!(tiling.tiles.len() + excluded.len(), before.len());
    for t in &before {
        let f = excluded.iter().find(|(e, _)| e == t).map(|(_, f)| *f);
        let want = match t.row {
            PEN_ROW => Some(QcFlag::Pen),
            BLUR_ROW => Some(QcFlag::Blur),
            _ => None,
        };
        assert_eq!(f, want, "tile ({}, {}) of {} tissue tiles", t.col, t.row, before.len());
    }
    assert!(excluded.iter().any(|e| e.1 == QcFlag::Pen) && excluded.iter().any(|e| e.1 == QcFlag::Blur));
}

#[test]
fn demo_tiles_pass_and_too_little_usable_tissue_fails() {
    let d = project();
    let demo = d.path().join("demo");
    let stains = vec![DemoStain::HE, DemoStain::ER, DemoStain::PR, DemoStain::KI67];
    generate(&DemoParams { patients: 2, seed: 3, size: 1200, stains, ..DemoParams::default() }, &demo).unwrap();
    // two patients may both be censored: a clinical table of our own with one event
    std::fs::write(d.path().join("c.csv"), "patient_id,age,t,e\nP001,50,100,1\nP002,60,200,0\n").unwrap();
    let spec = |qc: &str| {
        format!(
            "name: qc\ncohort: {{clinical: c.csv, slides: demo/slides.csv, time: t, event: e, covariates: [age]}}\nstages:\n  ingest: {{kind: ingest}}\n  tiles: {{kind: tile, needs: [ingest], mpp: 0.5, size: 256{qc}}}\n"
        )
    };
    std::fs::write(d.path().join("s.yaml"), spec("")).unwrap();
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(d.path());
    let shards = run["arms"]["main"]["tiles"].as_object().unwrap();
    assert_eq!(shards.len(), 8);
    for (slide, key) in shards {
        let key = key.as_str().unwrap();
        let qc = d.path().join("cache/entries").join(&key[..2]).join(key).join("out/qc.json");
        let qc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(qc).unwrap()).unwrap();
        assert!(qc["tiles"].as_u64().unwrap() > 0, "{slide}: {qc}");
        for k in ["blur", "pen", "fold", "bubble"] {
            assert_eq!(qc["qc_excluded"][k], 0, "{slide}: {qc}");
        }
    }
    std::fs::write(d.path().join("s.yaml"), spec(", qc: {blur_min: 1000000}")).unwrap();
    let o = spatia(d.path(), &["run", "s.yaml"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("too little usable tissue") && t.contains("P001") && t.contains("blurred"), "{t}");
}

/// `train`'s `stain` modality reads the nuclear scores: the labelling index for ER and Ki-67,
/// the H-score for ER (`model.json` lists the covariates it used).
#[test]
fn stain_modality_uses_nuclear_scores() {
    let d = project();
    let o = spatia(
        d.path(),
        &["demo", "generate", "--patients", "12", "--size", "1024", "--stains", "HE,ER,KI67", "--out", "demo-data"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let spec = "name: st\nseed: 7\ncohort: {clinical: demo-data/clinical.csv, slides: demo-data/slides.csv, time: dmfs_days, event: dm, causes: {1: m, 2: d}, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n  tiles: {kind: tile, needs: [ingest], mpp: 0.5, size: 128, min_tissue: 0.3}\n  ihc: {kind: stain, needs: [tiles]}\n  model: {kind: train, needs: [ihc], model: cox, modalities: [stain, clinical], folds: 3, inner_folds: 3}\n";
    std::fs::write(d.path().join("st.yaml"), spec).unwrap();
    let o = spatia(d.path(), &["run", "st.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(d.path());
    let key = run["arms"]["main"]["model"].as_str().unwrap();
    let model = d.path().join("cache/entries").join(&key[..2]).join(key).join("out/model.json");
    let model: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(model).unwrap()).unwrap();
    let covs: Vec<&str> =
        model["inputs"].as_array().unwrap().iter().filter_map(|v| v.get("covariate")?.as_str()).collect();
    assert_eq!(covs, ["hscore:ER", "stain:ER", "stain:KI67"], "{}", model["inputs"]);
}
