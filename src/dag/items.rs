//! Cohort items for per-item fan-out: patients (rows of the clinical table) and slides (rows
//! of the slide manifest). Each item has a digest of exactly the data its shards may read, so
//! adding a patient or slide changes no other item's shard keys.
use crate::cache::hash::StatCache;
use crate::spec::Spec;
use crate::stages::Item;
use anyhow::{bail, Context, Result};

/// One item per clinical row: id, and blake3 of the row's fields.
pub fn patients(spec: &Spec) -> Result<Vec<Item>> {
    let c = spec.cohort.as_ref().context("per-patient stages need a `cohort` block")?;
    let path = spec.root.join(&c.clinical);
    let mut rdr = csv::Reader::from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = rdr.headers().with_context(|| format!("{}: cannot read the header row", path.display()))?.clone();
    if let Some((name, a, b)) = crate::util::duplicate_column(&headers, false) {
        bail!("{}: column `{name}` is written twice in the header (columns {a} and {b}); expected unique column names", path.display());
    }
    let id_c = if c.id == crate::stages::ingest::ROW_IDS {
        None
    } else {
        match headers.iter().position(|h| h == c.id) {
            Some(i) => Some(i),
            None => bail!("{}: no id column `{}`", path.display(), crate::util::display_id(&c.id)),
        }
    };
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {} is not valid CSV", path.display(), i + 1))?;
        let id = match id_c {
            Some(ic) => rec.get(ic).unwrap_or("").trim().to_string(),
            None => format!("row{}", i + 1),
        };
        if let Some(why) = crate::util::id_problem(&id) {
            bail!("{}: row {} (line {}), column `{}`: {why}", path.display(), i + 1, i + 2, crate::util::display_id(&c.id));
        }
        let mut h = blake3::Hasher::new();
        for (name, field) in headers.iter().zip(rec.iter()) {
            h.update(name.as_bytes());
            h.update(b"\x1f");
            h.update(field.as_bytes());
            h.update(b"\x1e");
        }
        let attrs = [("patient_id".to_string(), id.clone())].into_iter().collect();
        out.push(Item { id, digest: h.finalize().to_hex().to_string(), attrs });
    }
    Ok(out)
}

/// One item per slide-manifest row: id `<patient>_<stain>` (or the file stem when a patient has
/// two slides of a stain), digest over the row and the slide file's content digest.
pub fn slides(spec: &Spec, stat: &mut StatCache) -> Result<Vec<Item>> {
    let c = spec.cohort.as_ref().context("per-slide stages need a `cohort` block")?;
    let rel = c.slides.as_ref().context("per-slide stages need `cohort.slides`")?;
    let path = spec.root.join(rel);
    let base = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let rows = crate::slide::manifest::parse_manifest(&path)?;
    let bags = bag_column(&path)?;
    let roots = crate::spec::roots::DataRoots::load(&spec.root).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out: Vec<Item> = Vec::new();
    for r in rows {
        // slides on a share are normal, but only under a data root the project declares
        roots
            .check(&r.path)
            .map_err(|why| anyhow::anyhow!("{}: {}, column `path`: slide {why}", path.display(), r.label()))?;
        let d = stat
            .digest(&r.path)
            .with_context(|| format!("{}: {}, column `path`: cannot read slide {}", path.display(), r.label(), crate::util::display_id(&r.path.display().to_string())))?;
        let mut id = format!("{}_{}", r.patient_id, r.stain.as_str());
        if out.iter().any(|x| x.id == id) {
            id = std::path::Path::new(&r.rel_path).file_stem().map(|x| x.to_string_lossy().to_string()).unwrap_or(id);
        }
        if out.iter().any(|x| x.id == id) {
            bail!("{}: {}: slide id `{}` is not unique (two slides of one patient and stain with the same file name)", path.display(), r.label(), crate::util::display_id(&id));
        }
        let mpp = r.mpp.map(|m| m.to_string()).unwrap_or_default();
        // an existing CLAM/TRIDENT bag for the slide (`features` column): its content is part of the item
        let bag = match bags.get(r.row - 1).and_then(|b| b.as_ref()) {
            Some(rel) => {
                let p = base.join(rel);
                roots
                    .check(&p)
                    .map_err(|why| anyhow::anyhow!("{}: {}, column `features`: bag {why}", path.display(), r.label()))?;
                let bd = stat
                    .digest(&p)
                    .with_context(|| format!("{}: {}, column `features`: cannot read bag {}", path.display(), r.label(), p.display()))?;
                Some((p, bd))
            }
            None => None,
        };
        let mut h = blake3::Hasher::new();
        if let Some((_, bd)) = &bag {
            h.update(bd.as_bytes());
        }
        for field in [r.patient_id.as_str(), r.stain.as_str(), r.rel_path.as_str(), mpp.as_str(), d.as_str()] {
            h.update(field.as_bytes());
            h.update(b"\x1e");
        }
        let mut attrs: std::collections::BTreeMap<String, String> = [
            ("patient_id".to_string(), r.patient_id.clone()),
            ("stain".to_string(), r.stain.as_str().to_string()),
            ("path".to_string(), r.path.display().to_string()),
            ("rel_path".to_string(), r.rel_path.clone()),
            ("digest".to_string(), d),
        ]
        .into_iter()
        .collect();
        if let Some(m) = r.mpp.or(c.mpp_override) {
            attrs.insert("mpp".into(), m.to_string());
        }
        if let Some((p, _)) = bag {
            attrs.insert("features".into(), p.display().to_string());
        }
        out.push(Item { id, digest: h.finalize().to_hex().to_string(), attrs });
    }
    Ok(out)
}

/// The optional `features` column of a manifest (one entry per data row; None when empty).
fn bag_column(path: &std::path::Path) -> Result<Vec<Option<String>>> {
    let mut rdr = csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let Some(fc) = headers.iter().position(|h| h.trim().eq_ignore_ascii_case("features")) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec?;
        out.push(rec.get(fc).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string));
    }
    Ok(out)
}

/// The header facts (level-0 size, µm/px) of each slide, by item id, for plan-time checks.
/// They are remembered in `memo` (a file beside the stat cache) under the slide's content
/// digest and µm/px override, so an unchanged slide is opened once, not on every plan; the
/// others are opened in parallel. A slide that cannot be opened is left out: `ingest` reports it.
pub fn slide_facts(slides: &[Item], memo: Option<&std::path::Path>) -> std::collections::HashMap<String, crate::stages::SlideFacts> {
    use crate::stages::SlideFacts;
    use rayon::prelude::*;
    use std::collections::HashMap;
    let key = |it: &Item| format!("{}|{}", it.attrs.get("digest").map(String::as_str).unwrap_or(""), it.attrs.get("mpp").map(String::as_str).unwrap_or(""));
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
        .filter(|it| !it.attrs.get("digest").map_or(true, |d| d.is_empty()) && !known.contains_key(&key(it)))
        .filter_map(|it| {
            let path = it.attrs.get("path")?;
            let over = it.attrs.get("mpp").and_then(|m| m.parse::<f64>().ok());
            let slide = crate::slide::Slide::open(path, over).ok()?;
            let (mx, my) = slide.mpp().ok()?;
            let m = slide.meta();
            Some((key(it), SlideFacts { width: m.width, height: m.height, mpp: (mx + my) / 2.0 }))
        })
        .collect();
    if !opened.is_empty() {
        known.extend(opened);
        if let Some(m) = memo {
            // a memo only: written whole and renamed into place; a failure costs a re-open
            let mut lines: Vec<String> = known.iter().map(|(k, f)| format!("{k}\t{}\t{}\t{}", f.width, f.height, f.mpp)).collect();
            lines.sort();
            let tmp = m.with_extension(format!("{}.tmp", std::process::id()));
            if m.parent().is_some_and(|d| d.is_dir()) && std::fs::write(&tmp, lines.join("\n") + "\n").and_then(|_| std::fs::rename(&tmp, m)).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
    slides.iter().filter_map(|it| known.get(&key(it)).map(|f| (it.id.clone(), *f))).collect()
}
