//! `calibrate`: calibration of one arm's cross-validated predictions at a horizon, before and
//! after recalibration fitted on inner folds.
//!
//! **Inputs:** the output directory of exactly one `train` stage (`needs: [<train stage>]`):
//! `oof.csv` and `baseline.csv`, plus `inner_oof.csv` and `inner_baseline.csv` when
//! `recalibrate` is on (formats: `docs/train.md`, `docs/calibrate.md`).
//! **Outputs:** `calibration.json` (bins, slope, intercept, ICI/E50/E90, smoothed curve,
//! per-repeat statistics, the recalibration of every outer fold and the statistics after it),
//! `bins.csv`, `bins_recalibrated.csv` (when recalibrating) and `predictions.csv` (every
//! out-of-fold row with its predicted survival at the horizon before and after recalibration —
//! `spatia survival calibration` run on it reproduces the numbers).
//! **Key covers:** `horizon`, `bins`, `ci`, `recalibrate` and the `train` stage's key (no seed:
//! nothing is random).
//! **Reference:** Austin, Harrell & van Klaveren (2020), Stat Med 39:2714–2742 (ICI, E50, E90,
//! smoothed calibration curves); Crowson, Atkinson & Therneau (2016) (calibration slope and
//! intercept of survival models); van Houwelingen (2000), Stat Med 19:3401–3415
//! (recalibration on the log cumulative hazard scale). The computations are
//! [`crate::model::calibrate`] over [`crate::survival::calibration()`].
use super::{in_range_f64, in_range_usize, resolved, typed, CheckCx, Checked, ParamError, RunCx, StageKind};
use crate::model::calibrate::{
    self as cal, Baseline, CalibrateError, CalibrateOptions, InnerPredictionRow, PredictionRow,
};
use crate::spec::locate::Seg;
use crate::survival::CsvTable;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The `calibrate` kind.
pub struct Calibrate;

/// Parameters of `calibrate`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrateStageParams {
    /// The horizon, in the cohort's time unit (days in the shipped experiments).
    pub horizon: f64,
    /// Number of risk-quantile bins.
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// Confidence level of the bins' observed probabilities.
    #[serde(default = "default_ci")]
    pub ci: f64,
    /// Fit a recalibration on each outer fold's inner predictions and report before/after.
    #[serde(default = "default_recalibrate")]
    pub recalibrate: bool,
}

fn default_bins() -> usize {
    5
}
fn default_ci() -> f64 {
    0.95
}
fn default_recalibrate() -> bool {
    true
}

/// Version of `calibration.json` (the `schema` field).
pub const SCHEMA: u32 = 1;

impl StageKind for Calibrate {
    fn name(&self) -> &'static str {
        "calibrate"
    }
    fn version(&self) -> u32 {
        1
    }
    fn about(&self) -> &'static str {
        "calibration at a horizon: predicted vs Kaplan–Meier risk by quantile bin, slope, intercept, ICI; inner-fold recalibration"
    }
    fn check(&self, params: &Value, _cx: &CheckCx) -> Result<Checked, ParamError> {
        if params.get("horizon").is_none() {
            return Err(ParamError::at(vec![], "`calibrate` needs `horizon`: the time at which predicted and observed risk are compared (e.g. `horizon: 1825` for 5 years in days)"));
        }
        let p: CalibrateStageParams = typed(params)?;
        use crate::bounds as b;
        if !(p.horizon.is_finite() && p.horizon > 0.0) {
            return Err(ParamError::at(vec![Seg::key("horizon")], format!("`horizon` must be a finite time > 0, found {}", p.horizon)));
        }
        in_range_f64(vec![Seg::key("horizon")], &b::CAL_HORIZON, p.horizon)?;
        in_range_usize(vec![Seg::key("bins")], &b::CAL_BINS, p.bins)?;
        in_range_f64(vec![Seg::key("ci")], &b::CAL_CI, p.ci)?;
        Ok(Checked::single(resolved(&p)).with_typed(p))
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<CalibrateStageParams>()?;
        let trains: Vec<_> = cx.needs.iter().filter(|n| n.kind == "train").collect();
        if trains.len() != 1 || cx.needs.len() != 1 {
            let found: Vec<String> = cx
                .needs
                .iter()
                .map(|n| format!("`{}` ({})", n.name, n.kind))
                .collect();
            bail!(
                "stage `{}`: `calibrate` needs exactly one stage of kind `train`, found {}",
                cx.stage,
                if found.is_empty() {
                    "none".to_string()
                } else {
                    found.join(", ")
                }
            );
        }
        let need = trains[0];
        let dir = &need
            .dirs
            .first()
            .with_context(|| {
                format!(
                    "stage `{}`: need `{}` has no output directory",
                    cx.stage, need.name
                )
            })?
            .1;
        let arm = need
            .arms
            .first()
            .cloned()
            .unwrap_or_else(|| "main".to_string());
        let opts = CalibrateOptions {
            horizon: p.horizon,
            bins: p.bins,
            level: p.ci,
        };

        let oof = read_oof(&dir.join("oof.csv"))?;
        check_horizon(&oof, &dir.join("oof.csv"), p.horizon)?;
        let baselines = read_baselines(&dir.join("baseline.csv"))?;
        let cohort =
            cal::cohort(&oof).with_context(|| dir.join("oof.csv").display().to_string())?;
        let surv = cal::predicted_survival(&oof, &baselines, p.horizon)
            .map_err(|e| in_file(e, &dir.join("baseline.csv")))?;
        let before = cal::summarize(&oof, &surv, &opts)
            .with_context(|| format!("{}", dir.join("oof.csv").display()))?;
        cx.log(&format!(
            "arm {arm}: n = {}, events = {}, horizon {}: slope {:.4}, intercept {:.4}, ICI {:.4}",
            cohort.n, cohort.events, p.horizon, before.slope, before.intercept, before.ici
        ));
        let after = if p.recalibrate {
            let inner_file = dir.join("inner_oof.csv");
            let inner = read_inner(&inner_file)?;
            let inner_baselines = read_inner_baselines(&dir.join("inner_baseline.csv"))?;
            let r = cal::recalibrate(&oof, &baselines, &inner, &inner_baselines, &opts)
                .map_err(|e| in_file(e, &inner_file))?;
            for f in &r.folds {
                cx.log(&format!("recalibration repeat {} fold {}: a = {:.4}, b = {:.4} (inner n = {}, events = {})", f.repeat, f.fold, f.a, f.b, f.n_inner, f.events_inner));
            }
            cx.log(&format!(
                "after recalibration: slope {:.4}, intercept {:.4}, ICI {:.4}",
                r.summary.slope, r.summary.intercept, r.summary.ici
            ));
            Some(r)
        } else {
            None
        };

        let doc = json!({
            "schema": SCHEMA,
            "horizon": p.horizon,
            "ci": p.ci,
            "n": cohort.n,
            "events": cohort.events,
            "repeats": cohort.repeats,
            "bins": before.bins,
            "slope": before.slope,
            "slope_se": before.slope_se,
            "intercept": before.intercept,
            "ici": before.ici,
            "e50": before.e50,
            "e90": before.e90,
            "curve": before.curve,
            "per_repeat": before.per_repeat,
            "notes": before.notes,
            "recalibrated": after,
        });
        crate::util::write_file(
            cx.out.join("calibration.json"),
            serde_json::to_string_pretty(&doc)? + "\n",
        )?;
        write_bins(&cx.out.join("bins.csv"), &before.bins)?;
        if let Some(r) = &after {
            write_bins(&cx.out.join("bins_recalibrated.csv"), &r.summary.bins)?;
        }
        write_predictions(
            &cx.out.join("predictions.csv"),
            &oof,
            &surv,
            after.as_ref().map(|r| r.survival.as_slice()),
        )?;
        Ok(())
    }
}

/// Prefixes a library error with the file it concerns.
fn in_file(e: CalibrateError, file: &Path) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", file.display())
}

/// A column of non-negative integers (repeat and fold indices).
fn indices(t: &CsvTable, name: &str) -> anyhow::Result<Vec<usize>> {
    let v = t.numeric(name)?;
    v.iter()
        .enumerate()
        .map(|(r, &x)| {
            if x >= 0.0 && x.fract() == 0.0 && x < u32::MAX as f64 {
                Ok(x as usize)
            } else {
                bail!("{}, data row {}, column '{name}': expected a non-negative integer index, found {x}", t.file(), r + 1)
            }
        })
        .collect()
}

/// Reads `oof.csv` (`repeat,patient,fold,risk,time,event`); a patient twice in one repeat is an
/// error naming both rows.
pub fn read_oof(path: &Path) -> anyhow::Result<Vec<PredictionRow>> {
    let t = CsvTable::read(path)?;
    let (rep, pat, fold) = (
        indices(&t, "repeat")?,
        t.strings("patient")?,
        indices(&t, "fold")?,
    );
    let (risk, time, event) = (t.numeric("risk")?, t.times("time")?, t.events("event")?);
    let mut seen: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    for (r, id) in pat.iter().enumerate() {
        if id.is_empty() {
            bail!(
                "{}, data row {}, column 'patient': expected a patient id, found an empty value",
                t.file(),
                r + 1
            );
        }
        if let Some(first) = seen.insert((rep[r], id.as_str()), r) {
            bail!("{}, data row {}, column 'patient': expected each patient once per repeat, found '{id}' again (first at data row {}, repeat {})", t.file(), r + 1, first + 1, rep[r]);
        }
    }
    Ok((0..t.len())
        .map(|r| PredictionRow {
            repeat: rep[r],
            fold: fold[r],
            patient: pat[r].clone(),
            risk: risk[r],
            time: time[r],
            event: event[r],
        })
        .collect())
}

/// The horizon must not lie past every follow-up time (the Kaplan–Meier estimate would be the
/// last one carried forward for every bin).
fn check_horizon(rows: &[PredictionRow], path: &Path, horizon: f64) -> anyhow::Result<()> {
    let max = rows
        .iter()
        .map(|r| r.time)
        .fold(f64::NEG_INFINITY, f64::max);
    if horizon > max {
        bail!("{}, column 'time': `horizon` {horizon} is past the longest follow-up ({max}): expected a horizon within follow-up", path.display());
    }
    Ok(())
}

/// Reads `inner_oof.csv` (`repeat,outer_fold,inner_fold,patient,risk,time,event`).
pub fn read_inner(path: &Path) -> anyhow::Result<Vec<InnerPredictionRow>> {
    let t = CsvTable::read(path)?;
    let (rep, outer, inner) = (
        indices(&t, "repeat")?,
        indices(&t, "outer_fold")?,
        indices(&t, "inner_fold")?,
    );
    let (pat, risk, time, event) = (
        t.strings("patient")?,
        t.numeric("risk")?,
        t.times("time")?,
        t.events("event")?,
    );
    Ok((0..t.len())
        .map(|r| InnerPredictionRow {
            repeat: rep[r],
            outer_fold: outer[r],
            inner_fold: inner[r],
            patient: pat[r].clone(),
            risk: risk[r],
            time: time[r],
            event: event[r],
        })
        .collect())
}

/// Groups baseline rows by model key and validates each curve, naming the file's data row.
fn baselines_by<K: Ord + Copy>(
    t: &CsvTable,
    keys: Vec<K>,
    label: impl Fn(K) -> String,
) -> anyhow::Result<BTreeMap<K, Baseline>> {
    let (time, cumhaz) = (t.times("time")?, t.numeric("cumhaz")?);
    let mut rows: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (r, k) in keys.iter().enumerate() {
        rows.entry(*k).or_default().push(r);
    }
    let mut out = BTreeMap::new();
    for (k, rs) in rows {
        let b = Baseline::new(
            &label(k),
            rs.iter().map(|&r| time[r]).collect(),
            rs.iter().map(|&r| cumhaz[r]).collect(),
        )
        .map_err(|e| match &e {
            CalibrateError::BadBaseline { index, column, .. } => {
                anyhow::anyhow!(
                    "{}, data row {}, column '{column}': {e}",
                    t.file(),
                    rs[*index] + 1
                )
            }
            _ => anyhow::anyhow!("{}: {e}", t.file()),
        })?;
        out.insert(k, b);
    }
    Ok(out)
}

/// Reads `baseline.csv` (`repeat,fold,time,cumhaz`).
pub fn read_baselines(path: &Path) -> anyhow::Result<BTreeMap<(usize, usize), Baseline>> {
    let t = CsvTable::read(path)?;
    let (rep, fold) = (indices(&t, "repeat")?, indices(&t, "fold")?);
    let keys = rep.into_iter().zip(fold).collect();
    baselines_by(&t, keys, |(r, f)| format!("repeat {r} fold {f}"))
}

/// Reads `inner_baseline.csv` (`repeat,outer_fold,inner_fold,time,cumhaz`).
pub fn read_inner_baselines(
    path: &Path,
) -> anyhow::Result<BTreeMap<(usize, usize, usize), Baseline>> {
    let t = CsvTable::read(path)?;
    let (rep, outer, inner) = (
        indices(&t, "repeat")?,
        indices(&t, "outer_fold")?,
        indices(&t, "inner_fold")?,
    );
    let keys = (0..rep.len())
        .map(|i| (rep[i], outer[i], inner[i]))
        .collect();
    baselines_by(&t, keys, |(r, o, i)| {
        format!("repeat {r} outer fold {o} inner fold {i}")
    })
}

/// Writes bins as `bin,n,events,at_risk,predicted,observed,lower,upper`.
fn write_bins(path: &Path, bins: &[cal::Bin]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record([
        "bin",
        "n",
        "events",
        "at_risk",
        "predicted",
        "observed",
        "lower",
        "upper",
    ])?;
    for b in bins {
        w.write_record([
            b.bin.to_string(),
            b.n.to_string(),
            b.events.to_string(),
            b.at_risk.to_string(),
            b.predicted.to_string(),
            b.observed.to_string(),
            b.lower.to_string(),
            b.upper.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// Writes `repeat,patient,fold,time,event,survival[,survival_recalibrated]`.
fn write_predictions(
    path: &Path,
    rows: &[PredictionRow],
    surv: &[f64],
    after: Option<&[f64]>,
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    let mut head = vec!["repeat", "patient", "fold", "time", "event", "survival"];
    if after.is_some() {
        head.push("survival_recalibrated");
    }
    w.write_record(&head)?;
    for (i, r) in rows.iter().enumerate() {
        let mut rec = vec![
            r.repeat.to_string(),
            r.patient.clone(),
            r.fold.to_string(),
            r.time.to_string(),
            (r.event as u8).to_string(),
            surv[i].to_string(),
        ];
        if let Some(a) = after {
            rec.push(a[i].to_string());
        }
        w.write_record(&rec)?;
    }
    w.flush()?;
    Ok(())
}
