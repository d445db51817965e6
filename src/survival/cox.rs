//! Cox proportional-hazards regression: Newton–Raphson with step halving, Efron or Breslow
//! handling of tied event times, optional L2 penalty, Wald and likelihood-ratio inference,
//! the Breslow baseline cumulative hazard and predicted survival for new rows.
//!
//! # Formula
//! Linear predictor `η_i = x_iᵀβ`, risk set `R(t) = {j : T_j ≥ t}`. At a distinct event time
//! with death set `D` (`d = |D|`), Breslow's log partial likelihood term is
//! `Σ_{i∈D} η_i − d · log Σ_{j∈R} e^{η_j}`; Efron's is
//! `Σ_{i∈D} η_i − Σ_{l=0}^{d−1} log(Σ_{j∈R} e^{η_j} − (l/d) Σ_{j∈D} e^{η_j})`.
//! Gradient and observed information are the usual first and second derivatives. Newton steps
//! `β ← β + I(β)⁻¹ U(β)` are halved (up to 30 times) while the (penalised) log-likelihood does
//! not increase; iteration stops when the Newton decrement `Uᵀ I⁻¹ U` falls below
//! `tol · (1 + |ℓ|)` (default `tol = 1e-13`).
//!
//! - L2 penalty (lifelines' `penalizer` convention, `l1_ratio = 0`): lifelines fits on
//!   covariates standardised by their sample SD `s_j` (ddof = 1) and subtracts
//!   `n · λ/2 · Σ β̃_j²`. In the original units (`β̃_j = β_j s_j`) this module maximises
//!   `ℓ(β) − n · λ/2 · Σ_j (β_j s_j)²`; standard errors come from the penalised information.
//!   `log_likelihood` is the *unpenalised* `ℓ(β̂)`; the LR test uses it.
//! - Standard errors `sqrt(diag(I(β̂)⁻¹))`; Wald `z = β/se`, two-sided `p = erfc(|z|/√2)`;
//!   hazard ratio `e^β` with CI `e^{β ± z_{1−α/2} se}`.
//! - Likelihood-ratio test `2(ℓ(β̂) − ℓ(0))` on `p` degrees of freedom (chi-square, statrs).
//! - Baseline (Breslow, at zero covariates in the original coding, whatever the ties method):
//!   `H₀(t) = Σ_{t_k ≤ t} d_k / Σ_{j∈R(t_k)} e^{η_j}`; `S_i(t) = exp(−H₀(t) e^{η_i})`.
//! - `concordance`: Harrell's C of `η` on the fitting data ([`super::concordance`]).
//!
//! Covariates are centred internally for numerical stability; reported coefficients, the
//! log-likelihood and the baseline are in the original coding (as scikit-survival's
//! `CoxPHSurvivalAnalysis`; lifelines reports its baseline at the covariate means, available
//! here through [`CoxFit::means`]).
//!
//! # Assumptions
//! Proportional hazards, log-linear covariate effects, independent censoring, no left truncation.
//!
//! # Errors
//! Before fitting: mismatched lengths, non-finite covariates (naming the covariate and row), no
//! events, a constant covariate, a covariate that is a linear combination of others (names both).
//! While fitting: a singular information matrix, non-convergence within `max_iter` iterations
//! (names the covariate still moving).
//!
//! # Warnings
//! A fit that converges can still be meaningless; [`CoxFit::warnings`] lists, as data
//! ([`FitWarning`]: a code, the covariate, a message), what the fit detected afterwards:
//! - `separation` — the (penalised) log-likelihood has no finite maximum in the direction of a
//!   coefficient (monotone likelihood, Heinze & Schemper 2001): moving `β_j` a further
//!   `10 / s_j` (10 covariate SDs on the log-hazard scale) beyond `β̂_j` lowers the objective by
//!   less than `1e−6` (under a finite maximum with a usable SE it drops by hundreds). Newton
//!   then stopped only because the likelihood gain vanished, `β̂_j` is an arbitrary point on a
//!   plateau and its SE meaningless (GBSG2 with an indicator of an event before day 300:
//!   `β ≈ 40`, `SE ≈ 1e7`). The message gives `β̂_j`, its SE and the SE's inflation over its
//!   value at `β = 0`.
//! - `extreme_coefficient` — `|β̂_j| s_j > 10` (a hazard ratio above `e^10` per SD) on a
//!   likelihood that still bends: almost always a coding or scaling error.
//! - `ill_conditioned` — the information matrix at `β̂` is nearly singular in the direction of a
//!   covariate: `V_jj · I_jj > 1e8` (the variance inflation of `β_j` by the other covariates in
//!   the information metric), so `β̂_j` is barely identified.
//!
//! An L2 penalty gives every coefficient a finite maximum, so a penalised fit warns only when
//! the penalty is too small to matter.
//!
//! Heinze G, Schemper M (2001) A solution to the problem of monotone likelihood in Cox
//! regression. Biometrics 57:114–119.
//!
//! # References
//! Cox DR (1972) JRSS B 34:187–220. Efron B (1977) JASA 72:557–565. Breslow NE (1974)
//! Biometrics 30:89–99. Therneau TM, Grambsch PM (2000) *Modeling Survival Data*, ch. 3.
use super::concordance;
use super::data::{check_covariate_rows, check_len, check_survival};
use super::error::{Result, SurvivalError};
use super::kaplan_meier::normal_quantile;
use super::linalg;
use super::logrank::chi2_sf;
use super::sort::argsort_f64;
use statrs::function::erf::erfc;

/// Handling of tied event times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Ties {
    /// Efron's approximation (lifelines' only method, R's default).
    #[default]
    Efron,
    /// Breslow's approximation.
    Breslow,
}

impl std::str::FromStr for Ties {
    type Err = SurvivalError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "efron" => Ok(Ties::Efron),
            "breslow" => Ok(Ties::Breslow),
            _ => Err(SurvivalError::InvalidParameter {
                name: "ties".into(),
                expected: "'efron' or 'breslow'".into(),
                found: format!("'{s}'"),
            }),
        }
    }
}

/// Options of [`fit_cox`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CoxOptions {
    /// Tie handling (default Efron).
    pub ties: Ties,
    /// L2 penalty λ in lifelines' convention (see the module doc); 0 = none.
    pub l2_penalty: f64,
    /// Maximum Newton–Raphson iterations (default 50).
    pub max_iter: usize,
    /// Convergence tolerance on the Newton decrement relative to `1 + |ℓ|` (default 1e-13).
    pub tol: f64,
    /// Confidence level of hazard-ratio intervals (default 0.95).
    pub confidence_level: f64,
    /// Compute Harrell's C of the fit (default true; `false` leaves `concordance` NaN and
    /// saves an `O(n log n)` pass — lifelines computes it lazily).
    pub concordance: bool,
}

impl Default for CoxOptions {
    fn default() -> Self {
        Self { ties: Ties::Efron, l2_penalty: 0.0, max_iter: 50, tol: 1e-13, confidence_level: 0.95, concordance: true }
    }
}

/// One covariate's estimates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CoxCoefficient {
    /// Covariate name.
    pub name: String,
    /// Log hazard ratio β.
    pub coef: f64,
    /// Standard error of β.
    pub se: f64,
    /// Wald statistic β / se.
    pub z: f64,
    /// Two-sided Wald p-value.
    pub p_value: f64,
    /// Hazard ratio e^β.
    pub hr: f64,
    /// Lower confidence limit of the hazard ratio.
    pub hr_lower: f64,
    /// Upper confidence limit of the hazard ratio.
    pub hr_upper: f64,
}

/// Likelihood-ratio test against the null model (β = 0).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LikelihoodRatioTest {
    /// `2 (ℓ(β̂) − ℓ(0))`.
    pub statistic: f64,
    /// Degrees of freedom (number of covariates).
    pub df: usize,
    /// Chi-square upper-tail p-value.
    pub p_value: f64,
}

/// A fitted Cox model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CoxFit {
    /// Estimates per covariate, in input order.
    pub coefficients: Vec<CoxCoefficient>,
    /// Variance–covariance matrix of β (row-major `p × p`).
    pub variance: Vec<f64>,
    /// Log partial likelihood at β̂ (unpenalised).
    pub log_likelihood: f64,
    /// Log partial likelihood at β = 0.
    pub log_likelihood_null: f64,
    /// Penalised objective at β̂ (equals `log_likelihood` without a penalty).
    pub penalized_log_likelihood: f64,
    /// Likelihood-ratio test.
    pub lr_test: LikelihoodRatioTest,
    /// Harrell's C of the linear predictor on the fitting data (NaN if not requested).
    pub concordance: f64,
    /// Newton–Raphson iterations.
    pub iterations: usize,
    /// Tie handling used.
    pub ties: Ties,
    /// L2 penalty used.
    pub l2_penalty: f64,
    /// Observations.
    pub n: usize,
    /// Events.
    pub n_events: usize,
    /// Covariate means.
    pub means: Vec<f64>,
    /// Distinct event times (ascending) at which the baseline jumps.
    pub baseline_times: Vec<f64>,
    /// Breslow baseline cumulative hazard at zero covariates, at `baseline_times`.
    pub baseline_cumulative_hazard: Vec<f64>,
    /// Non-fatal problems detected after the fit (see the module doc), each naming the covariate.
    pub warnings: Vec<FitWarning>,
}

/// What a [`FitWarning`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    /// No finite maximum in the direction of the covariate (monotone likelihood).
    Separation,
    /// A finite but implausibly large coefficient (`|β| · sd > 10`).
    ExtremeCoefficient,
    /// The information matrix is nearly singular in the direction of the covariate.
    IllConditioned,
}

impl WarningCode {
    /// The code as written in JSON (`separation`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            WarningCode::Separation => "separation",
            WarningCode::ExtremeCoefficient => "extreme_coefficient",
            WarningCode::IllConditioned => "ill_conditioned",
        }
    }
}

/// A non-fatal problem of a Cox fit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitWarning {
    /// What was detected.
    pub code: WarningCode,
    /// The covariate concerned.
    pub covariate: String,
    /// A sentence for people (names the covariate, the estimate and what to do).
    pub message: String,
}

impl std::fmt::Display for FitWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// Row-major covariates sorted by time and centred, with the tie groups.
struct Prepared {
    n: usize,
    p: usize,
    xs: Vec<f64>,
    ev: Vec<bool>,
    /// (start, end) of equal-time groups in sorted order, ascending.
    groups: Vec<(usize, usize)>,
}

struct Eval {
    ll: f64,
    grad: Vec<f64>,
    info: Vec<f64>,
}

impl Prepared {
    #[allow(clippy::needless_range_loop)]
    /// Log partial likelihood, score and observed information at `beta` (centred covariates).
    /// Second-moment sums are kept in packed lower-triangular form (`p(p+1)/2` entries).
    fn eval(&self, beta: &[f64], ties: Ties, want_derivs: bool) -> Eval {
        let (n, p) = (self.n, self.p);
        let q = p * (p + 1) / 2;
        let mut w = vec![0.0; n];
        let mut lp = vec![0.0; n];
        for ((row, wi), li) in self.xs.chunks_exact(p).zip(w.iter_mut()).zip(lp.iter_mut()) {
            let e: f64 = row.iter().zip(beta).map(|(a, b)| a * b).sum();
            *li = e;
            *wi = e.exp();
        }
        let mut s0 = 0.0;
        let mut s1 = vec![0.0; p];
        let mut s2 = vec![0.0; q];
        let mut a1 = vec![0.0; p];
        let mut a2 = vec![0.0; q];
        let mut mu = vec![0.0; p];
        let mut wx = vec![0.0; p];
        let mut ll = 0.0;
        let mut grad = vec![0.0; p];
        let mut info = vec![0.0; q];
        // Adds w·x·xᵀ (packed lower triangle) to `acc` and w·x to `acc1`.
        let add_outer = |acc: &mut [f64], acc1: &mut [f64], wx: &mut [f64], row: &[f64], wi: f64| {
            for ((v, a1), &x) in wx.iter_mut().zip(acc1.iter_mut()).zip(row) {
                *v = wi * x;
                *a1 += *v;
            }
            let mut k = 0;
            for a in 0..p {
                let wa = wx[a];
                for (v, &xb) in acc[k..k + a + 1].iter_mut().zip(&row[..a + 1]) {
                    *v += wa * xb;
                }
                k += a + 1;
            }
        };
        // info += c2·m − c1·a − Σ μμᵀ is done by the callers; this subtracts μμᵀ.
        let sub_outer = |info: &mut [f64], mu: &[f64]| {
            let mut k = 0;
            for a in 0..p {
                let ma = mu[a];
                for (v, &mb) in info[k..k + a + 1].iter_mut().zip(&mu[..a + 1]) {
                    *v -= ma * mb;
                }
                k += a + 1;
            }
        };
        for &(st, en) in self.groups.iter().rev() {
            let mut d = 0usize;
            let mut a0 = 0.0;
            for i in st..en {
                let wi = w[i];
                let row = &self.xs[i * p..(i + 1) * p];
                s0 += wi;
                if want_derivs {
                    add_outer(&mut s2, &mut s1, &mut wx, row, wi);
                }
                if self.ev[i] {
                    d += 1;
                    a0 += wi;
                    ll += lp[i];
                    if want_derivs {
                        for (g, &x) in grad.iter_mut().zip(row) {
                            *g += x;
                        }
                    }
                }
            }
            if d == 0 {
                continue;
            }
            let df = d as f64;
            if ties == Ties::Breslow || d == 1 {
                ll -= df * s0.ln();
                if want_derivs {
                    for a in 0..p {
                        mu[a] = s1[a] / s0;
                        grad[a] -= df * mu[a];
                    }
                    let c = df / s0;
                    for (v, &m) in info.iter_mut().zip(&s2) {
                        *v += c * m;
                    }
                    for m in mu.iter_mut() {
                        *m *= df.sqrt();
                    }
                    sub_outer(&mut info, &mu);
                }
            } else {
                if want_derivs {
                    a1.iter_mut().for_each(|v| *v = 0.0);
                    a2.iter_mut().for_each(|v| *v = 0.0);
                    for i in st..en {
                        if self.ev[i] {
                            add_outer(&mut a2, &mut a1, &mut wx, &self.xs[i * p..(i + 1) * p], w[i]);
                        }
                    }
                }
                // Σ_l (S2 − f_l A2)/φ_l = S2 Σ 1/φ_l − A2 Σ f_l/φ_l
                let (mut c2, mut c1) = (0.0, 0.0);
                for l in 0..d {
                    let f = l as f64 / df;
                    let phi = s0 - f * a0;
                    ll -= phi.ln();
                    if want_derivs {
                        c2 += 1.0 / phi;
                        c1 += f / phi;
                        for a in 0..p {
                            mu[a] = (s1[a] - f * a1[a]) / phi;
                            grad[a] -= mu[a];
                        }
                        sub_outer(&mut info, &mu);
                    }
                }
                if want_derivs {
                    for ((v, &m2), &m1) in info.iter_mut().zip(&s2).zip(&a2) {
                        *v += c2 * m2 - c1 * m1;
                    }
                }
            }
        }
        let mut full = vec![0.0; p * p];
        let mut k = 0;
        for a in 0..p {
            for b in 0..=a {
                full[a * p + b] = info[k];
                full[b * p + a] = info[k];
                k += 1;
            }
        }
        Eval { ll, grad, info: full }
    }

    #[allow(clippy::needless_range_loop)]
    /// Breslow baseline hazard increments (centred covariates) at each event group.
    fn baseline(&self, beta: &[f64]) -> (Vec<usize>, Vec<f64>) {
        let (n, p) = (self.n, self.p);
        let w: Vec<f64> = (0..n)
            .map(|i| self.xs[i * p..(i + 1) * p].iter().zip(beta).map(|(a, b)| a * b).sum::<f64>().exp())
            .collect();
        let mut s0 = 0.0;
        let mut out_idx = Vec::new();
        let mut out_h = Vec::new();
        for &(st, en) in self.groups.iter().rev() {
            let mut d = 0usize;
            for i in st..en {
                s0 += w[i];
                d += self.ev[i] as usize;
            }
            if d > 0 {
                out_idx.push(st);
                out_h.push(d as f64 / s0);
            }
        }
        out_idx.reverse();
        out_h.reverse();
        (out_idx, out_h)
    }
}

fn names_list(names: &[&str]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

/// Checks for constant and collinear covariates (on the centred cross-product matrix).
fn check_design(xc: &[f64], n: usize, p: usize, names: &[String]) -> Result<()> {
    let mut c = vec![0.0; p * p];
    for i in 0..n {
        let row = &xc[i * p..(i + 1) * p];
        for a in 0..p {
            for b in 0..=a {
                c[a * p + b] += row[a] * row[b];
            }
        }
    }
    let mut kept: Vec<usize> = Vec::new();
    let mut lrows: Vec<Vec<f64>> = Vec::new();
    for j in 0..p {
        let cjj = c[j * p + j];
        let corr = |a: usize, b: usize| {
            let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
            c[hi * p + lo] / (c[a * p + a] * c[b * p + b]).sqrt()
        };
        let mut l = Vec::with_capacity(kept.len());
        for (k, &kk) in kept.iter().enumerate() {
            let mut s = corr(j, kk);
            for m in 0..k {
                s -= l[m] * lrows[k][m];
            }
            l.push(s / lrows[k][k]);
        }
        let d = 1.0 - l.iter().map(|v| v * v).sum::<f64>();
        if cjj <= 0.0 {
            continue; // constant: reported by the caller before this check
        }
        if d < 1e-10 {
            // Coefficients of column j on the kept columns: solve Lᵀ b = l.
            let m = kept.len();
            let mut b = l.clone();
            for i in (0..m).rev() {
                let mut s = b[i];
                for k in (i + 1)..m {
                    s -= lrows[k][i] * b[k];
                }
                b[i] = s / lrows[i][i];
            }
            let with: Vec<&str> =
                kept.iter().zip(&b).filter(|(_, &v)| v.abs() > 1e-6).map(|(&k, _)| names[k].as_str()).collect();
            let with = if with.is_empty() { kept.iter().map(|&k| names[k].as_str()).collect() } else { with };
            return Err(SurvivalError::CollinearCovariate { name: names[j].clone(), with: names_list(&with) });
        }
        l.push(d.sqrt());
        lrows.push(l);
        kept.push(j);
    }
    Ok(())
}

/// Checks the inputs before anything is computed: lengths, at least one covariate, the
/// penalty, finite covariates, at least one event. Returns the number of events.
fn check_inputs(time: &[f64], event: &[bool], x: &[f64], names: &[String], options: &CoxOptions) -> Result<usize> {
    check_survival(time, event)?;
    let n = time.len();
    let p = names.len();
    if p == 0 {
        return Err(SurvivalError::InvalidParameter {
            name: "covariates".into(),
            expected: "at least one covariate".into(),
            found: "none".into(),
        });
    }
    check_len("covariate matrix (n × p values, row-major)", n * p, x.len())?;
    if !(options.l2_penalty.is_finite() && options.l2_penalty >= 0.0) {
        return Err(SurvivalError::InvalidParameter {
            name: "L2 penalty".into(),
            expected: "a finite number >= 0".into(),
            found: options.l2_penalty.to_string(),
        });
    }
    for (k, v) in x.iter().enumerate() {
        if !v.is_finite() {
            return Err(SurvivalError::InvalidValue {
                what: format!("covariate '{}'", names[k % p]),
                index: k / p,
                value: *v,
                expected: "a finite number".into(),
            });
        }
    }
    let n_events = event.iter().filter(|&&e| e).count();
    if n_events == 0 {
        return Err(SurvivalError::AllCensored { n });
    }
    Ok(n_events)
}

/// The design as the fit sees it: [`Prepared`] (sorted by time, centred, tie groups), the
/// sort order, and the covariates' means and sample SDs (ddof = 1).
struct Design {
    prep: Prepared,
    order: Vec<u32>,
    means: Vec<f64>,
    sd: Vec<f64>,
}

impl Design {
    /// Centres and sorts `x` (row-major `n × p`); refuses constant and collinear covariates.
    #[allow(clippy::needless_range_loop)]
    fn new(time: &[f64], event: &[bool], x: &[f64], names: &[String]) -> Result<Design> {
        let n = time.len();
        let p = names.len();
        let mut means = vec![0.0; p];
        for i in 0..n {
            for a in 0..p {
                means[a] += x[i * p + a];
            }
        }
        means.iter_mut().for_each(|m| *m /= n as f64);
        for a in 0..p {
            let first = x[a];
            if (0..n).all(|i| x[i * p + a] == first) {
                return Err(SurvivalError::ConstantCovariate { name: names[a].clone(), value: first });
            }
        }
        let order = argsort_f64(time);
        let mut xs = vec![0.0; n * p];
        let mut ev = vec![false; n];
        for (r, &o) in order.iter().enumerate() {
            let o = o as usize;
            for a in 0..p {
                xs[r * p + a] = x[o * p + a] - means[a];
            }
            ev[r] = event[o];
        }
        let mut sd = vec![0.0; p];
        for i in 0..n {
            for a in 0..p {
                sd[a] += xs[i * p + a] * xs[i * p + a];
            }
        }
        sd.iter_mut().for_each(|s| *s = (*s / (n as f64 - 1.0).max(1.0)).sqrt());
        check_design(&xs, n, p, names)?;
        let mut groups = Vec::new();
        let mut i = 0;
        while i < n {
            let t = time[order[i] as usize];
            let mut j = i + 1;
            while j < n && time[order[j] as usize] == t {
                j += 1;
            }
            groups.push((i, j));
            i = j;
        }
        let prep = Prepared { n, p, xs, ev, groups };
        Ok(Design { prep, order, means, sd })
    }
}

/// The L2 penalty `n · λ/2 · Σ_j (β_j s_j)²` as per-coefficient weights `n λ s_j²`.
struct Penalty {
    weights: Vec<f64>,
}

impl Penalty {
    fn new(sd: &[f64], n: usize, l2_penalty: f64) -> Penalty {
        Penalty { weights: sd.iter().map(|s| n as f64 * l2_penalty * s * s).collect() }
    }

    /// The penalised log-likelihood, gradient and information of an evaluation at `beta`.
    fn apply(&self, e: &Eval, beta: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let p = beta.len();
        let mut ll = e.ll;
        let mut g = e.grad.clone();
        let mut h = e.info.clone();
        for a in 0..p {
            ll -= 0.5 * self.weights[a] * beta[a] * beta[a];
            g[a] -= self.weights[a] * beta[a];
            h[a * p + a] += self.weights[a];
        }
        (ll, g, h)
    }
}

/// Where Newton–Raphson stopped.
struct Optimum {
    beta: Vec<f64>,
    /// The (unpenalised) evaluation at `beta`.
    at: Eval,
    ll_null: f64,
    /// The penalised information at `β = 0`.
    info0: Vec<f64>,
    iterations: usize,
}

/// Newton–Raphson from β = 0 with step halving (up to 30 times) while the penalised
/// log-likelihood does not increase; stops when the Newton decrement falls below
/// `tol · (1 + |ℓ|)`.
///
/// # Errors
/// A singular information matrix, or no convergence within `max_iter` (naming the covariate
/// whose last step, in SD units, was largest).
fn newton(design: &Design, penalty: &Penalty, names: &[String], options: &CoxOptions) -> Result<Optimum> {
    let (prep, p) = (&design.prep, design.prep.p);
    let mut beta = vec![0.0; p];
    let mut cur = prep.eval(&beta, options.ties, true);
    let ll_null = cur.ll;
    let info0 = penalty.apply(&cur, &beta).2;
    let mut iterations = 0;
    let mut converged = false;
    let mut last_step = vec![0.0; p];
    while iterations < options.max_iter {
        let (llp, g, h) = penalty.apply(&cur, &beta);
        let l = linalg::cholesky(&h, p).map_err(|j| SurvivalError::Singular {
            what: "Cox information matrix".into(),
            detail: format!(
                " (at covariate '{}' after {iterations} iterations: collinear covariates or a covariate with \
                 no variation among subjects at risk at event times)",
                names[j]
            ),
        })?;
        let step = linalg::cholesky_solve(&l, p, &g);
        let dec: f64 = g.iter().zip(&step).map(|(a, b)| a * b).sum();
        iterations += 1;
        let (t, accepted) = halve_step(prep, penalty, &beta, &step, llp, options.ties);
        last_step = step.iter().map(|s| s * t).collect();
        match accepted {
            Some((cand, e)) => {
                beta = cand;
                cur = e;
            }
            None => {
                // No step improves the objective: we are at the optimum to machine precision,
                // unless the decrement says otherwise.
                converged = dec <= 1e-6 * (1.0 + llp.abs());
                break;
            }
        }
        if dec <= options.tol * (1.0 + llp.abs()) {
            converged = true;
            break;
        }
    }
    if !converged {
        let (j, s) = last_step
            .iter()
            .enumerate()
            .map(|(j, s)| (j, (s * design.sd[j]).abs()))
            .fold((0, 0.0), |acc, v| if v.1 > acc.1 { v } else { acc });
        return Err(SurvivalError::NotConverged { iterations, step: s, covariate: names[j].clone() });
    }
    Ok(Optimum { beta, at: cur, ll_null, info0, iterations })
}

/// The longest step `t · step` (t = 1, ½, ¼, … 30 halvings) from `beta` whose penalised
/// log-likelihood is finite and not below `llp` (up to rounding); `None` when there is none.
/// Returns the last `t` tried.
fn halve_step(
    prep: &Prepared,
    penalty: &Penalty,
    beta: &[f64],
    step: &[f64],
    llp: f64,
    ties: Ties,
) -> (f64, Option<(Vec<f64>, Eval)>) {
    let mut t = 1.0;
    for _ in 0..=30 {
        let cand: Vec<f64> = beta.iter().zip(step).map(|(b, s)| b + t * s).collect();
        let e = prep.eval(&cand, ties, true);
        let (llc, _, _) = penalty.apply(&e, &cand);
        if llc.is_finite() && llc >= llp - 1e-12 * llp.abs().max(1.0) {
            return (t, Some((cand, e)));
        }
        t *= 0.5;
    }
    (t, None)
}

/// Wald inference per coefficient.
fn coefficient_table(beta: &[f64], variance: &[f64], names: &[String], z_level: f64) -> Vec<CoxCoefficient> {
    let p = beta.len();
    (0..p)
        .map(|a| {
            let b = beta[a];
            let se = variance[a * p + a].sqrt();
            let z = b / se;
            CoxCoefficient {
                name: names[a].clone(),
                coef: b,
                se,
                z,
                p_value: erfc(z.abs() / std::f64::consts::SQRT_2),
                hr: b.exp(),
                hr_lower: (b - z_level * se).exp(),
                hr_upper: (b + z_level * se).exp(),
            }
        })
        .collect()
}

/// How far beyond `β̂_j` (in covariate SDs on the log-hazard scale) the separation probe looks.
const PROBE_SDS: f64 = 10.0;
/// The probe's objective may fall by at most this much for the maximum to count as not finite.
const PROBE_FLAT: f64 = 1e-6;
/// `|β̂_j| s_j` above which a coefficient is reported as extreme.
const EXTREME_SDS: f64 = 10.0;
/// `V_jj · I_jj` above which the information counts as nearly singular.
const ILL_CONDITIONED: f64 = 1e8;

/// The post-fit checks of the module doc, at the optimum `beta` with penalised objective `llp`,
/// penalised information `h` (`p × p`) and its inverse `variance`; `info0` is the penalised
/// information at `β = 0` (for the SE inflation in the message).
#[allow(clippy::too_many_arguments)]
fn diagnose(
    design: &Design,
    penalty: &Penalty,
    beta: &[f64],
    llp: f64,
    h: &[f64],
    variance: &[f64],
    info0: &[f64],
    names: &[String],
    ties: Ties,
) -> Vec<FitWarning> {
    let p = beta.len();
    let var0 = linalg::cholesky(info0, p).ok().map(|l| linalg::cholesky_inverse(&l, p));
    let mut out = Vec::new();
    for j in 0..p {
        let (b, sd) = (beta[j], design.sd[j]);
        let se = variance[j * p + j].sqrt();
        let dir = if b >= 0.0 { 1.0 } else { -1.0 };
        let mut probe = beta.to_vec();
        probe[j] += dir * PROBE_SDS / sd;
        let e = design.prep.eval(&probe, ties, false);
        let (llq, _, _) = penalty.apply(&e, &probe);
        let flat = llq.is_finite() && llq >= llp - PROBE_FLAT;
        if flat {
            let inflation = var0
                .as_ref()
                .map(|v| se / v[j * p + j].sqrt())
                .filter(|r| r.is_finite())
                .map_or(String::new(), |r| format!("; {r:.1e} times its value at beta = 0"));
            out.push(FitWarning {
                code: WarningCode::Separation,
                covariate: names[j].clone(),
                message: format!(
                    "covariate '{}': the partial likelihood has no finite maximum (monotone likelihood: complete or \
                     quasi-complete separation): it is still {} when the coefficient moves a further {PROBE_SDS} SDs \
                     {}; the estimate {b:.4} (hazard ratio {:.3e} per unit) is where Newton-Raphson stopped and its \
                     standard error ({se:.3e}{inflation}) is meaningless. Check how the covariate is defined (is it \
                     known only after the outcome?), or fit with an L2 penalty",
                    names[j],
                    if llq > llp { "rising" } else { "flat" },
                    if dir > 0.0 { "up" } else { "down" },
                    b.exp()
                ),
            });
        } else if (b * sd).abs() > EXTREME_SDS {
            out.push(FitWarning {
                code: WarningCode::ExtremeCoefficient,
                covariate: names[j].clone(),
                message: format!(
                    "covariate '{}': coefficient {b:.4} is {:.1} SDs of the covariate on the log-hazard scale \
                     (hazard ratio {:.3e} per SD): check the covariate's coding and scale",
                    names[j],
                    (b * sd).abs(),
                    (b * sd).abs().exp()
                ),
            });
        }
        let vif = variance[j * p + j] * h[j * p + j];
        if p > 1 && vif > ILL_CONDITIONED {
            out.push(FitWarning {
                code: WarningCode::IllConditioned,
                covariate: names[j].clone(),
                message: format!(
                    "covariate '{}': the information matrix is nearly singular in its direction (variance \
                     inflation {vif:.2e} > {ILL_CONDITIONED:.0e}): the coefficient is barely identified from the \
                     other covariates",
                    names[j]
                ),
            });
        }
    }
    out
}

/// Breslow baseline cumulative hazard at zero covariates (the centred increments times
/// `exp(−mean·β)`), with its event times.
fn baseline_at_zero(design: &Design, beta: &[f64], time: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (idx, inc) = design.prep.baseline(beta);
    let shift = (-design.means.iter().zip(beta).map(|(m, b)| m * b).sum::<f64>()).exp();
    let mut acc = 0.0;
    let mut baseline_cumulative_hazard = Vec::with_capacity(inc.len());
    for h in &inc {
        acc += h;
        baseline_cumulative_hazard.push(acc * shift);
    }
    let baseline_times: Vec<f64> = idx.iter().map(|&st| time[design.order[st] as usize]).collect();
    (baseline_times, baseline_cumulative_hazard)
}

/// Harrell's C of the linear predictor on the fitting data (NaN when undefined).
fn fitted_concordance(time: &[f64], event: &[bool], x: &[f64], beta: &[f64]) -> f64 {
    let lp: Vec<f64> = x.chunks_exact(beta.len()).map(|r| r.iter().zip(beta).map(|(a, b)| a * b).sum()).collect();
    concordance::harrell(time, event, &lp).map(|c| c.harrell).unwrap_or(f64::NAN)
}

/// Fits a Cox model. `x` is row-major `n × p` with `p = names.len()`.
pub fn fit_cox(time: &[f64], event: &[bool], x: &[f64], names: &[String], options: &CoxOptions) -> Result<CoxFit> {
    let n_events = check_inputs(time, event, x, names, options)?;
    let (n, p) = (time.len(), names.len());
    let z_level = normal_quantile(options.confidence_level)?;
    let design = Design::new(time, event, x, names)?;
    let penalty = Penalty::new(&design.sd, n, options.l2_penalty);
    let Optimum { beta, at: cur, ll_null, info0, iterations } = newton(&design, &penalty, names, options)?;
    let (llp, _, h) = penalty.apply(&cur, &beta);
    let l = linalg::cholesky(&h, p).map_err(|j| SurvivalError::Singular {
        what: "Cox information matrix at the estimate".into(),
        detail: format!(" (at covariate '{}')", names[j]),
    })?;
    let variance = linalg::cholesky_inverse(&l, p);
    let coefficients = coefficient_table(&beta, &variance, names, z_level);
    let warnings = diagnose(&design, &penalty, &beta, llp, &h, &variance, &info0, names, options.ties);
    let (baseline_times, baseline_cumulative_hazard) = baseline_at_zero(&design, &beta, time);
    let concordance = if options.concordance { fitted_concordance(time, event, x, &beta) } else { f64::NAN };
    let ll = cur.ll;
    let stat = 2.0 * (ll - ll_null);
    Ok(CoxFit {
        coefficients,
        variance,
        log_likelihood: ll,
        log_likelihood_null: ll_null,
        penalized_log_likelihood: llp,
        lr_test: LikelihoodRatioTest { statistic: stat, df: p, p_value: chi2_sf(stat, p as f64)? },
        concordance,
        iterations,
        ties: options.ties,
        l2_penalty: options.l2_penalty,
        n,
        n_events,
        means: design.means,
        baseline_times,
        baseline_cumulative_hazard,
        warnings,
    })
}

/// Fits a Cox model from one `Vec` of covariate values per observation.
pub fn fit_cox_rows(
    time: &[f64],
    event: &[bool],
    rows: &[Vec<f64>],
    names: &[String],
    options: &CoxOptions,
) -> Result<CoxFit> {
    let p = names.len();
    let mut x = Vec::with_capacity(rows.len() * p);
    for (i, r) in rows.iter().enumerate() {
        check_len(&format!("covariates of observation {i}"), p, r.len())?;
        x.extend_from_slice(r);
    }
    check_len("covariate rows", time.len(), rows.len())?;
    fit_cox(time, event, &x, names, options)
}

impl CoxFit {
    /// Number of covariates.
    pub fn p(&self) -> usize {
        self.coefficients.len()
    }

    /// The coefficient vector β.
    pub fn beta(&self) -> Vec<f64> {
        self.coefficients.iter().map(|c| c.coef).collect()
    }

    /// Standard errors.
    pub fn se(&self) -> Vec<f64> {
        self.coefficients.iter().map(|c| c.se).collect()
    }

    /// Covariate names.
    pub fn names(&self) -> Vec<String> {
        self.coefficients.iter().map(|c| c.name.clone()).collect()
    }

    fn check_rows(&self, x: &[f64]) -> Result<usize> {
        check_covariate_rows(x, self.p(), |j| self.coefficients[j].name.as_str())
    }

    /// Linear predictors `x_iᵀβ` (original coding) of row-major rows `x` (`p` values per row).
    pub fn linear_predictor(&self, x: &[f64]) -> Result<Vec<f64>> {
        let n = self.check_rows(x)?;
        let beta = self.beta();
        let p = self.p();
        Ok((0..n).map(|i| x[i * p..(i + 1) * p].iter().zip(&beta).map(|(a, b)| a * b).sum()).collect())
    }

    /// Breslow baseline cumulative hazard at zero covariates, `H₀(t)` (right-continuous).
    pub fn baseline_cumulative_hazard_at(&self, t: f64) -> f64 {
        let idx = self.baseline_times.partition_point(|&s| s <= t);
        if idx == 0 {
            0.0
        } else {
            self.baseline_cumulative_hazard[idx - 1]
        }
    }

    /// Baseline survival at zero covariates `S₀(t) = exp(−H₀(t))`.
    pub fn baseline_survival_at(&self, t: f64) -> f64 {
        (-self.baseline_cumulative_hazard_at(t)).exp()
    }

    /// Baseline survival at the covariate means (lifelines' `baseline_survival_`).
    pub fn baseline_survival_at_means(&self, t: f64) -> f64 {
        let mb: f64 = self.means.iter().zip(self.coefficients.iter()).map(|(m, c)| m * c.coef).sum();
        (-self.baseline_cumulative_hazard_at(t) * mb.exp()).exp()
    }

    /// Predicted survival `S_i(t)` for each row of `x` (row-major, `p` values per row) at each
    /// of `times`: one `Vec` per row, one value per time.
    pub fn predict_survival(&self, x: &[f64], times: &[f64]) -> Result<Vec<Vec<f64>>> {
        let lp = self.linear_predictor(x)?;
        let h0: Vec<f64> = times.iter().map(|&t| self.baseline_cumulative_hazard_at(t)).collect();
        Ok(lp
            .iter()
            .map(|&e| {
                let r = e.exp();
                h0.iter().map(|h| (-h * r).exp()).collect()
            })
            .collect())
    }
}
