//! `calibrate`: calibration of one arm's cross-validated predictions at a horizon, before and
//! after recalibration fitted on inner folds.
//!
//! **Inputs:** the output directory of exactly one `train` stage (`needs: [<train stage>]`):
//! `oof.csv` and `baseline.csv`, plus `inner_oof.csv` and `inner_baseline.csv` when
//! `recalibrate` is on (formats: [`crate::contracts::oof`], [`crate::contracts::baseline`]).
//! **Outputs:** `calibration.json` ([`crate::contracts::calibration`]: bins, slope, intercept, ICI/E50/E90, smoothed curve,
//! per-repeat statistics, the recalibration of every outer fold and the statistics after it),
//! `bins.csv`, `bins_recalibrated.csv` (when recalibrating) and `predictions.csv` (every
//! out-of-fold row with its predicted survival at the horizon before and after recalibration —
//! `spatia survival calibration` run on it reproduces the numbers). In a competing-risks cohort
//! (`train` wrote `competing.json`) also `competing_calibration.json`: the predicted cumulative
//! incidence of cause 1 at the horizon against the Aalen–Johansen estimate, overall and by
//! risk-quantile bin ([`crate::model::competing_calibration`]); `calibration.json` then treats
//! competing events as censored (1 − KM of cause 1), as its label says in the report.
//! **Key covers:** `horizon`, `bins`, `ci`, `recalibrate` and the `train` stage's key (no seed:
//! nothing is random).
//! **Reference:** Austin, Harrell & van Klaveren (2020), Stat Med 39:2714–2742 (ICI, E50, E90,
//! smoothed calibration curves); Crowson, Atkinson & Therneau (2016) (calibration slope and
//! intercept of survival models); van Houwelingen (2000), Stat Med 19:3401–3415
//! (recalibration on the log cumulative hazard scale). The computations are
//! [`crate::model::calibrate`] over [`crate::survival::calibration()`].
use super::{in_range_f64, in_range_usize, resolved, typed, CheckCx, Checked, ParamError, RunCx, StageKind};
use crate::contracts::baseline::{Baseline, Baselines};
use crate::contracts::calibration::{CalibrationJson, RecalibratedJson, SCHEMA};
use crate::contracts::oof::{InnerOof, Oof, OofRow};
use crate::contracts::survival_curves::SurvivalCurves;
use crate::contracts::{TrainOutput, CALIBRATE};
use crate::docpath::Seg;
use crate::model::calibrate::{self as cal, CalibrateError, CalibrateOptions};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

impl StageKind for Calibrate {
    fn name(&self) -> &'static str {
        CALIBRATE
    }
    fn version(&self) -> u32 {
        // 2: a fold with a negative recalibration slope is a warning (`recalibrated.warnings`)
        // 3: `competing_calibration.json` in a competing-risks cohort
        // 4: `histogram` of the predicted risks (repeat 0) before and after recalibration
        4
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
            return Err(ParamError::at(
                vec![Seg::key("horizon")],
                format!("`horizon` must be a finite time > 0, found {}", p.horizon),
            ));
        }
        in_range_f64(vec![Seg::key("horizon")], &b::CAL_HORIZON, p.horizon)?;
        in_range_usize(vec![Seg::key("bins")], &b::CAL_BINS, p.bins)?;
        in_range_f64(vec![Seg::key("ci")], &b::CAL_CI, p.ci)?;
        Ok(Checked::single(resolved(&p)).with_typed(p))
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<CalibrateStageParams>()?;
        let need = cx.sole_need::<TrainOutput>(CALIBRATE)?;
        let (_, arm, train) = need
            .outputs::<TrainOutput>()
            .and_then(|o| o.into_iter().next())
            .with_context(|| format!("stage `{}`: need `{}` has no output directory", cx.stage, need.name))?;
        let arm = if arm.is_empty() { "main" } else { arm };
        let opts = CalibrateOptions { horizon: p.horizon, bins: p.bins, level: p.ci };
        let (oof_file, baseline_file) = (train.path(Oof::FILE), train.path(Baselines::FILE));

        let oof = train.oof()?.rows;
        check_horizon(&oof, &oof_file, p.horizon)?;
        let baselines = train.baselines()?.folds;
        let cohort = cal::cohort(&oof).with_context(|| oof_file.display().to_string())?;
        // a fold without a baseline (a discrete-time network) predicts survival curves instead
        let has_curves = train.path(SurvivalCurves::FILE).exists();
        let curves = if has_curves && oof.iter().any(|r| !baselines.contains_key(&(r.repeat, r.fold))) {
            train.survival_curves()?.curves
        } else {
            BTreeMap::new()
        };
        let surv = cal::predicted_survival_or_curves(&oof, &baselines, &curves, p.horizon)
            .map_err(|e| in_file(e, &baseline_file))?;
        let before = cal::summarize(&oof, &surv, &opts).with_context(|| oof_file.display().to_string())?;
        cx.log(&format!(
            "arm {arm}: n = {}, events = {}, horizon {}: slope {:.4}, intercept {:.4}, ICI {:.4}",
            cohort.n, cohort.events, p.horizon, before.slope, before.intercept, before.ici
        ));
        // recalibration needs the inner folds' out-of-fold predictions, which an attention-MIL
        // arm has only with inner-CV epoch choice and the Cox loss
        let inner_rows = if p.recalibrate { train.inner_oof()?.rows.len() } else { 0 };
        if p.recalibrate && inner_rows == 0 {
            cx.log(&format!(
                "arm {arm}: not recalibrated: {} has no inner out-of-fold predictions (an attention-MIL arm with `select: validation` or `loss: nll`)",
                train.path(InnerOof::FILE).display()
            ));
        }
        let after = if p.recalibrate && inner_rows > 0 {
            Some(recalibrate(cx, &train, &oof, &baselines, &opts)?)
        } else {
            None
        };

        let doc = CalibrationJson {
            schema: SCHEMA,
            horizon: p.horizon,
            ci: p.ci,
            n: cohort.n,
            events: cohort.events,
            repeats: cohort.repeats,
            before: before.clone(),
            recalibrated: after.as_ref().map(|r| RecalibratedJson {
                summary: r.summary.clone(),
                folds: r.folds.clone(),
                warnings: r.warnings.clone(),
            }),
        };
        doc.write(&cx.out.join(CalibrationJson::FILE))?;
        write_bins(&cx.out.join("bins.csv"), &before.bins)?;
        if let Some(r) = &after {
            write_bins(&cx.out.join("bins_recalibrated.csv"), &r.summary.bins)?;
        }
        write_predictions(&cx.out.join("predictions.csv"), &oof, &surv, after.as_ref().map(|r| r.survival.as_slice()))?;
        if let Some(c) = train.competing()? {
            use crate::contracts::competing_calibration::CompetingCalibration;
            let cc = crate::model::competing_calibration::calibrate_competing(&c, p.horizon, p.bins, p.ci)
                .with_context(|| format!("arm {arm}: competing-risks calibration"))?;
            cx.log(&format!(
                "arm {arm}: competing risks at {}: mean predicted CIF of `{}` {:.4}, observed (Aalen–Johansen) {:.4}, O/E {:.3}",
                p.horizon, cc.cause, cc.mean_predicted, cc.observed, cc.observed_expected
            ));
            cc.write(&cx.out.join(CompetingCalibration::FILE))?;
        }
        Ok(())
    }
}

/// Fits each outer fold's recalibration on its inner predictions (`inner_oof.csv`,
/// `inner_baseline.csv`) and applies it to the fold's test patients.
fn recalibrate(
    cx: &RunCx,
    train: &TrainOutput,
    oof: &[OofRow],
    baselines: &BTreeMap<(usize, usize), Baseline>,
    opts: &CalibrateOptions,
) -> anyhow::Result<cal::Recalibrated> {
    let inner = train.inner_oof()?.rows;
    let inner_baselines = train.inner_baselines()?.folds;
    let r = cal::recalibrate(oof, baselines, &inner, &inner_baselines, opts)
        .map_err(|e| in_file(e, &train.path(InnerOof::FILE)))?;
    for f in &r.folds {
        cx.log(&format!(
            "recalibration repeat {} fold {}: a = {:.4}, b = {:.4} (inner n = {}, events = {})",
            f.repeat, f.fold, f.a, f.b, f.n_inner, f.events_inner
        ));
    }
    for w in &r.warnings {
        cx.log(&format!("warning: {w}"));
    }
    cx.log(&format!(
        "after recalibration: slope {:.4}, intercept {:.4}, ICI {:.4}",
        r.summary.slope, r.summary.intercept, r.summary.ici
    ));
    Ok(r)
}

/// Prefixes a library error with the file it concerns.
fn in_file(e: CalibrateError, file: &Path) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", file.display())
}

/// The horizon must not lie past every follow-up time (the Kaplan–Meier estimate would be the
/// last one carried forward for every bin).
fn check_horizon(rows: &[OofRow], path: &Path, horizon: f64) -> anyhow::Result<()> {
    let max = rows.iter().map(|r| r.time).fold(f64::NEG_INFINITY, f64::max);
    if horizon > max {
        bail!("{}, column 'time': `horizon` {horizon} is past the longest follow-up ({max}): expected a horizon within follow-up", path.display());
    }
    Ok(())
}

/// Writes bins as `bin,n,events,at_risk,predicted,observed,lower,upper`.
fn write_bins(path: &Path, bins: &[cal::Bin]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["bin", "n", "events", "at_risk", "predicted", "observed", "lower", "upper"])?;
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
fn write_predictions(path: &Path, rows: &[OofRow], surv: &[f64], after: Option<&[f64]>) -> anyhow::Result<()> {
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
