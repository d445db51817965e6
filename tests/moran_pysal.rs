//! Moran's I (`src/slide/moran.rs`) against PySAL's `esda.Moran` (binary rook weights on the
//! tile grid, empty cells left out) on the grids of `tests/data/moran_pysal.json`
//! (written by `tests/moran_pysal.py`).
use spatia::slide::moran::morans_i;

#[test]
fn morans_i_matches_pysal() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/moran_pysal.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for (k, c) in cases.iter().enumerate() {
        let (rows, cols) = (c["rows"].as_u64().unwrap() as usize, c["cols"].as_u64().unwrap() as usize);
        let values: Vec<Option<f64>> = c["values"].as_array().unwrap().iter().map(|x| x.as_f64()).collect();
        let m = morans_i(&values, rows, cols).unwrap_or_else(|| panic!("case {k}: no Moran's I"));
        assert_eq!(m.n as u64, c["n"].as_u64().unwrap(), "case {k}");
        assert_eq!(m.weights, c["weights"].as_f64().unwrap(), "case {k}");
        for (ours, theirs) in [(m.i, &c["i"]), (m.expected, &c["expected"])] {
            let theirs = theirs.as_f64().unwrap();
            assert!((ours - theirs).abs() < 1e-12, "case {k}: {ours} vs PySAL {theirs}");
        }
    }
}
