//! The training section (`templates/report/training.html`), present when the report needs the
//! `train` stage and an arm is an attention-MIL network (`model.json`'s `model: mil`): per such
//! arm, the epoch choice of every outer fold of CV repeat 0 (the inner networks' summed
//! validation score after each epoch, the chosen epoch marked) and the fold networks' training
//! loss, and a table of the network, its loss and fusion, and the epochs chosen across all
//! folds and repeats. Every number shown is read from `model.json`, none computed.
use serde::Serialize;

use super::{Keys, Result, Sources};
use crate::contracts::model::ModelJson;
use crate::report::plots::{EpochCurve, EpochData, Figure, FigureData};

#[derive(Debug, Serialize)]
struct ArmRow {
    arm: String,
    network: String,
    select: String,
    epochs: String,
    recalibration: String,
    score_figure: String,
    loss_figure: String,
}

/// The section's template context.
#[derive(Debug, Serialize)]
pub(super) struct TrainingView {
    arms: Vec<ArmRow>,
}

pub(super) struct Training {
    pub(super) view: TrainingView,
    pub(super) figures: Vec<Figure>,
}

/// The arm name as a figure name (characters outside `[A-Za-z0-9._-]` as `_`).
fn slug(arm: &str) -> String {
    arm.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

fn text(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(x) => x.to_string(),
        None => "—".into(),
    }
}

/// The section, or `None` without an attention-MIL arm among the `train` outputs.
pub(super) fn training(sources: &Sources, keys: &Keys) -> Result<Option<Training>> {
    let mut arms = Vec::new();
    let mut figures = Vec::new();
    for (arm, out) in &sources.train {
        let m: ModelJson = out.model()?;
        if m.model != "mil" {
            continue;
        }
        let folds: Vec<_> = m.folds.iter().filter_map(|f| f.mil.as_ref().map(|x| (f, x))).collect();
        if folds.is_empty() {
            continue;
        }
        let r0: Vec<_> = folds.iter().filter(|(f, _)| f.repeat == 0).collect();
        let score: Vec<EpochCurve> = r0
            .iter()
            .filter(|(_, x)| !x.inner_score.is_empty())
            .map(|(f, x)| EpochCurve {
                label: format!("fold {}", f.fold),
                values: x.inner_score.clone(),
                chosen: Some(x.epochs),
            })
            .collect();
        let loss: Vec<EpochCurve> = r0
            .iter()
            .filter(|(_, x)| !x.train_loss.is_empty())
            .map(|(f, x)| EpochCurve { label: format!("fold {}", f.fold), values: x.train_loss.clone(), chosen: None })
            .collect();
        let s = slug(arm);
        let (mut score_figure, mut loss_figure) = (String::new(), String::new());
        let figure = |name: &str, title: &str, curves: Vec<EpochCurve>, y_title: &str| Figure {
            name: name.to_string(),
            title: title.to_string(),
            arm: Some(arm.clone()),
            horizon: None,
            on_page: true,
            sources: keys.of(crate::contracts::TRAIN, Some(arm)),
            data: FigureData::Training(EpochData { curves, y_title: y_title.to_string() }),
        };
        if !score.is_empty() {
            score_figure = format!("training_score_{s}");
            figures.push(figure(
                &score_figure,
                &format!("Epoch choice (inner CV, repeat 0): {arm}"),
                score,
                "Summed validation score",
            ));
        }
        if !loss.is_empty() {
            loss_figure = format!("training_loss_{s}");
            figures.push(figure(&loss_figure, &format!("Fold networks (repeat 0): {arm}"), loss, "Training loss"));
        }
        let mut e: Vec<usize> = folds.iter().map(|(_, x)| x.epochs).collect();
        e.sort_unstable();
        let net = m.network.as_ref();
        let params = net.and_then(|n| n.get("params"));
        arms.push(ArmRow {
            arm: arm.clone(),
            network: format!(
                "{} fusion, {} loss, hidden {}, attention {}, dropout {}, lr {}, weight decay {}, on {}",
                text(net.and_then(|n| n.get("fusion"))),
                text(net.and_then(|n| n.get("loss"))),
                text(params.and_then(|p| p.get("hidden"))),
                text(params.and_then(|p| p.get("attention"))),
                text(params.and_then(|p| p.get("dropout"))),
                text(params.and_then(|p| p.get("lr"))),
                text(params.and_then(|p| p.get("weight_decay"))),
                text(net.and_then(|n| n.get("device")))
            ),
            select: match text(net.and_then(|n| n.get("select"))).as_str() {
                "validation" => "one inner validation fold".into(),
                _ => format!("{}-fold inner CV", m.inner_k),
            },
            epochs: format!(
                "median {} (range {}–{}) of at most {}",
                e[e.len() / 2],
                e[0],
                e[e.len() - 1],
                text(params.and_then(|p| p.get("epochs")))
            ),
            recalibration: if out.inner_oof()?.rows.is_empty() {
                "not recalibrated (no inner out-of-fold predictions with one validation fold)".into()
            } else {
                "inner out-of-fold predictions at the chosen epoch".into()
            },
            score_figure,
            loss_figure,
        });
    }
    if arms.is_empty() {
        return Ok(None);
    }
    Ok(Some(Training { view: TrainingView { arms }, figures }))
}
