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
