//! `evaluate`: discrimination, accuracy and risk-group separation of every arm's out-of-fold
//! predictions, and the paired comparison of each arm with a reference arm. One node for the
//! whole matrix ([`StageKind::gathers_arms`]).
//!
//! **Inputs:** exactly one needed stage of kind `train`, resolved in every arm: its `oof.csv`
//! (`repeat,patient,fold,risk,time,event`), `baseline.csv` (`repeat,fold,time,cumhaz`) and
//! `model.json` (`folds[].{repeat,fold,cut_median,cut_tertiles}`).
//! **Outputs:** `metrics.json` (schema in docs/evaluate.md), and per arm under
//! `curves/<arm-slug>/`: `roc_<horizon>.csv` (`fpr,tpr,threshold`), `km_<group>.csv`
//! (`time,survival,lower,upper,at_risk,events,censored`), `groups.csv`
//! (`patient,fold,risk,group`, repeat 0). In a competing-risks cohort (the `train` outputs
//! carry `competing.json`): `competing_metrics.json` (AUC and Brier score of the predicted
//! cumulative incidence of cause 1 in the competing-risks sense, Aalen–Johansen curves of every
//! cause by risk group; [`crate::model::competing_evaluation`]).
//! **Key covers:** `horizons`, `bootstrap`, `ci`, `reference`, `groups`, the spec seed, and the
//! keys of every arm's `train` node.
//! **Reference:** the estimators of [`crate::survival`] through [`crate::model::evaluation`]
//! (Harrell 1996, Uno 2011, Uno 2007 / scikit-survival `cumulative_dynamic_auc`, Graf 1999,
//! Kaplan–Meier with log(−log) CI, log-rank, Cox Wald CI; Efron–Tibshirani percentile bootstrap).
use super::{in_range_f64, in_range_usize, resolved, typed, CheckCx, Checked, ParamError, RunCx, StageKind};
use crate::contracts::metrics::{
    ArmMetrics, AucMetric, BrierMetric, ComparisonMetric, GroupMetric, IbsMetric, KmCsv, Metrics, RepeatSpreads,
    RiskGroupsMetric, RocCsv, RocRow, UnoC, SCHEMA,
};
use crate::contracts::{Output, TrainOutput, EVALUATE};
use crate::docpath::Seg;
use crate::model::evaluation::{
    compare, evaluate_prepared, ArmEvaluation, ArmInput, Comparison, EvalOptions, FoldCuts, GroupMethod, Prepared,
};
use crate::model::split_intervals::{holm, paired_refit, refit_interval, replicate_metrics, spread, ReplicateMetrics};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The `evaluate` kind.
pub struct Evaluate;

/// Parameters of `evaluate`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateParams {
    /// Horizons of the time-dependent AUC and Brier score (strictly increasing, > 0); the last
    /// is Uno's τ and the end of the integrated Brier score.
    pub horizons: Vec<f64>,
    /// Bootstrap replicates of every interval.
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
    /// Confidence level of every interval.
    #[serde(default = "default_ci")]
    pub ci: f64,
    /// Arm the others are compared with (default: the first arm).
    #[serde(default)]
    pub reference: Option<String>,
    /// Risk groups: `median` or `tertiles`.
    #[serde(default = "default_groups")]
    pub groups: GroupMethod,
    /// The arm whose comparison with the reference is the pre-specified primary comparison
    /// (its p-value unadjusted); every other comparison is exploratory, Holm-adjusted.
    #[serde(default)]
    pub primary: Option<String>,
}

fn default_bootstrap() -> usize {
    1000
}
fn default_ci() -> f64 {
    0.95
}
fn default_groups() -> GroupMethod {
    GroupMethod::Median
}

/// The arm name with every character outside `[A-Za-z0-9._-]` replaced by `_`.
pub fn slug(arm: &str) -> String {
    arm.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

/// A horizon as written in file names: `1095` for integral values, else `1095.5`.
fn horizon_label(h: f64) -> String {
    if h == h.trunc() && h.abs() < 1e15 {
        format!("{}", h as i64)
    } else {
        format!("{h}")
    }
}

impl StageKind for Evaluate {
    fn name(&self) -> &'static str {
        EVALUATE
    }
    fn version(&self) -> u32 {
        // 2: `metrics.json` carries each arm's model warnings (`arms[].warnings`)
        // 3: schema 2: split-aware intervals from the refit replicates, spread across repeats,
        //    Holm-adjusted exploratory comparisons, bootstrap p = (1 + #)/(B + 1); and
        //    `competing_metrics.json` in a competing-risks cohort
        3
    }
    fn about(&self) -> &'static str {
        "C-indices, time-dependent AUC, Brier/IBS, KM by risk group, HR and paired ΔC across arms"
    }
    fn gathers_arms(&self) -> bool {
        true
    }
    fn check(&self, params: &Value, _cx: &CheckCx) -> Result<Checked, ParamError> {
        let p: EvaluateParams = typed(params)?;
        if p.horizons.is_empty() {
            return Err(ParamError::at(
                vec![Seg::key("horizons")],
                "`horizons` must list at least one time > 0, found an empty list",
            ));
        }
        use crate::bounds as b;
        in_range_usize(vec![Seg::key("horizons")], &b::EVAL_HORIZONS_LEN, p.horizons.len())?;
        for (i, &h) in p.horizons.iter().enumerate() {
            if !(h.is_finite() && h > 0.0) {
                return Err(ParamError::at(
                    vec![Seg::key("horizons"), Seg::Index(i)],
                    format!("a horizon must be a finite time > 0, found {h}"),
                ));
            }
            in_range_f64(vec![Seg::key("horizons"), Seg::Index(i)], &b::EVAL_HORIZON, h)?;
            if i > 0 && h <= p.horizons[i - 1] {
                return Err(ParamError::at(
                    vec![Seg::key("horizons"), Seg::Index(i)],
                    format!("horizons must be strictly increasing, found {h} after {}", p.horizons[i - 1]),
                ));
            }
        }
        in_range_usize(vec![Seg::key("bootstrap")], &b::EVAL_BOOTSTRAP, p.bootstrap)?;
        in_range_f64(vec![Seg::key("ci")], &b::EVAL_CI, p.ci)?;
        if p.primary.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(ParamError::at(vec![Seg::key("primary")], "`primary` must name an arm, found an empty string"));
        }
        if p.reference.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(ParamError::at(
                vec![Seg::key("reference")],
                "`reference` must name an arm, found an empty string",
            ));
        }
        let mut c = Checked::single(resolved(&p));
        c.uses_seed = true;
        Ok(c.with_typed(p))
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<EvaluateParams>()?;
        let need = cx.sole_need::<TrainOutput>(EVALUATE)?;
        if need.arms.len() != need.dirs.len() {
            bail!("stage `{}`: {} directories but {} arm names", need.name, need.dirs.len(), need.arms.len());
        }
        // One entry per arm, in matrix order (a shared node may repeat its directory).
        let mut arms: Vec<(String, TrainOutput)> = Vec::new();
        for (_, arm, out) in need.outputs::<TrainOutput>().unwrap_or_default() {
            if !arms.iter().any(|(a, _)| a == arm) {
                arms.push((arm.to_string(), out));
            }
        }
        if arms.is_empty() {
            bail!("stage `{}` resolved to no arm: expected at least one `train` output", need.name);
        }
        let names: Vec<&str> = arms.iter().map(|(a, _)| a.as_str()).collect();
        for (i, a) in names.iter().enumerate() {
            if let Some(b) = names[..i].iter().find(|b| slug(b) == slug(a)) {
                bail!("arms `{b}` and `{a}` would share the curve folder curves/{}: expected arm names that differ in [A-Za-z0-9._-]", slug(a));
            }
        }
        let reference = match &p.reference {
            None => names[0].to_string(),
            Some(r) if names.contains(&r.as_str()) => r.clone(),
            Some(r) => bail!("`reference: {r}` is not an arm of this experiment; the arms are: {}", names.join(", ")),
        };
        if let Some(pa) = &p.primary {
            if !names.contains(&pa.as_str()) {
                bail!("`primary: {pa}` is not an arm of this experiment; the arms are: {}", names.join(", "));
            }
            if *pa == reference {
                bail!(
                    "`primary: {pa}` is the reference arm: expected the arm compared with the reference `{reference}`"
                );
            }
        }
        // split-aware intervals when every arm's train stage ran the whole-procedure bootstrap
        let mut refits = Vec::new();
        let mut models = Vec::new();
        for (arm, train) in &arms {
            let model = train.model().with_context(|| format!("arm `{arm}`: reading model.json"))?;
            let r = train.refit().with_context(|| format!("arm `{arm}`: reading the refit replicates"))?;
            let failed = model.refit.as_ref().map_or(0, |r| r.failed.len());
            refits.push(r.map(|r| (r, failed)));
            models.push(model);
        }
        let with = refits.iter().filter(|r| r.is_some()).count();
        // an arm without replicates is allowed beside refitted ones only when its train stage
        // said why (an attention-MIL arm): its intervals are then conditional
        let conditional: Vec<bool> =
            refits.iter().zip(&models).map(|(r, m)| with > 0 && r.is_none() && m.refit_skipped.is_some()).collect();
        let unexplained: Vec<&str> = arms
            .iter()
            .zip(&refits)
            .zip(&conditional)
            .filter(|((_, r), c)| r.is_none() && !**c)
            .map(|(((a, _), _), _)| a.as_str())
            .collect();
        if with != 0 && !unexplained.is_empty() {
            bail!(
                "arms {} have no refit replicates while {with} other arms do: expected the same `refit` in every arm's train stage",
                unexplained.join(", ")
            );
        }
        let refit_mode = with > 0;
        let options = EvalOptions {
            horizons: p.horizons.clone(),
            bootstrap: if refit_mode { 0 } else { p.bootstrap },
            ci: p.ci,
            seed: cx.seed,
            groups: p.groups,
        };
        let conditional_options = EvalOptions { bootstrap: p.bootstrap, ..options.clone() };
        let mut prepared = Vec::new();
        for (arm, train) in &arms {
            let input = read_train_output(arm, train)?;
            prepared.push(Prepared::new(&input)?);
        }
        let mut evals = Vec::new();
        let mut replicates = Vec::new();
        for ((pr, refit), cond) in prepared.iter().zip(&refits).zip(&conditional) {
            let mut e = evaluate_prepared(pr, if *cond { &conditional_options } else { &options })?;
            if let Some((r, failed)) = refit {
                let reps = replicate_metrics(&pr.arm, r, &p.horizons)?;
                apply_refit(&mut e, &reps, *failed, p.ci);
                replicates.push(Some((reps, *failed)));
            } else {
                replicates.push(None);
            }
            cx.log(&format!(
                "arm {}: n = {}, events = {}, Harrell C = {:.4} [{:.4}, {:.4}], Uno C = {:.4}{}",
                e.arm,
                e.n,
                e.events,
                e.harrell_c.estimate,
                e.harrell_c.lower,
                e.harrell_c.upper,
                e.uno_c.estimate,
                if *cond { " (conditional intervals: its networks are not refitted)" } else { "" }
            ));
            evals.push(e);
        }
        let ref_idx = names.iter().position(|a| *a == reference).unwrap_or(0);
        let mut comparisons = Vec::new();
        for (i, pr) in prepared.iter().enumerate() {
            if i != ref_idx {
                let cond = conditional[i] || conditional[ref_idx];
                let mut c = compare(pr, &prepared[ref_idx], if cond { &conditional_options } else { &options })?;
                if let (Some((ra, fa)), Some((rr, fr))) = (&replicates[i], &replicates[ref_idx]) {
                    let (ci, pv) = paired_refit(
                        (pr.arm.as_str(), ra.as_slice()),
                        (prepared[ref_idx].arm.as_str(), rr.as_slice()),
                        c.delta_c.estimate,
                        fa + fr,
                        p.ci,
                        |r| r.harrell,
                    )?;
                    c.delta_c = ci;
                    c.p = pv;
                }
                cx.log(&format!(
                    "ΔC {} − {} = {:.4} [{:.4}, {:.4}], p = {:.4}{}",
                    c.arm,
                    c.reference,
                    c.delta_c.estimate,
                    c.delta_c.lower,
                    c.delta_c.upper,
                    c.p,
                    if cond { " (conditional paired bootstrap)" } else { "" }
                ));
                comparisons.push((i, c));
            }
        }
        for (e, pr) in evals.iter().zip(&prepared) {
            write_curves(cx.out, e, pr)?;
        }
        let mut metrics = metrics_json(p, cx.seed, &reference, &evals, ref_idx, &comparisons);
        if refit_mode {
            metrics.intervals = "refit".into();
            metrics.refit_replicates =
                models.iter().filter_map(|m| m.refit.as_ref().map(|r| r.replicates)).max().unwrap_or(0);
            for (m, &c) in metrics.arms.iter_mut().zip(&conditional) {
                m.intervals = c.then(|| "conditional".to_string());
            }
            for (m, (i, _)) in metrics.comparisons.iter_mut().zip(&comparisons) {
                m.intervals = (conditional[*i] || conditional[ref_idx]).then(|| "conditional".to_string());
            }
        }
        for (m, model) in metrics.arms.iter_mut().zip(&models) {
            if let Some(why) = &model.refit_skipped {
                m.warnings.push(format!("refit_skipped: {why}"));
            }
            for f in &model.folds {
                m.warnings.extend(f.warnings.iter().map(|w| format!("repeat {} fold {}: {w}", f.repeat, f.fold)));
            }
            if let Some(r) = model.refit.as_ref().filter(|r| !r.failed.is_empty()) {
                m.warnings.push(format!(
                    "refit_failed: {} of {} whole-procedure bootstrap replicates could not be trained and are left out of \
                     the intervals (first: replicate {}: {})",
                    r.failed.len(),
                    r.replicates,
                    r.failed[0].replicate,
                    r.failed[0].reason
                ));
            }
        }
        metrics.write(&cx.out.join(Metrics::FILE)).context("writing metrics.json")?;
        write_competing_metrics(cx, p, &arms)?;
        Ok(())
    }
}

/// In a competing-risks cohort (arms whose `train` wrote `competing.json`):
/// `competing_metrics.json` ([`crate::model::competing_evaluation`]).
fn write_competing_metrics(cx: &RunCx, p: &EvaluateParams, arms: &[(String, TrainOutput)]) -> anyhow::Result<()> {
    use crate::contracts::competing_metrics::{CompetingMetrics, SCHEMA as CR_SCHEMA};
    use crate::model::competing_evaluation::{evaluate_competing, CompetingEvalOptions};
    let opts = CompetingEvalOptions {
        horizons: p.horizons.clone(),
        bootstrap: p.bootstrap,
        ci: p.ci,
        seed: cx.seed,
        groups: p.groups,
    };
    let mut out = Vec::new();
    for (arm, train) in arms {
        let ctx = || format!("arm `{arm}`: reading the `train` output in {}", train.dir().display());
        let Some(c) = train.competing().with_context(ctx)? else { continue };
        let oof = train.oof().with_context(ctx)?.rows;
        let cuts = train
            .model()
            .with_context(ctx)?
            .folds
            .iter()
            .map(|f| ((f.repeat, f.fold), (f.cut_median, f.cut_tertiles)))
            .collect();
        let e = evaluate_competing(arm, &slug(arm), &c, &oof, &cuts, &opts)
            .with_context(|| format!("arm `{arm}`: competing-risks metrics"))?;
        for h in &e.horizons {
            cx.log(&format!(
                "arm {arm}: competing risks at {}: AUC = {:.4} [{:.4}, {:.4}], Brier = {:.4}; observed CIF {:.4}, mean predicted {:.4}",
                h.horizon, h.auc.estimate, h.auc.lower, h.auc.upper, h.brier.estimate, h.observed_cif, h.mean_predicted_cif
            ));
        }
        out.push(e);
    }
    if out.is_empty() {
        return Ok(());
    }
    let m = CompetingMetrics {
        schema: CR_SCHEMA,
        horizons: p.horizons.clone(),
        bootstrap: p.bootstrap,
        ci: p.ci,
        seed: cx.seed,
        groups: p.groups,
        arms: out,
    };
    m.write(&cx.out.join(CompetingMetrics::FILE)).context("writing competing_metrics.json")?;
    Ok(())
}

/// Reads one arm's `train` output (`oof.csv`, `baseline.csv`, `model.json`).
pub fn read_train_output(arm: &str, train: &TrainOutput) -> anyhow::Result<ArmInput> {
    let ctx = || format!("arm `{arm}`: reading the `train` output in {}", train.dir().display());
    let oof = train.oof().with_context(ctx)?.rows;
    let baselines = train.baselines().with_context(ctx)?.folds;
    let model = train.model().with_context(ctx)?;
    let cuts = model
        .folds
        .iter()
        .map(|f| FoldCuts { repeat: f.repeat, fold: f.fold, cut_median: f.cut_median, cut_tertiles: f.cut_tertiles })
        .collect();
    // folds without a baseline (discrete-time networks) predict survival curves instead
    let has_curves = train.path(crate::contracts::survival_curves::SurvivalCurves::FILE).exists();
    let curves = if has_curves && model.folds.iter().any(|f| !baselines.contains_key(&(f.repeat, f.fold))) {
        train.survival_curves().with_context(ctx)?.curves.into_iter().map(|(k, (_, c))| (k, c)).collect()
    } else {
        BTreeMap::new()
    };
    Ok(ArmInput { name: arm.to_string(), oof, baselines, cuts, curves })
}

/// The `metrics.json` document.
/// `comparisons` pairs each comparison with its arm's index in `evals`; the primary one (if
/// the spec names it) keeps its p-value, the others are Holm-adjusted among themselves.
pub fn metrics_json(
    p: &EvaluateParams,
    seed: u64,
    reference: &str,
    evals: &[ArmEvaluation],
    ref_idx: usize,
    comparisons: &[(usize, Comparison)],
) -> Metrics {
    let is_primary = |c: &Comparison| p.primary.as_deref() == Some(c.arm.as_str());
    let exploratory: Vec<f64> = comparisons.iter().filter(|(_, c)| !is_primary(c)).map(|(_, c)| c.p).collect();
    let mut adjusted = holm(&exploratory).into_iter();
    let refr = &evals[ref_idx].per_repeat.harrell;
    Metrics {
        schema: SCHEMA,
        horizons: p.horizons.clone(),
        bootstrap: p.bootstrap,
        ci: p.ci,
        seed,
        reference: reference.to_string(),
        groups: p.groups,
        arms: evals.iter().map(arm_metrics).collect(),
        comparisons: comparisons
            .iter()
            .map(|(i, c)| {
                let primary = is_primary(c);
                let deltas: Vec<f64> = evals[*i].per_repeat.harrell.iter().zip(refr).map(|(a, b)| a - b).collect();
                ComparisonMetric {
                    arm: c.arm.clone(),
                    reference: c.reference.clone(),
                    c_arm: c.c_arm,
                    c_reference: c.c_reference,
                    delta_c: c.delta_c.clone(),
                    p: c.p,
                    role: if primary { "primary" } else { "exploratory" }.into(),
                    p_adjusted: if primary { c.p } else { adjusted.next().unwrap_or(f64::NAN) },
                    across_repeats: (deltas.len() > 1).then(|| spread(&deltas)),
                    intervals: None,
                }
            })
            .collect(),
        intervals: "conditional".into(),
        refit_replicates: 0,
        primary: p.primary.clone(),
        adjustment: "holm".into(),
    }
}

/// Replaces an arm's intervals by the split-aware ones of its refit replicates.
fn apply_refit(e: &mut ArmEvaluation, reps: &[ReplicateMetrics], failed: usize, level: f64) {
    let col = |f: &dyn Fn(&ReplicateMetrics) -> f64| -> Vec<f64> { reps.iter().map(f).collect() };
    e.harrell_c = refit_interval(e.harrell_c.estimate, &col(&|r| r.harrell), failed, level, (0.0, 1.0));
    e.uno_c = refit_interval(e.uno_c.estimate, &col(&|r| r.uno), failed, level, (0.0, 1.0));
    for (k, a) in e.auc.iter_mut().enumerate() {
        a.interval = refit_interval(a.interval.estimate, &col(&|r| r.auc[k]), failed, level, (0.0, 1.0));
    }
    for (k, (_, b)) in e.brier.iter_mut().enumerate() {
        *b = refit_interval(b.estimate, &col(&|r| r.brier[k]), failed, level, (0.0, 1.0));
    }
    e.ibs = refit_interval(e.ibs.estimate, &col(&|r| r.ibs), failed, level, (0.0, 1.0));
}

/// One arm's entry of `metrics.json`, its curve files named under `curves/<slug>/`.
fn arm_metrics(e: &ArmEvaluation) -> ArmMetrics {
    let s = slug(&e.arm);
    let rg = &e.risk_groups;
    let auc = e
        .auc
        .iter()
        .map(|a| AucMetric {
            interval: a.interval.clone(),
            horizon: a.horizon,
            n_cases: a.n_cases,
            n_controls: a.n_controls,
            roc: format!("curves/{s}/roc_{}.csv", horizon_label(a.horizon)),
        })
        .collect();
    let groups = rg
        .groups
        .iter()
        .map(|g| GroupMetric {
            label: g.label.clone(),
            n: g.n,
            events: g.events,
            at_risk: g.at_risk.clone(),
            km: (!g.km.is_empty()).then(|| format!("curves/{s}/km_{}.csv", g.label)),
        })
        .collect();
    ArmMetrics {
        arm: e.arm.clone(),
        slug: s.clone(),
        n: e.n,
        events: e.events,
        repeats: e.repeats,
        harrell_c: e.harrell_c.clone(),
        uno_c: UnoC { interval: e.uno_c.clone(), tau: e.tau },
        auc,
        mean_auc: e.mean_auc,
        brier: e.brier.iter().map(|(h, i)| BrierMetric { interval: i.clone(), horizon: *h }).collect(),
        ibs: IbsMetric {
            interval: e.ibs.clone(),
            from: e.ibs_grid[0],
            to: e.ibs_grid[e.ibs_grid.len() - 1],
            grid_points: e.ibs_grid.len(),
        },
        risk_groups: RiskGroupsMetric {
            method: rg.method,
            repeat: 0,
            groups,
            at_risk_times: rg.at_risk_times.clone(),
            logrank: rg.logrank.clone(),
            hazard_ratio: rg.hazard_ratio.clone(),
            assignments: format!("curves/{s}/groups.csv"),
            notes: rg.notes.clone(),
        },
        warnings: Vec::new(),
        across_repeats: (e.repeats > 1).then(|| {
            let pr = &e.per_repeat;
            RepeatSpreads {
                harrell_c: spread(&pr.harrell),
                uno_c: spread(&pr.uno),
                auc: pr.auc.iter().map(|v| spread(v)).collect(),
                brier: pr.brier.iter().map(|v| spread(v)).collect(),
                ibs: spread(&pr.ibs),
            }
        }),
        intervals: None,
    }
}

/// Writes one arm's curves under `curves/<slug>/`.
fn write_curves(out: &Path, e: &ArmEvaluation, p: &Prepared) -> anyhow::Result<()> {
    let dir = out.join("curves").join(slug(&e.arm));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for a in &e.auc {
        let roc = RocCsv {
            rows: a.roc.iter().map(|pt| RocRow { fpr: pt.fpr, tpr: pt.tpr, threshold: pt.threshold }).collect(),
        };
        roc.write(&dir.join(format!("roc_{}.csv", horizon_label(a.horizon))))?;
    }
    for g in &e.risk_groups.groups {
        if !g.km.is_empty() {
            KmCsv { rows: g.km.clone() }.write(&dir.join(format!("km_{}.csv", g.label)))?;
        }
    }
    let path = dir.join("groups.csv");
    let mut w = csv::Writer::from_path(&path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["patient", "fold", "risk", "group"])?;
    for (i, pid) in p.patients.iter().enumerate() {
        w.write_record([
            pid.clone(),
            p.fold[0][i].to_string(),
            p.risk[0][i].to_string(),
            e.risk_groups.assignment[i].to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}
