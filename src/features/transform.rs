//! The input transform a model encoder declares: resize, scale to [0, 1], per-channel
//! mean/std normalisation, laid out as a CHW float tensor.
//!
//! # Formula
//! `out[c][y][x] = (resized[y][x][c] · scale − mean[c]) / std[c]`; resizing uses the `image`
//! crate's bilinear (`Triangle`) filter and is skipped when the tile already has the size.
//!
//! # Assumptions
//! 8-bit RGB tiles; models trained with torchvision-style `ToTensor()` + `Normalize(mean, std)`
//! use `scale = 1/255` and ImageNet statistics ([`InputTransform::imagenet`]).
//!
//! # Errors
//! [`FeatureError::InvalidInput`] for a zero size or a non-positive std (see
//! [`InputTransform::validate`]).
use super::{FeatureError, RgbImage};
use serde::{Deserialize, Serialize};

/// A declared input transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTransform {
    /// Model input side in pixels (square); tiles of another size are resized.
    pub size: u32,
    /// Multiplier applied to 8-bit values before normalisation (1/255 maps to [0, 1]).
    #[serde(default = "default_scale")]
    pub scale: f32,
    /// Per-channel mean subtracted after scaling (R, G, B).
    #[serde(default)]
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after subtracting the mean.
    #[serde(default = "default_std")]
    pub std: [f32; 3],
}

fn default_scale() -> f32 {
    1.0 / 255.0
}
fn default_std() -> [f32; 3] {
    [1.0; 3]
}

impl InputTransform {
    /// ImageNet normalisation (torchvision's `Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])`).
    pub fn imagenet(size: u32) -> Self {
        InputTransform { size, scale: 1.0 / 255.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }
    }

    /// Scaling to [0, 1] only.
    pub fn unit(size: u32) -> Self {
        InputTransform { size, scale: 1.0 / 255.0, mean: [0.0; 3], std: [1.0; 3] }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), FeatureError> {
        if self.size == 0 {
            return Err(FeatureError::InvalidInput("transform: expected size ≥ 1, found 0".into()));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || !self.scale.is_finite() {
            return Err(FeatureError::InvalidInput(format!(
                "transform: expected finite scale and std > 0, found scale {} std {:?}",
                self.scale, self.std
            )));
        }
        Ok(())
    }

    /// A canonical text form, part of a model encoder's digest.
    pub fn canonical(&self) -> String {
        format!(
            "size={};scale={:e};mean={:e},{:e},{:e};std={:e},{:e},{:e};resize=bilinear",
            self.size, self.scale, self.mean[0], self.mean[1], self.mean[2], self.std[0], self.std[1], self.std[2]
        )
    }

    /// Number of floats per transformed tile (3·size²).
    pub fn len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Whether a transformed tile holds no values (never, for a validated transform).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies the transform: a CHW float vector of length [`Self::len`].
    pub fn apply(&self, tile: &RgbImage) -> Result<Vec<f32>, FeatureError> {
        if tile.width() == 0 || tile.height() == 0 {
            return Err(FeatureError::InvalidInput(format!(
                "transform: expected a non-empty tile, found {}×{}",
                tile.width(),
                tile.height()
            )));
        }
        let resized;
        let img = if tile.width() == self.size && tile.height() == self.size {
            tile
        } else {
            resized = image::imageops::resize(tile, self.size, self.size, image::imageops::FilterType::Triangle);
            &resized
        };
        let plane = self.size as usize * self.size as usize;
        let mut out = vec![0.0f32; 3 * plane];
        // Per channel: value = v * (scale / std) - mean / std, via a 256-entry table.
        let lut: [[f32; 256]; 3] =
            std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 * self.scale - self.mean[c]) / self.std[c]));
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
            r[i] = lut[0][px[0] as usize];
            g[i] = lut[1][px[1] as usize];
            b[i] = lut[2][px[2] as usize];
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_in_chw_order() {
        let mut img = RgbImage::new(2, 2);
        img.put_pixel(1, 0, image::Rgb([255, 0, 51]));
        let t = InputTransform { size: 2, scale: 1.0 / 255.0, mean: [0.5, 0.0, 0.0], std: [0.5, 1.0, 2.0] };
        let v = t.apply(&img).unwrap();
        assert_eq!(v.len(), 12);
        assert!((v[1] - 1.0).abs() < 1e-6); // R at (x=1,y=0): (1-0.5)/0.5
        assert!((v[0] + 1.0).abs() < 1e-6); // R at (0,0): (0-0.5)/0.5
        assert!((v[8 + 1] - 0.1).abs() < 1e-6); // B: 0.2/2
    }

    #[test]
    fn resizes_and_validates() {
        let img = RgbImage::from_pixel(7, 5, image::Rgb([10, 20, 30]));
        let v = InputTransform::unit(4).apply(&img).unwrap();
        assert_eq!(v.len(), 48);
        assert!((v[0] - 10.0 / 255.0).abs() < 1e-6, "a uniform tile stays uniform");
        let bad = InputTransform { std: [1.0, 0.0, 1.0], ..InputTransform::unit(4) };
        assert!(bad.validate().unwrap_err().to_string().contains("std"));
    }
}
