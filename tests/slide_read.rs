//! Reading real slides: metadata of the four sample slides, regions, the OME-TIFF's YCbCr
//! JPEG tiles, and the errors for bad inputs (non-slide, truncated, missing µm/px).
use spatia::slide::{MppSource, Slide, SlideError};
use std::path::{Path, PathBuf};

const SLIDES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/slides");

fn slide(name: &str) -> PathBuf {
    Path::new(SLIDES).join(name)
}

#[test]
fn cmu_small_region_metadata() {
    let s = Slide::open(slide("CMU-1-Small-Region.svs"), None).unwrap();
    let m = s.meta();
    assert_eq!(m.vendor, "aperio");
    assert_eq!((m.width, m.height), (2220, 2967));
    assert_eq!(m.levels.len(), 1);
    assert_eq!(m.levels[0].downsample, 1.0);
    assert_eq!((m.mpp_x, m.mpp_y), (Some(0.499), Some(0.499)));
    assert_eq!(m.mpp_source, Some(MppSource::Vendor));
    assert_eq!(m.objective_power, Some(20.0));
    assert_eq!(m.associated, vec!["label", "macro", "thumbnail"]);
    // the digest in ../shared/data/README.md
    assert_eq!(s.digest().unwrap(), "7f57b01edcce1177ea6b5e2117adaa99850fefaece99d3ebc2f4036f792b3983");
    assert_eq!(s.meta_with_digest().unwrap().digest.as_deref(), Some(s.digest().unwrap().as_str()));
}

#[test]
fn ome_tiff_metadata_from_ome_xml() {
    let s = Slide::open(slide("OS-2-ndpi.ome.tif"), None).unwrap();
    let m = s.meta();
    assert_eq!(m.vendor, "ome-tiff");
    assert_eq!((m.width, m.height), (2202, 2202));
    assert!((m.mpp_x.unwrap() - 0.2270972430394695).abs() < 1e-15);
    assert!((m.mpp_y.unwrap() - 0.22710240047237298).abs() < 1e-15);
    assert_eq!(m.mpp_source, Some(MppSource::Vendor));
    assert_eq!(s.digest().unwrap(), "76e49acb830138febbc02e432a3a776e0adb99cd08bc9e2479ef56c831abd198");
}

#[test]
fn ome_tiff_ycbcr_tiles_decode_to_rgb() {
    // A Ki-67 slide: glass is near-neutral light grey-blue, never the pinkish tint that raw YCbCr
    // samples read as RGB would give (Y≈220, Cb≈Cr≈128 → (220, 128, 128)).
    let s = Slide::open(slide("OS-2-ndpi.ome.tif"), None).unwrap();
    let img = s.read_region(0, 0, 0, 2202, 2202).unwrap();
    let n = img.pixels().len() as f64;
    let mean: Vec<f64> = (0..3).map(|c| img.pixels().map(|p| p.0[c] as f64).sum::<f64>() / n).collect();
    // all channels close to each other (no channel at ~128 while another is at ~200)
    let spread = mean.iter().cloned().fold(f64::MIN, f64::max) - mean.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 30.0, "channel means {mean:?}");
    // the brightest pixels (glass) are light in every channel
    let bright = img.pixels().filter(|p| p.0.iter().all(|&v| v > 200)).count() as f64 / n;
    assert!(bright > 0.05, "fraction of light pixels {bright}");
    // tiles are 512 px: a region across a tile corner equals the two reads it spans
    let a = s.read_region(0, 500, 500, 24, 24).unwrap();
    for y in 0..24 {
        for x in 0..24 {
            assert_eq!(a.get_pixel(x, y), img.get_pixel(500 + x, 500 + y));
        }
    }
}

#[test]
fn boxes_pyramid_and_missing_mpp() {
    let p = slide("boxes.tiff");
    let s = Slide::inspect(&p).unwrap();
    let m = s.meta();
    assert_eq!(m.vendor, "generic-tiff");
    assert_eq!(m.levels.len(), 4);
    assert_eq!((m.levels[1].width, m.levels[1].height), (150, 125));
    assert_eq!((m.levels[3].width, m.levels[3].height), (37, 31));
    // 72 dpi stored as 28.35 px/cm is not a calibration
    assert_eq!(m.mpp_x, None);
    let err = Slide::open(&p, None).unwrap_err();
    assert!(matches!(err, SlideError::NoMpp { .. }));
    let msg = err.to_string();
    assert!(msg.contains("boxes.tiff") && msg.contains("mpp") && msg.contains("--mpp-override"), "{msg}");
    // an override makes it usable
    let s = Slide::open(&p, Some(0.25)).unwrap();
    assert_eq!((s.meta().mpp_x, s.meta().mpp_source), (Some(0.25), Some(MppSource::Override)));
    // a bad override is refused with the value
    let msg = Slide::open(&p, Some(-1.0)).unwrap_err().to_string();
    assert!(msg.contains("-1") && msg.contains("boxes.tiff"), "{msg}");
}

#[test]
fn small_svs_and_outside_is_white() {
    let s = Slide::open(slide("small.svs"), None).unwrap();
    assert_eq!((s.meta().width, s.meta().height), (16, 16));
    let img = s.read_region(0, -8, -8, 32, 32).unwrap();
    assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
    assert_eq!(img.get_pixel(31, 31).0, [255, 255, 255]);
    // the inside is the slide's content, equal to a direct read
    let inner = s.read_region(0, 0, 0, 16, 16).unwrap();
    assert_eq!(img.get_pixel(8, 8), inner.get_pixel(0, 0));
    assert_eq!(img.get_pixel(23, 23), inner.get_pixel(15, 15));
    assert!(s.read_region(1, 0, 0, 4, 4).unwrap_err().to_string().contains("level 1 does not exist"));
}

#[test]
fn pyramid_levels_agree() {
    // boxes.tiff level 1 is level 0 halved: compare a mean colour over a block
    let s = Slide::open(slide("boxes.tiff"), Some(1.0)).unwrap();
    let l0 = s.read_region(0, 100, 100, 64, 64).unwrap();
    let l1 = s.read_region(1, 100, 100, 32, 32).unwrap();
    let mean = |img: &image::RgbImage| {
        let n = img.pixels().len() as f64;
        (0..3).map(|c| img.pixels().map(|p| p.0[c] as f64).sum::<f64>() / n).collect::<Vec<_>>()
    };
    let (a, b) = (mean(&l0), mean(&l1));
    for c in 0..3 {
        assert!((a[c] - b[c]).abs() < 12.0, "level means {a:?} vs {b:?}");
    }
}

#[test]
fn non_slide_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("notes.svs");
    std::fs::write(&txt, "patient_id,path\n1,a.svs\n").unwrap();
    let e = Slide::open(&txt, None).unwrap_err();
    assert!(matches!(e, SlideError::NotASlide { .. }), "{e}");
    assert!(e.to_string().contains("notes.svs"));
    let png = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/images/skimage_ihc.png"));
    assert!(matches!(Slide::open(png, None).unwrap_err(), SlideError::NotASlide { .. }));
    let missing = dir.path().join("nope.svs");
    let e = Slide::open(&missing, None).unwrap_err();
    assert!(matches!(e, SlideError::Missing { .. }) && e.to_string().contains("nope.svs"));
    assert!(matches!(Slide::open(dir.path(), None).unwrap_err(), SlideError::NotASlide { .. }));
}

#[test]
fn truncated_slides_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["CMU-1-Small-Region.svs", "OS-2-ndpi.ome.tif", "boxes.tiff"] {
        let bytes = std::fs::read(slide(name)).unwrap();
        for keep in [bytes.len() / 2, bytes.len() - 100] {
            let p = dir.path().join(format!("cut-{keep}-{name}"));
            std::fs::write(&p, &bytes[..keep]).unwrap();
            let e = Slide::inspect(&p).unwrap_err();
            assert!(
                matches!(e, SlideError::Corrupt { .. } | SlideError::NotASlide { .. }),
                "{name} cut to {keep} bytes: {e}"
            );
            assert!(e.to_string().contains(&format!("cut-{keep}-{name}")), "{e}");
        }
    }
}

#[test]
fn parallel_reads_are_consistent() {
    use rayon::prelude::*;
    let s = Slide::open(slide("CMU-1-Small-Region.svs"), None).unwrap();
    let coords: Vec<(i64, i64)> = (0..16).map(|i| ((i % 4) * 500, (i / 4) * 700)).collect();
    let seq: Vec<_> = coords.iter().map(|&(x, y)| s.read_region(0, x, y, 256, 256).unwrap()).collect();
    let par: Vec<_> = coords.par_iter().map(|&(x, y)| s.read_region(0, x, y, 256, 256).unwrap()).collect();
    assert_eq!(seq, par);
}

#[test]
fn native_tiff_pixels_agree_with_openslide() {
    use spatia::slide::OpenOptions;
    for (name, mpp) in [("CMU-1-Small-Region.svs", None), ("boxes.tiff", Some(1.0)), ("small.svs", None)] {
        let native = Slide::open(slide(name), mpp).unwrap();
        assert_eq!(native.pixel_reader(), "native-tiff", "{name}");
        let os = Slide::open_with(slide(name), &OpenOptions { mpp_override: mpp, openslide_pixels: true }).unwrap();
        assert_eq!(os.pixel_reader(), "openslide");
        assert_eq!(native.meta(), os.meta());
        for level in 0..native.level_count() {
            let l = &native.meta().levels[level];
            let (w, h) = (l.width.min(700) as u32, l.height.min(700) as u32);
            // At levels > 0 a level-0 position that falls between level pixels is floored here,
            // while OpenSlide 3.4 resamples at the sub-pixel offset: compare whole pixels only.
            let offsets: &[(i64, i64)] = if level == 0 { &[(0, 0), (37, 61), (-5, -9)] } else { &[(0, 0)] };
            for &(x0, y0) in offsets {
                let a = native.read_region(level, x0, y0, w, h).unwrap();
                let b = os.read_region(level, x0, y0, w, h).unwrap();
                let (mut sum, mut max) = (0u64, 0u8);
                for (p, q) in a.as_raw().iter().zip(b.as_raw()) {
                    let d = p.abs_diff(*q);
                    sum += d as u64;
                    max = max.max(d);
                }
                let mean = sum as f64 / a.as_raw().len() as f64;
                // two JPEG decoders (zune-jpeg vs libjpeg) differ by rounding only
                assert!(mean < 1.0 && max <= 24, "{name} level {level} at ({x0}, {y0}): mean |Δ| {mean}, max {max}");
            }
        }
    }
}
