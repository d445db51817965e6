//! Correctness bound of the nuclear Ki-67 labelling index on a tiny demo cohort: every Ki-67
//! slide tiled and scored as the `tile` and `stain` stages do, compared with the fraction of
//! DAB-positive nuclei the generator painted (`cohort.json` → `ki67_painted.all_fraction`,
//! tumour and stromal nuclei: what the score counts). The cohort-size figures (Spearman, MAE)
//! are the `ki67_accuracy` bench's (docs/slide.md).
use spatia::demo::{generate, DemoParams};
use spatia::slide::nuclei::{score_tiling, NucleiParams};
use spatia::slide::qc::QcParams;
use spatia::slide::tiling::{exclude_tiles, tile_slide, TileParams};
use spatia::slide::tissue::{detect_tissue, TissueParams};
use spatia::slide::{Slide, Stain};

#[test]
fn labelling_index_tracks_the_painted_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let params = DemoParams { patients: 6, seed: 7, size: 1500, stains: vec![Stain::KI67], ..DemoParams::default() };
    generate(&params, dir.path()).unwrap();
    let cohort: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cohort.json")).unwrap()).unwrap();
    let mut pairs = Vec::new();
    for g in cohort["ground_truth"].as_array().unwrap() {
        let id = g["patient_id"].as_str().unwrap();
        let truth = g["ki67_painted"]["all_fraction"].as_f64().unwrap();
        let slide = Slide::open(dir.path().join(format!("slides/{id}_KI67.tif")), None).unwrap();
        let mask = detect_tissue(&slide, &TissueParams::for_stain(Stain::KI67)).unwrap();
        let mut tiling = tile_slide(&slide, &mask, &TileParams::new(0.5, 256)).unwrap();
        exclude_tiles(&slide, &mut tiling, &QcParams::default(), 16).unwrap();
        let s = score_tiling(&slide, &tiling, &NucleiParams::default(), 16).unwrap();
        assert!(s.score.nuclei > 50, "{id}: {} nuclei", s.score.nuclei);
        pairs.push((s.score.labelling_index.unwrap(), truth));
    }
    let mae = pairs.iter().map(|(a, b)| (a - b).abs()).sum::<f64>() / pairs.len() as f64;
    assert!(mae <= 0.05, "mean absolute error {mae:.3} > 0.05: {pairs:?}");
    // the slide with the most painted positives scores above the one with the fewest
    let hi = pairs.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    let lo = pairs.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert!(hi.0 > lo.0, "{pairs:?}");
}
