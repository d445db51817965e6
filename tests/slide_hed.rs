//! Colour deconvolution against scikit-image 0.26 `rgb2hed` on its own IHC sample image
//! (`../shared/reference/skimage_ihc_hed.json`), and per-tile / per-slide stain measures on the
//! Ki-67 OME-TIFF.
use serde_json::Value;
use spatia::slide::hed;
use spatia::slide::load_rgb;
use spatia::slide::stain_map::{self, StainParams};
use spatia::slide::tiling::{tile_slide, TileParams};
use spatia::slide::tissue::{detect_tissue, TissueParams};
use spatia::slide::{Slide, Stain};
use std::path::Path;

const IMAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/images");
const SLIDES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/slides");
const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/skimage_ihc_hed.json");

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(REFERENCE).expect("reference JSON")).expect("valid JSON")
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-6, "{what}: got {a}, skimage {b}");
}

#[test]
fn matches_skimage_rgb2hed_statistics() {
    let img = load_rgb(&Path::new(IMAGES).join("skimage_ihc.png"), 1 << 30).unwrap();
    let r = reference();
    assert_eq!(r["shape"][0].as_u64(), Some(img.height() as u64));
    assert_eq!(r["shape"][1].as_u64(), Some(img.width() as u64));
    let s = hed::summarize(&img, &[0.02, 0.05]);
    for (name, c) in [("hematoxylin", &s.hematoxylin), ("eosin", &s.eosin), ("dab", &s.dab)] {
        let rc = &r["channels"][name];
        for (k, v) in [
            ("mean", c.mean),
            ("std", c.std),
            ("p05", c.p05),
            ("p50", c.p50),
            ("p95", c.p95),
            ("min", c.min),
            ("max", c.max),
        ] {
            close(v, rc[k].as_f64().unwrap(), &format!("{name}.{k}"));
        }
    }
    close(s.dab_positive_fraction[0].1, r["dab_positive_fraction_at_0.02"].as_f64().unwrap(), "DAB > 0.02");
    close(s.dab_positive_fraction[1].1, r["dab_positive_fraction_at_0.05"].as_f64().unwrap(), "DAB > 0.05");
}

#[test]
fn matches_skimage_rgb2hed_pixels() {
    let img = load_rgb(&Path::new(IMAGES).join("skimage_ihc.png"), 1 << 30).unwrap();
    let lut = hed::rgb2hed_lut();
    let r = reference();
    let pixels = r["pixels"].as_array().unwrap();
    assert!(!pixels.is_empty());
    for p in pixels {
        let (x, y) = (p["x"].as_u64().unwrap() as u32, p["y"].as_u64().unwrap() as u32);
        let rgb = img.get_pixel(x, y).0;
        let want: Vec<u64> = p["rgb"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(rgb.iter().map(|&v| v as u64).collect::<Vec<_>>(), want, "pixel ({x}, {y})");
        let got = lut.hed(rgb);
        for (c, w) in p["hed"].as_array().unwrap().iter().enumerate() {
            close(got[c], w.as_f64().unwrap(), &format!("pixel ({x}, {y}) channel {c}"));
        }
    }
}

#[test]
fn ki67_slide_stain_measures() {
    let slide = Slide::open(Path::new(SLIDES).join("OS-2-ndpi.ome.tif"), None).unwrap();
    let mask = detect_tissue(&slide, &TissueParams::for_stain(Stain::KI67)).unwrap();
    let tiling = tile_slide(&slide, &mask, &TileParams::new(0.5, 256)).unwrap();
    let st = stain_map::stain_slide(&slide, &tiling, &StainParams::default(), 4).unwrap();
    assert_eq!(st.tiles.len(), tiling.tiles.len());
    assert_eq!(st.positivity.len(), (tiling.cols * tiling.rows) as usize);
    assert_eq!(st.positivity.iter().filter(|p| p.is_some()).count(), tiling.tiles.len());
    // Ki-67: a minority of the tissue is DAB-positive (brown nuclei), but some is.
    assert!(st.index > 0.01 && st.index < 0.5, "Ki-67 index {}", st.index);
    for t in &st.tiles {
        assert!(t.tissue_pixels > 0);
        assert!(t.mean_hematoxylin > 0.0 && t.mean_dab >= 0.0);
        assert!((0.0..=1.0).contains(&t.dab_positive_fraction));
        assert!(t.positive_pixels <= t.tissue_pixels);
    }
    // the slide index is the pooled fraction, consistent with the per-tile counts
    let pos: u64 = st.tiles.iter().map(|t| t.positive_pixels).sum();
    let tis: u64 = st.tiles.iter().map(|t| t.tissue_pixels).sum();
    assert!((st.index - pos as f64 / tis as f64).abs() < 1e-12);
    // the positivity map is written and decodes to the grid scaled up
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("positivity.png");
    st.write_positivity_png(&png).unwrap();
    let back = image::open(&png).unwrap();
    assert_eq!(back.width() % tiling.cols, 0);
    assert_eq!(back.width() / tiling.cols, back.height() / tiling.rows);
}

#[test]
fn white_tile_has_no_tissue_and_brown_tile_is_positive() {
    let p = StainParams::default();
    let white = image::RgbImage::from_pixel(8, 8, image::Rgb([255, 255, 255]));
    let t = stain_map::tile_stain(&white, &p);
    assert_eq!((t.tissue_pixels, t.positive_pixels), (0, 0));
    assert_eq!(t.dab_positive_fraction, 0.0);
    // (156, 118, 81) is DAB-brown in skimage's image: DAB 0.103 > 0.05
    let brown = image::RgbImage::from_pixel(8, 8, image::Rgb([156, 118, 81]));
    let t = stain_map::tile_stain(&brown, &p);
    assert_eq!(t.tissue_pixels, 64);
    assert_eq!(t.dab_positive_fraction, 1.0);
}
