//! HDF5 bags: Spatia's round trip (float32 and float16), CLAM's layout (int32 coords, no
//! attributes) built with hdf5-metno, validation errors naming the file and the problem, and
//! (with the `torch` feature, whose venv has h5py) bags written and read by h5py.
use hdf5_metno as hdf5;
use ndarray::{Array2, ArrayView2};
use spatia::features::bag::{validate_cohort, Bag, BagMeta, Precision};
use spatia::features::handcrafted::Handcrafted;
use spatia::features::pipeline::grid;
use spatia::features::Encoder;
use std::path::Path;

const HE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/images/tiatoolbox_target_image.png");

/// A real bag: handcrafted features of 64-px tiles of the H&E image.
fn real_bag() -> Bag {
    let img = image::open(HE).unwrap().to_rgb8();
    let coords: Vec<[i64; 2]> = grid(512, 512, 64);
    let tiles: Vec<_> =
        coords.iter().map(|c| image::imageops::crop_imm(&img, c[0] as u32, c[1] as u32, 64, 64).to_image()).collect();
    let enc = Handcrafted::new();
    let rows = enc.encode_batch(&tiles).unwrap();
    let meta = BagMeta {
        name: Some("tiatoolbox_target_image".into()),
        patch_size: Some(64),
        patch_size_level0: Some(64),
        mpp: Some(0.5),
        level0_width: Some(1000),
        level0_height: Some(1000),
        encoder: Some(enc.name()),
        encoder_digest: Some(enc.digest()),
    };
    Bag::from_rows(rows, &coords, meta).unwrap()
}

fn write_raw(path: &Path, features: ArrayView2<f32>, coords: ArrayView2<i32>) {
    let f = hdf5::File::create(path).unwrap();
    f.new_dataset_builder().with_data(features).create("features").unwrap();
    f.new_dataset_builder().with_data(coords).create("coords").unwrap();
}

#[test]
fn spatia_bag_round_trips_in_f32_and_f16() {
    let dir = tempfile::tempdir().unwrap();
    let bag = real_bag();
    assert_eq!((bag.len(), bag.dim()), (64, 64));
    let p = dir.path().join("slide.h5");
    bag.write(&p, Precision::F32).unwrap();
    let back = Bag::read(&p).unwrap();
    assert_eq!(back, bag);
    back.validate(&p, Some((1000, 1000))).unwrap();
    // Layout as CLAM/TRIDENT: float32 features, int64 coords, attributes where TRIDENT has them.
    let f = hdf5::File::open(&p).unwrap();
    assert!(f.dataset("features").unwrap().dtype().unwrap().is::<f32>());
    assert!(f.dataset("coords").unwrap().dtype().unwrap().is::<i64>());
    assert_eq!(f.dataset("coords").unwrap().attr("patch_size_level0").unwrap().read_scalar::<i64>().unwrap(), 64);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let p16 = dir.path().join("slide16.h5");
    bag.write(&p16, Precision::F16).unwrap();
    {
        // (Closed before Spatia reopens it: HDF5 refuses two opens with different locking flags.)
        let f = hdf5::File::open(&p16).unwrap();
        assert_eq!(f.dataset("features").unwrap().dtype().unwrap().size(), 2);
    }
    let back16 = Bag::read(&p16).unwrap();
    assert_eq!(back16.coords, bag.coords);
    assert_eq!(back16.meta, bag.meta);
    for (a, b) in back16.features.iter().zip(bag.features.iter()) {
        assert!((a - b).abs() <= 1e-3 * b.abs().max(6e-5), "{a} vs {b}");
    }
}

#[test]
fn clam_layout_with_int32_coords_and_no_attributes_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let bag = real_bag();
    let p = dir.path().join("clam.h5");
    let coords32 = bag.coords.mapv(|v| v as i32);
    write_raw(&p, bag.features.view(), coords32.view());
    let back = Bag::read(&p).unwrap();
    assert_eq!(back.features, bag.features);
    assert_eq!(back.coords, bag.coords);
    assert_eq!(back.meta, BagMeta::default());
    back.validate(&p, Some((1000, 1000))).unwrap();
    assert_eq!(validate_cohort(&[(p.clone(), Some((1000, 1000))), (p, None)]).unwrap(), 64);
}

#[test]
fn invalid_bags_are_rejected_with_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bag = real_bag();
    let s = |p: &Path| p.display().to_string();

    let mut nan = bag.clone();
    nan.features[[5, 3]] = f32::NAN;
    nan.features[[9, 0]] = f32::INFINITY;
    let p = dir.path().join("nan.h5");
    nan.write(&p, Precision::F32).unwrap();
    let e = Bag::read(&p).unwrap().validate(&p, None).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}: expected finite features, found 2 non-finite value(s), the first NaN at row 5 column 3", s(&p))
    );

    let p = dir.path().join("ok.h5");
    bag.write(&p, Precision::F32).unwrap();
    let e = Bag::read(&p).unwrap().validate(&p, Some((400, 1000))).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}: expected coords inside the slide's level-0 size 400×1000, found (448, 0) at row 7", s(&p))
    );

    let p = dir.path().join("rows.h5");
    write_raw(&p, bag.features.view(), Array2::<i32>::zeros((63, 2)).view());
    let e = Bag::read(&p).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}: expected as many `coords` rows as `features` rows, found 64 features and 63 coords", s(&p))
    );

    let p = dir.path().join("shape.h5");
    write_raw(&p, bag.features.view(), Array2::<i32>::zeros((64, 3)).view());
    assert!(Bag::read(&p).unwrap_err().to_string().contains("expected `coords` of shape N×2, found shape [64, 3]"));

    let p = dir.path().join("nofeat.h5");
    let f = hdf5::File::create(&p).unwrap();
    f.new_dataset_builder().with_data(Array2::<i64>::zeros((2, 2)).view()).create("coords").unwrap();
    drop(f);
    let e = Bag::read(&p).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}: expected a dataset `features` (CLAM/TRIDENT layout), found datasets [\"coords\"]", s(&p))
    );

    let missing = dir.path().join("missing.h5");
    assert!(Bag::read(&missing)
        .unwrap_err()
        .to_string()
        .ends_with("missing.h5: expected an HDF5 bag file, found no such file"));

    let neg = dir.path().join("neg.h5");
    write_raw(&neg, bag.features.view(), bag.coords.mapv(|v| v as i32 - 10).view());
    let e = Bag::read(&neg).unwrap().validate(&neg, None).unwrap_err().to_string();
    assert!(e.ends_with("expected non-negative coords, found (-10, -10) at row 0"), "{e}");

    let empty = dir.path().join("empty.h5");
    write_raw(&empty, Array2::<f32>::zeros((0, 8)).view(), Array2::<i32>::zeros((0, 2)).view());
    assert!(Bag::read(&empty)
        .unwrap()
        .validate(&empty, None)
        .unwrap_err()
        .to_string()
        .contains("found an empty bag (N = 0)"));
}

#[test]
fn a_cohort_must_share_one_feature_dimension() {
    let dir = tempfile::tempdir().unwrap();
    let bag = real_bag();
    let a = dir.path().join("a.h5");
    bag.write(&a, Precision::F32).unwrap();
    let b = dir.path().join("b.h5");
    let narrow = bag.features.slice(ndarray::s![.., ..32]).to_owned();
    write_raw(&b, narrow.view(), bag.coords.mapv(|v| v as i32).view());
    let e = validate_cohort(&[(a.clone(), None), (b.clone(), None)]).unwrap_err().to_string();
    assert_eq!(e, format!("{}: feature dimension 32 differs from 64 of {}", b.display(), a.display()));
    assert!(validate_cohort(&[]).is_err());
}

#[cfg(feature = "torch")]
mod h5py {
    //! Bags exchanged with h5py (the venv of scripts/setup-torch.sh has numpy and h5py).
    use super::*;
    use std::process::Command;

    fn python() -> String {
        std::env::var("SPATIA_TORCH_PYTHON").unwrap_or_else(|_| {
            format!("{}/.cache/spatia/torch-2.11.0/bin/python", std::env::var("HOME").unwrap_or_default())
        })
    }

    fn py(code: &str, args: &[&Path]) -> String {
        let out = Command::new(python())
            .arg("-c")
            .arg(code)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} (run scripts/setup-torch.sh): {e}", python()));
        assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn bags_written_by_h5py_in_clam_and_trident_layouts_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let (clam, trident) = (dir.path().join("clam.h5"), dir.path().join("trident.h5"));
        // CLAM extract_features_fp.py: features float32, coords int32, no attributes.
        // TRIDENT: coords int64 with attributes, features with `name`.
        py(
            r#"
import sys, h5py, numpy as np
rng = np.random.default_rng(0)
feats = rng.standard_normal((17, 1024)).astype(np.float32)
coords = (np.arange(34).reshape(17, 2) * 256)
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("features", data=feats, maxshape=(None, 1024), chunks=(1, 1024))
    f.create_dataset("coords", data=coords.astype(np.int32), maxshape=(None, 2), chunks=(1, 2))
with h5py.File(sys.argv[2], "w") as f:
    d = f.create_dataset("features", data=feats)
    d.attrs["name"] = "slide-7"
    c = f.create_dataset("coords", data=coords.astype(np.int64))
    for k, v in dict(patch_size=256, patch_size_level0=512, level0_magnification=40, target_magnification=20,
                     overlap=0, name="slide-7", level0_width=20000, level0_height=9000).items():
        c.attrs[k] = v
np.save(sys.argv[1] + ".npy", feats)
"#,
            &[&clam, &trident],
        );
        let a = Bag::read(&clam).unwrap();
        let b = Bag::read(&trident).unwrap();
        assert_eq!((a.len(), a.dim()), (17, 1024));
        assert_eq!(a.features, b.features);
        assert_eq!(a.coords, b.coords);
        assert_eq!(a.coords[[16, 1]], 33 * 256);
        assert_eq!(b.meta.name.as_deref(), Some("slide-7"));
        assert_eq!((b.meta.patch_size, b.meta.patch_size_level0), (Some(256), Some(512)));
        assert_eq!((b.meta.level0_width, b.meta.level0_height), (Some(20000), Some(9000)));
        b.validate(&trident, Some((20000, 9000))).unwrap();
        let e = b.validate(&trident, Some((8000, 8000))).unwrap_err().to_string();
        assert!(
            e.contains("expected coords inside the slide's level-0 size 8000×8000, found (8192, 8448) at row 16"),
            "{e}"
        );
        assert_eq!(validate_cohort(&[(clam, None), (trident, None)]).unwrap(), 1024);
    }

    #[test]
    fn h5py_reads_spatia_bags_as_clam_and_trident_do() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("spatia.h5");
        let bag = real_bag();
        bag.write(&p, Precision::F32).unwrap();
        let out = py(
            r#"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    feats, coords = f["features"][:], f["coords"][:]
    print(feats.dtype, feats.shape, coords.dtype, coords.shape)
    print(dict(f["coords"].attrs)["patch_size_level0"], f["features"].attrs["encoder"], f["coords"].attrs["name"])
    print(float(feats.sum()), int(coords[:, 0].max()))
"#,
            &[&p],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "float32 (64, 64) int64 (64, 2)");
        assert_eq!(lines[1], "64 handcrafted tiatoolbox_target_image");
        let sum: f64 = lines[2].split(' ').next().unwrap().parse().unwrap();
        let want: f64 = bag.features.iter().map(|&v| v as f64).sum();
        assert!((sum - want).abs() < 1e-3 * want.abs(), "{sum} vs {want}");
        assert_eq!(lines[2].split(' ').nth(1).unwrap(), "448");
    }
}
