//! `spatia slide …` and `spatia stain …`: command-line front ends of [`crate::slide`].
//!
//! JSON contracts (one object on stdout with `--json`):
//! - `slide info`: `{"path", "vendor", "width", "height", "levels":[{"width","height","downsample"}],
//!   "mpp_x", "mpp_y" (null when unknown), "objective_power" (null when unknown), "associated"}`,
//!   plus `"digest"` with `--digest`.
//! - `slide tiles`: `{"tiles", "tissue_area_mm2", "level", "tile_size_level0"}`.
//! - `stain hed`: `{"hematoxylin":{"mean","std","p05","p50","p95"}, "eosin":{…}, "dab":{…},
//!   "dab_positive_fraction":{"0.02", "0.05"}}`.
//! - `stain map`: `{"index", "tiles", "tissue_pixels", "positive_pixels", "cols", "rows"}`.
//! - `stain nuclei`: `{"nuclei", "positive_nuclei", "labelling_index", "hotspot_index" (null when
//!   no window of `hotspot_area_mm2` holds `hotspot_min_nuclei`), "hotspot_windows", "mpp",
//!   "mode" ("image" or "slide"), "width_um", "height_um", "od_threshold", "dab_threshold",
//!   "min_area_um2", "max_area_um2", "hotspot_area_mm2", "hotspot_min_nuclei"}`; `labelling_index`
//!   is null without nuclei.
use super::hed::{self, ChannelStats};
use super::nuclei::{self, NucleiParams};
use super::stain_map;
use super::tiling::{tile_slide, write_qc, TileParams};
use super::tissue::{detect_tissue, Threshold, TissueParams};
use super::{Slide, Stain};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Arguments of `spatia slide`.
#[derive(clap::Args, Debug)]
pub struct SlideArgs {
    #[command(subcommand)]
    pub verb: SlideVerb,
}

/// Verbs of `spatia slide`.
#[derive(clap::Subcommand, Debug)]
pub enum SlideVerb {
    /// Metadata of a slide: levels, µm/px, objective, vendor, associated images
    Info {
        /// The slide (SVS, NDPI, MRXS, SCN, tiled TIFF, OME-TIFF, …)
        path: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Also compute the blake3 digest of the file (reads it whole)
        #[arg(long)]
        digest: bool,
    },
    /// Tissue detection and tiling at a target µm/px
    Tiles {
        /// The slide
        path: PathBuf,
        /// Target µm/px of the tiles
        #[arg(long, default_value_t = 0.5, value_parser = mpp)]
        mpp: f64,
        /// Tile side in pixels at the target µm/px
        #[arg(long, default_value_t = 256, value_parser = size)]
        size: u32,
        /// µm/px of level 0 when the file lacks it (or to override it)
        #[arg(long, value_parser = mpp)]
        mpp_override: Option<f64>,
        /// Stain (HE uses saturation; ER, PR, HER2, KI67 optical density)
        #[arg(long, default_value = "HE")]
        stain: String,
        /// Minimum tissue fraction of a kept tile
        #[arg(long, default_value_t = 0.5, value_parser = min_tissue)]
        min_tissue: f64,
        /// Tissue threshold (saturation 0–255 for HE, H+DAB optical density for IHC; default 8 / 0.02)
        #[arg(long, value_parser = tissue_threshold)]
        tissue_threshold: Option<f64>,
        /// Finest µm/px of the tissue mask (default 4; the mask's long side stays ≤ 2000 px)
        #[arg(long, value_parser = mpp)]
        mask_mpp: Option<f64>,
        /// Write mask.png, thumbnail.png, overlay.png, tiles.csv and qc.json here
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `spatia stain`.
#[derive(clap::Args, Debug)]
pub struct StainArgs {
    #[command(subcommand)]
    pub verb: StainVerb,
}

/// Verbs of `spatia stain`.
#[derive(clap::Subcommand, Debug)]
pub enum StainVerb {
    /// H-E-DAB colour deconvolution (scikit-image rgb2hed) of a PNG, JPEG or TIFF/OME-TIFF
    Hed {
        /// The image
        image: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Per-tile DAB / hematoxylin measures and the positivity map of an IHC slide
    Map {
        /// The slide
        path: PathBuf,
        /// The IHC stain (ER, PR, HER2, KI67)
        #[arg(long, default_value = "KI67")]
        stain: String,
        /// Target µm/px of the tiles
        #[arg(long, default_value_t = 0.5, value_parser = mpp)]
        mpp: f64,
        /// Tile side in pixels at the target µm/px
        #[arg(long, default_value_t = 256, value_parser = size)]
        size: u32,
        /// µm/px of level 0 when the file lacks it (or to override it)
        #[arg(long, value_parser = mpp)]
        mpp_override: Option<f64>,
        /// DAB threshold of a positive pixel (rgb2hed units)
        #[arg(long, default_value_t = 0.05, value_parser = dab_threshold)]
        dab_threshold: f64,
        /// Write positivity.png and tile_stain.csv here
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Nuclear DAB scoring (Ki-67, ER, PR): nuclei, positive nuclei, labelling and hotspot index
    Nuclei {
        /// A slide (any format `slide info` reads; streamed in tiles) or a PNG/JPEG image (needs
        /// --mpp-override)
        path: PathBuf,
        /// µm/px of level 0 (required for PNG/JPEG; overrides a slide's own)
        #[arg(long, value_parser = mpp)]
        mpp_override: Option<f64>,
        /// Foreground threshold on smoothed hematoxylin + DAB optical density (base 10)
        #[arg(long, default_value_t = NucleiParams::default().od_threshold, value_parser = nuclei_od)]
        od_threshold: f64,
        /// A nucleus is positive when its mean DAB optical density (base 10) exceeds this
        #[arg(long, default_value_t = NucleiParams::default().dab_threshold, value_parser = nuclei_od)]
        dab_threshold: f64,
        /// Smallest dynamic (OD) of a maximum that makes a nucleus of its own (splits touching nuclei)
        #[arg(long, default_value_t = NucleiParams::default().min_prominence, value_parser = nuclei_od)]
        min_prominence: f64,
        /// Gaussian sigma of the detection image, µm
        #[arg(long, default_value_t = NucleiParams::default().sigma_um, value_parser = nuclei_sigma)]
        sigma_um: f64,
        /// Write a PNG of the image with positive (red) and negative (blue) nuclei outlined
        /// (images and slides up to 64 Mpx at level 0)
        #[arg(long)]
        overlay: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

fn mpp(s: &str) -> Result<f64, String> {
    crate::bounds::CLI_MPP.parse_f64(s)
}
fn size(s: &str) -> Result<u32, String> {
    crate::bounds::CLI_SIZE.parse_usize(s).map(|v| v as u32)
}
fn min_tissue(s: &str) -> Result<f64, String> {
    crate::bounds::CLI_MIN_TISSUE.parse_f64(s)
}
fn tissue_threshold(s: &str) -> Result<f64, String> {
    crate::bounds::CLI_TISSUE_THRESHOLD.parse_f64(s)
}
fn dab_threshold(s: &str) -> Result<f64, String> {
    crate::bounds::CLI_DAB.parse_f64(s)
}
fn nuclei_od(s: &str) -> Result<f64, String> {
    crate::bounds::CLI_NUCLEI_OD.parse_f64(s)
}
fn nuclei_sigma(s: &str) -> Result<f64, String> {
    crate::bounds::CLI_NUCLEI_SIGMA.parse_f64(s)
}

/// Most pixels `stain hed` reads whole from a TIFF or slide.
const HED_MAX_PIXELS: u64 = 64 << 20;

/// Runs `spatia slide`.
pub fn run_slide(args: &SlideArgs) -> anyhow::Result<()> {
    match &args.verb {
        SlideVerb::Info { path, json, digest } => {
            let slide = Slide::inspect(path)?;
            let m = slide.meta();
            let mut v = json!({
                "path": m.path,
                "vendor": m.vendor,
                "width": m.width,
                "height": m.height,
                "levels": m.levels,
                "mpp_x": m.mpp_x,
                "mpp_y": m.mpp_y,
                "objective_power": m.objective_power,
                "associated": m.associated,
            });
            if *digest {
                v["digest"] = Value::String(slide.digest()?);
            }
            if *json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                let opt = |o: Option<f64>| o.map(|x| x.to_string()).unwrap_or_else(|| "unknown".into());
                println!("{}", m.path.display());
                println!("  vendor           {}", m.vendor);
                println!("  size             {} × {} px", m.width, m.height);
                println!("  µm/px            {} × {}", opt(m.mpp_x), opt(m.mpp_y));
                println!("  objective power  {}", opt(m.objective_power));
                println!("  associated       {}", m.associated.join(", "));
                for (i, l) in m.levels.iter().enumerate() {
                    println!("  level {i:<2}         {} × {} px, downsample {}", l.width, l.height, l.downsample);
                }
                if let Some(d) = v.get("digest").and_then(Value::as_str) {
                    println!("  blake3           {d}");
                }
            }
            Ok(())
        }
        SlideVerb::Tiles {
            path,
            mpp,
            size,
            mpp_override,
            stain,
            min_tissue,
            tissue_threshold,
            mask_mpp,
            out,
            json,
        } => {
            let stain: Stain = stain.parse().map_err(|e: String| anyhow::anyhow!("--stain: {e}"))?;
            let slide = Slide::open(path, *mpp_override)?;
            let mut tp = TissueParams::for_stain(stain);
            if let Some(t) = tissue_threshold {
                tp.threshold = Threshold::Fixed(*t);
            }
            if let Some(m) = mask_mpp {
                tp.mask_mpp = *m;
            }
            let mask = detect_tissue(&slide, &tp)?;
            let params = TileParams { mpp: *mpp, size: *size, min_tissue: *min_tissue };
            let tiling = tile_slide(&slide, &mask, &params)?;
            let files = match out {
                Some(dir) => Some(write_qc(dir, &mask, &tiling)?),
                None => None,
            };
            if *json {
                let v = json!({
                    "tiles": tiling.tiles.len(),
                    "tissue_area_mm2": tiling.tissue_area_mm2,
                    "level": tiling.level,
                    "tile_size_level0": tiling.tile_size_level0,
                });
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("{}", path.display());
                println!(
                    "  tiles            {} of {} in the grid",
                    tiling.tiles.len(),
                    tiling.cols as u64 * tiling.rows as u64
                );
                println!("  tissue area      {:.4} mm²", tiling.tissue_area_mm2);
                println!(
                    "  tile             {} px at {} µm/px = {} level-0 px, read from level {} ({} px)",
                    tiling.size, tiling.mpp, tiling.tile_size_level0, tiling.level, tiling.read_size
                );
                println!("  mask             {}", mask.method);
                if let Some(f) = files {
                    println!(
                        "  wrote            {}, {}, {}, {}, {}",
                        f.mask.display(),
                        f.thumbnail.display(),
                        f.overlay.display(),
                        f.tiles_csv.display(),
                        f.qc_json.display()
                    );
                }
            }
            Ok(())
        }
    }
}

fn channel_json(s: &ChannelStats) -> Value {
    json!({"mean": s.mean, "std": s.std, "p05": s.p05, "p50": s.p50, "p95": s.p95})
}

/// Runs `spatia stain`.
pub fn run_stain(args: &StainArgs) -> anyhow::Result<()> {
    match &args.verb {
        StainVerb::Hed { image, json } => {
            let img = super::load_rgb(image, HED_MAX_PIXELS)?;
            let s = hed::summarize(&img, &[0.02, 0.05]);
            if *json {
                let mut frac = serde_json::Map::new();
                for (t, f) in &s.dab_positive_fraction {
                    frac.insert(format!("{t}"), json!(f));
                }
                let v = json!({
                    "hematoxylin": channel_json(&s.hematoxylin),
                    "eosin": channel_json(&s.eosin),
                    "dab": channel_json(&s.dab),
                    "dab_positive_fraction": frac,
                });
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("{} ({}×{} px)", image.display(), img.width(), img.height());
                println!("  {:<12} {:>10} {:>10} {:>10} {:>10} {:>10}", "channel", "mean", "std", "p05", "p50", "p95");
                for (name, c) in [("hematoxylin", &s.hematoxylin), ("eosin", &s.eosin), ("dab", &s.dab)] {
                    println!(
                        "  {name:<12} {:>10.6} {:>10.6} {:>10.6} {:>10.6} {:>10.6}",
                        c.mean, c.std, c.p05, c.p50, c.p95
                    );
                }
                for (t, f) in &s.dab_positive_fraction {
                    println!("  DAB > {t}: {:.4} of pixels", f);
                }
            }
            Ok(())
        }
        StainVerb::Map { path, stain, mpp, size, mpp_override, dab_threshold, out, json } => {
            let stain: Stain = stain.parse().map_err(|e: String| anyhow::anyhow!("--stain: {e}"))?;
            let slide = Slide::open(path, *mpp_override)?;
            let mask = detect_tissue(&slide, &TissueParams::for_stain(stain))?;
            let tiling = tile_slide(&slide, &mask, &TileParams::new(*mpp, *size))?;
            let params = stain_map::StainParams { dab_threshold: *dab_threshold, ..Default::default() };
            let st = stain_map::stain_slide(&slide, &tiling, &params, 64)?;
            if let Some(dir) = out {
                std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
                st.write_positivity_png(&dir.join("positivity.png"))?;
                let mut csv = String::from("col,row,mean_hematoxylin,mean_dab,dab_positive_fraction,tissue_pixels\n");
                for t in &st.tiles {
                    csv += &format!(
                        "{},{},{},{},{},{}\n",
                        t.col, t.row, t.mean_hematoxylin, t.mean_dab, t.dab_positive_fraction, t.tissue_pixels
                    );
                }
                let f = dir.join("tile_stain.csv");
                std::fs::write(&f, csv).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", f.display()))?;
            }
            if *json {
                let v = json!({
                    "index": st.index,
                    "tiles": st.tiles.len(),
                    "tissue_pixels": st.tissue_pixels,
                    "positive_pixels": st.positive_pixels,
                    "cols": st.cols,
                    "rows": st.rows,
                });
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("{} ({stain})", path.display());
                println!("  tiles            {} on a {}×{} grid", st.tiles.len(), st.cols, st.rows);
                println!("  DAB-positive     {:.4} of tissue pixels (DAB > {})", st.index, params.dab_threshold);
            }
            Ok(())
        }
        StainVerb::Nuclei {
            path,
            mpp_override,
            od_threshold,
            dab_threshold,
            min_prominence,
            sigma_um,
            overlay,
            json,
        } => {
            let params = NucleiParams {
                od_threshold: *od_threshold,
                dab_threshold: *dab_threshold,
                min_prominence: *min_prominence,
                sigma_um: *sigma_um,
                ..Default::default()
            };
            run_nuclei(path, *mpp_override, &params, overlay.as_deref(), *json)
        }
    }
}

/// `spatia stain nuclei`.
fn run_nuclei(
    path: &std::path::Path,
    mpp_override: Option<f64>,
    params: &NucleiParams,
    overlay: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let (mode, mpp, w_um, h_um, score, found, whole) = if matches!(ext.as_str(), "png" | "jpg" | "jpeg") {
        let mpp = mpp_override.ok_or_else(|| {
            anyhow::anyhow!(
                "image {}: a PNG/JPEG carries no microns-per-pixel (µm/px); give it with --mpp-override \
                 (e.g. 0.25 for a 40× scan, 0.5 for 20×)",
                path.display()
            )
        })?;
        let img = super::load_rgb(path, HED_MAX_PIXELS)?;
        let found = nuclei::detect_nuclei(&img, mpp, params)?;
        let (w_um, h_um) = (img.width() as f64 * mpp, img.height() as f64 * mpp);
        let score = nuclei::score(&found, w_um, h_um, params);
        ("image", mpp, w_um, h_um, score, found, Some(img))
    } else {
        let slide = Slide::open(path, mpp_override)?;
        let sn = nuclei::score_slide(&slide, params, 16)?;
        let (w, h) = (slide.meta().width, slide.meta().height);
        let whole = match overlay {
            Some(_) if w * h <= HED_MAX_PIXELS => Some(slide.read_region(0, 0, 0, w as u32, h as u32)?),
            Some(f) => anyhow::bail!(
                "--overlay {}: slide {} is {w}×{h} px at level 0, more than the {HED_MAX_PIXELS} px drawn whole",
                f.display(),
                path.display()
            ),
            None => None,
        };
        ("slide", sn.mpp, w as f64 * sn.mpp, h as f64 * sn.mpp, sn.score, sn.nuclei, whole)
    };
    if let (Some(f), Some(img)) = (overlay, whole) {
        super::tiling::save_png(&nuclei::draw_overlay(&img, mpp, &found), f)?;
    }
    if json {
        let v = json!({
            "nuclei": score.nuclei,
            "positive_nuclei": score.positive_nuclei,
            "labelling_index": score.labelling_index,
            "hotspot_index": score.hotspot_index,
            "hotspot_windows": score.hotspot_windows,
            "mpp": mpp,
            "mode": mode,
            "width_um": w_um,
            "height_um": h_um,
            "od_threshold": params.od_threshold,
            "dab_threshold": params.dab_threshold,
            "min_area_um2": params.min_area_um2,
            "max_area_um2": params.max_area_um2,
            "hotspot_area_mm2": params.hotspot_area_mm2,
            "hotspot_min_nuclei": params.hotspot_min_nuclei,
        });
        println!("{}", serde_json::to_string(&v)?);
    } else {
        let opt = |o: Option<f64>| o.map(|x| format!("{:.4}", x)).unwrap_or_else(|| "none".into());
        println!("{} ({mode}, {mpp} µm/px, {:.0} × {:.0} µm)", path.display(), w_um, h_um);
        println!("  nuclei           {} ({} DAB-positive)", score.nuclei, score.positive_nuclei);
        println!("  labelling index  {}", opt(score.labelling_index));
        println!(
            "  hotspot index    {} ({} windows of {} mm² with ≥ {} nuclei)",
            opt(score.hotspot_index),
            score.hotspot_windows,
            params.hotspot_area_mm2,
            params.hotspot_min_nuclei
        );
    }
    Ok(())
}
