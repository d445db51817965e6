//! `spatia survival VERB --csv FILE --time COL --event COL [options] [--json]`: the command-line
//! front end of [`crate::survival`] for quick analyses of any CSV.
//!
//! Prints a readable table, or with `--json` exactly one JSON object on stdout (the contract is
//! in docs/survival.md). Bad input — a missing column, a non-numeric value, NaN, a negative time,
//! an event that is not 0/1 — is an error naming the file, the 1-based data row (header not
//! counted; the file line is given too) and the column; the binary then exits with status 2.
//! Warnings (e.g. Cox separation) go to stderr and into the JSON's `warnings`.
use super::bootstrap::{bootstrap_harrell, BootstrapOptions};
use super::calibration::calibration;
use super::cif::CumulativeIncidence;
use super::competing::CompetingRisksData;
use super::concordance::harrell_and_uno;
use super::cox::{fit_cox, CoxOptions, Ties};
use super::data::{CsvTable, SurvivalData};
use super::finegray::{fit_fine_gray, FineGrayOptions};
use super::gray::gray_test;
use super::kaplan_meier::KaplanMeier;
use super::logrank::{group_indices, logrank};
use super::{auc, brier};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `spatia survival`.
#[derive(clap::Args, Debug)]
pub struct SurvivalArgs {
    /// The statistic to compute
    #[command(subcommand)]
    pub verb: Verb,
}

/// The verbs of `spatia survival`.
#[derive(clap::Subcommand, Debug)]
pub enum Verb {
    /// Kaplan–Meier survival (Greenwood SE, log-log 95% CI, numbers at risk, median)
    Km(KmArgs),
    /// Log-rank test between the groups of a column
    Logrank(LogrankArgs),
    /// Cox proportional-hazards regression
    Cox(CoxArgs),
    /// Harrell's and Uno's concordance of a risk score (higher = earlier event)
    Concordance(ConcordanceArgs),
    /// Time-dependent cumulative/dynamic AUC of a risk score
    Auc(AucArgs),
    /// IPCW Brier score of predicted survival, and the integrated Brier score
    Brier(BrierArgs),
    /// Calibration of predicted survival at a horizon
    Calibration(CalibrationArgs),
    /// Competing risks: Aalen–Johansen cumulative incidence of a cause (event 0 = censored, 1, 2, … = causes)
    Cif(CifArgs),
    /// Competing risks: Gray's test of equal cumulative incidence of a cause across groups
    Gray(GrayArgs),
    /// Competing risks: Fine–Gray subdistribution-hazard regression for a cause
    Finegray(FinegrayArgs),
}

/// Input shared by every verb.
#[derive(clap::Args, Debug)]
pub struct Input {
    /// CSV file with a header row
    #[arg(long, value_name = "FILE")]
    pub csv: PathBuf,
    /// Column of follow-up times (>= 0)
    #[arg(long, value_name = "COL")]
    pub time: String,
    /// Column of event indicators (1 = event, 0 = censored; for cif, gray, finegray: 0 = censored, 1, 2, … = causes)
    #[arg(long, value_name = "COL")]
    pub event: String,
    /// Print exactly one JSON object on stdout instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `spatia survival km`.
#[derive(clap::Args, Debug)]
pub struct KmArgs {
    #[command(flatten)]
    pub input: Input,
    /// Times at which to report survival, e.g. 365,730
    #[arg(long, value_delimiter = ',', value_name = "T,…", value_parser = time)]
    pub at: Vec<f64>,
    /// Column whose values define groups (one curve per group)
    #[arg(long, value_name = "COL")]
    pub group: Option<String>,
    /// Also output the whole curve (one point per distinct time) for plotting
    #[arg(long)]
    pub curve: bool,
}

/// `spatia survival logrank`.
#[derive(clap::Args, Debug)]
pub struct LogrankArgs {
    #[command(flatten)]
    pub input: Input,
    /// Column whose values define the groups
    #[arg(long, value_name = "COL")]
    pub group: String,
}

/// `spatia survival cox`.
#[derive(clap::Args, Debug)]
pub struct CoxArgs {
    #[command(flatten)]
    pub input: Input,
    /// Covariate columns, e.g. age,tsize,pnodes
    #[arg(long, value_delimiter = ',', required = true, value_name = "COL,…")]
    pub covariates: Vec<String>,
    /// Handling of tied event times: efron or breslow
    #[arg(long, default_value = "efron", value_parser = parse_ties)]
    pub ties: Ties,
    /// L2 penalty λ (lifelines' `penalizer` convention: n·λ/2·Σ(β_j·sd_j)²)
    #[arg(long, default_value_t = 0.0, value_name = "L2", value_parser = penalty)]
    pub penalty: f64,
}

/// `spatia survival concordance`.
#[derive(clap::Args, Debug)]
pub struct ConcordanceArgs {
    #[command(flatten)]
    pub input: Input,
    /// Column of risk scores (higher = earlier event)
    #[arg(long, value_name = "COL")]
    pub risk: String,
    /// Truncation time for Uno's C (default: none)
    #[arg(long, value_name = "T", value_parser = time)]
    pub tau: Option<f64>,
    /// Bootstrap replicates for a percentile 95% CI of Harrell's C (0 = none; at most 100000)
    #[arg(long, default_value_t = 0, value_name = "B", value_parser = bootstrap)]
    pub bootstrap: usize,
    /// Seed of the bootstrap
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `spatia survival auc`.
#[derive(clap::Args, Debug)]
pub struct AucArgs {
    #[command(flatten)]
    pub input: Input,
    /// Column of risk scores (higher = earlier event)
    #[arg(long, value_name = "COL")]
    pub risk: String,
    /// Evaluation times, strictly increasing, e.g. 730,1095,1825
    #[arg(long, value_delimiter = ',', required = true, value_name = "T,…", value_parser = time)]
    pub times: Vec<f64>,
    /// Also output the ROC curve points at each time
    #[arg(long)]
    pub roc: bool,
}

/// `spatia survival brier`.
#[derive(clap::Args, Debug)]
pub struct BrierArgs {
    #[command(flatten)]
    pub input: Input,
    /// Time:column pairs of predicted survival, e.g. 730:S730,1095:S1095
    #[arg(long, value_name = "T:COL,…")]
    pub surv: String,
}

/// `spatia survival calibration`.
#[derive(clap::Args, Debug)]
pub struct CalibrationArgs {
    #[command(flatten)]
    pub input: Input,
    /// Column of predicted survival at the horizon
    #[arg(long, value_name = "COL")]
    pub surv: String,
    /// The horizon
    #[arg(long, value_name = "T", value_parser = time)]
    pub horizon: f64,
    /// Number of quantile bins (1 to 100)
    #[arg(long, default_value_t = 10, value_parser = bins)]
    pub bins: usize,
}

/// `spatia survival cif`.
#[derive(clap::Args, Debug)]
pub struct CifArgs {
    #[command(flatten)]
    pub input: Input,
    /// The cause of interest (an event code >= 1; other non-zero codes are competing events)
    #[arg(long, default_value_t = 1, value_parser = cause)]
    pub cause: u32,
    /// Times at which to report the cumulative incidence, e.g. 365,730
    #[arg(long, value_delimiter = ',', value_name = "T,…", value_parser = time)]
    pub at: Vec<f64>,
    /// Column whose values define groups (one curve per group)
    #[arg(long, value_name = "COL")]
    pub group: Option<String>,
}

/// `spatia survival gray`.
#[derive(clap::Args, Debug)]
pub struct GrayArgs {
    #[command(flatten)]
    pub input: Input,
    /// Column whose values define the groups
    #[arg(long, value_name = "COL")]
    pub group: String,
    /// The cause compared (an event code >= 1)
    #[arg(long, default_value_t = 1, value_parser = cause)]
    pub cause: u32,
    /// Weight exponent ρ of (1 − F(t−))^ρ (cmprsk's default 0)
    #[arg(long, default_value_t = 0.0, value_parser = rho)]
    pub rho: f64,
}

/// `spatia survival finegray`.
#[derive(clap::Args, Debug)]
pub struct FinegrayArgs {
    #[command(flatten)]
    pub input: Input,
    /// The cause modelled (an event code >= 1)
    #[arg(long, default_value_t = 1, value_parser = cause)]
    pub cause: u32,
    /// Covariate columns, e.g. age,sex,thick
    #[arg(long, value_delimiter = ',', required = true, value_name = "COL,…")]
    pub covariates: Vec<String>,
    /// Times at which to report the predicted cumulative incidence at the covariate means
    #[arg(long, value_delimiter = ',', value_name = "T,…", value_parser = time)]
    pub at: Vec<f64>,
}

fn cause(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(c) if c >= 1 => Ok(c),
        _ => Err(format!("expected a cause code: an integer >= 1 (0 means censored), found '{s}'")),
    }
}
fn rho(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && (0.0..=100.0).contains(&r) => Ok(r),
        _ => Err(format!("expected rho, a number in [0, 100], found '{s}'")),
    }
}
fn bootstrap(s: &str) -> Result<usize, String> {
    crate::bounds::CLI_BOOTSTRAP.parse_usize(s)
}
fn bins(s: &str) -> Result<usize, String> {
    crate::bounds::CLI_BINS.parse_usize(s)
}
fn penalty(s: &str) -> Result<f64, String> {
    crate::bounds::CLI_PENALTY.parse_f64(s)
}
fn time(s: &str) -> Result<f64, String> {
    crate::bounds::CLI_TIME.parse_f64(s)
}

fn parse_ties(s: &str) -> Result<Ties, String> {
    s.parse::<Ties>().map_err(|e| e.to_string())
}

/// Runs `spatia survival`.
pub fn run(args: &SurvivalArgs) -> anyhow::Result<()> {
    let (json, out) = match &args.verb {
        Verb::Km(a) => (a.input.json, km(a)?),
        Verb::Logrank(a) => (a.input.json, run_logrank(a)?),
        Verb::Cox(a) => (a.input.json, cox(a)?),
        Verb::Concordance(a) => (a.input.json, concordance(a)?),
        Verb::Auc(a) => (a.input.json, run_auc(a)?),
        Verb::Brier(a) => (a.input.json, run_brier(a)?),
        Verb::Calibration(a) => (a.input.json, run_calibration(a)?),
        Verb::Cif(a) => (a.input.json, run_cif(a)?),
        Verb::Gray(a) => (a.input.json, run_gray(a)?),
        Verb::Finegray(a) => (a.input.json, run_finegray(a)?),
    };
    let text = if json { format!("{}\n", serde_json::to_string(&out.0)?) } else { out.1 };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()) {
        // A closed pipe (`… | head`) is not an error (ripgrep's convention).
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

type Output = (Value, String);

fn load(input: &Input) -> anyhow::Result<(CsvTable, SurvivalData)> {
    let table = CsvTable::read(&input.csv)?;
    let data = table.survival_data(&input.time, &input.event)?;
    Ok((table, data))
}

fn num(x: f64) -> String {
    if x.is_nan() {
        "NA".into()
    } else if x == x.trunc() && x.abs() < 1e15 {
        format!("{x}")
    } else {
        format!("{x:.6}")
    }
}

fn km_json(km: &KaplanMeier, at: &[f64], curve: bool) -> Value {
    let mut v = json!({
        "n": km.n,
        "events": km.n_events,
        "median": km.median(),
        "at": at.iter().map(|&t| {
            let e = km.estimate_at(t);
            json!({"time": t, "survival": e.survival, "se": e.se, "lower": e.lower, "upper": e.upper, "at_risk": e.at_risk})
        }).collect::<Vec<_>>(),
    });
    if curve {
        let pts: Vec<Value> = km
            .curve()
            .iter()
            .map(|p| {
                json!({"time": p.time, "survival": p.survival, "lower": p.lower, "upper": p.upper,
                       "at_risk": km.at_risk_at(p.time), "censored": p.censored})
            })
            .collect();
        v["curve"] = Value::Array(pts);
    }
    v
}

fn km_table(name: &str, km: &KaplanMeier, at: &[f64], s: &mut String) {
    s.push_str(&format!(
        "{name}: n = {}, events = {}, median = {}\n",
        km.n,
        km.n_events,
        km.median().map_or("not reached".to_string(), num)
    ));
    if !at.is_empty() {
        s.push_str(&format!(
            "{:>12} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
            "time", "survival", "se", "lower95", "upper95", "at_risk"
        ));
        for &t in at {
            let e = km.estimate_at(t);
            s.push_str(&format!(
                "{:>12} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>8}\n",
                num(t),
                e.survival,
                e.se,
                e.lower,
                e.upper,
                e.at_risk
            ));
        }
    }
}

fn km(a: &KmArgs) -> anyhow::Result<Output> {
    if let Some(t) = a.at.iter().find(|t| !t.is_finite()) {
        bail!("--at: expected finite times, found {t}");
    }
    let (table, d) = load(&a.input)?;
    let km = KaplanMeier::fit(&d.time, &d.event)?;
    let mut out = km_json(&km, &a.at, a.curve);
    let mut text = String::new();
    km_table("all", &km, &a.at, &mut text);
    if let Some(col) = &a.group {
        let labels = table.strings(col)?;
        let (names, idx) = group_indices(&labels);
        let mut groups = serde_json::Map::new();
        for (g, name) in names.iter().enumerate() {
            let sel: Vec<usize> = (0..idx.len()).filter(|&i| idx[i] == g).collect();
            let sub = d.subset(&sel);
            let kg = KaplanMeier::fit(&sub.time, &sub.event)?;
            text.push('\n');
            km_table(&format!("{col} = {name}"), &kg, &a.at, &mut text);
            groups.insert(name.clone(), km_json(&kg, &a.at, a.curve));
        }
        out["groups"] = Value::Object(groups);
    }
    Ok((out, text))
}

fn run_logrank(a: &LogrankArgs) -> anyhow::Result<Output> {
    let (table, d) = load(&a.input)?;
    let labels = table.strings(&a.group)?;
    let r = logrank(&d.time, &d.event, &labels)?;
    let mut text = format!(
        "log-rank test on '{}': chi2 = {:.6}, df = {}, p = {:.4e}\n{:>12} {:>8} {:>10} {:>10}\n",
        a.group, r.statistic, r.df, r.p_value, "group", "n", "observed", "expected"
    );
    for g in &r.groups {
        text.push_str(&format!("{:>12} {:>8} {:>10} {:>10.3}\n", g.group, g.n, g.observed, g.expected));
    }
    let out = json!({
        "statistic": r.statistic,
        "df": r.df,
        "p_value": r.p_value,
        "groups": r.groups,
    });
    Ok((out, text))
}

fn cox(a: &CoxArgs) -> anyhow::Result<Output> {
    let (table, d) = load(&a.input)?;
    let cols: Vec<Vec<f64>> = a.covariates.iter().map(|c| table.numeric(c)).collect::<Result<_, _>>()?;
    let n = d.len();
    let mut x = Vec::with_capacity(n * cols.len());
    for i in 0..n {
        for c in &cols {
            x.push(c[i]);
        }
    }
    let opts = CoxOptions { ties: a.ties, l2_penalty: a.penalty, ..CoxOptions::default() };
    let fit = fit_cox(&d.time, &d.event, &x, &a.covariates, &opts)
        .with_context(|| format!("Cox model on {}", table.file()))?;
    for w in &fit.warnings {
        eprintln!("spatia: warning: {}", w.message);
    }
    let out = json!({
        "coefficients": fit.coefficients.iter().map(|c| json!({
            "name": c.name, "coef": c.coef, "se": c.se, "hr": c.hr, "hr_lower": c.hr_lower,
            "hr_upper": c.hr_upper, "z": c.z, "p_value": c.p_value,
        })).collect::<Vec<_>>(),
        "log_likelihood": fit.log_likelihood,
        "log_likelihood_null": fit.log_likelihood_null,
        "penalized_log_likelihood": fit.penalized_log_likelihood,
        "lr_test": fit.lr_test,
        "concordance": fit.concordance,
        "iterations": fit.iterations,
        "ties": fit.ties,
        "penalty": fit.l2_penalty,
        "n": fit.n,
        "events": fit.n_events,
        "warnings": fit.warnings,
    });
    let mut text = format!(
        "Cox PH ({:?} ties{}), n = {}, events = {}, iterations = {}\n{:>16} {:>11} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        fit.ties,
        if fit.l2_penalty > 0.0 { format!(", L2 penalty {}", fit.l2_penalty) } else { String::new() },
        fit.n,
        fit.n_events,
        fit.iterations,
        "covariate", "coef", "se", "HR", "HR lower", "HR upper", "p"
    );
    for c in &fit.coefficients {
        text.push_str(&format!(
            "{:>16} {:>11.6} {:>10.6} {:>10.4} {:>10.4} {:>10.4} {:>10.3e}\n",
            c.name, c.coef, c.se, c.hr, c.hr_lower, c.hr_upper, c.p_value
        ));
    }
    text.push_str(&format!(
        "log partial likelihood = {:.6} (null {:.6}); LR test chi2 = {:.4} on {} df, p = {:.3e}; concordance = {:.4}\n",
        fit.log_likelihood,
        fit.log_likelihood_null,
        fit.lr_test.statistic,
        fit.lr_test.df,
        fit.lr_test.p_value,
        fit.concordance
    ));
    Ok((out, text))
}

fn concordance(a: &ConcordanceArgs) -> anyhow::Result<Output> {
    let (table, d) = load(&a.input)?;
    let risk = table.numeric(&a.risk)?;
    let c = harrell_and_uno(&d.time, &d.event, &risk, a.tau)?;
    let mut out = json!({
        "harrell": c.harrell,
        "uno": c.uno,
        "tau": c.tau,
        "concordant": c.concordant,
        "discordant": c.discordant,
        "tied_risk": c.tied_risk,
        "tied_time": c.tied_time,
        "comparable": c.comparable,
    });
    let mut text = format!(
        "Harrell's C = {:.6}\nUno's C{} = {:.6}\nconcordant = {}, discordant = {}, tied risk = {}, tied time = {}, comparable = {}\n",
        c.harrell,
        a.tau.map_or(" (no truncation)".to_string(), |t| format!(" (tau = {})", num(t))),
        c.uno.unwrap_or(f64::NAN),
        c.concordant,
        c.discordant,
        c.tied_risk,
        c.tied_time,
        c.comparable
    );
    if a.bootstrap > 0 {
        let opts = BootstrapOptions { n_boot: a.bootstrap, seed: a.seed, confidence_level: 0.95 };
        let ci = bootstrap_harrell(&d.time, &d.event, &risk, &opts)?;
        text.push_str(&format!(
            "bootstrap ({} replicates, seed {}): Harrell's C 95% CI [{:.6}, {:.6}], se {:.6}\n",
            ci.n_boot, a.seed, ci.lower, ci.upper, ci.se
        ));
        out["harrell_bootstrap"] = serde_json::to_value(&ci)?;
    }
    Ok((out, text))
}

fn run_auc(a: &AucArgs) -> anyhow::Result<Output> {
    let (table, d) = load(&a.input)?;
    let risk = table.numeric(&a.risk)?;
    let r = auc::cumulative_dynamic_auc(&d.time, &d.event, &risk, &a.times)?;
    let mut text = format!("{:>12} {:>10} {:>8} {:>9}\n", "time", "AUC", "cases", "controls");
    for c in &r.curves {
        text.push_str(&format!("{:>12} {:>10.6} {:>8} {:>9}\n", num(c.time), c.auc, c.n_cases, c.n_controls));
    }
    text.push_str(&format!("mean AUC = {:.6}\n", r.mean_auc));
    let mut out = json!({"times": r.times, "auc": r.auc, "mean_auc": r.mean_auc});
    if a.roc {
        out["roc"] = serde_json::to_value(&r.curves)?;
    }
    Ok((out, text))
}

fn parse_surv_spec(spec: &str) -> anyhow::Result<Vec<(f64, String)>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((t, col)) = part.split_once(':') else {
            bail!("--surv: expected TIME:COLUMN pairs separated by commas, found '{part}'");
        };
        let t: f64 = t
            .trim()
            .parse()
            .with_context(|| format!("--surv: expected a number before ':', found '{t}' in '{part}'"))?;
        out.push((t, col.trim().to_string()));
    }
    if out.is_empty() {
        bail!("--surv: expected at least one TIME:COLUMN pair, found none");
    }
    Ok(out)
}

fn run_brier(a: &BrierArgs) -> anyhow::Result<Output> {
    let (table, d) = load(&a.input)?;
    let spec = parse_surv_spec(&a.surv)?;
    let times: Vec<f64> = spec.iter().map(|s| s.0).collect();
    let surv: Vec<Vec<f64>> = spec.iter().map(|(_, c)| table.probabilities(c)).collect::<Result<_, _>>()?;
    let r = brier::brier_score(&d.time, &d.event, &surv, &times)?;
    let mut text = format!("{:>12} {:>10}\n", "time", "Brier");
    for (t, b) in r.times.iter().zip(&r.brier) {
        text.push_str(&format!("{:>12} {:>10.6}\n", num(*t), b));
    }
    text.push_str(&format!(
        "integrated Brier score = {}\n",
        r.integrated.map_or("NA (needs two times)".to_string(), |v| format!("{v:.6}"))
    ));
    Ok((json!({"times": r.times, "brier": r.brier, "integrated": r.integrated}), text))
}

fn run_calibration(a: &CalibrationArgs) -> anyhow::Result<Output> {
    let (table, d) = load(&a.input)?;
    let surv = table.probabilities(&a.surv)?;
    let c = calibration(&d.time, &d.event, &surv, a.horizon, a.bins)?;
    let mut text = format!(
        "calibration at t = {} ({} bins)\n{:>10} {:>10} {:>10} {:>10} {:>6}\n",
        num(a.horizon),
        c.bins.len(),
        "predicted",
        "observed",
        "lower95",
        "upper95",
        "n"
    );
    for b in &c.bins {
        text.push_str(&format!(
            "{:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>6}\n",
            b.predicted, b.observed, b.lower, b.upper, b.n
        ));
    }
    text.push_str(&format!(
        "slope = {:.4} (se {:.4}), intercept = {:.4}, ICI = {:.4}, E50 = {:.4}, E90 = {:.4}\n",
        c.slope, c.slope_se, c.intercept, c.ici, c.e50, c.e90
    ));
    let out = json!({
        "horizon": c.horizon,
        "bins": c.bins.iter().map(|b| json!({"predicted": b.predicted, "observed": b.observed, "lower": b.lower, "upper": b.upper, "n": b.n})).collect::<Vec<_>>(),
        "slope": c.slope,
        "slope_se": c.slope_se,
        "intercept": c.intercept,
        "ici": c.ici,
        "e50": c.e50,
        "e90": c.e90,
        "notes": c.notes,
    });
    Ok((out, text))
}

fn load_competing(input: &Input) -> anyhow::Result<(CsvTable, CompetingRisksData)> {
    let table = CsvTable::read(&input.csv)?;
    let data = CompetingRisksData::new(table.times(&input.time)?, table.status_codes(&input.event)?)?;
    Ok((table, data))
}

fn cif_json(c: &CumulativeIncidence, at: &[f64]) -> Value {
    json!({
        "cause": c.cause,
        "n": c.n,
        "events": c.n_events,
        "competing": c.n_competing,
        "at": at.iter().map(|&t| {
            let e = c.estimate_at(t);
            json!({"time": t, "cif": e.cif, "se": e.se, "lower": e.lower, "upper": e.upper})
        }).collect::<Vec<_>>(),
    })
}

fn cif_table(name: &str, c: &CumulativeIncidence, at: &[f64], s: &mut String) {
    s.push_str(&format!(
        "{name}: n = {}, events of cause {} = {}, competing events = {}\n",
        c.n, c.cause, c.n_events, c.n_competing
    ));
    if !at.is_empty() {
        s.push_str(&format!("{:>12} {:>10} {:>10} {:>10} {:>10}\n", "time", "cif", "se", "lower95", "upper95"));
        for &t in at {
            let e = c.estimate_at(t);
            s.push_str(&format!("{:>12} {:>10.4} {:>10.4} {:>10.4} {:>10.4}\n", num(t), e.cif, e.se, e.lower, e.upper));
        }
    }
}

fn run_cif(a: &CifArgs) -> anyhow::Result<Output> {
    let (table, d) = load_competing(&a.input)?;
    let c = CumulativeIncidence::fit(&d, a.cause)?;
    let mut out = cif_json(&c, &a.at);
    let mut text = String::new();
    cif_table("all", &c, &a.at, &mut text);
    if let Some(col) = &a.group {
        let labels = table.strings(col)?;
        let (names, idx) = group_indices(&labels);
        let mut groups = serde_json::Map::new();
        for (g, name) in names.iter().enumerate() {
            let sel: Vec<usize> = (0..idx.len()).filter(|&i| idx[i] == g).collect();
            let cg = CumulativeIncidence::fit(&d.subset(&sel), a.cause)?;
            text.push('\n');
            cif_table(&format!("{col} = {name}"), &cg, &a.at, &mut text);
            groups.insert(name.clone(), cif_json(&cg, &a.at));
        }
        out["groups"] = Value::Object(groups);
    }
    Ok((out, text))
}

fn run_gray(a: &GrayArgs) -> anyhow::Result<Output> {
    let (table, d) = load_competing(&a.input)?;
    let labels = table.strings(&a.group)?;
    let r = gray_test(&d, &labels, a.cause, a.rho).with_context(|| format!("Gray's test on {}", table.file()))?;
    let text = format!(
        "Gray's test of cause {} across '{}' ({} groups: {}), rho = {}: chi2 = {:.6}, df = {}, p = {:.4e}\n",
        r.cause,
        a.group,
        r.groups.len(),
        r.groups.join(", "),
        num(r.rho),
        r.statistic,
        r.df,
        r.p_value
    );
    let out = json!({
        "cause": r.cause,
        "rho": r.rho,
        "statistic": r.statistic,
        "df": r.df,
        "p_value": r.p_value,
        "groups": r.groups,
        "scores": r.scores,
    });
    Ok((out, text))
}

fn run_finegray(a: &FinegrayArgs) -> anyhow::Result<Output> {
    let (table, d) = load_competing(&a.input)?;
    let cols: Vec<Vec<f64>> = a.covariates.iter().map(|c| table.numeric(c)).collect::<Result<_, _>>()?;
    let x: Vec<f64> = (0..d.len()).flat_map(|i| cols.iter().map(move |c| c[i])).collect();
    let fit = fit_fine_gray(&d, a.cause, &x, &a.covariates, &FineGrayOptions::default())
        .with_context(|| format!("Fine-Gray model on {}", table.file()))?;
    for w in &fit.warnings {
        eprintln!("spatia: warning: {w}");
    }
    let pred = fit.predict_cif(&fit.means, &a.at)?;
    let mut text = format!(
        "Fine-Gray subdistribution hazards for cause {}, n = {}, events = {}, competing = {}, iterations = {}\n\
         {:>16} {:>11} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
        fit.cause,
        fit.n,
        fit.n_events,
        fit.n_competing,
        fit.iterations,
        "covariate",
        "coef",
        "se",
        "SHR",
        "SHR lower",
        "SHR upper",
        "p"
    );
    for c in &fit.coefficients {
        text.push_str(&format!(
            "{:>16} {:>11.6} {:>10.6} {:>10.4} {:>10.4} {:>10.4} {:>10.3e}\n",
            c.name, c.coef, c.se, c.shr, c.shr_lower, c.shr_upper, c.p_value
        ));
    }
    text.push_str(&format!(
        "log pseudo-likelihood = {:.6} (null {:.6})\n",
        fit.log_likelihood, fit.log_likelihood_null
    ));
    for (t, p) in a.at.iter().zip(&pred[0]) {
        text.push_str(&format!("predicted cumulative incidence at the means, t = {}: {:.6}\n", num(*t), p));
    }
    let out = json!({
        "cause": fit.cause,
        "coefficients": fit.coefficients.iter().map(|c| json!({
            "name": c.name, "coef": c.coef, "se": c.se, "z": c.z, "p_value": c.p_value,
            "shr": c.shr, "shr_lower": c.shr_lower, "shr_upper": c.shr_upper,
        })).collect::<Vec<_>>(),
        "variance": fit.variance,
        "log_likelihood": fit.log_likelihood,
        "log_likelihood_null": fit.log_likelihood_null,
        "iterations": fit.iterations,
        "n": fit.n,
        "events": fit.n_events,
        "competing": fit.n_competing,
        "means": fit.means,
        "at": a.at.iter().zip(&pred[0]).map(|(t, p)| json!({"time": t, "cif": p})).collect::<Vec<_>>(),
        "warnings": fit.warnings,
    });
    Ok((out, text))
}
