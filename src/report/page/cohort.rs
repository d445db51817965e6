//! The cohort section (`templates/report/cohort.html`): the ingest stage's `cohort.csv` and
//! `cohort.json` described — counts, covariates by event status (n (%) or median [IQR]),
//! missing values, reverse Kaplan–Meier median follow-up. Descriptive only: no model number.
use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use super::Result;
use crate::contracts::ingest::{CohortCsv, CohortSummary};
use crate::survival::kaplan_meier::KaplanMeier;

#[derive(Debug, Serialize)]
struct Cell {
    all: String,
    event: String,
    censored: String,
}

#[derive(Debug, Serialize)]
struct CovRow {
    name: String,
    level: Option<String>,
    summary: String,
    cells: Cell,
    missing: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct CohortView {
    patients: usize,
    events: usize,
    censored: usize,
    /// Competing events per cause name (a cohort with `causes`; empty otherwise).
    competing: Vec<(String, usize)>,
    /// Patients without the event of interest (censored or competing).
    no_event: usize,
    dropped: usize,
    max_time: String,
    median_follow_up: String,
    median_time_events: String,
    missing_policy: String,
    rows: Vec<CovRow>,
}

/// Descriptive statistics of one covariate column.
fn quartiles(v: &mut [f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        let h = (v.len() - 1) as f64 * p;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        v[lo] + (h - lo as f64) * (v[hi] - v[lo])
    };
    Some((q(0.25), q(0.5), q(0.75)))
}

fn fmt_q(v: &[f64]) -> String {
    let mut v = v.to_vec();
    match quartiles(&mut v) {
        Some((a, m, b)) => format!("{} [{}, {}]", g(m), g(a), g(b)),
        None => "—".into(),
    }
}

/// A short number: integers as integers, else 3 significant-ish digits.
fn g(x: f64) -> String {
    if (x.fract() == 0.0 && x.abs() < 1e9) || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn count_pct(k: usize, n: usize) -> String {
    if n == 0 {
        "—".into()
    } else {
        format!("{k} ({:.0}%)", 100.0 * k as f64 / n as f64)
    }
}

pub(super) struct Cohort {
    pub(super) ids: Vec<String>,
    pub(super) view: CohortView,
}

pub(super) fn cohort(dir: &Path, time_axis: &crate::report::plots::TimeAxis) -> Result<Cohort> {
    // a follow-up time in the display unit with its unit (`8.6 years`, `3146 days`)
    let days = |t: f64| {
        if t.is_finite() {
            let d = if time_axis.display == crate::report::plots::TimeUnit::Days { 0 } else { 1 };
            format!("{:.d$} {}", time_axis.show(t), time_axis.display.name())
        } else {
            "—".to_string()
        }
    };
    let summary = CohortSummary::read(&dir.join(CohortSummary::FILE))?;
    let table = CohortCsv::read(&dir.join(CohortCsv::FILE))?;
    let covs = table.covariates;
    let ids: Vec<String> = table.rows.iter().map(|r| r.patient_id.clone()).collect();
    let time: Vec<f64> = table.rows.iter().map(|r| r.time).collect();
    let event: Vec<bool> = table.rows.iter().map(|r| r.event).collect();
    let cells: Vec<Vec<String>> =
        (0..covs.len()).map(|j| table.rows.iter().map(|r| r.cells[j].clone()).collect()).collect();
    let n = ids.len();
    let n_ev = event.iter().filter(|&&e| e).count();
    let mut rows = Vec::new();
    for (j, name) in covs.iter().enumerate() {
        let ty = summary.covariates.get(name).map_or("numeric", |c| c.kind());
        let col = &cells[j];
        let missing = col.iter().filter(|s| s.is_empty()).count();
        if ty == "categorical" {
            let levels: BTreeSet<&String> = col.iter().filter(|s| !s.is_empty()).collect();
            for (li, lv) in levels.into_iter().enumerate() {
                let k = |want: Option<bool>| {
                    let mut num = 0;
                    let mut den = 0;
                    for (i, s) in col.iter().enumerate() {
                        if want.is_none_or(|w| event[i] == w) && !s.is_empty() {
                            den += 1;
                            num += usize::from(s == lv);
                        }
                    }
                    count_pct(num, den)
                };
                rows.push(CovRow {
                    name: if li == 0 { name.clone() } else { String::new() },
                    level: Some(lv.clone()),
                    summary: "n (%)".into(),
                    cells: Cell { all: k(None), event: k(Some(true)), censored: k(Some(false)) },
                    missing: if li == 0 { missing } else { 0 },
                });
            }
        } else {
            let vals: Vec<Option<f64>> = col.iter().map(|s| s.parse::<f64>().ok()).collect();
            let binary = vals.iter().flatten().all(|&v| v == 0.0 || v == 1.0);
            let pick = |want: Option<bool>| -> Vec<f64> {
                vals.iter()
                    .enumerate()
                    .filter(|(i, _)| want.is_none_or(|w| event[*i] == w))
                    .filter_map(|(_, v)| *v)
                    .collect()
            };
            let cellf = |want: Option<bool>| {
                let v = pick(want);
                if binary {
                    count_pct(v.iter().filter(|&&x| x == 1.0).count(), v.len())
                } else {
                    fmt_q(&v)
                }
            };
            rows.push(CovRow {
                name: name.clone(),
                level: if binary { Some("= 1".into()) } else { None },
                summary: if binary { "n (%)".into() } else { "median [IQR]".into() },
                cells: Cell { all: cellf(None), event: cellf(Some(true)), censored: cellf(Some(false)) },
                missing,
            });
        }
    }
    // reverse Kaplan–Meier: censoring is the "event" (a competing event ends follow-up too)
    let rev: Vec<bool> = table.rows.iter().map(|r| r.status == 0).collect();
    let median_follow_up = if rev.iter().any(|&e| e) {
        KaplanMeier::fit(&time, &rev).ok().and_then(|k| k.median()).map(days).unwrap_or_else(|| "not reached".into())
    } else {
        "—".into()
    };
    let mut ev_times: Vec<f64> = time.iter().zip(&event).filter(|(_, &e)| e).map(|(&t, _)| t).collect();
    let median_time_events = quartiles(&mut ev_times).map(|(_, m, _)| days(m)).unwrap_or_else(|| "—".into());
    let competing: Vec<(String, usize)> = summary.competing.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let n_competing: usize = competing.iter().map(|c| c.1).sum();
    let view = CohortView {
        patients: n,
        events: n_ev,
        censored: n - n_ev - n_competing,
        competing,
        no_event: n - n_ev,
        dropped: summary.dropped.len(),
        max_time: days(time.iter().cloned().fold(0.0, f64::max)),
        median_follow_up,
        median_time_events,
        missing_policy: summary.missing_policy,
        rows,
    };
    Ok(Cohort { ids, view })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quartiles(&mut v), Some((1.75, 2.5, 3.25)));
        assert_eq!(quartiles(&mut []), None);
        assert_eq!(count_pct(1, 4), "1 (25%)");
        assert_eq!(count_pct(0, 0), "—");
    }
}
