//! Tissue detection and tiling on the real slides: masks, tile counts and geometry, QC files,
//! streaming, determinism across thread counts, and the errors for slides without tissue or
//! tiles.
use spatia::slide::tiling::{for_each_tile_batch, read_tile, tile_slide, write_qc, TileParams};
use spatia::slide::tissue::{detect_tissue, TissueMethod, TissueParams};
use spatia::slide::{Slide, SlideError, Stain};
use std::path::{Path, PathBuf};

const SLIDES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/slides");

fn slide(name: &str) -> PathBuf {
    Path::new(SLIDES).join(name)
}

#[test]
fn cmu_small_region_has_tissue_and_tiles() {
    let s = Slide::open(slide("CMU-1-Small-Region.svs"), None).unwrap();
    let p = TissueParams::for_stain(Stain::HE);
    assert_eq!(p.method, TissueMethod::Saturation);
    let mask = detect_tissue(&s, &p).unwrap();
    // the whole image is 2220 × 2967 px at 0.499 µm/px = 1.64 mm²; the tissue strip covers
    // about a third to a half of it
    let total = 2220.0 * 2967.0 * 0.499 * 0.499 / 1e6;
    assert!(mask.tissue_area_mm2 > 0.25 * total && mask.tissue_area_mm2 < 0.6 * total, "{}", mask.tissue_area_mm2);
    // mask ≤ 2000 px, about 4 µm/px
    assert!(mask.mask.width().max(mask.mask.height()) <= 2000);
    assert!((mask.mask_mpp() - 4.0).abs() < 0.1, "{}", mask.mask_mpp());
    assert_eq!(mask.mask.dimensions(), mask.thumbnail.dimensions());
    // the corners are glass
    let (w, h) = mask.mask.dimensions();
    for (x, y) in [(0, 0), (w - 1, 0), (0, h - 1)] {
        assert_eq!(mask.mask.get_pixel(x, y).0[0], 0, "corner ({x}, {y})");
    }

    let t = tile_slide(&s, &mask, &TileParams::new(0.5, 256)).unwrap();
    // 256 px at 0.5 µm/px on a 0.499 µm/px scan: 256.5 → 257 level-0 px, read at level 0
    assert_eq!((t.tile_size_level0, t.level, t.read_size), (257, 0, 257));
    assert_eq!((t.cols, t.rows), (2220 / 257, 2967 / 257));
    assert!(t.tiles.len() >= 20 && t.tiles.len() <= 60, "{} tiles", t.tiles.len());
    for tile in &t.tiles {
        assert!(tile.tissue >= 0.5);
        assert_eq!((tile.x, tile.y), (tile.col as u64 * 257, tile.row as u64 * 257));
        assert!(tile.x + 257 <= 2220 && tile.y + 257 <= 2967);
    }
    let img = read_tile(&s, &t, &t.tiles[0]).unwrap();
    assert_eq!(img.dimensions(), (256, 256));
}

#[test]
fn clam_area_thresholds_find_nothing_on_cmu_small_region() {
    // CLAM's a_t = 100 reference patches of 512² level-0 px is 6.55 mm² at 0.5 µm/px: larger
    // than the whole image, so nothing survives; the error names the slide.
    let s = Slide::open(slide("CMU-1-Small-Region.svs"), None).unwrap();
    let mut p = TissueParams::for_stain(Stain::HE);
    p.min_object_mm2 = 100.0 * 512.0 * 512.0 * 0.499 * 0.499 / 1e6;
    let e = detect_tissue(&s, &p).unwrap_err();
    assert!(matches!(e, SlideError::NoTissue { .. }));
    assert!(e.to_string().contains("CMU-1-Small-Region.svs"), "{e}");
}

#[test]
fn ki67_ome_tiff_tissue_by_optical_density() {
    let s = Slide::open(slide("OS-2-ndpi.ome.tif"), None).unwrap();
    let p = TissueParams::for_stain(Stain::KI67);
    assert_eq!(p.method, TissueMethod::OpticalDensity);
    let mask = detect_tissue(&s, &p).unwrap();
    let total = 2202.0 * 2202.0 * 0.2271 * 0.2271 / 1e6;
    // a crop that is mostly tissue, with a lumen
    assert!(
        mask.tissue_area_mm2 > 0.6 * total && mask.tissue_area_mm2 < 0.99 * total,
        "{} of {total}",
        mask.tissue_area_mm2
    );
    let t = tile_slide(&s, &mask, &TileParams::new(0.5, 256)).unwrap();
    // 256 px at 0.5 µm/px = 564 level-0 px at 0.2271 µm/px: a 3 × 3 grid
    assert_eq!((t.tile_size_level0, t.cols, t.rows), (564, 3, 3));
    assert!(t.tiles.len() >= 6, "{} tiles", t.tiles.len());
    // read at level 0 and downsampled 564 → 256
    let img = read_tile(&s, &t, &t.tiles[0]).unwrap();
    assert_eq!(img.dimensions(), (256, 256));
}

#[test]
fn pyramid_level_just_finer_than_target() {
    // boxes.tiff with 0.25 µm/px: levels at 0.25, 0.5, 1.004, 2.02 µm/px
    let s = Slide::open(slide("boxes.tiff"), Some(0.25)).unwrap();
    let mut p = TissueParams::for_stain(Stain::HE);
    p.min_object_mm2 = 0.0;
    p.min_hole_mm2 = 0.0;
    p.mask_mpp = 1.0;
    p.median_um = 3.0;
    p.close_um = 0.0;
    let mask = detect_tissue(&s, &p).unwrap();
    let mut tp = TileParams::new(1.0, 16);
    tp.min_tissue = 0.1;
    let t = tile_slide(&s, &mask, &tp).unwrap();
    // 1.0 µm/px: level 2 is 1.004 µm/px (coarser than the target), so level 1 is read
    assert_eq!((t.level, t.tile_size_level0, t.read_size), (1, 64, 32));
    let tp = TileParams { mpp: 0.5, size: 16, min_tissue: 0.1 };
    let t = tile_slide(&s, &mask, &tp).unwrap();
    assert_eq!((t.level, t.tile_size_level0, t.read_size), (1, 32, 16));
}

#[test]
fn no_tissue_and_no_tile_are_errors_naming_the_slide() {
    let s = Slide::open(slide("small.svs"), None).unwrap();
    let e = detect_tissue(&s, &TissueParams::for_stain(Stain::HE)).unwrap_err();
    assert!(matches!(e, SlideError::NoTissue { .. }) && e.to_string().contains("small.svs"), "{e}");

    let s = Slide::open(slide("CMU-1-Small-Region.svs"), None).unwrap();
    let mask = detect_tissue(&s, &TissueParams::for_stain(Stain::HE)).unwrap();
    // a tile larger than the slide
    let e = tile_slide(&s, &mask, &TileParams::new(0.5, 8192)).unwrap_err();
    assert!(matches!(e, SlideError::NoTiles { .. }) && e.to_string().contains("CMU-1-Small-Region.svs"), "{e}");
    // bad parameters are refused with the value
    let e = tile_slide(&s, &mask, &TileParams { mpp: 0.5, size: 256, min_tissue: 1.5 }).unwrap_err();
    assert!(e.to_string().contains("1.5"), "{e}");
}

#[test]
fn deterministic_whatever_the_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let s = Slide::open(slide("CMU-1-Small-Region.svs"), None).unwrap();
            let mask = detect_tissue(&s, &TissueParams::for_stain(Stain::HE)).unwrap();
            let t = tile_slide(&s, &mask, &TileParams::new(0.5, 256)).unwrap();
            (mask.mask, mask.thumbnail, t)
        })
    };
    let (m1, th1, t1) = run(1);
    let (m2, th2, t2) = run(2);
    assert_eq!(m1, m2);
    assert_eq!(th1, th2);
    assert_eq!(t1, t2);
}

#[test]
fn streaming_batches_in_order() {
    let s = Slide::open(slide("CMU-1-Small-Region.svs"), None).unwrap();
    let mask = detect_tissue(&s, &TissueParams::for_stain(Stain::HE)).unwrap();
    let t = tile_slide(&s, &mask, &TileParams::new(0.5, 128)).unwrap();
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    for_each_tile_batch(&s, &t, 7, |tiles, imgs| {
        assert_eq!(tiles.len(), imgs.len());
        sizes.push(tiles.len());
        for (tile, img) in tiles.iter().zip(&imgs) {
            assert_eq!(img.dimensions(), (128, 128));
            seen.push((*tile, img.clone()));
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len(), t.tiles.len());
    assert!(sizes.iter().all(|&n| n <= 7));
    for (i, (tile, img)) in seen.iter().enumerate() {
        assert_eq!(*tile, t.tiles[i]);
        if i % 10 == 0 {
            assert_eq!(*img, read_tile(&s, &t, tile).unwrap());
        }
    }
    // an error from the consumer stops the stream and comes back
    let mut calls = 0;
    let e = for_each_tile_batch(&s, &t, 4, |_, _| {
        calls += 1;
        Err(SlideError::BadParam { what: "test".into(), expected: "x".into(), found: "y".into() })
    })
    .unwrap_err();
    assert_eq!(calls, 1);
    assert!(e.to_string().contains("test"));
}

#[test]
fn qc_files() {
    let s = Slide::open(slide("CMU-1-Small-Region.svs"), None).unwrap();
    let mask = detect_tissue(&s, &TissueParams::for_stain(Stain::HE)).unwrap();
    let t = tile_slide(&s, &mask, &TileParams::new(0.5, 256)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = write_qc(&dir.path().join("qc"), &mask, &t).unwrap();
    let m = image::open(&f.mask).unwrap().to_luma8();
    assert_eq!(m, mask.mask);
    let th = image::open(&f.thumbnail).unwrap().to_rgb8();
    assert_eq!(th, mask.thumbnail);
    let ov = image::open(&f.overlay).unwrap().to_rgb8();
    assert_eq!(ov.dimensions(), th.dimensions());
    assert_ne!(ov, th);
    let csv = std::fs::read_to_string(&f.tiles_csv).unwrap();
    assert_eq!(csv.lines().count(), t.tiles.len() + 1);
    assert_eq!(csv.lines().next(), Some("x,y,col,row,tissue"));
    let q = t.summary(&mask);
    assert_eq!(q.tiles, t.tiles.len());
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f.qc_json).unwrap()).unwrap();
    assert_eq!(j["tiles"], t.tiles.len());
    assert!((j["tissue_area_mm2"].as_f64().unwrap() - mask.tissue_area_mm2).abs() < 1e-9);
    assert_eq!(q.grid_tiles, (t.cols * t.rows) as u64);
}
