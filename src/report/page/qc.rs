//! The slide QC section (`templates/report/qc.html`): one row per slide from the ingest
//! manifest (`slides.json`) and the `tile` stage's `qc.json` (tiles kept, tiles slide QC
//! excluded per reason), thumbnail / mask / overlay cards for the first slides, and the
//! `stain` stage's IHC positivity maps and nuclear labelling index (`stain.json`).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::embed::png_data_uri;
use super::format::num;
use super::{Result, Sources};
use crate::contracts::ingest::{SlideRecord, SlidesJson};
use crate::contracts::stain::StainOutput;
use crate::contracts::tiles::TileOutput;
use crate::contracts::Output;
use crate::report::pseudonyms::Pseudonyms;
use crate::slide::qc::QcCounts;

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
    /// Nuclear labelling index (positive / all nuclei) of an IHC slide.
    labelling_index: String,
    /// Tiles slide QC excluded, with the reasons.
    qc_excluded: String,
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
    /// Tiles excluded by slide QC over all slides, per reason.
    excluded: QcCounts,
    total_excluded: u64,
    /// Patient ids of the cards, in order (the maps section shows the same patients).
    #[serde(skip)]
    pub(super) shown_patients: Vec<String>,
}

impl QcView {
    /// Whether IHC positivity maps are shown.
    pub(super) fn has_ihc(&self) -> bool {
        !self.ihc.is_empty()
    }
}

/// "0", or the count and its non-zero reasons: "3 (blur 2, pen 1)".
fn excluded_text(e: QcCounts) -> String {
    let parts: Vec<String> = [("blur", e.blur), ("pen", e.pen), ("fold", e.fold), ("bubble", e.bubble)]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        format!("{} ({})", e.total(), parts.join(", "))
    }
}

/// The slides of `slides.json` (none without a manifest).
pub(super) fn slide_manifest(dir: &Path) -> Result<Vec<SlideRecord>> {
    let path = dir.join(SlidesJson::FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    Ok(SlidesJson::read(&path)?.slides)
}

pub(super) fn qc(sources: &Sources, manifest: &[SlideRecord], ps: &Pseudonyms, n_cards: usize) -> Result<QcView> {
    let tiles: BTreeMap<&str, &PathBuf> = sources.tiles.iter().map(|(s, d)| (s.as_str(), d)).collect();
    let stains: BTreeMap<&str, &PathBuf> = sources.stains.iter().map(|(s, d)| (s.as_str(), d)).collect();
    let mut ids: BTreeSet<String> = manifest.iter().map(|m| m.slide_id.clone()).collect();
    ids.extend(tiles.keys().map(|s| s.to_string()));
    ids.extend(stains.keys().map(|s| s.to_string()));
    let meta: HashMap<&str, &SlideRecord> = manifest.iter().map(|m| (m.slide_id.as_str(), m)).collect();
    // order by label so that the page does not list patients in identifier order
    let mut ordered: Vec<(String, String)> = ids.into_iter().map(|id| (ps.slide(&id), id)).collect();
    ordered.sort();
    let mut view = QcView {
        slides: Vec::new(),
        cards: Vec::new(),
        ihc: Vec::new(),
        total_tiles: 0,
        excluded: QcCounts::default(),
        total_excluded: 0,
        shown_patients: Vec::new(),
    };
    for (label, id) in &ordered {
        let row = meta.get(id.as_str()).copied();
        let stain = row.map(|m| m.stain.to_string()).unwrap_or_default();
        let patient = row.map(|m| ps.patient(&m.patient_id)).unwrap_or_default();
        let qcj = match tiles.get(id.as_str()) {
            Some(d) => Some(TileOutput::at(d).qc()?),
            None => None,
        };
        let stj = match stains.get(id.as_str()) {
            Some(d) => Some(StainOutput::at(d).summary()?),
            None => None,
        };
        let n_tiles = qcj.as_ref().map(|q| q.tiles);
        view.total_tiles += n_tiles.unwrap_or(0);
        let tissue = qcj.as_ref().map(|q| q.tissue_area_mm2);
        let ex = qcj.as_ref().map(|q| q.qc_excluded);
        if let Some(e) = ex {
            view.excluded.blur += e.blur;
            view.excluded.pen += e.pen;
            view.excluded.fold += e.fold;
            view.excluded.bubble += e.bubble;
            view.total_excluded += e.total();
        }
        let stain =
            if stain.is_empty() { stj.as_ref().map(|s| s.stain.to_string()).unwrap_or_default() } else { stain };
        view.slides.push(SlideRow {
            label: label.clone(),
            patient,
            stain: stain.clone(),
            vendor: row.map(|r| r.vendor.clone()).unwrap_or_default(),
            size: row.map(|r| format!("{} × {}", r.width, r.height)).unwrap_or_default(),
            mpp: row.and_then(|r| r.mpp_x).map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into()),
            tiles: n_tiles.map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
            tissue_mm2: num(tissue, 2),
            level: qcj.as_ref().map(|q| q.level.to_string()).unwrap_or_else(|| "—".into()),
            ihc_index: num(stj.as_ref().map(|s| s.index), 3),
            labelling_index: num(stj.as_ref().and_then(|s| s.labelling_index), 3),
            qc_excluded: ex.map(excluded_text).unwrap_or_else(|| "—".into()),
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
            if let Some(r) = row.filter(|r| !view.shown_patients.contains(&r.patient_id)) {
                view.shown_patients.push(r.patient_id.clone());
            }
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
                    index: num(Some(s.index), 3),
                    tiles: s.tiles.to_string(),
                    map: png_data_uri(&p)?,
                });
            }
        }
    }
    Ok(view)
}
