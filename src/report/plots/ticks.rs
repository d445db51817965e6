//! Axis ticks: round values (1, 2, 2.5 or 5 times a power of ten) covering a range, and labels
//! with as few decimals as tell them apart (`0, 1, 2` not `0.0, 1.0, 2.0`; `1000` not
//! `1000.0`), a true minus sign for negatives.

/// About `target` round ticks inside `[lo, hi]` (`lo < hi`), and their step.
pub fn nice(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return (vec![lo], 1.0);
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw * 0.999).unwrap_or(10.0 * mag);
    let first = (lo / step - 1e-9).ceil();
    let last = (hi / step + 1e-9).floor();
    let ticks: Vec<f64> = (first as i64..=last as i64).map(|k| clean(k as f64 * step)).collect();
    (ticks, step)
}

/// Rounds away floating-point noise (`0.30000000000000004` → `0.3`).
fn clean(x: f64) -> f64 {
    let r = (x * 1e9).round() / 1e9;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

/// Decimals needed to write every tick distinctly (0 for integers).
pub fn decimals(ticks: &[f64]) -> usize {
    (0..=6)
        .find(|&d| {
            ticks.iter().all(|&t| {
                let s = 10f64.powi(d as i32);
                ((t * s).round() - t * s).abs() < 1e-6
            })
        })
        .unwrap_or(6)
}

/// A tick label with `decimals` decimals and a true minus sign.
pub fn label(x: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, if x == 0.0 { 0.0 } else { x });
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().any(|c| c != '0' && c != '.') => format!("−{rest}"),
        Some(rest) => rest.to_string(),
        None => s,
    }
}

/// Labels for a set of ticks (common decimals).
pub fn labels(ticks: &[f64]) -> Vec<String> {
    let d = decimals(ticks);
    ticks.iter().map(|&t| label(t, d)).collect()
}

/// Ticks with their labels (common decimals), as the axes and the layout take them.
pub fn labelled(ticks: &[f64]) -> Vec<(f64, String)> {
    ticks.iter().copied().zip(labels(ticks)).collect()
}

/// `x` with at most `max_decimals` decimals, trailing zeros dropped (`5`, `3.5`, `1.37`).
pub fn round_label(x: f64, max_decimals: usize) -> String {
    let s = format!("{:.*}", max_decimals, x);
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    let s = if s == "-0" { "0".to_string() } else { s };
    match s.strip_prefix('-') {
        Some(rest) => format!("−{rest}"),
        None => s,
    }
}

/// `n` and the noun in the right number: `1 event`, `2 events`, `0 events`.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice(0.0, 3300.0, 5).0, vec![0.0, 1000.0, 2000.0, 3000.0]);
        assert_eq!(nice(0.0, 9.04, 6).0, vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(nice(0.0, 1.0, 5).0, vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice(-0.05, 0.31, 4).0, vec![0.0, 0.1, 0.2, 0.3]);
        assert_eq!(nice(0.0, 10.0, 4).0, vec![0.0, 2.5, 5.0, 7.5, 10.0]);
        assert_eq!(nice(5.0, 5.0, 4).0, vec![5.0]);
    }

    #[test]
    fn labels_have_the_decimals_they_need() {
        assert_eq!(labels(&[0.0, 1000.0, 2000.0]), ["0", "1000", "2000"]);
        assert_eq!(labels(&[0.0, 0.2, 0.4]), ["0.0", "0.2", "0.4"]);
        assert_eq!(labels(&[0.0, 2.5, 5.0]), ["0.0", "2.5", "5.0"]);
        assert_eq!(labels(&[-0.1, 0.0, 0.1]), ["−0.1", "0.0", "0.1"]);
        assert_eq!(round_label(5.0, 2), "5");
        assert_eq!(round_label(1825.0 / 365.25, 2), "5");
        assert_eq!(round_label(1000.0 / 365.25, 2), "2.74");
        assert_eq!(round_label(-0.001, 2), "0");
    }

    #[test]
    fn counts_agree_in_number() {
        assert_eq!(count(1, "event", "events"), "1 event");
        assert_eq!(count(0, "event", "events"), "0 events");
        assert_eq!(count(2, "patient", "patients"), "2 patients");
    }
}
