//! A streaming writer of pyramidal, tiled, JPEG-compressed classic TIFF files that OpenSlide
//! reads as Aperio slides.
//!
//! The key type is [`PyramidWriter`]: feed it level 0 one row of 256×256 RGB tiles at a time
//! ([`PyramidWriter::push_row`]); it encodes the tiles (in parallel, rayon), appends them to
//! the file, box-filters each row of tiles 4× down into the next level's pending row, and
//! writes that level's tiles as soon as its row is complete. Only one row of tiles per level
//! is ever held in memory. [`PyramidWriter::finish`] flushes the last rows, writes one IFD per
//! level after the tile data and points the header at the first one. The smallest level is
//! also stored whole as a stripped JPEG in the second IFD, which OpenSlide's Aperio driver
//! exposes as the `thumbnail` associated image.
//!
//! # Format
//! Classic little-endian TIFF; per IFD: NewSubfileType (0 for level 0, 1 for reduced
//! levels), ImageWidth/Length, BitsPerSample 8,8,8, Compression 7 (JPEG, one complete
//! baseline JFIF stream per tile), PhotometricInterpretation 6 (YCbCr, which is what the JPEG
//! streams hold) with YCbCrSubSampling 2,2 (the streams are 4:2:0), SamplesPerPixel 3,
//! X/YResolution in pixels per centimetre with ResolutionUnit 3, PlanarConfiguration 1,
//! TileWidth/Length 256, TileOffsets, TileByteCounts, Software. Level 0 also carries the
//! ImageDescription given by the caller (an Aperio-style text makes OpenSlide report vendor
//! `aperio`, `openslide.mpp-x/y` and objective power). Tiles that are pure background are
//! stored once and shared by every TileOffsets entry that needs them.
//!
//! Level `l+1` is `floor(w_l / 4) × floor(h_l / 4)`; each of its pixels is the rounded mean of
//! the 4×4 level-`l` pixels it covers.
//!
//! # Errors
//! I/O failures name the file; a file that would pass 4 GiB (the classic TIFF limit) is an
//! error, as is a row of tiles of the wrong length.
use super::texture::{BACKGROUND, TILE};
use super::DemoError;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const T: usize = TILE as usize;
const TILE_BYTES: usize = T * T * 3;

struct Level {
    width: u32,
    height: u32,
    tiles_x: u32,
    tiles_y: u32,
    /// The pending row of tiles (only for levels > 0: level 0 rows come from the caller).
    pending: Vec<Vec<u8>>,
    /// How many 64-row quarters of `pending` have been filled.
    quarters: u32,
    /// Index of the next tile row to write.
    next_row: u32,
    offsets: Vec<u32>,
    counts: Vec<u32>,
}

impl Level {
    fn new(width: u32, height: u32) -> Level {
        Level {
            width,
            height,
            tiles_x: width.div_ceil(TILE),
            tiles_y: height.div_ceil(TILE),
            pending: Vec::new(),
            quarters: 0,
            next_row: 0,
            offsets: Vec::new(),
            counts: Vec::new(),
        }
    }
}

/// What [`PyramidWriter::create`] needs to know about the slide.
#[derive(Clone, Debug)]
pub struct PyramidOptions {
    /// Level-0 width, px.
    pub width: u32,
    /// Level-0 height, px.
    pub height: u32,
    /// Number of levels (each 4× smaller than the previous one).
    pub n_levels: usize,
    /// Level-0 resolution, µm/px (written as X/YResolution).
    pub mpp: f64,
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// Level 0's ImageDescription.
    pub description: String,
    /// The Software tag.
    pub software: String,
}

/// Streaming pyramidal TIFF writer (see the module documentation).
pub struct PyramidWriter {
    out: BufWriter<File>,
    path: PathBuf,
    pos: u64,
    levels: Vec<Level>,
    quality: u8,
    description: String,
    mpp: f64,
    software: String,
    background_tile: Option<(u32, u32)>,
    /// Pixels of the smallest level, kept whole (≤ 512 px on the long side) for the thumbnail.
    thumbnail: Vec<u8>,
    /// A label image (RGB, width, height, description), written last (see [`PyramidWriter::set_label`]).
    label: Option<(Vec<u8>, u32, u32, String)>,
}

/// The level dimensions of a pyramid over a `width × height` level 0 with `n` levels.
pub fn level_dims(width: u32, height: u32, n: usize) -> Vec<(u32, u32)> {
    let mut v = vec![(width, height)];
    for _ in 1..n {
        let (w, h) = *v.last().unwrap_or(&(width, height));
        v.push(((w / 4).max(1), (h / 4).max(1)));
    }
    v
}

impl PyramidWriter {
    /// Creates `path` and prepares the pyramid described by `opts`.
    pub fn create(path: &Path, opts: PyramidOptions) -> Result<PyramidWriter, DemoError> {
        let PyramidOptions { width, height, n_levels, mpp, quality, description, software } = opts;
        let file = File::create(path).map_err(|e| DemoError::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // header; the first IFD offset is patched in `finish`
        out.write_all(&[b'I', b'I', 42, 0, 0, 0, 0, 0]).map_err(|e| DemoError::io(path, e))?;
        let levels: Vec<Level> =
            level_dims(width, height, n_levels.max(1)).into_iter().map(|(w, h)| Level::new(w, h)).collect();
        Ok(PyramidWriter {
            out,
            path: path.to_path_buf(),
            pos: 8,
            levels,
            quality: quality.clamp(1, 100),
            description,
            mpp,
            software,
            background_tile: None,
            thumbnail: Vec::new(),
            label: None,
        })
    }

    /// Adds an Aperio-style label image (`rgb` is `width × height` RGB): one stripped JPEG
    /// directory at the end of the chain; OpenSlide's Aperio driver names an associated image
    /// by the first word of the description's second line, so
    /// `"Aperio Image Library v10.0.51\nlabel 64x32"` makes it the `label` associated image.
    /// Test fixtures use it to check that a label never leaves the slide.
    pub fn set_label(&mut self, rgb: Vec<u8>, width: u32, height: u32, description: &str) -> Result<(), DemoError> {
        if width == 0 || height == 0 || rgb.len() != (width as usize) * (height as usize) * 3 {
            return Err(DemoError::Internal(format!(
                "{}: label of {} bytes is not {width}×{height} RGB",
                self.path.display(),
                rgb.len()
            )));
        }
        self.label = Some((rgb, width, height, description.to_string()));
        Ok(())
    }

    /// Number of tile columns at level 0 (the length every row pushed must have).
    pub fn tiles_x(&self) -> u32 {
        self.levels[0].tiles_x
    }

    /// Number of tile rows at level 0.
    pub fn tiles_y(&self) -> u32 {
        self.levels[0].tiles_y
    }

    /// Appends the next row of level-0 tiles (each 256×256×3 RGB bytes, left to right).
    pub fn push_row(&mut self, tiles: Vec<Vec<u8>>) -> Result<(), DemoError> {
        let l0 = &self.levels[0];
        if tiles.len() != l0.tiles_x as usize || tiles.iter().any(|t| t.len() != TILE_BYTES) {
            return Err(DemoError::Internal(format!(
                "{}: expected a row of {} tiles of {} bytes, found {} tiles",
                self.path.display(),
                l0.tiles_x,
                TILE_BYTES,
                tiles.len()
            )));
        }
        if l0.next_row >= l0.tiles_y {
            return Err(DemoError::Internal(format!(
                "{}: level 0 already has its {} rows of tiles",
                self.path.display(),
                l0.tiles_y
            )));
        }
        self.write_row(0, tiles)
    }

    fn write_row(&mut self, level: usize, tiles: Vec<Vec<u8>>) -> Result<(), DemoError> {
        let quality = self.quality;
        let encoded: Vec<Result<Option<Vec<u8>>, DemoError>> = tiles
            .par_iter()
            .map(|t| if is_background(t) { Ok(None) } else { encode_jpeg(t, quality).map(Some) })
            .collect();
        for e in encoded {
            let (off, len) = match e? {
                Some(bytes) => self.append(&bytes)?,
                None => match self.background_tile {
                    Some(ol) => ol,
                    None => {
                        let bg = vec_background();
                        let bytes = encode_jpeg(&bg, quality)?;
                        let ol = self.append(&bytes)?;
                        self.background_tile = Some(ol);
                        ol
                    }
                },
            };
            self.levels[level].offsets.push(off);
            self.levels[level].counts.push(len);
        }
        if level + 1 == self.levels.len() {
            self.keep_for_thumbnail(&tiles);
        }
        let lv = &mut self.levels[level];
        lv.next_row += 1;
        let last_of_level = lv.next_row == lv.tiles_y;
        if level + 1 < self.levels.len() {
            self.downsample_into(level + 1, &tiles);
            let next = &self.levels[level + 1];
            if next.next_row < next.tiles_y && (next.quarters == 4 || last_of_level) {
                let lv = &mut self.levels[level + 1];
                let row = std::mem::take(&mut lv.pending);
                lv.quarters = 0;
                self.write_row(level + 1, row)?;
            }
        }
        Ok(())
    }

    /// Box-filters a row of level-`level-1` tiles into a quarter of level `level`'s pending row.
    fn downsample_into(&mut self, level: usize, src: &[Vec<u8>]) {
        let lv = &mut self.levels[level];
        if lv.next_row >= lv.tiles_y {
            return; // rows beyond the (floored) height of this level
        }
        if lv.pending.is_empty() {
            lv.pending = (0..lv.tiles_x).map(|_| vec_background()).collect();
        }
        let q = lv.quarters as usize;
        for (i, s) in src.iter().enumerate() {
            let di = i / 4;
            if di >= lv.tiles_x as usize {
                break;
            }
            let dst = &mut lv.pending[di];
            let xo = (i % 4) * (T / 4);
            for y in 0..T / 4 {
                let dy = q * (T / 4) + y;
                for x in 0..T / 4 {
                    let mut acc = [8u32; 3];
                    for sy in 0..4 {
                        let row = (4 * y + sy) * T;
                        for sx in 0..4 {
                            let p = (row + 4 * x + sx) * 3;
                            acc[0] += s[p] as u32;
                            acc[1] += s[p + 1] as u32;
                            acc[2] += s[p + 2] as u32;
                        }
                    }
                    let d = (dy * T + xo + x) * 3;
                    dst[d] = (acc[0] / 16) as u8;
                    dst[d + 1] = (acc[1] / 16) as u8;
                    dst[d + 2] = (acc[2] / 16) as u8;
                }
            }
        }
        lv.quarters += 1;
    }

    /// Copies a row of tiles of the smallest level into the thumbnail buffer.
    fn keep_for_thumbnail(&mut self, tiles: &[Vec<u8>]) {
        let Some(lv) = self.levels.last() else { return };
        let (w, h) = (lv.width as usize, lv.height as usize);
        if self.thumbnail.is_empty() {
            self.thumbnail = vec![0; w * h * 3];
        }
        let y0 = lv.next_row as usize * T;
        for y in 0..T.min(h.saturating_sub(y0)) {
            for (i, t) in tiles.iter().enumerate() {
                let x0 = i * T;
                let n = T.min(w.saturating_sub(x0));
                let dst = ((y0 + y) * w + x0) * 3;
                self.thumbnail[dst..dst + n * 3].copy_from_slice(&t[y * T * 3..(y * T + n) * 3]);
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(u32, u32), DemoError> {
        let off = self.pos;
        self.out.write_all(bytes).map_err(|e| DemoError::io(&self.path, e))?;
        self.pos += bytes.len() as u64;
        if self.pos > u32::MAX as u64 {
            return Err(DemoError::TooLarge { path: self.path.clone(), bytes: self.pos });
        }
        Ok((off as u32, bytes.len() as u32))
    }

    /// Writes the IFDs and completes the file. Errors if level 0 did not get all its rows.
    pub fn finish(mut self) -> Result<(), DemoError> {
        for (i, lv) in self.levels.iter().enumerate() {
            let want = (lv.tiles_x * lv.tiles_y) as usize;
            if lv.offsets.len() != want {
                return Err(DemoError::Internal(format!(
                    "{}: level {i} has {} of its {want} tiles",
                    self.path.display(),
                    lv.offsets.len()
                )));
            }
        }
        // the thumbnail: the smallest level as one JPEG strip
        let (tw, th) = self.levels.last().map(|l| (l.width, l.height)).unwrap_or((1, 1));
        let thumb = encode_jpeg_sized(&self.thumbnail, tw, th, self.quality)?;
        let thumb_at = self.append(&thumb)?;
        let label = match self.label.take() {
            Some((rgb, w, h, desc)) => {
                let jpeg = encode_jpeg_sized(&rgb, w, h, self.quality)?;
                Some((self.append(&jpeg)?, w, h, desc))
            }
            None => None,
        };
        if self.pos % 2 == 1 {
            self.append(&[0])?;
        }
        // IFD order as in Aperio files: level 0, thumbnail, reduced levels
        let first_ifd = self.pos;
        let n = self.levels.len();
        let ifd = self.build_ifd(Ifd::Level(0), self.pos, true);
        self.append(&ifd)?;
        let ifd = self.build_ifd(Ifd::Thumbnail(thumb_at), self.pos, n > 1 || label.is_some());
        self.append(&ifd)?;
        for i in 1..n {
            let ifd = self.build_ifd(Ifd::Level(i), self.pos, i + 1 < n || label.is_some());
            self.append(&ifd)?;
        }
        if let Some(((off, len), w, h, desc)) = label {
            let mut d = desc.into_bytes();
            d.push(0);
            let mut sw = self.software.clone().into_bytes();
            sw.push(0);
            let entries: Vec<(u16, u16, u32, Vec<u8>)> = vec![
                (254, LONG, 1, le32(&[1])),
                (256, LONG, 1, le32(&[w])),
                (257, LONG, 1, le32(&[h])),
                (258, SHORT, 3, le16(&[8, 8, 8])),
                (259, SHORT, 1, le16(&[7])),
                (262, SHORT, 1, le16(&[6])),
                (270, ASCII, d.len() as u32, d),
                (273, LONG, 1, le32(&[off])),
                (277, SHORT, 1, le16(&[3])),
                (278, LONG, 1, le32(&[h])),
                (279, LONG, 1, le32(&[len])),
                (284, SHORT, 1, le16(&[1])),
                (305, ASCII, sw.len() as u32, sw),
                (530, SHORT, 2, le16(&[2, 2])),
            ];
            let ifd = serialise_ifd(&entries, self.pos, false);
            self.append(&ifd)?;
        }
        self.out.flush().map_err(|e| DemoError::io(&self.path, e))?;
        let mut file = self.out.into_inner().map_err(|e| DemoError::io(&self.path, e.into_error()))?;
        file.seek(SeekFrom::Start(4)).map_err(|e| DemoError::io(&self.path, e))?;
        file.write_all(&(first_ifd as u32).to_le_bytes()).map_err(|e| DemoError::io(&self.path, e))?;
        file.sync_all().map_err(|e| DemoError::io(&self.path, e))?;
        Ok(())
    }

    /// Serialises the IFD of level `i` placed at file offset `at`, with its out-of-line values
    /// right after it; the next-IFD pointer points just past those values when `more`.
    fn build_ifd(&self, which: Ifd, at: u64, more: bool) -> Vec<u8> {
        let (i, lv) = match which {
            Ifd::Level(i) => (i, &self.levels[i]),
            Ifd::Thumbnail(_) => (self.levels.len() - 1, &self.levels[self.levels.len() - 1]),
        };
        let downsample = self.levels[0].width as f64 / lv.width as f64;
        let px_per_cm = 10_000.0 / (self.mpp * downsample);
        let res = rational(px_per_cm);
        let mut entries: Vec<(u16, u16, u32, Vec<u8>)> = vec![
            (254, LONG, 1, le32(&[u32::from(i > 0)])),
            (256, LONG, 1, le32(&[lv.width])),
            (257, LONG, 1, le32(&[lv.height])),
            (258, SHORT, 3, le16(&[8, 8, 8])),
            (259, SHORT, 1, le16(&[7])),
            (262, SHORT, 1, le16(&[6])),
        ];
        if matches!(which, Ifd::Level(0)) {
            let mut d = self.description.clone().into_bytes();
            d.push(0);
            entries.push((270, ASCII, d.len() as u32, d));
        }
        if let Ifd::Thumbnail((off, _)) = which {
            entries.push((273, LONG, 1, le32(&[off])));
        }
        let mut sw = self.software.clone().into_bytes();
        sw.push(0);
        entries.push((277, SHORT, 1, le16(&[3])));
        if let Ifd::Thumbnail((_, len)) = which {
            entries.push((278, LONG, 1, le32(&[lv.height])));
            entries.push((279, LONG, 1, le32(&[len])));
        }
        entries.extend([
            (282, RATIONAL, 1, le32(&[res.0, res.1])),
            (283, RATIONAL, 1, le32(&[res.0, res.1])),
            (284, SHORT, 1, le16(&[1])),
            (296, SHORT, 1, le16(&[3])),
            (305, ASCII, sw.len() as u32, sw),
        ]);
        if let Ifd::Level(_) = which {
            entries.extend([
                (322, SHORT, 1, le16(&[TILE as u16])),
                (323, SHORT, 1, le16(&[TILE as u16])),
                (324, LONG, lv.offsets.len() as u32, le32(&lv.offsets)),
                (325, LONG, lv.counts.len() as u32, le32(&lv.counts)),
            ]);
        }
        entries.push((530, SHORT, 2, le16(&[2, 2])));
        serialise_ifd(&entries, at, more)
    }
}

/// An IFD placed at file offset `at` (entries sorted by tag), its out-of-line values right
/// after it; the next-IFD pointer points just past those values when `more`.
fn serialise_ifd(entries: &[(u16, u16, u32, Vec<u8>)], at: u64, more: bool) -> Vec<u8> {
    let head = 2 + 12 * entries.len() + 4;
    let mut extra_at = at + head as u64;
    let mut ifd = Vec::with_capacity(head);
    let mut extra = Vec::new();
    ifd.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, typ, count, data) in entries {
        ifd.extend_from_slice(&tag.to_le_bytes());
        ifd.extend_from_slice(&typ.to_le_bytes());
        ifd.extend_from_slice(&count.to_le_bytes());
        if data.len() <= 4 {
            let mut v = data.clone();
            v.resize(4, 0);
            ifd.extend_from_slice(&v);
        } else {
            ifd.extend_from_slice(&(extra_at as u32).to_le_bytes());
            extra.extend_from_slice(data);
            extra_at += data.len() as u64;
            if data.len() % 2 == 1 {
                extra.push(0);
                extra_at += 1;
            }
        }
    }
    let next = if more { extra_at as u32 } else { 0 };
    ifd.extend_from_slice(&next.to_le_bytes());
    ifd.extend_from_slice(&extra);
    ifd
}

/// Which image an IFD describes.
#[derive(Clone, Copy)]
enum Ifd {
    /// Pyramid level `i`.
    Level(usize),
    /// The thumbnail strip at (offset, length).
    Thumbnail((u32, u32)),
}

const ASCII: u16 = 2;
const SHORT: u16 = 3;
const LONG: u16 = 4;
const RATIONAL: u16 = 5;

fn le16(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn le32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A positive value as a TIFF rational with denominator 1000.
fn rational(v: f64) -> (u32, u32) {
    let num = (v * 1000.0).round().clamp(1.0, u32::MAX as f64) as u32;
    (num, 1000)
}

fn vec_background() -> Vec<u8> {
    let mut v = vec![0u8; TILE_BYTES];
    super::texture::fill_background(&mut v);
    v
}

fn is_background(t: &[u8]) -> bool {
    t.chunks_exact(3).all(|p| p == BACKGROUND)
}

/// Encodes one 256×256 RGB tile as a baseline 4:2:0 JFIF stream.
pub fn encode_jpeg(tile: &[u8], quality: u8) -> Result<Vec<u8>, DemoError> {
    encode_jpeg_sized(tile, TILE, TILE, quality)
}

/// Encodes a `width × height` RGB image as a baseline 4:2:0 JFIF stream.
pub fn encode_jpeg_sized(rgb: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, DemoError> {
    let (w, h) = (
        u16::try_from(width).map_err(|_| DemoError::Jpeg(format!("width {width} above 65535")))?,
        u16::try_from(height).map_err(|_| DemoError::Jpeg(format!("height {height} above 65535")))?,
    );
    let mut buf = Vec::with_capacity(rgb.len() / 8);
    let mut enc = jpeg_encoder::Encoder::new(&mut buf, quality);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(rgb, w, h, jpeg_encoder::ColorType::Rgb).map_err(|e| DemoError::Jpeg(e.to_string()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes([b[o], b[o + 1]])
    }
    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
    }

    /// Parses every IFD: tag → (type, count, value-or-offset, values as u32 when numeric).
    fn ifds(b: &[u8]) -> Vec<std::collections::BTreeMap<u16, Vec<u32>>> {
        assert_eq!(&b[..4], &[b'I', b'I', 42, 0]);
        let mut out = Vec::new();
        let mut at = u32_at(b, 4) as usize;
        while at != 0 {
            let n = u16_at(b, at) as usize;
            let mut m = std::collections::BTreeMap::new();
            let mut last_tag = 0;
            for e in 0..n {
                let p = at + 2 + 12 * e;
                let (tag, typ, count) = (u16_at(b, p), u16_at(b, p + 2), u32_at(b, p + 4) as usize);
                assert!(tag > last_tag, "tags must be sorted ascending");
                last_tag = tag;
                let size = match typ {
                    2 => 1,
                    3 => 2,
                    4 => 4,
                    5 => 8,
                    t => panic!("unexpected type {t}"),
                } * count;
                let data = if size <= 4 { p + 8 } else { u32_at(b, p + 8) as usize };
                let vals: Vec<u32> = match typ {
                    3 => (0..count).map(|i| u16_at(b, data + 2 * i) as u32).collect(),
                    4 => (0..count).map(|i| u32_at(b, data + 4 * i)).collect(),
                    5 => (0..2 * count).map(|i| u32_at(b, data + 4 * i)).collect(),
                    _ => b[data..data + size].iter().map(|&c| c as u32).collect(),
                };
                m.insert(tag, vals);
            }
            out.push(m);
            at = u32_at(b, at + 2 + 12 * n) as usize;
        }
        out
    }

    fn write(width: u32, height: u32, levels: usize) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tif");
        let mut w = PyramidWriter::create(
            &path,
            PyramidOptions {
                width,
                height,
                n_levels: levels,
                mpp: 0.5,
                quality: 80,
                description: "Aperio Image Library test".into(),
                software: "test".into(),
            },
        )
        .unwrap();
        for ty in 0..w.tiles_y() {
            let row = (0..w.tiles_x())
                .map(|tx| {
                    let mut t = vec_background();
                    if (tx + ty) % 2 == 0 {
                        for (i, px) in t.chunks_exact_mut(3).enumerate() {
                            px.copy_from_slice(&[(i % 256) as u8, 100, (i / 256) as u8]);
                        }
                    }
                    t
                })
                .collect();
            w.push_row(row).unwrap();
        }
        w.finish().unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn pyramid_layout_is_valid_tiff() {
        // 1025 px: level 1 is 256 px wide, one tile, though level 0 has 5 tile columns
        for (w, h) in [(1025u32, 1300u32), (1024, 1024), (2000, 1100)] {
            let b = write(w, h, 3);
            let d = ifds(&b);
            assert_eq!(d.len(), 4, "3 levels + thumbnail");
            let dims = level_dims(w, h, 3);
            let levels = [&d[0], &d[2], &d[3]];
            for (l, ifd) in levels.iter().enumerate() {
                let (lw, lh) = dims[l];
                assert_eq!(ifd[&256], vec![lw]);
                assert_eq!(ifd[&257], vec![lh]);
                assert_eq!(ifd[&259], vec![7]);
                assert_eq!(ifd[&262], vec![6]);
                assert_eq!(ifd[&530], vec![2, 2]);
                assert_eq!(ifd[&254], vec![u32::from(l > 0)]);
                let n = (lw.div_ceil(256) * lh.div_ceil(256)) as usize;
                assert_eq!(ifd[&324].len(), n, "level {l} of {w}x{h}");
                for (&o, &c) in ifd[&324].iter().zip(&ifd[&325]) {
                    let (o, c) = (o as usize, c as usize);
                    assert!(o + c <= b.len());
                    assert_eq!(&b[o..o + 2], &[0xff, 0xd8], "tile starts with SOI");
                    assert_eq!(&b[o + c - 2..o + c], &[0xff, 0xd9], "tile ends with EOI");
                }
            }
            assert!(d[0].contains_key(&270) && !d[2].contains_key(&270));
            // resolution: 20000 px/cm at level 0, 5000 at level 1 (4×)
            assert_eq!(d[0][&282], vec![20_000_000, 1000]);
            let x1 = d[2][&282][0] as f64 / 1000.0;
            assert!((x1 - 20_000.0 * dims[1].0 as f64 / w as f64).abs() < 1.0);
            // thumbnail: one strip of the smallest level
            let th = &d[1];
            assert_eq!(th[&256], vec![dims[2].0]);
            assert_eq!(th[&278], vec![dims[2].1]);
            assert!(!th.contains_key(&322));
            let (o, c) = (th[&273][0] as usize, th[&279][0] as usize);
            assert_eq!(&b[o..o + 2], &[0xff, 0xd8]);
            assert_eq!(&b[o + c - 2..o + c], &[0xff, 0xd9]);
        }
    }

    #[test]
    fn background_tiles_are_stored_once() {
        let b = write(2048, 1024, 3);
        let d = ifds(&b);
        let offs = &d[0][&324];
        let mut uniq = offs.clone();
        uniq.sort();
        uniq.dedup();
        // checkerboard: half the 32 tiles are background and share one stream
        assert_eq!(uniq.len(), 16 + 1);
    }

    #[test]
    fn wrong_row_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PyramidWriter::create(
            &dir.path().join("t.tif"),
            PyramidOptions {
                width: 1024,
                height: 1024,
                n_levels: 3,
                mpp: 0.5,
                quality: 80,
                description: String::new(),
                software: String::new(),
            },
        )
        .unwrap();
        let e = w.push_row(vec![vec_background(); 3]).unwrap_err();
        assert!(e.to_string().contains("expected a row of 4 tiles"), "{e}");
        let e = PyramidWriter::finish(w).unwrap_err();
        assert!(e.to_string().contains("level 0 has 0 of its 16 tiles"), "{e}");
    }
}
