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
    let headers = rdr.headers()?.clone();
    let id_c = if c.id == crate::stages::ingest::ROW_IDS {
        None
    } else {
        match headers.iter().position(|h| h == c.id) {
            Some(i) => Some(i),
            None => bail!("{}: no id column `{}`", path.display(), c.id),
        }
    };
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {} is not valid CSV", path.display(), i + 1))?;
        let id = match id_c {
            Some(ic) => rec.get(ic).unwrap_or("").trim().to_string(),
            None => format!("row{}", i + 1),
        };
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
    let mut rdr = csv::Reader::from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |n: &str| headers.iter().position(|h| h == n);
    let (Some(pc), Some(fc), Some(sc)) = (col("patient_id"), col("path"), col("stain")) else {
        bail!("{}: expected columns patient_id, path, stain; found {}", path.display(), headers.iter().collect::<Vec<_>>().join(", "));
    };
    let mut out: Vec<Item> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 1;
        let rec = rec.with_context(|| format!("{}: row {row} is not valid CSV", path.display()))?;
        let (p, f, s) = (rec.get(pc).unwrap_or(""), rec.get(fc).unwrap_or(""), rec.get(sc).unwrap_or(""));
        let file = base.join(f);
        let d = stat
            .digest(&file)
            .with_context(|| format!("{}: row {row}, column `path`: cannot read slide {}", path.display(), file.display()))?;
        let mut id = format!("{p}_{s}");
        if out.iter().any(|x| x.id == id) {
            id = std::path::Path::new(f).file_stem().map(|x| x.to_string_lossy().to_string()).unwrap_or(id);
        }
        let mut h = blake3::Hasher::new();
        for field in rec.iter() {
            h.update(field.as_bytes());
            h.update(b"\x1e");
        }
        h.update(d.as_bytes());
        let mut attrs: std::collections::BTreeMap<String, String> = [
            ("patient_id".to_string(), p.to_string()),
            ("stain".to_string(), s.to_string()),
            ("path".to_string(), file.display().to_string()),
            ("digest".to_string(), d),
        ]
        .into_iter()
        .collect();
        if let Some(m) = col("mpp").and_then(|mc| rec.get(mc)).filter(|m| !m.trim().is_empty()) {
            attrs.insert("mpp".into(), m.trim().to_string());
        }
        out.push(Item { id, digest: h.finalize().to_hex().to_string(), attrs });
    }
    Ok(out)
}
