//! Plan-time limits that depend on the data: a tile µm/px finer than a slide's own is refused
//! when the DAG is built, at the spec's `file:line:col`, and the slides' header facts are
//! remembered beside the stat cache so an unchanged slide is not reopened on every plan.
mod common;
use common::{project, spatia, text};

const SPEC: &str = "name: p\ncohort:\n  clinical: demo-data/clinical.csv\n  slides: demo-data/slides.csv\n  time: dmfs_days\n  event: dm\nstages:\n  ingest: {kind: ingest}\n  tiles: {kind: tile, needs: [ingest], mpp: 0.5, size: 256}\n";

#[test]
fn tile_mpp_is_checked_against_each_slide_and_the_facts_are_remembered() {
    let d = project();
    let g = spatia(
        d.path(),
        &[
            "demo",
            "generate",
            "--patients",
            "2",
            "--size",
            "1200",
            "--stains",
            "HE",
            "--seed",
            "2",
            "--out",
            "demo-data",
        ],
    );
    assert!(g.status.success(), "{}", text(&g));
    std::fs::write(d.path().join("spec.yaml"), SPEC).unwrap();
    std::fs::create_dir_all(d.path().join("cache")).unwrap();
    let o = spatia(d.path(), &["plan", "spec.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let memo = d.path().join("cache/slide-facts.tsv");
    let facts = std::fs::read_to_string(&memo).expect("slide facts remembered");
    assert_eq!(facts.lines().count(), 2, "{facts}");

    // finer than the slide's own 0.5 µm/px: refused at the parameter, naming the slide
    std::fs::write(d.path().join("spec.yaml"), SPEC.replace("mpp: 0.5", "mpp: 0.2")).unwrap();
    let o = spatia(d.path(), &["plan", "spec.yaml"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("spec.yaml:9:45:")
            && t.contains("slide P")
            && t.contains("`mpp: 0.2` is finer than the slide's own 0.5 µm/px"),
        "{t}"
    );

    // the remembered facts are what the check reads: a memo saying 5 µm/px refuses 0.5
    let changed: String = facts.lines().map(|l| format!("{}\t5\n", l.rsplit_once('\t').unwrap().0)).collect();
    std::fs::write(&memo, changed).unwrap();
    std::fs::write(d.path().join("spec.yaml"), SPEC).unwrap();
    let o = spatia(d.path(), &["plan", "spec.yaml"]);
    assert!(o.status.code() == Some(2) && text(&o).contains("finer than the slide's own 5 µm/px"), "{}", text(&o));
}
