//! Tissue rendering for the demo slides: one 256×256 level-0 tile at a time, from a
//! [`SlidePlan`] (tissue pieces, patient look, stain) and nothing else.
//!
//! Every pixel is rendered in optical-density space with the Ruifrok–Johnston stain vectors
//! that scikit-image's `rgb2hed` inverts (`rgb_from_hed` rows: hematoxylin `[0.65, 0.70, 0.29]`,
//! eosin `[0.07, 0.99, 0.11]`, DAB `[0.27, 0.57, 0.78]`), then turned into RGB by Beer–Lambert
//! (`I = I0 · exp(-OD)`). Colour deconvolution of a rendered pixel therefore returns the stain
//! amounts put there (up to JPEG loss and the background's own small optical density).
//!
//! Determinism: every random quantity is a hash of global integer coordinates (lattice
//! points, nucleus cells, fat cells) and the slide seed, so a tile's pixels do not depend on
//! which thread renders it, in which order, or which neighbouring tiles exist. Nuclei that
//! straddle a tile border are drawn identically on both sides.
//!
//! What it draws: irregular tissue pieces with ragged edges and holes on a near-white
//! background; eosin stroma with wavy fibres; adipose areas (empty polygonal adipocytes with
//! pink membranes); tumour nests whose nuclear density, size, pleomorphism and darkness follow
//! the patient's [`Look`]; fibroblasts and lymphocytes in stroma. IHC slides use a hematoxylin
//! counterstain (blue nuclei, pale stroma) and DAB (brown) on a fraction of tumour nuclei
//! (Ki-67, ER, PR; Ki-67 with hotspots) or on tumour-cell membranes (HER2).
//!
//! It does not do I/O or encoding; see `tiff_writer`.
use serde::{Deserialize, Serialize};

/// Tile edge in pixels (level 0 and every pyramid level).
pub const TILE: u32 = 256;
const T: usize = TILE as usize;
/// Lattice step (px) of the slowly varying fields (tissue, tumour, fat, hotspots).
const LAT: i64 = 16;
/// Lattice margin around a tile (px); must exceed the largest nucleus footprint.
const MARGIN: i64 = 64;
const NLAT: usize = ((T as i64 + 2 * MARGIN) / LAT + 1) as usize;
/// Largest distance (px) from a nucleus centre that it paints (HER2 ring included).
const MAX_REACH: i64 = 46;
/// Grid (px) of candidate nucleus positions.
const CELL: i64 = 16;
/// Grid (px) of adipocyte centres.
const FAT_CELL: i64 = 110;

/// Ruifrok–Johnston stain vectors as scikit-image's `rgb_from_hed` rows.
pub const HEMATOXYLIN: [f32; 3] = [0.65, 0.70, 0.29];
/// Eosin row of `rgb_from_hed`.
pub const EOSIN: [f32; 3] = [0.07, 0.99, 0.11];
/// DAB row of `rgb_from_hed`.
pub const DAB: [f32; 3] = [0.27, 0.57, 0.78];
/// Illumination (RGB of glass without tissue), as a scanner's white-balanced background.
pub const BACKGROUND: [u8; 3] = [243, 242, 240];

/// The stains of the study (one enum for the whole crate: the slide manifest's).
pub use crate::slide::Stain;

/// The slide-visible appearance of one patient's tumour: what the latent variables of the
/// cohort turn into on glass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Look {
    /// Fraction of tissue area covered by tumour nests.
    pub tumour_fraction: f32,
    /// Probability that a nucleus slot (one per 16×16 px cell) inside a nest holds a nucleus.
    pub tumour_occupancy: f32,
    /// Mean tumour-nucleus radius, px at level 0 (0.5 µm/px).
    pub nucleus_radius_px: f32,
    /// Pleomorphism: standard deviation of log radius and of log aspect ratio.
    pub pleomorphism: f32,
    /// Hematoxylin optical density of tumour nuclei on H&E (hyperchromasia).
    pub nuclear_hematoxylin: f32,
    /// Fraction of DAB-positive tumour nuclei (Ki-67, ER, PR slides).
    pub positive_fraction: f32,
    /// DAB optical density on tumour-cell membranes (HER2 slides).
    pub membrane_dab: f32,
}

/// One irregular tissue piece: an ellipse whose radius is perturbed by harmonics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Piece {
    /// Centre, level-0 px.
    pub cx: f32,
    /// Centre, level-0 px.
    pub cy: f32,
    /// Mean radius, level-0 px.
    pub radius: f32,
    /// Ratio of the long to the short axis.
    pub aspect: f32,
    /// Rotation, radians.
    pub angle: f32,
    /// Harmonics 2..=6 of the outline: (relative amplitude, phase).
    pub harmonics: [(f32, f32); 5],
}

impl Piece {
    /// Signed "insideness": 1 at the centre, 0 on the outline, negative outside.
    fn inside(&self, x: f32, y: f32) -> f32 {
        let (s, c) = self.angle.sin_cos();
        let dx = x - self.cx;
        let dy = y - self.cy;
        let u = (dx * c + dy * s) / self.aspect.sqrt();
        let v = (-dx * s + dy * c) * self.aspect.sqrt();
        let d = (u * u + v * v).sqrt();
        let th = v.atan2(u);
        let mut r = 1.0;
        for (k, (a, p)) in self.harmonics.iter().enumerate() {
            r += a * ((k as f32 + 2.0) * th + p).cos();
        }
        1.0 - d / (self.radius * r.max(0.3))
    }
}

/// Everything needed to render any tile of one slide.
#[derive(Clone, Debug)]
pub struct SlidePlan {
    /// Seed of this slide (derived from the cohort seed, patient and stain).
    pub seed: u64,
    /// Level-0 width, px.
    pub width: u32,
    /// Level-0 height, px.
    pub height: u32,
    /// The stain.
    pub stain: Stain,
    /// Tissue pieces.
    pub pieces: Vec<Piece>,
    /// The patient's look.
    pub look: Look,
    tumour_threshold: f32,
    fat_threshold: f32,
    fibre_cos: f32,
    fibre_sin: f32,
}

// ---------------------------------------------------------------- hashing and noise

/// SplitMix64 finaliser.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of a seed and two integer coordinates.
#[inline]
pub fn hash2(seed: u64, x: i64, y: i64) -> u64 {
    mix64(
        seed ^ mix64(
            (x as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ (y as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f).rotate_left(29),
        ),
    )
}

/// Derives a sub-seed from a seed and a label.
pub fn derive(seed: u64, label: &str) -> u64 {
    let mut h = mix64(seed ^ 0x5350_4154_4941_0001);
    for b in label.bytes() {
        h = mix64(h ^ b as u64);
    }
    h
}

/// A small deterministic random stream (SplitMix64).
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
    /// Uniform in [0, 1).
    #[inline]
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }
    /// Approximately standard normal (sum of four uniforms, rescaled; tails cut at ±3.46).
    #[inline]
    pub fn normal(&mut self) -> f32 {
        (self.unit() + self.unit() + self.unit() + self.unit() - 2.0) * 1.732_050_8
    }
}

#[inline]
fn unit_of(h: u64) -> f32 {
    (h >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// `x.floor()` without the libm call (exact for |x| < 2^23, far beyond any slide).
#[inline]
fn floor(x: f32) -> f32 {
    let i = x as i32 as f32;
    if i > x {
        i - 1.0
    } else {
        i
    }
}

#[inline]
fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// Value noise in [-1, 1] at (x, y) in lattice units.
#[inline]
fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let xf = floor(x);
    let yf = floor(y);
    let (ix, iy) = (xf as i64, yf as i64);
    let fx = smooth(x - xf);
    let fy = smooth(y - yf);
    let v00 = unit_of(hash2(seed, ix, iy));
    let v10 = unit_of(hash2(seed, ix + 1, iy));
    let v01 = unit_of(hash2(seed, ix, iy + 1));
    let v11 = unit_of(hash2(seed, ix + 1, iy + 1));
    let a = v00 + (v10 - v00) * fx;
    let b = v01 + (v11 - v01) * fx;
    (a + (b - a) * fy) * 2.0 - 1.0
}

/// Fractal sum of `octaves` value-noise octaves at scale `scale` px, in about [-1, 1].
fn fbm(seed: u64, x: f32, y: f32, scale: f32, octaves: u32) -> f32 {
    let mut sum = 0.0;
    let mut amp = 1.0;
    let mut norm = 0.0;
    let mut f = 1.0 / scale;
    for o in 0..octaves {
        sum += amp * value_noise(seed.wrapping_add(o as u64 * 0x1234_5678_9abc), x * f, y * f);
        norm += amp;
        amp *= 0.5;
        f *= 2.0;
    }
    sum / norm
}

// ---------------------------------------------------------------- plan

/// Seeds of the fields of a slide.
struct FieldSeeds {
    tissue: u64,
    hole: u64,
    tumour: u64,
    fat: u64,
    hot: u64,
    warp: u64,
    nest: u64,
}

impl SlidePlan {
    /// Plans a slide: places 2–4 irregular tissue pieces covering roughly a third of the
    /// glass and calibrates the tumour and fat thresholds so that the tumour covers
    /// `look.tumour_fraction` of the tissue.
    pub fn new(seed: u64, width: u32, height: u32, stain: Stain, look: Look) -> SlidePlan {
        let mut rng = SplitMix(derive(seed, "pieces"));
        let (w, h) = (width as f32, height as f32);
        let n = 2 + (rng.next_u64() % 3) as usize;
        // total tissue area ≈ 0.33 of the slide, split unevenly between pieces
        let weights: Vec<f32> = (0..n).map(|_| 0.6 + rng.unit()).collect();
        let wsum: f32 = weights.iter().sum();
        let mut pieces: Vec<Piece> = Vec::with_capacity(n);
        for wt in weights {
            let area = 0.33 * w * h * wt / wsum;
            let radius = (area / std::f32::consts::PI).sqrt();
            let mut best: Option<(f32, Piece)> = None;
            for _ in 0..40 {
                let aspect = 1.0 + 0.8 * rng.unit();
                // keep the whole outline (long semi-axis, harmonics) on the glass
                let margin = radius * aspect.sqrt() * 1.2;
                let cx = margin.min(w / 2.0) + rng.unit() * (w - 2.0 * margin).max(0.0);
                let cy = margin.min(h / 2.0) + rng.unit() * (h - 2.0 * margin).max(0.0);
                let mut harmonics = [(0.0, 0.0); 5];
                for (k, hm) in harmonics.iter_mut().enumerate() {
                    *hm = (0.14 * rng.unit() / (k as f32 + 1.0), rng.unit() * std::f32::consts::TAU);
                }
                let p = Piece { cx, cy, radius, aspect, angle: rng.unit() * std::f32::consts::PI, harmonics };
                // keep the candidate farthest from the pieces placed so far
                let clearance = pieces
                    .iter()
                    .map(|q| ((q.cx - cx).powi(2) + (q.cy - cy).powi(2)).sqrt() - q.radius - radius)
                    .fold(f32::INFINITY, f32::min);
                if best.as_ref().is_none_or(|(c, _)| clearance > *c) {
                    best = Some((clearance, p));
                }
                if clearance > 0.1 * radius {
                    break;
                }
            }
            if let Some((_, p)) = best {
                pieces.push(p);
            }
        }
        let angle = rng.unit() * std::f32::consts::PI;
        let mut plan = SlidePlan {
            seed,
            width,
            height,
            stain,
            pieces,
            look,
            tumour_threshold: 0.0,
            fat_threshold: 0.0,
            fibre_cos: angle.cos(),
            fibre_sin: angle.sin(),
        };
        // calibrate thresholds on field samples at tissue points
        let seeds = plan.seeds();
        let mut tum = Vec::new();
        let mut fat = Vec::new();
        let mut srng = SplitMix(derive(seed, "calibrate"));
        let mut tries = 0;
        while tum.len() < 3000 && tries < 200_000 {
            tries += 1;
            let x = srng.unit() * w;
            let y = srng.unit() * h;
            if plan.tissue_at(&seeds, x, y) > 0.0 {
                tum.push(fbm(seeds.tumour, x, y, 380.0, 3));
                fat.push(fbm(seeds.fat, x, y, 520.0, 2));
            }
        }
        plan.tumour_threshold = quantile(&mut tum, 1.0 - plan.look.tumour_fraction);
        plan.fat_threshold = quantile(&mut fat, 0.86);
        plan
    }

    fn seeds(&self) -> FieldSeeds {
        FieldSeeds {
            tissue: derive(self.seed, "tissue"),
            hole: derive(self.seed, "hole"),
            tumour: derive(self.seed, "tumour"),
            fat: derive(self.seed, "fat"),
            hot: derive(self.seed, "hotspot"),
            warp: derive(self.seed, "warp"),
            nest: derive(self.seed, "nest"),
        }
    }

    fn tissue_at(&self, s: &FieldSeeds, x: f32, y: f32) -> f32 {
        let mut t = self.pieces.iter().map(|p| p.inside(x, y)).fold(f32::NEG_INFINITY, f32::max);
        t += 0.10 * fbm(s.tissue, x, y, 240.0, 3);
        // holes and tears
        let hole = fbm(s.hole, x, y, 150.0, 2);
        t = t.min(0.9 * (0.55 - hole));
        // nothing outside the image
        let edge = (x.min(y).min(self.width as f32 - x).min(self.height as f32 - y)) / 64.0;
        t.min(edge)
    }
}

fn quantile(v: &mut [f32], q: f32) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f32 * q.clamp(0.0, 1.0)).round() as usize;
    v[i]
}

// ---------------------------------------------------------------- rendering

/// Lookup table of `exp(-od)` for od in [0, 8) in steps of 1/256.
pub struct Lut(Vec<f32>);

impl Default for Lut {
    fn default() -> Self {
        Lut((0..2048).map(|i| (-(i as f32) / 256.0).exp()).collect())
    }
}

impl Lut {
    #[inline]
    fn transmit(&self, od: f32) -> f32 {
        let i = (od.max(0.0) * 256.0) as usize;
        self.0[i.min(2047)]
    }
}

/// The slowly varying fields on the lattice around one tile.
struct Fields {
    /// Global lattice index of the first point.
    ix0: i64,
    iy0: i64,
    tissue: Vec<f32>,
    tumour: Vec<f32>,
    fat: Vec<f32>,
    hot: Vec<f32>,
    warp: Vec<f32>,
    /// Tumour membership: `tumour − threshold`, cut by the nest pattern (negative in septa).
    nest: Vec<f32>,
}

impl Fields {
    fn new(plan: &SlidePlan, s: &FieldSeeds, x0: i64, y0: i64) -> Fields {
        let ix0 = (x0 - MARGIN).div_euclid(LAT);
        let iy0 = (y0 - MARGIN).div_euclid(LAT);
        let n = NLAT * NLAT;
        let mut f = Fields {
            ix0,
            iy0,
            tissue: vec![0.0; n],
            tumour: vec![0.0; n],
            fat: vec![0.0; n],
            hot: vec![0.0; n],
            warp: vec![0.0; n],
            nest: vec![-1.0; n],
        };
        for j in 0..NLAT {
            for i in 0..NLAT {
                let x = ((ix0 + i as i64) * LAT) as f32;
                let y = ((iy0 + j as i64) * LAT) as f32;
                let k = j * NLAT + i;
                f.tissue[k] = plan.tissue_at(s, x, y);
                if f.tissue[k] > -0.3 {
                    f.tumour[k] = fbm(s.tumour, x, y, 380.0, 3);
                    f.fat[k] = fbm(s.fat, x, y, 520.0, 2);
                    f.hot[k] = fbm(s.hot, x, y, 700.0, 2);
                    f.warp[k] = fbm(s.warp, x, y, 90.0, 2);
                    // nests of tumour cells separated by thin fibrous septa
                    let septa = fbm(s.nest, x, y, 70.0, 2) + 0.35;
                    f.nest[k] = (f.tumour[k] - plan.tumour_threshold).min(0.25 * septa);
                }
            }
        }
        f
    }

    /// Bilinear weights at a global integer pixel (x, y) plus sub-pixel offsets.
    #[inline]
    fn at(&self, x: i64, y: i64, fx: f32, fy: f32) -> (usize, f32, f32) {
        let i = (x.div_euclid(LAT) - self.ix0) as usize;
        let j = (y.div_euclid(LAT) - self.iy0) as usize;
        let ax = (x.rem_euclid(LAT) as f32 + fx) / LAT as f32;
        let ay = (y.rem_euclid(LAT) as f32 + fy) / LAT as f32;
        (j * NLAT + i, ax, ay)
    }

    #[inline]
    fn sample(v: &[f32], k: usize, ax: f32, ay: f32) -> f32 {
        let a = v[k] + (v[k + 1] - v[k]) * ax;
        let b = v[k + NLAT] + (v[k + NLAT + 1] - v[k + NLAT]) * ax;
        a + (b - a) * ay
    }
}

/// The nuclei a slide (or tile) was painted with, each counted once: in the tile holding its
/// centre, when that centre lies on the slide. "Other" nuclei are the stromal fibroblasts and
/// lymphocytes (never DAB-positive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Painted {
    /// DAB-positive tumour nuclei.
    pub tumour_positive: u64,
    /// DAB-negative tumour nuclei.
    pub tumour_negative: u64,
    /// DAB-positive other nuclei (0: the painter stains no stromal nucleus).
    pub other_positive: u64,
    /// DAB-negative other nuclei.
    pub other_negative: u64,
}

impl Painted {
    /// The sum of two counts.
    pub fn plus(self, o: Painted) -> Painted {
        Painted {
            tumour_positive: self.tumour_positive + o.tumour_positive,
            tumour_negative: self.tumour_negative + o.tumour_negative,
            other_positive: self.other_positive + o.other_positive,
            other_negative: self.other_negative + o.other_negative,
        }
    }
    /// Positive / all tumour nuclei (`None` without any).
    pub fn tumour_fraction(&self) -> Option<f64> {
        let n = self.tumour_positive + self.tumour_negative;
        (n > 0).then(|| self.tumour_positive as f64 / n as f64)
    }
    /// Positive / all nuclei painted (`None` without any).
    pub fn all_fraction(&self) -> Option<f64> {
        let n = self.tumour_positive + self.tumour_negative + self.other_positive + self.other_negative;
        (n > 0).then(|| (self.tumour_positive + self.other_positive) as f64 / n as f64)
    }
}

/// Per-pixel stain amounts of a tile being rendered, and the nuclei it owns.
struct Canvas {
    h: Vec<f32>,
    e: Vec<f32>,
    d: Vec<f32>,
    alpha: Vec<f32>,
    painted: Painted,
}

impl Canvas {
    fn new() -> Canvas {
        Canvas {
            h: vec![0.0; T * T],
            e: vec![0.0; T * T],
            d: vec![0.0; T * T],
            alpha: vec![0.0; T * T],
            painted: Painted::default(),
        }
    }

    /// Optical density → RGB through Beer–Lambert (`lut`) against the background colour.
    fn to_rgb(&self, lut: &Lut, out: &mut [u8]) {
        let bg = [BACKGROUND[0] as f32, BACKGROUND[1] as f32, BACKGROUND[2] as f32];
        for p in 0..T * T {
            let a = self.alpha[p];
            let o = &mut out[p * 3..p * 3 + 3];
            if a <= 0.0 {
                o.copy_from_slice(&BACKGROUND);
                continue;
            }
            let (h, e, d) = (self.h[p] * a, self.e[p] * a, self.d[p] * a);
            for c in 0..3 {
                let od = h * HEMATOXYLIN[c] + e * EOSIN[c] + d * DAB[c];
                o[c] = (bg[c] * lut.transmit(od) + 0.5) as u8;
            }
        }
    }
}

/// Renders tile (`tx`, `ty`) of level 0 into `out` (256×256×3 RGB, row-major). Pixels
/// outside the slide are background. Returns whether the tile holds any tissue.
pub fn render_tile(plan: &SlidePlan, lut: &Lut, tx: u32, ty: u32, out: &mut [u8]) -> bool {
    render_tile_counted(plan, lut, tx, ty, out).0
}

/// [`render_tile`], also returning the nuclei whose centre lies in the tile (and on the slide).
pub fn render_tile_counted(plan: &SlidePlan, lut: &Lut, tx: u32, ty: u32, out: &mut [u8]) -> (bool, Painted) {
    let x0 = tx as i64 * TILE as i64;
    let y0 = ty as i64 * TILE as i64;
    let seeds = plan.seeds();
    let fields = Fields::new(plan, &seeds, x0, y0);
    if fields.tissue.iter().all(|&t| t < -0.02) {
        fill_background(out);
        return (false, Painted::default());
    }
    let mut cv = Canvas::new();
    let brush = Brush { x0, y0, grain_seed: derive(plan.seed, "grain") };
    paint_matrix(plan, &fields, &brush, &mut cv);
    paint_nuclei(plan, &fields, &brush, &mut cv);
    cv.to_rgb(lut, out);
    blank_beyond_edge(plan, x0, y0, out);
    (true, cv.painted)
}

/// Where a tile's painting happens: its level-0 origin and the seed of the nuclear grain.
struct Brush {
    x0: i64,
    y0: i64,
    grain_seed: u64,
}

/// Seeds of the matrix textures.
struct MatrixSeeds {
    fibre: u64,
    grain: u64,
    fat: u64,
}

/// The background matrix (stroma, tumour cytoplasm, fat) under every pixel of the tile.
fn paint_matrix(plan: &SlidePlan, fields: &Fields, brush: &Brush, cv: &mut Canvas) {
    let (x0, y0) = (brush.x0, brush.y0);
    let seeds =
        MatrixSeeds { fibre: derive(plan.seed, "fibre"), grain: brush.grain_seed, fat: derive(plan.seed, "adipocyte") };
    // lattice cell and weight of every column and row of the tile
    let cols: Vec<(usize, f32)> = (0..T)
        .map(|x| {
            let (k, ax, _) = fields.at(x0 + x as i64, y0, 0.0, 0.0);
            (k % NLAT, ax)
        })
        .collect();
    let rows: Vec<(usize, f32)> = (0..T)
        .map(|y| {
            let (k, _, ay) = fields.at(x0, y0 + y as i64, 0.0, 0.0);
            (k / NLAT, ay)
        })
        .collect();
    for (y, &(j, ay)) in rows.iter().enumerate() {
        let gy = y0 + y as i64;
        for (x, &(i, ax)) in cols.iter().enumerate() {
            let gx = x0 + x as i64;
            if let Some([h, e, d, a]) = matrix_pixel(plan, fields, &seeds, (j * NLAT + i, ax, ay), gx, gy) {
                let p = y * T + x;
                cv.h[p] = h;
                cv.e[p] = e;
                cv.d[p] = d;
                cv.alpha[p] = a;
            }
        }
    }
}

/// Hematoxylin, eosin, DAB and opacity of the matrix at global pixel (`gx`, `gy`), whose
/// lattice cell and bilinear weights are `at`; `None` outside tissue.
fn matrix_pixel(
    plan: &SlidePlan,
    fields: &Fields,
    seeds: &MatrixSeeds,
    at: (usize, f32, f32),
    gx: i64,
    gy: i64,
) -> Option<[f32; 4]> {
    let (k, ax, ay) = at;
    let ihc = plan.stain.is_ihc();
    let (fc, fs) = (plan.fibre_cos, plan.fibre_sin);
    let t = Fields::sample(&fields.tissue, k, ax, ay);
    if t <= 0.0 {
        return None;
    }
    let alpha = (t / 0.008).min(1.0);
    let u = Fields::sample(&fields.nest, k, ax, ay);
    let f = Fields::sample(&fields.fat, k, ax, ay);
    let warp = Fields::sample(&fields.warp, k, ax, ay);
    let (xf, yf) = (gx as f32, gy as f32);
    let along = (xf * fc + yf * fs) / 30.0;
    let across = (-xf * fs + yf * fc) / 3.2 + 9.0 * warp;
    let fibre = value_noise(seeds.fibre, along, across);
    let tum = (u / 0.02).clamp(0.0, 1.0);
    let (mut h, mut e, d);
    if ihc {
        h = 0.17 + 0.05 * fibre;
        e = 0.01;
        d = 0.012;
        h += tum * 0.07;
    } else {
        h = 0.04 + 0.01 * fibre;
        e = 0.30 + 0.13 * fibre;
        d = 0.0;
        if tum > 0.0 {
            let grain = value_noise(seeds.grain, xf / 5.0, yf / 5.0);
            h += tum * (0.13 + 0.04 * grain);
            e += tum * (-0.10 + 0.04 * grain);
        }
    }
    let mut a = alpha;
    // fat gives way to tumour just before a nest begins
    let near_tum = ((u + 0.03) / 0.03).clamp(0.0, 1.0);
    if near_tum < 1.0 && f > plan.fat_threshold {
        // adipocytes: empty cells with thin membranes
        let (d1, d2) = voronoi(seeds.fat, gx, gy);
        let wall = (1.0 - (d2.sqrt() - d1.sqrt()) / 5.0).clamp(0.0, 1.0);
        let fatw = ((f - plan.fat_threshold) / 0.02).min(1.0) * (1.0 - near_tum);
        a *= 1.0 - fatw * (1.0 - wall);
        if ihc {
            h *= 1.0 - 0.3 * fatw;
        } else {
            e *= 1.0 - 0.2 * fatw;
        }
    }
    Some([h, e, d, a])
}

/// A cell whose nucleus may be drawn: its centre and what the fields say there.
struct CellSite {
    centre: (f32, f32),
    /// The cell's first random draw (occupancy, cell type).
    dice: f32,
    fat: f32,
    hot: f32,
}

/// Nuclei of the cells (one candidate per `CELL`² lattice cell, jittered) within reach of
/// the tile: tumour nuclei inside nests, fibroblasts and lymphocytes in the stroma.
fn paint_nuclei(plan: &SlidePlan, fields: &Fields, brush: &Brush, cv: &mut Canvas) {
    let (x0, y0) = (brush.x0, brush.y0);
    let nuc_seed = derive(plan.seed, "nuclei");
    let cx0 = (x0 - MAX_REACH).div_euclid(CELL);
    let cx1 = (x0 + TILE as i64 + MAX_REACH).div_euclid(CELL);
    let cy0 = (y0 - MAX_REACH).div_euclid(CELL);
    let cy1 = (y0 + TILE as i64 + MAX_REACH).div_euclid(CELL);
    for cj in cy0..=cy1 {
        for ci in cx0..=cx1 {
            let mut r = SplitMix(hash2(nuc_seed, ci, cj));
            let ox = r.unit() * CELL as f32;
            let oy = r.unit() * CELL as f32;
            let px = ci * CELL + ox as i64;
            let py = cj * CELL + oy as i64;
            let (fx, fy) = (ox.fract(), oy.fract());
            if px < x0 - MAX_REACH
                || px >= x0 + TILE as i64 + MAX_REACH
                || py < y0 - MAX_REACH
                || py >= y0 + TILE as i64 + MAX_REACH
            {
                continue;
            }
            let (k, ax, ay) = fields.at(px, py, fx, fy);
            let t = Fields::sample(&fields.tissue, k, ax, ay);
            if t < 0.02 {
                continue;
            }
            let u = Fields::sample(&fields.nest, k, ax, ay);
            let f = Fields::sample(&fields.fat, k, ax, ay);
            let hot = Fields::sample(&fields.hot, k, ax, ay);
            let dice = r.unit();
            let site = CellSite { centre: (px as f32 + fx, py as f32 + fy), dice, fat: f, hot };
            let own = (x0..x0 + TILE as i64).contains(&px)
                && (y0..y0 + TILE as i64).contains(&py)
                && px < plan.width as i64
                && py < plan.height as i64;
            if u > 0.0 {
                if dice >= plan.look.tumour_occupancy {
                    continue;
                }
                let positive = tumour_nucleus(plan, &mut r, &site, brush, cv);
                if own {
                    if positive {
                        cv.painted.tumour_positive += 1;
                    } else {
                        cv.painted.tumour_negative += 1;
                    }
                }
            } else if stromal_nucleus(plan, &mut r, &site, brush, cv) && own {
                cv.painted.other_negative += 1;
            }
        }
    }
}

/// A tumour cell's nucleus (and, for HER2, its DAB-stained membrane ring); whether the
/// nucleus carries DAB.
fn tumour_nucleus(plan: &SlidePlan, r: &mut SplitMix, site: &CellSite, brush: &Brush, cv: &mut Canvas) -> bool {
    let look = &plan.look;
    let (x0, y0, grain_seed, centre) = (brush.x0, brush.y0, brush.grain_seed, site.centre);
    let radius = (look.nucleus_radius_px * (look.pleomorphism * r.normal()).exp()).clamp(2.5, 16.0);
    let aspect = (0.18 + look.pleomorphism * 1.5 * r.unit().max(0.0)).exp();
    let angle = r.unit() * std::f32::consts::PI;
    let dark = (0.10 * r.normal()).exp();
    let pos_dice = r.unit();
    if plan.stain == Stain::HER2 {
        let ring = Nucleus { h: 0.0, e: 0.0, d: look.membrane_dab * dark, grain: 0.2 };
        paint_ellipse(cv, x0, y0, centre, radius * 1.9, 1.0, angle, &ring, grain_seed, Some(0.72));
    }
    let nuc = tumour_stains(plan, r, site.hot, dark, pos_dice);
    paint_ellipse(cv, x0, y0, centre, radius, aspect, angle, &nuc, grain_seed, None);
    nuc.d > 0.0
}

/// The stain amounts of a tumour nucleus: H&E, HER2 (hematoxylin only: the DAB is on the
/// membrane), or a nuclear IHC marker positive with the look's fraction (Ki-67: more in
/// hotspots).
fn tumour_stains(plan: &SlidePlan, r: &mut SplitMix, hot: f32, dark: f32, pos_dice: f32) -> Nucleus {
    let look = &plan.look;
    match plan.stain {
        Stain::HE => {
            Nucleus { h: look.nuclear_hematoxylin * dark, e: 0.10, d: 0.0, grain: 0.15 + 1.2 * look.pleomorphism }
        }
        Stain::HER2 => Nucleus { h: 0.45 * dark, e: 0.0, d: 0.0, grain: 0.2 },
        Stain::KI67 | Stain::ER | Stain::PR => {
            let mut frac = look.positive_fraction;
            if plan.stain == Stain::KI67 {
                frac *= (1.0 + 0.9 * hot).max(0.1);
            }
            if pos_dice < frac {
                Nucleus { h: 0.12, e: 0.0, d: (0.55 + 0.35 * r.unit()) * dark, grain: 0.2 }
            } else {
                Nucleus { h: (0.40 + 0.12 * r.unit()) * dark, e: 0.0, d: 0.0, grain: 0.2 }
            }
        }
    }
}

/// A stromal cell's nucleus, if any: an elongated fibroblast along the fibres or a round
/// lymphocyte (more of them in hotspots, few in fat); whether one was painted.
fn stromal_nucleus(plan: &SlidePlan, r: &mut SplitMix, site: &CellSite, brush: &Brush, cv: &mut Canvas) -> bool {
    let (x0, y0, grain_seed, centre) = (brush.x0, brush.y0, brush.grain_seed, site.centre);
    let (dice, hot) = (site.dice, site.hot);
    let ihc = plan.stain.is_ihc();
    let in_fat = site.fat > plan.fat_threshold;
    let p_fib = if in_fat { 0.01 } else { 0.07 };
    let p_lym = if in_fat { 0.005 } else { 0.03 * (1.0 + 3.0 * hot.max(0.0)) };
    let angle = (plan.fibre_sin.atan2(plan.fibre_cos)) + 0.3 * r.normal();
    let h_scale = if ihc { 0.7 } else { 1.0 };
    if dice < p_fib {
        let nuc = Nucleus { h: 0.75 * h_scale, e: 0.05, d: 0.0, grain: 0.1 };
        paint_ellipse(cv, x0, y0, centre, 4.0, 5.0, angle, &nuc, grain_seed, None);
    } else if dice < p_fib + p_lym {
        let nuc = Nucleus { h: 1.05 * h_scale, e: 0.05, d: 0.0, grain: 0.1 };
        paint_ellipse(cv, x0, y0, centre, 4.0, 1.1, angle, &nuc, grain_seed, None);
    } else {
        return false;
    }
    true
}

/// Paints the pixels beyond the slide's right and bottom edges as background.
fn blank_beyond_edge(plan: &SlidePlan, x0: i64, y0: i64, out: &mut [u8]) {
    let valid_w = (plan.width as i64 - x0).clamp(0, TILE as i64) as usize;
    let valid_h = (plan.height as i64 - y0).clamp(0, TILE as i64) as usize;
    if valid_w < T || valid_h < T {
        for y in 0..T {
            for x in 0..T {
                if x >= valid_w || y >= valid_h {
                    out[(y * T + x) * 3..(y * T + x) * 3 + 3].copy_from_slice(&BACKGROUND);
                }
            }
        }
    }
}

/// Fills a tile with the background colour.
pub fn fill_background(out: &mut [u8]) {
    for px in out.chunks_exact_mut(3) {
        px.copy_from_slice(&BACKGROUND);
    }
}

struct Nucleus {
    h: f32,
    e: f32,
    d: f32,
    grain: f32,
}

/// Paints a soft-edged ellipse (or, with `ring = Some(inner)`, an annulus between `inner`
/// and 1 in normalised radius) into the canvas.
#[allow(clippy::too_many_arguments)]
fn paint_ellipse(
    cv: &mut Canvas,
    x0: i64,
    y0: i64,
    centre: (f32, f32),
    radius: f32,
    aspect: f32,
    angle: f32,
    n: &Nucleus,
    grain_seed: u64,
    ring: Option<f32>,
) {
    let a = radius * aspect.sqrt();
    let b = radius / aspect.sqrt();
    let reach = a.max(b).ceil() + 1.0;
    let (s, c) = angle.sin_cos();
    let lx = ((centre.0 - reach).floor() as i64 - x0).max(0);
    let hx = ((centre.0 + reach).ceil() as i64 - x0).min(TILE as i64 - 1);
    let ly = ((centre.1 - reach).floor() as i64 - y0).max(0);
    let hy = ((centre.1 + reach).ceil() as i64 - y0).min(TILE as i64 - 1);
    if lx > hx || ly > hy {
        return;
    }
    let (ia2, ib2) = (1.0 / (a * a), 1.0 / (b * b));
    for y in ly..=hy {
        let dy = (y0 + y) as f32 + 0.5 - centre.1;
        for x in lx..=hx {
            let dx = (x0 + x) as f32 + 0.5 - centre.0;
            let u = dx * c + dy * s;
            let v = -dx * s + dy * c;
            let q = u * u * ia2 + v * v * ib2;
            if q >= 1.0 {
                continue;
            }
            let w = match ring {
                Some(inner) => {
                    let i2 = inner * inner;
                    if q < i2 {
                        continue;
                    }
                    // triangular profile across the membrane
                    let mid = (1.0 + i2) * 0.5;
                    (1.0 - (q - mid).abs() / ((1.0 - i2) * 0.5)).clamp(0.0, 1.0)
                }
                None => ((1.0 - q) * 5.0).min(1.0),
            };
            let gx = x0 + x;
            let gy = y0 + y;
            let g = unit_of(hash2(grain_seed, gx, gy)) * 2.0 - 1.0;
            let rim = if ring.is_none() && q > 0.65 { 1.15 } else { 1.0 };
            let tex = (1.0 + n.grain * g) * rim;
            let p = (y as usize) * T + x as usize;
            if ring.is_some() {
                cv.d[p] = cv.d[p].max(n.d * tex * w);
                cv.alpha[p] = cv.alpha[p].max(w);
            } else {
                cv.h[p] += (n.h * tex - cv.h[p]) * w;
                cv.e[p] += (n.e - cv.e[p]) * w;
                cv.d[p] += (n.d * tex - cv.d[p]) * w;
                cv.alpha[p] = cv.alpha[p].max(w);
            }
        }
    }
}

/// Squared distances to the nearest and second-nearest adipocyte centres.
#[inline]
fn voronoi(seed: u64, x: i64, y: i64) -> (f32, f32) {
    let ci = x.div_euclid(FAT_CELL);
    let cj = y.div_euclid(FAT_CELL);
    let mut d1 = f32::INFINITY;
    let mut d2 = f32::INFINITY;
    for j in cj - 1..=cj + 1 {
        for i in ci - 1..=ci + 1 {
            let h = hash2(seed, i, j);
            let sx = (i * FAT_CELL) as f32 + unit_of(h) * FAT_CELL as f32;
            let sy = (j * FAT_CELL) as f32 + unit_of(mix64(h)) * FAT_CELL as f32;
            let dd = (x as f32 - sx).powi(2) + (y as f32 - sy).powi(2);
            if dd < d1 {
                d2 = d1;
                d1 = dd;
            } else if dd < d2 {
                d2 = dd;
            }
        }
    }
    (d1, d2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look() -> Look {
        Look {
            tumour_fraction: 0.4,
            tumour_occupancy: 0.6,
            nucleus_radius_px: 7.5,
            pleomorphism: 0.12,
            nuclear_hematoxylin: 0.85,
            positive_fraction: 0.3,
            membrane_dab: 0.6,
        }
    }

    #[test]
    fn stain_names_round_trip() {
        for s in Stain::ALL {
            assert_eq!(s.as_str().parse::<Stain>(), Ok(s));
        }
    }

    #[test]
    fn tiles_are_independent_of_render_order() {
        let plan = SlidePlan::new(7, 1024, 1024, Stain::KI67, look());
        let lut = Lut::default();
        let mut a = vec![0u8; T * T * 3];
        let mut b = vec![0u8; T * T * 3];
        render_tile(&plan, &lut, 1, 2, &mut a);
        render_tile(&plan, &lut, 3, 3, &mut b);
        let mut a2 = vec![0u8; T * T * 3];
        render_tile(&plan, &lut, 1, 2, &mut a2);
        assert_eq!(a, a2);
    }

    #[test]
    fn slide_has_tissue_and_background() {
        let plan = SlidePlan::new(11, 1024, 1024, Stain::HE, look());
        let lut = Lut::default();
        let mut buf = vec![0u8; T * T * 3];
        let (mut tissue, mut total) = (0usize, 0usize);
        for ty in 0..4 {
            for tx in 0..4 {
                render_tile(&plan, &lut, tx, ty, &mut buf);
                for px in buf.chunks_exact(3) {
                    total += 1;
                    if px != BACKGROUND {
                        tissue += 1;
                    }
                }
            }
        }
        let frac = tissue as f64 / total as f64;
        assert!((0.1..0.7).contains(&frac), "tissue fraction {frac}");
    }
}
