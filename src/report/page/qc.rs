//! The slide QC section (`templates/report/qc.html`): one row per slide from the ingest
//! manifest (`slides.json`) and the `tile` stage's `qc.json`, thumbnail / mask / overlay cards
//! for the first slides, and the `stain` stage's IHC positivity maps (`stain.json`).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::embed::png_data_uri;
use super::format::num;
use super::pseudonyms::Pseudonyms;
use super::{read_json, PageError, Result, Sources};

#[derive(Debug, Serialize)]
struct SlideRow {
    label: String,
    patient: String,
    stain: String,
    vendor: String,
    size: String,
    mpp: String,
    tiles: String,
    tissue_mm2: String,
    level: String,
    ihc_index: String,
}

#[derive(Debug, Serialize)]
struct QcCard {
    label: String,
    stain: String,
    tiles: String,
    tissue_mm2: String,
    thumbnail: Option<String>,
    mask: Option<String>,
    overlay: Option<String>,
}

#[derive(Debug, Serialize)]
struct IhcCard {
    label: String,
    stain: String,
    index: String,
    tiles: String,
    map: String,
}

#[derive(Debug, Serialize)]
pub(super) struct QcView {
    slides: Vec<SlideRow>,
    cards: Vec<QcCard>,
    ihc: Vec<IhcCard>,
    total_tiles: usize,
}

/// Slide rows of `slides.json`: (slide id, patient id, stain, the JSON row).
pub(super) fn slide_manifest(dir: &Path) -> Result<Vec<(String, String, String, serde_json::Value)>> {
    let path = dir.join("slides.json");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = read_json(&path)?;
    let Some(rows) = v["slides"].as_array() else {
        return Err(PageError::Contract { path, message: "expected an object with a `slides` array".into() });
    };
    Ok(rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            (s("slide_id"), s("patient_id"), s("stain"), r.clone())
        })
        .collect())
}

pub(super) fn qc(sources: &Sources, manifest: &[(String, String, String, serde_json::Value)], ps: &Pseudonyms, n_cards: usize) -> Result<QcView> {
    let tiles: BTreeMap<&str, &PathBuf> = sources.tiles.iter().map(|(s, d)| (s.as_str(), d)).collect();
    let stains: BTreeMap<&str, &PathBuf> = sources.stains.iter().map(|(s, d)| (s.as_str(), d)).collect();
    let mut ids: BTreeSet<String> = manifest.iter().map(|m| m.0.clone()).collect();
    ids.extend(tiles.keys().map(|s| s.to_string()));
    ids.extend(stains.keys().map(|s| s.to_string()));
    let meta: HashMap<&str, &(String, String, String, serde_json::Value)> = manifest.iter().map(|m| (m.0.as_str(), m)).collect();
    // order by label so that the page does not list patients in identifier order
    let mut ordered: Vec<(String, String)> = ids.into_iter().map(|id| (ps.slide(&id), id)).collect();
    ordered.sort();
    let mut view = QcView { slides: Vec::new(), cards: Vec::new(), ihc: Vec::new(), total_tiles: 0 };
    for (label, id) in &ordered {
        let m = meta.get(id.as_str());
        let row = m.map(|m| &m.3);
        let stain = m.map(|m| m.2.clone()).unwrap_or_default();
        let patient = m.map(|m| ps.patient(&m.1)).unwrap_or_default();
        let qcj: Option<serde_json::Value> = match tiles.get(id.as_str()) {
            Some(d) => Some(read_json(&d.join("qc.json"))?),
            None => None,
        };
        let stj: Option<serde_json::Value> = match stains.get(id.as_str()) {
            Some(d) => Some(read_json(&d.join("stain.json"))?),
            None => None,
        };
        let n_tiles = qcj.as_ref().and_then(|q| q["tiles"].as_u64());
        view.total_tiles += n_tiles.unwrap_or(0) as usize;
        let tissue = qcj.as_ref().and_then(|q| q["tissue_area_mm2"].as_f64());
        let stain = if stain.is_empty() { stj.as_ref().and_then(|s| s["stain"].as_str()).unwrap_or("").to_string() } else { stain };
        view.slides.push(SlideRow {
            label: label.clone(),
            patient,
            stain: stain.clone(),
            vendor: row.and_then(|r| r["vendor"].as_str()).unwrap_or("").to_string(),
            size: row.map(|r| format!("{} × {}", r["width"], r["height"])).unwrap_or_default(),
            mpp: row.and_then(|r| r["mpp_x"].as_f64()).map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into()),
            tiles: n_tiles.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
            tissue_mm2: num(tissue, 2),
            level: qcj.as_ref().and_then(|q| q["level"].as_u64()).map(|l| l.to_string()).unwrap_or_else(|| "—".into()),
            ihc_index: num(stj.as_ref().and_then(|s| s["index"].as_f64()), 3),
        });
        if let (Some(d), true) = (tiles.get(id.as_str()), view.cards.len() < n_cards) {
            let img = |f: &str| -> Result<Option<String>> {
                let p = d.join(f);
                if p.exists() {
                    png_data_uri(&p).map(Some)
                } else {
                    Ok(None)
                }
            };
            view.cards.push(QcCard {
                label: label.clone(),
                stain: stain.clone(),
                tiles: n_tiles.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
                tissue_mm2: num(tissue, 2),
                thumbnail: img("thumbnail.png")?,
                mask: img("mask.png")?,
                overlay: img("overlay.png")?,
            });
        }
        if let (Some(d), Some(s), true) = (stains.get(id.as_str()), &stj, view.ihc.len() < n_cards) {
            let p = d.join("positivity.png");
            if p.exists() {
                view.ihc.push(IhcCard {
                    label: label.clone(),
                    stain,
                    index: num(s["index"].as_f64(), 3),
                    tiles: s["tiles"].as_u64().map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
                    map: png_data_uri(&p)?,
                });
            }
        }
    }
    Ok(view)
}
