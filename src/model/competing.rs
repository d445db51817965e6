//! Competing risks in cross-validated training: the models of the causes other than the event
//! of interest, fitted per outer fold on the same design as the event-of-interest model, and the
//! predicted cumulative incidence of the event of interest (cause 1) they give
//! ([`crate::contracts::competing::CompetingJson`], `train`'s `competing.json`).
//!
//! Two methods ([`CompetingMethod`]):
//! - **cause-specific** (default): the fold's cause-1 model is [`super::train`]'s penalised Cox
//!   model (events of other causes are censored there, which is exactly the cause-specific
//!   hazard of cause 1, with its penalty chosen by inner CV); every other cause `k` gets a Cox
//!   model on the same design (same transforms, fitted on the same training patients) **with the
//!   same penalty** (one inner CV per fold, on cause 1: the event the study is about). Absolute
//!   risk `F₁(t | x) = Σ_{s ≤ t} S(s− | x) dΛ₁(s | x)`, `Λ_k(t | x) = Λ_{k0}(t) e^{xᵀβ_k}` with
//!   Breslow baselines and the product-limit all-cause survival `S(s) = Π_{u ≤ s}(1 − Σ_k
//!   dΛ_k(u))` ([`crate::survival::cause_specific_cif`] with [`SurvivalForm::ProductLimit`]:
//!   riskRegression's `CSC` + `predictRisk` default, `product.limit = TRUE`). The product-limit
//!   form keeps `F₁` in [0, 1] (a jump of total hazard above 1 — a small fold and a large linear
//!   predictor — is capped at probability 1); the exponential form `S = exp(−Σ_k Λ_k)` can
//!   exceed 1 there (it did on the 60-patient demo's image arm).
//! - **Fine–Gray**: an unpenalised subdistribution-hazard model of cause 1 on the same design
//!   ([`crate::survival::fit_fine_gray`], cmprsk's `crr` has no penalty either):
//!   `F₁(t | x) = 1 − exp(−Λ₁₀(t) e^{(x − x̄)ᵀβ})` (cmprsk's `predict.crr`).
//!
//! A cause without events among a fold's training patients has a zero hazard there (an empty
//! baseline). Fit warnings of the extra models are returned per fold.
//!
//! # Errors
//! A status code of a patient that is not a declared cause, lengths that differ, a fit that
//! fails (naming repeat, fold and cause).
//!
//! # References
//! Putter H, Fiocco M, Geskus RB (2007) Tutorial in biostatistics: competing risks and
//! multi-state models. Stat Med 26:2389–2430. Fine JP, Gray RJ (1999) JASA 94:496–509.
use super::error::{ModelError, Result};
use super::train::{fold_design, TrainData, TrainOptions, TrainResult};
use crate::contracts::competing::{
    CauseModel, CauseName, CompetingFold, CompetingJson, CompetingPatient, TestLp, SCHEMA,
};
use crate::survival::{
    cause_specific_cif, fit_cox, fit_fine_gray, CauseHazard, CompetingRisksData, CoxOptions, FineGrayOptions,
    SurvivalForm,
};
use std::collections::BTreeMap;

/// How the cumulative incidence of cause 1 is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompetingMethod {
    /// One Cox model per cause, combined into the absolute risk.
    CauseSpecific,
    /// A Fine–Gray model of cause 1.
    FineGray,
}

impl CompetingMethod {
    /// `cause_specific` or `fine_gray` (as `competing.json` and the spec write it).
    pub fn as_str(self) -> &'static str {
        match self {
            CompetingMethod::CauseSpecific => "cause_specific",
            CompetingMethod::FineGray => "fine_gray",
        }
    }
}

/// The models of [`fit_competing`] and the warnings of their fits (`(index into
/// TrainResult::folds, message)`).
pub struct CompetingModels {
    pub json: CompetingJson,
    pub warnings: Vec<(usize, String)>,
}

/// Fits, for every outer fold of `res` (the cause-1 training of [`super::train_cv`] on `data`,
/// whose `event` must be `status == 1`), the models of `method`. `causes`: every declared cause,
/// code 1 first.
pub fn fit_competing(
    data: &TrainData,
    status: &[u32],
    causes: &[(u32, String)],
    res: &TrainResult,
    opts: &TrainOptions,
    method: CompetingMethod,
) -> Result<CompetingModels> {
    let n = data.patients.len();
    if status.len() != n {
        return Err(ModelError::LengthMismatch { what: "status codes".into(), expected: n, found: status.len() });
    }
    let codes: Vec<u32> = causes.iter().map(|c| c.0).collect();
    if let Some(i) =
        (0..n).find(|&i| status[i] != 0 && !codes.contains(&status[i]) || (status[i] == 1) != data.event[i])
    {
        return Err(ModelError::InvalidParameter {
            name: format!("status of patient '{}'", data.patients[i]),
            expected: format!("0 or a declared cause ({codes:?}), with event = (status == 1)"),
            found: status[i].to_string(),
        });
    }
    let mut folds = Vec::with_capacity(res.folds.len());
    let mut warnings = Vec::new();
    for (fi, f) in res.folds.iter().enumerate() {
        let context = format!("repeat {} fold {}", f.repeat, f.fold);
        // the fold's rows, from the out-of-fold table (one row per patient per repeat, in the
        // data's patient order)
        let rows: Vec<&crate::contracts::oof::OofRow> = res.oof.rows.iter().filter(|r| r.repeat == f.repeat).collect();
        if rows.len() != n || rows.iter().zip(&data.patients).any(|(r, p)| &r.patient != p) {
            return Err(ModelError::InvalidParameter {
                name: format!("out-of-fold rows ({context})"),
                expected: format!("one row per patient ({n}) in the data's order"),
                found: format!("{} row(s)", rows.len()),
            });
        }
        let train: Vec<usize> = (0..n).filter(|&r| rows[r].fold != f.fold).collect();
        let test: Vec<usize> = (0..n).filter(|&r| rows[r].fold == f.fold).collect();
        let design = fold_design(data, &train, &test, opts, &context)?;
        let t: Vec<f64> = train.iter().map(|&r| data.time[r]).collect();
        let surv = |cause: u32| {
            let context = format!("{context}, cause {cause}");
            move |source| ModelError::Survival { context: context.clone(), source }
        };
        let mut models = Vec::new();
        let mut lps: Vec<Vec<f64>> = Vec::new();
        match method {
            CompetingMethod::CauseSpecific => {
                let b = res.baselines.folds.get(&(f.repeat, f.fold)).ok_or_else(|| ModelError::InvalidParameter {
                    name: format!("baseline ({context})"),
                    expected: "the cause-1 model's baseline".into(),
                    found: "none".into(),
                })?;
                models.push(CauseModel {
                    cause: 1,
                    penalty: f.penalty,
                    time: b.time().to_vec(),
                    cumhaz: b.cumhaz().to_vec(),
                });
                lps.push(test.iter().map(|&r| rows[r].risk).collect());
                for &(k, _) in causes.iter().filter(|c| c.0 != 1) {
                    let e: Vec<bool> = train.iter().map(|&r| status[r] == k).collect();
                    if !e.iter().any(|&x| x) {
                        warnings.push((fi, format!("cause {k}: no event among the training patients ({context})")));
                        models.push(CauseModel { cause: k, penalty: f.penalty, time: vec![], cumhaz: vec![] });
                        lps.push(vec![0.0; test.len()]);
                        continue;
                    }
                    let cox = CoxOptions { l2_penalty: f.penalty, concordance: false, ..Default::default() };
                    let fit = fit_cox(&t, &e, &design.x_train, &design.names, &cox).map_err(surv(k))?;
                    warnings.extend(fit.warnings.iter().map(|w| (fi, format!("cause {k} model: {w}"))));
                    lps.push(fit.linear_predictor(&design.x_predict).map_err(surv(k))?);
                    models.push(CauseModel {
                        cause: k,
                        penalty: f.penalty,
                        time: fit.baseline_times.clone(),
                        cumhaz: fit.baseline_cumulative_hazard.clone(),
                    });
                }
            }
            CompetingMethod::FineGray => {
                let st: Vec<u32> = train.iter().map(|&r| status[r]).collect();
                let d = CompetingRisksData::new(t, st).map_err(surv(1))?;
                let fit = fit_fine_gray(&d, 1, &design.x_train, &design.names, &FineGrayOptions::default())
                    .map_err(surv(1))?;
                warnings.extend(fit.warnings.iter().map(|w| (fi, format!("Fine–Gray model: {w}"))));
                let p = design.names.len();
                let beta = fit.beta();
                let lp: Vec<f64> = design
                    .x_predict
                    .chunks_exact(p)
                    .map(|row| row.iter().zip(&fit.means).zip(&beta).map(|((v, m), b)| (v - m) * b).sum())
                    .collect();
                lps.push(lp);
                models.push(CauseModel {
                    cause: 1,
                    penalty: 0.0,
                    time: fit.baseline_times.clone(),
                    cumhaz: fit.baseline_cumulative_hazard.clone(),
                });
            }
        }
        let test_lp = test
            .iter()
            .enumerate()
            .map(|(i, &r)| TestLp { patient: data.patients[r].clone(), lp: lps.iter().map(|l| l[i]).collect() })
            .collect();
        folds.push(CompetingFold { repeat: f.repeat, fold: f.fold, models, test: test_lp });
    }
    let json = CompetingJson {
        schema: SCHEMA,
        method: method.as_str().into(),
        causes: causes.iter().map(|(code, name)| CauseName { code: *code, name: name.clone() }).collect(),
        patients: (0..n)
            .map(|i| CompetingPatient { patient: data.patients[i].clone(), time: data.time[i], status: status[i] })
            .collect(),
        folds,
    };
    Ok(CompetingModels { json, warnings })
}

/// The predicted cumulative incidence of cause 1 of every patient (in `patients` order) at each
/// of `times`, per repeat: `out[repeat][k][i]` at `times[k]`.
pub fn predicted_cif(c: &CompetingJson, times: &[f64]) -> Result<BTreeMap<usize, Vec<Vec<f64>>>> {
    let index: BTreeMap<&str, usize> = c.patients.iter().enumerate().map(|(i, p)| (p.patient.as_str(), i)).collect();
    let n = c.patients.len();
    let mut out: BTreeMap<usize, Vec<Vec<f64>>> = BTreeMap::new();
    for f in &c.folds {
        let per = out.entry(f.repeat).or_insert_with(|| vec![vec![f64::NAN; n]; times.len()]);
        for t in &f.test {
            let i = index.get(t.patient.as_str()).copied().ok_or_else(|| ModelError::InvalidParameter {
                name: format!("competing models, repeat {} fold {}", f.repeat, f.fold),
                expected: "test patients listed among the patients".into(),
                found: t.patient.clone(),
            })?;
            let cif = if c.method == "fine_gray" {
                let m = &f.models[0];
                let r = t.lp[0].exp();
                times
                    .iter()
                    .map(|&s| {
                        let k = m.time.partition_point(|&u| u <= s);
                        let h = if k == 0 { 0.0 } else { m.cumhaz[k - 1] };
                        1.0 - (-h * r).exp()
                    })
                    .collect()
            } else {
                let hz: Vec<CauseHazard> = f
                    .models
                    .iter()
                    .zip(&t.lp)
                    .map(|(m, &lp)| CauseHazard { times: &m.time, cumhaz: &m.cumhaz, lp })
                    .collect();
                cause_specific_cif(&hz, 0, times, SurvivalForm::ProductLimit).map_err(|source| {
                    ModelError::Survival { context: format!("repeat {} fold {}", f.repeat, f.fold), source }
                })?
            };
            for (k, v) in cif.into_iter().enumerate() {
                per[k][i] = v;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{train_cv, Column, Covariate, CvOptions, MissingPolicy, Penalty};
    use rand::{Rng, SeedableRng};

    /// 150 patients, one covariate raising cause 1 and one raising cause 2.
    fn data(seed: u64) -> (TrainData, Vec<u32>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (mut time, mut status, mut a, mut b) = (vec![], vec![], vec![], vec![]);
        for _ in 0..150 {
            let (x1, x2): (f64, f64) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
            let t1 = -rng.gen::<f64>().ln() / (0.1 * (1.2 * x1).exp());
            let t2 = -rng.gen::<f64>().ln() / (0.08 * (1.2 * x2).exp());
            let c = rng.gen_range(2.0..15.0);
            let t = t1.min(t2).min(c);
            time.push(t);
            status.push(if t == c {
                0
            } else if t == t1 {
                1
            } else {
                2
            });
            a.push(Some(x1));
            b.push(Some(x2));
        }
        let d = TrainData {
            patients: (0..150).map(|i| format!("P{i:03}")).collect(),
            time,
            event: status.iter().map(|&s| s == 1).collect(),
            covariates: vec![
                Covariate { name: "a".into(), column: Column::Numeric(a) },
                Covariate { name: "b".into(), column: Column::Numeric(b) },
            ],
            blocks: vec![],
            spatial: None,
        };
        (d, status)
    }

    fn opts() -> TrainOptions {
        TrainOptions {
            cv: CvOptions { k: 3, repeats: 2, seed: 5 },
            inner_k: 3,
            penalty: Penalty::Fixed(0.01),
            pca: 2,
            missing: MissingPolicy::Error,
        }
    }

    #[test]
    fn cause_specific_models_give_the_absolute_risk_of_the_direct_fits() {
        let (d, status) = data(3);
        let res = train_cv(&d, &opts()).unwrap();
        let causes = vec![(1, "metastasis".to_string()), (2, "death".to_string())];
        let m = fit_competing(&d, &status, &causes, &res, &opts(), CompetingMethod::CauseSpecific).unwrap();
        assert_eq!(m.json.folds.len(), 6);
        let cif = predicted_cif(&m.json, &[2.0, 5.0]).unwrap();
        assert_eq!(cif.len(), 2);
        for per in cif.values() {
            for at_time in per {
                assert!(at_time.iter().all(|v| (0.0..1.0).contains(v)), "{at_time:?}");
            }
            // increasing in time, and with the covariate of cause 1
            assert!((0..150).all(|i| per[1][i] >= per[0][i]));
        }
        // the cause-2 model of fold 0 equals a direct penalised fit on that fold's design
        let f = &m.json.folds[0];
        let n = d.patients.len();
        let train: Vec<usize> = (0..n).filter(|&r| res.oof.rows[r].fold != 0).collect();
        let x: Vec<f64> = train
            .iter()
            .flat_map(|&r| {
                d.covariates.iter().map(move |c| match &c.column {
                    Column::Numeric(v) => v[r].unwrap(),
                    Column::Categorical(_) => unreachable!(),
                })
            })
            .collect();
        // standardised by the fold's training mean/SD: the baseline is at zero design values,
        // so compare the risk ordering through the coefficients' sign instead
        let t: Vec<f64> = train.iter().map(|&r| d.time[r]).collect();
        let e: Vec<bool> = train.iter().map(|&r| status[r] == 2).collect();
        let names = vec!["a".to_string(), "b".to_string()];
        let direct = fit_cox(&t, &e, &x, &names, &CoxOptions::default()).unwrap();
        assert!(direct.beta()[1] > 0.5, "{:?}", direct.beta());
        let lp2: Vec<f64> = f.test.iter().map(|t| t.lp[1]).collect();
        let b_of = |p: &str| {
            let i = d.patients.iter().position(|x| x == p).unwrap();
            match &d.covariates[1].column {
                Column::Numeric(v) => v[i].unwrap(),
                Column::Categorical(_) => unreachable!(),
            }
        };
        let bs: Vec<f64> = f.test.iter().map(|t| b_of(&t.patient)).collect();
        let (imax, _) = bs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        let (imin, _) = bs.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        assert!(lp2[imax] > lp2[imin]);
        // a patient coded 2 but flagged as an event of interest is refused
        let mut bad = status.clone();
        let j = bad.iter().position(|&s| s == 1).unwrap();
        bad[j] = 2;
        assert!(fit_competing(&d, &bad, &causes, &res, &opts(), CompetingMethod::CauseSpecific).is_err());
    }

    #[test]
    fn fine_gray_models_predict_a_cumulative_incidence() {
        let (d, status) = data(4);
        let res = train_cv(&d, &opts()).unwrap();
        let causes = vec![(1, "metastasis".to_string()), (2, "death".to_string())];
        let m = fit_competing(&d, &status, &causes, &res, &opts(), CompetingMethod::FineGray).unwrap();
        assert!(m.json.folds.iter().all(|f| f.models.len() == 1 && f.models[0].penalty == 0.0));
        let cif = predicted_cif(&m.json, &[5.0]).unwrap();
        assert!(cif[&0][0].iter().all(|v| (0.0..1.0).contains(v)));
        // equal to the Fine–Gray fit's own prediction (`predict.crr`) on the fold's design
        let f = &res.folds[0];
        let n = d.patients.len();
        let train: Vec<usize> = (0..n).filter(|&r| res.oof.rows[r].fold != f.fold).collect();
        let test: Vec<usize> = (0..n).filter(|&r| res.oof.rows[r].fold == f.fold).collect();
        let design = fold_design(&d, &train, &test, &opts(), "test").unwrap();
        let data = CompetingRisksData::new(
            train.iter().map(|&r| d.time[r]).collect(),
            train.iter().map(|&r| status[r]).collect(),
        )
        .unwrap();
        let fit = fit_fine_gray(&data, 1, &design.x_train, &design.names, &FineGrayOptions::default()).unwrap();
        let want = fit.predict_cif(&design.x_predict, &[5.0]).unwrap();
        for (k, &r) in test.iter().enumerate() {
            assert!((cif[&0][0][r] - want[k][0]).abs() < 1e-12, "{} vs {}", cif[&0][0][r], want[k][0]);
        }
    }
}
