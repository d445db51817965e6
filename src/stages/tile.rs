//! `tile`: tissue detection and tiling, once per slide.
//!
//! **Inputs:** the slide of the shard's item (manifest row), via `needs: [ingest]`.
//! **Outputs:** `tiling.json` (grid, level read, tile size in level-0 px, kept tiles),
//! `tiles.csv` (x, y level-0 top-left, col, row, tissue fraction), `qc.json` (tissue area mm²,
//! tile count, mask method, tiles excluded by slide QC per reason), `mask.png`,
//! `thumbnail.png`, `overlay.png` (kept tiles blue; excluded ones outlined: blur orange, pen
//! magenta, fold red, bubble cyan).
//! **Slide QC** ([`crate::slide::qc`]): every tissue tile is measured (variance of the
//! Laplacian, ink-hue, dark-saturated and empty-bright fractions) and dropped from the tiling
//! when it fails a `qc:` threshold, so `extract` and `stain` never see it.
//! **Key covers:** `mpp`, `size`, `min_tissue`, `stains`, `tissue` overrides, `qc`
//! thresholds, and the slide's item digest (manifest row + file content).
//! **Reference:** CLAM's `create_patches_fp` (saturation threshold, median blur, closing,
//! area filters), with areas in mm² rather than level-0 pixels and an optical-density mask for
//! IHC.
//!
//! A slide with no tissue or no tile, or with fewer than `qc.min_usable` of its tissue tiles
//! passing slide QC, fails its shard with an error naming it.
use super::{
    in_range_f64, in_range_usize, resolved, typed, CheckCx, Checked, Fanout, ParamError, RunCx, SlideFacts, StageKind,
};
use crate::contracts::tiles::{self, TileOutput};
use crate::contracts::Output;
use crate::docpath::Seg;
use crate::slide::qc::QcParams;
use crate::slide::tiling::{exclude_tiles, tile_slide, write_qc_with_excluded, TileParams};
use crate::slide::tissue::{detect_tissue, Threshold, TissueParams};
use crate::slide::Slide;
use crate::slide::Stain;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

/// The `tile` kind.
pub struct Tile;

/// Optional overrides of the stain's default tissue detection.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TissueOverrides {
    /// Pixels above this are tissue (saturation 0–255 for H&E, H+DAB optical density for IHC).
    pub threshold: Option<f64>,
    /// Tissue pieces smaller than this are dropped, mm².
    pub min_object_mm2: Option<f64>,
    /// Holes smaller than this are filled, mm².
    pub min_hole_mm2: Option<f64>,
}

/// Parameters of `tile`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TileStageParams {
    /// Target µm/px of the tiles.
    #[serde(default = "default_mpp")]
    pub mpp: f64,
    /// Tile side in pixels at `mpp`.
    #[serde(default = "default_size")]
    pub size: u32,
    /// Minimum tissue fraction of a kept tile.
    #[serde(default = "default_min_tissue")]
    pub min_tissue: f64,
    /// Only slides of these stains (default: every slide).
    #[serde(default)]
    pub stains: Option<Vec<String>>,
    #[serde(default)]
    pub tissue: TissueOverrides,
    /// Slide QC thresholds (blur, pen, fold, bubble; the least usable fraction).
    #[serde(default)]
    pub qc: QcParams,
}

fn default_mpp() -> f64 {
    0.5
}
fn default_size() -> u32 {
    256
}
fn default_min_tissue() -> f64 {
    0.5
}

/// A tile µm/px may be this fraction of the slide's own (and no finer).
pub const MPP_TOLERANCE: f64 = 0.9;

/// Checks a `stains:` list; returns the canonical names.
pub fn check_stains(stains: &Option<Vec<String>>) -> Result<Option<Vec<String>>, ParamError> {
    let Some(list) = stains else { return Ok(None) };
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let st: Stain = s.parse().map_err(|e: String| ParamError::at(vec![Seg::key("stains"), Seg::Index(i)], e))?;
        out.push(st.as_str().to_string());
    }
    Ok(Some(out))
}

/// The stains a per-slide stage runs for, as [`Checked::stains`] keeps them (the list
/// [`check_stains`] returned, spelled as `Stain::as_str`).
pub fn typed_stains(stains: &Option<Vec<String>>) -> Option<Vec<Stain>> {
    stains.as_ref().map(|list| list.iter().filter_map(|s| s.parse().ok()).collect())
}

/// The slide of a shard, opened with its µm/px override if any.
pub fn open_item_slide(cx: &RunCx) -> anyhow::Result<(Slide, Stain)> {
    let item = cx.item.context("this stage runs per slide")?;
    let s = item.slide()?;
    let slide = Slide::open(&s.path, s.mpp).with_context(|| format!("slide {} ({})", item.shown(), s.rel_path))?;
    Ok((slide, s.stain))
}

/// The tiling of a shard's slide, written by the `tile` stage among its needs.
pub fn tiling_of(cx: &RunCx, kind: &str) -> anyhow::Result<crate::slide::tiling::Tiling> {
    let item = cx.item.context("per slide")?;
    let Some(out) =
        cx.needs.iter().flat_map(|n| n.dirs.iter()).map(|(_, d)| TileOutput::at(d)).find(TileOutput::exists)
    else {
        anyhow::bail!(
            "slide {}: `{kind}` needs a `tile` stage (none of its needs wrote tiling.json for this slide)",
            item.shown()
        );
    };
    Ok(out.tiling()?)
}

impl StageKind for Tile {
    fn name(&self) -> &'static str {
        crate::contracts::TILE
    }
    fn version(&self) -> u32 {
        // 2: slide QC (blur, pen, folds, bubbles) excludes tiles; qc.json counts them.
        2
    }
    fn about(&self) -> &'static str {
        "tissue detection, tiling at a target µm/px and slide QC (blur, pen, folds, bubbles), per slide"
    }
    fn check(&self, params: &Value, cx: &CheckCx) -> Result<Checked, ParamError> {
        let mut p: TileStageParams = typed(params)?;
        use crate::bounds as b;
        in_range_f64(vec![Seg::key("mpp")], &b::TILE_MPP, p.mpp)?;
        in_range_usize(vec![Seg::key("size")], &b::TILE_SIZE, p.size as usize)?;
        in_range_f64(vec![Seg::key("min_tissue")], &b::TILE_MIN_TISSUE, p.min_tissue)?;
        let t = &p.tissue;
        for (k, r, v) in [
            ("threshold", &b::TILE_THRESHOLD, t.threshold),
            ("min_object_mm2", &b::TILE_MIN_OBJECT, t.min_object_mm2),
            ("min_hole_mm2", &b::TILE_MIN_HOLE, t.min_hole_mm2),
        ] {
            if let Some(v) = v {
                in_range_f64(vec![Seg::key("tissue"), Seg::key(k)], r, v)?;
            }
        }
        let q = &p.qc;
        for (k, r, v) in [
            ("blur_min", &b::TILE_QC_BLUR, q.blur_min),
            ("pen_max", &b::TILE_QC_PEN, q.pen_max),
            ("fold_max", &b::TILE_QC_FOLD, q.fold_max),
            ("bright_max", &b::TILE_QC_BRIGHT, q.bright_max),
            ("min_usable", &b::TILE_QC_USABLE, q.min_usable),
        ] {
            in_range_f64(vec![Seg::key("qc"), Seg::key(k)], r, v)?;
        }
        if cx.cohort.and_then(|c| c.slides.as_ref()).is_none() {
            return Err(ParamError::at(vec![], "`tile` needs `cohort.slides` (a slide manifest)"));
        }
        p.stains = check_stains(&p.stains)?;
        let stains = p.stains.clone();
        let mut c = Checked::single(resolved(&p));
        c.fanout = Fanout::PerSlide;
        c.stains = typed_stains(&stains);
        Ok(c.with_typed(p))
    }

    fn plans_slides(&self) -> bool {
        true
    }

    fn plan_slide(&self, params: &Value, slide: &SlideFacts) -> Result<(), ParamError> {
        let p: TileStageParams = typed(params)?;
        // scanners report e.g. 0.2527 µm/px for a nominal 0.25: allow 10 % below the slide's own
        if p.mpp < slide.mpp * MPP_TOLERANCE {
            return Err(ParamError::at(
                vec![Seg::key("mpp")],
                format!(
                    "`mpp: {}` is finer than the slide's own {} µm/px: tiles would be upsampled; expected at least {:.4} (the slide's µm/px, less 10 %)",
                    p.mpp,
                    slide.mpp,
                    slide.mpp * MPP_TOLERANCE
                ),
            ));
        }
        let cells = crate::slide::tiling::grid_cells(slide.width, slide.height, slide.mpp, p.mpp, p.size);
        crate::bounds::TILES_PER_SLIDE.check_u64(cells).map_err(|e| {
            ParamError::at(
                vec![Seg::key("mpp")],
                format!("{} × {} px slide at {} µm/px: `mpp: {}`, `size: {}` give {cells} tiles; {e}: use a coarser `mpp` or a larger `size`", slide.width, slide.height, slide.mpp, p.mpp, p.size),
            )
        })
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<TileStageParams>()?;
        let (slide, stain) = open_item_slide(cx)?;
        let item = cx.item.context("per slide")?;
        let mut tp = TissueParams::for_stain(stain);
        if let Some(t) = p.tissue.threshold {
            tp.threshold = Threshold::Fixed(t);
        }
        if let Some(a) = p.tissue.min_object_mm2 {
            tp.min_object_mm2 = a;
        }
        if let Some(a) = p.tissue.min_hole_mm2 {
            tp.min_hole_mm2 = a;
        }
        let mask = detect_tissue(&slide, &tp).with_context(|| format!("slide {}", item.shown()))?;
        let mut tiling = tile_slide(&slide, &mask, &TileParams { mpp: p.mpp, size: p.size, min_tissue: p.min_tissue })
            .with_context(|| format!("slide {}", item.shown()))?;
        // outputs name the slide by id, never by absolute path, so they are the same bytes anywhere
        tiling.slide = PathBuf::from(&item.id);
        let tissue_tiles = tiling.tiles.len();
        let excluded =
            exclude_tiles(&slide, &mut tiling, &p.qc, 64).with_context(|| format!("slide {}", item.shown()))?;
        write_qc_with_excluded(cx.out, &mask, &tiling, &excluded)?;
        let usable = tiling.tiles.len() as f64 / tissue_tiles.max(1) as f64;
        if tiling.tiles.is_empty() || usable < p.qc.min_usable {
            let mut why = crate::slide::qc::QcCounts::default();
            excluded.iter().for_each(|(_, f)| why.add(*f));
            anyhow::bail!(
                "slide {}: too little usable tissue: {} of {tissue_tiles} tissue tiles pass slide QC ({:.1} %, below \
                 `qc.min_usable` {}); excluded: {} blurred, {} pen marks, {} folds, {} bubbles \
                 (see overlay.png)",
                item.shown(),
                tiling.tiles.len(),
                100.0 * usable,
                p.qc.min_usable,
                why.blur,
                why.pen,
                why.fold,
                why.bubble
            );
        }
        tiles::write_tiling(&cx.out.join(tiles::TILING_JSON), &tiling)?;
        cx.log(&format!(
            "slide {}: {} tiles ({} excluded by slide QC), tissue {:.3} mm², level {}",
            item.shown(),
            tiling.tiles.len(),
            excluded.len(),
            tiling.tissue_area_mm2,
            tiling.level
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(params: Value, width: u64, mpp: f64) -> Result<(), ParamError> {
        Tile.plan_slide(&params, &SlideFacts { width, height: width, mpp })
    }

    #[test]
    fn plan_refuses_a_tile_mpp_finer_than_the_slide() {
        let e = plan(json!({"mpp": 0.2, "size": 256}), 50_000, 0.5).unwrap_err();
        assert_eq!(e.path, vec![Seg::key("mpp")]);
        assert!(e.msg.contains("finer than the slide's own 0.5 µm/px") && e.msg.contains("0.4500"), "{}", e.msg);
        // a scanner's 0.2527 for a nominal 0.25 is fine
        assert!(plan(json!({"mpp": 0.25, "size": 256}), 50_000, 0.2527).is_ok());
        assert!(plan(json!({"mpp": 0.5, "size": 256}), 50_000, 0.5).is_ok());
    }

    #[test]
    fn plan_bounds_the_tiles_per_slide() {
        // 200,000 px square at 0.25 µm/px, 16-px tiles at 0.25: 12,500² cells
        let e = plan(json!({"mpp": 0.25, "size": 16}), 200_000, 0.25).unwrap_err();
        assert!(e.msg.contains("give 156250000 tiles") && e.msg.contains("from 0 to 1000000"), "{}", e.msg);
        assert!(plan(json!({"mpp": 0.5, "size": 256}), 200_000, 0.25).is_ok());
    }
}
