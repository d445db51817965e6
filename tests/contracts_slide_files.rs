//! The formats of the files `ingest`, `tile`, `stain` and `extract` hand on: each written from a
//! small value and compared with its golden text, read back equal, and malformed copies refused
//! with an error that names the file and the row and column (CSV) or key (JSON).
use spatia::cohort::{read_clinical, Cohort};
use spatia::contracts::extract::{read_features, Bag, BagMeta, ExtractSummary, Precision};
use spatia::contracts::ingest::{CohortCsv, CohortSummary, SlideRecord, SlidesJson};
use spatia::contracts::stain::{StainCsv, StainSummary};
use spatia::contracts::tiles::{read_qc, read_tiling, write_tiling, Tile, Tiling};
use spatia::slide::nuclei::TileNuclei;
use spatia::slide::{LevelInfo, MppSource, Stain};
use std::path::{Path, PathBuf};

fn cohort() -> Cohort {
    Cohort {
        clinical: "c.csv".into(),
        id: "patient_id".into(),
        time: "time".into(),
        event: "event".into(),
        causes: None,
        covariates: vec!["age".into(), "grade".into()],
        categorical: vec!["grade".into()],
        missing: Some("impute".into()),
        slides: None,
        mpp_override: None,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// `err` names `file` and contains every one of `want`.
fn names<E: std::fmt::Display>(err: E, file: &Path, want: &[&str]) {
    let e = err.to_string();
    assert!(e.contains(&file.display().to_string()), "{e}: does not name {}", file.display());
    for w in want {
        assert!(e.contains(w), "expected `{w}` in: {e}");
    }
}

#[test]
fn cohort_csv_and_json() {
    let d = tempfile::tempdir().unwrap();
    let clin = write(d.path(), "c.csv", "patient_id,age,grade,time,event\np1,50,G1,100,1\np2,NA,G2,200.5,0\n");
    let table = read_clinical(&clin, &cohort()).unwrap();

    let csv = d.path().join("cohort.csv");
    CohortCsv::from_table(&table).write(&csv).unwrap();
    assert_eq!(read(&csv), "patient_id,time,event,age,grade\np1,100,1,50,G1\np2,200.5,0,,G2\n");
    assert_eq!(CohortCsv::read(&csv).unwrap(), CohortCsv::from_table(&table));

    let json = d.path().join("cohort.json");
    let summary = CohortSummary::of(&table, &cohort());
    summary.write(&json).unwrap();
    let golden = r#"{
  "censored": 1,
  "covariates": {
    "age": {
      "max": 50.0,
      "mean": 50.0,
      "min": 50.0,
      "missing": 1,
      "type": "numeric"
    },
    "grade": {
      "levels": {
        "G1": 1,
        "G2": 1
      },
      "missing": 0,
      "type": "categorical"
    }
  },
  "dropped": [],
  "events": 1,
  "max_time": 200.5,
  "missing_policy": "impute",
  "patients": 2
}"#;
    assert_eq!(read(&json), golden);
    assert_eq!(CohortSummary::read(&json).unwrap(), summary);

    let h = "patient_id,time,event,age\n";
    for (text, want) in [
        (
            format!("{h}p1,10,1,5\np2,20,-1,6\n"),
            &[
                "data row 2, column 'event'",
                "expected 0 (censored), 1 (event) or a competing cause 2, 3, …, found `-1`",
            ][..],
        ),
        (format!("{h}p1,-1,1,5\n"), &["data row 1, column 'time'", "expected a finite time >= 0"]),
        (format!("{h}p1,10,1,5\np1,20,0,6\n"), &["data row 2, column 'patient_id'", "listed twice"]),
        (format!("{h}p1,x,1,5\n"), &["data row 1 (line 2), column 'time'", "expected a number"]),
        ("id,time,event\np1,10,1\n".into(), &["expected the columns `patient_id,time,event,…`"]),
    ] {
        let p = write(d.path(), "bad.csv", &text);
        names(CohortCsv::read(&p).unwrap_err(), &p, want);
    }
    let bad = golden.replace("\"censored\": 1", "\"censored\": 5");
    let p = write(d.path(), "bad.json", &bad);
    names(CohortSummary::read(&p).unwrap_err(), &p, &["expected events + censored + competing events = patients"]);
    let p = write(d.path(), "bad.json", &golden.replace("\"patients\": 2", "\"patients\": \"two\""));
    names(CohortSummary::read(&p).unwrap_err(), &p, &["at `patients`"]);
}

fn slide_record(id: &str) -> SlideRecord {
    SlideRecord {
        slide_id: id.into(),
        patient_id: "p1".into(),
        stain: Stain::KI67,
        path: "wsi/p1 ki67.tiff".into(),
        vendor: "generic-tiff".into(),
        width: 1200,
        height: 800,
        levels: vec![LevelInfo { width: 1200, height: 800, downsample: 1.0 }],
        mpp_x: Some(0.5),
        mpp_y: Some(0.5),
        mpp_source: Some(MppSource::Vendor),
        objective_power: None,
        associated: vec![],
        blake3: "ab12".into(),
    }
}

#[test]
fn slides_json_and_csv() {
    let d = tempfile::tempdir().unwrap();
    let s = SlidesJson { slides: vec![slide_record("p1_KI67")], warnings: vec!["patient `p2` has no slide".into()] };
    let json = d.path().join("slides.json");
    s.write(&json).unwrap();
    let golden = r#"{
  "slides": [
    {
      "associated": [],
      "blake3": "ab12",
      "height": 800,
      "levels": [
        {
          "downsample": 1.0,
          "height": 800,
          "width": 1200
        }
      ],
      "mpp_source": "vendor",
      "mpp_x": 0.5,
      "mpp_y": 0.5,
      "objective_power": null,
      "path": "wsi/p1 ki67.tiff",
      "patient_id": "p1",
      "slide_id": "p1_KI67",
      "stain": "KI67",
      "vendor": "generic-tiff",
      "width": 1200
    }
  ],
  "warnings": [
    "patient `p2` has no slide"
  ]
}"#;
    assert_eq!(read(&json), golden);
    assert_eq!(SlidesJson::read(&json).unwrap(), s);
    let csv = d.path().join("slides.csv");
    s.write_csv(&csv).unwrap();
    assert_eq!(
        read(&csv),
        "slide_id,patient_id,stain,path,vendor,width,height,levels,mpp_x,mpp_y,objective_power,blake3\n\
         p1_KI67,p1,KI67,wsi/p1 ki67.tiff,generic-tiff,1200,800,1,0.5,0.5,,ab12\n"
    );

    let two = SlidesJson { slides: vec![slide_record("a"), slide_record("a")], warnings: vec![] };
    let p = d.path().join("dup.json");
    names(two.write(&p).unwrap_err(), &p, &["slides[1]", "unique"]);
    let p = write(d.path(), "bad.json", &golden.replace("\"width\": 1200\n", "\"width\": 0\n"));
    names(SlidesJson::read(&p).unwrap_err(), &p, &["slides[0]", "expected a size > 0"]);
    let p = write(d.path(), "bad.json", &golden.replace("\"KI67\"", "\"CD8\""));
    names(SlidesJson::read(&p).unwrap_err(), &p, &["slides[0].stain"]);
}

#[test]
fn tiling_and_qc_json() {
    let d = tempfile::tempdir().unwrap();
    let t = Tiling {
        slide: "p1_HE".into(),
        mpp: 0.5,
        size: 256,
        tile_size_level0: 512,
        level: 0,
        level_downsample: 1.0,
        read_size: 512,
        cols: 2,
        rows: 1,
        min_tissue: 0.25,
        tissue_area_mm2: 0.125,
        tiles: vec![Tile { x: 512, y: 0, col: 1, row: 0, tissue: 0.5 }],
    };
    let p = d.path().join("tiling.json");
    write_tiling(&p, &t).unwrap();
    let golden = concat!(
        r#"{"slide":"p1_HE","mpp":0.5,"size":256,"tile_size_level0":512,"level":0,"level_downsample":1.0,"#,
        r#""read_size":512,"cols":2,"rows":1,"min_tissue":0.25,"tissue_area_mm2":0.125,"#,
        r#""tiles":[{"x":512,"y":0,"col":1,"row":0,"tissue":0.5}]}"#
    );
    assert_eq!(read(&p), golden);
    assert_eq!(read_tiling(&p).unwrap(), t);
    let p = write(d.path(), "bad.json", &golden.replace("\"col\":1", "\"col\":2"));
    names(read_tiling(&p).unwrap_err(), &p, &["tiles[0]", "2 × 1 grid"]);
    let p = write(d.path(), "bad.json", &golden.replace("\"mpp\":0.5", "\"mpp\":0"));
    names(read_tiling(&p).unwrap_err(), &p, &["at `mpp`"]);

    let qc = r#"{"slide": "p1_HE", "tissue_area_mm2": 0.125, "tiles": 3, "grid_tiles": 2, "level": 0,
        "tile_size_level0": 512, "mask_mpp": 8.0, "mask_method": "otsu"}"#;
    let p = write(d.path(), "qc.json", qc);
    names(read_qc(&p).unwrap_err(), &p, &["at `tiles`", "at most the 2 grid cells"]);
    let p = write(d.path(), "qc.json", &qc.replace("\"tiles\": 3", "\"tiles\": 2"));
    assert_eq!(read_qc(&p).unwrap().tiles, 2);
}

#[test]
fn stain_json_and_csv() {
    let d = tempfile::tempdir().unwrap();
    let tiles = vec![spatia::slide::stain_map::TileStain {
        col: 1,
        row: 0,
        mean_hematoxylin: 0.25,
        mean_dab: 0.125,
        dab_positive_fraction: 0.5,
        tissue_pixels: 4,
        positive_pixels: 2,
    }];
    let nuclei = vec![TileNuclei { col: 1, row: 0, nuclei: 10, positive_nuclei: 4, weak: 1, moderate: 2, strong: 1 }];
    let csv = d.path().join("stain.csv");
    let c = StainCsv { tiles: tiles.clone(), nuclei: nuclei.clone() };
    c.write(&csv).unwrap();
    let h = "col,row,mean_hematoxylin,mean_dab,dab_positive_fraction,tissue_pixels,positive_pixels,\
             nuclei,positive_nuclei,weak,moderate,strong\n";
    assert_eq!(read(&csv), format!("{h}1,0,0.25,0.125,0.5,4,2,10,4,1,2,1\n"));
    assert_eq!(StainCsv::read(&csv).unwrap(), c);
    let p = write(d.path(), "bad.csv", &format!("{h}1,0,0.25,0.125,1.5,4,2,10,4,1,2,1\n"));
    names(StainCsv::read(&p).unwrap_err(), &p, &["data row 1, column 'dab_positive_fraction'"]);
    let p = write(
        d.path(),
        "bad.csv",
        &format!("{h}1,0,0.25,0.125,0.5,4,2,10,4,1,2,1\n1.5,0,0.25,0.125,0.5,4,2,0,0,0,0,0\n"),
    );
    names(StainCsv::read(&p).unwrap_err(), &p, &["data row 2, column 'col'"]);
    let p = write(d.path(), "bad.csv", &format!("{h}1,0,0.25,0.125,0.5,4,2,3,4,1,2,1\n"));
    names(StainCsv::read(&p).unwrap_err(), &p, &["data row 1, column 'positive_nuclei'"]);
    let p = write(d.path(), "bad.csv", &format!("{h}1,0,0.25,0.125,0.5,4,2,10,4,1,2,2\n"));
    names(StainCsv::read(&p).unwrap_err(), &p, &["data row 1, column 'strong'"]);
    let p = write(d.path(), "bad.csv", &format!("{h}1,0,0.25,0.125,0.5,4,2,10,4,1,2,-1\n"));
    names(StainCsv::read(&p).unwrap_err(), &p, &["data row 1, column 'strong'"]);

    let s = StainSummary {
        slide: "p1_KI67".into(),
        stain: Stain::KI67,
        patient_id: "p1".into(),
        index: 0.5,
        tissue_pixels: 4,
        positive_pixels: 2,
        tiles: 1,
        cols: 2,
        rows: 1,
        positivity: vec![None, Some(0.5)],
        params: Default::default(),
        nuclei: 10,
        positive_nuclei: 4,
        labelling_index: Some(0.4),
        hotspot_index: None,
        hotspot_windows: 0,
        h_score: None,
        labelling_grid: vec![None, Some(0.4)],
        nuclei_grid: vec![None, Some(10)],
        nuclei_params: Default::default(),
    };
    let json = d.path().join("stain.json");
    s.write(&json).unwrap();
    let golden = r#"{
  "cols": 2,
  "h_score": null,
  "hotspot_index": null,
  "hotspot_windows": 0,
  "index": 0.5,
  "labelling_grid": [
    null,
    0.4
  ],
  "labelling_index": 0.4,
  "nuclei": 10,
  "nuclei_grid": [
    null,
    10
  ],
  "nuclei_params": {
    "dab_moderate": 0.4,
    "dab_strong": 0.6,
    "dab_threshold": 0.2,
    "hotspot_area_mm2": 0.2,
    "hotspot_min_nuclei": 500,
    "log_mask": true,
    "margin_um": 24.0,
    "max_area_um2": 400.0,
    "min_area_um2": 10.0,
    "min_prominence": 0.05,
    "od_threshold": 0.15,
    "pixel_size_um": 0.5,
    "sigma_um": 1.5,
    "tile_um": 256.0
  },
  "params": {
    "dab_threshold": 0.05,
    "tissue_od": 0.02
  },
  "patient_id": "p1",
  "positive_nuclei": 4,
  "positive_pixels": 2,
  "positivity": [
    null,
    0.5
  ],
  "rows": 1,
  "slide": "p1_KI67",
  "stain": "KI67",
  "tiles": 1,
  "tissue_pixels": 4
}"#;
    assert_eq!(read(&json), golden);
    assert_eq!(StainSummary::read(&json).unwrap(), s);
    // no tissue: the index does not exist, written as null and read back as NaN
    let p = write(d.path(), "nan.json", &golden.replace("\"index\": 0.5", "\"index\": null"));
    assert!(StainSummary::read(&p).unwrap().index.is_nan());
    let p = write(d.path(), "bad.json", &golden.replace("\"rows\": 1", "\"rows\": 2"));
    names(StainSummary::read(&p).unwrap_err(), &p, &["at `positivity`", "expected 4 cells"]);
    let p = write(d.path(), "bad.json", &golden.replace("\"tissue_od\": 0.02", "\"tissue_od\": 0.02, \"x\": 1"));
    names(StainSummary::read(&p).unwrap_err(), &p, &["params", "unknown field `x`"]);
    let p = write(d.path(), "bad.json", &golden.replace("\"positive_nuclei\": 4", "\"positive_nuclei\": 11"));
    names(StainSummary::read(&p).unwrap_err(), &p, &["at `positive_nuclei`"]);
    let p = write(d.path(), "bad.json", &golden.replace("\"labelling_index\": 0.4", "\"labelling_index\": null"));
    names(StainSummary::read(&p).unwrap_err(), &p, &["at `labelling_index`"]);
    let p = write(d.path(), "bad.json", &golden.replace("\"h_score\": null", "\"h_score\": 301"));
    names(StainSummary::read(&p).unwrap_err(), &p, &["at `h_score`", "[0, 300]"]);
    let p = write(d.path(), "bad.json", &golden.replace("\"hotspot_index\": null", "\"hotspot_index\": 1.5"));
    names(StainSummary::read(&p).unwrap_err(), &p, &["at `hotspot_index`"]);
    let p = write(d.path(), "bad.json", &golden.replacen("    10\n  ]", "    10,\n    3\n  ]", 1));
    names(StainSummary::read(&p).unwrap_err(), &p, &["at `nuclei_grid`", "expected 2 cells"]);
}

#[test]
fn extract_json_and_features() {
    let d = tempfile::tempdir().unwrap();
    let bag = Bag::from_rows(vec![vec![1.0, 2.0], vec![3.0, 4.0]], &[[0, 0], [512, 0]], BagMeta::default()).unwrap();
    let p = d.path().join("extract.json");
    let s = ExtractSummary::encoded("p1_HE", &bag, "handcrafted", "d1");
    s.write(&p).unwrap();
    let golden = "{\n  \"dim\": 2,\n  \"encoder\": \"handcrafted\",\n  \"encoder_digest\": \"d1\",\n  \
                  \"slide\": \"p1_HE\",\n  \"tiles\": 2\n}";
    assert_eq!(read(&p), golden);
    assert_eq!(ExtractSummary::read(&p).unwrap(), s);
    let s = ExtractSummary::precomputed("p1_HE", &bag);
    s.write(&p).unwrap();
    assert_eq!(
        read(&p),
        "{\n  \"dim\": 2,\n  \"encoder\": \"precomputed\",\n  \"slide\": \"p1_HE\",\n  \
         \"source_encoder\": null,\n  \"tiles\": 2\n}"
    );
    assert_eq!(ExtractSummary::read(&p).unwrap(), s);
    let p = write(d.path(), "bad.json", &golden.replace("\"tiles\": 2", "\"tiles\": 0"));
    names(ExtractSummary::read(&p).unwrap_err(), &p, &["at `tiles`", "expected at least 1"]);

    let h5 = d.path().join("features.h5");
    bag.write(&h5, Precision::F32).unwrap();
    assert_eq!(read_features(&h5).unwrap().features, bag.features);
    let p = write(d.path(), "features.h5", "not hdf5");
    names(read_features(&p).unwrap_err(), &p, &["HDF5 error while opening the file"]);
}

#[test]
fn typed_parameters_are_handed_on_by_type() {
    let t = spatia::stages::Typed::new(7u32);
    assert_eq!(t.get::<u32>(), Some(&7));
    assert_eq!(t.get::<String>(), None);
    let log = std::sync::Mutex::new(tempfile::tempfile().unwrap());
    let v = serde_json::Value::Null;
    let cx = spatia::stages::RunCx {
        stage: "s",
        key: "k",
        params: &v,
        typed: &t,
        out: Path::new("."),
        scratch: Path::new("."),
        root: Path::new("."),
        needs: &[],
        inputs: &[],
        item: None,
        seed: 0,
        cohort: None,
        slides: &[],
        upstream: &[],
        log: &log,
    };
    assert_eq!(*cx.typed::<u32>().unwrap(), 7);
    let e = cx.typed::<String>().unwrap_err().to_string();
    assert!(e.contains("stage `s`") && e.contains("u32") && e.contains("String"), "{e}");
}
