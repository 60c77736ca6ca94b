//! Hostile PET DICOM series (issue #28): truncated files, short pixel data, absurd image sizes,
//! non-finite or implausible SUV attributes and voxel values. Each is an error that names the
//! file or the attribute; never a panic, a series one slice short, or non-finite voxels.
//!
//! The files are written byte by byte here in explicit VR little endian (DICOM PS3.5 §7.1.2,
//! PS3.10 §7.1), independently of the DICOM library the reader uses.

use std::path::{Path, PathBuf};

use uptake::dicom::read_pet_series;

/// One data element: tag, VR and value (padded to even length when encoded).
struct Element {
    tag: (u16, u16),
    vr: &'static str,
    value: Vec<u8>,
}

fn text(tag: (u16, u16), vr: &'static str, value: &str) -> Element {
    Element {
        tag,
        vr,
        value: value.as_bytes().to_vec(),
    }
}

fn us(tag: (u16, u16), value: u16) -> Element {
    Element {
        tag,
        vr: "US",
        value: value.to_le_bytes().to_vec(),
    }
}

fn encode(elements: &[Element]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elements {
        let mut value = e.value.clone();
        if value.len() % 2 == 1 {
            value.push(if matches!(e.vr, "UI" | "OB") { 0 } else { b' ' });
        }
        out.extend_from_slice(&e.tag.0.to_le_bytes());
        out.extend_from_slice(&e.tag.1.to_le_bytes());
        out.extend_from_slice(e.vr.as_bytes());
        if matches!(e.vr, "OB" | "OW" | "OF" | "SQ" | "UT" | "UN") {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(&value);
    }
    out
}

/// A sequence of one item of defined length.
fn sequence(tag: (u16, u16), item: &[Element]) -> Element {
    let body = encode(item);
    let mut value = vec![0xFE, 0xFF, 0x00, 0xE0];
    value.extend_from_slice(&(body.len() as u32).to_le_bytes());
    value.extend_from_slice(&body);
    Element {
        tag,
        vr: "SQ",
        value,
    }
}

const ROWS: u16 = 4;
const COLUMNS: u16 = 5;
const PET_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.128";
const SERIES_UID: &str = "1.2.826.0.1.3680043.8.498.28";

/// What a test may change in one slice; the defaults are a valid Siemens-like BQML slice.
#[derive(Clone)]
struct Spec {
    weight: &'static str,
    dose: &'static str,
    half_life: &'static str,
    start_datetime: &'static str,
    decay_correction: &'static str,
    slope: &'static str,
    rows: u16,
    columns: u16,
    /// Bytes of PixelData; `None` for Rows × Columns × 2.
    pixel_bytes: Option<usize>,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            weight: "67",
            dose: "374000000",
            half_life: "6586.2",
            start_datetime: "20201217083045",
            decay_correction: "START",
            slope: "1.5",
            rows: ROWS,
            columns: COLUMNS,
            pixel_bytes: None,
        }
    }
}

/// A Part 10 file: preamble, `DICM`, file meta group and the data set of slice `index`.
fn slice_file(spec: &Spec, index: usize) -> Vec<u8> {
    let instance = format!("{SERIES_UID}.{}", index + 1);
    let meta_body = encode(&[
        Element {
            tag: (0x0002, 0x0001),
            vr: "OB",
            value: vec![0, 1],
        },
        text((0x0002, 0x0002), "UI", PET_IMAGE_STORAGE),
        text((0x0002, 0x0003), "UI", &instance),
        text((0x0002, 0x0010), "UI", "1.2.840.10008.1.2.1"),
    ]);
    let group_length = Element {
        tag: (0x0002, 0x0000),
        vr: "UL",
        value: (meta_body.len() as u32).to_le_bytes().to_vec(),
    };
    let z = -10.0 - 3.0 * index as f64;
    let pixel_len = spec
        .pixel_bytes
        .unwrap_or(spec.rows as usize * spec.columns as usize * 2);
    let pixels: Vec<u8> = (0..pixel_len).map(|i| (i * 7 % 251) as u8).collect();
    let data_set = encode(&[
        text((0x0008, 0x0016), "UI", PET_IMAGE_STORAGE),
        text((0x0008, 0x0018), "UI", &instance),
        text((0x0008, 0x0021), "DA", "20201217"),
        text((0x0008, 0x0022), "DA", "20201217"),
        text((0x0008, 0x0031), "TM", "104829"),
        text((0x0008, 0x0032), "TM", "104830"),
        text((0x0008, 0x0060), "CS", "PT"),
        text((0x0010, 0x1030), "DS", spec.weight),
        text((0x0018, 0x0050), "DS", "3"),
        text((0x0020, 0x000E), "UI", SERIES_UID),
        text((0x0020, 0x0032), "DS", &format!("-100\\-80\\{z}")),
        text((0x0020, 0x0037), "DS", "1\\0\\0\\0\\1\\0"),
        us((0x0028, 0x0002), 1),
        text((0x0028, 0x0004), "CS", "MONOCHROME2"),
        us((0x0028, 0x0010), spec.rows),
        us((0x0028, 0x0011), spec.columns),
        text((0x0028, 0x0030), "DS", "2.5\\2"),
        text((0x0028, 0x0051), "CS", "NORM\\ATTN\\DECY"),
        us((0x0028, 0x0100), 16),
        us((0x0028, 0x0101), 16),
        us((0x0028, 0x0102), 15),
        us((0x0028, 0x0103), 0),
        text((0x0028, 0x1052), "DS", "0"),
        text((0x0028, 0x1053), "DS", spec.slope),
        sequence(
            (0x0054, 0x0016),
            &[
                text((0x0018, 0x1074), "DS", spec.dose),
                text((0x0018, 0x1075), "DS", spec.half_life),
                text((0x0018, 0x1078), "DT", spec.start_datetime),
            ],
        ),
        text((0x0054, 0x1001), "CS", "BQML"),
        text((0x0054, 0x1102), "CS", spec.decay_correction),
        Element {
            tag: (0x7FE0, 0x0010),
            vr: "OW",
            value: pixels,
        },
    ]);
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    file.extend_from_slice(&encode(&[group_length]));
    file.extend_from_slice(&meta_body);
    file.extend_from_slice(&data_set);
    file
}

/// A fresh folder under the test target's scratch space.
fn folder(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("dicom_hostile")
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `slices` slices (file `img00i.dcm` holds slice position i) and returns their paths.
fn write_series(dir: &Path, slices: usize, spec: &Spec) -> Vec<PathBuf> {
    (0..slices)
        .map(|i| {
            let path = dir.join(format!("img{i:03}.dcm"));
            std::fs::write(&path, slice_file(spec, i)).unwrap();
            path
        })
        .collect()
}

fn error_of(dir: &Path) -> String {
    match read_pet_series(dir) {
        Ok(series) => panic!(
            "{} read as a series of {:?} voxels",
            dir.display(),
            series.volume.geometry().dims()
        ),
        Err(e) => e.to_string(),
    }
}

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

#[test]
fn the_valid_series_reads_and_junk_beside_it_is_skipped() {
    let dir = folder("valid");
    write_series(&dir, 5, &Spec::default());
    std::fs::write(dir.join("README"), "exported by the scanner\n").unwrap();
    let series = read_pet_series(&dir).unwrap();
    assert_eq!(series.volume.geometry().dims(), [5, 4, 5]);
    let f = series.suv_factor().unwrap();
    assert!((f / 0.00042748 - 1.0).abs() < 1e-4, "{f}");
}

/// The first and the last slice truncated at every length: an error naming the file, never a
/// series one slice short.
#[test]
fn a_truncated_end_slice_is_an_error_naming_it() {
    let dir = folder("truncated_end");
    let paths = write_series(&dir, 5, &Spec::default());
    for path in [&paths[0], &paths[4]] {
        let whole = std::fs::read(path).unwrap();
        for len in 0..whole.len() {
            std::fs::write(path, &whole[..len]).unwrap();
            let err = error_of(&dir);
            assert!(
                err.contains(file_name(path)),
                "{} cut to {len} of {} bytes: {err}",
                file_name(path),
                whole.len()
            );
        }
        std::fs::write(path, &whole).unwrap();
    }
}

#[test]
fn a_truncated_middle_slice_is_corrupt_not_a_missing_slice() {
    let dir = folder("truncated_middle");
    let paths = write_series(&dir, 5, &Spec::default());
    let whole = std::fs::read(&paths[2]).unwrap();
    // Cut inside the pixel data, as an interrupted copy does.
    std::fs::write(&paths[2], &whole[..whole.len() - 9]).unwrap();
    let err = error_of(&dir);
    assert!(err.contains("img002.dcm"), "{err}");
    assert!(err.contains("truncated or corrupt"), "{err}");
    assert!(!err.contains("missing or extra slice"), "{err}");
}

#[test]
fn pixel_data_shorter_than_the_image_is_an_error() {
    let dir = folder("short_pixels");
    let spec = Spec {
        pixel_bytes: Some(ROWS as usize * COLUMNS as usize * 2 - 2),
        ..Spec::default()
    };
    write_series(&dir, 3, &spec);
    let err = error_of(&dir);
    assert!(
        err.contains("img000.dcm") && err.contains("PixelData"),
        "{err}"
    );
}

/// 65535 × 65535 pixels declared, 40 bytes held: rejected before anything that size is
/// allocated.
#[test]
fn an_absurd_image_size_is_checked_against_the_pixel_data() {
    let dir = folder("absurd_size");
    let spec = Spec {
        rows: u16::MAX,
        columns: u16::MAX,
        pixel_bytes: Some(40),
        ..Spec::default()
    };
    write_series(&dir, 2, &spec);
    let err = error_of(&dir);
    assert!(
        err.contains("PixelData") && err.contains("40 bytes"),
        "{err}"
    );
}

#[test]
fn a_nan_weight_is_named_with_its_file() {
    let dir = folder("nan_weight");
    let spec = Spec {
        weight: "NaN",
        ..Spec::default()
    };
    write_series(&dir, 3, &spec);
    let err = error_of(&dir);
    assert!(err.contains("PatientWeight"), "{err}");
    assert!(err.contains("not a finite number"), "{err}");
    assert!(err.contains(".dcm"), "{err}");
}

/// A factor that overflows or is absurd is an error, never a success.
#[test]
fn implausible_suv_attributes_are_errors() {
    let cases = [
        (
            Spec {
                weight: "1e308",
                ..Spec::default()
            },
            "PatientWeight",
        ),
        (
            Spec {
                half_life: "1e-300",
                ..Spec::default()
            },
            "RadionuclideHalfLife",
        ),
        (
            Spec {
                start_datetime: "19000101083045",
                ..Spec::default()
            },
            "half-lives",
        ),
        (
            Spec {
                dose: "1e-300",
                ..Spec::default()
            },
            "RadionuclideTotalDose",
        ),
    ];
    for (n, (spec, needle)) in cases.into_iter().enumerate() {
        let dir = folder(&format!("implausible_{n}"));
        write_series(&dir, 3, &spec);
        let series = read_pet_series(&dir).unwrap();
        match series.suv_factor() {
            Ok(f) => panic!("{needle}: factor {f} accepted"),
            Err(e) => assert!(e.to_string().contains(needle), "{e}"),
        }
        assert!(series.to_suv().is_err(), "{needle}");
    }
}

/// Rescaled values beyond f32 are an error of the file.
#[test]
fn a_rescale_overflowing_f32_is_an_error() {
    let dir = folder("rescale_overflow");
    let spec = Spec {
        slope: "1e300",
        ..Spec::default()
    };
    write_series(&dir, 2, &spec);
    let err = error_of(&dir);
    assert!(
        err.contains("img000.dcm") || err.contains("img001.dcm"),
        "{err}"
    );
}

/// Voxels near f32::MAX with a plausible factor above 1 (1000 kg, 1 kBq at administration):
/// the SUV volume would overflow, so the factor is rejected for this series.
#[test]
fn suv_voxels_are_finite_or_an_error() {
    let dir = folder("suv_overflow");
    let spec = Spec {
        weight: "1000",
        dose: "1000",
        decay_correction: "ADMIN",
        slope: "1e33",
        ..Spec::default()
    };
    write_series(&dir, 2, &spec);
    let series = read_pet_series(&dir).unwrap();
    assert!(series.volume.data().iter().all(|v| v.is_finite()));
    match series.to_suv() {
        Ok(suv) => assert!(
            suv.data().iter().all(|v| v.is_finite()),
            "non-finite SUV voxels"
        ),
        Err(e) => assert!(e.to_string().contains("f32"), "{e}"),
    }
    assert!(series.suv_factor().is_err());
}

/// A 200-byte file declaring a value of almost 4 GiB: rejected from the bytes it holds, before
/// the DICOM library allocates (and fills) a buffer of the declared length.
#[test]
fn a_declared_length_beyond_the_file_is_rejected_before_allocation() {
    let dir = folder("declared_length");
    let paths = write_series(&dir, 3, &Spec::default());
    let mut bytes = std::fs::read(&paths[1]).unwrap();
    // Replace the PixelData value by a UT element (32-bit length) that declares 0xFFFF_FFF0.
    let pixel_data = bytes
        .windows(4)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
        .unwrap();
    bytes.truncate(pixel_data);
    bytes.extend_from_slice(&[0x40, 0x00, 0x00, 0x14, b'U', b'T', 0, 0]);
    bytes.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    bytes.extend_from_slice(b"abcd");
    std::fs::write(&paths[1], &bytes).unwrap();
    let err = error_of(&dir);
    assert!(err.contains("img001.dcm"), "{err}");
    assert!(
        err.contains("declares a value of 4294967280 bytes"),
        "{err}"
    );
}

/// An element whose VR is no VR at all ("6\0"): the DICOM library reads it as UN, with a 32-bit
/// length after two reserved bytes, so the length check must read it there too. Here that length
/// is almost 4 GiB (the fuzzer's find: the bytes of an item tag read as a length).
#[test]
fn an_unknown_vr_is_checked_with_the_long_form_length() {
    let dir = folder("unknown_vr");
    let paths = write_series(&dir, 3, &Spec::default());
    let mut bytes = std::fs::read(&paths[2]).unwrap();
    let pixel_data = bytes
        .windows(4)
        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
        .unwrap();
    bytes.truncate(pixel_data);
    // Read with a 16-bit length, the element would end after 0 bytes; read as UN, its length
    // is 0xE000FFFE.
    bytes.extend_from_slice(&[0x53, 0x51, 0x00, 0x00, b'6', 0, 0, 0]);
    bytes.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
    bytes.extend_from_slice(&[0; 16]);
    std::fs::write(&paths[2], &bytes).unwrap();
    let err = error_of(&dir);
    assert!(err.contains("img002.dcm"), "{err}");
    assert!(
        err.contains(&format!("declares a value of {} bytes", 0xE000_FFFEu32)),
        "{err}"
    );
}
