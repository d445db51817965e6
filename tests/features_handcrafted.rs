//! The handcrafted encoder and the pipeline on real images (tiatoolbox's H&E target image,
//! scikit-image's IHC image): scikit-image agreement, determinism across thread counts and
//! worker counts, stain sanity, tile errors.
use spatia::features::handcrafted::{tile_features, Handcrafted, FEATURES};
use spatia::features::pipeline::{grid, run_collect, PipelineConfig};
use spatia::features::{Encoder, RgbImage};

const HE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/images/tiatoolbox_target_image.png");
const IHC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/images/skimage_ihc.png");
const IHC_REF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/skimage_ihc_hed.json");

fn load(path: &str) -> RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("{path}: {e}")).to_rgb8()
}

fn tiles(img: &RgbImage, size: u32) -> Vec<RgbImage> {
    grid(img.width(), img.height(), size)
        .into_iter()
        .map(|[x, y]| image::imageops::crop_imm(img, x as u32, y as u32, size, size).to_image())
        .collect()
}

fn idx(name: &str) -> usize {
    FEATURES.iter().position(|f| f.0 == name).unwrap_or_else(|| panic!("no feature {name}"))
}

#[test]
fn whole_ihc_image_matches_scikit_image_rgb2hed_statistics() {
    let img = load(IHC);
    let f = tile_features(&img).unwrap();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(IHC_REF).unwrap()).unwrap();
    for (channel, prefix) in [("hematoxylin", "h"), ("eosin", "e"), ("dab", "dab")] {
        let r = &v["channels"][channel];
        let mean = r["mean"].as_f64().unwrap();
        let std = r["std"].as_f64().unwrap();
        let p50 = r["p50"].as_f64().unwrap();
        let got_mean = f[idx(&format!("{prefix}_mean"))] as f64;
        let got_std = f[idx(&format!("{prefix}_std"))] as f64;
        let got_p50 = f[idx(&format!("{prefix}_p50"))] as f64;
        assert!((got_mean - mean).abs() < 1e-6 + 1e-5 * mean, "{channel} mean {got_mean} vs {mean}");
        assert!((got_std - std).abs() < 1e-6 + 1e-4 * std, "{channel} std {got_std} vs {std}");
        // numpy interpolates between ranks, we take the lower rank: equal within a pixel step.
        assert!((got_p50 - p50).abs() < 2e-3, "{channel} median {got_p50} vs {p50}");
    }
}

#[test]
fn deterministic_whatever_the_thread_and_worker_count() {
    let img = image::imageops::crop_imm(&load(HE), 250, 250, 500, 500).to_image();
    let ts = tiles(&img, 100);
    assert_eq!(ts.len(), 25);
    let enc = Handcrafted::new();
    let one =
        rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| enc.encode_batch(&ts)).unwrap();
    let two =
        rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| enc.encode_batch(&ts)).unwrap();
    assert_eq!(one, two);
    assert_eq!(one.len(), 25);
    assert!(one.iter().all(|r| r.len() == 64 && r.iter().all(|v| v.is_finite())));
    for workers in [1, 3] {
        for batch_size in [1, 7] {
            let cfg =
                PipelineConfig { workers, batch_size, queue_batches: 2, worker_nice: if workers == 3 { 5 } else { 0 } };
            let (rows, stats) = run_collect(0..ts.len(), |i| Ok(ts[i].clone()), &enc, &cfg).unwrap();
            assert_eq!(rows, one, "workers {workers} batch {batch_size}");
            assert_eq!(stats.tiles, 25);
            assert_eq!(stats.batches, 25usize.div_ceil(batch_size));
        }
    }
    // Tiles differ from each other: the features are not constant.
    assert!(one.iter().any(|r| r != &one[0]));
}

#[test]
fn stains_and_nuclei_are_where_they_should_be() {
    let he = Handcrafted::new().encode_batch(&tiles(&load(HE), 250)).unwrap();
    let ihc = Handcrafted::new().encode_batch(&tiles(&load(IHC), 256)).unwrap();
    let mean =
        |rows: &[Vec<f32>], name: &str| rows.iter().map(|r| r[idx(name)] as f64).sum::<f64>() / rows.len() as f64;
    // The H&E image has eosin, the IHC image has (almost) none and much more DAB.
    assert!(
        mean(&he, "e_mean") > 10.0 * mean(&ihc, "e_mean"),
        "eosin H&E {} IHC {}",
        mean(&he, "e_mean"),
        mean(&ihc, "e_mean")
    );
    assert!(mean(&ihc, "dab_mean") > mean(&he, "dab_mean"));
    // H&E tissue at ~0.5 µm/px shows nuclei.
    assert!(mean(&he, "nuclei_per_10k_px") > 1.0, "nuclei/10k px: {}", mean(&he, "nuclei_per_10k_px"));
    assert!(mean(&he, "nucleus_area_mean") >= 20.0);
    // LBP histograms are distributions.
    for r in he.iter().chain(&ihc) {
        let s: f32 = (0..10).map(|k| r[idx("lbp_0") + k]).sum();
        assert!((s - 1.0).abs() < 1e-5, "LBP histogram sums to {s}");
    }
}

#[test]
fn the_first_failing_tile_in_input_order_stops_the_pipeline() {
    let img = load(HE);
    let ts = tiles(&img, 100);
    let cfg = PipelineConfig { workers: 3, batch_size: 8, queue_batches: 2, worker_nice: 0 };
    let err = run_collect(
        0..ts.len(),
        |i| if i == 13 || i == 40 { Err(format!("cannot read tile at index {i}")) } else { Ok(ts[i].clone()) },
        &Handcrafted::new(),
        &cfg,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "tile 13: cannot read tile at index 13");
    // A tile the encoder rejects is reported with its index too.
    let err =
        run_collect(0..3, |i| Ok(if i == 2 { RgbImage::new(2, 2) } else { ts[i].clone() }), &Handcrafted::new(), &cfg)
            .unwrap_err();
    assert!(err.to_string().starts_with("tile 2: handcrafted encoder: expected a tile of at least 3×3"), "{err}");
}

#[test]
fn pipeline_rejects_zero_sizes() {
    let cfg = PipelineConfig { workers: 0, batch_size: 8, queue_batches: 2, worker_nice: 0 };
    let err = run_collect(0..1, |_| Ok(RgbImage::new(8, 8)), &Handcrafted::new(), &cfg).unwrap_err();
    assert!(err.to_string().contains("found 0, 8, 2"), "{err}");
}

#[test]
fn grid_skips_partial_edge_tiles() {
    assert_eq!(grid(5, 3, 2), vec![[0, 0], [2, 0]]);
    assert!(grid(1, 1, 2).is_empty());
}
