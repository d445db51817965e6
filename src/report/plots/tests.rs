use super::*;

fn step(time: f64, survival: f64, at_risk: usize, events: usize, censored: usize) -> KmStep {
    KmStep {
        time,
        survival,
        lower: (survival - 0.1).max(0.0),
        upper: (survival + 0.1).min(1.0),
        at_risk,
        events,
        censored,
    }
}

fn km_fixture(labels: &[&str]) -> KmData {
    KmData {
        groups: labels
            .iter()
            .enumerate()
            .map(|(i, l)| KmGroup {
                label: l.to_string(),
                steps: vec![
                    step(0.0, 1.0, 10, 0, 0),
                    step(300.0 + i as f64, 0.9, 10, 1, 0),
                    step(800.0, 0.9, 9, 0, 2),
                    step(1500.0, 0.7, 7, 2, 0),
                    step(3300.0, 0.7, 5, 0, 5),
                ],
            })
            .collect(),
        p_value: Some(0.0123),
        ci: 0.95,
    }
}

fn figure(name: &str, data: FigureData) -> Figure {
    Figure {
        name: name.into(),
        title: format!("{name} title"),
        arm: Some("arm<1>".into()),
        horizon: None,
        on_page: true,
        sources: vec![Source { stage: "eval".into(), kind: "evaluate".into(), key: "ab".repeat(32) }],
        data,
    }
}

fn every_kind() -> Vec<Figure> {
    let bins = vec![
        CalibrationBin { predicted: 0.1, observed: 0.12, lower: 0.05, upper: 0.2 },
        CalibrationBin { predicted: 0.3, observed: 0.25, lower: 0.15, upper: 0.4 },
    ];
    vec![
        figure("km", FigureData::Km(km_fixture(&["low", "high"]))),
        figure(
            "roc",
            FigureData::Roc(RocData {
                curves: vec![
                    RocCurve { horizon: 1095.0, points: vec![(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)], auc: 0.81 },
                    RocCurve { horizon: 1826.25, points: vec![(0.0, 0.0), (0.3, 0.8), (1.0, 1.0)], auc: 0.77 },
                ],
            }),
        ),
        figure(
            "calibration",
            FigureData::Calibration(CalibrationData {
                horizon: 1826.25,
                bins,
                others: vec![],
                curve: vec![(0.05, 0.06), (0.2, 0.18), (0.35, 0.3)],
                histogram: vec![5, 9, 3, 1, 0, 0, 0, 0, 0, 1],
                observed_by: "Kaplan–Meier".into(),
                ci: 0.95,
            }),
        ),
        figure(
            "forest",
            FigureData::Forest(ForestData {
                rows: vec![
                    ForestRow { label: "HE".into(), estimate: 0.05, lower: -0.02, upper: 0.11, arm_index: 1 },
                    ForestRow { label: "HE+IHC".into(), estimate: 0.08, lower: 0.01, upper: 0.15, arm_index: 2 },
                ],
                reference: 0.0,
                x_title: "ΔC (Harrell) vs the reference arm (95% CI)".into(),
            }),
        ),
        figure(
            "cif",
            FigureData::Cif(CifData {
                lines: vec![
                    CifLine {
                        label: "High risk: metastasis".into(),
                        group: "high".into(),
                        competing: false,
                        points: vec![(100.0, 0.1), (900.0, 0.3)],
                    },
                    CifLine {
                        label: "High risk: death".into(),
                        group: "high".into(),
                        competing: true,
                        points: vec![(400.0, 0.05)],
                    },
                ],
            }),
        ),
        figure(
            "training_loss_a",
            FigureData::Training(EpochData {
                curves: vec![
                    EpochCurve { label: "fold 0".into(), values: vec![3.0, 2.5, 2.2, 2.1], chosen: Some(3) },
                    EpochCurve { label: "fold 1".into(), values: vec![3.1, 2.7, 2.4, 2.3], chosen: None },
                ],
                y_title: "Training loss".into(),
            }),
        ),
    ]
}

fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{svg}"));
    doc.descendants().filter(|n| n.has_tag_name("text")).map(|n| n.text().unwrap_or("").trim().to_string()).collect()
}

fn meta_json(svg: &str) -> serde_json::Value {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let m = doc.descendants().find(|n| n.has_tag_name("metadata")).expect("a <metadata> element");
    serde_json::from_str(m.text().unwrap()).unwrap()
}

#[test]
fn every_kind_is_wellformed_print_sized_and_carries_its_provenance() {
    for f in every_kind() {
        for width in [style::SINGLE_COLUMN_MM, style::DOUBLE_COLUMN_MM] {
            let svg = render(&f, &Style::journal(width, TimeAxis::default()), &Meta::default()).unwrap();
            assert!(svg.starts_with(&format!("<svg width=\"{width}mm\"")), "{}", &svg[..120]);
            let t = texts(&svg);
            assert!(!t.is_empty(), "{}: no text", f.name);
            let m = meta_json(&svg);
            assert_eq!(m["figure"], f.name.as_str());
            assert_eq!(m["sources"][0]["key"], "ab".repeat(32));
            assert_eq!(m["arm"], "arm<1>");
            assert_eq!(m["plot_area"].as_array().unwrap().len(), 4);
            // every figure says what its axes are: no default "time", no bare numbers with a unit
            assert!(!t.iter().any(|s| s == "time"), "{}: {t:?}", f.name);
            assert!(!t.iter().any(|s| s.ends_with(".0") && s.len() > 4), "{}: long decimal tick {t:?}", f.name);
        }
    }
}

fn within(b: (f32, f32, f32, f32), w: f32, h: f32) -> bool {
    b.0 >= 0.0 && b.1 >= 0.0 && b.2 <= w && b.3 <= h
}

fn overlaps(b: (f32, f32, f32, f32), r: [i64; 4]) -> bool {
    let (x0, y0, x1, y1) = (r[0] as f32, r[1] as f32, r[2] as f32, r[3] as f32);
    b.0 < x1 && b.2 > x0 && b.1 < y1 && b.3 > y0
}

/// The legend's labels, as usvg lays them out with the compiled-in font, lie outside the plot
/// area and inside the figure, at both journal widths and the page's.
#[test]
fn legends_lie_outside_the_plot_area() {
    let legend_labels = |f: &Figure| -> Vec<String> {
        match &f.data {
            FigureData::Km(d) => d.groups.iter().map(|g| style::risk_group_label(&g.label)).collect(),
            FigureData::Roc(_) => vec!["3 y: AUC 0.810".into(), "chance".into()],
            FigureData::Calibration(_) => vec!["Observed (95% CI)".into(), "Smoothed".into(), "Ideal".into()],
            FigureData::Cif(d) => d.lines.iter().map(|l| l.label.clone()).collect(),
            FigureData::Training(d) => d.curves.iter().map(|c| c.label.clone()).collect(),
            FigureData::Forest(_) => vec![],
        }
    };
    let time = TimeAxis { data: TimeUnit::Days, display: TimeUnit::Years };
    let mut checked = 0;
    for f in every_kind() {
        for width in [style::SINGLE_COLUMN_MM, style::DOUBLE_COLUMN_MM, style::PAGE_WIDTH_MM] {
            let svg = render(&f, &Style::journal(width, time), &Meta::default()).unwrap();
            let m = meta_json(&svg);
            let r: Vec<i64> = m["plot_area"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            let r = [r[0], r[1], r[2], r[3]];
            let (w, h) = {
                let doc = roxmltree::Document::parse(&svg).unwrap();
                let vb: Vec<f32> =
                    doc.root_element().attribute("viewBox").unwrap().split(' ').map(|x| x.parse().unwrap()).collect();
                (vb[2], vb[3])
            };
            for label in legend_labels(&f) {
                let boxes = export::text_boxes(&svg, &label).unwrap();
                assert!(!boxes.is_empty(), "{} at {width} mm: legend label {label:?} not drawn", f.name);
                for b in boxes {
                    assert!(
                        !overlaps(b, r),
                        "{} at {width} mm: legend {label:?} {b:?} overlaps the plot area {r:?}",
                        f.name
                    );
                    assert!(
                        within(b, w, h),
                        "{} at {width} mm: legend {label:?} {b:?} leaves the figure {w}×{h}",
                        f.name
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 30, "{checked}");
}

#[test]
fn km_numbers_at_risk_sit_under_the_ticks_in_the_display_unit() {
    let d = km_fixture(&["low", "high"]);
    // at-risk lookup: the first recorded step at or after t
    assert_eq!(d.groups[0].at_risk(0.0), 10);
    assert_eq!(d.groups[0].at_risk(1000.0), 7);
    assert_eq!(d.groups[0].at_risk(1500.0), 7);
    assert_eq!(d.groups[0].at_risk(3300.0), 5);
    assert_eq!(d.groups[0].at_risk(3301.0), 0);
    let fig = figure("km", FigureData::Km(d));
    let years = TimeAxis { data: TimeUnit::Days, display: TimeUnit::Years };
    let svg = render(&fig, &Style::journal(85.0, years), &Meta::default()).unwrap();
    let t = texts(&svg);
    assert!(t.contains(&"Time (years)".to_string()), "{t:?}");
    for tick in ["0", "2", "4", "6", "8"] {
        assert!(t.contains(&tick.to_string()), "{tick} missing: {t:?}");
    }
    assert!(t.contains(&"log-rank p = 0.012".to_string()), "{t:?}");
    // the table's numbers are centred on the tick positions: same x as the tick labels
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let xs = |s: &str| -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some(s))
            .map(|n| n.attribute("x").unwrap().to_string())
            .collect()
    };
    // 2 years = 730.5 days: 9 at risk in both groups (the step at day 800), under the tick "2"
    let tick_x = xs("2");
    let n9 = xs("9");
    assert_eq!(tick_x.len(), 1);
    assert_eq!(n9, vec![tick_x[0].clone(), tick_x[0].clone()], "numbers at risk not under the tick");
    let days = render(&fig, &Style::journal(85.0, TimeAxis::default()), &Meta::default()).unwrap();
    let t = texts(&days);
    assert!(t.contains(&"Time (days)".to_string()) && t.contains(&"3000".to_string()), "{t:?}");
}

#[test]
fn same_input_same_bytes_in_every_format() {
    for f in every_kind() {
        let st = Style::journal(85.0, TimeAxis::default());
        let a = render(&f, &st, &Meta::default()).unwrap();
        let b = render(&f, &st, &Meta::default()).unwrap();
        assert_eq!(a, b);
        let same = |x: Vec<u8>, y: Vec<u8>, what: &str| {
            assert!(x == y, "{}: {what} differs ({} vs {} bytes)", f.name, x.len(), y.len());
        };
        same(export::png(&a, 150).unwrap(), export::png(&b, 150).unwrap(), "png");
        same(export::pdf(&a).unwrap(), export::pdf(&b).unwrap(), "pdf");
    }
}

#[test]
fn png_and_pdf_have_the_figure_size_and_embed_the_font() {
    let f = &every_kind()[0];
    let svg = render(f, &Style::journal(85.0, TimeAxis::default()), &Meta::default()).unwrap();
    let png = export::png(&svg, 300).unwrap();
    let dec = png::Decoder::new(std::io::Cursor::new(&png));
    let r = dec.read_info().unwrap();
    let info = r.info();
    // 85 mm at 300 dpi: 85 / 25.4 · 300 = 1003.9 → 1004 px
    assert_eq!(info.width, 1004);
    let dims = info.pixel_dims.unwrap();
    assert_eq!(dims.xppu, (300.0f64 / 0.0254).round() as u32);
    let pdf = export::pdf(&svg).unwrap();
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.starts_with("%PDF-"), "{}", &text[..20]);
    assert!(text.contains("/FontFile2"), "font not embedded");
    assert!(text.contains("DejaVuSans"), "not the DejaVu font");
    // page size: 85 mm = 240.94 pt
    assert!(
        text.contains("/MediaBox [0 0 240.94"),
        "{}",
        text.split("/MediaBox").nth(1).unwrap_or("").chars().take(40).collect::<String>()
    );
    assert!(export::png(&svg, 10).is_err());
}

#[test]
fn hostile_labels_are_escaped_everywhere() {
    let mut f = every_kind().remove(0);
    f.title = "<script>alert('x')</script>".into();
    f.arm = Some("a&b\"<c>".into());
    if let FigureData::Km(d) = &mut f.data {
        d.groups[0].label = "<b>&".into();
    }
    let svg = render(&f, &Style::page(TimeAxis::default()), &Meta::default()).unwrap();
    assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
    roxmltree::Document::parse(&svg).unwrap();
}

#[test]
fn empty_and_degenerate_inputs_are_clear_errors() {
    let st = Style::page(TimeAxis::default());
    let e = km::draw(&KmData { groups: vec![], p_value: None, ci: 0.95 }, "", &st).unwrap_err();
    assert!(e.to_string().contains("expected at least one group"), "{e}");
    let mut d = km_fixture(&["low"]);
    d.groups[0].steps[1].survival = f64::NAN;
    let e = km::draw(&d, "", &st).unwrap_err();
    assert!(e.to_string().contains("group \"low\" step 1"), "{e}");
    assert!(roc::draw(&RocData { curves: vec![] }, "", &st).is_err());
    assert!(forest::draw(&ForestData { rows: vec![], reference: 0.0, x_title: String::new() }, "", &st).is_err());
    assert!(cif::draw(&CifData { lines: vec![] }, "", &st).is_err());
    assert!(epochs::draw(&EpochData { curves: vec![], y_title: String::new() }, "", &st).is_err());
}

#[test]
fn selection_and_panels() {
    let figs = every_kind();
    let sel = |kind: &str| panels::Selection { kind: kind.into(), arm: None, horizon: None };
    assert_eq!(panels::select(&figs, &sel("km"), None).unwrap().name, "km");
    assert_eq!(panels::select(&figs, &sel("training_loss"), None).unwrap().name, "training_loss_a");
    let e = panels::select(&figs, &sel("calibration_recalibrated"), None).unwrap_err();
    assert!(e.contains("no calibration_recalibrated figure"), "{e}");
    assert!(panels::select(&figs, &sel("pie"), None).unwrap_err().contains("unknown figure kind"));
    let mut s = sel("roc");
    s.horizon = Some(1095.0);
    match panels::select(&figs, &s, None).unwrap().data {
        FigureData::Roc(d) => assert_eq!(d.curves.len(), 1),
        _ => panic!("not a ROC"),
    }
    s.horizon = Some(10.0);
    assert!(panels::select(&figs, &s, None).unwrap_err().contains("horizons recorded: 1095, 1826.25"));
    let mut s = sel("km");
    s.arm = Some("other".into());
    assert!(panels::select(&figs, &s, None).unwrap_err().contains("arms with one: arm<1>"));
    let st = Style::journal(174.0, TimeAxis::default());
    let svg = panels::compose(&figs[..4], 2, &st, &Meta::default()).unwrap();
    let t = texts(&svg);
    for l in ["A", "B", "C", "D"] {
        assert!(t.contains(&l.to_string()), "panel {l} missing");
    }
    assert!(svg.starts_with("<svg width=\"174mm\""));
    assert!(!export::png(&svg, 100).unwrap().is_empty());
    assert_eq!(panels::letter(0), "A");
    assert_eq!(panels::letter(26), "AA");
}

#[test]
fn long_titles_wrap_inside_the_figure() {
    let mut f = every_kind().remove(0);
    f.title = "Kaplan–Meier by risk group: model=mil,modalities=HE+IHC+clinical,fusion=late,extra=long-setting".into();
    let st = Style::page(TimeAxis::default());
    let svg = render(&f, &st, &Meta::default()).unwrap();
    let lines = canvas::wrap(&f.title, (st.width() - 2 * canvas::PAD) as f64, st.large(), true);
    assert!(lines.len() >= 2, "{lines:?}");
    for l in &lines {
        let b = export::text_boxes(&svg, l).unwrap();
        assert_eq!(b.len(), 1, "{l:?}");
        assert!(b[0].2 <= st.width() as f32, "{l:?} {b:?}");
    }
}
