//! The `maps` stage end to end through the binary on a small generated cohort: nuclear
//! labelling maps, Moran's I of nuclear density, the nuclear hotspot fraction and the Ki-67
//! nuclei crop.
mod common;
use common::*;
use std::path::Path;

fn shard(dir: &Path, stage: &str, item: &str) -> std::path::PathBuf {
    let run = last_run(dir);
    let key = run["arms"]["main"][stage][item].as_str().unwrap_or_else(|| panic!("no shard {item}")).to_string();
    dir.join("cache/entries").join(&key[..2]).join(&key).join("out")
}

#[test]
fn maps_of_a_generated_cohort() {
    let d = project();
    let o = spatia(d.path(), &["demo", "generate", "--out", "demo", "--patients", "4", "--size", "2400"]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(
        d.path().join("s.yaml"),
        "name: mini\ncohort: {clinical: demo/clinical.csv, slides: demo/slides.csv, time: dmfs_days, event: dm, causes: {1: metastasis, 2: death}, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n  tiles: {kind: tile, needs: [ingest]}\n  ihc: {kind: stain, needs: [tiles]}\n  maps: {kind: maps, needs: [ingest, tiles, ihc]}\n",
    )
    .unwrap();
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = last_run(d.path());
    let shards = run["arms"]["main"]["maps"].as_object().expect("maps shards").clone();
    let (mut ki67, mut he) = (0, 0);
    for (item, _) in &shards {
        let out = shard(d.path(), "maps", item);
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("maps.json")).unwrap()).unwrap();
        assert_eq!(m["schema"], 2);
        let names: Vec<&str> = m["maps"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        match m["stain"].as_str().unwrap() {
            "KI67" => {
                ki67 += 1;
                assert_eq!(names, ["labelling"], "{m}");
                let svg = std::fs::read_to_string(out.join("labelling.svg")).unwrap();
                assert!(svg.contains("nuclear grid") && svg.contains(" mm<"), "legend and scale bar");
                assert!(m["moran"]["nuclear_density"]["i"].is_f64(), "{m}");
                let li = m["scores"]["labelling_index"].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&li));
                assert!(m["hotspot_method"].is_string(), "{m}");
                let crop = &m["nuclei_crop"];
                assert!(crop["nuclei"].as_u64().unwrap() > 0, "{m}");
                assert!(crop["positive_nuclei"].as_u64() <= crop["nuclei"].as_u64());
                assert!(out.join("nuclei.png").is_file());
                let svg = std::fs::read_to_string(out.join("nuclei.svg")).unwrap();
                assert!(svg.contains("DAB-positive (") && svg.contains("negative ("), "nuclei legend");
            }
            "HE" => {
                he += 1;
                assert!(names.is_empty(), "{m}");
                assert!(m["nuclei_crop"].is_null() && m["hotspot_fraction"].is_null(), "{m}");
            }
            _ => assert!(m["nuclei_crop"].is_null(), "only Ki-67 slides get a nuclei crop: {m}"),
        }
    }
    assert!(ki67 >= 1 && he == 4, "{ki67} Ki-67 and {he} H&E slides");
}
