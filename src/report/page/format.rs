//! Number formatting shared by the page sections: estimates with a dash for undefined values,
//! p-values (`< 0.001` below the third decimal). Times are formatted by the figures' time axis
//! ([`crate::report::plots::TimeAxis`]).

pub(super) fn num(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        Some(v) if v.is_infinite() => {
            if v > 0.0 {
                "∞".into()
            } else {
                "−∞".into()
            }
        }
        _ => "—".into(),
    }
}

/// `p = 0.031` or `p < 0.001` (for running text).
pub(super) fn p_eq(p: Option<f64>) -> String {
    let v = pval(p);
    if v.starts_with('<') {
        format!("p {v}")
    } else {
        format!("p = {v}")
    }
}

pub(super) fn pval(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() && p < 0.001 => "< 0.001".into(),
        Some(p) if p.is_finite() => format!("{p:.3}"),
        _ => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_helpers() {
        assert_eq!(pval(Some(0.0004)), "< 0.001");
        assert_eq!(pval(Some(0.0312)), "0.031");
        assert_eq!(pval(None), "—");
        assert_eq!(p_eq(Some(0.0004)), "p < 0.001");
        assert_eq!(p_eq(Some(0.0312)), "p = 0.031");
        assert_eq!(num(Some(f64::INFINITY), 2), "∞");
        assert_eq!(num(Some(f64::NAN), 2), "—");
    }
}
