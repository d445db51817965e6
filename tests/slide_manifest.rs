//! Slide manifests: every bad row is reported at once and named; a clinical patient without a
//! slide is a warning.
use spatia::cohort::manifest::{parse_manifest, validate_manifest, ManifestError};
use spatia::slide::Stain;
use std::collections::BTreeSet;
use std::path::Path;

const SLIDES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/slides");

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("wsi")).unwrap();
    for f in ["CMU-1-Small-Region.svs", "boxes.tiff", "small.svs"] {
        std::fs::copy(Path::new(SLIDES).join(f), d.join("wsi").join(f)).unwrap();
    }
    let bytes = std::fs::read(Path::new(SLIDES).join("CMU-1-Small-Region.svs")).unwrap();
    std::fs::write(d.join("wsi/cut.svs"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(d.join("wsi/notes.txt"), "not a slide\n").unwrap();
    dir
}

fn patients(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn problems(e: ManifestError) -> Vec<String> {
    e.problems
}

#[test]
fn valid_manifest_with_override_and_a_patient_without_slide() {
    let dir = setup();
    let m = dir.path().join("slides.csv");
    let ome = Path::new(SLIDES).join("OS-2-ndpi.ome.tif");
    std::fs::write(
        &m,
        format!(
            "patient_id,path,stain,mpp\nP1,wsi/CMU-1-Small-Region.svs,HE,\nP1,{},Ki-67,\nP2,wsi/boxes.tiff,HER2,0.25\n",
            ome.display()
        ),
    )
    .unwrap();
    let v = validate_manifest(&m, &patients(&["P1", "P2", "P3"]), None).unwrap();
    assert_eq!(v.slides.len(), 3);
    assert_eq!(v.slides[0].0.stain, Stain::HE);
    assert_eq!(v.slides[0].1.vendor, "aperio");
    assert_eq!(v.slides[1].0.stain, Stain::KI67);
    assert_eq!(v.slides[1].1.vendor, "ome-tiff");
    assert_eq!(v.slides[2].1.mpp_x, Some(0.25));
    assert_eq!(v.warnings.len(), 1);
    assert!(v.warnings[0].contains("P3"), "{:?}", v.warnings);
}

#[test]
fn csv_problems_are_all_reported() {
    let dir = setup();
    let m = dir.path().join("slides.csv");
    std::fs::write(
        &m,
        "patient_id,path,stain,mpp\nP1,wsi/CMU-1-Small-Region.svs,CD8,\nP1,wsi/boxes.tiff,HE,fast\n,wsi/small.svs,HE,\n",
    )
    .unwrap();
    let p = problems(parse_manifest(&m).unwrap_err());
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].contains("row 1 (line 2)") && p[0].contains("CD8"), "{p:?}");
    assert!(p[1].contains("row 2 (line 3)") && p[1].contains("fast"), "{p:?}");
    assert!(p[2].contains("row 3 (line 4)") && p[2].contains("patient_id"), "{p:?}");
    std::fs::write(&m, "patient,file\nP1,a.svs\n").unwrap();
    let p = problems(parse_manifest(&m).unwrap_err());
    assert!(p[0].contains("stain"), "{p:?}");
}

#[test]
fn slide_problems_name_their_rows() {
    let dir = setup();
    let m = dir.path().join("slides.csv");
    std::fs::write(
        &m,
        "patient_id,path,stain\n\
         P1,wsi/CMU-1-Small-Region.svs,HE\n\
         P2,wsi/missing.svs,HE\n\
         P2,wsi/cut.svs,ER\n\
         P3,wsi/notes.txt,PR\n\
         P9,wsi/small.svs,KI67\n\
         P4,wsi/boxes.tiff,HER2\n",
    )
    .unwrap();
    let p = problems(validate_manifest(&m, &patients(&["P1", "P2", "P3", "P4"]), None).unwrap_err());
    let find = |row: &str| p.iter().find(|s| s.starts_with(row)).cloned().unwrap_or_else(|| panic!("{row} in {p:?}"));
    assert!(find("row 2 (line 3)").contains("not found"), "{p:?}");
    assert!(find("row 3 (line 4)").contains("damaged or truncated"), "{p:?}");
    assert!(find("row 4 (line 5)").contains("not a whole-slide image"), "{p:?}");
    assert!(find("row 5 (line 6)").contains("P9") && find("row 5 (line 6)").contains("clinical"), "{p:?}");
    assert!(find("row 6 (line 7)").contains("microns-per-pixel"), "{p:?}");
    assert!(!p.iter().any(|s| s.starts_with("row 1 ")), "{p:?}");
    assert_eq!(p.len(), 5, "{p:?}");
}
