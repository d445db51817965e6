//! End-to-end checks of `spatia::demo::generate`: the files a real pipeline reads (OpenSlide
//! through `openslide-rs`, the CSVs), byte-identical output whatever the thread count, and
//! colours that colour deconvolution reads as the stains that were put there.
use openslide_rs::{Address, OpenSlide, Region, Size};
use spatia::demo::texture::{render_tile, Lut, SlidePlan, Stain, TILE};
use spatia::demo::{clinical, generate, DemoParams};
use std::collections::BTreeMap;
use std::path::Path;

fn small(patients: usize, stains: Vec<Stain>) -> DemoParams {
    DemoParams { patients, seed: 11, size: 1200, stains, jpeg_quality: 80, missing_ihc: 0.0 }
}

fn digests(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for sub in ["", "slides"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                let name = format!("{sub}/{}", e.file_name().to_string_lossy());
                m.insert(name, std::fs::read(e.path()).unwrap());
            }
        }
    }
    m
}

#[test]
fn same_bytes_whatever_the_thread_count() {
    let params = small(3, vec![Stain::HE, Stain::KI67, Stain::HER2]);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let pool1 = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let pool3 = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    pool1.install(|| generate(&params, a.path())).unwrap();
    pool3.install(|| generate(&params, b.path())).unwrap();
    let (da, db) = (digests(a.path()), digests(b.path()));
    assert_eq!(da.len(), 3 + 9, "3 tables + 9 slides: {:?}", da.keys());
    assert_eq!(da.keys().collect::<Vec<_>>(), db.keys().collect::<Vec<_>>());
    for (k, v) in &da {
        assert!(v == &db[k], "{k} differs between 1 and 3 threads");
    }
    // a different seed gives different slides
    let c = tempfile::tempdir().unwrap();
    generate(&DemoParams { seed: 12, ..params }, c.path()).unwrap();
    assert_ne!(std::fs::read(c.path().join("slides/P001_HE.tif")).unwrap(), da["slides/P001_HE.tif"]);
}

#[test]
fn openslide_reads_the_slides_as_aperio_with_the_rendered_colours() {
    let params = small(2, vec![Stain::HE, Stain::KI67]);
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&params, dir.path()).unwrap();
    assert_eq!(summary.slides, 4);
    let cohort: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cohort.json")).unwrap()).unwrap();
    let lut = Lut::default();
    for rec in cohort["slides"].as_array().unwrap() {
        let path = dir.path().join(rec["path"].as_str().unwrap());
        let slide = OpenSlide::new(&path).unwrap();
        let prop = |k: &str| slide.property_value(k).unwrap();
        assert_eq!(prop("openslide.vendor"), "aperio");
        assert_eq!(prop("openslide.mpp-x").parse::<f64>().unwrap(), 0.5);
        assert_eq!(prop("openslide.mpp-y").parse::<f64>().unwrap(), 0.5);
        assert_eq!(prop("openslide.objective-power"), "20");
        let levels = rec["levels"].as_array().unwrap();
        assert!(levels.len() >= 3);
        assert_eq!(slide.level_count() as usize, levels.len());
        for (l, dims) in levels.iter().enumerate() {
            let s = slide.level_dimensions(l as u32).unwrap();
            assert_eq!((s.w as u64, s.h as u64), (dims[0].as_u64().unwrap(), dims[1].as_u64().unwrap()));
        }
        // the smallest level, again as Aperio's "thumbnail" associated image
        assert_eq!(slide.associated_image_names().unwrap(), vec!["thumbnail".to_string()]);
        let (tsize, thumb) = slide.read_associated_buffer("thumbnail").unwrap();
        let last = levels.len() - 1;
        let ldims = slide.level_dimensions(last as u32).unwrap();
        assert_eq!((tsize.w, tsize.h), (ldims.w, ldims.h));
        let lowest =
            slide.read_region(&Region { size: ldims, level: last as u32, address: Address { x: 0, y: 0 } }).unwrap();
        let mean = |b: &[u8]| b.chunks_exact(4).map(|p| p[1] as f64).sum::<f64>() / (b.len() / 4) as f64;
        assert!(
            (mean(&thumb) - mean(&lowest)).abs() < 1.5,
            "thumbnail vs level {last}: {} vs {}",
            mean(&thumb),
            mean(&lowest)
        );
        // level 1 is the 4×4 box filter of level 0: whole-image means agree
        let l1 = slide.level_dimensions(1).unwrap();
        let whole1 = slide.read_region(&Region { size: l1, level: 1, address: Address { x: 0, y: 0 } }).unwrap();
        let whole0 = slide
            .read_region(&Region { size: Size { w: l1.w * 4, h: l1.h * 4 }, level: 0, address: Address { x: 0, y: 0 } })
            .unwrap();
        assert!(
            (mean(&whole0) - mean(&whole1)).abs() < 1.0,
            "level 0 vs level 1 mean green: {} vs {}",
            mean(&whole0),
            mean(&whole1)
        );
        let d2 = slide.level_downsample(2).unwrap();
        assert!((d2 - 16.0).abs() < 0.3, "level 2 downsample {d2}");

        // re-render the plan of this slide and compare with what OpenSlide decodes
        let pid = rec["patient_id"].as_str().unwrap();
        let stain = rec["stain"].as_str().unwrap().parse::<Stain>().unwrap();
        let idx: usize = pid[1..].parse::<usize>().unwrap() - 1;
        let patient = clinical::draw_patient(params.seed, idx, params.patients);
        let (w, h) = (rec["width"].as_u64().unwrap() as u32, rec["height"].as_u64().unwrap() as u32);
        let slide_seed = spatia::demo::slide_seed(params.seed, idx, stain);
        let plan = SlidePlan::new(slide_seed, w, h, stain, clinical::look_of(&patient.latent, stain));
        let mut tile = vec![0u8; (TILE * TILE * 3) as usize];
        let mut best = (0usize, 0u32, 0u32);
        for ty in 0..h / TILE {
            for tx in 0..w / TILE {
                render_tile(&plan, &lut, tx, ty, &mut tile);
                let n = tile.chunks_exact(3).filter(|p| p[1] < 215).count();
                if n > best.0 {
                    best = (n, tx, ty);
                }
            }
        }
        let (_, tx, ty) = best;
        render_tile(&plan, &lut, tx, ty, &mut tile);
        let region =
            Region { size: Size { w: TILE, h: TILE }, level: 0, address: Address { x: tx * TILE, y: ty * TILE } };
        let bgra = slide.read_region(&region).unwrap();
        let mut err = [0f64; 3];
        let mut mean_read = [0f64; 3];
        let mut mean_rendered = [0f64; 3];
        for (p, q) in tile.chunks_exact(3).zip(bgra.chunks_exact(4)) {
            let rgb = [q[2], q[1], q[0]];
            for c in 0..3 {
                err[c] += (p[c] as f64 - rgb[c] as f64).abs();
                mean_read[c] += rgb[c] as f64;
                mean_rendered[c] += p[c] as f64;
            }
        }
        let npx = (TILE * TILE) as f64;
        for c in 0..3 {
            err[c] /= npx;
            mean_read[c] /= npx;
            mean_rendered[c] /= npx;
            // JPEG loss (4:2:0, quality 80) only: a colour-space mix-up is off by tens
            assert!(err[c] < 8.0, "{}: channel {c} differs by {} per pixel from the rendering", path.display(), err[c]);
            assert!(
                (mean_read[c] - mean_rendered[c]).abs() < 2.0,
                "{}: channel {c} mean {} read vs {} rendered",
                path.display(),
                mean_read[c],
                mean_rendered[c]
            );
        }
        // tissue colour: H&E pink/purple (red and blue above green), IHC bluish-grey
        assert!(
            mean_read[1] < mean_read[0] && mean_read[1] < mean_read[2],
            "{}: mean RGB {mean_read:?}",
            path.display()
        );
    }
}

#[test]
fn tables_are_consistent() {
    let params = small(5, vec![Stain::HE, Stain::ER, Stain::KI67]);
    let dir = tempfile::tempdir().unwrap();
    generate(&params, dir.path()).unwrap();
    let manifest = std::fs::read_to_string(dir.path().join("slides.csv")).unwrap();
    let mut lines = manifest.lines();
    assert_eq!(lines.next(), Some("patient_id,path,stain"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 15);
    for r in &rows {
        assert!(dir.path().join(r[1]).is_file(), "{} missing", r[1]);
        assert!(r[2].parse::<Stain>().is_ok());
    }
    let clinical = std::fs::read_to_string(dir.path().join("clinical.csv")).unwrap();
    let mut lines = clinical.lines();
    assert_eq!(lines.next(), Some("patient_id,age,tumor_size_mm,nodes_positive,grade,er,pr,her2,ki67,dmfs_days,dm"));
    let ids: Vec<String> = lines.map(|l| l.split(',').next().unwrap().to_string()).collect();
    assert_eq!(ids, ["P001", "P002", "P003", "P004", "P005"]);
    let cohort: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cohort.json")).unwrap()).unwrap();
    assert_eq!(cohort["seed"], 11);
    assert_eq!(cohort["ground_truth"].as_array().unwrap().len(), 5);
    // the painted Ki-67 nuclei: counted, positive ones diluted by the (negative) stromal ones
    let painted: Vec<&serde_json::Value> =
        cohort["ground_truth"].as_array().unwrap().iter().filter_map(|g| g.get("ki67_painted")).collect();
    assert_eq!(painted.len(), 5, "every patient has a Ki-67 slide");
    for k in painted {
        let n = |f: &str| k[f].as_u64().unwrap();
        assert!(n("tumour_positive") + n("tumour_negative") > 20 && n("other_negative") > 0, "{k}");
        assert_eq!(n("other_positive"), 0);
        let (all, tum) = (k["all_fraction"].as_f64().unwrap(), k["tumour_fraction"].as_f64().unwrap());
        assert!(all > 0.0 && all < tum && tum < 1.0, "{k}");
    }
    let files = cohort["files"].as_object().unwrap();
    assert_eq!(files.len(), 17);
    let d = blake3::hash(&std::fs::read(dir.path().join("clinical.csv")).unwrap());
    assert_eq!(files["clinical.csv"], d.to_hex().to_string());
}

#[test]
fn bad_parameters_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = generate(&DemoParams { size: 100, ..DemoParams::default() }, dir.path()).unwrap_err();
    assert_eq!(e.to_string(), "invalid demo parameter --size: expected 1024 to 100000 px, found 100");
    let e = generate(&DemoParams { patients: 0, ..DemoParams::default() }, dir.path()).unwrap_err();
    assert!(e.to_string().contains("--patients"), "{e}");
    let e =
        generate(&DemoParams { stains: vec![Stain::HE, Stain::HE], ..DemoParams::default() }, dir.path()).unwrap_err();
    assert!(e.to_string().contains("each stain once"), "{e}");
    for f in [1.0, -0.1, f64::NAN] {
        let e = generate(&DemoParams { missing_ihc: f, ..DemoParams::default() }, dir.path()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("invalid demo parameter --missing-ihc: expected ≥ 0 and < 1 (fraction of the IHC slides left out), found {f}")
        );
    }
    let e = generate(&DemoParams { missing_ihc: 0.5, stains: vec![Stain::KI67], ..DemoParams::default() }, dir.path())
        .unwrap_err();
    assert!(e.to_string().contains("when HE is not among --stains"), "{e}");
}

/// blake3 of a file, hex; `cohort.json` with its `spatia_version` value blanked so that a
/// version bump alone does not move the pin.
fn pinned_digest(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text: String = text
        .lines()
        .map(|l| if l.trim_start().starts_with("\"spatia_version\":") { "  \"spatia_version\": \"-\"," } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// The default cohort (no slide left out) is pinned byte for byte: slides.csv, clinical.csv
/// and cohort.json (which holds the digest of every slide). A change here changes every
/// cached result computed on a demo cohort, so it must be deliberate. (The pixels go through
/// the platform's `exp`/`sin`; the pins were taken on x86_64 Linux with glibc.)
#[test]
fn default_cohort_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    generate(&small(3, vec![Stain::HE, Stain::KI67]), dir.path()).unwrap();
    let got: Vec<(&str, String)> = ["slides.csv", "clinical.csv", "cohort.json"]
        .iter()
        .map(|f| (*f, pinned_digest(&dir.path().join(f))))
        .collect();
    let want = [
        ("slides.csv", "91eda67c13ec0f3ba89a0206f2dd0f9fafae07827e3f475dbc061e02477ed29d"),
        ("clinical.csv", "b8222be4b3f66bbd4c3a7006af14fa040e3b6a856e19af1a285acd454aa26ac9"),
        ("cohort.json", "3399db3da901ba4a6a005818734c57ff44ebb7ef7519bdee95cdcbdba4a487a2"),
    ];
    for ((f, g), (_, w)) in got.iter().zip(want) {
        assert_eq!(g, w, "{f} changed: {got:?}");
    }
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path).unwrap().lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect()
}

/// `missing_ihc`: half the Ki-67 slides are gone from slides.csv and from disk, H&E stays for
/// every patient, and everything else (clinical table, truth, the slides that are written) is
/// byte for byte the complete cohort's.
#[test]
fn missing_ihc_leaves_out_ihc_slides_only() {
    let full_params = small(6, vec![Stain::HE, Stain::KI67]);
    let part_params = DemoParams { missing_ihc: 0.5, ..full_params.clone() };
    let full = tempfile::tempdir().unwrap();
    let part = tempfile::tempdir().unwrap();
    generate(&full_params, full.path()).unwrap();
    // an earlier complete run into the same directory: its left-out slides must go
    generate(&full_params, part.path()).unwrap();
    let summary = generate(&part_params, part.path()).unwrap();
    assert_eq!((summary.slides, summary.slides_left_out), (9, 3));

    let rows = csv_rows(&part.path().join("slides.csv"));
    let he: Vec<&str> = rows.iter().filter(|r| r[2] == "HE").map(|r| r[0].as_str()).collect();
    assert_eq!(he, ["P001", "P002", "P003", "P004", "P005", "P006"]);
    let ki: Vec<&str> = rows.iter().filter(|r| r[2] == "KI67").map(|r| r[0].as_str()).collect();
    assert_eq!(ki.len(), 3, "{rows:?}");
    for id in ["P001", "P002", "P003", "P004", "P005", "P006"] {
        let file = part.path().join(format!("slides/{id}_KI67.tif"));
        assert_eq!(file.is_file(), ki.contains(&id), "{} on disk vs slides.csv", file.display());
    }
    let (dfull, dpart) = (digests(full.path()), digests(part.path()));
    assert_eq!(dpart.len(), 3 + 9, "{:?}", dpart.keys());
    for (name, bytes) in &dpart {
        if name != "/slides.csv" && name != "/cohort.json" {
            assert!(bytes == &dfull[name], "{name} differs from the complete cohort's");
        }
    }
    assert!(dpart["/clinical.csv"] == dfull["/clinical.csv"]);

    let read = |d: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("cohort.json")).unwrap()).unwrap()
    };
    let (mut cfull, mut cpart) = (read(full.path()), read(part.path()));
    // the latent truth is the same; the painted Ki-67 counts exist only for written slides
    let take = |c: &mut serde_json::Value| -> Vec<Option<serde_json::Value>> {
        c["ground_truth"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .map(|g| g.as_object_mut().unwrap().remove("ki67_painted"))
            .collect()
    };
    let (pfull, ppart) = (take(&mut cfull), take(&mut cpart));
    assert_eq!(cfull["ground_truth"], cpart["ground_truth"]);
    assert!(pfull.iter().all(Option::is_some));
    for (i, (f, p)) in pfull.iter().zip(&ppart).enumerate() {
        assert!(p.is_none() || p == f, "patient {i}");
        assert_eq!(p.is_some(), ki.contains(&format!("P{:03}", i + 1).as_str()), "patient {i}");
    }
    assert!(cfull.get("left_out").is_none() && cfull["params"].get("missing_ihc").is_none());
    assert_eq!(cpart["params"]["missing_ihc"], 0.5);
    assert_eq!(cpart["summary"]["slides_left_out"], 3);
    let left: Vec<(String, String)> = cpart["left_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["patient_id"].as_str().unwrap().to_string(), v["path"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(left.len(), 3);
    for (id, path) in &left {
        assert!(!ki.contains(&id.as_str()) && !part.path().join(path).exists(), "{id} {path}");
    }
    let listed = cpart["files"].as_object().unwrap();
    assert!(left.iter().all(|(_, p)| !listed.contains_key(p)));
}

#[test]
fn left_out_slides_are_ihc_nested_and_rounded() {
    let stains = vec![Stain::HE, Stain::ER, Stain::KI67];
    let at = |f: f64| spatia::demo::left_out_slides(&DemoParams { missing_ihc: f, ..small(25, stains.clone()) });
    assert!(at(0.0).is_empty());
    // 50 IHC slides
    assert_eq!(at(0.01).len(), 1); // 0.5 rounds up
    assert_eq!(at(0.009).len(), 0);
    assert_eq!(at(0.3).len(), 15);
    assert_eq!(at(0.999).len(), 50);
    let (small_set, big_set) = (at(0.3), at(0.6));
    assert!(small_set.iter().all(|s| big_set.contains(s)), "a larger fraction leaves out a superset");
    assert!(big_set.iter().all(|(_, s)| *s != Stain::HE));
    // both IHC stains and many patients are hit, not a block
    assert!(big_set.iter().any(|(_, s)| *s == Stain::ER) && big_set.iter().any(|(_, s)| *s == Stain::KI67));
    // a function of the seed
    let other = spatia::demo::left_out_slides(&DemoParams { missing_ihc: 0.3, seed: 12, ..small(25, stains.clone()) });
    assert_ne!(other, small_set);
}
