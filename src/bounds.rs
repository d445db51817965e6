//! The documented range of every numeric parameter: spec parameters (checked when a spec is
//! compiled), the limits checked at plan time against the data (tile µm/px against the
//! slide's, tiles per slide, matrix arms) and the numeric flags of the command line (checked by
//! clap value parsers). `docs/parameters.md` is the table of [`ALL`]; a test keeps the two
//! equal. Nothing here reads files or knows the spec format: a [`Range`] checks a number and
//! says what was expected.

/// A closed or half-open range of one numeric parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Where the parameter is written: a stage kind (`tile`), `cohort`, `spec`, `plan` or a
    /// command line (`spatia survival concordance`).
    pub scope: &'static str,
    /// The key or flag (`bootstrap`, `--bins`).
    pub key: &'static str,
    pub lo: f64,
    pub hi: f64,
    /// The low end is excluded (`> lo`).
    pub lo_open: bool,
    /// The high end is excluded (`< hi`).
    pub hi_open: bool,
    /// Integers only.
    pub integer: bool,
    /// Unit or meaning, for messages and the table.
    pub unit: &'static str,
}

const fn int(scope: &'static str, key: &'static str, lo: u64, hi: u64, unit: &'static str) -> Range {
    Range { scope, key, lo: lo as f64, hi: hi as f64, lo_open: false, hi_open: false, integer: true, unit }
}
const fn real(scope: &'static str, key: &'static str, lo: f64, hi: f64, unit: &'static str) -> Range {
    Range { scope, key, lo, hi, lo_open: false, hi_open: false, integer: false, unit }
}
const fn real_pos(scope: &'static str, key: &'static str, lo: f64, hi: f64, unit: &'static str) -> Range {
    Range { scope, key, lo, hi, lo_open: true, hi_open: false, integer: false, unit }
}
const fn real_below(scope: &'static str, key: &'static str, lo: f64, hi: f64, unit: &'static str) -> Range {
    Range { scope, key, lo, hi, lo_open: false, hi_open: true, integer: false, unit }
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

impl Range {
    /// The range in words: `1 to 100000`, `> 0 and ≤ 1000000`, `≥ 0 and < 1`.
    pub fn describe(&self) -> String {
        let (lo, hi) = (num(self.lo), num(self.hi));
        match (self.lo_open, self.hi_open) {
            (false, false) => format!("{lo} to {hi}"),
            (true, false) => format!("> {lo} and ≤ {hi}"),
            (false, true) => format!("≥ {lo} and < {hi}"),
            (true, true) => format!("> {lo} and < {hi}"),
        }
    }

    fn range_words(&self) -> String {
        let what = if self.integer { "an integer" } else { "a number" };
        let from = if self.lo_open || self.hi_open { "" } else { "from " };
        format!("{what} {from}{} {}", self.describe(), self.unit)
    }

    fn expected(&self) -> String {
        format!("`{}` must be {}", self.key, self.range_words())
    }

    /// Checks a real value (finite and inside the range).
    pub fn check_f64(&self, v: f64) -> Result<(), String> {
        let low_ok = if self.lo_open { v > self.lo } else { v >= self.lo };
        let high_ok = if self.hi_open { v < self.hi } else { v <= self.hi };
        if v.is_finite() && low_ok && high_ok {
            Ok(())
        } else {
            Err(format!("{}, found {v}", self.expected()))
        }
    }

    /// Checks an integer value.
    pub fn check_u64(&self, v: u64) -> Result<(), String> {
        let x = v as f64;
        let low_ok = if self.lo_open { x > self.lo } else { x >= self.lo };
        let high_ok = if self.hi_open { x < self.hi } else { x <= self.hi };
        if low_ok && high_ok {
            Ok(())
        } else {
            Err(format!("{}, found {v}", self.expected()))
        }
    }

    /// Checks a `usize` value.
    pub fn check_usize(&self, v: usize) -> Result<(), String> {
        self.check_u64(v as u64)
    }

    /// Parses and checks a command-line integer.
    pub fn parse_usize(&self, s: &str) -> Result<usize, String> {
        match s.trim().parse::<usize>() {
            Ok(v) if self.check_usize(v).is_ok() => Ok(v),
            _ => Err(format!("expected {}", self.range_words())),
        }
    }

    /// Parses and checks a command-line number.
    pub fn parse_f64(&self, s: &str) -> Result<f64, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if self.check_f64(v).is_ok() => Ok(v),
            _ => Err(format!("expected {}", self.range_words())),
        }
    }
}

// ---- spec: cohort block
pub const COHORT_MPP_OVERRIDE: Range = real("cohort", "mpp_override", 0.05, 100.0, "µm/px");

// ---- spec: matrix and plan-time limits
/// Arms of a matrix (the product of its value lists), checked before expansion.
pub const MATRIX_ARMS: Range = int("spec", "matrix", 1, 1024, "arms (product of the value counts)");
/// Tiles a `tile` stage may place on one slide (grid cells), checked at plan time.
pub const TILES_PER_SLIDE: Range = int("plan", "tiles per slide", 0, 1_000_000, "grid cells of one slide");

// ---- tile
pub const TILE_MPP: Range = real("tile", "mpp", 0.05, 100.0, "µm/px, and not finer than the slide's own µm/px");
pub const TILE_SIZE: Range = int("tile", "size", 16, 4096, "px");
pub const TILE_MIN_TISSUE: Range = real("tile", "min_tissue", 0.0, 1.0, "(fraction of the tile)");
pub const TILE_THRESHOLD: Range =
    real("tile", "tissue.threshold", 0.0, 255.0, "(saturation 0–255 for H&E, optical density for IHC)");
pub const TILE_MIN_OBJECT: Range = real("tile", "tissue.min_object_mm2", 0.0, 10_000.0, "mm²");
pub const TILE_MIN_HOLE: Range = real("tile", "tissue.min_hole_mm2", 0.0, 10_000.0, "mm²");
pub const TILE_QC_BLUR: Range = real("tile", "qc.blur_min", 0.0, 1e6, "(variance of the Laplacian, grey 0–255)");
pub const TILE_QC_PEN: Range = real("tile", "qc.pen_max", 0.0, 1.0, "(fraction of ink-hue pixels)");
pub const TILE_QC_FOLD: Range = real("tile", "qc.fold_max", 0.0, 1.0, "(fraction of dark saturated pixels)");
pub const TILE_QC_BRIGHT: Range = real("tile", "qc.bright_max", 0.0, 1.0, "(fraction of empty bright pixels)");
pub const TILE_QC_USABLE: Range = real("tile", "qc.min_usable", 0.0, 1.0, "(fraction of tissue tiles passing QC)");

// ---- stain
pub const STAIN_DAB: Range = real("stain", "dab_threshold", 0.0, 10.0, "(DAB optical density)");
pub const STAIN_TISSUE_OD: Range = real("stain", "tissue_od", 0.0, 10.0, "(H + DAB optical density)");
pub const STAIN_NUCLEUS_OD: Range =
    real("stain", "nucleus_od_threshold", 0.0, 10.0, "(H + DAB optical density, base 10)");
pub const STAIN_NUCLEUS_DAB: Range =
    real("stain", "nucleus_dab_threshold", 0.0, 10.0, "(mean nuclear DAB optical density, base 10)");

// ---- extract
pub const EXTRACT_BATCH: Range = int("extract", "batch", 1, 4096, "tiles per encoder call");
pub const EXTRACT_WORKERS: Range = int("extract", "workers", 1, 256, "reader threads");
pub const EXTRACT_INPUT_SIZE: Range = int("extract", "encoder.size", 16, 4096, "px");
pub const EXTRACT_SCALE: Range = real_pos("extract", "encoder.scale", 0.0, 1000.0, "(multiplier of 8-bit values)");
pub const EXTRACT_MEAN: Range = real("extract", "encoder.mean", -1000.0, 1000.0, "(per channel)");
pub const EXTRACT_STD: Range = real_pos("extract", "encoder.std", 0.0, 1000.0, "(per channel)");
pub const EXTRACT_THREADS: Range = int("extract", "encoder.threads", 1, 256, "libtorch CPU threads");

// ---- train
pub const TRAIN_FOLDS: Range = int("train", "folds", 2, 100, "outer folds");
pub const TRAIN_INNER_FOLDS: Range = int("train", "inner_folds", 2, 100, "inner folds");
pub const TRAIN_REPEATS: Range = int("train", "repeats", 1, 100, "repeats of the outer CV");
pub const TRAIN_REFIT: Range = int("train", "refit", 0, 10_000, "whole-procedure bootstrap replicates (0: none)");
pub const MIL_HIDDEN: Range = int("train", "mil.hidden", 1, 4096, "units of each modality embedding");
pub const MIL_ATTENTION: Range = int("train", "mil.attention", 1, 4096, "units of the gated attention");
pub const MIL_DROPOUT: Range = real("train", "mil.dropout", 0.0, 0.9, "(dropout probability)");
pub const MIL_LR: Range = real("train", "mil.lr", 1e-7, 10.0, "(AdamW learning rate)");
pub const MIL_WEIGHT_DECAY: Range = real("train", "mil.weight_decay", 0.0, 10.0, "(AdamW decoupled weight decay)");
pub const MIL_CLIP: Range = real("train", "mil.clip", 0.0, 1e6, "(gradient L2-norm clip; 0: none)");
pub const MIL_EPOCHS: Range = int("train", "mil.epochs", 1, 10_000, "largest number of epochs the choice considers");
pub const MIL_INNER_FOLDS: Range = int("train", "mil.inner_folds", 2, 20, "inner folds of the epoch choice");
pub const MIL_BATCH: Range = int("train", "mil.batch_size", 0, 1_000_000, "patients per mini-batch (0: full batch)");
pub const MIL_INTERVALS: Range = int("train", "mil.intervals", 2, 200, "time intervals of `loss: nll`");
pub const MIL_BILINEAR_DIM: Range =
    int("train", "mil.bilinear_dim", 1, 64, "gated reduction width of `fusion: bilinear`");
pub const MIL_RANK: Range = int("train", "mil.rank", 1, 64, "rank of the low-rank fusion (more than 3 modalities)");
pub const TRAIN_PCA: Range = int("train", "pca", 1, 256, "components per slide or block modality");
pub const TRAIN_PHENOTYPES: Range =
    int("train", "phenotypes", 2, 20, "tissue phenotypes (k-means clusters) of `spatial`");
pub const TRAIN_PENALTY: Range = real("train", "penalty", 0.0, 1e6, "(L2; or `auto`)");
pub const TRAIN_PENALTIES: Range = real("train", "penalties[]", 0.0, 1e6, "(each L2 penalty of the grid)");
pub const TRAIN_GRID_LEN: Range = int("train", "penalties", 1, 100, "values (length of the grid)");

// ---- evaluate
pub const EVAL_BOOTSTRAP: Range = int("evaluate", "bootstrap", 1, 100_000, "replicates");
pub const EVAL_CI: Range = real_pos("evaluate", "ci", 0.0, 0.9999, "(confidence level)");
pub const EVAL_HORIZON: Range = real_pos("evaluate", "horizons[]", 0.0, 1e9, "(time, the cohort's unit)");
pub const EVAL_HORIZONS_LEN: Range = int("evaluate", "horizons", 1, 100, "values (length of the list)");

// ---- calibrate
pub const CAL_HORIZON: Range = real_pos("calibrate", "horizon", 0.0, 1e9, "(time, the cohort's unit)");
pub const CAL_BINS: Range = int("calibrate", "bins", 1, 100, "quantile bins");
pub const CAL_CI: Range = real_pos("calibrate", "ci", 0.0, 0.9999, "(confidence level)");

// ---- report
pub const REPORT_QC_SLIDES: Range = int("report", "qc_slides", 0, 100, "slides with QC images");
pub const REPORT_FIGURE_WIDTH: Range = real("report", "figures.*.width_mm", 40.0, 400.0, "mm (85 one column, 174 two)");
pub const REPORT_FIGURE_DPI: Range = int("report", "figures.*.dpi", 72, 1200, "(PNG resolution)");
pub const REPORT_FIGURE_FONT: Range = real("report", "figures.*.font_pt", 5.0, 14.0, "pt (base type size)");
pub const REPORT_FIGURE_COLUMNS: Range = int("report", "figures.*.columns", 1, 26, "panels per row");

// ---- command line
pub const CLI_JOBS: Range = int("spatia run", "--jobs", 1, 1024, "parallel stages");
pub const CLI_CRATE_COPY_LIMIT: Range =
    int("spatia export ro-crate", "--copy-limit", 0, 1 << 40, "bytes (larger outputs referenced, not copied)");
pub const CLI_BOOTSTRAP: Range = int("spatia survival concordance", "--bootstrap", 0, 100_000, "replicates (0 = none)");
pub const CLI_BINS: Range = int("spatia survival calibration", "--bins", 1, 100, "quantile bins");
pub const CLI_PENALTY: Range = real("spatia survival cox", "--penalty", 0.0, 1e6, "(L2)");
pub const CLI_TIME: Range = real("spatia survival", "--at, --times, --tau, --horizon", 0.0, 1e9, "(time)");
pub const CLI_MPP: Range = real(
    "spatia slide tiles, stain map, stain nuclei, extract",
    "--mpp, --mpp-override, --mask-mpp",
    0.05,
    100.0,
    "µm/px",
);
pub const CLI_SIZE: Range = int("spatia slide tiles, stain map, extract", "--size, --input-size", 16, 4096, "px");
pub const CLI_BATCH: Range = int("spatia extract", "--batch", 1, 4096, "tiles per encoder call");
pub const CLI_EXTRACT_THREADS: Range = int("spatia extract", "--workers, --threads", 1, 256, "threads");
pub const CLI_MAX_TILES: Range = int("spatia extract", "--max-tiles", 1, 100_000_000, "tiles");
pub const CLI_THREADS: Range = int("spatia demo generate", "--threads", 1, 256, "threads");
pub const CLI_DEMO_PATIENTS: Range = int("spatia demo generate", "--patients", 1, 100_000, "patients");
pub const CLI_DEMO_SIZE: Range = int("spatia demo generate", "--size", 1024, 100_000, "px (slide side)");
pub const CLI_MIN_TISSUE: Range = real("spatia slide tiles", "--min-tissue", 0.0, 1.0, "(fraction of the tile)");
pub const CLI_TISSUE_THRESHOLD: Range =
    real("spatia slide tiles", "--tissue-threshold", 0.0, 255.0, "(saturation or optical density)");
pub const CLI_DAB: Range = real("spatia stain map", "--dab-threshold", 0.0, 10.0, "(DAB optical density)");
pub const CLI_NUCLEI_OD: Range = real(
    "spatia stain nuclei",
    "--od-threshold, --dab-threshold, --min-prominence",
    0.0,
    10.0,
    "(optical density, base 10)",
);
pub const CLI_NUCLEI_SIGMA: Range = real("spatia stain nuclei", "--sigma-um", 0.0, 20.0, "µm");
pub const CLI_DEMO_QUALITY: Range = int("spatia demo generate", "--quality", 1, 100, "(JPEG quality)");
pub const CLI_DEMO_MISSING_IHC: Range =
    real_below("spatia demo generate", "--missing-ihc", 0.0, 1.0, "(fraction of the IHC slides left out)");

/// Every range, in the order of the table in docs/parameters.md.
pub const ALL: &[Range] = &[
    COHORT_MPP_OVERRIDE,
    MATRIX_ARMS,
    TILES_PER_SLIDE,
    TILE_MPP,
    TILE_SIZE,
    TILE_MIN_TISSUE,
    TILE_THRESHOLD,
    TILE_MIN_OBJECT,
    TILE_MIN_HOLE,
    TILE_QC_BLUR,
    TILE_QC_PEN,
    TILE_QC_FOLD,
    TILE_QC_BRIGHT,
    TILE_QC_USABLE,
    STAIN_DAB,
    STAIN_TISSUE_OD,
    STAIN_NUCLEUS_OD,
    STAIN_NUCLEUS_DAB,
    EXTRACT_BATCH,
    EXTRACT_WORKERS,
    EXTRACT_INPUT_SIZE,
    EXTRACT_SCALE,
    EXTRACT_MEAN,
    EXTRACT_STD,
    EXTRACT_THREADS,
    TRAIN_FOLDS,
    TRAIN_INNER_FOLDS,
    TRAIN_REPEATS,
    TRAIN_REFIT,
    TRAIN_PCA,
    TRAIN_PHENOTYPES,
    MIL_HIDDEN,
    MIL_ATTENTION,
    MIL_DROPOUT,
    MIL_LR,
    MIL_WEIGHT_DECAY,
    MIL_CLIP,
    MIL_EPOCHS,
    MIL_INNER_FOLDS,
    MIL_BATCH,
    MIL_INTERVALS,
    MIL_BILINEAR_DIM,
    MIL_RANK,
    TRAIN_PENALTY,
    TRAIN_PENALTIES,
    TRAIN_GRID_LEN,
    EVAL_BOOTSTRAP,
    EVAL_CI,
    EVAL_HORIZON,
    EVAL_HORIZONS_LEN,
    CAL_HORIZON,
    CAL_BINS,
    CAL_CI,
    REPORT_QC_SLIDES,
    REPORT_FIGURE_WIDTH,
    REPORT_FIGURE_DPI,
    REPORT_FIGURE_FONT,
    REPORT_FIGURE_COLUMNS,
    CLI_JOBS,
    CLI_CRATE_COPY_LIMIT,
    CLI_BOOTSTRAP,
    CLI_BINS,
    CLI_PENALTY,
    CLI_TIME,
    CLI_MPP,
    CLI_SIZE,
    CLI_BATCH,
    CLI_EXTRACT_THREADS,
    CLI_MAX_TILES,
    CLI_THREADS,
    CLI_MIN_TISSUE,
    CLI_TISSUE_THRESHOLD,
    CLI_DAB,
    CLI_NUCLEI_OD,
    CLI_NUCLEI_SIGMA,
    CLI_DEMO_PATIENTS,
    CLI_DEMO_SIZE,
    CLI_DEMO_QUALITY,
    CLI_DEMO_MISSING_IHC,
];

/// The table of docs/parameters.md, generated from [`ALL`].
pub fn markdown_table() -> String {
    let mut s = String::from("| where | parameter | range | unit / meaning |\n|---|---|---|---|\n");
    for r in ALL {
        s.push_str(&format!("| {} | `{}` | {} | {} |\n", r.scope, r.key, r.describe(), r.unit));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_table_is_the_list_of_ranges() {
        let doc = include_str!("../docs/parameters.md");
        let table = markdown_table();
        assert!(doc.contains(&table), "docs/parameters.md must contain this table verbatim:\n{table}");
    }

    #[test]
    fn checks() {
        assert!(EVAL_BOOTSTRAP.check_usize(1000).is_ok());
        let e = EVAL_BOOTSTRAP.check_u64(1_000_000_000_000).unwrap_err();
        assert!(e.contains("`bootstrap` must be an integer from 1 to 100000") && e.contains("1000000000000"), "{e}");
        assert!(EVAL_BOOTSTRAP.check_usize(0).is_err());
        assert!(TILE_MPP.check_f64(0.0001).is_err());
        assert!(TILE_MPP.check_f64(f64::NAN).is_err());
        assert!(TILE_MPP.check_f64(0.05).is_ok());
        assert!(EVAL_CI.check_f64(0.0).is_err());
        assert!(EVAL_CI.check_f64(0.95).is_ok());
        assert!(CLI_BOOTSTRAP.parse_usize("1e12").is_err());
        assert_eq!(CLI_BOOTSTRAP.parse_usize("200"), Ok(200));
        assert!(CLI_MPP.parse_f64("inf").is_err());
        assert_eq!(CLI_DEMO_MISSING_IHC.parse_f64("0"), Ok(0.0));
        assert_eq!(CLI_DEMO_MISSING_IHC.parse_f64("0.5"), Ok(0.5));
        for bad in ["1", "-0.1", "NaN", "1.5"] {
            let e = CLI_DEMO_MISSING_IHC.parse_f64(bad).unwrap_err();
            assert_eq!(e, "expected a number ≥ 0 and < 1 (fraction of the IHC slides left out)", "{bad}");
        }
    }
}
