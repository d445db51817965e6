//! Pure-Rust TIFF reader for the slides OpenSlide 3.4 cannot open: OME-TIFF (pyramids as
//! SubIFDs or as a chain of ever-smaller IFDs; µm/px from the OME-XML `PhysicalSizeX/Y`) and
//! plain tiled or stripped RGB TIFFs.
//!
//! The `tiff` crate parses the directories once at open; pixel data are then read with
//! positioned reads (`pread`) and decoded here, so any number of threads can read one
//! [`TiffSlide`] at once. JPEG chunks are handed to `zune-jpeg` *with* colour conversion: the
//! JPEG stream itself says whether it holds YCbCr (the usual case, even when the TIFF tags
//! claim `Photometric = RGB`, as in Bio-Formats' OME-TIFFs) or RGB (component ids `R`,`G`,`B`),
//! exactly as libjpeg decides for OpenSlide. The `tiff` crate's own chunk decoder returns the
//! raw YCbCr samples for such files, which is why it is not used for pixels.
//!
//! Supported: 8-bit chunky RGB, RGBA or grey; compression none, JPEG, LZW, Deflate (with or
//! without the horizontal predictor). Anything else is refused at open with the reason.
use super::error::{Result, SlideError};
use super::meta::{mpp_from_tiff_resolution, positive, LevelInfo, MppSource};
use image::RgbImage;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tiff::decoder::{ifd::Value, Decoder, Limits};
use tiff::tags::{IfdPointer, Tag};

/// Bytes of decoded chunks kept per slide (a 512×512 RGB chunk is 768 KiB).
const CHUNK_CACHE_BYTES: usize = 48 << 20;

/// One pyramid level of a TIFF slide.
#[derive(Debug)]
struct TiffLevel {
    width: u64,
    height: u64,
    /// Chunk (tile or strip) size; strips are chunks as wide as the image.
    chunk_w: u64,
    chunk_h: u64,
    across: u64,
    offsets: Vec<u64>,
    counts: Vec<u64>,
    compression: u16,
    photometric: u16,
    predictor: u16,
    samples: u16,
    jpeg_tables: Option<Vec<u8>>,
    downsample: f64,
    /// Tiles (not strips).
    is_tiled: bool,
}

/// What the first directory says about the whole file.
#[derive(Debug, Default)]
struct FileInfo {
    ome: bool,
    mpp: Option<(f64, f64)>,
    mpp_source: Option<MppSource>,
    objective_power: Option<f64>,
}

/// A TIFF or OME-TIFF slide read without OpenSlide.
pub(crate) struct TiffSlide {
    path: PathBuf,
    file: File,
    levels: Vec<TiffLevel>,
    info: FileInfo,
    cache: Mutex<ChunkCache>,
}

/// First-in first-out cache of decoded chunks, bounded in bytes.
#[derive(Default)]
struct ChunkCache {
    map: HashMap<(usize, u64), Arc<Vec<u8>>>,
    order: VecDeque<(usize, u64)>,
    bytes: usize,
}

impl std::fmt::Debug for TiffSlide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiffSlide").field("path", &self.path).field("levels", &self.levels.len()).finish()
    }
}

/// True when the file starts with a TIFF or BigTIFF header.
pub(crate) fn is_tiff(path: &Path) -> bool {
    let mut head = [0u8; 4];
    match File::open(path).and_then(|mut f| f.read_exact(&mut head)) {
        Ok(()) => matches!(head, [b'I', b'I', 42, 0] | [b'M', b'M', 0, 42] | [b'I', b'I', 43, 0] | [b'M', b'M', 0, 43]),
        Err(_) => false,
    }
}

/// True when the first directory's ImageDescription holds OME-XML.
pub(crate) fn is_ome_tiff(path: &Path) -> bool {
    if !is_tiff(path) {
        return false;
    }
    let Ok(f) = File::open(path) else {
        return false;
    };
    let Ok(mut dec) = Decoder::new(BufReader::new(f)) else {
        return false;
    };
    matches!(
        dec.find_tag(Tag::ImageDescription),
        Ok(Some(Value::Ascii(s))) if is_ome_description(&s)
    )
}

/// Checks that every tag value and every strip or tile of every directory (main chain and
/// SubIFDs) lies inside the file (the cheap test that catches a truncated TIFF-based slide before any
/// pixel is read).
/// Directories the `tiff` crate cannot parse for other reasons (vendor quirks that OpenSlide
/// handles) are not judged here.
pub(crate) fn check_tiff_extents(path: &Path) -> Result<()> {
    let file = File::open(path).map_err(|e| SlideError::Io { path: path.to_path_buf(), source: e })?;
    let file_len = file.metadata().map_err(|e| SlideError::Io { path: path.to_path_buf(), source: e })?.len();
    let mut dec = match Decoder::new(BufReader::new(file)) {
        Ok(d) => d.with_limits(Limits::unlimited()),
        Err(tiff::TiffError::IoError(e)) => return Err(corrupt(path, format!("cannot read the TIFF structure: {e}"))),
        Err(_) => return Ok(()),
    };
    let ptrs = match directory_pointers(&mut dec) {
        Ok(p) => p,
        Err(tiff::TiffError::IoError(e)) => return Err(corrupt(path, format!("a directory is unreadable: {e}"))),
        Err(_) => return Ok(()),
    };
    for (n, (p, _)) in ptrs.into_iter().enumerate() {
        let n = n + 1;
        let dir = match dec.read_directory(p) {
            Ok(d) => d,
            Err(tiff::TiffError::IoError(e)) => {
                return Err(corrupt(path, format!("directory {} unreadable: {e}", n - 1)))
            }
            Err(_) => return Ok(()),
        };
        // Every tag value (descriptions, JPEG tables, offset arrays) must be readable.
        for item in dec.read_directory_tags(&dir).tag_iter() {
            if let Err(tiff::TiffError::IoError(e)) = item {
                return Err(corrupt(path, format!("directory {} has tag values past the end of the file: {e}", n - 1)));
            }
        }
        let mut t = dec.read_directory_tags(&dir);
        for (off_tag, cnt_tag) in [(Tag::TileOffsets, Tag::TileByteCounts), (Tag::StripOffsets, Tag::StripByteCounts)] {
            let mut get = |tag| t.find_tag(tag).ok().flatten().and_then(|v| v.into_u64_vec().ok());
            if let (Some(offs), Some(cnts)) = (get(off_tag), get(cnt_tag)) {
                for (k, (o, c)) in offs.iter().zip(&cnts).enumerate() {
                    if *c > 0 && o.saturating_add(*c) > file_len {
                        return Err(corrupt(
                            path,
                            format!(
                                "directory {} chunk {k} ends at byte {} but the file has {file_len} bytes",
                                n - 1,
                                o.saturating_add(*c)
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> SlideError {
    SlideError::Corrupt { path: path.to_path_buf(), detail: what.to_string() }
}

/// Directories of a TIFF: the main chain in order, each followed by its SubIFDs, as
/// `(pointer, is_sub_ifd_of_the_first_directory)`; at most 256 chain entries (cycles end the
/// walk).
fn directory_pointers(dec: &mut Decoder<BufReader<File>>) -> tiff::TiffResult<Vec<(IfdPointer, bool)>> {
    let mut out = Vec::new();
    let mut next = dec.ifd_pointer();
    let mut chain = 0;
    while let Some(p) = next {
        if chain >= 256 || out.iter().any(|(q, _): &(IfdPointer, bool)| q.0 == p.0) {
            break;
        }
        out.push((p, false));
        let dir = dec.read_directory(p)?;
        next = dir.next();
        let subs = dec.read_directory_tags(&dir).find_tag(Tag::SubIfd).ok().flatten();
        if let Some(v) = subs.and_then(|v| v.into_u64_vec().ok()) {
            out.extend(v.into_iter().map(|o| (IfdPointer(o), chain == 0)));
        }
        chain += 1;
    }
    Ok(out)
}

fn value_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Rational(n, d) if *d != 0 => Some(*n as f64 / *d as f64),
        Value::Double(x) => Some(*x),
        Value::Float(x) => Some(*x as f64),
        Value::Unsigned(x) => Some(*x as f64),
        Value::Short(x) => Some(*x as f64),
        Value::List(l) => l.first().and_then(value_f64),
        _ => None,
    }
}

/// µm per one unit of an OME length unit (`µm` when absent, the OME default).
fn um_per_unit(unit: Option<&str>) -> Option<f64> {
    Some(match unit.unwrap_or("µm") {
        "µm" | "um" | "micron" | "\u{3bc}m" => 1.0,
        "nm" => 1e-3,
        "mm" => 1e3,
        "cm" => 1e4,
        "m" => 1e6,
        _ => return None,
    })
}

/// Namespaces of the OME schemas (`…/OME/2016-06` and earlier years).
const OME_NS: &str = "http://www.openmicroscopy.org/Schemas/OME/";

/// True when an ImageDescription holds OME-XML: its root element is `OME` (with or without a
/// namespace prefix, after the XML declaration and comments).
fn is_ome_description(desc: &str) -> bool {
    let mut rest = desc.trim_start();
    // skip `<?xml …?>`, `<!-- … -->` and `<!DOCTYPE …>` before the root element
    while let Some(r) = rest.strip_prefix("<?").or_else(|| rest.strip_prefix("<!")) {
        let end = if r.starts_with("--") {
            r.find("-->").map(|i| i + 3)
        } else {
            // a DOCTYPE's internal subset `[…]` may hold `>`
            let from = match (r.find('['), r.find('>')) {
                (Some(b), Some(g)) if b < g => r.find(']').unwrap_or(r.len()),
                _ => 0,
            };
            r[from..].find('>').map(|i| from + i + 1)
        };
        let Some(end) = end else {
            return false;
        };
        rest = r[end..].trim_start();
    }
    let Some(tag) = rest.strip_prefix('<') else {
        return false;
    };
    let name = tag.split(|c: char| c.is_whitespace() || c == '>' || c == '/').next().unwrap_or("");
    name.rsplit(':').next() == Some("OME")
}

/// An OME element named `name`: in an OME namespace, or in none (hand-written files).
fn is_ome_element(node: &roxmltree::Node, name: &str) -> bool {
    node.is_element()
        && node.tag_name().name() == name
        && node.tag_name().namespace().is_none_or(|ns| ns.starts_with(OME_NS))
}

/// µm/px (x, y) and objective power, as read from OME-XML.
type OmeFacts = (Option<(f64, f64)>, Option<f64>);

/// µm/px and objective power from the OME-XML of the first image: the first `Pixels` element's
/// `PhysicalSizeX/Y` (with their units) and the first `Objective`'s `NominalMagnification`.
/// Namespace prefixes, either quote style, entities and character references are read as XML
/// reads them.
///
/// # Errors
/// [`SlideError::Corrupt`] naming `path` and the line:column when `xml` is not well-formed.
fn parse_ome(path: &Path, xml: &str) -> Result<OmeFacts> {
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..roxmltree::ParsingOptions::default() };
    let doc = roxmltree::Document::parse_with_options(xml, options).map_err(|e| {
        corrupt(path, format!("the OME-XML of the first directory's ImageDescription is not well-formed XML: {e}"))
    })?;
    let first = |name: &str| doc.descendants().find(|n| is_ome_element(n, name));
    let mut mpp = None;
    if let Some(px) = first("Pixels") {
        let size = |axis: &str| {
            let v = positive(px.attribute(format!("PhysicalSize{axis}").as_str())?)?;
            Some(v * um_per_unit(px.attribute(format!("PhysicalSize{axis}Unit").as_str()))?)
        };
        if let (Some(x), Some(y)) = (size("X"), size("Y")) {
            mpp = Some((x, y));
        }
    }
    let objective = first("Objective").and_then(|o| o.attribute("NominalMagnification")).and_then(positive);
    Ok((mpp, objective))
}

impl TiffSlide {
    /// Opens a TIFF: parses every directory of the pyramid (the caller checks the file's
    /// extents with [`check_tiff_extents`]).
    pub(crate) fn open(path: &Path) -> Result<TiffSlide> {
        let file = File::open(path).map_err(|e| SlideError::Io { path: path.to_path_buf(), source: e })?;
        let reader =
            BufReader::new(file.try_clone().map_err(|e| SlideError::Io { path: path.to_path_buf(), source: e })?);
        let mut dec = Decoder::new(reader).map_err(|e| tiff_open_error(path, e))?.with_limits(Limits::unlimited());
        let first = dec.ifd_pointer().ok_or_else(|| corrupt(path, "the TIFF has no image directory"))?;

        let mut info = FileInfo::default();
        if let Ok(Some(Value::Ascii(desc))) = dec.find_tag(Tag::ImageDescription) {
            if is_ome_description(&desc) {
                info.ome = true;
                let (mpp, obj) = parse_ome(path, &desc)?;
                if mpp.is_some() {
                    info.mpp = mpp;
                    info.mpp_source = Some(MppSource::Vendor);
                }
                info.objective_power = obj;
            }
        }
        if info.mpp.is_none() {
            let unit =
                dec.find_tag(Tag::ResolutionUnit).ok().flatten().and_then(|v| value_f64(&v)).unwrap_or(2.0) as u16;
            let mut res = |t| dec.find_tag(t).ok().flatten().and_then(|v| value_f64(&v));
            let (xr, yr) = (res(Tag::XResolution), res(Tag::YResolution));
            if let (Some(x), Some(y)) =
                (xr.and_then(|r| mpp_from_tiff_resolution(r, unit)), yr.and_then(|r| mpp_from_tiff_resolution(r, unit)))
            {
                info.mpp = Some((x, y));
                info.mpp_source = Some(MppSource::TiffResolution);
            }
        }

        // Level 0 and its SubIFDs; otherwise the main chain's ever-smaller images.
        let mut levels = vec![read_level(path, &mut dec, first)?];
        let all = directory_pointers(&mut dec).map_err(|e| corrupt(path, e))?;
        let subs: Vec<IfdPointer> = all.iter().filter(|(_, s)| *s).map(|(p, _)| *p).collect();
        let candidates: Vec<IfdPointer> = if subs.is_empty() {
            all.iter().filter(|(p, s)| !*s && p.0 != first.0).map(|(p, _)| *p).collect()
        } else {
            subs
        };
        for p in candidates {
            // Directories that are no pyramid level (labels, macros, other planes) are skipped.
            let Ok(level) = read_level(path, &mut dec, p) else {
                continue;
            };
            let base = &levels[0];
            let last = levels.last().map(|l| l.width).unwrap_or(u64::MAX);
            let (dx, dy) = (base.width as f64 / level.width as f64, base.height as f64 / level.height as f64);
            if level.width < last && dx > 1.0 && (dx - dy).abs() / dx < 0.02 {
                levels.push(TiffLevel { downsample: (dx + dy) / 2.0, ..level });
            }
        }
        Ok(TiffSlide { path: path.to_path_buf(), file, levels, info, cache: Mutex::new(ChunkCache::default()) })
    }

    /// A pixel reader for a TIFF-based slide that OpenSlide described: each of OpenSlide's
    /// `levels` (width, height, downsample) is matched to a tiled directory of exactly that size
    /// (main chain or SubIFDs). `None` when any level has no such directory or uses an encoding
    /// this reader does not decode (JPEG 2000, …); the caller then reads through OpenSlide.
    pub(crate) fn for_levels(path: &Path, levels: &[LevelInfo]) -> Option<TiffSlide> {
        let file = File::open(path).ok()?;
        let mut dec = Decoder::new(BufReader::new(file.try_clone().ok()?)).ok()?.with_limits(Limits::unlimited());
        let ptrs = directory_pointers(&mut dec).ok()?;
        let dirs: Vec<TiffLevel> = ptrs.into_iter().filter_map(|(p, _)| read_level(path, &mut dec, p).ok()).collect();
        let mut out = Vec::with_capacity(levels.len());
        for l in levels {
            let i = dirs.iter().position(|d| d.is_tiled && d.width == l.width && d.height == l.height)?;
            let d = &dirs[i];
            out.push(TiffLevel {
                offsets: d.offsets.clone(),
                counts: d.counts.clone(),
                jpeg_tables: d.jpeg_tables.clone(),
                downsample: l.downsample,
                ..*d
            });
        }
        Some(TiffSlide {
            path: path.to_path_buf(),
            file,
            levels: out,
            info: FileInfo::default(),
            cache: Mutex::new(ChunkCache::default()),
        })
    }

    /// `ome-tiff` or `tiff`.
    pub(crate) fn vendor(&self) -> &'static str {
        if self.info.ome {
            "ome-tiff"
        } else {
            "tiff"
        }
    }

    pub(crate) fn levels(&self) -> Vec<LevelInfo> {
        self.levels.iter().map(|l| LevelInfo { width: l.width, height: l.height, downsample: l.downsample }).collect()
    }

    pub(crate) fn mpp(&self) -> (Option<(f64, f64)>, Option<MppSource>) {
        (self.info.mpp, self.info.mpp_source)
    }

    pub(crate) fn objective_power(&self) -> Option<f64> {
        self.info.objective_power
    }

    /// Reads `w`×`h` pixels of `level` whose top-left corner is (`x0`, `y0`) in level-0
    /// coordinates; pixels outside the image are white.
    pub(crate) fn read_region(&self, level: usize, x0: i64, y0: i64, w: u32, h: u32) -> Result<RgbImage> {
        let l = &self.levels[level];
        let lx = (x0 as f64 / l.downsample).floor() as i64;
        let ly = (y0 as f64 / l.downsample).floor() as i64;
        let mut out = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
        let (x_end, y_end) = ((lx + w as i64).min(l.width as i64), (ly + h as i64).min(l.height as i64));
        let (xs, ys) = (lx.max(0), ly.max(0));
        if xs >= x_end || ys >= y_end {
            return Ok(out);
        }
        let (cw, ch) = (l.chunk_w as i64, l.chunk_h as i64);
        let out_w = w as usize;
        let buf: &mut [u8] = &mut out;
        for cy in ys / ch..=(y_end - 1) / ch {
            for cx in xs / cw..=(x_end - 1) / cw {
                let idx = (cy as u64) * l.across + cx as u64;
                let chunk = self.chunk(level, idx)?;
                let (gx0, gy0) = (cx * cw, cy * ch);
                let rows_in_chunk = (chunk.len() / (cw as usize * 3)) as i64;
                let x_a = xs.max(gx0);
                let x_b = x_end.min(gx0 + cw);
                let y_a = ys.max(gy0);
                let y_b = y_end.min(gy0 + rows_in_chunk.min(ch));
                for y in y_a..y_b {
                    let src = ((y - gy0) * cw + (x_a - gx0)) as usize * 3;
                    let dst = ((y - ly) as usize * out_w + (x_a - lx) as usize) * 3;
                    let n = (x_b - x_a) as usize * 3;
                    buf[dst..dst + n].copy_from_slice(&chunk[src..src + n]);
                }
            }
        }
        Ok(out)
    }

    /// The RGB pixels of one chunk, `chunk_w` wide (rows past the data are absent).
    fn chunk(&self, level: usize, idx: u64) -> Result<Arc<Vec<u8>>> {
        if let Some(c) = self.cache.lock().ok().and_then(|c| c.map.get(&(level, idx)).cloned()) {
            return Ok(c);
        }
        let decoded = Arc::new(self.decode_chunk(level, idx)?);
        if let Ok(mut c) = self.cache.lock() {
            if c.map.insert((level, idx), decoded.clone()).is_none() {
                c.order.push_back((level, idx));
                c.bytes += decoded.len();
            }
            while c.bytes > CHUNK_CACHE_BYTES {
                let Some(k) = c.order.pop_front() else { break };
                if let Some(v) = c.map.remove(&k) {
                    c.bytes -= v.len();
                }
            }
        }
        Ok(decoded)
    }

    fn decode_chunk(&self, level: usize, idx: u64) -> Result<Vec<u8>> {
        let l = &self.levels[level];
        let path = &self.path;
        let i = idx as usize;
        let (Some(&off), Some(&len)) = (l.offsets.get(i), l.counts.get(i)) else {
            return Err(corrupt(path, format!("level {level} has no chunk {idx}")));
        };
        let (cw, ch) = (l.chunk_w as usize, l.chunk_h as usize);
        if len == 0 {
            // A sparse chunk: nothing scanned there.
            return Ok(vec![255; cw * ch * 3]);
        }
        let mut raw = vec![0u8; len as usize];
        self.file.read_exact_at(&mut raw, off).map_err(|e| corrupt(path, format!("level {level} chunk {idx}: {e}")))?;
        let bad = |what: String| corrupt(path, format!("level {level} chunk {idx}: {what}"));
        let samples = l.samples as usize;
        let plain: Vec<u8> = match l.compression {
            7 => return decode_jpeg(&raw, l.jpeg_tables.as_deref(), l.photometric, cw, ch).map_err(bad),
            1 => raw,
            5 => weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                .decode(&raw)
                .map_err(|e| bad(format!("LZW: {e}")))?,
            8 | 32946 => {
                let mut v = Vec::with_capacity(cw * ch * samples);
                flate2::read::ZlibDecoder::new(&raw[..])
                    .read_to_end(&mut v)
                    .map_err(|e| bad(format!("Deflate: {e}")))?;
                v
            }
            c => return Err(bad(format!("compression {c} is not supported"))),
        };
        let rows = (plain.len() / (cw * samples)).min(ch);
        let mut plain = plain;
        plain.truncate(rows * cw * samples);
        if l.predictor == 2 {
            for row in plain.chunks_mut(cw * samples) {
                for k in samples..row.len() {
                    row[k] = row[k].wrapping_add(row[k - samples]);
                }
            }
        }
        Ok(match samples {
            3 => plain,
            1 => plain.iter().flat_map(|&g| [g, g, g]).collect(),
            _ => plain
                .chunks_exact(samples)
                .flat_map(|p| {
                    // Straight alpha over white.
                    let a = p[3] as u32;
                    let mix = |c: u8| ((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
                    [mix(p[0]), mix(p[1]), mix(p[2])]
                })
                .collect(),
        })
    }
}

/// Whether a JPEG stream declares its colour space itself (a JFIF APP0 or an Adobe APP14
/// segment before the first scan).
fn jpeg_declares_colorspace(data: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= data.len() && data[i] == 0xFF {
        let m = data[i + 1];
        if m == 0xFF {
            i += 1;
            continue;
        }
        if m == 0xDA || m == 0xD9 {
            break;
        }
        if m == 0xD8 || m == 0x01 || (0xD0..=0xD7).contains(&m) {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        let body = &data[(i + 4).min(data.len())..(i + 2 + len).min(data.len())];
        if (m == 0xE0 && body.starts_with(b"JFIF")) || (m == 0xEE && body.starts_with(b"Adobe")) {
            return true;
        }
        i += 2 + len;
    }
    false
}

/// Decodes one JPEG chunk to RGB, `cw`×`ch` (or fewer rows for a short last strip).
///
/// Colour: a stream with a JFIF or Adobe marker is decoded as it declares (JFIF means YCbCr:
/// Bio-Formats' OME-TIFFs are tagged RGB but hold such streams). A bare stream in a directory
/// tagged `Photometric = RGB` holds RGB samples and is not converted (Aperio's "JPEG/RGB");
/// otherwise the JPEG default applies (three components are YCbCr unless their ids spell
/// `R`,`G`,`B`). This is libjpeg's behaviour as OpenSlide drives it.
fn decode_jpeg(
    raw: &[u8],
    tables: Option<&[u8]>,
    photometric: u16,
    cw: usize,
    ch: usize,
) -> std::result::Result<Vec<u8>, String> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    // Abbreviated streams: the tables (minus their EOI) followed by the chunk (minus its SOI).
    let data: Vec<u8> = match tables {
        Some(t) if t.len() > 4 && raw.len() > 2 => {
            let mut d = Vec::with_capacity(t.len() + raw.len());
            d.extend_from_slice(&t[..t.len() - 2]);
            d.extend_from_slice(&raw[2..]);
            d
        }
        _ => raw.to_vec(),
    };
    let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(&data[..]), opts);
    if photometric == 2 && !jpeg_declares_colorspace(&data) {
        dec.decode_headers().map_err(|e| format!("JPEG: {e:?}"))?;
        if let Some(cs) = dec.input_colorspace() {
            if cs.num_components() == 3 {
                dec.set_options(opts.jpeg_set_out_colorspace(cs));
            }
        }
    }
    let px = dec.decode().map_err(|e| format!("JPEG: {e:?}"))?;
    let info = dec.info().ok_or("JPEG: no header")?;
    let (w, h) = (info.width as usize, info.height as usize);
    if w == cw && h >= ch {
        return Ok(px[..cw * ch * 3].to_vec());
    }
    if w < cw || (h < ch && w != cw) {
        // Pad to the chunk size with white (some writers store clipped edge tiles).
        let mut out = vec![255u8; cw * ch * 3];
        for y in 0..h.min(ch) {
            let n = w.min(cw) * 3;
            out[y * cw * 3..y * cw * 3 + n].copy_from_slice(&px[y * w * 3..y * w * 3 + n]);
        }
        return Ok(out);
    }
    // Wider than the chunk: crop.
    let mut out = Vec::with_capacity(cw * h.min(ch) * 3);
    for y in 0..h.min(ch) {
        out.extend_from_slice(&px[y * w * 3..y * w * 3 + cw * 3]);
    }
    Ok(out)
}

fn tiff_open_error(path: &Path, e: tiff::TiffError) -> SlideError {
    match e {
        tiff::TiffError::IoError(io) => corrupt(path, format!("cannot read the TIFF structure: {io}")),
        other => SlideError::NotASlide { path: path.to_path_buf(), detail: format!("the TIFF reader says: {other}") },
    }
}

/// Reads one directory as a pyramid level (downsample filled in by the caller).
fn read_level(path: &Path, dec: &mut Decoder<BufReader<File>>, p: IfdPointer) -> Result<TiffLevel> {
    let dir = dec.read_directory(p).map_err(|e| corrupt(path, e))?;
    let mut t = dec.read_directory_tags(&dir);
    // Aperio-style label and macro images (they carry the patient's name) are never a level:
    // no pixel of them is ever read.
    if let Ok(Some(Value::Ascii(desc))) = t.find_tag(Tag::ImageDescription) {
        // Aperio names them by the first word of the second line (`…\nlabel 415x422`)
        let word = |line: &str| {
            line.trim_start().split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("").to_ascii_lowercase()
        };
        let named = desc.lines().take(2).map(word).find(|w| w == "label" || w == "macro");
        if let Some(first) = named {
            return Err(SlideError::NotASlide {
                path: path.to_path_buf(),
                detail: format!("TIFF directory is the slide's {first} image, not a pyramid level"),
            });
        }
    }
    let mut num = |tag: Tag| -> Option<u64> { t.find_tag(tag).ok().flatten().and_then(|v| v.into_u64().ok()) };
    let width = num(Tag::ImageWidth).ok_or_else(|| corrupt(path, "directory without ImageWidth"))?;
    let height = num(Tag::ImageLength).ok_or_else(|| corrupt(path, "directory without ImageLength"))?;
    let compression = num(Tag::Compression).unwrap_or(1) as u16;
    let photometric = num(Tag::PhotometricInterpretation).unwrap_or(2) as u16;
    let samples = num(Tag::SamplesPerPixel).unwrap_or(1) as u16;
    let planar = num(Tag::PlanarConfiguration).unwrap_or(1);
    let predictor = num(Tag::Predictor).unwrap_or(1) as u16;
    let tile_w = num(Tag::TileWidth);
    let tile_h = num(Tag::TileLength);
    let rows_per_strip = num(Tag::RowsPerStrip);
    let bits =
        t.find_tag(Tag::BitsPerSample).ok().flatten().and_then(|v| v.into_u64_vec().ok()).unwrap_or_else(|| vec![1]);
    let unsupported = |what: String| SlideError::NotASlide {
        path: path.to_path_buf(),
        detail: format!("TIFF image {width}×{height}: {what}"),
    };
    if bits.iter().any(|&b| b != 8) {
        return Err(unsupported(format!("{bits:?} bits per sample (expected 8)")));
    }
    if planar != 1 {
        return Err(unsupported("planar (separate) sample layout".into()));
    }
    let ok_colour = match (compression, photometric, samples) {
        (7, 2 | 6, 3) | (7, 1, 1) => true,
        (_, 2, 3 | 4) | (_, 1, 1) => compression != 7,
        _ => false,
    };
    if !ok_colour {
        return Err(unsupported(format!(
            "photometric {photometric} with {samples} samples and compression {compression}"
        )));
    }
    if !matches!(compression, 1 | 5 | 7 | 8 | 32946) {
        return Err(unsupported(format!("compression {compression} is not supported")));
    }
    let is_tiled = tile_w.is_some() && tile_h.is_some();
    let (chunk_w, chunk_h, off_tag, cnt_tag) = match (tile_w, tile_h) {
        (Some(tw), Some(th)) => (tw, th, Tag::TileOffsets, Tag::TileByteCounts),
        _ => (width, rows_per_strip.unwrap_or(height).min(height), Tag::StripOffsets, Tag::StripByteCounts),
    };
    if chunk_w == 0 || chunk_h == 0 || width == 0 || height == 0 {
        return Err(corrupt(path, "zero image or chunk size"));
    }
    let vec_of = |t: &mut tiff::decoder::IfdDecoder<'_>, tag: Tag| -> Option<Vec<u64>> {
        t.find_tag(tag).ok().flatten().and_then(|v| v.into_u64_vec().ok())
    };
    let offsets = vec_of(&mut t, off_tag).ok_or_else(|| corrupt(path, "no chunk offsets"))?;
    let counts = vec_of(&mut t, cnt_tag).ok_or_else(|| corrupt(path, "no chunk byte counts"))?;
    let across = width.div_ceil(chunk_w);
    let expected = across * height.div_ceil(chunk_h);
    if (offsets.len() as u64) < expected || (counts.len() as u64) < expected {
        return Err(corrupt(
            path,
            format!(
                "{width}×{height} image needs {expected} chunks, the directory lists {}",
                offsets.len().min(counts.len())
            ),
        ));
    }
    let jpeg_tables = if compression == 7 {
        t.find_tag(Tag::JPEGTables).ok().flatten().and_then(|v| match v {
            Value::List(_) | Value::Byte(_) => v.into_u8_vec().ok(),
            _ => None,
        })
    } else {
        None
    };
    Ok(TiffLevel {
        width,
        height,
        chunk_w,
        chunk_h,
        across,
        offsets,
        counts,
        compression,
        photometric,
        predictor,
        samples,
        jpeg_tables,
        downsample: 1.0,
        is_tiled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ome_xml_sizes_and_units() {
        let p = Path::new("a.ome.tif");
        let xml = r#"<OME><Instrument><Objective ID="O:0" NominalMagnification="40.0"/></Instrument><Image ID="I"><Pixels ID="P" PhysicalSizeX="0.25" PhysicalSizeXUnit="nm" PhysicalSizeY="0.5" SizeX="3"/></Image></OME>"#;
        let (mpp, obj) = parse_ome(p, xml).unwrap();
        let (x, y) = mpp.unwrap();
        assert!((x - 0.00025).abs() < 1e-15 && (y - 0.5).abs() < 1e-15);
        assert_eq!(obj, Some(40.0));
        assert_eq!(parse_ome(p, "<OME><Pixels ID=\"P\" SizeX=\"3\"/></OME>").unwrap().0, None);
    }

    #[test]
    fn ome_xml_with_prefixes_quotes_and_entities() {
        let p = Path::new("a.ome.tif");
        // a namespace prefix, single quotes, a character reference for µ
        let xml = "<?xml version='1.0'?><ome:OME xmlns:ome='http://www.openmicroscopy.org/Schemas/OME/2016-06'>\
                   <ome:Instrument><ome:Objective ID='O:0' NominalMagnification='20'/></ome:Instrument>\
                   <ome:Image ID='I'><ome:Pixels ID='P' PhysicalSizeX='0.5' PhysicalSizeXUnit='&#181;m' \
                   PhysicalSizeY='0.25'/></ome:Image></ome:OME>";
        assert!(is_ome_description(xml));
        assert_eq!(parse_ome(p, xml).unwrap(), (Some((0.5, 0.25)), Some(20.0)));
        // an entity declared in the DTD, a predefined entity in another attribute
        let xml = concat!(
            r#"<!DOCTYPE OME [<!ENTITY mpp "0.5">]><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">"#,
            r#"<Image ID="I &amp; J"><Pixels PhysicalSizeX="&mpp;" PhysicalSizeY="&mpp;"/></Image></OME>"#
        );
        assert!(is_ome_description(xml));
        assert_eq!(parse_ome(p, xml).unwrap().0, Some((0.5, 0.5)));
        // a `Pixels` of another namespace is not the image's
        let xml = r#"<OME xmlns:x="urn:other"><x:Pixels PhysicalSizeX="9" PhysicalSizeY="9"/></OME>"#;
        assert_eq!(parse_ome(p, xml).unwrap().0, None);
        assert!(!is_ome_description("<TIFF><OMEGA/></TIFF>"));
        assert!(!is_ome_description("Aperio Image Library v12\n1000x1000"));
    }

    #[test]
    fn malformed_ome_xml_names_the_file_and_position() {
        let e = parse_ome(Path::new("dir/bad.ome.tif"), r#"<OME><Pixels PhysicalSizeX="0.5"></OME>"#).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("dir/bad.ome.tif") && msg.contains("not well-formed XML") && msg.contains("1:"), "{msg}");
    }
}
