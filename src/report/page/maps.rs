//! The "Spatial maps" section (`templates/report/maps.html`), from the `maps` stage's
//! `maps.json` per slide ([`crate::contracts::maps`]).
//!
//! Per patient shown (the patients of the QC section's cards, so the page shows the same
//! patients throughout; the first `qc_slides` patients by pseudonym without a QC section): each
//! slide's maps (else its thumbnail) side by side at one scale per patient (the slide widths in
//! µm set the image widths; one scale bar per patient), each map with its colour legend, the
//! slide's scores (labelling and hotspot index, Moran's I, hotspot fraction) and, for Ki-67
//! slides, the crop of detected nuclei (positive / negative).
//!
//! Cohort view: Kaplan–Meier of the event of interest by tertile of the Ki-67 labelling index
//! (positive / all nuclei of the patient's first Ki-67 slide by pseudonym; patients without one
//! are left out), tertiles by rank (the lowest ⌊n/3⌋ …), log-rank p across the three; drawn
//! with [`crate::report::plots::km`]. Needs 6 patients with an index, else a note says why.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::embed::png_data_uri;
use super::format::num;
use super::{Keys, Result, Sources};
use crate::contracts::ingest::CohortCsv;
use crate::contracts::maps::{MapsOutput, MapsSummary};
use crate::contracts::{Output, INGEST};
use crate::report::plots::{self, Figure, FigureData, KmData, KmGroup, KmStep};
use crate::report::pseudonyms::Pseudonyms;
use crate::survival::kaplan_meier::KaplanMeier;
use crate::survival::logrank::logrank;

/// Width, CSS px, of the widest slide of a patient's row.
const ROW_PX: f64 = 300.0;

#[derive(Debug, Serialize)]
struct MapImage {
    title: String,
    image: String,
    /// Inline SVG colour legend (trusted: drawn here).
    legend: String,
}

#[derive(Debug, Serialize)]
struct SlideView {
    label: String,
    stain: String,
    /// Image width, CSS px (the same µm per px for every slide of the patient).
    width_px: String,
    /// The thumbnail when the slide has no map.
    thumbnail: Option<String>,
    maps: Vec<MapImage>,
    labelling_index: String,
    hotspot_index: String,
    moran: String,
    hotspot_fraction: String,
    nuclei: Option<String>,
    nuclei_caption: String,
}

#[derive(Debug, Serialize)]
struct PatientView {
    label: String,
    slides: Vec<SlideView>,
    bar_px: String,
    bar_label: String,
}

#[derive(Debug, Serialize)]
pub(super) struct MapsView {
    slides: usize,
    patients: Vec<PatientView>,
    /// Why there is no KM figure (empty when there is one).
    km_note: String,
    km_patients: usize,
}

pub(super) struct Maps {
    pub(super) view: MapsView,
    pub(super) figures: Vec<Figure>,
}

/// The section; `None` without `maps` outputs.
pub(super) fn maps(
    sources: &Sources,
    ps: &Pseudonyms,
    shown: &[String],
    n_patients: usize,
    keys: &Keys,
) -> Result<Option<Maps>> {
    if sources.maps.is_empty() {
        return Ok(None);
    }
    let mut all: Vec<(MapsSummary, MapsOutput)> = Vec::new();
    for (_, dir) in &sources.maps {
        let out = MapsOutput::at(dir);
        all.push((out.summary()?, out));
    }
    all.sort_by(|a, b| a.0.label.cmp(&b.0.label));
    let mut by_patient: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (s, _)) in all.iter().enumerate() {
        by_patient.entry(s.patient_id.as_str()).or_default().push(i);
    }
    let mut chosen: Vec<String> = shown.iter().filter(|p| by_patient.contains_key(p.as_str())).cloned().collect();
    chosen.dedup();
    if chosen.is_empty() {
        let mut ids: Vec<(String, String)> = by_patient.keys().map(|p| (ps.patient(p), p.to_string())).collect();
        ids.sort();
        chosen = ids.into_iter().take(n_patients).map(|(_, p)| p).collect();
    }
    let mut style = plots::Style::page(Default::default());
    style.width_mm = 60.0;
    let mut patients = Vec::new();
    for p in &chosen {
        let idx = &by_patient[p.as_str()];
        let widest = idx
            .iter()
            .map(|&i| all[i].0.thumbnail.width as f64 * all[i].0.thumbnail.um_per_px)
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        let um_per_css = widest / ROW_PX;
        let mut slides = Vec::new();
        for &i in idx {
            let (s, out) = &all[i];
            let width_um = s.thumbnail.width as f64 * s.thumbnail.um_per_px;
            let mut maps = Vec::new();
            for m in &s.maps {
                let title = if m.capped { format!("{} (capped at {:.3})", m.title, m.hi) } else { m.title.clone() };
                let legend = plots::colorbar::draw(&title, (m.lo, m.hi), crate::slide::stain_map::viridis, &style)?;
                maps.push(MapImage { title, image: png_data_uri(&out.path(&m.image))?, legend });
            }
            let thumbnail = if maps.is_empty() { Some(png_data_uri(&out.path(&s.thumbnail.file))?) } else { None };
            let moran = s
                .moran
                .iter()
                .map(|(k, v)| format!("{} {}", k.replace('_', " "), num(v.as_ref().map(|m| m.i), 3)))
                .collect::<Vec<_>>()
                .join(" · ");
            let (nuclei, nuclei_caption) = match &s.nuclei_crop {
                Some(c) => (
                    Some(png_data_uri(&out.path(&c.image))?),
                    format!("{} nuclei, {} positive, in a {:.0} µm crop", c.nuclei, c.positive_nuclei, c.width_um),
                ),
                None => (None, String::new()),
            };
            slides.push(SlideView {
                label: s.label.clone(),
                stain: s.stain.clone(),
                width_px: format!("{:.0}", width_um / um_per_css),
                thumbnail,
                maps,
                labelling_index: num(s.scores.labelling_index, 3),
                hotspot_index: num(s.scores.hotspot_index, 3),
                moran: if moran.is_empty() { "—".into() } else { moran },
                hotspot_fraction: match (&s.hotspot_fraction, &s.hotspot_method) {
                    (Some(f), Some(m)) => format!("{} ({m})", num(Some(*f), 3)),
                    _ => "—".into(),
                },
                nuclei,
                nuclei_caption,
            });
        }
        let bar_um = [100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0]
            .into_iter()
            .rev()
            .find(|&b| b <= widest / 4.0)
            .unwrap_or(100.0);
        patients.push(PatientView {
            label: ps.patient(p),
            slides,
            bar_px: format!("{:.1}", bar_um / um_per_css),
            bar_label: format!("{} mm", bar_um / 1000.0),
        });
    }
    let (figures, km_note, km_patients) = km_by_tertile(sources, &all, keys)?;
    Ok(Some(Maps { view: MapsView { slides: all.len(), patients, km_note, km_patients }, figures }))
}

/// KM by tertile of the Ki-67 labelling index (see the module doc).
fn km_by_tertile(
    sources: &Sources,
    all: &[(MapsSummary, MapsOutput)],
    keys: &Keys,
) -> Result<(Vec<Figure>, String, usize)> {
    let Some(dir) = &sources.ingest else { return Ok((Vec::new(), "no cohort table (`ingest`)".into(), 0)) };
    let table = CohortCsv::read(&PathBuf::from(dir).join(CohortCsv::FILE))?;
    let mut index: BTreeMap<&str, f64> = BTreeMap::new();
    for (s, _) in all.iter().filter(|(s, _)| s.stain == "KI67") {
        if let Some(li) = s.scores.labelling_index {
            index.entry(s.patient_id.as_str()).or_insert(li);
        }
    }
    let mut rows: Vec<(f64, f64, bool)> =
        table.rows.iter().filter_map(|r| index.get(r.patient_id.as_str()).map(|&li| (li, r.time, r.event))).collect();
    let n = rows.len();
    if n < 6 {
        return Ok((Vec::new(), format!("{n} patient(s) with a Ki-67 labelling index; the tertile plot needs 6"), n));
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let labels = ["lowest third", "middle third", "highest third"];
    let group: Vec<usize> = (0..n).map(|i| i * 3 / n).collect();
    let time: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let event: Vec<bool> = rows.iter().map(|r| r.2).collect();
    let mut groups = Vec::new();
    for (g, label) in labels.iter().enumerate() {
        let sel: Vec<usize> = (0..n).filter(|&i| group[i] == g).collect();
        let t: Vec<f64> = sel.iter().map(|&i| time[i]).collect();
        let e: Vec<bool> = sel.iter().map(|&i| event[i]).collect();
        let Ok(km) = KaplanMeier::fit(&t, &e) else { continue };
        let lo = sel.first().map(|&i| rows[i].0).unwrap_or(f64::NAN);
        let hi = sel.last().map(|&i| rows[i].0).unwrap_or(f64::NAN);
        let mut steps =
            vec![KmStep { time: 0.0, survival: 1.0, lower: 1.0, upper: 1.0, at_risk: km.n, events: 0, censored: 0 }];
        for (pt, s) in km.curve().iter().skip(1).zip(&km.steps) {
            steps.push(KmStep {
                time: pt.time,
                survival: pt.survival,
                lower: pt.lower,
                upper: pt.upper,
                at_risk: s.at_risk,
                events: s.events,
                censored: s.censored,
            });
        }
        groups.push(KmGroup { label: format!("Ki-67 LI {label} ({lo:.2}–{hi:.2})"), steps });
    }
    if groups.len() < 2 {
        return Ok((Vec::new(), "fewer than two tertiles could be drawn".into(), n));
    }
    let names: Vec<&str> = group.iter().map(|&g| labels[g]).collect();
    let p_value = logrank(&time, &event, &names).ok().map(|l| l.p_value).filter(|p| p.is_finite());
    let figure = Figure {
        name: "km_ki67_tertile".into(),
        title: "Kaplan–Meier by Ki-67 labelling-index tertile".into(),
        arm: None,
        horizon: None,
        on_page: true,
        sources: keys.of(INGEST, None),
        data: FigureData::Km(KmData { groups, p_value, ci: 0.95 }),
    };
    Ok((vec![figure], String::new(), n))
}
