//! Competing-risks data: each observation ends at `time[i]` either censored (`status 0`) or by
//! one of several mutually exclusive causes (`status 1, 2, …`), e.g. 1 = distant metastasis,
//! 2 = death without metastasis. [`CompetingRisksData`] is validated once and shared by the
//! Aalen–Johansen cumulative incidence ([`super::cif`]), Gray's test ([`super::gray`]), Fine–Gray
//! regression ([`super::finegray`]) and the cause-specific Cox helper ([`super::cause_specific`]).
//!
//! # Assumptions
//! Times are finite and ≥ 0; causes are non-negative integers (any number of causes, codes need
//! not be consecutive); censoring is independent of the event process. The first event of any
//! cause ends follow-up.
//!
//! # Errors
//! Empty input, lengths that differ, negative / NaN / infinite times ([`SurvivalError`] naming
//! the 0-based observation); a non-integer or negative status code from floating-point input;
//! asking for a cause that never occurs. The CSV loader ([`super::data::CsvTable::status_codes`])
//! names file, data row and column instead.
use super::data::{check_len, check_survival};
use super::error::{Result, SurvivalError};

/// Right-censored competing-risks data (`status 0` = censored, `k ≥ 1` = failed from cause `k`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompetingRisksData {
    /// Follow-up times (finite, ≥ 0).
    pub time: Vec<f64>,
    /// Status codes: 0 = censored, 1, 2, … = cause of the event.
    pub status: Vec<u32>,
}

impl CompetingRisksData {
    /// Validates and wraps times and status codes.
    pub fn new(time: Vec<f64>, status: Vec<u32>) -> Result<Self> {
        check_len("status codes", time.len(), status.len())?;
        let ev: Vec<bool> = status.iter().map(|&s| s != 0).collect();
        check_survival(&time, &ev)?;
        Ok(Self { time, status })
    }

    /// Builds from status codes held as floating-point numbers (e.g. read from a data frame):
    /// each must be a non-negative integer.
    pub fn from_f64(time: Vec<f64>, status: &[f64]) -> Result<Self> {
        let codes = status
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if s.is_finite() && s >= 0.0 && s == s.trunc() && s <= u32::MAX as f64 {
                    Ok(s as u32)
                } else {
                    Err(SurvivalError::InvalidValue {
                        what: "status".into(),
                        index: i,
                        value: s,
                        expected: "0 (censored) or a cause 1, 2, … (a non-negative integer)".into(),
                    })
                }
            })
            .collect::<Result<Vec<u32>>>()?;
        Self::new(time, codes)
    }

    /// Number of observations.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// Whether there are no observations (never true for a validated value).
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// The distinct causes that occur (ascending, 0 excluded).
    pub fn causes(&self) -> Vec<u32> {
        let mut c: Vec<u32> = self.status.iter().copied().filter(|&s| s != 0).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// Number of events of `cause`.
    pub fn n_events(&self, cause: u32) -> usize {
        self.status.iter().filter(|&&s| s == cause).count()
    }

    /// Checks that `cause` is ≥ 1 (0 means censored); it need not occur in the data.
    pub fn check_cause(&self, cause: u32) -> Result<()> {
        if cause == 0 {
            return Err(SurvivalError::InvalidParameter {
                name: "cause".into(),
                expected: "a cause code >= 1 (0 means censored)".into(),
                found: "0".into(),
            });
        }
        Ok(())
    }

    /// Cause-specific event indicators: `true` where the event is `cause`; events of other
    /// causes count as censored (the cause-specific hazard's risk set).
    pub fn cause_specific_events(&self, cause: u32) -> Vec<bool> {
        self.status.iter().map(|&s| s == cause).collect()
    }

    /// Any-cause event indicators (`status ≠ 0`).
    pub fn any_events(&self) -> Vec<bool> {
        self.status.iter().map(|&s| s != 0).collect()
    }

    /// The observations at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            time: indices.iter().map(|&i| self.time[i]).collect(),
            status: indices.iter().map(|&i| self.status[i]).collect(),
        }
    }

    /// Observation indices sorted by time (stable: ties keep input order).
    pub(crate) fn order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.sort_by(|&a, &b| self.time[a].total_cmp(&self.time[b]));
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_and_views() {
        assert!(matches!(
            CompetingRisksData::new(vec![1.0, -1.0], vec![0, 1]),
            Err(SurvivalError::InvalidTime { index: 1, .. })
        ));
        assert!(matches!(CompetingRisksData::new(vec![1.0], vec![0, 1]), Err(SurvivalError::LengthMismatch { .. })));
        assert!(matches!(
            CompetingRisksData::from_f64(vec![1.0, 2.0], &[0.0, 1.5]),
            Err(SurvivalError::InvalidValue { index: 1, .. })
        ));
        let d = CompetingRisksData::from_f64(vec![3.0, 1.0, 2.0], &[2.0, 1.0, 0.0]).unwrap();
        assert_eq!(d.causes(), vec![1, 2]);
        assert_eq!(d.cause_specific_events(2), vec![true, false, false]);
        assert_eq!(d.order(), vec![1, 2, 0]);
        assert!(d.check_cause(0).is_err());
    }
}
