//! Fine–Gray proportional subdistribution-hazard regression for one cause under competing risks,
//! with the robust (sandwich) standard errors of R's `cmprsk::crr` and predicted cumulative
//! incidence.
//!
//! # Formula
//! Model: the subdistribution hazard of cause 1 is `λ₁(t | x) = λ₁₀(t) · exp(xᵀβ)`, so that
//! `F₁(t | x) = 1 − exp(−exp(xᵀβ) · Λ₁₀(t))`. Subjects who failed from another cause stay in the
//! risk set after their event with the inverse-probability-of-censoring weight
//! `w_j(t) = G(t−) / G(T_j−)` (`G` = Kaplan–Meier of the censoring times, censorings as events,
//! everyone with `T ≥ u` at risk at `u`, evaluated just before the time), everyone with `T_j ≥ t`
//! has weight 1, censored subjects leave. With `S⁽ᵐ⁾(t) = Σ_j w_j(t) exp(x_jᵀβ) x_j^{⊗m}` and
//! `d_k` events of the cause at the distinct time `t_k` (Breslow handling of ties):
//! - log pseudo-partial likelihood `ℓ(β) = Σ_k [Σ_{i ∈ D_k} x_iᵀβ − d_k log S⁽⁰⁾(t_k)]`,
//!   maximised by Newton–Raphson with step halving (to convergence: `max |Δβ| < 1e-9`);
//! - information `I = Σ_k d_k [S⁽²⁾/S⁽⁰⁾ − x̄ x̄ᵀ](t_k)`, `x̄ = S⁽¹⁾/S⁽⁰⁾`;
//! - robust variance `I⁻¹ (Σ_i (η_i + ψ_i)(η_i + ψ_i)ᵀ) I⁻¹` (Fine & Gray 1999, §3): `η_i` is
//!   subject `i`'s weighted score residual
//!   `∫ (x_i − x̄(t)) w_i(t) [dN_i(t) − exp(x_iᵀβ) dΛ̂₁₀(t)]` and `ψ_i` the correction for the
//!   estimated censoring distribution, `ψ_i = ∫ q(u)/π(u) dM_i^c(u)` with
//!   `q(u) = Σ_{t_k ≥ u} d_k/S⁽⁰⁾(t_k) Σ_{j: T_j < u, other cause} w_j(t_k) exp(x_jᵀβ)(x_j − x̄(t_k))`,
//!   `π(u)` the number at risk and `M^c` the censoring martingale (cmprsk's Fortran `crrvv`, one
//!   censoring group);
//! - baseline `dΛ̂₁₀(t_k) = d_k / S⁽⁰⁾(t_k)` (cmprsk's `bfitj`), predicted incidence as in
//!   `predict.crr`: a step function that jumps at the event times of the cause.
//!
//! Covariates are centred at their means internally (the coefficients are unchanged; the baseline
//! is kept at the means). Each Newton step and the robust variance take `O(n·p²)` time through
//! cumulative sums (cmprsk's loops are `O(n²)` and worse) and `O(m·p²)` memory for `m` event times.
//! Wald `z = β / se`, two-sided normal p-values, subdistribution hazard
//! ratios `exp(β)` with intervals `exp(β ± z_{α/2} se)`.
//!
//! # Assumptions
//! Proportional subdistribution hazards; censoring independent of covariates and events (one
//! censoring distribution for everyone — crr's `cengroup` is not supported); time-fixed
//! covariates.
//!
//! # Errors
//! Invalid data, cause 0 or a cause without events, a covariate matrix of the wrong size or with
//! non-finite values, a constant covariate, a singular information matrix, no convergence in
//! `max_iter` iterations ([`SurvivalError::FitNotConverged`]).
//!
//! # References
//! Fine JP, Gray RJ (1999) A proportional hazards model for the subdistribution of a competing
//! risk. JASA 94:496–509. Gray RJ, cmprsk R package (`crr`, `predict.crr`; Fortran `crrfsv`,
//! `crrvv`, `crrfit`).
use super::competing::CompetingRisksData;
use super::data::{check_covariate_rows, check_len};
use super::error::{Result, SurvivalError};
use super::kaplan_meier::normal_quantile;
use super::linalg;
use statrs::distribution::{ContinuousCDF, Normal};

/// Options of [`fit_fine_gray`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FineGrayOptions {
    /// Maximum Newton–Raphson iterations (default 50).
    pub max_iter: usize,
    /// Convergence threshold on the largest coefficient step (default 1e-9).
    pub tol: f64,
    /// Confidence level of the hazard-ratio intervals (default 0.95).
    pub confidence_level: f64,
}

impl Default for FineGrayOptions {
    fn default() -> Self {
        Self { max_iter: 50, tol: 1e-9, confidence_level: 0.95 }
    }
}

/// One covariate's estimates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FineGrayCoefficient {
    /// Covariate name.
    pub name: String,
    /// Log subdistribution hazard ratio β.
    pub coef: f64,
    /// Robust standard error (cmprsk's).
    pub se: f64,
    /// Wald statistic β / se.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Subdistribution hazard ratio e^β.
    pub shr: f64,
    /// Lower confidence limit of the ratio.
    pub shr_lower: f64,
    /// Upper confidence limit of the ratio.
    pub shr_upper: f64,
}

/// A fitted Fine–Gray model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FineGrayFit {
    /// The cause modelled.
    pub cause: u32,
    /// Estimates per covariate, in input order.
    pub coefficients: Vec<FineGrayCoefficient>,
    /// Robust variance–covariance of β (row-major `p × p`).
    pub variance: Vec<f64>,
    /// Model-based (inverse information) variance, row-major.
    pub naive_variance: Vec<f64>,
    /// Log pseudo-partial likelihood at β̂ (crr's `loglik`).
    pub log_likelihood: f64,
    /// At β = 0.
    pub log_likelihood_null: f64,
    /// Newton–Raphson iterations.
    pub iterations: usize,
    /// Observations.
    pub n: usize,
    /// Events of the cause.
    pub n_events: usize,
    /// Events of other causes.
    pub n_competing: usize,
    /// Covariate means (the baseline is at these values).
    pub means: Vec<f64>,
    /// Distinct event times of the cause, ascending.
    pub baseline_times: Vec<f64>,
    /// Cumulative baseline subdistribution hazard at the covariate means, at `baseline_times`.
    pub baseline_cumulative_hazard: Vec<f64>,
    /// Non-fatal problems (e.g. a huge standard error suggesting separation).
    pub warnings: Vec<String>,
}

/// The data sorted by time, centred covariates, and what the sums need.
struct Design {
    p: usize,
    /// Centred covariates in sorted order, row-major.
    x: Vec<f64>,
    /// 0 censored, 1 cause, 2 other cause, in sorted order.
    kind: Vec<u8>,
    /// Sorted times.
    t: Vec<f64>,
    /// Censoring KM just before each sorted time.
    g: Vec<f64>,
    /// (start, end) of each distinct-time group in sorted order.
    groups: Vec<(usize, usize)>,
}

/// Per distinct event time of the cause.
struct EventTime {
    time: f64,
    d: f64,
    g: f64,
    s0: f64,
    xbar: Vec<f64>,
}

struct Eval {
    ll: f64,
    score: Vec<f64>,
    info: Vec<f64>,
    events: Vec<EventTime>,
}

impl Design {
    fn new(data: &CompetingRisksData, cause: u32, x: &[f64], p: usize, means: &[f64]) -> Self {
        let order = data.order();
        let n = order.len();
        let t: Vec<f64> = order.iter().map(|&i| data.time[i]).collect();
        let kind: Vec<u8> = order
            .iter()
            .map(|&i| match data.status[i] {
                0 => 0,
                s if s == cause => 1,
                _ => 2,
            })
            .collect();
        let mut xs = Vec::with_capacity(n * p);
        for &i in &order {
            for j in 0..p {
                xs.push(x[i * p + j] - means[j]);
            }
        }
        let mut groups = Vec::new();
        let mut i = 0;
        while i < n {
            let mut j = i;
            while j < n && t[j] == t[i] {
                j += 1;
            }
            groups.push((i, j));
            i = j;
        }
        // censoring KM (censorings are the events; all with T ≥ u at risk), just before each time;
        // at time 0 the value includes censorings at 0 (R's survfit summary at 0·(1 − ε) = 0)
        let mut g = vec![1.0; n];
        let mut gk = 1.0_f64;
        for &(a, b) in &groups {
            let c = kind[a..b].iter().filter(|&&k| k == 0).count() as f64;
            let after = gk * (1.0 - c / (n - a) as f64);
            let before = if t[a] == 0.0 { after } else { gk };
            g[a..b].iter_mut().for_each(|v| *v = before);
            gk = after;
        }
        Self { p, x: xs, kind, t, g, groups }
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.p..(i + 1) * self.p]
    }

    #[allow(clippy::needless_range_loop)]
    fn eval(&self, beta: &[f64]) -> Eval {
        let (n, p) = (self.t.len(), self.p);
        let eta: Vec<f64> = (0..n).map(|i| self.row(i).iter().zip(beta).map(|(a, b)| a * b).sum()).collect();
        let e: Vec<f64> = eta.iter().map(|v| v.exp()).collect();
        // at-risk sums (everyone with T ≥ t) at each event time of the cause, from a descending
        // pass; only those m snapshots are kept (m·p² numbers, not n·p²)
        let mut snaps: Vec<(f64, Vec<f64>, Vec<f64>)> = Vec::new();
        let (mut r0, mut r1, mut r2) = (0.0, vec![0.0; p], vec![0.0; p * p]);
        for &(a, b) in self.groups.iter().rev() {
            for i in a..b {
                r0 += e[i];
                let xi = self.row(i);
                for u in 0..p {
                    r1[u] += e[i] * xi[u];
                    for v in 0..p {
                        r2[u * p + v] += e[i] * xi[u] * xi[v];
                    }
                }
            }
            if self.kind[a..b].contains(&1) {
                snaps.push((r0, r1.clone(), r2.clone()));
            }
        }
        snaps.reverse();
        let (mut c0, mut c1, mut c2) = (0.0, vec![0.0; p], vec![0.0; p * p]);
        let mut ll = 0.0;
        let mut score = vec![0.0; p];
        let mut info = vec![0.0; p * p];
        let mut events = Vec::new();
        for &(a, b) in &self.groups {
            let d = self.kind[a..b].iter().filter(|&&k| k == 1).count();
            if d > 0 {
                let (r0, r1, r2) = &snaps[events.len()];
                let gk = self.g[a];
                let s0 = r0 + gk * c0;
                let s1: Vec<f64> = (0..p).map(|u| r1[u] + gk * c1[u]).collect();
                let xbar: Vec<f64> = s1.iter().map(|v| v / s0).collect();
                let df = d as f64;
                ll -= df * s0.ln();
                for i in a..b {
                    if self.kind[i] == 1 {
                        ll += eta[i];
                        for u in 0..p {
                            score[u] += self.x[i * p + u];
                        }
                    }
                }
                for u in 0..p {
                    score[u] -= df * xbar[u];
                    for v in 0..p {
                        let s2 = r2[u * p + v] + gk * c2[u * p + v];
                        info[u * p + v] += df * (s2 / s0 - xbar[u] * xbar[v]);
                    }
                }
                events.push(EventTime { time: self.t[a], d: df, g: gk, s0, xbar });
            }
            for i in a..b {
                if self.kind[i] == 2 {
                    let w = e[i] / self.g[i];
                    c0 += w;
                    let xi = self.row(i);
                    for u in 0..p {
                        c1[u] += w * xi[u];
                        for v in 0..p {
                            c2[u * p + v] += w * xi[u] * xi[v];
                        }
                    }
                }
            }
        }
        Eval { ll, score, info, events }
    }

    /// Per-subject `η_i + ψ_i` (sorted order), row-major.
    fn robust_scores(&self, beta: &[f64], ev: &Eval) -> Vec<f64> {
        let (n, p) = (self.t.len(), self.p);
        let m = ev.events.len();
        // prefix over event times ≤ t: Σ d/S0, Σ d x̄/S0; suffix over event times ≥ k: Σ dG/S0, Σ dG x̄/S0
        let mut p0 = vec![0.0; m + 1];
        let mut p1 = vec![0.0; (m + 1) * p];
        for (k, et) in ev.events.iter().enumerate() {
            p0[k + 1] = p0[k] + et.d / et.s0;
            for u in 0..p {
                p1[(k + 1) * p + u] = p1[k * p + u] + et.d * et.xbar[u] / et.s0;
            }
        }
        let mut q0 = vec![0.0; m + 1];
        let mut q1 = vec![0.0; (m + 1) * p];
        for k in (0..m).rev() {
            let et = &ev.events[k];
            q0[k] = q0[k + 1] + et.d * et.g / et.s0;
            for u in 0..p {
                q1[k * p + u] = q1[(k + 1) * p + u] + et.d * et.g * et.xbar[u] / et.s0;
            }
        }
        let mut out = vec![0.0; n * p];
        // η
        for i in 0..n {
            let xi = self.row(i);
            let e: f64 = xi.iter().zip(beta).map(|(a, b)| a * b).sum::<f64>().exp();
            let kk = ev.events.partition_point(|et| et.time <= self.t[i]);
            for u in 0..p {
                let mut r = -e * (xi[u] * p0[kk] - p1[kk * p + u]);
                if self.kind[i] == 1 {
                    r += xi[u] - ev.events[kk - 1].xbar[u];
                } else if self.kind[i] == 2 {
                    r -= e / self.g[i] * (xi[u] * q0[kk] - q1[kk * p + u]);
                }
                out[i * p + u] = r;
            }
        }
        // ψ
        let (mut a0, mut a1) = (0.0, vec![0.0; p]);
        let mut ss2 = vec![0.0; p];
        let mut q = vec![0.0; p];
        for &(a, b) in &self.groups {
            let c = self.kind[a..b].iter().filter(|&&k| k == 0).count();
            let y = (n - a) as f64;
            if c > 0 {
                let kk = ev.events.partition_point(|et| et.time < self.t[a]);
                for u in 0..p {
                    q[u] = a1[u] * q0[kk] - a0 * q1[kk * p + u];
                    ss2[u] -= c as f64 * q[u] / (y * y);
                }
            }
            for i in a..b {
                for u in 0..p {
                    out[i * p + u] += ss2[u] + if self.kind[i] == 0 { q[u] / y } else { 0.0 };
                }
            }
            for i in a..b {
                if self.kind[i] == 2 {
                    let xi = self.row(i);
                    let w = xi.iter().zip(beta).map(|(x, bb)| x * bb).sum::<f64>().exp() / self.g[i];
                    a0 += w;
                    for u in 0..p {
                        a1[u] += w * xi[u];
                    }
                }
            }
        }
        out
    }
}

fn check_inputs(data: &CompetingRisksData, cause: u32, x: &[f64], names: &[String], o: &FineGrayOptions) -> Result<()> {
    data.check_cause(cause)?;
    let (n, p) = (data.len(), names.len());
    if p == 0 {
        return Err(SurvivalError::InvalidParameter {
            name: "covariates".into(),
            expected: "at least one covariate".into(),
            found: "none".into(),
        });
    }
    check_len(&format!("covariate matrix (row-major, {p} values per row)"), n * p, x.len())?;
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
    for (j, name) in names.iter().enumerate() {
        if (0..n).all(|i| x[i * p + j] == x[j]) {
            return Err(SurvivalError::ConstantCovariate { name: name.clone(), value: x[j] });
        }
    }
    if data.n_events(cause) == 0 {
        return Err(SurvivalError::InvalidParameter {
            name: "cause".into(),
            expected: "a cause with at least one event".into(),
            found: format!("{cause} (no event of this cause among {n} observations)"),
        });
    }
    if !(o.tol > 0.0 && o.tol.is_finite()) || o.max_iter == 0 {
        return Err(SurvivalError::InvalidParameter {
            name: "Fine-Gray options".into(),
            expected: "tol > 0 and max_iter >= 1".into(),
            found: format!("tol {}, max_iter {}", o.tol, o.max_iter),
        });
    }
    normal_quantile(o.confidence_level)?;
    Ok(())
}

fn invert(h: &[f64], p: usize, names: &[String]) -> Result<Vec<f64>> {
    let l = linalg::cholesky(h, p).map_err(|j| SurvivalError::Singular {
        what: "Fine-Gray information matrix".into(),
        detail: format!(" (at covariate '{}'; check for collinear covariates)", names[j]),
    })?;
    Ok(linalg::cholesky_inverse(&l, p))
}

/// Fits a Fine–Gray model for `cause`. `x` is row-major `n × p` with `p = names.len()`.
pub fn fit_fine_gray(
    data: &CompetingRisksData,
    cause: u32,
    x: &[f64],
    names: &[String],
    options: &FineGrayOptions,
) -> Result<FineGrayFit> {
    check_inputs(data, cause, x, names, options)?;
    let (n, p) = (data.len(), names.len());
    let means: Vec<f64> = (0..p).map(|j| (0..n).map(|i| x[i * p + j]).sum::<f64>() / n as f64).collect();
    let design = Design::new(data, cause, x, p, &means);
    let mut beta = vec![0.0; p];
    let mut cur = design.eval(&beta);
    let ll_null = cur.ll;
    let mut iterations = 0;
    let mut converged = false;
    let (mut last_step, mut last_j) = (f64::INFINITY, 0);
    while iterations < options.max_iter {
        iterations += 1;
        let l = match linalg::cholesky(&cur.info, p) {
            Ok(l) => l,
            // singular after some steps: the likelihood flattens as coefficients run off (separation)
            Err(j) if iterations > 1 => {
                return Err(SurvivalError::FitNotConverged {
                    model: format!("Fine-Gray (cause {cause}; the information matrix became singular)"),
                    iterations: iterations - 1,
                    step: last_step,
                    covariate: names[j].clone(),
                })
            }
            Err(j) => {
                return Err(SurvivalError::Singular {
                    what: "Fine-Gray information matrix at beta = 0".into(),
                    detail: format!(" (at covariate '{}'; check for collinear covariates)", names[j]),
                })
            }
        };
        let mut step = linalg::cholesky_solve(&l, p, &cur.score);
        let mut halvings = 0;
        let next = loop {
            let cand: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + s).collect();
            let ev = design.eval(&cand);
            if ev.ll.is_finite() && ev.ll >= cur.ll - 1e-12 * (1.0 + cur.ll.abs()) || halvings >= 40 {
                break (cand, ev);
            }
            step.iter_mut().for_each(|s| *s *= 0.5);
            halvings += 1;
        };
        (last_j, last_step) =
            step.iter()
                .enumerate()
                .map(|(j, s)| (j, s.abs()))
                .fold((0, 0.0), |acc, (j, s)| if s > acc.1 { (j, s) } else { acc });
        beta = next.0;
        cur = next.1;
        if !cur.ll.is_finite() {
            break;
        }
        if last_step < options.tol {
            converged = true;
            break;
        }
    }
    if !converged {
        return Err(SurvivalError::FitNotConverged {
            model: format!("Fine-Gray (cause {cause})"),
            iterations,
            step: last_step,
            covariate: names[last_j].clone(),
        });
    }
    let naive_variance = invert(&cur.info, p, names)?;
    let res = design.robust_scores(&beta, &cur);
    let mut meat = vec![0.0; p * p];
    for r in res.chunks_exact(p) {
        for u in 0..p {
            for v in 0..p {
                meat[u * p + v] += r[u] * r[v];
            }
        }
    }
    let hm = matmul(&naive_variance, &meat, p);
    let variance = matmul(&hm, &naive_variance, p);
    let z_level = normal_quantile(options.confidence_level)?;
    let normal = Normal::new(0.0, 1.0).map_err(|e| SurvivalError::InvalidParameter {
        name: "normal distribution".into(),
        expected: "a standard normal".into(),
        found: e.to_string(),
    })?;
    let mut warnings = Vec::new();
    let coefficients: Vec<FineGrayCoefficient> = (0..p)
        .map(|j| {
            let se = variance[j * p + j].max(0.0).sqrt();
            let z = beta[j] / se;
            if se > 1e3 * beta[j].abs().max(1.0) {
                warnings.push(format!(
                    "covariate '{}': standard error {se:.3e} for coefficient {:.3e}; the maximum may not be finite (separation?)",
                    names[j], beta[j]
                ));
            }
            FineGrayCoefficient {
                name: names[j].clone(),
                coef: beta[j],
                se,
                z,
                p_value: 2.0 * normal.sf(z.abs()),
                shr: beta[j].exp(),
                shr_lower: (beta[j] - z_level * se).exp(),
                shr_upper: (beta[j] + z_level * se).exp(),
            }
        })
        .collect();
    let mut h = 0.0;
    let (baseline_times, baseline_cumulative_hazard) = cur
        .events
        .iter()
        .map(|et| {
            h += et.d / et.s0;
            (et.time, h)
        })
        .unzip();
    Ok(FineGrayFit {
        cause,
        coefficients,
        variance,
        naive_variance,
        log_likelihood: cur.ll,
        log_likelihood_null: ll_null,
        iterations,
        n,
        n_events: data.n_events(cause),
        n_competing: data.status.iter().filter(|&&s| s != 0 && s != cause).count(),
        means,
        baseline_times,
        baseline_cumulative_hazard,
        warnings,
    })
}

fn matmul(a: &[f64], b: &[f64], p: usize) -> Vec<f64> {
    let mut c = vec![0.0; p * p];
    for i in 0..p {
        for k in 0..p {
            for j in 0..p {
                c[i * p + j] += a[i * p + k] * b[k * p + j];
            }
        }
    }
    c
}

impl FineGrayFit {
    /// Number of covariates.
    pub fn p(&self) -> usize {
        self.coefficients.len()
    }

    /// The coefficient vector β.
    pub fn beta(&self) -> Vec<f64> {
        self.coefficients.iter().map(|c| c.coef).collect()
    }

    /// Cumulative baseline subdistribution hazard at the means, `Λ₁₀(t)` (right-continuous).
    pub fn baseline_cumulative_hazard_at(&self, t: f64) -> f64 {
        let k = self.baseline_times.partition_point(|&s| s <= t);
        if k == 0 {
            0.0
        } else {
            self.baseline_cumulative_hazard[k - 1]
        }
    }

    /// Predicted cumulative incidence `1 − exp(−exp((x − x̄)ᵀβ) Λ₁₀(t))` for each row of `x`
    /// (row-major, `p` values per row) at each of `times`: one `Vec` per row.
    pub fn predict_cif(&self, x: &[f64], times: &[f64]) -> Result<Vec<Vec<f64>>> {
        let p = self.p();
        check_covariate_rows(x, p, |j| self.coefficients[j].name.as_str())?;
        let h: Vec<f64> = times.iter().map(|&t| self.baseline_cumulative_hazard_at(t)).collect();
        Ok(x.chunks_exact(p)
            .map(|row| {
                let lp: f64 =
                    row.iter().zip(&self.means).zip(&self.coefficients).map(|((v, m), c)| (v - m) * c.coef).sum();
                let r = lp.exp();
                h.iter().map(|hh| 1.0 - (-hh * r).exp()).collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_competing_events_it_is_cox_breslow() {
        // no competing events and no ties: the Fine-Gray likelihood is Cox's partial likelihood
        let time = vec![5.0, 8.0, 1.0, 9.0, 3.0, 7.0, 2.0, 6.0, 4.0, 10.0];
        let status = vec![1, 0, 1, 1, 1, 0, 1, 1, 0, 1];
        let x = vec![0.5, 1.2, -0.3, 2.0, 0.1, -1.0, 0.7, 0.0, 1.5, -0.5];
        let d = CompetingRisksData::new(time.clone(), status.clone()).unwrap();
        let names = vec!["x".to_string()];
        let fg = fit_fine_gray(&d, 1, &x, &names, &FineGrayOptions::default()).unwrap();
        let ev: Vec<bool> = status.iter().map(|&s| s == 1).collect();
        let opts = crate::survival::CoxOptions { ties: crate::survival::Ties::Breslow, ..Default::default() };
        let cox = crate::survival::fit_cox(&time, &ev, &x, &names, &opts).unwrap();
        assert!((fg.coefficients[0].coef - cox.coefficients[0].coef).abs() < 1e-8);
        assert!((fg.naive_variance[0].sqrt() - cox.coefficients[0].se).abs() < 1e-8);
        assert!(fit_fine_gray(&d, 3, &x, &names, &FineGrayOptions::default()).is_err());
        assert!(matches!(
            fit_fine_gray(&d, 1, &[1.0; 10], &names, &FineGrayOptions::default()),
            Err(SurvivalError::ConstantCovariate { .. })
        ));
    }

    #[test]
    fn separation_is_a_named_error_not_a_panic() {
        // every event of cause 1 has x = 1, every other subject x = 0: the maximum is at +infinity
        let d = CompetingRisksData::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], vec![1, 1, 2, 0, 1, 0, 2]).unwrap();
        let x = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        let r = fit_fine_gray(&d, 1, &x, &["x".to_string()], &FineGrayOptions::default());
        assert!(matches!(r, Err(SurvivalError::FitNotConverged { .. })), "{r:?}");
    }
}
