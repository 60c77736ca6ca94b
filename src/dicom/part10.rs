//! Part 10 files as bytes: which files are DICOM, their declared lengths checked before the
//! DICOM library sees them, and deflated data sets inflated within a bound.

use std::io::Read;
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};

use super::DicomError;

/// Deflated Explicit VR Little Endian.
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// Most bytes one deflated data set may inflate to. Deflate reaches ratios near 1000:1, so a
/// few kilobytes could otherwise claim gigabytes; 128 MiB holds a 32-bit slice of 5 000² pixels.
const MAX_INFLATED_BYTES: u64 = 128 << 20;

/// A Part 10 file in memory, its `DICM` magic at byte `magic`. A deflated data set is held
/// inflated, its meta group rewritten to explicit VR little endian; `transfer_syntax` is the
/// one the file declared.
pub(super) struct Part10 {
    pub bytes: Vec<u8>,
    pub magic: usize,
    pub transfer_syntax: String,
}

/// Reads `path`: `None` for a file that is skipped (see the module docs of `dicom`), else its
/// bytes with every declared length checked.
pub(super) fn read(path: &Path) -> Result<Option<Part10>, DicomError> {
    let corrupt = |reason: String| DicomError::Corrupt {
        file: path.to_path_buf(),
        reason,
    };
    let Some((bytes, magic)) = dicom_bytes(path)? else {
        return Ok(None);
    };
    let meta = meta_group(&bytes, magic).map_err(corrupt)?;
    let mut file = Part10 {
        bytes,
        magic,
        transfer_syntax: meta.transfer_syntax.clone(),
    };
    if meta.transfer_syntax == DEFLATED {
        file.bytes = inflate(&file.bytes, &meta).map_err(corrupt)?;
        file.magic = 0;
    }
    check_declared_lengths(&file.bytes, file.magic).map_err(corrupt)?;
    Ok(Some(file))
}

/// Parses a file from [`read`]; with `header_only`, up to the pixel data.
pub(super) fn parse(
    path: &Path,
    file: &Part10,
    header_only: bool,
) -> Result<DefaultDicomObject, DicomError> {
    let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    if header_only {
        options = options.read_until(tags::PIXEL_DATA);
    }
    options
        .from_reader(&file.bytes[file.magic..])
        .map_err(|e| DicomError::Corrupt {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// The file meta group: where each element starts and ends, the transfer syntax, and where
/// the data set starts.
struct MetaGroup {
    elements: Vec<(u16, std::ops::Range<usize>)>,
    transfer_syntax: String,
    end: usize,
}

fn meta_group(bytes: &[u8], magic: usize) -> Result<MetaGroup, String> {
    let u16_at = |p: usize| u16::from_le_bytes([bytes[p], bytes[p + 1]]);
    let u32_at =
        |p: usize| u32::from_le_bytes([bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]]);
    let mut pos = magic + 4;
    let mut meta = MetaGroup {
        elements: Vec::new(),
        transfer_syntax: String::new(),
        end: pos,
    };
    while bytes.len() >= pos + 8 && u16_at(pos) == 0x0002 {
        let start = pos;
        let element = u16_at(pos + 2);
        let vr = explicit_vr([bytes[pos + 4], bytes[pos + 5]]);
        let (header, len) = if LONG_VRS.contains(&&vr) {
            if bytes.len() < pos + 12 {
                break;
            }
            (12, u32_at(pos + 8))
        } else {
            (8, u32::from(u16_at(pos + 6)))
        };
        pos += header;
        let len = fits(bytes, pos, len, 0x0002, element)?;
        if element == 0x0010 {
            meta.transfer_syntax = String::from_utf8_lossy(&bytes[pos..pos + len])
                .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_string();
        }
        pos += len;
        meta.elements.push((element, start..pos));
    }
    meta.end = pos;
    Ok(meta)
}

/// The file with its deflated data set inflated (at most [`MAX_INFLATED_BYTES`]) and its meta
/// group declaring explicit VR little endian, the `DICM` magic at byte 0.
fn inflate(bytes: &[u8], meta: &MetaGroup) -> Result<Vec<u8>, String> {
    let mut data_set = Vec::new();
    flate2::read::DeflateDecoder::new(&bytes[meta.end..])
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut data_set)
        .map_err(|e| format!("the deflated data set does not inflate: {e}"))?;
    if data_set.len() as u64 > MAX_INFLATED_BYTES {
        return Err(format!(
            "the deflated data set inflates to more than {MAX_INFLATED_BYTES} bytes"
        ));
    }
    let mut group = Vec::new();
    for (element, range) in &meta.elements {
        match element {
            0x0000 => {}
            0x0010 => {
                let uid = format!("{EXPLICIT_VR_LITTLE_ENDIAN}\0");
                group.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
                group.extend_from_slice(&(uid.len() as u16).to_le_bytes());
                group.extend_from_slice(uid.as_bytes());
            }
            _ => group.extend_from_slice(&bytes[range.clone()]),
        }
    }
    let mut out = Vec::new();
    out.try_reserve_exact(16 + group.len() + data_set.len())
        .map_err(|_| "no memory for the inflated data set".to_string())?;
    out.extend_from_slice(b"DICM");
    out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
    out.extend_from_slice(&(group.len() as u32).to_le_bytes());
    out.extend_from_slice(&group);
    out.extend_from_slice(&data_set);
    Ok(out)
}

/// The SOP class of a DICOMDIR.
pub(super) const MEDIA_STORAGE_DIRECTORY_STORAGE: &str = "1.2.840.10008.1.3.10";

/// The bytes of `path` and where its `DICM` magic starts, or `None` for a file that is skipped:
/// one without the magic at byte 128 or 0 and without a DICOM file name (see the module docs).
fn dicom_bytes(path: &Path) -> Result<Option<(Vec<u8>, usize)>, DicomError> {
    const MAGIC: &[u8] = b"DICM";
    let io = |source| DicomError::Io {
        path: path.to_path_buf(),
        source,
    };
    let magic_at = |head: &[u8]| {
        if head.get(128..132) == Some(MAGIC) {
            Some(128)
        } else if head.starts_with(MAGIC) {
            Some(0)
        } else {
            None
        }
    };
    let named = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["dcm", "dicom", "ima"]
            .iter()
            .any(|d| e.eq_ignore_ascii_case(d))
    });
    if !named {
        let mut head = Vec::with_capacity(132);
        std::fs::File::open(path)
            .map_err(io)?
            .take(132)
            .read_to_end(&mut head)
            .map_err(io)?;
        if magic_at(&head).is_none() {
            return Ok(None);
        }
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let magic = magic_at(&bytes).ok_or_else(|| DicomError::Corrupt {
        file: path.to_path_buf(),
        reason: format!(
            "{} bytes without the DICM magic of a DICOM Part 10 file at byte 128",
            bytes.len()
        ),
    })?;
    Ok(Some((bytes, magic)))
}

const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;

/// Explicit VRs with a reserved 16-bit field and a 32-bit length (PS3.5 §7.1.2).
const LONG_VRS: [&[u8; 2]; 13] = [
    b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV",
];

/// The VR of an explicit-VR header as dicom-rs reads it: one it does not know is UN, which has
/// the long form; otherwise the walk and the parser would disagree on where the length is.
fn explicit_vr(raw: [u8; 2]) -> [u8; 2] {
    if dicom_core::VR::from_binary(raw).is_some() {
        raw
    } else {
        *b"UN"
    }
}

/// Checks that every value length a Part 10 file (`bytes`, its `DICM` magic at byte `magic`)
/// declares fits in the bytes after it. dicom-rs allocates, and for text fills, a buffer of the declared
/// length before it reads the value, so a 200-byte file declaring a 4 GiB value would cost
/// 4 GiB of memory; here it costs one pass over the bytes.
///
/// The walk is linear: the file meta group in explicit VR little endian, then the data set in
/// its transfer syntax. It steps into sequences and items (their elements follow their headers)
/// and over every other value; fragments of encapsulated pixel data are stepped over. A
/// sequence in implicit VR is recognised by the item tag its value starts with. A deflated data
/// set is checked after [`inflate`]. Not checked, because the bytes cannot be walked: the
/// contents of an explicit VR UN value of undefined length (encoded in implicit VR).
pub(super) fn check_declared_lengths(bytes: &[u8], magic: usize) -> Result<(), String> {
    let u16_at = |p: usize, big: bool| {
        let b = [bytes[p], bytes[p + 1]];
        if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |p: usize, big: bool| {
        let b = [bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]];
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut pos = magic + 4;
    let mut transfer_syntax = String::new();
    // The file meta group: explicit VR little endian, group 0002.
    while bytes.len() >= pos + 8 && u16_at(pos, false) == 0x0002 {
        let element = u16_at(pos + 2, false);
        let vr = explicit_vr([bytes[pos + 4], bytes[pos + 5]]);
        let (header, len) = if LONG_VRS.contains(&&vr) {
            if bytes.len() < pos + 12 {
                break;
            }
            (12, u32_at(pos + 8, false))
        } else {
            (8, u32::from(u16_at(pos + 6, false)))
        };
        pos += header;
        let len = fits(bytes, pos, len, 0x0002, element)?;
        if element == 0x0010 {
            transfer_syntax = String::from_utf8_lossy(&bytes[pos..pos + len])
                .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_string();
        }
        pos += len;
    }
    let (implicit, big) = match transfer_syntax.as_str() {
        "1.2.840.10008.1.2" => (true, false),
        "1.2.840.10008.1.2.2" => (false, true),
        // Explicit VR little endian, and every encapsulated (compressed) syntax.
        _ => (false, false),
    };
    let mut in_fragments = false;
    while pos < bytes.len() {
        if bytes.len() < pos + 8 {
            return Err(format!(
                "the file ends {} bytes into an element header at byte {pos}",
                bytes.len() - pos
            ));
        }
        let (group, element) = (u16_at(pos, big), u16_at(pos + 2, big));
        if group == 0xFFFE {
            // Item, item delimitation or sequence delimitation: a 32-bit length, no VR.
            let len = u32_at(pos + 4, big);
            pos += 8;
            match element {
                0xE000 if len != UNDEFINED_LENGTH => {
                    let len = fits(bytes, pos, len, group, element)?;
                    if in_fragments {
                        pos += len;
                    }
                }
                0xE0DD => in_fragments = false,
                _ => {}
            }
            continue;
        }
        let (vr, header, len) = if implicit {
            (None, 8, u32_at(pos + 4, big))
        } else {
            let vr = explicit_vr([bytes[pos + 4], bytes[pos + 5]]);
            if LONG_VRS.contains(&&vr) {
                if bytes.len() < pos + 12 {
                    return Err(format!(
                        "the file ends inside the header of ({group:04X},{element:04X})"
                    ));
                }
                (Some(vr), 12, u32_at(pos + 8, big))
            } else {
                (Some(vr), 8, u32::from(u16_at(pos + 6, big)))
            }
        };
        pos += header;
        if len == UNDEFINED_LENGTH {
            match vr {
                Some(vr) if &vr == b"UN" => return Ok(()),
                _ if (group, element) == (0x7FE0, 0x0010) => in_fragments = true,
                _ => {}
            }
            continue;
        }
        let len = fits(bytes, pos, len, group, element)?;
        let sequence = match vr {
            Some(vr) => &vr == b"SQ",
            None => len >= 8 && bytes[pos..pos + 4] == [0xFE, 0xFF, 0x00, 0xE0],
        };
        if !sequence {
            pos += len;
        }
    }
    Ok(())
}

/// `len` as a usize when the value it declares at `pos` ends within `bytes`.
fn fits(bytes: &[u8], pos: usize, len: u32, group: u16, element: u16) -> Result<usize, String> {
    let left = bytes.len().saturating_sub(pos);
    usize::try_from(len)
        .ok()
        .filter(|&n| n <= left)
        .ok_or_else(|| {
            format!(
                "({group:04X},{element:04X}) declares a value of {len} bytes at byte {pos}, but \
                 only {left} follow"
            )
        })
}
