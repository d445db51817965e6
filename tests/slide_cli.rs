//! The `spatia slide` and `spatia stain` verbs: their documented JSON shapes, exit codes and
//! error messages.
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const SLIDES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/slides");
const IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/images");
const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/skimage_ihc_hed.json");

fn spatia(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_spatia")).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn slide(name: &str) -> String {
    Path::new(SLIDES).join(name).display().to_string()
}

#[test]
fn slide_info_json_shape() {
    let (code, out, err) = spatia(&["slide", "info", &slide("CMU-1-Small-Region.svs"), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        keys(&v),
        ["associated", "height", "levels", "mpp_x", "mpp_y", "objective_power", "path", "vendor", "width"]
    );
    assert_eq!(v["width"], 2220);
    assert_eq!(v["mpp_x"], 0.499);
    assert_eq!(v["levels"][0], serde_json::json!({"width": 2220, "height": 2967, "downsample": 1.0}));
    assert_eq!(v["associated"], serde_json::json!(["label", "macro", "thumbnail"]));

    let (code, out, _) = spatia(&["slide", "info", &slide("boxes.tiff"), "--json", "--digest"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["mpp_x"].is_null() && v["mpp_y"].is_null() && v["objective_power"].is_null());
    assert_eq!(v["digest"], "76b328f7714e07da11effc3f9a2477921210faf0047a3ebaa8d90ca35b893455");
    assert_eq!(v["levels"].as_array().unwrap().len(), 4);
}

#[test]
fn slide_tiles_json_shape_and_qc_files() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("qc").display().to_string();
    let (code, out, err) = spatia(&[
        "slide",
        "tiles",
        &slide("CMU-1-Small-Region.svs"),
        "--mpp",
        "0.5",
        "--size",
        "256",
        "--json",
        "--out",
        &out_dir,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(keys(&v), ["level", "tile_size_level0", "tiles", "tissue_area_mm2"]);
    assert!(v["tiles"].as_u64().unwrap() > 0);
    assert_eq!(v["tile_size_level0"], 257);
    for f in ["mask.png", "thumbnail.png", "overlay.png", "tiles.csv"] {
        assert!(dir.path().join("qc").join(f).is_file(), "{f}");
    }
}

#[test]
fn slide_tiles_errors() {
    let (code, _, err) = spatia(&["slide", "tiles", &slide("boxes.tiff"), "--json"]);
    assert_eq!(code, 2);
    assert!(err.contains("boxes.tiff") && err.contains("--mpp-override"), "{err}");
    let (code, _, err) = spatia(&["slide", "tiles", &slide("small.svs")]);
    assert_eq!(code, 2);
    assert!(err.contains("small.svs") && err.contains("no tissue"), "{err}");
    let (code, _, err) = spatia(&["slide", "tiles", &slide("CMU-1-Small-Region.svs"), "--stain", "CD8"]);
    assert_eq!(code, 2);
    assert!(err.contains("CD8"), "{err}");
    let png = Path::new(IMAGES).join("skimage_ihc.png").display().to_string();
    let (code, _, err) = spatia(&["slide", "info", &png]);
    assert_eq!(code, 2);
    assert!(err.contains("skimage_ihc.png") && err.contains("not a whole-slide image"), "{err}");
}

#[test]
fn stain_hed_json_matches_reference() {
    let png = Path::new(IMAGES).join("skimage_ihc.png").display().to_string();
    let (code, out, err) = spatia(&["stain", "hed", &png, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(keys(&v), ["dab", "dab_positive_fraction", "eosin", "hematoxylin"]);
    assert_eq!(keys(&v["dab_positive_fraction"]), ["0.02", "0.05"]);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(REFERENCE).unwrap()).unwrap();
    for ch in ["hematoxylin", "eosin", "dab"] {
        assert_eq!(keys(&v[ch]), ["mean", "p05", "p50", "p95", "std"]);
        for k in ["mean", "std", "p05", "p50", "p95"] {
            let (a, b) = (v[ch][k].as_f64().unwrap(), r["channels"][ch][k].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-6, "{ch}.{k}: {a} vs {b}");
        }
    }
    let f = v["dab_positive_fraction"]["0.05"].as_f64().unwrap();
    assert!((f - r["dab_positive_fraction_at_0.05"].as_f64().unwrap()).abs() <= 1e-6);

    // a TIFF (the Ki-67 OME-TIFF) goes through the slide reader
    let (code, out, err) = spatia(&["stain", "hed", &slide("OS-2-ndpi.ome.tif"), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let (h, d) = (v["hematoxylin"]["mean"].as_f64().unwrap(), v["dab"]["mean"].as_f64().unwrap());
    assert!(h > 0.0 && d > 0.0, "{v}");
    let (code, _, err) = spatia(&["stain", "hed", "/nonexistent/x.png"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/x.png"), "{err}");
}

#[test]
fn stain_map_on_the_ki67_slide() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("map").display().to_string();
    let (code, stdout, err) = spatia(&[
        "stain",
        "map",
        &slide("OS-2-ndpi.ome.tif"),
        "--stain",
        "KI67",
        "--mpp",
        "0.25",
        "--size",
        "128",
        "--json",
        "--out",
        &out,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(keys(&v), ["cols", "index", "positive_pixels", "rows", "tiles", "tissue_pixels"]);
    let index = v["index"].as_f64().unwrap();
    assert!(index > 0.01 && index < 0.5, "{index}");
    let (pos, tis) = (v["positive_pixels"].as_f64().unwrap(), v["tissue_pixels"].as_f64().unwrap());
    assert!((index - pos / tis).abs() < 1e-12);
    let csv = std::fs::read_to_string(dir.path().join("map/tile_stain.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, v["tiles"].as_u64().unwrap() + 1);
    assert!(dir.path().join("map/positivity.png").is_file());
}
