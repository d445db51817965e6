//! `attention/` (written by `train` with `model: mil`, read by the spatial maps): the
//! out-of-fold attention of every tile of every slide, from the fold network in which the
//! slide's patient was a test patient.
//!
//! # Format
//! `attention/index.csv`: `slide,patient,stain,file,tiles`, one row per slide, sorted by slide
//! id; `file` is the slide's file in `attention/`, named `util::id_path_component(slide) + ".csv"`
//! (ids never reach a path unencoded); `tiles` its tile count.
//! `attention/<file>`: `repeat,fold,x,y,attention`, one row per tile per CV repeat, by repeat
//! then in the bag's tile order; `x`, `y` the tile's level-0 top-left corner (as in the
//! feature bag); `attention` the tile's softmax weight in the patient's bag of that stain (all
//! her slides of the stain together, so a slide's weights sum to at most 1 per repeat).
//!
//! # Validation
//! A repeat or fold that is not a non-negative integer, a negative coordinate, an attention
//! outside [0, 1] or not finite, an index row whose file is not the encoded slide id, a slide
//! whose file has a different number of tiles per repeat than the index says.
use super::error::{indices, shown, write_csv, ContractError, Result};
use crate::survival::CsvTable;
use crate::util::id_path_component;
use std::path::Path;

/// One tile's attention in one repeat.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionRow {
    pub repeat: usize,
    pub fold: usize,
    pub x: i64,
    pub y: i64,
    pub attention: f64,
}

/// One slide's attention over every repeat.
#[derive(Debug, Clone, PartialEq)]
pub struct SlideAttention {
    pub slide: String,
    pub patient: String,
    pub stain: String,
    /// Tiles of the slide.
    pub tiles: usize,
    /// By repeat, then tile order.
    pub rows: Vec<AttentionRow>,
}

/// The content of `attention/`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttentionMaps {
    /// Sorted by slide id.
    pub slides: Vec<SlideAttention>,
}

fn num(x: f64) -> String {
    format!("{x:?}")
}

fn row_err(file: &str, row: usize, column: &str, msg: String) -> ContractError {
    ContractError::Row { file: file.to_string(), row, column: column.to_string(), msg }
}

impl SlideAttention {
    /// The slide's file name in `attention/`.
    pub fn file_name(slide: &str) -> String {
        format!("{}.csv", id_path_component(slide))
    }

    fn validate(&self, file: &str) -> Result<()> {
        let mut per_repeat = std::collections::BTreeMap::new();
        for (i, r) in self.rows.iter().enumerate() {
            if r.x < 0 || r.y < 0 {
                return Err(row_err(
                    file,
                    i + 1,
                    "x",
                    format!("expected non-negative coordinates, found ({}, {})", r.x, r.y),
                ));
            }
            if !(r.attention.is_finite() && (0.0..=1.0).contains(&r.attention)) {
                return Err(row_err(
                    file,
                    i + 1,
                    "attention",
                    format!("expected a weight in [0, 1], found {}", r.attention),
                ));
            }
            *per_repeat.entry(r.repeat).or_insert(0usize) += 1;
        }
        if let Some((rep, n)) = per_repeat.iter().find(|(_, &n)| n != self.tiles) {
            return Err(ContractError::Invalid {
                file: file.to_string(),
                msg: format!("repeat {rep} has {n} tiles, the index says slide `{}` has {}", self.slide, self.tiles),
            });
        }
        Ok(())
    }
}

impl AttentionMaps {
    /// The directory name in a `train` output.
    pub const DIR: &'static str = "attention";
    /// The index file in it.
    pub const INDEX: &'static str = "index.csv";
    /// The index's header.
    pub const INDEX_HEADER: [&'static str; 5] = ["slide", "patient", "stain", "file", "tiles"];
    /// A slide file's header.
    pub const HEADER: [&'static str; 5] = ["repeat", "fold", "x", "y", "attention"];

    /// Writes `attention/` under `out` (the directory must not exist yet).
    pub fn write(&self, out: &Path) -> Result<()> {
        let dir = out.join(Self::DIR);
        std::fs::create_dir(&dir).map_err(|source| ContractError::Io {
            file: shown(&dir),
            action: "cannot create",
            source,
        })?;
        let mut slides: Vec<&SlideAttention> = self.slides.iter().collect();
        slides.sort_by(|a, b| a.slide.cmp(&b.slide));
        for s in &slides {
            let path = dir.join(SlideAttention::file_name(&s.slide));
            s.validate(&shown(&path))?;
            let rows = s.rows.iter().map(|r| {
                vec![r.repeat.to_string(), r.fold.to_string(), r.x.to_string(), r.y.to_string(), num(r.attention)]
            });
            write_csv(&path, &Self::HEADER, rows)?;
        }
        let index = slides.iter().map(|s| {
            vec![
                s.slide.clone(),
                s.patient.clone(),
                s.stain.clone(),
                SlideAttention::file_name(&s.slide),
                s.tiles.to_string(),
            ]
        });
        write_csv(&dir.join(Self::INDEX), &Self::INDEX_HEADER, index)
    }

    /// Reads `attention/index.csv` under `out`: the slides without their rows.
    pub fn read_index(out: &Path) -> Result<AttentionMaps> {
        let path = out.join(Self::DIR).join(Self::INDEX);
        let t = CsvTable::read(&path)?;
        let (slide, patient, stain, file) =
            (t.strings("slide")?, t.strings("patient")?, t.strings("stain")?, t.strings("file")?);
        let tiles = indices(&t, "tiles")?;
        let mut slides = Vec::new();
        for i in 0..t.len() {
            if file[i] != SlideAttention::file_name(&slide[i]) {
                return Err(row_err(
                    t.file(),
                    i + 1,
                    "file",
                    format!(
                        "expected `{}` (the encoded slide id), found `{}`",
                        SlideAttention::file_name(&slide[i]),
                        file[i]
                    ),
                ));
            }
            slides.push(SlideAttention {
                slide: slide[i].clone(),
                patient: patient[i].clone(),
                stain: stain[i].clone(),
                tiles: tiles[i],
                rows: Vec::new(),
            });
        }
        Ok(AttentionMaps { slides })
    }

    /// Reads one slide's rows (an entry of [`AttentionMaps::read_index`]).
    pub fn read_slide(out: &Path, entry: &SlideAttention) -> Result<SlideAttention> {
        let path = out.join(Self::DIR).join(SlideAttention::file_name(&entry.slide));
        let t = CsvTable::read(&path)?;
        let (repeat, fold) = (indices(&t, "repeat")?, indices(&t, "fold")?);
        let (x, y, a) = (t.numeric("x")?, t.numeric("y")?, t.numeric("attention")?);
        let mut rows = Vec::with_capacity(t.len());
        for i in 0..t.len() {
            for (c, v) in [("x", x[i]), ("y", y[i])] {
                if v != v.trunc() || v.abs() > 9.0e15 {
                    return Err(row_err(t.file(), i + 1, c, format!("expected an integer coordinate, found {v}")));
                }
            }
            rows.push(AttentionRow {
                repeat: repeat[i],
                fold: fold[i],
                x: x[i] as i64,
                y: y[i] as i64,
                attention: a[i],
            });
        }
        let s = SlideAttention { rows, ..entry.clone() };
        s.validate(t.file())?;
        Ok(s)
    }

    /// Reads the index and every slide.
    pub fn read(out: &Path) -> Result<AttentionMaps> {
        let idx = Self::read_index(out)?;
        let slides = idx.slides.iter().map(|s| Self::read_slide(out, s)).collect::<Result<Vec<_>>>()?;
        Ok(AttentionMaps { slides })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AttentionMaps {
        let rows = |w: [f64; 2]| {
            (0..2)
                .flat_map(|rep| {
                    (0..2).map(move |t| AttentionRow { repeat: rep, fold: 1, x: 256 * t as i64, y: 0, attention: w[t] })
                })
                .collect()
        };
        AttentionMaps {
            slides: vec![
                SlideAttention {
                    slide: "P2 HE".into(),
                    patient: "P2".into(),
                    stain: "HE".into(),
                    tiles: 2,
                    rows: rows([0.25, 0.75]),
                },
                SlideAttention {
                    slide: "P1_KI67".into(),
                    patient: "P1".into(),
                    stain: "KI67".into(),
                    tiles: 2,
                    rows: rows([1.0, 0.0]),
                },
            ],
        }
    }

    #[test]
    fn writes_golden_text_and_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let m = sample();
        m.write(d.path()).unwrap();
        let idx = std::fs::read_to_string(d.path().join("attention/index.csv")).unwrap();
        let f1 = SlideAttention::file_name("P1_KI67");
        let f2 = SlideAttention::file_name("P2 HE");
        assert_eq!(idx, format!("slide,patient,stain,file,tiles\nP1_KI67,P1,KI67,{f1},2\nP2 HE,P2,HE,{f2},2\n"));
        assert!(!f2.contains(' '), "ids are encoded before reaching a path: {f2}");
        let one = std::fs::read_to_string(d.path().join("attention").join(&f2)).unwrap();
        assert_eq!(one, "repeat,fold,x,y,attention\n0,1,0,0,0.25\n0,1,256,0,0.75\n1,1,0,0,0.25\n1,1,256,0,0.75\n");
        let back = AttentionMaps::read(d.path()).unwrap();
        let mut want = m.slides.clone();
        want.sort_by(|a, b| a.slide.cmp(&b.slide));
        assert_eq!(back.slides, want);
    }

    #[test]
    fn refuses_bad_weights_tile_counts_and_file_names() {
        let d = tempfile::tempdir().unwrap();
        let mut m = sample();
        m.slides[0].rows[1].attention = 1.5;
        let e = m.write(d.path()).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("attention") && e.contains("[0, 1]"), "{e}");

        let d = tempfile::tempdir().unwrap();
        sample().write(d.path()).unwrap();
        let f = d.path().join("attention").join(SlideAttention::file_name("P1_KI67"));
        std::fs::write(&f, "repeat,fold,x,y,attention\n0,1,0,0,0.5\n").unwrap();
        let e = AttentionMaps::read(d.path()).unwrap_err().to_string();
        assert!(e.contains("repeat 0 has 1 tiles") && e.contains("P1_KI67"), "{e}");

        let idx = d.path().join("attention/index.csv");
        std::fs::write(&idx, "slide,patient,stain,file,tiles\nP1_KI67,P1,KI67,../x.csv,2\n").unwrap();
        let e = AttentionMaps::read_index(d.path()).unwrap_err().to_string();
        assert!(e.contains("column 'file'") && e.contains("encoded slide id"), "{e}");
    }
}
