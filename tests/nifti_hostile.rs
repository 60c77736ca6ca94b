//! Hostile NIfTI files (issue #28): whatever a file claims, reading it costs what the image
//! really needs, and every refusal is a clear error, never an abort of the host process.
//!
//! The tests whose failure mode is running out of memory run in a child copy of this test binary
//! whose address space is capped (`ulimit -v`), so a reader that allocates what a header declares
//! dies there, visibly, instead of exhausting the machine.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use flate2::{Compression, write::GzEncoder};
use uptake::volume::nifti::{self, NiftiError};
use uptake::{Geometry, Volume};

/// The address-space cap of the child process: far above what a 10×10×10 image needs, far
/// below what the hostile files declare (8 GB) or inflate to (2 GB).
const CHILD_ADDRESS_SPACE_KIB: u64 = 1 << 20;
const CHILD_ENV: &str = "UPTAKE_NIFTI_HOSTILE_CHILD";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uptake-nifti-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// True in the capped child; in the parent, reruns test `name` alone in a capped child and
/// asserts that it passed.
fn in_capped_child(name: &str) -> bool {
    if std::env::var_os(CHILD_ENV).is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {CHILD_ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} failed in a child capped at {CHILD_ADDRESS_SPACE_KIB} KiB of address space \
         ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// Voxel values of the 10×10×10 test image: all distinct, so a shifted read shows.
fn ramp() -> Vec<f32> {
    (0..1000).map(|i| i as f32 * 0.5 - 100.0).collect()
}

/// A single-file NIfTI-1 (`vox_offset` 352) of the 10×10×10 float32 ramp, as written by uptake.
fn small_nifti1() -> Vec<u8> {
    let g = Geometry::axis_aligned([10, 10, 10], [2.0, 2.0, 3.0], [1.0, 2.0, 3.0]).unwrap();
    let path = scratch(&format!("small-{:?}.nii", std::thread::current().id()));
    nifti::write(&path, &Volume::new(g, ramp()).unwrap()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(bytes.len(), 352 + 4000);
    bytes
}

fn set_dims(bytes: &mut [u8], dims: [i16; 3]) {
    for (i, d) in dims.iter().enumerate() {
        bytes[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
}

fn set_datatype_u8(bytes: &mut [u8]) {
    bytes[70..72].copy_from_slice(&2i16.to_le_bytes());
    bytes[72..74].copy_from_slice(&8i16.to_le_bytes());
}

fn set_vox_offset(bytes: &mut [u8], offset: f32) {
    bytes[108..112].copy_from_slice(&offset.to_le_bytes());
}

fn gzip(parts: &[&[u8]]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    for p in parts {
        enc.write_all(p).unwrap();
    }
    enc.finish().unwrap()
}

fn write_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A 10×10×10 header followed by 2 GiB of inflated zeros in 2 MB of gzip: reading it used to
/// inflate the whole stream into memory.
#[test]
fn gzip_bomb_behind_a_small_header_reads_in_bounded_memory() {
    if !in_capped_child("gzip_bomb_behind_a_small_header_reads_in_bounded_memory") {
        return;
    }
    let mut bytes = gzip(&[&small_nifti1()]);
    // Every gzip member is inflated in turn (multi-member files are valid gzip); 8 MiB of zeros
    // compress to 8 KiB, so 256 members make 2 GiB.
    let zeros = gzip(&[&vec![0u8; 8 << 20]]);
    for _ in 0..256 {
        bytes.extend_from_slice(&zeros);
    }
    let path = write_file("bomb.nii.gz", &bytes);
    let img = nifti::read(&path).unwrap();
    assert_eq!(img.data, ramp());
    std::fs::remove_file(&path).ok();
}

/// A header declaring 2·10⁹ voxels (8 GB as f32) in front of a few bytes of data is refused as
/// truncated, before anything of the declared size is allocated.
#[test]
fn lying_gzip_header_fails_fast_without_allocating_the_declared_size() {
    if !in_capped_child("lying_gzip_header_fails_fast_without_allocating_the_declared_size") {
        return;
    }
    let mut bytes = small_nifti1();
    set_dims(&mut bytes, [2000, 2000, 500]);
    set_datatype_u8(&mut bytes);
    let path = write_file("lying.nii.gz", &gzip(&[&bytes]));
    // The child's 1 GiB address-space cap is the oracle: allocating the declared 2 GB aborts it.
    let err = nifti::read(&path).unwrap_err();
    assert!(matches!(err, NiftiError::Truncated(_)), "{err}");
    std::fs::remove_file(&path).ok();
}

/// The same lie in an uncompressed file is caught against the file's length.
#[test]
fn lying_uncompressed_header_is_checked_against_the_file_length() {
    if !in_capped_child("lying_uncompressed_header_is_checked_against_the_file_length") {
        return;
    }
    let mut bytes = small_nifti1();
    set_dims(&mut bytes, [2000, 2000, 500]);
    set_datatype_u8(&mut bytes);
    let path = write_file("lying.nii", &bytes);
    let err = nifti::read(&path).unwrap_err();
    assert!(matches!(err, NiftiError::Truncated(_)), "{err}");
    assert!(err.to_string().contains("2000000000 bytes"), "{err}");
    std::fs::remove_file(&path).ok();
}

/// `/dev/zero` has no length and no end: its sizeof_hdr of 0 is refused at once.
#[test]
fn dev_zero_is_not_nifti() {
    if !in_capped_child("dev_zero_is_not_nifti") {
        return;
    }
    let err = nifti::read("/dev/zero").unwrap_err();
    assert!(matches!(err, NiftiError::NotNifti(_)), "{err}");
    assert!(err.to_string().contains("sizeof_hdr is 0"), "{err}");
}

/// 50 MB of zeros after the image in the same gzip member: the image is read and the rest of
/// the stream is left alone.
#[test]
fn gzip_stream_beyond_the_image_is_not_read() {
    let image = small_nifti1();
    let tail = vec![0u8; 50 << 20];
    let whole = gzip(&[&image, &tail]);
    let path = write_file("tail.nii.gz", &whole);
    assert_eq!(nifti::read(&path).unwrap().data, ramp());
    // Cut the stream far beyond the image: a reader that inflated everything would find it
    // truncated; one that stops after the image never gets there.
    let cut = write_file("tail-cut.nii.gz", &whole[..whole.len() / 2]);
    let img = nifti::read(&cut).unwrap();
    assert_eq!(img.data, ramp());
    assert_eq!(img.geometry.dims(), [10, 10, 10]);
    std::fs::remove_file(&path).ok();
    std::fs::remove_file(&cut).ok();
}

#[test]
fn single_file_vox_offset_inside_the_extension_bytes_is_refused() {
    // nibabel: "vox offset 348 too low for single file nifti1".
    let mut bytes = small_nifti1();
    set_vox_offset(&mut bytes, 348.0);
    for err in [
        nifti::decode(&bytes).unwrap_err(),
        nifti::read(write_file("off348.nii", &bytes)).unwrap_err(),
    ] {
        assert!(matches!(err, NiftiError::Malformed(_)), "{err}");
        assert!(err.to_string().contains("352"), "{err}");
    }
}

/// A NIfTI-2 single file: 540-byte header, `vox_offset` given, 2×2×1 float32.
fn nifti2(magic: &[u8; 8], vox_offset: i64, with_data: bool) -> Vec<u8> {
    let mut b = vec![0u8; 540];
    b[0..4].copy_from_slice(&540i32.to_le_bytes());
    b[4..12].copy_from_slice(magic);
    b[12..14].copy_from_slice(&16i16.to_le_bytes());
    b[14..16].copy_from_slice(&32i16.to_le_bytes());
    for (i, d) in [3i64, 2, 2, 1, 1, 1, 1, 1].iter().enumerate() {
        b[16 + 8 * i..24 + 8 * i].copy_from_slice(&d.to_le_bytes());
    }
    for (i, p) in [1.0f64, 1.0, 1.0, 1.0].iter().enumerate() {
        b[104 + 8 * i..112 + 8 * i].copy_from_slice(&p.to_le_bytes());
    }
    b[168..176].copy_from_slice(&vox_offset.to_le_bytes());
    if with_data {
        b.resize(vox_offset as usize, 0);
        for v in [1.0f32, 2.0, 3.0, 4.0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    b
}

#[test]
fn nifti2_vox_offset_must_leave_room_for_the_extension_bytes() {
    let good = nifti2(b"n+2\0\r\n\x1a\n", 544, true);
    assert_eq!(nifti::decode(&good).unwrap().data, [1.0, 2.0, 3.0, 4.0]);
    let err = nifti::decode(&nifti2(b"n+2\0\r\n\x1a\n", 540, true)).unwrap_err();
    assert!(matches!(err, NiftiError::Malformed(_)), "{err}");
    assert!(err.to_string().contains("544"), "{err}");
}

#[test]
fn separate_header_files_are_named_as_such() {
    let mut nifti1_hdr = small_nifti1();
    nifti1_hdr.truncate(348);
    nifti1_hdr[344..348].copy_from_slice(b"ni1\0");
    let cases = [
        ("nifti2 offset 0", nifti2(b"ni2\0\r\n\x1a\n", 0, false)),
        ("nifti2 offset 540", nifti2(b"ni2\0\r\n\x1a\n", 540, false)),
        ("nifti1 offset 352", nifti1_hdr.clone()),
        ("nifti1 offset 0", {
            let mut b = nifti1_hdr.clone();
            set_vox_offset(&mut b, 0.0);
            b
        }),
    ];
    for (name, bytes) in cases {
        let path = write_file("pair.hdr", &bytes);
        let err = nifti::read(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(".hdr") && text.contains(".img") && text.contains("not read"),
            "{name}: {text}"
        );
        assert!(!text.contains("truncated"), "{name}: {text}");
    }
}

#[test]
fn huge_vox_offset_is_printed_as_the_header_has_it() {
    let mut bytes = small_nifti1();
    set_vox_offset(&mut bytes, 1e30);
    let raw = write_file("off1e30.nii", &bytes);
    let gz = write_file("off1e30.nii.gz", &gzip(&[&bytes]));
    for err in [
        nifti::decode(&bytes).unwrap_err(),
        nifti::read(&raw).unwrap_err(),
        nifti::read(&gz).unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(
            text.contains("1000000000000000000000000000000") && text.contains("beyond"),
            "{text}"
        );
        assert!(!text.contains("18446744073709551615"), "{text}");
    }
}

#[test]
fn gzip_checksum_mismatch_is_corruption_not_truncation() {
    let mut bytes = gzip(&[&small_nifti1()]);
    let crc = bytes.len() - 8; // the trailer: CRC-32, then the inflated length
    bytes[crc] ^= 0xff;
    let path = write_file("crc.nii.gz", &bytes);
    let err = nifti::read(&path).unwrap_err();
    let text = err.to_string();
    assert!(!matches!(err, NiftiError::Truncated(_)), "{text}");
    assert!(text.contains("corrupt") && text.contains("CRC"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn gzip_stream_cut_inside_the_image_is_truncation() {
    let bytes = gzip(&[&small_nifti1()]);
    let path = write_file("cut.nii.gz", &bytes[..bytes.len() / 2]);
    let err = nifti::read(&path).unwrap_err();
    assert!(matches!(err, NiftiError::Truncated(_)), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn read_and_write_errors_name_the_path() {
    let bytes = small_nifti1();
    let short = write_file("short.nii", &bytes[..bytes.len() - 1]);
    let missing = scratch("no-such-file.nii");
    for (path, err) in [
        (&short, nifti::read(&short).unwrap_err()),
        (&missing, nifti::read(&missing).unwrap_err()),
    ] {
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
    let g = Geometry::axis_aligned([2, 2, 2], [1.0; 3], [0.0; 3]).unwrap();
    let target = scratch("no-such-dir").join("out.nii.gz");
    let err = nifti::write(&target, &Volume::new(g, vec![0u8; 8]).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains(&target.display().to_string()),
        "{err}"
    );
}

/// `decode` takes raw and gzip bytes alike and never panics, whatever they hold.
#[test]
fn decode_survives_damaged_bytes() {
    let good = small_nifti1();
    let good_gz = gzip(&[&good]);
    assert_eq!(nifti::decode(&good_gz).unwrap().data, ramp());
    // A small xorshift: deterministic damage, no dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..2000 {
        let mut bytes = if round % 2 == 0 {
            good.clone()
        } else {
            good_gz.clone()
        };
        for _ in 0..1 + next() % 8 {
            // Mostly the header (where the decisions are), sometimes anywhere.
            let span = if next() % 4 == 0 { bytes.len() } else { 352 };
            let at = (next() % span as u64) as usize;
            bytes[at] = next() as u8;
        }
        if next() % 5 == 0 {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        let _ = nifti::decode(&bytes);
    }
}
