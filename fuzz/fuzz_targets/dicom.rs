//! A PET DICOM series from outside bytes. The input is split into one to three files of a
//! series folder: byte 0 picks the count (`1 + b % 3`); each file but the last is preceded by
//! its length (u32, little-endian, clamped to what is left), the last takes the rest. Files are
//! named `*.dcm`, so the reader must parse each of them (a cut file is an error, not skipped).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use uptake::dicom;

/// One folder per fuzzing process, emptied and refilled for each input.
fn series_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("uptake-fuzz-dicom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary series folder");
        dir
    })
}

fn split(bytes: &[u8]) -> Vec<&[u8]> {
    let Some((&count, mut rest)) = bytes.split_first() else {
        return Vec::new();
    };
    let count = 1 + usize::from(count % 3);
    let mut files = Vec::with_capacity(count);
    for _ in 1..count {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            break;
        };
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        let (file, tail) = tail.split_at(len);
        files.push(file);
        rest = tail;
    }
    files.push(rest);
    files
}

fuzz_target!(|bytes: &[u8]| {
    let dir = series_dir();
    for entry in std::fs::read_dir(dir).expect("list series folder").flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
    for (i, file) in split(bytes).into_iter().enumerate() {
        std::fs::write(dir.join(format!("slice{i}.dcm")), file).expect("write slice");
    }
    if let Ok(series) = dicom::read_pet_series(dir) {
        let _ = series.suv_factor();
        let _ = series.to_suv();
    }
});
