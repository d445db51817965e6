//! `maps.json` (written by `maps` per slide, read by the report's "Spatial maps" section): the
//! slide's map figures, their value scales, its spatial statistics and its highest- and
//! lowest-attention tiles.
//!
//! # Format
//! Pretty JSON, keys sorted: `schema` (2), `slide`, `stain`, `patient_id`, `label` (the slide's
//! pseudonym, or its id when the spec shows ids), `thumbnail` (`file`, `width`, `height`, `um_per_px`
//! of the thumbnail), `maps` (each: `name`, `title`, `image` — the overlay PNG —, `figure` — the SVG
//! with legend, scale bar and label —, `lo`, `hi`, `capped`: whether `hi` is a cap below the
//! largest value), `moran` (map name → Moran's I, [`crate::slide::moran::Moran`], or `null` where
//! it does not exist), `hotspot_fraction` (or `null`) and `hotspot_method` (`nuclear`: tiles whose
//! labelling index reaches the slide's nuclear hotspot index; `positivity`: tiles at or above the
//! tile mean + 2 SD of DAB-positive fraction; `null` with no fraction), `scores` (the slide's
//! `labelling_index`, `hotspot_index`, `nuclei`, `positive_nuclei` from `stain`, each `null`
//! where absent), `nuclei_crop` (Ki-67 slides, or `null`: `image`, `figure`, level-0 corner `x`,
//! `y`, `width_um`, `nuclei`, `positive_nuclei`), `top_tiles` and `bottom_tiles` (each: `file`,
//! `x`, `y` level-0 corner, `attention`).
//!
//! # Validation
//! The schema; every file a plain file name (`tiles/` allowed for tile images) without `..`;
//! every scale finite with `lo < hi`; a hotspot fraction in [0, 1]; at most 8 tiles each side.
//! Errors name the file and the key.
use super::error::{read_json, shown, write_json, ContractError, Result};
use crate::slide::moran::Moran;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Schema version of `maps.json`.
pub const SCHEMA: u32 = 2;

/// Highest- (and lowest-) attention tiles kept per slide.
pub const EXTREME_TILES: usize = 8;

/// The thumbnail the maps are drawn on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thumbnail {
    pub file: String,
    pub width: u32,
    pub height: u32,
    /// Micrometres per thumbnail pixel.
    pub um_per_px: f64,
}

/// One map of the slide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapEntry {
    /// `positivity`, `attention`, `phenotypes`.
    pub name: String,
    /// The legend's title.
    pub title: String,
    /// The overlay (PNG).
    pub image: String,
    /// The figure: overlay, colour legend, scale bar, label (SVG).
    pub figure: String,
    pub lo: f64,
    pub hi: f64,
    /// `hi` is a cap (the 99th percentile) below the largest value, stated on the legend.
    pub capped: bool,
}

/// A tile image at full resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileImage {
    pub file: String,
    pub x: i64,
    pub y: i64,
    pub attention: f64,
}

/// The slide's nuclear scores as `stain` wrote them (copied so the report reads one file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlideScores {
    pub labelling_index: Option<f64>,
    pub hotspot_index: Option<f64>,
    pub nuclei: Option<u64>,
    pub positive_nuclei: Option<u64>,
}

/// A crop of the slide with its detected nuclei drawn (positive / negative).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NucleiCrop {
    /// The crop with the nuclei drawn (PNG).
    pub image: String,
    /// The figure: crop, legend, scale bar (SVG).
    pub figure: String,
    /// Level-0 top-left corner.
    pub x: i64,
    pub y: i64,
    /// Width (and height) of the crop, µm.
    pub width_um: f64,
    pub nuclei: u64,
    pub positive_nuclei: u64,
}

/// The content of `maps.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapsSummary {
    pub schema: u32,
    pub slide: String,
    pub stain: String,
    pub patient_id: String,
    pub label: String,
    pub thumbnail: Thumbnail,
    pub maps: Vec<MapEntry>,
    pub moran: BTreeMap<String, Option<Moran>>,
    pub hotspot_fraction: Option<f64>,
    /// `nuclear` or `positivity` (how the hotspot tiles were chosen); `None` without a fraction.
    pub hotspot_method: Option<String>,
    pub scores: SlideScores,
    pub nuclei_crop: Option<NucleiCrop>,
    pub top_tiles: Vec<TileImage>,
    pub bottom_tiles: Vec<TileImage>,
}

/// The output directory of a `maps` shard (one slide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsOutput {
    dir: std::path::PathBuf,
}

impl super::Output for MapsOutput {
    const KIND: &'static str = super::MAPS;
    fn at(dir: &Path) -> Self {
        MapsOutput { dir: dir.to_path_buf() }
    }
    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl MapsOutput {
    /// `maps.json`, read and checked.
    pub fn summary(&self) -> Result<MapsSummary> {
        MapsSummary::read(&self.dir.join(MapsSummary::FILE))
    }
    /// A file of the shard, named as `maps.json` names it (checked plain there).
    pub fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.join(file)
    }
}

fn plain(name: &str) -> bool {
    let rest = name.strip_prefix("tiles/").unwrap_or(name);
    !rest.is_empty() && !rest.contains(['/', '\\']) && !rest.starts_with('.')
}

impl MapsSummary {
    /// The file's name in a `maps` shard's directory.
    pub const FILE: &'static str = "maps.json";

    /// Writes the file (checked first).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        write_json(path, self, "")
    }

    /// Reads and checks the file.
    pub fn read(path: &Path) -> Result<MapsSummary> {
        let s: MapsSummary = read_json(path, "the slide maps written by `maps`")?;
        s.validate(&shown(path))?;
        Ok(s)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let err = |at: String, msg: String| ContractError::Json { file: file.to_string(), at, msg };
        if self.schema != SCHEMA {
            return Err(err("schema".into(), format!("expected {SCHEMA}, found {}", self.schema)));
        }
        if !plain(&self.thumbnail.file) {
            return Err(err("thumbnail.file".into(), format!("expected a file name, found `{}`", self.thumbnail.file)));
        }
        if !(self.thumbnail.um_per_px.is_finite() && self.thumbnail.um_per_px > 0.0) {
            return Err(err("thumbnail.um_per_px".into(), format!("expected > 0, found {}", self.thumbnail.um_per_px)));
        }
        for (i, m) in self.maps.iter().enumerate() {
            for (key, f) in [("image", &m.image), ("figure", &m.figure)] {
                if !plain(f) {
                    return Err(err(format!("maps[{i}].{key}"), format!("expected a file name, found `{f}`")));
                }
            }
            if !(m.lo.is_finite() && m.hi.is_finite() && m.lo < m.hi) {
                return Err(err(format!("maps[{i}]"), format!("expected finite lo < hi, found {} and {}", m.lo, m.hi)));
            }
        }
        if let Some(h) = self.hotspot_fraction.filter(|h| !(0.0..=1.0).contains(h)) {
            return Err(err("hotspot_fraction".into(), format!("expected a fraction in [0, 1], found {h}")));
        }
        if let Some(m) = self.hotspot_method.as_deref().filter(|m| !matches!(*m, "nuclear" | "positivity")) {
            return Err(err("hotspot_method".into(), format!("expected `nuclear` or `positivity`, found `{m}`")));
        }
        for (key, v) in [
            ("scores.labelling_index", self.scores.labelling_index),
            ("scores.hotspot_index", self.scores.hotspot_index),
        ] {
            if let Some(v) = v.filter(|v| !(0.0..=1.0).contains(v)) {
                return Err(err(key.into(), format!("expected a fraction in [0, 1], found {v}")));
            }
        }
        if let Some(c) = &self.nuclei_crop {
            for (key, f) in [("nuclei_crop.image", &c.image), ("nuclei_crop.figure", &c.figure)] {
                if !plain(f) {
                    return Err(err(key.into(), format!("expected a file name, found `{f}`")));
                }
            }
            if c.positive_nuclei > c.nuclei {
                return Err(err(
                    "nuclei_crop".into(),
                    format!("{} positive of {} nuclei", c.positive_nuclei, c.nuclei),
                ));
            }
        }
        for (key, tiles) in [("top_tiles", &self.top_tiles), ("bottom_tiles", &self.bottom_tiles)] {
            if tiles.len() > EXTREME_TILES {
                return Err(err(key.into(), format!("expected at most {EXTREME_TILES} tiles, found {}", tiles.len())));
            }
            if let Some((i, t)) = tiles.iter().enumerate().find(|(_, t)| !plain(&t.file)) {
                return Err(err(format!("{key}[{i}].file"), format!("expected a file name, found `{}`", t.file)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MapsSummary {
        MapsSummary {
            schema: SCHEMA,
            slide: "S1".into(),
            stain: "KI67".into(),
            patient_id: "P1".into(),
            label: "P-001_KI67".into(),
            thumbnail: Thumbnail { file: "thumbnail.png".into(), width: 40, height: 30, um_per_px: 16.0 },
            maps: vec![MapEntry {
                name: "positivity".into(),
                title: "DAB-positive fraction per tile".into(),
                image: "positivity.png".into(),
                figure: "positivity.svg".into(),
                lo: 0.0,
                hi: 0.25,
                capped: true,
            }],
            moran: BTreeMap::from([("positivity".to_string(), None)]),
            hotspot_fraction: Some(0.1),
            hotspot_method: Some("nuclear".into()),
            scores: SlideScores {
                labelling_index: Some(0.2),
                hotspot_index: Some(0.3),
                nuclei: Some(10),
                positive_nuclei: Some(2),
            },
            nuclei_crop: None,
            top_tiles: vec![TileImage { file: "tiles/top_1.png".into(), x: 0, y: 256, attention: 0.5 }],
            bottom_tiles: Vec::new(),
        }
    }

    #[test]
    fn round_trip_golden_text_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(MapsSummary::FILE);
        sample().write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with(concat!(
            "{\n  \"bottom_tiles\": [],\n  \"hotspot_fraction\": 0.1,\n",
            "  \"hotspot_method\": \"nuclear\",\n  \"label\": \"P-001_KI67\""
        )));
        assert_eq!(MapsSummary::read(&p).unwrap(), sample());
        let mut bad = sample();
        bad.maps[0].hi = 0.0;
        let e = bad.write(&p).unwrap_err().to_string();
        assert!(e.contains("maps.json: at `maps[0]`: expected finite lo < hi"), "{e}");
        let mut bad = sample();
        bad.top_tiles[0].file = "../x.png".into();
        assert!(bad.write(&p).unwrap_err().to_string().contains("top_tiles[0].file"));
        let mut bad = sample();
        bad.hotspot_method = Some("mean".into());
        assert!(bad.write(&p).unwrap_err().to_string().contains("at `hotspot_method`"));
        std::fs::write(&p, text.replace("\"schema\": 2", "\"schema\": 9")).unwrap();
        assert!(MapsSummary::read(&p).unwrap_err().to_string().contains("at `schema`: expected 2, found 9"));
    }
}
