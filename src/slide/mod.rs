//! Whole-slide images (issue 4): reading through OpenSlide and a pure-Rust OME-TIFF path,
//! tissue detection, tiling by µm/px and colour deconvolution. Placeholder until that work lands.
pub mod cli;
