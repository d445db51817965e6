//! `competing.json`: what `train` writes in a competing-risks cohort (`cohort.causes`) so that
//! `evaluate`, `calibrate` and `report` can compute each patient's predicted cumulative
//! incidence of the event of interest (cause 1) at any time.
//!
//! # Format
//! A JSON object, keys sorted, [`SCHEMA`] in `"schema"`:
//! - `method`: `cause_specific` (one Cox model per cause; the cause-1 model is the one of
//!   `oof.csv`/`baseline.csv`) or `fine_gray` (one subdistribution-hazard model of cause 1);
//! - `causes`: `[{code, name}]`, code 1 first (the event of interest);
//! - `patients`: `[{patient, time, status}]`, in `oof.csv`'s patient order (status 0 = censored,
//!   1 = event of interest, 2, 3, … = competing causes);
//! - `folds`: per repeat and outer fold, `models`: one per cause modelled, `{cause, penalty,
//!   time, cumhaz}` (the model's baseline cumulative hazard, ascending step function, at zero
//!   linear predictor), and `test`: `[{patient, lp}]`, `lp[m]` the patient's linear predictor
//!   under `models[m]`.
//!
//! The cumulative incidence of cause 1 is, with `Λ_m(t | x) = cumhaz_m(t) e^{lp_m}`,
//! `Σ_{s ≤ t} S(s−) dΛ_1(s)`, `S(s) = Π_{u ≤ s} (1 − Σ_m dΛ_m(u))` for `cause_specific` (every
//! cause modelled), or
//! `1 − exp(−Λ_1(t))` for `fine_gray`: computed by `crate::model::competing`, not here.
//!
//! # Validation
//! A known schema and method; cause codes ≥ 1, unique, 1 first; `cause_specific` models every
//! declared cause, `fine_gray` cause 1 only; per fold the models in cause order, baselines with
//! increasing finite times and a finite non-decreasing cumulative hazard ≥ 0; every test patient
//! listed in `patients`, with one finite `lp` per model; every patient tested exactly once per
//! repeat; no (repeat, fold) twice. Errors name the file and the place (`folds[3].models[1]`).
use super::error::{read_json, shown, write_json, ContractError, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The schema version of `competing.json`.
pub const SCHEMA: u32 = 1;

/// `cause_specific` or `fine_gray`.
pub const METHODS: [&str; 2] = ["cause_specific", "fine_gray"];

/// A declared cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CauseName {
    pub code: u32,
    pub name: String,
}

/// One patient's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetingPatient {
    pub patient: String,
    pub time: f64,
    /// 0 = censored, 1 = event of interest, 2, 3, … = competing causes.
    pub status: u32,
}

/// One model of a fold: a cause and its baseline cumulative hazard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CauseModel {
    pub cause: u32,
    /// The L2 penalty of the fit (0 for an unpenalised Fine–Gray fit).
    pub penalty: f64,
    /// Jump times, ascending.
    pub time: Vec<f64>,
    /// Cumulative baseline hazard at those times (at zero linear predictor).
    pub cumhaz: Vec<f64>,
}

/// A test patient's linear predictors (one per model of the fold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestLp {
    pub patient: String,
    pub lp: Vec<f64>,
}

/// One outer fold of one repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetingFold {
    pub repeat: usize,
    pub fold: usize,
    pub models: Vec<CauseModel>,
    pub test: Vec<TestLp>,
}

/// The content of `competing.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetingJson {
    /// [`SCHEMA`].
    pub schema: u32,
    /// One of [`METHODS`].
    pub method: String,
    pub causes: Vec<CauseName>,
    pub patients: Vec<CompetingPatient>,
    pub folds: Vec<CompetingFold>,
}

impl CompetingJson {
    /// The file's name in a `train` directory.
    pub const FILE: &'static str = "competing.json";

    /// Status codes in `patients` order.
    pub fn status(&self) -> Vec<u32> {
        self.patients.iter().map(|p| p.status).collect()
    }

    /// The repeats, ascending.
    pub fn repeats(&self) -> Vec<usize> {
        let r: BTreeSet<usize> = self.folds.iter().map(|f| f.repeat).collect();
        r.into_iter().collect()
    }

    /// Checks the content (see the module documentation).
    pub fn validate(&self, file: &str) -> Result<()> {
        let at = |at: String, msg: String| ContractError::Json { file: file.to_string(), at, msg };
        if self.schema != SCHEMA {
            return Err(at("schema".into(), format!("expected schema {SCHEMA}, found {}", self.schema)));
        }
        if !METHODS.contains(&self.method.as_str()) {
            let m = crate::util::cell_excerpt(&self.method);
            return Err(at("method".into(), format!("expected cause_specific or fine_gray, found `{m}`")));
        }
        let codes: Vec<u32> = self.causes.iter().map(|c| c.code).collect();
        let distinct: BTreeSet<u32> = codes.iter().copied().collect();
        if codes.first() != Some(&1) || distinct.len() != codes.len() || distinct.contains(&0) {
            return Err(at("causes".into(), format!("expected distinct codes ≥ 1 starting with 1, found {codes:?}")));
        }
        let modelled: Vec<u32> = if self.method == "fine_gray" { vec![1] } else { codes.clone() };
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, p) in self.patients.iter().enumerate() {
            if index.insert(p.patient.as_str(), i).is_some() {
                let id = crate::util::cell_excerpt(&p.patient);
                return Err(at(format!("patients[{i}]"), format!("patient `{id}` is listed twice")));
            }
            if !(p.time.is_finite() && p.time >= 0.0) || (p.status != 0 && !distinct.contains(&p.status)) {
                return Err(at(
                    format!("patients[{i}]"),
                    format!(
                        "expected a finite time ≥ 0 and status 0 or a declared cause, found {} / {}",
                        p.time, p.status
                    ),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        let mut tested: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (k, f) in self.folds.iter().enumerate() {
            if !seen.insert((f.repeat, f.fold)) {
                return Err(at(format!("folds[{k}]"), format!("repeat {} fold {} is listed twice", f.repeat, f.fold)));
            }
            let causes: Vec<u32> = f.models.iter().map(|m| m.cause).collect();
            if causes != modelled {
                return Err(at(
                    format!("folds[{k}].models"),
                    format!("expected models of causes {modelled:?} ({}), found {causes:?}", self.method),
                ));
            }
            for (m, model) in f.models.iter().enumerate() {
                let ok = model.time.len() == model.cumhaz.len()
                    && model.penalty.is_finite()
                    && model.time.iter().all(|t| t.is_finite())
                    && model.time.windows(2).all(|w| w[0] < w[1])
                    && model.cumhaz.iter().all(|h| h.is_finite() && *h >= 0.0)
                    && model.cumhaz.windows(2).all(|w| w[0] <= w[1]);
                if !ok {
                    return Err(at(
                        format!("folds[{k}].models[{m}]"),
                        "expected equal-length `time` (finite, increasing) and `cumhaz` (finite, ≥ 0, non-decreasing)"
                            .into(),
                    ));
                }
            }
            let count = tested.entry(f.repeat).or_insert_with(|| vec![0; self.patients.len()]);
            for (j, t) in f.test.iter().enumerate() {
                let Some(&i) = index.get(t.patient.as_str()) else {
                    let id = crate::util::cell_excerpt(&t.patient);
                    return Err(at(format!("folds[{k}].test[{j}]"), format!("patient `{id}` is not in `patients`")));
                };
                count[i] += 1;
                if t.lp.len() != f.models.len() || t.lp.iter().any(|x| !x.is_finite()) {
                    return Err(at(
                        format!("folds[{k}].test[{j}].lp"),
                        format!("expected {} finite linear predictor(s), one per model", f.models.len()),
                    ));
                }
            }
        }
        for (r, count) in &tested {
            if let Some(i) = count.iter().position(|&c| c != 1) {
                let id = crate::util::cell_excerpt(&self.patients[i].patient);
                return Err(at(
                    "folds".into(),
                    format!("repeat {r}: patient `{id}` is tested {} time(s); expected exactly once", count[i]),
                ));
            }
        }
        Ok(())
    }

    /// Writes the file (pretty JSON, keys sorted, no final newline).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.validate(&shown(path))?;
        write_json(path, self, "")
    }

    /// Reads and validates the file.
    pub fn read(path: &Path) -> Result<CompetingJson> {
        let c: CompetingJson = read_json(path, "the competing-risks models written by `train`")?;
        c.validate(&shown(path))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn small() -> CompetingJson {
        let model = |cause| CauseModel { cause, penalty: 0.1, time: vec![1.0, 2.0], cumhaz: vec![0.1, 0.3] };
        CompetingJson {
            schema: SCHEMA,
            method: "cause_specific".into(),
            causes: vec![CauseName { code: 1, name: "metastasis".into() }, CauseName { code: 2, name: "death".into() }],
            patients: vec![
                CompetingPatient { patient: "a".into(), time: 1.0, status: 1 },
                CompetingPatient { patient: "b".into(), time: 2.5, status: 2 },
            ],
            folds: vec![
                CompetingFold {
                    repeat: 0,
                    fold: 0,
                    models: vec![model(1), model(2)],
                    test: vec![TestLp { patient: "a".into(), lp: vec![0.5, -0.25] }],
                },
                CompetingFold {
                    repeat: 0,
                    fold: 1,
                    models: vec![model(1), model(2)],
                    test: vec![TestLp { patient: "b".into(), lp: vec![0.0, 1.0] }],
                },
            ],
        }
    }

    #[test]
    fn golden_text_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(CompetingJson::FILE);
        let c = small();
        c.write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("{\n  \"causes\": [\n    {\n      \"code\": 1,\n      \"name\": \"metastasis\""),
            "{text}"
        );
        assert!(text.contains("\"method\": \"cause_specific\"") && text.contains("\"schema\": 1"), "{text}");
        assert_eq!(CompetingJson::read(&p).unwrap(), c);
    }

    #[test]
    fn malformed_content_names_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(CompetingJson::FILE);
        type Break = Box<dyn Fn(&mut CompetingJson)>;
        let cases: Vec<(Break, &str)> = vec![
            (Box::new(|c| c.schema = 9), "at `schema`"),
            (Box::new(|c| c.method = "aalen".into()), "at `method`"),
            (Box::new(|c| c.folds[1].models.pop().map(|_| ()).unwrap_or(())), "at `folds[1].models`"),
            (Box::new(|c| c.folds[0].models[1].cumhaz = vec![0.3, 0.1]), "at `folds[0].models[1]`"),
            (Box::new(|c| c.folds[0].test[0].lp = vec![f64::NAN, 0.0]), "at `folds[0].test[0].lp`"),
            (Box::new(|c| c.folds[1].test[0].patient = "a".into()), "patient `a` is tested 2 time(s)"),
            (Box::new(|c| c.patients[1].status = 3), "at `patients[1]`"),
        ];
        for (break_it, want) in cases {
            let mut c = small();
            break_it(&mut c);
            let e = c.write(&p).unwrap_err().to_string();
            assert!(e.contains(CompetingJson::FILE) && e.contains(want), "{e} (want {want})");
        }
        std::fs::write(&p, "{\"schema\": 1}").unwrap();
        let e = CompetingJson::read(&p).unwrap_err().to_string();
        assert!(e.contains("competing.json") && e.contains("missing field"), "{e}");
    }
}
