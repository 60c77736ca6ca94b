//! Pixel data of one single-frame, single-sample image: native (uncompressed) or RLE Lossless,
//! rescaled to f32 (`stored × RescaleSlope + RescaleIntercept`).
//!
//! The decoders check sizes before they allocate: native pixel data must hold Rows × Columns
//! pixels, and an RLE segment can expand at most 64-fold (two bytes repeat one byte 128
//! times), so a file cannot claim more output than 64 times its size.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::{DicomError, int};
use crate::suv::show;

/// Transfer syntaxes whose pixel data is native (deflated data sets arrive inflated).
const NATIVE_TRANSFER_SYNTAXES: [&str; 3] = [
    "1.2.840.10008.1.2",      // implicit VR little endian
    "1.2.840.10008.1.2.1",    // explicit VR little endian
    "1.2.840.10008.1.2.1.99", // deflated explicit VR little endian
];
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// The name of a transfer syntax that is not read, for the error.
fn unread_name(uid: &str) -> &'static str {
    match uid {
        "1.2.840.10008.1.2.2" => "explicit VR big endian",
        "1.2.840.10008.1.2.1.98" => "encapsulated uncompressed",
        "1.2.840.10008.1.2.4.50" => "JPEG Baseline",
        "1.2.840.10008.1.2.4.51" => "JPEG Extended",
        "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => "JPEG Lossless",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "JPEG-LS",
        "1.2.840.10008.1.2.4.90"
        | "1.2.840.10008.1.2.4.91"
        | "1.2.840.10008.1.2.4.92"
        | "1.2.840.10008.1.2.4.93" => "JPEG 2000",
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            "HTJ2K"
        }
        "1.2.840.10008.1.2.4.110" | "1.2.840.10008.1.2.4.111" | "1.2.840.10008.1.2.4.112" => {
            "JPEG XL"
        }
        _ => "unknown",
    }
}

/// Refuses, before any pixel is decoded, a transfer syntax that is not read.
pub(super) fn check_transfer_syntax(file: &Path, uid: &str) -> Result<(), DicomError> {
    if NATIVE_TRANSFER_SYNTAXES.contains(&uid) || uid == RLE_LOSSLESS {
        return Ok(());
    }
    Err(DicomError::Unsupported {
        file: file.to_path_buf(),
        message: format!(
            "transfer syntax {uid} ({}) is compressed or big endian and not read (read are \
             implicit and explicit VR little endian, deflated, RLE Lossless); decompress the \
             series first (e.g. `gdcmconv --raw`)",
            unread_name(uid)
        ),
    })
}

/// The rescaled pixel values (`stored × slope + intercept`) of a single-frame, single-sample
/// image of `count` pixels in `transfer_syntax` (one [`check_transfer_syntax`] let through).
/// Native PixelData must hold `count` pixels (else the file is truncated) before the output is
/// allocated, and every value must be a finite f32.
pub(super) fn decode_pixels(
    file: &Path,
    obj: &InMemDicomObject,
    transfer_syntax: &str,
    count: usize,
    slope: f64,
    intercept: f64,
) -> Result<Vec<f32>, DicomError> {
    let unsupported = |message: String| DicomError::Unsupported {
        file: file.to_path_buf(),
        message,
    };
    let corrupt = |reason: String| DicomError::Corrupt {
        file: file.to_path_buf(),
        reason,
    };
    let bits_allocated = int(obj, tags::BITS_ALLOCATED).ok_or(DicomError::Missing {
        file: file.to_path_buf(),
        attribute: "BitsAllocated (0028,0100)",
    })?;
    let bits_stored = int(obj, tags::BITS_STORED).unwrap_or(bits_allocated);
    let signed = match int(obj, tags::PIXEL_REPRESENTATION) {
        Some(0) => false,
        Some(1) => true,
        other => {
            return Err(unsupported(format!(
                "PixelRepresentation {other:?} must be 0 or 1"
            )));
        }
    };
    let bytes_per = match bits_allocated {
        8 => 1,
        16 => 2,
        32 => 4,
        b => {
            return Err(unsupported(format!(
                "BitsAllocated {b} is not supported (8, 16 or 32)"
            )));
        }
    };
    if !(1..=bits_allocated).contains(&bits_stored) {
        return Err(unsupported(format!(
            "BitsStored {bits_stored} with BitsAllocated {bits_allocated}"
        )));
    }
    let element = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        // dicom-rs drops an element cut off by the end of the file, so a PET image without
        // PixelData is one whose file ends early.
        .ok_or_else(|| corrupt("PixelData (7FE0,0010) is missing".into()))?;
    let rle;
    let bytes = match element.fragments() {
        Some(fragments) if transfer_syntax == RLE_LOSSLESS => {
            let [fragment] = fragments else {
                return Err(corrupt(format!(
                    "the RLE pixel data has {} fragments; one frame is one fragment",
                    fragments.len()
                )));
            };
            rle = decode_rle(fragment, count, bytes_per).map_err(corrupt)?;
            std::borrow::Cow::Borrowed(rle.as_slice())
        }
        Some(_) => {
            return Err(unsupported(format!(
                "PixelData is encapsulated (compressed) in transfer syntax {transfer_syntax}"
            )));
        }
        None if transfer_syntax == RLE_LOSSLESS => {
            return Err(corrupt(
                "PixelData of an RLE Lossless file is not encapsulated".into(),
            ));
        }
        None => element
            .to_bytes()
            .map_err(|e| corrupt(format!("PixelData: {e}")))?,
    };
    let needed = count.saturating_mul(bytes_per);
    if bytes.len() < needed {
        return Err(corrupt(format!(
            "PixelData (7FE0,0010) holds {} bytes; Rows × Columns × BitsAllocated / 8 = \
             {count} × {bytes_per} = {needed} bytes are needed",
            bytes.len(),
        )));
    }
    let mut values = Vec::new();
    values
        .try_reserve_exact(count)
        .map_err(|_| crate::memory::MemoryError::Allocation {
            what: "the pixels of a slice",
            bytes: (count * std::mem::size_of::<f32>()) as u64,
        })?;
    // dicom-rs holds decoded values in native byte order.
    let mask: u64 = (1u64 << bits_stored) - 1;
    let sign_bit = 1u64 << (bits_stored - 1);
    for c in bytes[..needed].chunks_exact(bytes_per) {
        let raw = match bytes_per {
            1 => c[0] as u64,
            2 => u16::from_ne_bytes([c[0], c[1]]) as u64,
            _ => u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64,
        } & mask;
        let stored = if signed && raw & sign_bit != 0 {
            raw as i64 - (mask as i64 + 1)
        } else {
            raw as i64
        };
        let value = (stored as f64 * slope + intercept) as f32;
        if !value.is_finite() {
            return Err(unsupported(format!(
                "stored value {stored} × RescaleSlope {} + RescaleIntercept {} is beyond the \
                 range of f32",
                show(slope),
                show(intercept)
            )));
        }
        values.push(value);
    }
    Ok(values)
}

/// Decodes one RLE Lossless frame (PS3.5 Annex G) of `count` pixels of `bytes_per` bytes into
/// native-endian bytes. The header names one segment per byte plane, most significant first;
/// each segment is PackBits and must yield exactly `count` bytes (a trailing pad byte aside).
fn decode_rle(fragment: &[u8], count: usize, bytes_per: usize) -> Result<Vec<u8>, String> {
    let u32_at = |p: usize| {
        u32::from_le_bytes([
            fragment[p],
            fragment[p + 1],
            fragment[p + 2],
            fragment[p + 3],
        ]) as usize
    };
    if fragment.len() < 64 {
        return Err(format!(
            "the RLE frame has {} bytes, shorter than its 64-byte header",
            fragment.len()
        ));
    }
    let segments = u32_at(0);
    if segments != bytes_per {
        return Err(format!(
            "the RLE header names {segments} segments; {bytes_per} (one per byte of a pixel) \
             are needed"
        ));
    }
    let mut bounds: Vec<usize> = (0..segments).map(|s| u32_at(4 + 4 * s)).collect();
    bounds.push(fragment.len());
    if bounds[0] != 64 || bounds.windows(2).any(|w| w[0] > w[1]) {
        return Err(format!(
            "the RLE segment offsets {bounds:?} are out of order"
        ));
    }
    let mut out = Vec::new();
    out.try_reserve_exact(count.saturating_mul(bytes_per))
        .map_err(|_| "no memory for the decoded pixels".to_string())?;
    let mut planes = Vec::with_capacity(segments);
    for s in 0..segments {
        let segment = &fragment[bounds[s]..bounds[s + 1]];
        // Two bytes yield at most 128: the bound checked before decoding.
        if count > segment.len().saturating_mul(64) {
            return Err(format!(
                "RLE segment {s} has {} bytes; it cannot hold {count} pixels",
                segment.len()
            ));
        }
        planes.push(unpack_bits(segment, count).map_err(|e| format!("RLE segment {s}: {e}"))?);
    }
    for i in 0..count {
        let mut value: u32 = 0;
        for plane in &planes {
            value = (value << 8) | u32::from(plane[i]);
        }
        match bytes_per {
            1 => out.push(value as u8),
            2 => out.extend_from_slice(&(value as u16).to_ne_bytes()),
            _ => out.extend_from_slice(&value.to_ne_bytes()),
        }
    }
    Ok(out)
}

/// PackBits: a header byte n in 0..=127 copies the next n + 1 bytes, −127..=−1 repeats the next
/// byte 1 − n times, −128 is a no-op. Exactly `count` bytes must come out.
fn unpack_bits(segment: &[u8], count: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(count);
    let mut pos = 0;
    while out.len() < count && pos < segment.len() {
        let n = segment[pos] as i8;
        pos += 1;
        match n {
            0..=127 => {
                let run = n as usize + 1;
                let literal = segment
                    .get(pos..pos + run)
                    .ok_or("a literal run passes the end of the segment")?;
                out.extend_from_slice(literal);
                pos += run;
            }
            -127..=-1 => {
                let byte = *segment
                    .get(pos)
                    .ok_or("a replicate run passes the end of the segment")?;
                out.resize(out.len() + (1 - n as isize) as usize, byte);
                pos += 1;
            }
            -128 => {}
        }
    }
    if out.len() < count {
        return Err(format!("{} bytes decoded, {count} needed", out.len()));
    }
    out.truncate(count);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_literal_and_replicate_runs() {
        // 3 literal bytes, then 4 × 9.
        let out = unpack_bits(&[2, 1, 2, 3, 0xFD, 9], 7).unwrap();
        assert_eq!(out, [1, 2, 3, 9, 9, 9, 9]);
        assert!(unpack_bits(&[2, 1, 2], 3).is_err());
        assert!(unpack_bits(&[0xFD, 9], 5).is_err());
    }

    #[test]
    fn rle_two_byte_planes_combine_most_significant_first() {
        let mut frame = vec![0u8; 64];
        frame[0] = 2;
        frame[4] = 64;
        frame[8] = 68;
        frame.extend_from_slice(&[0xFF, 0x01, 0, 0]); // high bytes: 1, 1; pad
        frame.extend_from_slice(&[1, 0x02, 0x03]); // low bytes: 2, 3
        let out = decode_rle(&frame, 2, 2).unwrap();
        let values: Vec<u16> = out
            .chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(values, [0x0102, 0x0103]);
        assert!(decode_rle(&frame[..40], 2, 2).is_err());
        assert!(decode_rle(&frame, 200, 2).is_err());
    }
}
