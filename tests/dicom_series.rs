//! The general DICOM series reader with CT (issue #30): HU, the choice among several series,
//! and the error paths: a tilted gantry, a missing or repeated slice, hostile RLE and deflated
//! files. Each is an error naming the file or the series; never a panic or a wrong volume.
//!
//! The files are written byte by byte here in explicit VR little endian (DICOM PS3.5 §7.1.2,
//! PS3.5 Annex A.4 for encapsulated pixel data, Annex G for RLE), independently of the DICOM
//! library the reader uses.

use std::io::Write;
use std::path::{Path, PathBuf};

use uptake::dicom::{DicomError, read_ct_series, read_pet_series};

fn element(tag: (u16, u16), vr: &str, value: &[u8]) -> Vec<u8> {
    let mut value = value.to_vec();
    if value.len() % 2 == 1 {
        value.push(if matches!(vr, "UI" | "OB") { 0 } else { b' ' });
    }
    let mut out = Vec::new();
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(vr.as_bytes());
    if matches!(vr, "OB" | "OW") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&value);
    out
}

fn text(tag: (u16, u16), vr: &str, value: &str) -> Vec<u8> {
    element(tag, vr, value.as_bytes())
}

fn us(tag: (u16, u16), value: u16) -> Vec<u8> {
    element(tag, "US", &value.to_le_bytes())
}

const ROWS: u16 = 3;
const COLUMNS: u16 = 4;
const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT: &str = "1.2.840.10008.1.2.1";
const RLE: &str = "1.2.840.10008.1.2.5";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// One CT slice; the defaults are valid.
#[derive(Clone)]
struct Ct {
    series: &'static str,
    modality: &'static str,
    /// ImagePositionPatient.
    position: [f64; 3],
    /// Stored values, ROWS × COLUMNS of them, row by row.
    stored: Vec<u16>,
    transfer_syntax: &'static str,
    /// The PixelData element as written; `None` for native OW of `stored`.
    pixel_data: Option<Vec<u8>>,
}

impl Ct {
    fn at(z: f64) -> Self {
        Self {
            series: "1.2.826.0.1.3680043.8.498.30.1",
            modality: "CT",
            position: [-50.0, -40.0, z],
            stored: (0..ROWS * COLUMNS).map(|i| 1000 + 37 * i).collect(),
            transfer_syntax: EXPLICIT,
            pixel_data: None,
        }
    }

    /// The Part 10 file; the data set deflated for the deflated transfer syntax.
    fn file(&self, instance: usize) -> Vec<u8> {
        let uid = format!("{}.{instance}", self.series);
        let meta_body = [
            element((0x0002, 0x0001), "OB", &[0, 1]),
            text((0x0002, 0x0002), "UI", CT_IMAGE_STORAGE),
            text((0x0002, 0x0003), "UI", &uid),
            text((0x0002, 0x0010), "UI", self.transfer_syntax),
        ]
        .concat();
        let [x, y, z] = self.position;
        let pixel_data = self.pixel_data.clone().unwrap_or_else(|| {
            let bytes: Vec<u8> = self.stored.iter().flat_map(|v| v.to_le_bytes()).collect();
            element((0x7FE0, 0x0010), "OW", &bytes)
        });
        let mut data_set = [
            text((0x0008, 0x0016), "UI", CT_IMAGE_STORAGE),
            text((0x0008, 0x0018), "UI", &uid),
            text((0x0008, 0x0060), "CS", self.modality),
            text((0x0008, 0x103E), "LO", "abdomen"),
            text((0x0018, 0x0050), "DS", "2"),
            text((0x0020, 0x000E), "UI", self.series),
            text((0x0020, 0x0032), "DS", &format!("{x}\\{y}\\{z}")),
            text((0x0020, 0x0037), "DS", "1\\0\\0\\0\\1\\0"),
            text((0x0020, 0x0052), "UI", "1.2.826.0.1.3680043.8.498.30.9"),
            us((0x0028, 0x0002), 1),
            text((0x0028, 0x0004), "CS", "MONOCHROME2"),
            us((0x0028, 0x0010), ROWS),
            us((0x0028, 0x0011), COLUMNS),
            text((0x0028, 0x0030), "DS", "0.8\\0.6"),
            us((0x0028, 0x0100), 16),
            us((0x0028, 0x0101), 12),
            us((0x0028, 0x0102), 11),
            us((0x0028, 0x0103), 0),
            text((0x0028, 0x1052), "DS", "-1024"),
            text((0x0028, 0x1053), "DS", "2"),
            pixel_data,
        ]
        .concat();
        if self.transfer_syntax == DEFLATED {
            data_set = deflate(&data_set);
        }
        let mut file = vec![0u8; 128];
        file.extend_from_slice(b"DICM");
        file.extend(element(
            (0x0002, 0x0000),
            "UL",
            &(meta_body.len() as u32).to_le_bytes(),
        ));
        file.extend(meta_body);
        file.extend(data_set);
        file
    }
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Encapsulated PixelData: an empty offset table, then one item per fragment.
fn encapsulated(fragments: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![
        0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
    for f in fragments {
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    out
}

/// An RLE Lossless frame of 16-bit values: two segments of literal runs (high bytes, then
/// low bytes).
fn rle_frame(values: &[u16]) -> Vec<u8> {
    let segment = |bytes: Vec<u8>| {
        let mut s = Vec::new();
        for chunk in bytes.chunks(128) {
            s.push(chunk.len() as u8 - 1);
            s.extend_from_slice(chunk);
        }
        if s.len() % 2 == 1 {
            s.push(0x80);
        }
        s
    };
    let high = segment(values.iter().map(|v| (v >> 8) as u8).collect());
    let low = segment(values.iter().map(|v| *v as u8).collect());
    let mut header = vec![0u8; 64];
    header[0] = 2;
    header[4..8].copy_from_slice(&64u32.to_le_bytes());
    header[8..12].copy_from_slice(&(64 + high.len() as u32).to_le_bytes());
    [header, high, low].concat()
}

/// A fresh folder under the test target's scratch space.
fn folder(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("dicom_series")
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the slices as `<prefix>NNN.dcm` and returns their paths.
fn write(dir: &Path, prefix: &str, slices: &[Ct]) -> Vec<PathBuf> {
    slices
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let path = dir.join(format!("{prefix}{i:03}.dcm"));
            std::fs::write(&path, s.file(i)).unwrap();
            path
        })
        .collect()
}

fn stack(zs: &[f64]) -> Vec<Ct> {
    zs.iter().map(|&z| Ct::at(z)).collect()
}

fn ct_error(dir: &Path) -> DicomError {
    match read_ct_series(dir, None) {
        Ok(s) => panic!("read as {:?} voxels", s.volume.geometry().dims()),
        Err(e) => e,
    }
}

#[test]
fn a_ct_series_reads_in_hu_sorted_along_the_normal() {
    let dir = folder("hu");
    let mut slices = stack(&[4.0, 0.0, 2.0]);
    slices[1].stored = vec![7; (ROWS * COLUMNS) as usize];
    write(&dir, "ct", &slices);
    let ct = read_ct_series(&dir, None).unwrap();
    let g = ct.volume.geometry();
    assert_eq!(g.dims(), [4, 3, 3]);
    assert_eq!(g.spacing_mm(), [0.6, 0.8, 2.0]);
    assert_eq!(g.origin_mm(), [-50.0, -40.0, 0.0]);
    let data = ct.volume.data();
    // z = 0 comes first: 7 × 2 − 1024.
    assert!(
        data[..12].iter().all(|&v| v == -1010.0),
        "{:?}",
        &data[..12]
    );
    assert_eq!(data[12], 1000.0 * 2.0 - 1024.0);
    assert_eq!(
        ct.frame_of_reference_uid.as_deref(),
        Some("1.2.826.0.1.3680043.8.498.30.9")
    );
}

#[test]
fn a_tilted_gantry_is_refused_naming_the_slice() {
    let dir = folder("tilt");
    let mut slices = stack(&[0.0, 2.0, 4.0]);
    for (i, s) in slices.iter_mut().enumerate() {
        s.position[1] += 0.5 * i as f64;
    }
    write(&dir, "ct", &slices);
    let err = ct_error(&dir).to_string();
    assert!(
        err.contains("gantry tilt") && err.contains("ct001.dcm"),
        "{err}"
    );
}

#[test]
fn a_missing_slice_is_refused_naming_the_gap() {
    let dir = folder("missing");
    write(&dir, "ct", &stack(&[0.0, 2.0, 6.0, 8.0]));
    let err = ct_error(&dir);
    assert!(matches!(err, DicomError::SliceSpacing { .. }), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("ct001.dcm") && err.contains("ct002.dcm") && err.contains("4.0000 mm"),
        "{err}"
    );
}

#[test]
fn a_repeated_position_is_refused() {
    let dir = folder("repeated");
    write(&dir, "ct", &stack(&[0.0, 2.0, 2.0, 4.0]));
    let err = ct_error(&dir).to_string();
    assert!(err.contains("same position"), "{err}");
}

#[test]
fn several_series_are_chosen_by_modality_and_uid() {
    let dir = folder("several");
    write(&dir, "a", &stack(&[0.0, 2.0, 4.0]));
    let mut other = stack(&[0.0, 2.0]);
    for s in &mut other {
        s.series = "1.2.826.0.1.3680043.8.498.30.2";
    }
    write(&dir, "b", &other);
    let err = ct_error(&dir).to_string();
    for needle in [
        "2 CT series",
        "1.2.826.0.1.3680043.8.498.30.1 (CT, 3 files, \"abdomen\")",
        "1.2.826.0.1.3680043.8.498.30.2 (CT, 2 files, \"abdomen\")",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    let ct = read_ct_series(&dir, Some("1.2.826.0.1.3680043.8.498.30.2")).unwrap();
    assert_eq!(ct.volume.geometry().dims()[2], 2);
    let err = read_ct_series(&dir, Some("9.9")).unwrap_err().to_string();
    assert!(
        err.contains("9.9 is not in") && err.contains("30.1 (CT"),
        "{err}"
    );
    // No PET series: the error says what is there.
    let err = read_pet_series(&dir).unwrap_err().to_string();
    assert!(err.contains("no DICOM file of a PET series"), "{err}");
    assert!(err.contains("30.2 (CT, 2 files"), "{err}");
}

#[test]
fn a_series_of_another_modality_is_refused_by_uid() {
    let dir = folder("modality");
    let mut slices = stack(&[0.0, 2.0]);
    for s in &mut slices {
        s.modality = "MR";
    }
    write(&dir, "mr", &slices);
    let err = read_ct_series(&dir, Some(slices[0].series))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Modality \"MR\"") && err.contains("CT"),
        "{err}"
    );
}

#[test]
fn rle_and_deflated_slices_read_as_native_ones() {
    let native = folder("native");
    write(&native, "ct", &stack(&[0.0, 2.0, 4.0]));
    let expected = read_ct_series(&native, None).unwrap();
    for (name, syntax) in [("rle", RLE), ("deflated", DEFLATED)] {
        let dir = folder(name);
        let slices: Vec<Ct> = stack(&[0.0, 2.0, 4.0])
            .into_iter()
            .map(|mut s| {
                s.transfer_syntax = syntax;
                if syntax == RLE {
                    s.pixel_data = Some(encapsulated(&[&rle_frame(&s.stored)]));
                }
                s
            })
            .collect();
        write(&dir, "ct", &slices);
        let ct = read_ct_series(&dir, None).unwrap();
        assert_eq!(ct.volume.data(), expected.volume.data(), "{name}");
    }
}

/// Hostile RLE frames: every one an error naming the file, none a panic.
#[test]
fn hostile_rle_frames_are_errors_naming_the_file() {
    let good = rle_frame(&Ct::at(0.0).stored);
    let mut too_many_segments = good.clone();
    too_many_segments[0] = 15;
    let mut offset_beyond = good.clone();
    offset_beyond[8..12].copy_from_slice(&100_000u32.to_le_bytes());
    let mut offsets_backwards = good.clone();
    offsets_backwards[4..8].copy_from_slice(&70u32.to_le_bytes());
    let mut endless_run = good[..64].to_vec();
    endless_run[8..12].copy_from_slice(&66u32.to_le_bytes());
    endless_run.extend_from_slice(&[0x81, 1, 0x81, 1]); // 2 × 128 bytes claimed, 12 needed
    let cases: [(&str, Vec<u8>); 6] = [
        ("header_only", good[..40].to_vec()),
        ("too_many_segments", too_many_segments),
        ("offset_beyond", offset_beyond),
        ("offsets_backwards", offsets_backwards),
        ("cut", good[..good.len() - 6].to_vec()),
        ("endless_run", endless_run),
    ];
    for (name, frame) in cases {
        let dir = folder(&format!("rle_{name}"));
        let mut slices = stack(&[0.0, 2.0]);
        for s in &mut slices {
            s.transfer_syntax = RLE;
            s.pixel_data = Some(encapsulated(&[&rle_frame(&s.stored)]));
        }
        slices[1].pixel_data = Some(encapsulated(&[&frame]));
        write(&dir, "ct", &slices);
        match read_ct_series(&dir, None) {
            // Run-length decoding may legally yield more than needed ("endless_run").
            Ok(ct) if name == "endless_run" => assert_eq!(ct.volume.data()[12], -1024.0 + 514.0),
            Ok(_) => panic!("{name}: read"),
            Err(e) => assert!(e.to_string().contains("ct001.dcm"), "{name}: {e}"),
        }
    }
    let dir = folder("rle_two_fragments");
    let mut slices = stack(&[0.0, 2.0]);
    for s in &mut slices {
        s.transfer_syntax = RLE;
        s.pixel_data = Some(encapsulated(&[&good[..64], &good[64..]]));
    }
    write(&dir, "ct", &slices);
    let err = ct_error(&dir).to_string();
    assert!(
        err.contains("fragments") && err.contains("ct000.dcm"),
        "{err}"
    );
}

/// A deflated data set of a few hundred kilobytes inflating past 128 MiB: refused while
/// inflating, before the DICOM library sees it.
#[test]
fn a_deflate_bomb_is_refused() {
    let dir = folder("deflate_bomb");
    let slices = stack(&[0.0, 2.0]);
    let paths = write(&dir, "ct", &slices);
    let mut deflated = slices[1].clone();
    deflated.transfer_syntax = DEFLATED;
    let head = deflated.file(1);
    // Preamble, DICM, the group length element (12 bytes) and the group it counts.
    let meta_end = 132 + 12 + u32::from_le_bytes(head[140..144].try_into().unwrap()) as usize;
    let mut file = head[..meta_end].to_vec();
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..130 {
        encoder.write_all(&zeros).unwrap();
    }
    file.extend(encoder.finish().unwrap());
    std::fs::write(&paths[1], &file).unwrap();
    let err = ct_error(&dir).to_string();
    assert!(
        err.contains("ct001.dcm") && err.contains("inflates to more than"),
        "{err}"
    );
}

/// The last CT slice cut at a spread of lengths: an error naming it, never a shorter series.
#[test]
fn a_truncated_ct_slice_is_an_error_naming_it() {
    let dir = folder("truncated");
    let paths = write(&dir, "ct", &stack(&[0.0, 2.0, 4.0]));
    let whole = std::fs::read(&paths[2]).unwrap();
    for len in (0..whole.len()).step_by(7) {
        std::fs::write(&paths[2], &whole[..len]).unwrap();
        let err = ct_error(&dir).to_string();
        assert!(err.contains("ct002.dcm"), "cut to {len}: {err}");
    }
}
