//! `model.json` (written by `train`, read by `evaluate`): the arm's cross-validated Cox model —
//! what it was trained on, and every outer fold's penalty, coefficients and risk-group
//! cut-points.
//!
//! # Format
//! A JSON object, keys sorted, [`SCHEMA`] in `"schema"`. Readers use `folds[].{repeat, fold,
//! cut_median, cut_tertiles}` (the risk-group cut-points, quantiles of the fold model's risk
//! over its own training patients); the other keys describe the model for people and are
//! optional when read (a hand-written file may leave them out).
//!
//! # Validation
//! Cut-points finite with `cut_tertiles` ascending; one entry per (repeat, fold).
use super::error::{read_json, shown, write_json, ContractError, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Version of `model.json` (the `schema` field).
pub const SCHEMA: u32 = 1;

/// What one fitted transform learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformSummary {
    /// `standardizer` or `pca:<block>`.
    pub name: String,
    /// Output columns.
    pub columns: usize,
    /// For PCA: share of the (z-scored) variance kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explained: Option<f64>,
    /// For a block: training rows without the block (imputed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imputed_rows: Option<usize>,
}

/// The cross-validated partial likelihood of one penalty of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvplPoint {
    /// The penalty.
    pub penalty: f64,
    /// Its CVPL (`null` where every fit failed).
    pub cvpl: Option<f64>,
}

/// One outer fold's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldSummary {
    /// Repeat.
    pub repeat: usize,
    /// Fold.
    pub fold: usize,
    /// Training patients.
    #[serde(default)]
    pub n_train: usize,
    /// Training events.
    #[serde(default)]
    pub n_train_events: usize,
    /// Test patients.
    #[serde(default)]
    pub n_test: usize,
    /// Penalty used.
    #[serde(default)]
    pub penalty: f64,
    /// CVPL of each penalty searched, by increasing penalty (empty for a fixed penalty): the
    /// spec's grid plus any extension beyond its edges.
    #[serde(default)]
    pub cvpl: Vec<CvplPoint>,
    /// How many penalties of `cvpl` extend the spec's grid (the choice was at an edge); written
    /// only when not 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grid_extended: usize,
    /// Design columns.
    #[serde(default)]
    pub names: Vec<String>,
    /// Coefficients.
    #[serde(default)]
    pub beta: Vec<f64>,
    /// Median of the training patients' risk.
    pub cut_median: f64,
    /// Tertiles of the training patients' risk.
    pub cut_tertiles: [f64; 2],
    /// Transforms fitted on the training patients.
    #[serde(default)]
    pub transforms: Vec<TransformSummary>,
    /// Warnings of the fold: a penalty still at a bound of the searched grid
    /// (`penalty_at_bound: …`), the Cox fit's diagnostics (`separation: …`, …), covariates left out.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// An attention-MIL fold (`model: mil`): its epochs and curves; absent for a Cox fold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mil: Option<MilFoldSummary>,
}

/// An attention-MIL fold network's training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MilFoldSummary {
    /// Epochs chosen on the training patients (inner CV or one validation fold).
    pub epochs: usize,
    /// The inner networks' summed validation score after each epoch (index + 1 = epochs): the
    /// cross-validated partial likelihood for `loss: cox`, minus the held-out loss for `nll`.
    pub inner_score: Vec<f64>,
    /// The fold network's mean training loss in each epoch.
    pub train_loss: Vec<f64>,
    /// Mean raw output over the training patients, subtracted from every risk of the fold.
    pub centre: f64,
    /// The weights file (safetensors), relative to the train output.
    pub weights: String,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// The content of `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelJson {
    /// [`SCHEMA`].
    pub schema: u32,
    /// `cox`.
    #[serde(default)]
    pub model: String,
    /// The arm's modalities.
    #[serde(default)]
    pub modalities: Vec<String>,
    /// What each modality contributed (slides, patients without, PCA components …).
    #[serde(default)]
    pub inputs: Vec<Value>,
    /// Patients.
    #[serde(default)]
    pub n_patients: usize,
    /// Events.
    #[serde(default)]
    pub n_events: usize,
    /// Outer folds.
    #[serde(default)]
    pub k: usize,
    /// Repeats.
    #[serde(default)]
    pub repeats: usize,
    /// Inner folds.
    #[serde(default)]
    pub inner_k: usize,
    /// The fixed penalty, or how it was chosen (`{"chosen_by", "grid"}`).
    #[serde(default)]
    pub penalty: Value,
    /// PCA components per block.
    #[serde(default)]
    pub pca: usize,
    /// The seed of the splits.
    #[serde(default)]
    pub seed: u64,
    /// Outer fold models.
    pub folds: Vec<FoldSummary>,
    /// The whole-procedure bootstrap (`refit_oof.csv`), absent when the stage ran without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refit: Option<RefitSummary>,
    /// Why the spec's `refit` was not run for this arm (an attention-MIL arm: each replicate
    /// would train repeats × folds × (inner folds + 1) networks); its intervals are conditional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refit_skipped: Option<String>,
    /// An attention-MIL arm's network, optimiser and epoch choice; absent for a Cox arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Value>,
}

/// What `model.json` says of the whole-procedure bootstrap replicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefitSummary {
    /// Replicates run.
    pub replicates: usize,
    /// Replicates whose training failed, with the reason (absent from `refit_oof.csv`).
    #[serde(default)]
    pub failed: Vec<RefitFailure>,
}

/// A failed replicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefitFailure {
    /// 0-based replicate.
    pub replicate: usize,
    /// The training error.
    pub reason: String,
}

impl ModelJson {
    /// The file name in a `train` output.
    pub const FILE: &'static str = "model.json";

    /// Checks the cut-points of every fold, and that no (repeat, fold) appears twice.
    pub fn validate(&self, file: &str) -> Result<()> {
        let mut seen = BTreeSet::new();
        for f in &self.folds {
            let ok = f.cut_median.is_finite()
                && f.cut_tertiles.iter().all(|x| x.is_finite())
                && f.cut_tertiles[0] <= f.cut_tertiles[1];
            if !ok {
                return Err(ContractError::Invalid {
                    file: file.to_string(),
                    msg: format!(
                        "repeat {} fold {}: expected finite cut-points with cut_tertiles ascending, found cut_median {} cut_tertiles {:?}",
                        f.repeat, f.fold, f.cut_median, f.cut_tertiles
                    ),
                });
            }
            if !seen.insert((f.repeat, f.fold)) {
                return Err(ContractError::Invalid {
                    file: file.to_string(),
                    msg: format!("repeat {} fold {} is listed twice: expected one entry per fold", f.repeat, f.fold),
                });
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
    pub fn read(path: &Path) -> Result<ModelJson> {
        let m: ModelJson = read_json(path, "folds[].repeat, fold, cut_median, cut_tertiles [a, b]")?;
        m.validate(&shown(path))?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(repeat: usize, fold: usize) -> FoldSummary {
        FoldSummary {
            repeat,
            fold,
            n_train: 8,
            n_train_events: 3,
            n_test: 2,
            penalty: 0.1,
            grid_extended: 0,
            cvpl: vec![CvplPoint { penalty: 0.1, cvpl: Some(-3.5) }, CvplPoint { penalty: 1.0, cvpl: None }],
            names: vec!["age".into()],
            beta: vec![0.25],
            cut_median: 0.0,
            cut_tertiles: [-0.5, 0.5],
            transforms: vec![TransformSummary {
                name: "standardizer".into(),
                columns: 1,
                explained: None,
                imputed_rows: None,
            }],
            warnings: vec![],
            mil: None,
        }
    }

    fn model() -> ModelJson {
        ModelJson {
            schema: SCHEMA,
            model: "cox".into(),
            modalities: vec!["clinical".into()],
            inputs: vec![serde_json::json!({"modality": "clinical"})],
            n_patients: 10,
            n_events: 3,
            k: 1,
            repeats: 1,
            inner_k: 2,
            penalty: serde_json::json!(0.1),
            pca: 5,
            seed: 7,
            folds: vec![fold(0, 0)],
            refit: None,
            refit_skipped: None,
            network: None,
        }
    }

    #[test]
    fn golden_text_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("model.json");
        model().write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let want = r#"{
  "folds": [
    {
      "beta": [
        0.25
      ],
      "cut_median": 0.0,
      "cut_tertiles": [
        -0.5,
        0.5
      ],
      "cvpl": [
        {
          "cvpl": -3.5,
          "penalty": 0.1
        },
        {
          "cvpl": null,
          "penalty": 1.0
        }
      ],
      "fold": 0,
      "n_test": 2,
      "n_train": 8,
      "n_train_events": 3,
      "names": [
        "age"
      ],
      "penalty": 0.1,
      "repeat": 0,
      "transforms": [
        {
          "columns": 1,
          "name": "standardizer"
        }
      ],
      "warnings": []
    }
  ],
  "inner_k": 2,
  "inputs": [
    {
      "modality": "clinical"
    }
  ],
  "k": 1,
  "modalities": [
    "clinical"
  ],
  "model": "cox",
  "n_events": 3,
  "n_patients": 10,
  "pca": 5,
  "penalty": 0.1,
  "repeats": 1,
  "schema": 1,
  "seed": 7
}"#;
        assert_eq!(text, want);
        assert_eq!(ModelJson::read(&p).unwrap(), model());
    }

    #[test]
    fn malformed_model_json_names_the_key() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("model.json");
        std::fs::write(
            &p,
            r#"{"schema": 1, "folds": [{"repeat": 0, "fold": 0, "median": 0.1, "cut_tertiles": [0, 1]}]}"#,
        )
        .unwrap();
        let e = ModelJson::read(&p).unwrap_err().to_string();
        assert!(e.contains("model.json: at `folds[0]`") && e.contains("cut_median"), "{e}");
        std::fs::write(
            &p,
            r#"{"schema": 1, "folds": [{"repeat": 0, "fold": 1, "cut_median": 0, "cut_tertiles": [1, 0]}]}"#,
        )
        .unwrap();
        let e = ModelJson::read(&p).unwrap_err().to_string();
        assert!(e.contains("repeat 0 fold 1: expected finite cut-points with cut_tertiles ascending"), "{e}");
        let mut m = model();
        m.folds.push(fold(0, 0));
        let e = m.write(&p).unwrap_err().to_string();
        assert!(e.contains("repeat 0 fold 0 is listed twice"), "{e}");
    }
}
