//! `stain`: IHC colour deconvolution on the tile grid, once per IHC slide.
//!
//! **Inputs:** the slide of the shard's item and its tiling (`needs: [<tile stage>]`).
//! **Outputs:** `stain.csv` (per tile: col, row, mean hematoxylin and DAB optical density,
//! DAB-positive fraction of tissue pixels), `stain.json` (slide index = DAB-positive tissue
//! pixels / tissue pixels, totals, parameters, the positivity grid), `positivity.png` (the map,
//! viridis, one cell per tile).
//! **Key covers:** `dab_threshold`, `tissue_od`, `stains`, the tiling's key and the slide's
//! item digest.
//! **Reference:** Ruifrok & Johnston (2001), Quantification of histochemical staining by
//! color deconvolution, Anal Quant Cytol Histol 23:291–299 — as scikit-image `rgb2hed`.
use super::tile::{check_stains, open_item_slide, tiling_of, typed_stains};
use super::{in_range_f64, resolved, typed, CheckCx, Checked, Fanout, ParamError, RunCx, StageKind};
use crate::contracts::stain::{StainCsv, StainSummary};
use crate::docpath::Seg;
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
        1
    }
    fn about(&self) -> &'static str {
        "IHC colour deconvolution: DAB positivity per tile and per slide"
    }
    fn check(&self, params: &Value, cx: &CheckCx) -> Result<Checked, ParamError> {
        let mut p: StainStageParams = typed(params)?;
        in_range_f64(vec![Seg::key("dab_threshold")], &crate::bounds::STAIN_DAB, p.dab_threshold)?;
        in_range_f64(vec![Seg::key("tissue_od")], &crate::bounds::STAIN_TISSUE_OD, p.tissue_od)?;
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
        StainCsv { tiles: s.tiles.clone() }.write(&cx.out.join(StainCsv::FILE))?;
        s.write_positivity_png(&cx.out.join("positivity.png"))?;
        StainSummary::new(&item.id, item.slide()?.stain, &item.patient, &s).write(&cx.out.join(StainSummary::FILE))?;
        cx.log(&format!("slide {}: DAB-positive index {:.4} over {} tiles", item.shown(), s.index, s.tiles.len()));
        Ok(())
    }
}
