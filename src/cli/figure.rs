//! `spatia figure`: one figure of a run or a report, at a journal's size, as SVG, PNG or PDF,
//! drawn from the report's recorded figure data (`figures/figures.json`) by the renderer the
//! page uses — nothing is recomputed, and the same inputs give the same bytes.
//!
//! SOURCE is a report folder (a published `reports/<name>` or a report's cache entry), or a run
//! (its `runs/<time>-<name>` directory or `run.json`), whose report node's entry is found in the
//! cache (`--cache`, `$SPATIA_CACHE`, or the project's `cache/`).
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::provenance::RunSummary;
use crate::report::figures::FiguresJson;
use crate::report::plots::export::{check_figure_size, Format};
use crate::report::plots::panels::{select, Selection, SELECTABLE};
use crate::report::plots::{self, Meta, Style, TimeUnit};

/// `spatia figure`.
#[derive(clap::Args, Debug)]
pub struct FigureArgs {
    /// A report folder (published, or a cache entry's `out/`), a run directory or its run.json
    pub source: PathBuf,
    /// Which figure: km, roc, calibration, calibration_recalibrated, forest, cif, training_score,
    /// training_loss
    #[arg(long)]
    pub kind: String,
    /// The arm (default: the arm the page shows)
    #[arg(long)]
    pub arm: Option<String>,
    /// A horizon, in the cohort's time unit (calibration: the figure at it; ROC: only its curve)
    #[arg(long)]
    pub horizon: Option<f64>,
    /// Width in mm: 85 a journal's single column, 174 a double
    #[arg(long, default_value_t = 85.0)]
    pub width_mm: f64,
    /// svg, png or pdf (default: from --out's extension)
    #[arg(long)]
    pub format: Option<String>,
    /// PNG resolution
    #[arg(long, default_value_t = 300)]
    pub dpi: u32,
    /// Base type size in points
    #[arg(long, default_value_t = 7.0)]
    pub font_pt: f64,
    /// Draw the figure's title above it (a journal figure's title is usually its caption)
    #[arg(long)]
    pub title: bool,
    /// A panel letter in the top-left corner (e.g. A)
    #[arg(long)]
    pub panel: Option<String>,
    /// Show times in days, months or years (default: the report's display unit)
    #[arg(long)]
    pub unit: Option<String>,
    /// The report stage, when the run has several
    #[arg(long)]
    pub stage: Option<String>,
    /// Cache directory of a run (default: <project>/cache, or $SPATIA_CACHE)
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Output file
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists
    #[arg(long)]
    pub force: bool,
}

/// Finds `figures.json` for `source` and the run it came from (when given a run).
fn locate(a: &FigureArgs) -> Result<(PathBuf, Option<String>)> {
    let src = &a.source;
    let direct = FiguresJson::path(src);
    if direct.is_file() {
        return Ok((direct, None));
    }
    if src.is_dir() && src.join("out").join(crate::report::figures::FILE).is_file() {
        return Ok((src.join("out").join(crate::report::figures::FILE), None));
    }
    let run_json = if src.is_dir() { src.join("run.json") } else { src.clone() };
    if !run_json.is_file() {
        bail!(
            "{}: expected a report folder (holding {}) or a run (a runs/<time>-<name> directory or its run.json)",
            src.display(),
            crate::report::figures::FILE
        );
    }
    let run = RunSummary::read(&run_json)?;
    let reports: Vec<_> = run
        .nodes
        .iter()
        .filter(|n| n.kind == crate::contracts::REPORT && a.stage.as_ref().is_none_or(|s| &n.stage == s))
        .collect();
    let node = match reports.as_slice() {
        [] => bail!(
            "{}: the run has no report stage{}",
            run_json.display(),
            a.stage.as_ref().map(|s| format!(" named {s:?}")).unwrap_or_default()
        ),
        [n] => n,
        many => bail!(
            "{}: the run has {} report stages ({}): choose one with --stage",
            run_json.display(),
            many.len(),
            many.iter().map(|n| n.stage.as_str()).collect::<Vec<_>>().join(", ")
        ),
    };
    let run_dir = run_json.parent().unwrap_or(Path::new("."));
    let cache = super::core::cache_at(&crate::spec::find_root(&run_dir.join("x")), &a.cache);
    let p = FiguresJson::path(&cache.out_dir(&node.key));
    if !p.is_file() {
        bail!(
            "{}: the report node {} ({}) has no {} in the cache ({}): run the spec again, or give --cache",
            run_json.display(),
            node.stage,
            &node.key[..node.key.len().min(12)],
            crate::report::figures::FILE,
            cache.entry_dir(&node.key).display()
        );
    }
    let name = run_dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    Ok((p, Some(name)))
}

/// Runs `spatia figure`.
pub fn run(a: &FigureArgs) -> Result<u8> {
    let format = match a.format.as_deref().or_else(|| a.out.extension().and_then(|e| e.to_str())) {
        Some("svg") => Format::Svg,
        Some("png") => Format::Png,
        Some("pdf") => Format::Pdf,
        Some(other) => bail!("--format: expected svg, png or pdf, found {other:?}"),
        None => bail!("--format: give svg, png or pdf (or an --out file ending in one)"),
    };
    check_figure_size("--", a.width_mm, a.dpi, a.font_pt)
        .map_err(|e| anyhow::anyhow!(e.replace("--width_mm", "--width-mm").replace("--font_pt", "--font-pt")))?;
    if !SELECTABLE.contains(&a.kind.as_str()) {
        bail!("--kind: expected one of {}, found {:?}", SELECTABLE.join(", "), a.kind);
    }
    if a.out.exists() && !a.force {
        bail!("{}: exists; choose another --out or pass --force to replace it", a.out.display());
    }
    let (path, run) = locate(a)?;
    let record = FiguresJson::read(&path)?;
    let sel = Selection { kind: a.kind.clone(), arm: a.arm.clone(), horizon: a.horizon };
    let fig =
        select(&record.figures, &sel, record.arm.as_deref()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut time = record.time;
    if let Some(u) = &a.unit {
        time.display =
            TimeUnit::parse(u).with_context(|| format!("--unit: expected days, months or years, found {u:?}"))?;
    }
    let mut style = Style::journal(a.width_mm, time);
    style.font_pt = a.font_pt;
    style.title = a.title;
    style.panel = a.panel.clone();
    let meta = Meta { report: Some(record.report.clone()), run };
    let svg = plots::render(&fig, &style, &meta)?;
    let bytes = format.encode(&svg, a.dpi)?;
    write_new(&a.out, &bytes, a.force)?;
    eprintln!(
        "figure: {} ({}{}) → {} ({} bytes, {} mm wide)",
        fig.name,
        a.kind,
        fig.arm.as_deref().map(|x| format!(", arm {x}")).unwrap_or_default(),
        a.out.display(),
        bytes.len(),
        a.width_mm
    );
    Ok(0)
}

/// Writes `bytes` to `out` through a temporary file beside it: linked into place when `out` must
/// not exist (so a file that appeared meanwhile is not replaced), renamed over it with `force`.
fn write_new(out: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "figure".into());
    let tmp = out.with_file_name(format!(".{name}.spatia-tmp-{}", std::process::id()));
    crate::util::write_file(&tmp, bytes)?;
    let placed = if force {
        std::fs::rename(&tmp, out)
    } else {
        std::fs::hard_link(&tmp, out).and_then(|_| std::fs::remove_file(&tmp))
    };
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        bail!("cannot write {}: {e}", out.display());
    }
    Ok(())
}
