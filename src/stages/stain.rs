//! `stain`: IHC colour deconvolution on the tile grid, once per IHC slide.
//!
//! **Inputs:** the slide of the shard's item and its tiling (`needs: [<tile stage>]`).
//! **Outputs:** `stain.csv` (per tile: col, row, mean hematoxylin and DAB optical density,
//! DAB-positive fraction of tissue pixels, nuclei, positive nuclei and their weak / moderate /
//! strong bins), `stain.json` (slide index = DAB-positive tissue pixels / tissue pixels,
//! totals, parameters, the positivity grid; the nuclear labelling index = positive / all
//! nuclei, hotspot index, H-score for ER and PR, the per-tile labelling and nuclei grids),
//! `positivity.png` (the pixel map, viridis, one cell per tile).
//! Nuclei are detected on each kept tile (read with a margin, at 0.5 µm/px) by
//! [`crate::slide::nuclei`]; every detected nucleus is counted (tumour and stroma alike).
//! **Key covers:** `dab_threshold`, `tissue_od`, `nucleus_od_threshold`,
//! `nucleus_dab_threshold`, `stains`, the tiling's key and the slide's item digest.
//! **Reference:** Ruifrok & Johnston (2001), Quantification of histochemical staining by
//! color deconvolution, Anal Quant Cytol Histol 23:291–299 — as scikit-image `rgb2hed`;
//! the nuclear scores follow QuPath's positive cell detection and the International Ki67 in
//! Breast Cancer Working Group (Nielsen et al. 2021, JNCI 113:808–819).
use super::tile::{check_stains, open_item_slide, tiling_of, typed_stains};
use super::{in_range_f64, resolved, typed, CheckCx, Checked, Fanout, ParamError, RunCx, StageKind};
use crate::contracts::stain::{StainCsv, StainSummary};
use crate::docpath::Seg;
use crate::slide::nuclei::{score_tiling, NucleiParams};
use crate::slide::stain_map::{stain_slide, StainParams};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `stain` kind.
pub struct Stain;

/// Parameters of `stain`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StainStageParams {
    /// A pixel is DAB-positive above this DAB optical density (`rgb2hed` units).
    #[serde(default = "default_dab")]
    pub dab_threshold: f64,
    /// A pixel is tissue above this hematoxylin + DAB optical density.
    #[serde(default = "default_tissue")]
    pub tissue_od: f64,
    /// IHC stains measured (default: ER, PR, HER2, KI67).
    #[serde(default = "default_stains")]
    pub stains: Option<Vec<String>>,
    /// Nuclear detection threshold on the smoothed hematoxylin + DAB optical density (base 10).
    #[serde(default = "default_nucleus_od")]
    pub nucleus_od_threshold: f64,
    /// A nucleus is positive when its mean DAB optical density (base 10) exceeds this.
    #[serde(default = "default_nucleus_dab")]
    pub nucleus_dab_threshold: f64,
}

impl StainStageParams {
    /// The nuclear-scoring parameters: [`NucleiParams`] defaults with the spec's thresholds
    /// (the H-score bins stay at 0.4 and 0.6).
    pub fn nuclei_params(&self) -> NucleiParams {
        NucleiParams {
            od_threshold: self.nucleus_od_threshold,
            dab_threshold: self.nucleus_dab_threshold,
            ..NucleiParams::default()
        }
    }
}

fn default_nucleus_od() -> f64 {
    NucleiParams::default().od_threshold
}
fn default_nucleus_dab() -> f64 {
    NucleiParams::default().dab_threshold
}

fn default_dab() -> f64 {
    StainParams::default().dab_threshold
}
fn default_tissue() -> f64 {
    StainParams::default().tissue_od
}
fn default_stains() -> Option<Vec<String>> {
    Some(["ER", "PR", "HER2", "KI67"].iter().map(|s| s.to_string()).collect())
}

impl StageKind for Stain {
    fn name(&self) -> &'static str {
        crate::contracts::STAIN
    }
    fn version(&self) -> u32 {
        2
    }
    fn about(&self) -> &'static str {
        "IHC colour deconvolution: DAB positivity and nuclear scores (labelling index, hotspot, H-score) \
         per tile and per slide"
    }
    fn check(&self, params: &Value, cx: &CheckCx) -> Result<Checked, ParamError> {
        let mut p: StainStageParams = typed(params)?;
        in_range_f64(vec![Seg::key("dab_threshold")], &crate::bounds::STAIN_DAB, p.dab_threshold)?;
        in_range_f64(vec![Seg::key("tissue_od")], &crate::bounds::STAIN_TISSUE_OD, p.tissue_od)?;
        in_range_f64(vec![Seg::key("nucleus_od_threshold")], &crate::bounds::STAIN_NUCLEUS_OD, p.nucleus_od_threshold)?;
        in_range_f64(
            vec![Seg::key("nucleus_dab_threshold")],
            &crate::bounds::STAIN_NUCLEUS_DAB,
            p.nucleus_dab_threshold,
        )?;
        if cx.cohort.and_then(|c| c.slides.as_ref()).is_none() {
            return Err(ParamError::at(vec![], "`stain` needs `cohort.slides` (a slide manifest)"));
        }
        p.stains = check_stains(&p.stains)?;
        if p.stains.as_ref().is_some_and(|s| s.iter().any(|x| x == "HE")) {
            return Err(ParamError::at(
                vec![Seg::key("stains")],
                "`stain` measures DAB on IHC slides; HE is not an IHC stain",
            ));
        }
        let stains = p.stains.clone();
        let mut c = Checked::single(resolved(&p));
        c.fanout = Fanout::PerSlide;
        c.stains = typed_stains(&stains);
        Ok(c.with_typed(p))
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<StainStageParams>()?;
        let item = cx.item.context("per slide")?;
        let tiling = tiling_of(cx, crate::contracts::STAIN)?;
        let (slide, _) = open_item_slide(cx)?;
        let params = StainParams { dab_threshold: p.dab_threshold, tissue_od: p.tissue_od };
        let s = stain_slide(&slide, &tiling, &params, 64).with_context(|| format!("slide {}", item.shown()))?;
        let np = p.nuclei_params();
        let n = score_tiling(&slide, &tiling, &np, 16).with_context(|| format!("slide {}: nuclei", item.shown()))?;
        StainCsv { tiles: s.tiles.clone(), nuclei: n.tiles.clone() }.write(&cx.out.join(StainCsv::FILE))?;
        s.write_positivity_png(&cx.out.join("positivity.png"))?;
        let summary = StainSummary::new(&item.id, item.slide()?.stain, &item.patient, &s, &n);
        summary.write(&cx.out.join(StainSummary::FILE))?;
        let shown = |v: Option<f64>| v.map_or("none".to_string(), |x| format!("{x:.4}"));
        cx.log(&format!(
            "slide {}: DAB-positive index {:.4} over {} tiles; {} nuclei, labelling index {}, hotspot index {}",
            item.shown(),
            s.index,
            s.tiles.len(),
            n.score.nuclei,
            shown(summary.labelling_index),
            shown(summary.hotspot_index)
        ));
        Ok(())
    }
}
