//! Ids, input locations and leaks, end to end on the built binary: ids never become raw path
//! components and are shown with bidi controls neutralised; ids with control characters are
//! refused; input files and slides must lie inside the project or a declared data root;
//! errors quote no file contents beyond one cell; a slide's label image never leaves it; a
//! write refused by `ulimit -f` is reported with its path instead of killing the process.
mod common;
use common::*;
use std::path::{Path, PathBuf};

const RLO: char = '\u{202E}';

/// A project with an empty `spatia.toml` (no data root).
fn bare_project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("spatia.toml"), "").unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

/// Runs spatia expecting exit `code` (2: a user error before anything runs; 1: a stage
/// failed) and every `want` in the output.
fn fails_with(code: i32, dir: &Path, args: &[&str], want: &[&str]) -> String {
    let o = spatia(dir, args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(code), "expected exit {code}: {t}");
    assert!(!t.contains("panicked"), "{t}");
    for w in want {
        assert!(t.contains(w), "expected `{w}` in: {t}");
    }
    t
}

/// Every file under `dir` (following no symlink).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

const SPEC_PER_PATIENT: &str = "name: ids\ncohort: {clinical: clin.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n  per: {kind: command, needs: [ingest], foreach: patient, cmd: 'printf %s \"$SPATIA_ITEM\" > id.txt'}\n  all: {kind: command, needs: [per], cmd: 'ls \"$SPATIA_NEEDS_PER\" > links.txt; cut -f1 \"$SPATIA_NEEDS_PER_ITEMS\" > ids.txt; for l in $(cut -f2 \"$SPATIA_NEEDS_PER_ITEMS\"); do cat \"$l/id.txt\"; echo; done > via_links.txt'}\n";

/// Hostile ids (`../../../victim`, `a/b`, `..`) run per-patient shards and a gather: nothing is
/// written outside the project, the gather's links are path components, and the index maps
/// every id to its own shard.
#[test]
fn ids_never_become_path_components() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("a/b/proj");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("spatia.toml"), "").unwrap();
    std::fs::write(outer.path().join("victim"), "keep me").unwrap();
    let ids = ["../../../victim", "a/b", "..", "P1"];
    let mut csv = String::from("patient_id,age,time,event\n");
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!("\"{id}\",{},{},{}\n", 50 + i, 100 + i, i % 2));
    }
    write(&root, "clin.csv", &csv);
    write(&root, "s.yaml", SPEC_PER_PATIENT);
    let o = spatia(&root, &["run", "s.yaml", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(outer.path().join("victim")).unwrap(), "keep me");
    let outer_files: Vec<PathBuf> = files(outer.path()).into_iter().filter(|p| !p.starts_with(&root)).collect();
    assert_eq!(outer_files, vec![outer.path().join("victim")], "files written outside the project");
    let run = last_run(&root);
    let key = run["arms"]["main"]["all"].as_str().unwrap();
    let out = root.join("cache/entries").join(&key[..2]).join(key).join("out");
    let links = std::fs::read_to_string(out.join("links.txt")).unwrap();
    for l in links.lines() {
        assert!(!l.contains('/') && !l.starts_with('.'), "link `{l}` is a raw id");
        assert!(l.len() <= 59, "{l}");
    }
    assert_eq!(links.lines().count(), ids.len(), "{links}");
    let mut got: Vec<String> =
        std::fs::read_to_string(out.join("ids.txt")).unwrap().lines().map(str::to_string).collect();
    got.sort();
    let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    // each link leads to its own id's shard
    let idx = std::fs::read_to_string(out.join("ids.txt")).unwrap();
    let via = std::fs::read_to_string(out.join("via_links.txt")).unwrap();
    assert_eq!(idx, via);
}

/// A patient id with U+202E (right-to-left override): the page (with `show_patient_ids`), the
/// terminal output of `dag`, `plan --json` and `run --json` show it as `<U+202E>` or `\u202e`,
/// never raw.
#[test]
fn bidi_controls_never_reach_the_page_or_terminal() {
    let d = project();
    let o = spatia(
        d.path(),
        &[
            "demo",
            "generate",
            "--out",
            "demo-data",
            "--patients",
            "4",
            "--size",
            "1200",
            "--stains",
            "HE",
            "--seed",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let evil = format!("P{RLO}001");
    for f in ["demo-data/clinical.csv", "demo-data/slides.csv"] {
        let p = d.path().join(f);
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, t.replace("P001,", &format!("{evil},"))).unwrap();
    }
    write(
        d.path(),
        "s.yaml",
        "name: bidi\nseed: 3\ncohort:\n  clinical: demo-data/clinical.csv\n  slides: demo-data/slides.csv\n  time: dmfs_days\n  event: dm\n  causes: {1: metastasis, 2: death}\n  covariates: [age]\nstages:\n  ingest: {kind: ingest}\n  tiles: {kind: tile, needs: [ingest], mpp: 2, size: 128}\n  report: {kind: report, needs: [ingest, tiles], show_patient_ids: true}\n",
    );
    let o = spatia(d.path(), &["run", "s.yaml", "--json"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains(RLO), "raw U+202E in the run output");
    assert!(t.contains("\\u202e"), "{t}");
    let run = last_run(d.path());
    let key = run["arms"]["main"]["report"].as_str().unwrap();
    let out = d.path().join("cache/entries").join(&key[..2]).join(key).join("out");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(!html.contains(RLO), "raw U+202E on the page");
    assert!(html.contains("P&lt;U+202E&gt;001") || html.contains("P<U+202E>001"), "the id is not shown escaped");
    for f in files(&out) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(RLO), "raw U+202E in {}", f.display());
    }
    for args in
        [&["dag", "s.yaml"][..], &["plan", "s.yaml", "--json"][..], &["plan", "s.yaml"][..], &["show", "tiles"][..]]
    {
        let o = spatia(d.path(), args);
        let t = text(&o);
        assert!(o.status.success(), "{args:?}: {t}");
        assert!(!t.contains(RLO), "{args:?} prints a raw U+202E: {t}");
    }
    let t = text(&spatia(d.path(), &["dag", "s.yaml"]));
    assert!(t.contains("P<U+202E>001_HE"), "{t}");
}

/// Ids with a control character and empty ids are refused when the cohort is read, naming
/// the file, row and column.
#[test]
fn control_characters_in_ids_are_refused() {
    let d = bare_project();
    write(
        d.path(),
        "s.yaml",
        "name: c\ncohort: {clinical: clin.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n",
    );
    write(d.path(), "clin.csv", "patient_id,age,time,event\nP1,50,10,1\n\"P\x1b[31m2\",51,11,0\n");
    fails_with(1, d.path(), &["run", "s.yaml"], &["clin.csv", "row 2 (line 3), column `patient_id`", "U+001B"]);
    // per-patient stages read the ids when the DAG is built: same refusal
    write(d.path(), "s.yaml", SPEC_PER_PATIENT);
    fails_with(2, d.path(), &["plan", "s.yaml"], &["clin.csv", "row 2 (line 3), column `patient_id`", "U+001B"]);
    write(d.path(), "clin.csv", "patient_id,age,time,event\nP1,50,10,1\n,51,11,0\n");
    fails_with(2, d.path(), &["plan", "s.yaml"], &["clin.csv", "row 2 (line 3), column `patient_id`", "empty id"]);
}

/// Input files (spec inputs and every slide of a manifest) must lie inside the project or a
/// data root declared in `spatia.toml`, after resolving symlinks and `..`.
#[test]
fn input_files_need_the_project_or_a_data_root() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("proj");
    let data = outer.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    write(&data, "clin.csv", "patient_id,age,time,event\nP1,50,10,1\nP2,51,11,0\n");
    std::fs::write(root.join("spatia.toml"), "").unwrap();
    write(
        &root,
        "s.yaml",
        "name: r\ncohort:\n  clinical: ../data/clin.csv\n  covariates: [age]\nstages:\n  ingest: {kind: ingest}\n",
    );
    fails_with(2, &root, &["run", "s.yaml"], &["s.yaml:3:13", "is outside the project", "data_roots = ["]);
    // /etc/passwd: refused before it is read; its first line never printed
    write(&root, "p.yaml", "name: r\ncohort:\n  clinical: ../../../../../../../../etc/passwd\n  covariates: [age]\nstages:\n  ingest: {kind: ingest}\n");
    let t = fails_with(2, &root, &["run", "p.yaml"], &["p.yaml:3:13", "/etc/passwd is outside the project"]);
    assert!(!t.contains("root:"), "{t}");
    // a symlink inside the project that leads out of it is outside too
    std::os::unix::fs::symlink(&data, root.join("link")).unwrap();
    write(
        &root,
        "l.yaml",
        "name: r\ncohort:\n  clinical: link/clin.csv\n  covariates: [age]\nstages:\n  ingest: {kind: ingest}\n",
    );
    fails_with(2, &root, &["run", "l.yaml"], &["l.yaml:3:13", "is outside the project"]);
    // declared (relative to the root): accepted
    std::fs::write(root.join("spatia.toml"), "data_roots = [\"../data\"]\n").unwrap();
    for spec in ["s.yaml", "l.yaml"] {
        let o = spatia(&root, &["run", spec, "-q"]);
        assert!(o.status.success(), "{spec}: {}", text(&o));
    }
    // a manifest row naming a slide outside every root, by absolute path and by `..`
    write(&root, "clin.csv", "patient_id,age,time,event\nP1,50,10,1\nP2,51,11,0\n");
    write(outer.path(), "elsewhere/x.svs", "not a slide");
    for (i, cell) in
        [outer.path().join("elsewhere/x.svs").display().to_string(), "../elsewhere/x.svs".into()].iter().enumerate()
    {
        write(&root, "slides.csv", &format!("patient_id,path,stain\nP1,{cell},HE\n"));
        write(&root, &format!("m{i}.yaml"), "name: m\ncohort: {clinical: clin.csv, slides: slides.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n");
        fails_with(
            2,
            &root,
            &["run", &format!("m{i}.yaml")],
            &["slides.csv: row 1 (line 2), column `path`: slide", "is outside the project"],
        );
    }
    // a malformed spatia.toml is an error at its line and column
    std::fs::write(root.join("spatia.toml"), "# roots\ndata_roots = \"../data\"\n").unwrap();
    fails_with(2, &root, &["run", "s.yaml"], &["spatia.toml:2:14", "`data_roots` must be a list"]);
}

/// Errors quote no line of a file: a clinical table whose header is a secret names the
/// missing column and the header's size, never the header.
#[test]
fn errors_quote_no_file_contents() {
    let d = bare_project();
    write(d.path(), "secret.csv", "root:x:0:0:SECRET-PASSPHRASE:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin\n");
    write(
        d.path(),
        "s.yaml",
        "name: c\ncohort: {clinical: secret.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n",
    );
    let o = spatia(d.path(), &["run", "s.yaml"]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(t.contains("no column `patient_id`") && t.contains("secret.csv"), "{t}");
    assert!(!t.contains("SECRET") && !t.contains("daemon"), "file contents in the error: {t}");
    // the manifest: missing columns named, header not echoed
    write(d.path(), "clin.csv", "patient_id,age,time,event\nP1,50,10,1\n");
    write(d.path(), "m.yaml", "name: c\ncohort: {clinical: clin.csv, slides: secret.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n");
    let t = text(&spatia(d.path(), &["run", "m.yaml"]));
    assert!(t.contains("no column `patient_id`, `path`, `stain`"), "{t}");
    assert!(!t.contains("SECRET"), "{t}");
    // an offending cell is quoted cut to 40 characters
    let long = "x".repeat(300);
    write(d.path(), "clin.csv", &format!("patient_id,age,time,event\nP1,{long},10,1\n"));
    write(
        d.path(),
        "s2.yaml",
        "name: c\ncohort: {clinical: clin.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n",
    );
    let t = fails_with(1, d.path(), &["run", "s2.yaml"], &["row 1, column `age`", "is not a number"]);
    assert!(!t.contains(&"x".repeat(41)), "{t}");
}

/// A duplicated header column is an error naming the file and column (clinical table and
/// manifest); a covariate whose square overflows names its column and row.
#[test]
fn duplicated_columns_and_huge_covariates() {
    let d = bare_project();
    write(
        d.path(),
        "s.yaml",
        "name: c\ncohort: {clinical: clin.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n",
    );
    write(d.path(), "clin.csv", "patient_id,age,time,event,age\nP1,50,10,1,70\n");
    fails_with(
        1,
        d.path(),
        &["run", "s.yaml"],
        &["clin.csv", "column `age` is written twice in the header (columns 2 and 5)"],
    );
    write(d.path(), "clin.csv", "patient_id,age,time,event\nP1,50,10,1\nP2,1e308,12,0\n");
    fails_with(
        1,
        d.path(),
        &["run", "s.yaml"],
        &["clin.csv: row 2, column `age`: `1e308` is too large to standardise"],
    );
    write(d.path(), "clin.csv", "patient_id,age,time,event\nP1,50,10,1\n");
    write(d.path(), "slides.csv", "patient_id,path,Stain,stain\nP1,a.svs,HE,HE\n");
    write(d.path(), "m.yaml", "name: c\ncohort: {clinical: clin.csv, slides: slides.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n");
    fails_with(
        2,
        d.path(),
        &["run", "m.yaml"],
        &["slides.csv", "column `stain` is written twice in the header (columns 3 and 4)"],
    );
}

/// Renders a small Aperio-style slide (tissue ellipse on white) with a label image of pure
/// yellow and a level-0 description naming a patient; returns nothing, writes `path`.
fn slide_with_label(path: &Path, secret: &str) {
    use spatia::demo::tiff_writer::{PyramidOptions, PyramidWriter};
    let (w, h) = (1024u32, 768u32);
    let description = format!("Aperio Image Library v10.0.51\n{w}x{h} [0,0 {w}x{h}] (256x256) JPEG/RGB Q=90|AppMag = 20|MPP = 0.5|Title = {secret}");
    let mut pw = PyramidWriter::create(
        path,
        PyramidOptions {
            width: w,
            height: h,
            n_levels: 3,
            mpp: 0.5,
            quality: 90,
            description,
            software: "test".into(),
        },
    )
    .unwrap();
    for ty in 0..pw.tiles_y() {
        let row: Vec<Vec<u8>> = (0..pw.tiles_x())
            .map(|tx| {
                let mut t = vec![0u8; 256 * 256 * 3];
                for y in 0..256u32 {
                    for x in 0..256u32 {
                        let (gx, gy) = ((tx * 256 + x) as f64, (ty * 256 + y) as f64);
                        let inside = ((gx - 512.0) / 420.0).powi(2) + ((gy - 384.0) / 300.0).powi(2) < 1.0;
                        let px = if inside {
                            [150 + ((gx as u32 * 7 + gy as u32 * 3) % 40) as u8, 70, 160]
                        } else {
                            [245, 245, 243]
                        };
                        let i = ((y * 256 + x) * 3) as usize;
                        t[i..i + 3].copy_from_slice(&px);
                    }
                }
                t
            })
            .collect();
        pw.push_row(row).unwrap();
    }
    let label: Vec<u8> = (0..96 * 48).flat_map(|_| [255u8, 255, 0]).collect();
    pw.set_label(label, 96, 48, &format!("Aperio Image Library v10.0.51\nlabel 96x48 {secret}")).unwrap();
    pw.finish().unwrap();
}

/// The label's colour (pure yellow): neither tissue, background nor any QC overlay colour.
fn is_label_yellow(p: &[u8]) -> bool {
    p[0] > 200 && p[1] > 200 && p[2] < 80
}

/// A slide's label image (and the patient name in its description) never leaves the slide:
/// not in the outputs of ingest and tile, the QC images, the logs, the run record or the slide
/// CLI verbs' output.
#[test]
fn label_images_never_leave_the_slide() {
    let d = bare_project();
    let secret = "JANE-DOE-XYZZY";
    std::fs::create_dir_all(d.path().join("slides")).unwrap();
    slide_with_label(&d.path().join("slides/a.svs"), secret);
    let info = spatia(d.path(), &["slide", "info", "slides/a.svs", "--json"]);
    assert!(info.status.success(), "{}", text(&info));
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    // the fixture is what it claims: OpenSlide lists the label as an associated image
    assert_eq!(v["vendor"], "aperio", "{v}");
    assert!(v["associated"].as_array().unwrap().iter().any(|a| a == "label"), "{v}");
    write(d.path(), "clin.csv", "patient_id,age,time,event\nA,50,100,1\nB,60,200,0\n");
    write(d.path(), "slides.csv", "patient_id,path,stain\nA,slides/a.svs,HE\n");
    write(
        d.path(),
        "s.yaml",
        "name: label\ncohort: {clinical: clin.csv, slides: slides.csv, covariates: [age]}\nstages:\n  ingest: {kind: ingest}\n  tiles: {kind: tile, needs: [ingest], mpp: 1, size: 128}\n",
    );
    let mut outputs = vec![info];
    outputs.push(spatia(d.path(), &["run", "s.yaml", "--json"]));
    assert!(outputs[1].status.success(), "{}", text(&outputs[1]));
    outputs.push(spatia(d.path(), &["slide", "info", "slides/a.svs"]));
    outputs.push(spatia(d.path(), &["slide", "tiles", "slides/a.svs", "--mpp", "1", "--size", "128", "--out", "qc"]));
    assert!(outputs[3].status.success(), "{}", text(&outputs[3]));
    for o in &outputs {
        assert!(!text(o).contains("XYZZY"), "{}", text(o));
    }
    let mut pngs = 0;
    for f in files(d.path()) {
        if f.starts_with(d.path().join("slides")) {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("XYZZY"), "the label's text reached {}", f.display());
        if f.extension().is_some_and(|e| e == "png") {
            pngs += 1;
            let img = image::open(&f).unwrap().to_rgb8();
            let yellow = img.pixels().filter(|p| is_label_yellow(&p.0)).count();
            assert_eq!(yellow, 0, "label pixels in {}", f.display());
        }
    }
    assert!(pngs >= 3, "expected the QC images of tile and of `slide tiles`, found {pngs}");
}

/// `ulimit -f`: a stage whose output passes the file-size limit fails with a message naming the
/// file, instead of the process dying of SIGXFSZ with no message.
#[test]
fn file_size_limit_is_reported_with_the_path() {
    let d = bare_project();
    let mut csv = String::from("patient_id,age,time,event,note\n");
    for i in 0..3000 {
        csv.push_str(&format!("P{i},{},{},{},{}\n", 40 + i % 40, 100 + i, i % 2, "n".repeat(60)));
    }
    write(d.path(), "clin.csv", &csv);
    write(d.path(), "s.yaml", "name: big\ncohort: {clinical: clin.csv, covariates: [age, note], categorical: [note]}\nstages:\n  ingest: {kind: ingest}\n");
    // 64 KiB: the input (read) is larger, cohort.csv (written) passes the limit
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -f 64; exec {} run s.yaml -q", bin()))
        .current_dir(d.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.code().is_some(), "killed by a signal: {t}");
    assert!(!o.status.success(), "{t}");
    assert!(!t.contains("File size limit exceeded") && !t.contains("panicked"), "{t}");
    assert!(t.contains("cohort.csv") && t.contains("File too large"), "the error does not name the file: {t}");
}
