//! The one error type of [`crate::contracts`]: every message names the file, and for a CSV the
//! data row (1-based, the header not counted) and column, and says what was expected.
use crate::survival::{CsvTable, SurvivalError};
use std::path::Path;
use thiserror::Error;

/// Result alias of the contracts.
pub type Result<T> = std::result::Result<T, ContractError>;

/// A contract file that cannot be read, written or trusted.
#[derive(Debug, Error)]
pub enum ContractError {
    /// The CSV reader's error (it names file, data row, line and column).
    #[error(transparent)]
    Csv(#[from] SurvivalError),
    /// A value of a CSV row breaks the contract.
    #[error("{file}, data row {row}, column '{column}': {msg}")]
    Row {
        /// The file.
        file: String,
        /// 1-based data row.
        row: usize,
        /// Column name.
        column: String,
        /// What was expected and found.
        msg: String,
    },
    /// A JSON file without the expected shape.
    #[error("{file}: at `{at}`: {msg}")]
    Json {
        /// The file.
        file: String,
        /// Path inside the document (`folds[2].cut_median`).
        at: String,
        /// What was expected and found.
        msg: String,
    },
    /// The file as a whole breaks the contract.
    #[error("{file}: {msg}")]
    Invalid {
        /// The file.
        file: String,
        /// What was expected and found.
        msg: String,
    },
    /// The file cannot be read or written.
    #[error("{file}: {action}: {source}")]
    Io {
        /// The file.
        file: String,
        /// `cannot read`, `cannot write` …
        action: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// Shown name of a file.
pub(crate) fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Largest repeat or fold index a contract accepts.
pub const MAX_INDEX: f64 = 1e9;

/// A column of repeat or fold indices: integers in `[0, 1e9)`.
pub(crate) fn indices(t: &CsvTable, column: &str) -> Result<Vec<usize>> {
    let v = t.numeric(column)?;
    v.iter()
        .enumerate()
        .map(|(r, &x)| {
            if x >= 0.0 && x == x.trunc() && x < MAX_INDEX {
                Ok(x as usize)
            } else {
                Err(ContractError::Row {
                    file: t.file().to_string(),
                    row: r + 1,
                    column: column.to_string(),
                    msg: format!("expected a non-negative integer index below 1000000000, found {x}"),
                })
            }
        })
        .collect()
}

/// A column of patient ids, none empty.
pub(crate) fn patients(t: &CsvTable, column: &str) -> Result<Vec<String>> {
    let v = t.strings(column)?;
    if let Some(r) = v.iter().position(|p| p.is_empty()) {
        return Err(ContractError::Row {
            file: t.file().to_string(),
            row: r + 1,
            column: column.to_string(),
            msg: "expected a patient id, found an empty value".into(),
        });
    }
    Ok(v)
}

/// Writes CSV rows under a header (a field is quoted only when it must be).
pub(crate) fn write_csv<I>(path: &Path, header: &[&str], rows: I) -> Result<()>
where
    I: IntoIterator<Item = Vec<String>>,
{
    let io = |e: csv::Error| ContractError::Io {
        file: shown(path),
        action: "cannot write",
        source: match e.into_kind() {
            csv::ErrorKind::Io(e) => e,
            k => std::io::Error::other(format!("{k:?}")),
        },
    };
    let mut w = csv::Writer::from_path(path).map_err(io)?;
    w.write_record(header).map_err(io)?;
    for r in rows {
        w.write_record(&r).map_err(io)?;
    }
    w.flush().map_err(|source| ContractError::Io { file: shown(path), action: "cannot write", source })
}

/// Reads and parses a JSON file into `T`, naming the path inside the document on error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path, expected: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ContractError::Io {
        file: shown(path),
        action: "cannot read",
        source,
    })?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| ContractError::Json {
        file: shown(path),
        at: e.path().to_string(),
        msg: format!("{} (expected {expected})", e.inner()),
    })
}

/// Writes `value` as pretty JSON (keys sorted, non-finite numbers as `null`), with `tail`
/// appended (`"\n"` or nothing, as the file's format fixes).
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T, tail: &str) -> Result<()> {
    let invalid =
        |e: serde_json::Error| ContractError::Invalid { file: shown(path), msg: format!("cannot encode: {e}") };
    let v = serde_json::to_value(value).map_err(invalid)?;
    let text = serde_json::to_string_pretty(&v).map_err(invalid)? + tail;
    std::fs::write(path, text).map_err(|source| ContractError::Io { file: shown(path), action: "cannot write", source })
}
