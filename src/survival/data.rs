//! Validated survival data and the CSV loader behind `spatia survival`.
//!
//! [`SurvivalData`] holds right-censored observations (time ≥ 0, finite; event = observed)
//! checked once, so estimators can trust them. [`CsvTable`] reads a comma-separated file with a
//! header row and hands out typed columns; every error names the file, the **1-based data row**
//! (the header is not counted: data row 1 is line 2 of the file), the line and the column.
//!
//! # Errors
//! Lengths that differ, no rows, negative / NaN / infinite times, events other than 0/1
//! ([`SurvivalError`]).
use super::error::{Result, SurvivalError};
use std::path::Path;

/// Right-censored survival data: `time[i]` is the follow-up time of observation `i`, `event[i]`
/// whether the endpoint was observed at that time (`false` = censored).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SurvivalData {
    /// Follow-up times (finite, ≥ 0).
    pub time: Vec<f64>,
    /// Event indicators (true = event observed).
    pub event: Vec<bool>,
}

impl SurvivalData {
    /// Validates and wraps times and events.
    pub fn new(time: Vec<f64>, event: Vec<bool>) -> Result<Self> {
        check_survival(&time, &event)?;
        Ok(Self { time, event })
    }

    /// Builds from events coded as integers (0 = censored, 1 = event); other codes are errors.
    pub fn from_u8(time: Vec<f64>, event: &[u8]) -> Result<Self> {
        let ev = events_from_u8(event)?;
        Self::new(time, ev)
    }

    /// Number of observations.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    /// Whether there are no observations (never true for a validated value).
    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Number of observed events.
    pub fn n_events(&self) -> usize {
        self.event.iter().filter(|&&e| e).count()
    }

    /// The observations at `indices` (e.g. a bootstrap resample), in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            time: indices.iter().map(|&i| self.time[i]).collect(),
            event: indices.iter().map(|&i| self.event[i]).collect(),
        }
    }
}

/// Converts 0/1 event codes to booleans.
pub fn events_from_u8(event: &[u8]) -> Result<Vec<bool>> {
    event
        .iter()
        .enumerate()
        .map(|(i, &e)| match e {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(SurvivalError::InvalidValue {
                what: "event".into(),
                index: i,
                value: other as f64,
                expected: "0 (censored) or 1 (event)".into(),
            }),
        })
        .collect()
}

/// Checks that times and events describe the same, non-empty set of observations with finite,
/// non-negative times.
pub fn check_survival(time: &[f64], event: &[bool]) -> Result<()> {
    if time.is_empty() {
        return Err(SurvivalError::Empty { what: "survival data".into() });
    }
    check_len("events", time.len(), event.len())?;
    for (i, &t) in time.iter().enumerate() {
        if !(t.is_finite() && t >= 0.0) {
            return Err(SurvivalError::InvalidTime { index: i, value: t });
        }
    }
    Ok(())
}

/// Checks a length.
pub(crate) fn check_len(what: &str, expected: usize, found: usize) -> Result<()> {
    if expected != found {
        return Err(SurvivalError::LengthMismatch { what: what.into(), expected, found });
    }
    Ok(())
}

/// Checks that a per-observation input has the right length and finite values.
/// Checks a row-major covariate matrix of `p` columns for a fitted model: a whole number of
/// rows, every value finite (an error names the covariate, `name(j)`, and the row). Returns
/// the number of rows.
pub(crate) fn check_covariate_rows<'a>(x: &[f64], p: usize, name: impl Fn(usize) -> &'a str) -> Result<usize> {
    if !x.len().is_multiple_of(p) {
        return Err(SurvivalError::LengthMismatch {
            what: format!("covariate matrix (row-major, {p} values per row)"),
            expected: (x.len() / p + 1) * p,
            found: x.len(),
        });
    }
    for (k, v) in x.iter().enumerate() {
        if !v.is_finite() {
            return Err(SurvivalError::InvalidValue {
                what: format!("covariate '{}'", name(k % p)),
                index: k / p,
                value: *v,
                expected: "a finite number".into(),
            });
        }
    }
    Ok(x.len() / p)
}

pub(crate) fn check_finite(what: &str, values: &[f64], n: usize) -> Result<()> {
    check_len(what, n, values.len())?;
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            return Err(SurvivalError::InvalidValue {
                what: what.into(),
                index: i,
                value: v,
                expected: "a finite number".into(),
            });
        }
    }
    Ok(())
}

/// Checks predicted probabilities (finite, in [0, 1]).
pub(crate) fn check_probabilities(what: &str, values: &[f64], n: usize) -> Result<()> {
    check_len(what, n, values.len())?;
    for (i, &v) in values.iter().enumerate() {
        if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
            return Err(SurvivalError::InvalidValue {
                what: what.into(),
                index: i,
                value: v,
                expected: "a probability in [0, 1]".into(),
            });
        }
    }
    Ok(())
}

/// A CSV file with a header row, held in memory as text, from which typed columns are read.
#[derive(Debug, Clone)]
pub struct CsvTable {
    file: String,
    headers: Vec<String>,
    rows: Vec<csv::StringRecord>,
    lines: Vec<u64>,
}

impl CsvTable {
    /// Reads a comma-separated file with one header row.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_path(path).map_err(|e| SurvivalError::Csv {
            file: file.clone(),
            location: String::new(),
            message: format!("cannot open: {e}"),
        })?;
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| SurvivalError::Csv {
                file: file.clone(),
                location: ", header (line 1)".into(),
                message: format!("expected a header row, found an unreadable one: {e}"),
            })?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for (r, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(r as u64 + 2);
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("expected {expected_len} fields (as in the header), found {len}")
                    }
                    _ => format!("unreadable record: {e}"),
                };
                SurvivalError::Csv {
                    file: file.clone(),
                    location: format!(", data row {} (line {line})", r + 1),
                    message,
                }
            })?;
            lines.push(rec.position().map(|p| p.line()).unwrap_or(r as u64 + 2));
            rows.push(rec);
        }
        if rows.is_empty() {
            return Err(SurvivalError::Csv {
                file,
                location: String::new(),
                message: "expected at least one data row after the header, found none".into(),
            });
        }
        Ok(Self { file, headers, rows, lines })
    }

    /// The file name as given.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Column names.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no data rows (never true for a table that was read).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn err(&self, row: Option<usize>, column: &str, message: String) -> SurvivalError {
        let location = match row {
            Some(r) => format!(", data row {} (line {}), column '{column}'", r + 1, self.lines[r]),
            None => format!(", column '{column}'"),
        };
        SurvivalError::Csv { file: self.file.clone(), location, message }
    }

    /// Position of a column, or an error listing the columns present.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| {
            self.err(None, name, format!("expected a column of this name, found only {}", self.headers.join(", ")))
        })
    }

    /// The raw text of a column.
    pub fn strings(&self, name: &str) -> Result<Vec<String>> {
        let c = self.column_index(name)?;
        Ok(self.rows.iter().map(|r| r.get(c).unwrap_or("").trim().to_string()).collect())
    }

    /// A column of finite numbers (empty, non-numeric, NaN or infinite values are errors).
    pub fn numeric(&self, name: &str) -> Result<Vec<f64>> {
        let c = self.column_index(name)?;
        let mut out = Vec::with_capacity(self.rows.len());
        for (r, rec) in self.rows.iter().enumerate() {
            let s = rec.get(c).unwrap_or("").trim();
            if s.is_empty() {
                return Err(self.err(Some(r), name, "expected a number, found an empty value".into()));
            }
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => out.push(v),
                Ok(_) => return Err(self.err(Some(r), name, format!("expected a finite number, found '{s}'"))),
                Err(_) => return Err(self.err(Some(r), name, format!("expected a number, found '{s}'"))),
            }
        }
        Ok(out)
    }

    /// A column of follow-up times (finite numbers ≥ 0).
    pub fn times(&self, name: &str) -> Result<Vec<f64>> {
        let v = self.numeric(name)?;
        if let Some(r) = v.iter().position(|&t| t < 0.0) {
            return Err(self.err(
                Some(r),
                name,
                format!(
                    "expected a time >= 0, found {}",
                    self.rows[r].get(self.column_index(name)?).unwrap_or("").trim()
                ),
            ));
        }
        Ok(v)
    }

    /// A column of event indicators: 0 (censored) or 1 (event); `0.0`/`1.0` are accepted too.
    pub fn events(&self, name: &str) -> Result<Vec<bool>> {
        let c = self.column_index(name)?;
        let mut out = Vec::with_capacity(self.rows.len());
        for (r, rec) in self.rows.iter().enumerate() {
            let s = rec.get(c).unwrap_or("").trim();
            match s.parse::<f64>().ok() {
                Some(v) if v == 0.0 || v == 1.0 => out.push(v == 1.0),
                _ => {
                    let found = if s.is_empty() { "an empty value".to_string() } else { format!("'{s}'") };
                    return Err(self.err(
                        Some(r),
                        name,
                        format!("expected an event indicator 0 (censored) or 1 (event), found {found}"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// A column of competing-risks status codes: 0 (censored) or a cause 1, 2, … (non-negative
    /// integers; `2.0` is accepted as 2).
    pub fn status_codes(&self, name: &str) -> Result<Vec<u32>> {
        let c = self.column_index(name)?;
        let mut out = Vec::with_capacity(self.rows.len());
        for (r, rec) in self.rows.iter().enumerate() {
            let s = rec.get(c).unwrap_or("").trim();
            match s.parse::<f64>().ok() {
                Some(v) if v >= 0.0 && v == v.trunc() && v <= 1e6 => out.push(v as u32),
                _ => {
                    let found = if s.is_empty() { "an empty value".to_string() } else { format!("'{s}'") };
                    return Err(self.err(
                        Some(r),
                        name,
                        format!("expected a status code 0 (censored) or a cause 1, 2, … (an integer), found {found}"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Validated survival data from a time and an event column.
    pub fn survival_data(&self, time: &str, event: &str) -> Result<SurvivalData> {
        let t = self.times(time)?;
        let e = self.events(event)?;
        SurvivalData::new(t, e)
    }

    /// Predicted probabilities (finite numbers in [0, 1]).
    pub fn probabilities(&self, name: &str) -> Result<Vec<f64>> {
        let v = self.numeric(name)?;
        if let Some(r) = v.iter().position(|&p| !(0.0..=1.0).contains(&p)) {
            return Err(self.err(Some(r), name, format!("expected a probability in [0, 1], found {}", v[r])));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_observation() {
        assert!(matches!(
            SurvivalData::new(vec![1.0, -2.0], vec![true, false]),
            Err(SurvivalError::InvalidTime { index: 1, .. })
        ));
        assert!(matches!(
            SurvivalData::new(vec![1.0, f64::NAN], vec![true, false]),
            Err(SurvivalError::InvalidTime { index: 1, .. })
        ));
        assert!(matches!(SurvivalData::new(vec![1.0], vec![true, false]), Err(SurvivalError::LengthMismatch { .. })));
        assert!(matches!(
            SurvivalData::from_u8(vec![1.0, 2.0], &[0, 2]),
            Err(SurvivalError::InvalidValue { index: 1, .. })
        ));
        let d = SurvivalData::from_u8(vec![0.0, 2.0], &[0, 1]).unwrap();
        assert_eq!(d.n_events(), 1);
    }
}
