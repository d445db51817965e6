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
//! (`patient,fold,risk,group`, repeat 0).
//! **Key covers:** `horizons`, `bootstrap`, `ci`, `reference`, `groups`, the spec seed, and the
//! keys of every arm's `train` node.
//! **Reference:** the estimators of [`crate::survival`] through [`crate::model::evaluation`]
//! (Harrell 1996, Uno 2011, Uno 2007 / scikit-survival `cumulative_dynamic_auc`, Graf 1999,
//! Kaplan–Meier with log(−log) CI, log-rank, Cox Wald CI; Efron–Tibshirani percentile bootstrap).
use super::{in_range_f64, in_range_usize, resolved, typed, CheckCx, Checked, ParamError, RunCx, StageKind};
use crate::model::evaluation::{
    compare, evaluate_prepared, ArmEvaluation, ArmInput, BaselineRecord, Comparison, EvalOptions, FoldCuts, GroupMethod,
    Interval, KmRow, OofRecord, Prepared,
};
use crate::spec::locate::Seg;
use crate::survival::CsvTable;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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
        "evaluate"
    }
    fn version(&self) -> u32 {
        1
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
            return Err(ParamError::at(vec![Seg::key("horizons")], "`horizons` must list at least one time > 0, found an empty list"));
        }
        use crate::bounds as b;
        in_range_usize(vec![Seg::key("horizons")], &b::EVAL_HORIZONS_LEN, p.horizons.len())?;
        for (i, &h) in p.horizons.iter().enumerate() {
            if !(h.is_finite() && h > 0.0) {
                return Err(ParamError::at(vec![Seg::key("horizons"), Seg::Index(i)], format!("a horizon must be a finite time > 0, found {h}")));
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
        if p.reference.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(ParamError::at(vec![Seg::key("reference")], "`reference` must name an arm, found an empty string"));
        }
        let mut c = Checked::single(resolved(&p));
        c.uses_seed = true;
        Ok(c.with_typed(p))
    }

    fn run(&self, cx: &RunCx) -> anyhow::Result<()> {
        let p = cx.typed::<EvaluateParams>()?;
        let train: Vec<_> = cx.needs.iter().filter(|n| n.kind == "train").collect();
        if train.len() != 1 || cx.needs.len() != 1 {
            let found: Vec<String> = cx.needs.iter().map(|n| format!("`{}` ({})", n.name, n.kind)).collect();
            bail!("`evaluate` needs exactly one stage of kind `train`, found [{}]", found.join(", "));
        }
        let need = train[0];
        if need.arms.len() != need.dirs.len() {
            bail!("stage `{}`: {} directories but {} arm names", need.name, need.dirs.len(), need.arms.len());
        }
        // One entry per arm, in matrix order (a shared node may repeat its directory).
        let mut arms: Vec<(String, &Path)> = Vec::new();
        for (arm, (_, dir)) in need.arms.iter().zip(&need.dirs) {
            if !arms.iter().any(|(a, _)| a == arm) {
                arms.push((arm.clone(), dir.as_path()));
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
        let options = EvalOptions { horizons: p.horizons.clone(), bootstrap: p.bootstrap, ci: p.ci, seed: cx.seed, groups: p.groups };
        let mut prepared = Vec::new();
        for (arm, dir) in &arms {
            let input = read_train_dir(arm, dir)?;
            prepared.push(Prepared::new(&input)?);
        }
        let mut evals = Vec::new();
        for pr in &prepared {
            let e = evaluate_prepared(pr, &options)?;
            cx.log(&format!(
                "arm {}: n = {}, events = {}, Harrell C = {:.4} [{:.4}, {:.4}], Uno C = {:.4}",
                e.arm, e.n, e.events, e.harrell_c.estimate, e.harrell_c.lower, e.harrell_c.upper, e.uno_c.estimate
            ));
            evals.push(e);
        }
        let ref_idx = names.iter().position(|a| *a == reference).unwrap_or(0);
        let mut comparisons = Vec::new();
        for (i, pr) in prepared.iter().enumerate() {
            if i != ref_idx {
                let c = compare(pr, &prepared[ref_idx], &options)?;
                cx.log(&format!("ΔC {} − {} = {:.4} [{:.4}, {:.4}], p = {:.4}", c.arm, c.reference, c.delta_c.estimate, c.delta_c.lower, c.delta_c.upper, c.p));
                comparisons.push(c);
            }
        }
        for (e, pr) in evals.iter().zip(&prepared) {
            write_curves(cx.out, e, pr)?;
        }
        let metrics = metrics_json(&p, cx.seed, &reference, &evals, &comparisons);
        crate::util::write_file(cx.out.join("metrics.json"), serde_json::to_string_pretty(&metrics)? + "\n").context("writing metrics.json")?;
        Ok(())
    }
}

/// A column of non-negative integers (repeat, fold indices), with errors naming file, row and
/// column.
fn indices(t: &CsvTable, col: &str) -> anyhow::Result<Vec<usize>> {
    let v = t.numeric(col)?;
    v.iter()
        .enumerate()
        .map(|(r, &x)| {
            if x >= 0.0 && x == x.trunc() && x < 1e9 {
                Ok(x as usize)
            } else {
                bail!("{}, data row {}, column '{col}': expected a non-negative integer, found {x}", t.file(), r + 1)
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct ModelJson {
    folds: Vec<FoldJson>,
}

#[derive(Deserialize)]
struct FoldJson {
    repeat: usize,
    fold: usize,
    cut_median: f64,
    cut_tertiles: [f64; 2],
}

/// Reads one arm's `train` output directory (`oof.csv`, `baseline.csv`, `model.json`).
pub fn read_train_dir(arm: &str, dir: &Path) -> anyhow::Result<ArmInput> {
    let ctx = || format!("arm `{arm}`: reading the `train` output in {}", dir.display());
    let oof_t = CsvTable::read(dir.join("oof.csv")).with_context(ctx)?;
    let repeat = indices(&oof_t, "repeat").with_context(ctx)?;
    let patient = oof_t.strings("patient").with_context(ctx)?;
    let fold = indices(&oof_t, "fold").with_context(ctx)?;
    let risk = oof_t.numeric("risk").with_context(ctx)?;
    let time = oof_t.times("time").with_context(ctx)?;
    let event = oof_t.events("event").with_context(ctx)?;
    if let Some(r) = patient.iter().position(|p| p.is_empty()) {
        bail!("{}, data row {}, column 'patient': expected a patient id, found an empty value", oof_t.file(), r + 1);
    }
    let oof = (0..oof_t.len())
        .map(|i| OofRecord { repeat: repeat[i], patient: patient[i].clone(), fold: fold[i], risk: risk[i], time: time[i], event: event[i] })
        .collect();
    let b = CsvTable::read(dir.join("baseline.csv")).with_context(ctx)?;
    let (br, bf, bt, bh) = (indices(&b, "repeat")?, indices(&b, "fold")?, b.numeric("time")?, b.numeric("cumhaz")?);
    let baseline = (0..b.len()).map(|i| BaselineRecord { repeat: br[i], fold: bf[i], time: bt[i], cumhaz: bh[i] }).collect();
    let mpath = dir.join("model.json");
    let text = std::fs::read_to_string(&mpath).with_context(|| format!("reading {}", mpath.display()))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let m: ModelJson = serde_path_to_error::deserialize(de).map_err(|e| {
        anyhow::anyhow!("{}: at `{}`: {} (expected folds[].repeat, fold, cut_median, cut_tertiles [a, b])", mpath.display(), e.path(), e.inner())
    })?;
    let cuts = m
        .folds
        .iter()
        .map(|f| {
            if f.cut_median.is_finite() && f.cut_tertiles.iter().all(|x| x.is_finite()) && f.cut_tertiles[0] <= f.cut_tertiles[1] {
                Ok(FoldCuts { repeat: f.repeat, fold: f.fold, cut_median: f.cut_median, cut_tertiles: f.cut_tertiles })
            } else {
                bail!(
                    "{}: repeat {} fold {}: expected finite cut-points with cut_tertiles ascending, found cut_median {} cut_tertiles {:?}",
                    mpath.display(),
                    f.repeat,
                    f.fold,
                    f.cut_median,
                    f.cut_tertiles
                )
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(ArmInput { name: arm.to_string(), oof, baseline, cuts })
}

fn interval(i: &Interval) -> Value {
    json!({"estimate": i.estimate, "lower": i.lower, "upper": i.upper, "se": i.se, "n_boot": i.n_boot, "n_failed": i.n_failed})
}

/// The `metrics.json` document.
pub fn metrics_json(p: &EvaluateParams, seed: u64, reference: &str, evals: &[ArmEvaluation], comparisons: &[Comparison]) -> Value {
    let arms: Vec<Value> = evals
        .iter()
        .map(|e| {
            let s = slug(&e.arm);
            let mut uno = interval(&e.uno_c);
            uno["tau"] = json!(e.tau);
            let mut ibs = interval(&e.ibs);
            ibs["from"] = json!(e.ibs_grid[0]);
            ibs["to"] = json!(e.ibs_grid[e.ibs_grid.len() - 1]);
            ibs["grid_points"] = json!(e.ibs_grid.len());
            let rg = &e.risk_groups;
            json!({
                "arm": e.arm, "slug": s, "n": e.n, "events": e.events, "repeats": e.repeats,
                "harrell_c": interval(&e.harrell_c),
                "uno_c": uno,
                "auc": e.auc.iter().map(|a| {
                    let mut v = interval(&a.interval);
                    v["horizon"] = json!(a.horizon);
                    v["n_cases"] = json!(a.n_cases);
                    v["n_controls"] = json!(a.n_controls);
                    v["roc"] = json!(format!("curves/{s}/roc_{}.csv", horizon_label(a.horizon)));
                    v
                }).collect::<Vec<_>>(),
                "mean_auc": e.mean_auc,
                "brier": e.brier.iter().map(|(h, i)| { let mut v = interval(i); v["horizon"] = json!(h); v }).collect::<Vec<_>>(),
                "ibs": ibs,
                "risk_groups": {
                    "method": rg.method,
                    "repeat": 0,
                    "groups": rg.groups.iter().map(|g| json!({
                        "label": g.label, "n": g.n, "events": g.events, "at_risk": g.at_risk,
                        "km": if g.km.is_empty() { Value::Null } else { json!(format!("curves/{s}/km_{}.csv", g.label)) },
                    })).collect::<Vec<_>>(),
                    "at_risk_times": rg.at_risk_times,
                    "logrank": rg.logrank,
                    "hazard_ratio": rg.hazard_ratio,
                    "assignments": format!("curves/{s}/groups.csv"),
                    "notes": rg.notes,
                },
            })
        })
        .collect();
    json!({
        "schema": 1,
        "horizons": p.horizons,
        "bootstrap": p.bootstrap,
        "ci": p.ci,
        "seed": seed,
        "reference": reference,
        "groups": p.groups,
        "arms": arms,
        "comparisons": comparisons.iter().map(|c| json!({
            "arm": c.arm, "reference": c.reference, "c_arm": c.c_arm, "c_reference": c.c_reference,
            "delta_c": interval(&c.delta_c), "p": c.p,
        })).collect::<Vec<_>>(),
    })
}

fn write_km(path: &Path, rows: &[KmRow]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["time", "survival", "lower", "upper", "at_risk", "events", "censored"])?;
    for r in rows {
        w.write_record([
            r.time.to_string(),
            r.survival.to_string(),
            r.lower.to_string(),
            r.upper.to_string(),
            r.at_risk.to_string(),
            r.events.to_string(),
            r.censored.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// Writes one arm's curves under `curves/<slug>/`.
fn write_curves(out: &Path, e: &ArmEvaluation, p: &Prepared) -> anyhow::Result<()> {
    let dir = out.join("curves").join(slug(&e.arm));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for a in &e.auc {
        let path = dir.join(format!("roc_{}.csv", horizon_label(a.horizon)));
        let mut w = csv::Writer::from_path(&path).with_context(|| format!("writing {}", path.display()))?;
        w.write_record(["fpr", "tpr", "threshold"])?;
        for pt in &a.roc {
            w.write_record([pt.fpr.to_string(), pt.tpr.to_string(), pt.threshold.to_string()])?;
        }
        w.flush()?;
    }
    for g in &e.risk_groups.groups {
        if !g.km.is_empty() {
            write_km(&dir.join(format!("km_{}.csv", g.label)), &g.km)?;
        }
    }
    let path = dir.join("groups.csv");
    let mut w = csv::Writer::from_path(&path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["patient", "fold", "risk", "group"])?;
    for (i, pid) in p.patients.iter().enumerate() {
        w.write_record([pid.clone(), p.fold[0][i].to_string(), p.risk[0][i].to_string(), e.risk_groups.assignment[i].to_string()])?;
    }
    w.flush()?;
    Ok(())
}
