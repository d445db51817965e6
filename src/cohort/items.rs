//! The cohort's items, what per-item stages fan out over: patients (rows of the clinical table)
//! and slides (rows of the slide manifest). Each item has a digest of exactly the data its
//! shards may read, so adding a patient or slide changes no other item's shard keys.
//!
//! Items come from the one reader of each table ([`super::clinical::ClinicalCsv`],
//! [`super::manifest::parse_manifest`]). Checks that belong to the caller (whether a file lies
//! under a declared data root, the content digest of a file through a stat cache) are passed
//! in as closures.
use super::manifest::ManifestRow;
use super::Cohort;
use crate::slide::Stain;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A cohort item a shard runs for.
#[derive(Debug, Clone)]
pub struct Item {
    /// A patient's id, or a slide's (`<patient>_<stain>`, or the file stem when a patient has
    /// two slides of a stain).
    pub id: String,
    /// blake3 of the data the item's shards may read.
    pub digest: String,
    /// The patient (the item itself, or the patient the slide belongs to).
    pub patient: String,
    /// The slide, for an item of the manifest.
    pub slide: Option<SlideRef>,
}

/// What a shard knows of its slide.
#[derive(Debug, Clone, PartialEq)]
pub struct SlideRef {
    pub stain: Stain,
    /// The file, resolved against the manifest's directory.
    pub path: PathBuf,
    /// The `path` cell as written.
    pub rel_path: String,
    /// blake3 of the file's content.
    pub digest: String,
    /// µm/px: the row's `mpp` or else the cohort's `mpp_override` (None: the file's own).
    pub mpp: Option<f64>,
    /// An existing CLAM/TRIDENT bag of the slide (the manifest's `features` column), resolved.
    pub features: Option<PathBuf>,
}

impl Item {
    /// The id as shown in logs, messages and on the terminal ([`crate::util::display_id`]:
    /// bidi and control characters as `<U+XXXX>`); data files keep the id itself.
    pub fn shown(&self) -> String {
        crate::util::display_id(&self.id)
    }

    /// The item's slide, or an error naming the item (a patient item has none).
    pub fn slide(&self) -> Result<&SlideRef> {
        self.slide.as_ref().with_context(|| format!("item `{}` is a patient, not a slide", self.shown()))
    }

    /// The item's facts as `(name, value)` pairs, names sorted: `patient_id`, and for a slide
    /// `digest`, `features` (when given), `mpp` (when known), `path` (absolute), `rel_path`,
    /// `stain` (what a `command` shard gets as `SPATIA_ITEM_<NAME>`).
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![("patient_id", self.patient.clone())];
        if let Some(s) = &self.slide {
            v.push(("digest", s.digest.clone()));
            if let Some(f) = &s.features {
                v.push(("features", f.display().to_string()));
            }
            if let Some(m) = s.mpp {
                v.push(("mpp", m.to_string()));
            }
            v.push(("path", s.path.display().to_string()));
            v.push(("rel_path", s.rel_path.clone()));
            v.push(("stain", s.stain.as_str().to_string()));
        }
        v
    }
}

/// One item per clinical row: id, and blake3 of the row's fields (header name and cell, in
/// column order). `path` is the clinical table (resolved by the caller).
pub fn patients(path: &Path, c: &Cohort) -> Result<Vec<Item>> {
    let mut csv = super::clinical::ClinicalCsv::open(path, c)?;
    let headers = csv.headers().clone();
    let mut out = Vec::new();
    for r in csv.rows() {
        let r = r?;
        let mut h = blake3::Hasher::new();
        for (name, field) in headers.iter().zip(r.record.iter()) {
            h.update(name.as_bytes());
            h.update(b"\x1f");
            h.update(field.as_bytes());
            h.update(b"\x1e");
        }
        out.push(Item { id: r.id.clone(), digest: h.finalize().to_hex().to_string(), patient: r.id, slide: None });
    }
    Ok(out)
}

/// What the caller checks of a file a manifest names.
pub struct FileChecks<'a> {
    /// Whether the file may be read (e.g. it lies under a declared data root): `Err(why)`
    /// completes "slide …" / "bag …".
    pub allowed: &'a dyn Fn(&Path) -> std::result::Result<(), String>,
    /// The content digest of a file.
    pub digest: &'a mut dyn FnMut(&Path) -> Result<String>,
}

/// One item per slide-manifest row: id `<patient>_<stain>` (or the file stem when a patient has
/// two slides of a stain), digest over the row, the slide file's content digest and the
/// content digest of its bag (`features` column) when given. `path` is the manifest (resolved
/// by the caller); `rows` its rows ([`super::manifest::parse_manifest`]).
pub fn slides(path: &Path, rows: &[ManifestRow], c: &Cohort, files: FileChecks) -> Result<Vec<Item>> {
    let base = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    let mut out: Vec<Item> = Vec::new();
    for r in rows {
        let at = || format!("{}: {}", path.display(), r.label());
        // slides on a share are normal, but only under a data root the project declares
        (files.allowed)(&r.path).map_err(|why| anyhow::anyhow!("{}, column `path`: slide {why}", at()))?;
        let d = (files.digest)(&r.path).with_context(|| {
            format!(
                "{}, column `path`: cannot read slide {}",
                at(),
                crate::util::display_id(&r.path.display().to_string())
            )
        })?;
        let mut id = format!("{}_{}", r.patient_id, r.stain.as_str());
        if out.iter().any(|x| x.id == id) {
            id = Path::new(&r.rel_path).file_stem().map(|x| x.to_string_lossy().to_string()).unwrap_or(id);
        }
        if out.iter().any(|x| x.id == id) {
            bail!(
                "{}: slide id `{}` is not unique (two slides of one patient and stain with the same file name)",
                at(),
                crate::util::display_id(&id)
            );
        }
        let mpp = r.mpp.map(|m| m.to_string()).unwrap_or_default();
        // an existing CLAM/TRIDENT bag for the slide (`features` column): its content is part of the item
        let bag = match &r.features {
            Some(rel) => {
                let p = base.join(rel);
                (files.allowed)(&p).map_err(|why| anyhow::anyhow!("{}, column `features`: bag {why}", at()))?;
                let bd = (files.digest)(&p)
                    .with_context(|| format!("{}, column `features`: cannot read bag {}", at(), p.display()))?;
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
        let slide = SlideRef {
            stain: r.stain,
            path: r.path.clone(),
            rel_path: r.rel_path.clone(),
            digest: d,
            mpp: r.mpp.or(c.mpp_override),
            features: bag.map(|(p, _)| p),
        };
        out.push(Item {
            id,
            digest: h.finalize().to_hex().to_string(),
            patient: r.patient_id.clone(),
            slide: Some(slide),
        });
    }
    Ok(out)
}
