//! A colour bar: the legend of a map image (a value ramp from `lo` to `hi`, round ticks under
//! it, its title above), drawn in the figures' style so that maps are read like the plots.
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::canvas::{self, GAP, PAD};
use super::style::{Style, INK};
use super::{ticks, PlotError};

const P: &str = "colour bar";

/// A horizontal colour bar `style.width_mm` wide for values `lo..hi` coloured by `ramp` (a value
/// in [0, 1] → RGB).
///
/// # Errors
/// A range that is empty or not finite.
pub fn draw(title: &str, (lo, hi): (f64, f64), ramp: fn(f64) -> [u8; 3], style: &Style) -> Result<String, PlotError> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return Err(PlotError::NonFinite { plot: P, what: format!("the range {lo} to {hi}"), value: hi - lo });
    }
    let w = style.width();
    let (small, text) = (style.small(), style.text());
    let bar_h = style.pt(6.0);
    let y0 = PAD + (text * 1.4).round() as i32;
    let (x0, x1) = (PAD + GAP, w - PAD - GAP);
    let h = y0 + bar_h + style.tick() + GAP / 3 + (small * 1.3).round() as i32 + PAD;
    let (t, _) = ticks::nice(lo, hi, 5);
    let labels = ticks::labels(&t);
    let x_of = |v: f64| x0 + (((v - lo) / (hi - lo)) * (x1 - x0) as f64).round() as i32;
    let svg = super::svg(P, (w, h), |root| {
        canvas::text(P, root, title, (x0, PAD), text, INK, false, (HPos::Left, VPos::Top))?;
        let steps = 64;
        for k in 0..steps {
            let a = x0 + (x1 - x0) * k / steps;
            let b = x0 + (x1 - x0) * (k + 1) / steps;
            let [r, g, bl] = ramp((k as f64 + 0.5) / steps as f64);
            root.draw(&Rectangle::new([(a, y0), (b, y0 + bar_h)], RGBColor(r, g, bl).filled()))
                .map_err(canvas::draw_err(P))?;
        }
        let ink = INK.stroke_width(style.thin());
        root.draw(&Rectangle::new([(x0, y0), (x1, y0 + bar_h)], ink)).map_err(canvas::draw_err(P))?;
        for (v, l) in t.iter().zip(&labels) {
            let x = x_of(*v);
            root.draw(&PathElement::new(vec![(x, y0 + bar_h), (x, y0 + bar_h + style.tick())], ink))
                .map_err(canvas::draw_err(P))?;
            let y = y0 + bar_h + style.tick() + GAP / 3;
            canvas::text(P, root, l, (x, y), small, INK, false, (HPos::Center, VPos::Top))?;
        }
        Ok(())
    })?;
    // the same root element as every figure: size in mm, the font family
    Ok(svg.replacen(
        &format!("<svg width=\"{w}\" height=\"{h}\""),
        &format!(
            "<svg font-family=\"{}\" width=\"{}mm\" height=\"{}mm\"",
            super::font::FAMILY,
            super::mm(w as f64),
            super::mm(h as f64)
        ),
        1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colour_bar_has_its_title_ticks_and_ramp() {
        let st = Style::journal(60.0, super::super::TimeAxis::default());
        let svg = draw("DAB-positive fraction per tile", (0.0, 1.0), crate::slide::stain_map::viridis, &st).unwrap();
        assert!(svg.starts_with("<svg font-family=\"DejaVu Sans\" width=\"60mm\""), "{}", &svg[..80]);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap().trim().to_string())
            .collect();
        assert_eq!(texts, ["DAB-positive fraction per tile", "0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert!(svg.contains("fill=\"#440154\"") || svg.contains("fill=\"#45"), "viridis' dark end");
        assert!(draw("x", (1.0, 1.0), crate::slide::stain_map::viridis, &st).is_err());
    }
}
