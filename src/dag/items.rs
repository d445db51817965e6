//! The cohort's items for per-item fan-out, listed by [`crate::cohort::items`] over the
//! cohort's own readers; this file adds what belongs to the DAG: the project's data roots, the
//! stat cache for content digests, and the slide header facts for plan-time checks.
use crate::cache::hash::StatCache;
use crate::cohort::{items, manifest, Item};
use crate::spec::Spec;
use anyhow::{Context, Result};

/// One item per clinical row ([`items::patients`]).
pub fn patients(spec: &Spec) -> Result<Vec<Item>> {
    let c = spec.cohort.as_ref().context("per-patient stages need a `cohort` block")?;
    items::patients(&spec.root.join(&c.clinical), c)
}

/// One item per slide-manifest row ([`items::slides`]): every slide and bag must lie inside
/// the project or a declared data root, and is hashed through `stat`.
pub fn slides(spec: &Spec, stat: &mut StatCache) -> Result<Vec<Item>> {
    let c = spec.cohort.as_ref().context("per-slide stages need a `cohort` block")?;
    let rel = c.slides.as_ref().context("per-slide stages need `cohort.slides`")?;
    let path = spec.root.join(rel);
    let rows = manifest::parse_manifest(&path)?;
    let roots = crate::spec::roots::DataRoots::load(&spec.root).map_err(|e| anyhow::anyhow!("{e}"))?;
    let allowed = |p: &std::path::Path| roots.check(p);
    let mut digest = |p: &std::path::Path| Ok(stat.digest(p)?);
    items::slides(&path, &rows, c, items::FileChecks { allowed: &allowed, digest: &mut digest })
}

/// The header facts (level-0 size, µm/px) of each slide, by item id, for plan-time checks.
/// They are remembered in `memo` (a file beside the stat cache) under the slide's content
/// digest and µm/px override, so an unchanged slide is opened once, not on every plan; the
/// others are opened in parallel. A slide that cannot be opened is left out: `ingest` reports it.
pub fn slide_facts(
    slides: &[Item],
    memo: Option<&std::path::Path>,
) -> std::collections::HashMap<String, crate::stages::SlideFacts> {
    use crate::stages::SlideFacts;
    use rayon::prelude::*;
    use std::collections::HashMap;
    // the memo key: the slide's content digest and its µm/px override
    let key = |it: &Item| match &it.slide {
        Some(s) => format!("{}|{}", s.digest, s.mpp.map(|m| m.to_string()).unwrap_or_default()),
        None => "|".to_string(),
    };
    let mut known: HashMap<String, SlideFacts> = HashMap::new();
    if let Some(text) = memo.and_then(|m| std::fs::read_to_string(m).ok()) {
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if let [k, w, h, m] = f[..] {
                if let (Ok(width), Ok(height), Ok(mpp)) = (w.parse(), h.parse(), m.parse::<f64>()) {
                    if mpp.is_finite() && mpp > 0.0 {
                        known.insert(k.to_string(), SlideFacts { width, height, mpp });
                    }
                }
            }
        }
    }
    let opened: Vec<(String, SlideFacts)> = slides
        .par_iter()
        .filter(|it| it.slide.as_ref().is_some_and(|s| !s.digest.is_empty()) && !known.contains_key(&key(it)))
        .filter_map(|it| {
            let s = it.slide.as_ref()?;
            let slide = crate::slide::Slide::open(&s.path, s.mpp).ok()?;
            let (mx, my) = slide.mpp().ok()?;
            let m = slide.meta();
            Some((key(it), SlideFacts { width: m.width, height: m.height, mpp: (mx + my) / 2.0 }))
        })
        .collect();
    if !opened.is_empty() {
        known.extend(opened);
        if let Some(m) = memo {
            // a memo only: written whole and renamed into place; a failure costs a re-open
            let mut lines: Vec<String> =
                known.iter().map(|(k, f)| format!("{k}\t{}\t{}\t{}", f.width, f.height, f.mpp)).collect();
            lines.sort();
            let tmp = m.with_extension(format!("{}.tmp", std::process::id()));
            if m.parent().is_some_and(|d| d.is_dir())
                && std::fs::write(&tmp, lines.join("\n") + "\n").and_then(|_| std::fs::rename(&tmp, m)).is_err()
            {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
    slides.iter().filter_map(|it| known.get(&key(it)).map(|f| (it.id.clone(), *f))).collect()
}
