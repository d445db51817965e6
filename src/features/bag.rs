//! HDF5 feature bags in the layout CLAM and TRIDENT use, written and read with `hdf5-metno`.
//!
//! # Layout
//! - dataset `features`: N × D, float32 (float16 with [`Precision::F16`]); attributes `name`
//!   (slide name, as TRIDENT), `encoder`, `encoder_digest` (Spatia's);
//! - dataset `coords`: N × 2, int64, level-0 (x, y) of each tile's top-left corner; attributes
//!   `patch_size` (pixels at the extraction resolution), `patch_size_level0`, `level0_width`,
//!   `level0_height`, `name` (TRIDENT's names) and `mpp` (µm/px of the extracted tiles, Spatia's;
//!   TRIDENT records magnifications instead).
//!
//! Both datasets are chunked along rows with an unlimited first dimension, as TRIDENT's and
//! CLAM's `save_hdf5` create them. Bags are written to a temporary file and renamed.
//!
//! HDF5's file locking is switched off for Spatia's opens: the C library opens files without
//! `O_CLOEXEC`, so a child process forked meanwhile (a `command` stage, a test's Python) inherits
//! the descriptor and its `flock`, and reading the bag then fails with "unable to lock file,
//! errno = 11" until the child exits. Write-then-rename already keeps readers off partial files.
//!
//! # Reading bags made elsewhere
//! CLAM's `extract_features_fp.py` writes `features` (float32) and `coords` (int32 in recent
//! versions, int64 in older ones) with no attributes; TRIDENT writes the attributes above
//! (plus magnifications). Any integer type for `coords` and float16/32/64 for `features` are
//! accepted; every attribute is optional on read.
//!
//! # Errors
//! Every error names the file and says what was expected and what was found
//! ([`FeatureError::InvalidBag`], [`FeatureError::DimensionMismatch`], [`FeatureError::Hdf5`]).
use super::FeatureError;
use hdf5::types::{FloatSize, TypeDescriptor, VarLenUnicode};
use hdf5_metno as hdf5;
use ndarray::Array2;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Storage precision of the `features` dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE float32 (CLAM's and TRIDENT's default).
    #[default]
    F32,
    /// IEEE float16 (half the size; ~3 significant digits).
    F16,
}

/// Metadata stored as attributes; every field optional (bags from CLAM carry none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BagMeta {
    /// Slide name.
    pub name: Option<String>,
    /// Tile side in pixels at the extraction resolution.
    pub patch_size: Option<i64>,
    /// Tile side in level-0 pixels.
    pub patch_size_level0: Option<i64>,
    /// µm per pixel of the extracted tiles.
    pub mpp: Option<f64>,
    /// Slide width at level 0.
    pub level0_width: Option<i64>,
    /// Slide height at level 0.
    pub level0_height: Option<i64>,
    /// Encoder name.
    pub encoder: Option<String>,
    /// Encoder digest.
    pub encoder_digest: Option<String>,
}

/// A slide's bag: one feature row per tile and the tile's level-0 top-left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Bag {
    /// N × D features.
    pub features: Array2<f32>,
    /// N × 2 level-0 (x, y).
    pub coords: Array2<i64>,
    /// Attributes.
    pub meta: BagMeta,
}

fn h5err(path: &Path, action: impl Into<String>) -> impl FnOnce(hdf5::Error) -> FeatureError + '_ {
    let action = action.into();
    move |source| FeatureError::Hdf5 { path: path.to_path_buf(), action, source }
}

fn invalid(path: &Path, message: impl Into<String>) -> FeatureError {
    FeatureError::InvalidBag { path: path.to_path_buf(), message: message.into() }
}

fn put_str(loc: &hdf5::Location, key: &str, value: &str, path: &Path) -> Result<(), FeatureError> {
    let v = VarLenUnicode::from_str(value)
        .map_err(|e| invalid(path, format!("attribute `{key}`: cannot store {value:?}: {e}")))?;
    loc.new_attr::<VarLenUnicode>()
        .create(key)
        .and_then(|a| a.write_scalar(&v))
        .map_err(h5err(path, format!("writing attribute `{key}`")))
}

fn put<T: hdf5::H5Type>(loc: &hdf5::Location, key: &str, value: &T, path: &Path) -> Result<(), FeatureError> {
    loc.new_attr::<T>()
        .create(key)
        .and_then(|a| a.write_scalar(value))
        .map_err(h5err(path, format!("writing attribute `{key}`")))
}

impl Bag {
    /// Number of tiles N.
    pub fn len(&self) -> usize {
        self.features.nrows()
    }
    /// Whether the bag has no tiles.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Feature dimension D.
    pub fn dim(&self) -> usize {
        self.features.ncols()
    }

    /// Builds a bag from rows, checking that rows and coords agree.
    pub fn from_rows(rows: Vec<Vec<f32>>, coords: &[[i64; 2]], meta: BagMeta) -> Result<Bag, FeatureError> {
        if rows.len() != coords.len() {
            return Err(FeatureError::InvalidInput(format!(
                "bag: expected one coordinate per feature row, found {} rows and {} coords",
                rows.len(),
                coords.len()
            )));
        }
        let d = rows.first().map_or(0, |r| r.len());
        let mut flat = Vec::with_capacity(rows.len() * d);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != d {
                return Err(FeatureError::InvalidInput(format!(
                    "bag: expected every row to have {d} values, row {i} has {}",
                    r.len()
                )));
            }
            flat.extend_from_slice(r);
        }
        let features = Array2::from_shape_vec((rows.len(), d), flat)
            .map_err(|e| FeatureError::InvalidInput(format!("bag: {e}")))?;
        let coords = Array2::from_shape_vec((coords.len(), 2), coords.iter().flat_map(|c| [c[0], c[1]]).collect())
            .map_err(|e| FeatureError::InvalidInput(format!("bag: {e}")))?;
        Ok(Bag { features, coords, meta })
    }

    /// Writes the bag to `path` (temporary file, then rename).
    pub fn write(&self, path: &Path, precision: Precision) -> Result<(), FeatureError> {
        if self.coords.nrows() != self.features.nrows() || self.coords.ncols() != 2 {
            return Err(invalid(
                path,
                format!(
                    "refusing to write: expected coords N×2 with N = {} feature rows, found {}×{}",
                    self.features.nrows(),
                    self.coords.nrows(),
                    self.coords.ncols()
                ),
            ));
        }
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("bag.h5");
        let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
        let result = self.write_to(&tmp, precision);
        match result {
            Ok(()) => {
                std::fs::rename(&tmp, path).map_err(|source| FeatureError::Io { path: path.to_path_buf(), source })
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn write_to(&self, path: &Path, precision: Precision) -> Result<(), FeatureError> {
        let file = hdf5::File::with_options()
            .with_fapl(|p| p.file_locking(false))
            .create(path)
            .map_err(h5err(path, "creating the file"))?;
        let (n, d) = self.features.dim();
        // Chunks of ~256 KiB along rows, unlimited rows (like CLAM/TRIDENT's resizable datasets).
        let rows_per_chunk = (65536 / d.max(1)).clamp(1, n.max(1));
        let fb = file.new_dataset_builder().chunk((rows_per_chunk, d.max(1)));
        let features = match precision {
            Precision::F32 => fb.with_data(self.features.view()).create("features"),
            Precision::F16 => {
                let half = self.features.mapv(half::f16::from_f32);
                fb.with_data(half.view()).create("features")
            }
        }
        .map_err(h5err(path, "writing dataset `features`"))?;
        let coords = file
            .new_dataset_builder()
            .chunk((rows_per_chunk.clamp(1, n.max(1)), 2))
            .with_data(self.coords.view())
            .create("coords")
            .map_err(h5err(path, "writing dataset `coords`"))?;
        let m = &self.meta;
        if let Some(v) = &m.name {
            put_str(&features, "name", v, path)?;
            put_str(&coords, "name", v, path)?;
        }
        if let Some(v) = &m.encoder {
            put_str(&features, "encoder", v, path)?;
        }
        if let Some(v) = &m.encoder_digest {
            put_str(&features, "encoder_digest", v, path)?;
        }
        for (key, v) in [
            ("patch_size", m.patch_size),
            ("patch_size_level0", m.patch_size_level0),
            ("level0_width", m.level0_width),
            ("level0_height", m.level0_height),
        ] {
            if let Some(v) = v {
                put(&coords, key, &v, path)?;
            }
        }
        if let Some(v) = m.mpp {
            put(&coords, "mpp", &v, path)?;
        }
        file.close().map_err(h5err(path, "closing the file"))
    }

    /// Reads a bag written by Spatia, CLAM or TRIDENT. Checks the layout (datasets present,
    /// 2-D, row counts agree) but not the values: see [`Bag::validate`].
    pub fn read(path: &Path) -> Result<Bag, FeatureError> {
        if !path.is_file() {
            return Err(invalid(path, "expected an HDF5 bag file, found no such file"));
        }
        let file = hdf5::File::with_options()
            .with_fapl(|p| p.file_locking(false))
            .open(path)
            .map_err(h5err(path, "opening the file"))?;
        let names = file.member_names().unwrap_or_default();
        let open = |name: &str| {
            file.dataset(name).map_err(|_| {
                invalid(path, format!("expected a dataset `{name}` (CLAM/TRIDENT layout), found datasets {names:?}"))
            })
        };
        let fds = open("features")?;
        let cds = open("coords")?;
        let fshape = fds.shape();
        let cshape = cds.shape();
        if fshape.len() != 2 {
            return Err(invalid(path, format!("expected `features` of shape N×D, found shape {fshape:?}")));
        }
        if cshape.len() != 2 || cshape[1] != 2 {
            return Err(invalid(path, format!("expected `coords` of shape N×2, found shape {cshape:?}")));
        }
        if fshape[0] != cshape[0] {
            return Err(invalid(
                path,
                format!(
                    "expected as many `coords` rows as `features` rows, found {} features and {} coords",
                    fshape[0], cshape[0]
                ),
            ));
        }
        let ftype =
            fds.dtype().and_then(|t| t.to_descriptor()).map_err(h5err(path, "reading the type of `features`"))?;
        let features: Array2<f32> = match ftype {
            TypeDescriptor::Float(FloatSize::U2) => {
                fds.read_2d::<half::f16>().map_err(h5err(path, "reading `features`"))?.mapv(|v| v.to_f32())
            }
            TypeDescriptor::Float(FloatSize::U4) => fds.read_2d::<f32>().map_err(h5err(path, "reading `features`"))?,
            TypeDescriptor::Float(FloatSize::U8) => {
                fds.read_2d::<f64>().map_err(h5err(path, "reading `features`"))?.mapv(|v| v as f32)
            }
            other => return Err(invalid(path, format!("expected float `features`, found type {other:?}"))),
        };
        let ctype = cds.dtype().and_then(|t| t.to_descriptor()).map_err(h5err(path, "reading the type of `coords`"))?;
        let coords: Array2<i64> = match ctype {
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                cds.read_2d::<i64>().map_err(h5err(path, "reading `coords`"))?
            }
            TypeDescriptor::Float(_) => {
                let f = cds.read_2d::<f64>().map_err(h5err(path, "reading `coords`"))?;
                if let Some((i, v)) = f.iter().enumerate().find(|(_, v)| !(v.is_finite() && v.fract() == 0.0)) {
                    return Err(invalid(
                        path,
                        format!("expected integer `coords`, found {v} at row {} column {}", i / 2, i % 2),
                    ));
                }
                f.mapv(|v| v as i64)
            }
            other => return Err(invalid(path, format!("expected integer `coords`, found type {other:?}"))),
        };
        let root: &hdf5::Location = &file;
        let meta = BagMeta {
            name: get_str(&fds, "name").or_else(|| get_str(&cds, "name")),
            patch_size: get_i64(&cds, "patch_size").or_else(|| get_i64(root, "patch_size")),
            patch_size_level0: get_i64(&cds, "patch_size_level0"),
            mpp: get_f64(&cds, "mpp"),
            level0_width: get_i64(&cds, "level0_width"),
            level0_height: get_i64(&cds, "level0_height"),
            encoder: get_str(&fds, "encoder").or_else(|| get_str(root, "encoder")),
            encoder_digest: get_str(&fds, "encoder_digest").or_else(|| get_str(root, "encoder_digest")),
        };
        Ok(Bag { features, coords, meta })
    }

    /// Checks a bag's values: at least one tile, every feature finite, coordinates
    /// non-negative and (when the slide's level-0 size is given) inside the slide.
    pub fn validate(&self, path: &Path, slide_size: Option<(u64, u64)>) -> Result<(), FeatureError> {
        let (n, d) = self.features.dim();
        if n == 0 {
            return Err(invalid(path, "expected at least one tile, found an empty bag (N = 0)"));
        }
        if d == 0 {
            return Err(invalid(path, format!("expected features of dimension ≥ 1, found N×0 with N = {n}")));
        }
        let bad: Vec<(usize, f32)> =
            self.features.iter().enumerate().filter(|(_, v)| !v.is_finite()).map(|(i, v)| (i, *v)).take(1).collect();
        if let Some(&(i, v)) = bad.first() {
            let count = self.features.iter().filter(|v| !v.is_finite()).count();
            return Err(invalid(
                path,
                format!(
                    "expected finite features, found {count} non-finite value(s), the first {v} at row {} column {}",
                    i / d,
                    i % d
                ),
            ));
        }
        for (row, c) in self.coords.outer_iter().enumerate() {
            let (x, y) = (c[0], c[1]);
            if x < 0 || y < 0 {
                return Err(invalid(path, format!("expected non-negative coords, found ({x}, {y}) at row {row}")));
            }
            if let Some((w, h)) = slide_size {
                if x as u64 >= w || y as u64 >= h {
                    return Err(invalid(
                        path,
                        format!(
                            "expected coords inside the slide's level-0 size {w}×{h}, found ({x}, {y}) at row {row}"
                        ),
                    ));
                }
            }
        }
        if let (Some(w), Some(h), Some((sw, sh))) = (self.meta.level0_width, self.meta.level0_height, slide_size) {
            if w as u64 != sw || h as u64 != sh {
                return Err(invalid(
                    path,
                    format!("attributes level0_width×level0_height say {w}×{h} but the slide is {sw}×{sh}"),
                ));
            }
        }
        Ok(())
    }
}

fn get_str(loc: &hdf5::Location, key: &str) -> Option<String> {
    let a = loc.attr(key).ok()?;
    if let Ok(v) = a.read_scalar::<VarLenUnicode>() {
        return Some(v.as_str().to_string());
    }
    if let Ok(v) = a.read_scalar::<hdf5::types::VarLenAscii>() {
        return Some(v.as_str().to_string());
    }
    match a.dtype().ok()?.to_descriptor().ok()? {
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) if n <= 1024 => {
            a.read_scalar::<hdf5::types::FixedAscii<1024>>().ok().map(|v| v.as_str().to_string())
        }
        _ => None,
    }
}

fn get_i64(loc: &hdf5::Location, key: &str) -> Option<i64> {
    let a = loc.attr(key).ok()?;
    a.read_scalar::<i64>().ok().or_else(|| a.read_scalar::<f64>().ok().filter(|v| v.fract() == 0.0).map(|v| v as i64))
}

fn get_f64(loc: &hdf5::Location, key: &str) -> Option<f64> {
    loc.attr(key).ok()?.read_scalar::<f64>().ok()
}

/// Reads and validates the bags of a cohort: each one as [`Bag::validate`], and all with the
/// same feature dimension. Returns that dimension.
pub fn validate_cohort(bags: &[(PathBuf, Option<(u64, u64)>)]) -> Result<usize, FeatureError> {
    let mut first: Option<(PathBuf, usize)> = None;
    for (path, size) in bags {
        let bag = Bag::read(path)?;
        bag.validate(path, *size)?;
        match &first {
            None => first = Some((path.clone(), bag.dim())),
            Some((p, d)) if *d != bag.dim() => {
                return Err(FeatureError::DimensionMismatch {
                    path: path.clone(),
                    found: bag.dim(),
                    expected: *d,
                    first: p.clone(),
                })
            }
            Some(_) => {}
        }
    }
    first.map(|f| f.1).ok_or_else(|| FeatureError::InvalidInput("cohort: expected at least one bag, found none".into()))
}
