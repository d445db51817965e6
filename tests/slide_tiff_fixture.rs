//! The pure-Rust TIFF path on files generated here with the `tiff` crate: a stripped,
//! LZW/Deflate-compressed pyramid in the main IFD chain, with µm/px from OME-XML or from TIFF
//! resolution tags. Lossless, so every pixel read back must equal what was written.
use image::RgbImage;
use spatia::slide::{MppSource, Slide};
use std::path::Path;
use tiff::encoder::colortype::RGB8;
use tiff::encoder::{Compression, DeflateLevel, Rational, TiffEncoder};
use tiff::tags::{Predictor, ResolutionUnit, Tag};

fn level0() -> RgbImage {
    RgbImage::from_fn(200, 120, |x, y| {
        let inside = ((x as i32 - 100).pow(2) + (y as i32 - 60).pow(2) * 3) < 60 * 60;
        if inside {
            image::Rgb([150 + (x % 50) as u8, 60 + (y % 40) as u8, 170])
        } else {
            image::Rgb([250, 250, 248])
        }
    })
}

fn write_pyramid(
    path: &Path,
    compression: Compression,
    description: Option<&str>,
    res_cm: Option<u32>,
) -> Vec<RgbImage> {
    let mut levels = vec![level0()];
    for _ in 0..2 {
        let prev = levels.last().unwrap();
        let (w, h) = (prev.width() / 2, prev.height() / 2);
        levels.push(image::imageops::resize(prev, w, h, image::imageops::FilterType::Triangle));
    }
    let file = std::fs::File::create(path).unwrap();
    let mut enc = TiffEncoder::new(file).unwrap().with_compression(compression).with_predictor(Predictor::Horizontal);
    for (i, img) in levels.iter().enumerate() {
        let mut im = enc.new_image::<RGB8>(img.width(), img.height()).unwrap();
        im.rows_per_strip(16).unwrap();
        if i == 0 {
            if let Some(d) = description {
                im.encoder().write_tag(Tag::ImageDescription, d).unwrap();
            }
        }
        if let Some(r) = res_cm {
            im.resolution(ResolutionUnit::Centimeter, Rational { n: r, d: 1 });
        }
        im.write_data(img.as_raw()).unwrap();
    }
    levels
}

#[test]
fn ome_pyramid_in_the_main_chain_lzw() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pyr.ome.tif");
    let ome = r#"<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" PhysicalSizeX="500" PhysicalSizeXUnit="nm" PhysicalSizeY="0.5" SizeC="3" SizeT="1" SizeX="200" SizeY="120" SizeZ="1" Type="uint8"></Pixels></Image></OME>"#;
    let levels = write_pyramid(&p, Compression::Lzw, Some(ome), None);
    let s = Slide::open(&p, None).unwrap();
    let m = s.meta();
    assert_eq!(m.vendor, "ome-tiff");
    assert_eq!(s.pixel_reader(), "ome-tiff");
    assert_eq!((m.mpp_x, m.mpp_y, m.mpp_source), (Some(0.5), Some(0.5), Some(MppSource::Vendor)));
    let dims: Vec<(u64, u64, f64)> = m.levels.iter().map(|l| (l.width, l.height, l.downsample)).collect();
    assert_eq!(dims, vec![(200, 120, 1.0), (100, 60, 2.0), (50, 30, 4.0)]);
    for (i, want) in levels.iter().enumerate() {
        let got = s.read_region(i, 0, 0, want.width(), want.height()).unwrap();
        assert_eq!(&got, want, "level {i}");
    }
    // a region across strip boundaries, partly outside
    let got = s.read_region(0, 190, 10, 20, 20).unwrap();
    for y in 0..20 {
        for x in 0..20 {
            let want = if 190 + x < 200 { *levels[0].get_pixel(190 + x, 10 + y) } else { image::Rgb([255, 255, 255]) };
            assert_eq!(*got.get_pixel(x, y), want, "({x}, {y})");
        }
    }
}

#[test]
fn plain_tiff_with_resolution_tags_deflate() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plain.tif");
    // 20 000 px/cm = 0.5 µm/px
    let levels = write_pyramid(&p, Compression::Deflate(DeflateLevel::Fast), None, Some(20_000));
    let s = Slide::open(&p, None).unwrap();
    assert_eq!(s.meta().vendor, "tiff");
    assert_eq!(s.meta().mpp_source, Some(MppSource::TiffResolution));
    assert!((s.meta().mpp_x.unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(s.level_count(), 3);
    assert_eq!(s.read_region(1, 0, 0, 100, 60).unwrap(), levels[1]);
    // truncating the last strip's bytes is caught at open
    let bytes = std::fs::read(&p).unwrap();
    let cut = dir.path().join("cut.tif");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let e = Slide::inspect(&cut).unwrap_err();
    assert!(e.to_string().contains("cut.tif"), "{e}");
}

#[test]
fn ome_xml_with_a_namespace_prefix_and_single_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("prefixed.ome.tif");
    let ome = "<?xml version='1.0'?><ome:OME xmlns:ome='http://www.openmicroscopy.org/Schemas/OME/2016-06'>\
               <ome:Image ID='Image:0'><ome:Pixels ID='Pixels:0' PhysicalSizeX='0.25' PhysicalSizeXUnit='&#181;m' \
               PhysicalSizeY='250' PhysicalSizeYUnit='nm' SizeX='200' SizeY='120'/></ome:Image></ome:OME>";
    write_pyramid(&p, Compression::Lzw, Some(ome), None);
    let s = Slide::open(&p, None).unwrap();
    let m = s.meta();
    assert_eq!(m.vendor, "ome-tiff");
    assert_eq!((m.mpp_x, m.mpp_y, m.mpp_source), (Some(0.25), Some(0.25), Some(MppSource::Vendor)));
}

#[test]
fn malformed_ome_xml_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.ome.tif");
    let ome = concat!(
        r#"<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">"#,
        r#"<Image ID="Image:0"><Pixels PhysicalSizeX="0.5" PhysicalSizeY="0.5"></Image></OME>"#
    );
    write_pyramid(&p, Compression::Lzw, Some(ome), None);
    let e = Slide::open(&p, None).expect_err("malformed OME-XML must be refused").to_string();
    assert!(e.contains("broken.ome.tif") && e.contains("not well-formed XML"), "{e}");
}
