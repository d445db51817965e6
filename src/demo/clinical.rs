//! The demo cohort's patients: latent tumour biology, the clinical table derived from it,
//! and time to distant metastasis drawn from a proportional-hazards (Cox) model.
//!
//! Key type: [`Patient`] (one row of `clinical.csv` plus its ground truth), built by
//! [`draw_patient`] from the cohort seed and the patient's index alone, so that patient `k` is
//! the same whatever the cohort size.
//!
//! # Formula
//! Latent, per patient (standard normals `ε₁…ε₄`):
//! - nuclear density `zd = ε₁`; atypia `za = 0.3·zd + 0.954·ε₂`;
//!   proliferation `zp = 0.5·za + 0.866·ε₃`; nodal spread `zn = ε₄`.
//! - true Ki-67 fraction `k = logistic(−1.6 + 0.9·zp)` (what the Ki-67 slide shows).
//!
//! Clinical covariates (each with its own noise):
//! - age ~ N(58, 12²) clipped to [26, 90]; tumour size `exp(ln 20 + 0.5·(0.35·zd + 0.937·ε))` mm;
//! - nodes: node-positive with probability `logistic(−0.5 + 0.6·zs + 0.7·zn)`, then
//!   `1 + Poisson(1.5·exp(0.6·zn))`;
//! - grade from `g = 0.75·za + 0.35·zp + 0.8·ε` cut at −0.7 and 0.5;
//! - ER+ with probability `logistic(1.9 − 0.9·zp − 0.3·za)`, PR+ given ER, HER2+ with
//!   `logistic(−1.7 + 0.4·za)`;
//! - clinical Ki-67 (%) = a pathologist's estimate: `100·logistic(logit k + ε)`, rounded to
//!   5 % steps above 10 %.
//!
//! Hazard `h(t) = λ·ρ·t^(ρ−1)·exp(η)` (Weibull baseline, ρ = 1.3, λ = 0.045 / year), with
//! `η = η_img + η_clin`,
//! - `η_img  = 0.9·zd + 0.7·za + 0.6·zp` (visible on the slides only),
//! - `η_clin = 0.30·zs + 0.45·zn' − 0.25·ER + 0.25·HER2 − 0.10·zage`, where `zs` is the
//!   standardised log size, `zn' = (ln(1 + nodes) − 0.6)/0.75` and `zage = (age − 58)/12`.
//!
//! Grade and clinical Ki-67 are noisy readings of `za` and `zp` and carry no effect of their
//! own, so a model on the clinical table recovers only part of `η_img`.
//! Event time `T = (E / (λ·exp η))^(1/ρ)` years with `E ~ Exp(1)`; censoring at
//! `min(F, L)` with administrative follow-up `F ~ U(1, 10)` years (surgery 2015–2024, data
//! cut 2025) and loss to follow-up `L ~ Exp(mean 30 years)`.
//!
//! Death from other causes (before metastasis: a competing event) has its own exponential
//! hazard depending on age only, `h_D = λ_D·exp(0.09·(age − 58))` with λ_D = 0.012 / year
//! (about 1 % a year at 58, 7 % at 80), independent of the tumour: `D = E_D / h_D` years.
//! Observed `min(T, D, C)`; `dm` = 1 (metastasis first), 2 (death first), 0 (censored). About
//! a third of patients have a metastasis and one in twenty dies first.
//!
//! # Assumptions
//! Proportional hazards, independent censoring; the image latents enter linearly.
//!
//! # References
//! Bender, Augustin & Blettner (2005), Generating survival times to simulate Cox
//! proportional hazards models, Stat Med 24:1713–1723.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, Poisson, StandardNormal};
use serde::{Deserialize, Serialize};

/// Weibull shape ρ.
pub const WEIBULL_SHAPE: f64 = 1.3;
/// Weibull scale λ, per year^ρ.
pub const WEIBULL_SCALE: f64 = 0.045;
/// Rate of death from other causes at age 58, per year.
pub const DEATH_RATE: f64 = 0.012;
/// Log hazard ratio of death from other causes per year of age.
pub const DEATH_AGE_LOG_HR: f64 = 0.09;

/// The latent, slide-visible and nodal biology of one patient (ground truth).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latent {
    /// Tumour-nucleus density, standard normal.
    pub density_z: f64,
    /// Nuclear atypia (size, pleomorphism, hyperchromasia), standard normal.
    pub atypia_z: f64,
    /// Proliferation, standard normal.
    pub proliferation_z: f64,
    /// Nodal spread tendency, standard normal.
    pub nodal_z: f64,
    /// True fraction of Ki-67-positive tumour nuclei on the Ki-67 slide.
    pub ki67_fraction: f64,
    /// Fraction of ER-positive tumour nuclei on the ER slide.
    pub er_fraction: f64,
    /// Fraction of PR-positive tumour nuclei on the PR slide.
    pub pr_fraction: f64,
    /// DAB optical density of tumour membranes on the HER2 slide.
    pub her2_membrane_od: f64,
}

/// One row of `clinical.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicalRow {
    /// Patient identifier (`P001`…).
    pub patient_id: String,
    /// Age at surgery, years.
    pub age: u32,
    /// Pathological tumour size, mm.
    pub tumor_size_mm: u32,
    /// Number of positive lymph nodes.
    pub nodes_positive: u32,
    /// Histological grade (1–3).
    pub grade: u8,
    /// ER status (0/1).
    pub er: u8,
    /// PR status (0/1).
    pub pr: u8,
    /// HER2 status (0/1).
    pub her2: u8,
    /// Ki-67 as reported (%).
    pub ki67: u32,
    /// Days from surgery to distant metastasis, death or censoring (whichever first).
    pub dmfs_days: u32,
    /// 1 = distant metastasis, 2 = death without metastasis (competing event), 0 = censored.
    pub dm: u8,
}

/// A patient: clinical row plus ground truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    /// The clinical table row.
    pub clinical: ClinicalRow,
    /// Latent values (ground truth; pipelines must not read them).
    pub latent: Latent,
    /// Slide-visible part of the linear predictor, `η_img`.
    pub eta_image: f64,
    /// Clinical part of the linear predictor, `η_clin`.
    pub eta_clinical: f64,
    /// Uncensored event time, days.
    pub event_time_days: f64,
    /// Censoring time, days.
    pub censor_time_days: f64,
    /// Uncensored time of death from other causes, days.
    pub death_time_days: f64,
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The patient identifier of 0-based index `i` in a cohort of `n`.
pub fn patient_id(i: usize, n: usize) -> String {
    let width = n.to_string().len().max(3);
    format!("P{:0width$}", i + 1)
}

/// Draws patient `index` (0-based) of a cohort of `n` from `seed`.
pub fn draw_patient(seed: u64, index: usize, n: usize) -> Patient {
    let stream = super::texture::hash2(super::texture::derive(seed, "clinical"), index as i64, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(stream);
    let mut norm = || -> f64 { StandardNormal.sample(&mut rng) };
    let e1 = norm();
    let e2 = norm();
    let e3 = norm();
    let e4 = norm();
    let e_age = norm();
    let e_size = norm();
    let e_grade = norm();
    let e_ki = norm();
    let zd = e1;
    let za = 0.3 * zd + (1.0f64 - 0.09).sqrt() * e2;
    let zp = 0.5 * za + 0.75f64.sqrt() * e3;
    let zn = e4;
    let ki67_fraction = logistic(-1.6 + 0.9 * zp);

    let age = (58.0 + 12.0 * e_age).clamp(26.0, 90.0).round();
    let zs_raw = 0.35 * zd + (1.0f64 - 0.1225).sqrt() * e_size;
    let size = (20f64.ln() + 0.5 * zs_raw).exp().clamp(2.0, 150.0).round();
    let zs = (size.ln() - 20f64.ln()) / 0.5;
    let node_pos = rng.gen::<f64>() < logistic(-0.5 + 0.6 * zs + 0.7 * zn);
    let nodes = if node_pos {
        let lam = 1.5 * (0.6 * zn).exp();
        let extra = Poisson::new(lam).map(|p| p.sample(&mut rng)).unwrap_or(0.0);
        (1.0 + extra).min(40.0)
    } else {
        0.0
    };
    let g = 0.75 * za + 0.35 * zp + 0.8 * e_grade;
    let grade: u8 = if g < -0.7 {
        1
    } else if g > 0.5 {
        3
    } else {
        2
    };
    let er = rng.gen::<f64>() < logistic(1.9 - 0.9 * zp - 0.3 * za);
    let pr = rng.gen::<f64>() < if er { logistic(1.5 - 0.4 * zp) } else { 0.07 };
    let her2 = rng.gen::<f64>() < logistic(-1.7 + 0.4 * za);
    let er_fraction = if er { rng.gen_range(0.5..0.95) } else { rng.gen_range(0.0..0.008) };
    let pr_fraction = if pr { rng.gen_range(0.2..0.9) } else { rng.gen_range(0.0..0.008) };
    let her2_membrane_od = if her2 { rng.gen_range(0.45..0.75) } else { rng.gen_range(0.0..0.08) };
    let ki_logit = (ki67_fraction / (1.0 - ki67_fraction)).ln() + 1.0 * e_ki;
    let ki_pct = 100.0 * logistic(ki_logit);
    let ki67 = if ki_pct >= 10.0 { (ki_pct / 5.0).round() * 5.0 } else { ki_pct.round() };
    let ki67 = ki67.clamp(1.0, 95.0) as u32;

    let eta_image = 0.9 * zd + 0.7 * za + 0.6 * zp;
    let zn_obs = ((1.0 + nodes).ln() - 0.6) / 0.75;
    let eta_clinical = 0.30 * zs + 0.45 * zn_obs - 0.25 * f64::from(u8::from(er)) + 0.25 * f64::from(u8::from(her2))
        - 0.10 * (age - 58.0) / 12.0;
    let eta = eta_image + eta_clinical;
    let e: f64 = Exp1.sample(&mut rng);
    let t_years = (e / (WEIBULL_SCALE * eta.exp())).powf(1.0 / WEIBULL_SHAPE);
    let follow_up: f64 = rng.gen_range(1.0..10.0);
    let loss_e: f64 = Exp1.sample(&mut rng);
    let loss = 30.0 * loss_e;
    let c_years = follow_up.min(loss);
    // drawn last, so every earlier value is the same as without competing deaths
    let death_e: f64 = Exp1.sample(&mut rng);
    let d_years = death_e / (DEATH_RATE * (DEATH_AGE_LOG_HR * (age - 58.0)).exp());
    let observed = t_years.min(c_years).min(d_years);
    let dm = if observed == t_years && t_years <= c_years {
        1
    } else if observed == d_years && d_years <= c_years {
        2
    } else {
        0
    };
    let dmfs_days = ((observed * 365.25).ceil() as u32).max(1);

    Patient {
        clinical: ClinicalRow {
            patient_id: patient_id(index, n),
            age: age as u32,
            tumor_size_mm: size as u32,
            nodes_positive: nodes as u32,
            grade,
            er: u8::from(er),
            pr: u8::from(pr),
            her2: u8::from(her2),
            ki67,
            dmfs_days,
            dm,
        },
        latent: Latent {
            density_z: zd,
            atypia_z: za,
            proliferation_z: zp,
            nodal_z: zn,
            ki67_fraction,
            er_fraction,
            pr_fraction,
            her2_membrane_od,
        },
        eta_image,
        eta_clinical,
        event_time_days: t_years * 365.25,
        censor_time_days: c_years * 365.25,
        death_time_days: d_years * 365.25,
    }
}

/// The slide appearance of a patient (see [`super::texture::Look`]).
pub fn look_of(l: &Latent, stain: super::texture::Stain) -> super::texture::Look {
    use super::texture::Stain;
    let positive_fraction = match stain {
        Stain::KI67 => l.ki67_fraction,
        Stain::ER => l.er_fraction,
        Stain::PR => l.pr_fraction,
        _ => 0.0,
    };
    super::texture::Look {
        tumour_fraction: (0.35 + 0.10 * l.density_z).clamp(0.10, 0.70) as f32,
        tumour_occupancy: (0.68 + 0.13 * l.density_z).clamp(0.25, 0.95) as f32,
        nucleus_radius_px: (7.5 * (0.13 * l.atypia_z).exp()) as f32,
        pleomorphism: (0.12 + 0.05 * l.atypia_z).clamp(0.03, 0.30) as f32,
        nuclear_hematoxylin: (0.85 * (0.13 * l.atypia_z).exp()) as f32,
        positive_fraction: positive_fraction as f32,
        membrane_dab: if stain == Stain::HER2 { l.her2_membrane_od as f32 } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Harrell's C of a risk score (higher = earlier event).
    fn harrell(risk: &[f64], time: &[f64], event: &[u8]) -> f64 {
        let (mut conc, mut total) = (0.0, 0.0);
        for i in 0..risk.len() {
            if event[i] == 0 {
                continue;
            }
            for j in 0..risk.len() {
                if time[j] > time[i] {
                    total += 1.0;
                    if risk[i] > risk[j] {
                        conc += 1.0;
                    } else if risk[i] == risk[j] {
                        conc += 0.5;
                    }
                }
            }
        }
        conc / total
    }

    #[test]
    fn patients_do_not_depend_on_cohort_size() {
        let a = draw_patient(7, 3, 60);
        let b = draw_patient(7, 3, 500);
        assert_eq!(a.latent, b.latent);
        assert_eq!(a.clinical.dmfs_days, b.clinical.dmfs_days);
        assert_ne!(a.latent, draw_patient(8, 3, 60).latent);
    }

    #[test]
    fn cohort_has_plausible_margins_and_signal() {
        let n = 3000;
        let ps: Vec<Patient> = (0..n).map(|i| draw_patient(42, i, n)).collect();
        let events = ps.iter().filter(|p| p.clinical.dm == 1).count() as f64 / n as f64;
        assert!((0.28..0.42).contains(&events), "event fraction {events}");
        let deaths = ps.iter().filter(|p| p.clinical.dm == 2).count() as f64 / n as f64;
        assert!((0.02..0.12).contains(&deaths), "death-first fraction {deaths}");
        // deaths come from the age-dependent hazard: the dead are older
        let mean_age = |code: u8| {
            let a: Vec<f64> = ps.iter().filter(|p| p.clinical.dm == code).map(|p| p.clinical.age as f64).collect();
            a.iter().sum::<f64>() / a.len() as f64
        };
        assert!(mean_age(2) > mean_age(0) + 5.0, "age of the dead {} vs censored {}", mean_age(2), mean_age(0));
        let er = ps.iter().filter(|p| p.clinical.er == 1).count() as f64 / n as f64;
        assert!((0.65..0.85).contains(&er), "ER+ fraction {er}");
        for g in 1..=3u8 {
            let f = ps.iter().filter(|p| p.clinical.grade == g).count() as f64 / n as f64;
            assert!((0.15..0.55).contains(&f), "grade {g} fraction {f}");
        }
        let time: Vec<f64> = ps.iter().map(|p| p.clinical.dmfs_days as f64).collect();
        // metastasis as the event (deaths censored: the image signal is about metastasis)
        let event: Vec<u8> = ps.iter().map(|p| u8::from(p.clinical.dm == 1)).collect();
        let img: Vec<f64> = ps.iter().map(|p| p.eta_image).collect();
        // the best a clinical-only model can do: clinical part plus the slide part as far as
        // grade and reported Ki-67 reveal it (a generous linear guess)
        let clin: Vec<f64> = ps
            .iter()
            .map(|p| {
                let c = &p.clinical;
                let ki = (c.ki67 as f64 / 100.0).clamp(0.01, 0.99);
                p.eta_clinical + 0.45 * (c.grade as f64 - 2.0) + 0.35 * (ki / (1.0 - ki)).ln()
            })
            .collect();
        let c_img = harrell(&img, &time, &event);
        let c_clin = harrell(&clin, &time, &event);
        eprintln!("events {events:.3} C(image latent) {c_img:.3} C(clinical) {c_clin:.3}");
        assert!(c_img > c_clin + 0.03, "C(image latent) {c_img} vs C(clinical) {c_clin}");
        assert!(c_clin > 0.6, "clinical covariates carry signal too: C {c_clin}");
    }
}
