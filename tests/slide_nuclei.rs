//! Nuclear Ki-67 scoring (`spatia::slide::nuclei`, `spatia stain nuclei`) on a real Ki-67 crop.
//!
//! Reference: on `OS-2-ndpi.ome.tif` (a 2202 × 2202 px crop of OpenSlide's OS-2.ndpi at
//! 0.227 µm/px), QuPath 0.3.2's positive cell detection finds 1,323 cells (detection threshold
//! 0.2) and 1,066 cells (0.4), 16.6 % and 20.5 % positive at DAB threshold 0.2, 11.9 % and
//! 14.7 % at 0.5 (petebankhead/2022-qupath-cell-detection, `Ki67 cell detection/output/
//! OS-2-ndpi-results.tsv`). Spatia's defaults must land inside 1,066–1,323 nuclei and
//! 11.9–20.5 % positive.
use serde_json::Value;
use spatia::slide::nuclei::{score_slide, NucleiParams};
use spatia::slide::Slide;
use std::process::Command;

const OS2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/slides/OS-2-ndpi.ome.tif");

fn spatia(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_spatia")).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn os2_defaults_fall_in_qupath_range() {
    let slide = Slide::open(OS2, None).unwrap();
    let p = NucleiParams::default();
    let s = score_slide(&slide, &p, 8).unwrap();
    let (n, pos) = (s.score.nuclei, s.score.positive_nuclei);
    let li = s.score.labelling_index.unwrap();
    assert!((1066..=1323).contains(&n), "{n} nuclei, outside QuPath's 1066–1323");
    assert!((0.119..=0.205).contains(&li), "labelling index {li}, outside QuPath's 0.119–0.205");
    assert_eq!(s.nuclei.len() as u64, n);
    assert_eq!(s.tiles.iter().map(|t| t.nuclei as u64).sum::<u64>(), n);
    assert_eq!(s.tiles.iter().map(|t| t.positive_nuclei as u64).sum::<u64>(), pos);
    // Every nucleus within the crop (500 × 500 µm), within the size filter.
    for v in &s.nuclei {
        assert!((0.0..500.1).contains(&v.x_um) && (0.0..500.1).contains(&v.y_um), "{v:?}");
        assert!((p.min_area_um2..=p.max_area_um2).contains(&v.area_um2));
    }
    // The crop is 0.25 mm²: one 0.2 mm² window position fits on the quarter-window grid.
    assert!(s.score.hotspot_index.is_some());

    // A stricter DAB threshold keeps the nuclei and loses positives; a higher detection
    // threshold finds fewer nuclei (the direction of QuPath's table).
    let strict = score_slide(&slide, &NucleiParams { dab_threshold: 0.5, ..p }, 8).unwrap();
    assert_eq!(strict.score.nuclei, n);
    assert!(strict.score.positive_nuclei < pos);
    let high = score_slide(&slide, &NucleiParams { od_threshold: 0.2, ..p }, 8).unwrap();
    assert!(high.score.nuclei < n);
}

#[test]
fn cli_json_overlay_and_png_image() {
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("nuclei.png");
    let (code, out, err) = spatia(&["stain", "nuclei", OS2, "--json", "--overlay", overlay.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    for k in ["nuclei", "positive_nuclei", "labelling_index", "hotspot_index", "mpp", "mode"] {
        assert!(v.get(k).is_some(), "missing {k} in {v}");
    }
    assert_eq!(v["mode"], "slide");
    let n = v["nuclei"].as_u64().unwrap();
    assert!((1066..=1323).contains(&n));
    let img = image::open(&overlay).unwrap();
    assert_eq!((img.width(), img.height()), (2202, 2202));

    // The same crop as a PNG: needs --mpp-override, then agrees with the tiled slide run.
    let png = dir.path().join("os2.png");
    let slide = Slide::open(OS2, None).unwrap();
    slide.read_region(0, 0, 0, 2202, 2202).unwrap().save(&png).unwrap();
    let (code, _, err) = spatia(&["stain", "nuclei", png.to_str().unwrap(), "--json"]);
    assert_ne!(code, 0);
    assert!(err.contains("--mpp-override") && err.contains("os2.png"), "{err}");
    let (code, out, err) =
        spatia(&["stain", "nuclei", png.to_str().unwrap(), "--json", "--mpp-override", &v["mpp"].to_string()]);
    assert_eq!(code, 0, "{err}");
    let w: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(w["mode"], "image");
    let m = w["nuclei"].as_u64().unwrap();
    assert!((m as f64 - n as f64).abs() <= 0.03 * n as f64, "image {m} vs slide {n}");
    let d = w["labelling_index"].as_f64().unwrap() - v["labelling_index"].as_f64().unwrap();
    assert!(d.abs() < 0.01, "labelling index differs by {d}");
}

#[test]
fn bad_inputs() {
    let (code, _, err) = spatia(&["stain", "nuclei", "/nonexistent/slide.svs", "--json"]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/slide.svs"), "{err}");
    let (code, _, err) = spatia(&["stain", "nuclei", OS2, "--od-threshold=-1"]);
    assert_ne!(code, 0);
    assert!(err.contains("--od-threshold"), "{err}");
    // boxes.tiff carries no µm/px.
    let boxes = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/slides/boxes.tiff");
    let (code, _, err) = spatia(&["stain", "nuclei", boxes]);
    assert_ne!(code, 0);
    assert!(err.contains("µm/px") && err.contains("--mpp-override"), "{err}");
}
