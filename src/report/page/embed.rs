//! What the page embeds instead of linking: plotters SVGs made scalable (`viewBox`) and PNG
//! files as `data:image/png;base64` URIs, downscaled when large, so the page stays one
//! self-contained file.
use std::path::Path;

use base64::Engine as _;

use super::{PageError, Result};

/// Adds a `viewBox` to a plotters SVG (which has only `width` and `height`) so that the page
/// can scale it with CSS; the `figures/*.svg` files keep plotters' bytes.
pub(super) fn scalable(svg: &str) -> String {
    let attr = |name: &str| -> Option<&str> {
        let head = &svg[..svg.find('>')?];
        let i = head.find(&format!(" {name}=\""))? + name.len() + 3;
        head[i..].split('"').next()
    };
    match (attr("width"), attr("height")) {
        (Some(w), Some(h)) if svg.starts_with("<svg") && !svg[..svg.find('>').unwrap_or(0)].contains("viewBox") => {
            format!("<svg viewBox=\"0 0 {w} {h}\"{}", &svg[4..])
        }
        _ => svg.to_string(),
    }
}

/// Longest side, in pixels, of an image embedded in the page (twice its displayed height, for
/// high-density screens); larger PNGs are downscaled so that the page stays small.
pub const MAX_IMAGE_SIDE: u32 = 360;

/// PNG files up to this size are embedded unchanged whatever their dimensions.
pub const KEEP_BELOW_BYTES: usize = 64 * 1024;

/// A PNG file as a data URI, downscaled to [`MAX_IMAGE_SIDE`] when larger in pixels and in
/// bytes than [`KEEP_BELOW_BYTES`] (nearest neighbour for one-channel images, triangle filter
/// otherwise).
pub(super) fn png_data_uri(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| PageError::Read { path: path.to_path_buf(), source })?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(PageError::Contract {
            path: path.to_path_buf(),
            message: "expected a PNG file, found other bytes".into(),
        });
    }
    let bytes = downscale(&bytes, path)?;
    Ok(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

fn downscale(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let bad = |e: image::ImageError| PageError::Contract {
        path: path.to_path_buf(),
        message: format!("expected a decodable PNG: {e}"),
    };
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png).map_err(bad)?;
    let (w, h) = (img.width(), img.height());
    // small files (masks, positivity maps: few colours, compress well) stay sharp and as they are
    if w.max(h) <= MAX_IMAGE_SIDE || bytes.len() <= KEEP_BELOW_BYTES {
        return Ok(bytes.to_vec());
    }
    let filter = if matches!(img.color(), image::ColorType::L8 | image::ColorType::La8) {
        image::imageops::FilterType::Nearest
    } else {
        image::imageops::FilterType::Triangle
    };
    let small = img.resize(MAX_IMAGE_SIDE, MAX_IMAGE_SIDE, filter);
    let mut out = std::io::Cursor::new(Vec::new());
    small.write_to(&mut out, image::ImageFormat::Png).map_err(bad)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_images_are_downscaled_small_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("big.png");
        image::RgbImage::from_fn(900, 450, |x, y| {
            let h = blake3::hash(&[(x % 251) as u8, (y % 241) as u8, (x / 251) as u8, (y / 241) as u8]);
            image::Rgb([h.as_bytes()[0], h.as_bytes()[1], h.as_bytes()[2]])
        })
        .save(&big)
        .unwrap();
        assert!(std::fs::metadata(&big).unwrap().len() as usize > KEEP_BELOW_BYTES);
        let small = d.path().join("small.png");
        image::GrayImage::from_fn(400, 300, |x, _| image::Luma([if x > 20 { 255 } else { 0 }])).save(&small).unwrap();
        let decode = |uri: String| {
            let b64 = uri.strip_prefix("data:image/png;base64,").unwrap().to_string();
            image::load_from_memory(&base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
        };
        let b = decode(png_data_uri(&big).unwrap());
        assert_eq!((b.width(), b.height()), (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE / 2));
        let s = png_data_uri(&small).unwrap();
        assert!(
            s.ends_with(&base64::engine::general_purpose::STANDARD.encode(std::fs::read(&small).unwrap())),
            "small PNGs are embedded as they are"
        );
        std::fs::write(d.path().join("fake.png"), b"not a png").unwrap();
        assert!(png_data_uri(&d.path().join("fake.png")).unwrap_err().to_string().contains("fake.png"));
    }

    #[test]
    fn svgs_get_a_view_box() {
        let s = scalable("<svg width=\"600\" height=\"400\" xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>");
        assert!(s.starts_with("<svg viewBox=\"0 0 600 400\" width=\"600\""), "{s}");
        assert_eq!(scalable("<g/>"), "<g/>");
    }
}
