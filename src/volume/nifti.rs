//! NIfTI-1 and NIfTI-2 reading and NIfTI-1 writing, in patient LPS space.
//!
//! The voxel→world affine is chosen as nibabel's `get_best_affine` does:
//! the sform when `sform_code > 0`, else the qform when `qform_code > 0` (quaternion completed
//! with nibabel's `fillpositive`, `pixdim[0]` as qfac), else nibabel's base affine from `pixdim`
//! (x flipped, centred on the middle voxel). NIfTI world space is RAS; it is converted to LPS by
//! negating the first two rows: `A_lps = diag(−1, −1, 1, 1) · A_ras`.
//!
//! Reading costs what the image needs, whatever the file claims: the library runs inside its
//! host's process, where exhausting memory or aborting takes the host down (issue #28).
//! - The header alone is read (of a gzip file, inflated) first, and everything it decides (dims,
//!   data type, `vox_offset`, scaling, affine) is checked before a voxel is read.
//! - Then exactly `vox_offset + nbytes` bytes are read and the rest of the file is left alone.
//!   Of a gzip stream at most [`GZIP_TAIL_CHECKED`] more bytes are inflated, so that the CRC-32
//!   of a stream ending there (as written files do) is still checked.
//! - An uncompressed file's voxel data is checked against the file's length before the voxel
//!   buffer is allocated. A gzip stream's inflated length is unknown until it has been read, so
//!   its voxels are read [`CHUNK_BYTES`] at a time and the buffer grows with what arrives: a
//!   header that lies about its size is found truncated after at most one chunk.
//! - Every allocation sized by the header is fallible and becomes [`NiftiError::OutOfMemory`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;
use nifti::{NiftiHeader, writer::WriterOptions};
use thiserror::Error;

pub use super::affine::ras_to_lps;
use super::affine::{geometry_from_affine, quaternion_to_rotation, rotation_to_quaternion};
use super::{Geometry, MAX_VOXELS, Volume, VolumeError};

/// Voxel bytes read and converted at a time: besides the image itself, the only buffer a read
/// allocates. A multiple of every element size.
pub const CHUNK_BYTES: usize = 4 << 20;

/// How many bytes of a gzip stream past the image are inflated looking for the stream's end,
/// where its CRC-32 is checked. A stream that goes on longer is left unread and unchecked.
pub const GZIP_TAIL_CHECKED: u64 = 1 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why a NIfTI file could not be read or written.
#[derive(Debug, Error)]
pub enum NiftiError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a NIfTI-1 or NIfTI-2 file: {0}")]
    NotNifti(String),
    #[error(
        "separate NIfTI header and image files (.hdr + .img) are not read: {0}; convert the pair \
         to a single .nii or .nii.gz"
    )]
    SeparateFiles(String),
    #[error("truncated NIfTI file: {0}")]
    Truncated(String),
    #[error("corrupt gzip stream: {0}")]
    CorruptGzip(String),
    #[error("malformed NIfTI header: {0}")]
    Malformed(String),
    #[error("unsupported NIfTI data type code {0}")]
    UnsupportedDataType(i16),
    #[error("NIfTI geometry rejected: {0}")]
    Geometry(#[from] VolumeError),
    #[error("image has {0} frames; a single 3-D volume was expected")]
    NotThreeD(usize),
    #[error(
        "cannot allocate {bytes} bytes ({:.1} MiB) for {what}: out of memory",
        *bytes as f64 / (1u64 << 20) as f64
    )]
    OutOfMemory { what: &'static str, bytes: u64 },
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

impl NiftiError {
    /// The error with the file's path in front of its message, where the message does not
    /// name it yet.
    fn in_file(self, path: &str) -> Self {
        let at = |m: String| format!("{path}: {m}");
        match self {
            Self::NotNifti(m) => Self::NotNifti(at(m)),
            Self::SeparateFiles(m) => Self::SeparateFiles(at(m)),
            Self::Truncated(m) => Self::Truncated(at(m)),
            Self::CorruptGzip(m) => Self::CorruptGzip(at(m)),
            Self::Malformed(m) => Self::Malformed(at(m)),
            other => other,
        }
    }
}

/// `vox_offset` as the header stores it (a float in NIfTI-1, an integer in NIfTI-2), so that
/// messages show the header's own value.
#[derive(Debug, Clone, Copy)]
enum VoxOffset {
    Float(f32),
    Int(i64),
}

impl fmt::Display for VoxOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Float(v) => write!(f, "{v}"),
            Self::Int(v) => write!(f, "{v}"),
        }
    }
}

/// Header fields shared by NIfTI-1 and NIfTI-2 that reading needs, widened to 64 bits.
#[derive(Debug, Clone)]
struct RawHeader {
    header_size: u64,
    dim: [i64; 8],
    pixdim: [f64; 8],
    vox_offset: VoxOffset,
    datatype: i16,
    scl_slope: f64,
    scl_inter: f64,
    qform_code: i32,
    sform_code: i32,
    quatern: [f64; 3],
    qoffset: [f64; 3],
    srow: [[f64; 4]; 3],
    little_endian: bool,
}

/// A NIfTI image: its geometry in LPS, every frame (a 3-D image has one), and the affine used.
#[derive(Debug, Clone)]
pub struct NiftiImage {
    pub geometry: Geometry,
    /// Number of 3-D frames (product of dims 4..7).
    pub frames: usize,
    /// All frames, each x fastest, frames one after another; scl_slope/inter applied.
    pub data: Vec<f32>,
    /// The 4×4 voxel→LPS affine (row-major) exactly as derived from the header.
    pub affine_lps: [[f64; 4]; 4],
    /// 1 or 2.
    pub nifti_version: u8,
    /// Which transform the affine came from: "sform", "qform" or "pixdim".
    pub affine_source: &'static str,
    /// The NIfTI data type code as stored.
    pub datatype: i16,
}

impl NiftiImage {
    /// Frame `t` as a volume.
    pub fn frame(&self, t: usize) -> Option<Volume<f32>> {
        let n = self.geometry.len();
        let data = self.data.get(t * n..(t + 1) * n)?.to_vec();
        Volume::new(self.geometry, data).ok()
    }

    /// The image as one 3-D volume; an error when it has more than one frame.
    pub fn into_volume(self) -> Result<Volume<f32>, NiftiError> {
        if self.frames != 1 {
            return Err(NiftiError::NotThreeD(self.frames));
        }
        Ok(Volume::new(self.geometry, self.data)?)
    }
}

/// Reads a single-file NIfTI (`.nii`, or gzip-compressed `.nii.gz`: gzip is recognised by its
/// magic bytes, not the name). Errors name the path.
pub fn read(path: impl AsRef<Path>) -> Result<NiftiImage, NiftiError> {
    let path = path.as_ref();
    let origin = path.display().to_string();
    let io = |source| NiftiError::Io {
        path: origin.clone(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    let mut file = BufReader::new(file);
    let gzip = file.fill_buf().map_err(io)?.starts_with(&GZIP_MAGIC);
    let image = if gzip {
        read_stream(&mut Input::new(
            MultiGzDecoder::new(file),
            true,
            None,
            &origin,
        ))
    } else {
        // Only a regular file's length is known up front: devices and pipes report 0.
        let length = metadata.is_file().then_some(metadata.len());
        read_stream(&mut Input::new(file, false, length, &origin))
    };
    image.map_err(|e| e.in_file(&origin))
}

/// Reads a file that must hold one 3-D volume.
pub fn read_volume(path: impl AsRef<Path>) -> Result<Volume<f32>, NiftiError> {
    read(path)?.into_volume()
}

/// Decodes a whole single-file NIfTI held in memory, raw or gzip-compressed. Never panics,
/// whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<NiftiImage, NiftiError> {
    const ORIGIN: &str = "NIfTI bytes in memory";
    if bytes.starts_with(&GZIP_MAGIC) {
        read_stream(&mut Input::new(
            MultiGzDecoder::new(bytes),
            true,
            None,
            ORIGIN,
        ))
    } else {
        read_stream(&mut Input::new(
            bytes,
            false,
            Some(bytes.len() as u64),
            ORIGIN,
        ))
    }
}

/// A NIfTI byte stream being read: a file, bytes in memory, or the inflated stream of either.
struct Input<'a, R> {
    reader: R,
    /// Bytes read so far (of a gzip stream, inflated bytes).
    position: u64,
    gzip: bool,
    /// The stream's length where it is known before reading it (an uncompressed regular file,
    /// bytes in memory).
    length: Option<u64>,
    /// Where the bytes come from, for I/O errors.
    origin: &'a str,
}

impl<'a, R: Read> Input<'a, R> {
    fn new(reader: R, gzip: bool, length: Option<u64>, origin: &'a str) -> Self {
        Self {
            reader,
            position: 0,
            gzip,
            length,
            origin,
        }
    }

    /// Fills `buf` as far as the stream goes: the count read, short only at the stream's end.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, NiftiError> {
        let mut n = 0;
        while n < buf.len() {
            match self.reader.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.position += n as u64;
                    return Err(self.error(e));
                }
            }
        }
        self.position += n as u64;
        Ok(n)
    }

    /// Reads past up to `n` bytes without keeping them: the count skipped, short at the end.
    fn skip(&mut self, n: u64) -> Result<u64, NiftiError> {
        let mut scratch = [0u8; 8192];
        let mut left = n;
        while left > 0 {
            let want = left.min(scratch.len() as u64) as usize;
            let got = self.fill(&mut scratch[..want])?;
            if got == 0 {
                break;
            }
            left -= got as u64;
        }
        Ok(n - left)
    }

    /// A read error in words. flate2 reports a stream that stops early as `UnexpectedEof` and
    /// bad gzip or deflate data (a checksum mismatch included) as `InvalidInput`.
    fn error(&self, e: io::Error) -> NiftiError {
        match e.kind() {
            io::ErrorKind::UnexpectedEof if self.gzip => NiftiError::Truncated(format!(
                "the gzip stream breaks off after {} inflated bytes ({e})",
                self.position
            )),
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData if self.gzip => {
                NiftiError::CorruptGzip(if e.to_string().contains("checksum") {
                    format!(
                        "the CRC-32 checksum or length in its trailer does not match the data \
                         ({e})"
                    )
                } else {
                    e.to_string()
                })
            }
            _ => NiftiError::Io {
                path: self.origin.to_string(),
                source: e,
            },
        }
    }
}

/// Reads one image from `input`, reading no further than the header says the image goes.
fn read_stream<R: Read>(input: &mut Input<'_, R>) -> Result<NiftiImage, NiftiError> {
    let mut head = [0u8; 540];
    let got = input.fill(&mut head[..4])?;
    if got < 4 {
        return Err(NiftiError::Truncated(format!(
            "{got} bytes, shorter than any header"
        )));
    }
    let size = header_size(&head)?;
    let got = 4 + input.fill(&mut head[4..size])?;
    if got < size {
        return Err(NiftiError::Truncated(format!(
            "{got} bytes, a NIfTI-{} header needs {size}",
            if size == 348 { 1 } else { 2 }
        )));
    }
    let (header, version) = parse_header(&head[..size])?;
    let (spatial, frames) = checked_dims(&header)?;
    let elem = element_size(header.datatype)?;
    let (slope, inter) = scaling(&header)?;
    let (affine_ras, affine_source) = best_affine(&header, spatial)?;
    let affine_lps = ras_to_lps(&affine_ras);
    let geometry = geometry_from_affine(spatial, &affine_lps)?;
    let offset = data_offset(&header, version)?;

    let count = spatial.iter().product::<usize>() * frames;
    let nbytes = count as u64 * elem as u64;
    if let Some(length) = input.length {
        if offset > length {
            return Err(NiftiError::Malformed(format!(
                "vox_offset {} lies beyond the end of the {length}-byte file",
                header.vox_offset
            )));
        }
        let available = length - offset;
        if available < nbytes {
            return Err(NiftiError::Truncated(format!(
                "{nbytes} bytes of voxel data expected at offset {offset}, {available} present"
            )));
        }
    }
    input.skip(offset - input.position)?;
    if input.position < offset {
        return Err(NiftiError::Malformed(format!(
            "vox_offset {} lies beyond the end of the data: the gzip stream holds {} bytes",
            header.vox_offset, input.position
        )));
    }
    let data = read_voxels(input, count, elem, offset, |bytes, out| {
        decode_voxels(
            bytes,
            header.datatype,
            header.little_endian,
            slope,
            inter,
            out,
        )
    })?;
    if input.gzip {
        input.skip(GZIP_TAIL_CHECKED)?;
    }
    Ok(NiftiImage {
        geometry,
        frames,
        data,
        affine_lps,
        nifti_version: version,
        affine_source,
        datatype: header.datatype,
    })
}

/// Reads the `count` voxels of `elem` bytes that start at the stream's position (`offset`),
/// `CHUNK_BYTES` at a time, converting each chunk with `convert`. The voxel buffer is reserved
/// whole where the stream's length has vouched for the data, and otherwise grows with the data
/// that has arrived.
fn read_voxels<R: Read>(
    input: &mut Input<'_, R>,
    count: usize,
    elem: usize,
    offset: u64,
    convert: impl Fn(&[u8], &mut Vec<f32>) -> Result<(), NiftiError>,
) -> Result<Vec<f32>, NiftiError> {
    let nbytes = count as u64 * elem as u64;
    let mut data = Vec::new();
    if input.length.is_some() {
        grow(&mut data, count, count)?;
    }
    let chunk_len = (nbytes as usize).min(CHUNK_BYTES);
    let mut chunk = Vec::new();
    chunk
        .try_reserve_exact(chunk_len)
        .map_err(|_| NiftiError::OutOfMemory {
            what: "a read buffer",
            bytes: chunk_len as u64,
        })?;
    chunk.resize(chunk_len, 0u8);
    let mut done = 0u64;
    while done < nbytes {
        let want = (nbytes - done).min(CHUNK_BYTES as u64) as usize;
        let got = input.fill(&mut chunk[..want])?;
        if got < want {
            return Err(NiftiError::Truncated(format!(
                "{nbytes} bytes of voxel data expected at offset {offset}, {} present",
                done + got as u64
            )));
        }
        grow(&mut data, want / elem, count)?;
        convert(&chunk[..want], &mut data)?;
        done += want as u64;
    }
    Ok(data)
}

/// Makes room for `additional` more voxels, growing geometrically but never past the `total`
/// the header declares; an error naming the size when the memory cannot be had.
fn grow(data: &mut Vec<f32>, additional: usize, total: usize) -> Result<(), NiftiError> {
    if data.capacity() - data.len() >= additional {
        return Ok(());
    }
    let target = data
        .capacity()
        .saturating_mul(2)
        .max(data.len() + additional)
        .min(total);
    data.try_reserve_exact(target - data.len())
        .map_err(|_| NiftiError::OutOfMemory {
            what: "the voxels as float32",
            bytes: target as u64 * 4,
        })
}

/// The header's size from its first field, sizeof_hdr (348 for NIfTI-1, 540 for NIfTI-2, in
/// either byte order).
fn header_size(bytes: &[u8; 540]) -> Result<usize, NiftiError> {
    let first = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let (le, be) = (i32::from_le_bytes(first), i32::from_be_bytes(first));
    match (le, be) {
        (348, _) | (_, 348) => Ok(348),
        (540, _) | (_, 540) => Ok(540),
        _ => Err(NiftiError::NotNifti(format!(
            "sizeof_hdr is {le} (little-endian) / {be} (big-endian), expected 348 or 540"
        ))),
    }
}

/// Parses a whole header (348 or 540 bytes) of a single-file NIfTI; its version with it.
fn parse_header(bytes: &[u8]) -> Result<(RawHeader, u8), NiftiError> {
    let first = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if bytes.len() == 348 {
        parse_nifti1(bytes).map(|h| (h, 1))
    } else {
        parse_nifti2(bytes, i32::from_le_bytes(first) == 540).map(|h| (h, 2))
    }
}

/// The first byte of the voxels, from `vox_offset`. A single file keeps them after the header
/// and the 4 extension-flag bytes (nibabel: "vox offset too low for single file").
fn data_offset(h: &RawHeader, version: u8) -> Result<u64, NiftiError> {
    let offset = match h.vox_offset {
        VoxOffset::Float(v) if !(v.is_finite() && v.fract() == 0.0) => {
            return Err(NiftiError::Malformed(format!(
                "vox_offset {v} is not a whole number of bytes"
            )));
        }
        // Saturates above u64::MAX, which no file reaches either.
        VoxOffset::Float(v) => v.max(0.0) as u64,
        VoxOffset::Int(v) => u64::try_from(v).unwrap_or(0),
    };
    let minimum = h.header_size + 4;
    if offset < minimum {
        return Err(NiftiError::Malformed(format!(
            "vox_offset {} is below {minimum}: a single-file NIfTI-{version} keeps its voxels \
             after the {}-byte header and 4 extension bytes",
            h.vox_offset, h.header_size
        )));
    }
    Ok(offset)
}

fn parse_nifti1(bytes: &[u8]) -> Result<RawHeader, NiftiError> {
    let magic = &bytes[344..348];
    if magic == b"ni1\0" {
        return Err(NiftiError::SeparateFiles(
            "the magic \"ni1\" marks a NIfTI-1 header whose voxels are in a separate .img file"
                .into(),
        ));
    }
    if magic != b"n+1\0" {
        return Err(NiftiError::NotNifti(format!("NIfTI-1 magic is {magic:?}")));
    }
    let h = NiftiHeader::from_reader(Cursor::new(bytes))
        .map_err(|e| NiftiError::Malformed(e.to_string()))?;
    let widen4 = |r: [f32; 4]| r.map(f64::from);
    Ok(RawHeader {
        header_size: 348,
        dim: h.dim.map(|d| d as i16 as i64),
        pixdim: h.pixdim.map(f64::from),
        vox_offset: VoxOffset::Float(h.vox_offset),
        datatype: h.datatype,
        scl_slope: f64::from(h.scl_slope),
        scl_inter: f64::from(h.scl_inter),
        qform_code: i32::from(h.qform_code),
        sform_code: i32::from(h.sform_code),
        quatern: [h.quatern_b, h.quatern_c, h.quatern_d].map(f64::from),
        qoffset: [h.quatern_x, h.quatern_y, h.quatern_z].map(f64::from),
        srow: [widen4(h.srow_x), widen4(h.srow_y), widen4(h.srow_z)],
        little_endian: h.endianness == nifti::Endianness::Little,
    })
}

/// NIfTI-2: the nifti crate reads NIfTI-1 only, so the 540-byte header is read here from its
/// published layout (offsets in bytes).
fn parse_nifti2(bytes: &[u8], little_endian: bool) -> Result<RawHeader, NiftiError> {
    let magic = &bytes[4..12];
    if magic == b"ni2\0\r\n\x1a\n" {
        return Err(NiftiError::SeparateFiles(
            "the magic \"ni2\" marks a NIfTI-2 header whose voxels are in a separate .img file"
                .into(),
        ));
    }
    if magic != b"n+2\0\r\n\x1a\n" {
        return Err(NiftiError::NotNifti(format!("NIfTI-2 magic is {magic:?}")));
    }
    let b8 = |o: usize| -> [u8; 8] { bytes[o..o + 8].try_into().unwrap_or([0; 8]) };
    let b4 = |o: usize| -> [u8; 4] { bytes[o..o + 4].try_into().unwrap_or([0; 4]) };
    let i16_at = |o: usize| {
        let b = [bytes[o], bytes[o + 1]];
        if little_endian {
            i16::from_le_bytes(b)
        } else {
            i16::from_be_bytes(b)
        }
    };
    let i32_at = |o: usize| {
        if little_endian {
            i32::from_le_bytes(b4(o))
        } else {
            i32::from_be_bytes(b4(o))
        }
    };
    let i64_at = |o: usize| {
        if little_endian {
            i64::from_le_bytes(b8(o))
        } else {
            i64::from_be_bytes(b8(o))
        }
    };
    let f64_at = |o: usize| {
        if little_endian {
            f64::from_le_bytes(b8(o))
        } else {
            f64::from_be_bytes(b8(o))
        }
    };
    let row = |o: usize| [f64_at(o), f64_at(o + 8), f64_at(o + 16), f64_at(o + 24)];
    Ok(RawHeader {
        header_size: 540,
        dim: std::array::from_fn(|i| i64_at(16 + 8 * i)),
        pixdim: std::array::from_fn(|i| f64_at(104 + 8 * i)),
        vox_offset: VoxOffset::Int(i64_at(168)),
        datatype: i16_at(12),
        scl_slope: f64_at(176),
        scl_inter: f64_at(184),
        qform_code: i32_at(344),
        sform_code: i32_at(348),
        quatern: [f64_at(352), f64_at(360), f64_at(368)],
        qoffset: [f64_at(376), f64_at(384), f64_at(392)],
        srow: [row(400), row(432), row(464)],
        little_endian,
    })
}

/// Spatial dims (missing ones are 1) and the number of frames, checked against the voxel limit.
fn checked_dims(h: &RawHeader) -> Result<([usize; 3], usize), NiftiError> {
    let ndim = h.dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(NiftiError::Malformed(format!(
            "dim[0] = {ndim}, must be 1..7"
        )));
    }
    let ndim = ndim as usize;
    let mut total: u128 = 1;
    let mut spatial = [1usize; 3];
    let mut frames: u128 = 1;
    for i in 1..=ndim {
        let d = h.dim[i];
        if d < 1 {
            return Err(NiftiError::Malformed(format!(
                "dim[{i}] = {d}, must be ≥ 1"
            )));
        }
        total *= d as u128;
        if total > MAX_VOXELS as u128 {
            return Err(NiftiError::Malformed(format!(
                "{:?} holds more than 2^31 voxels",
                &h.dim[1..=ndim]
            )));
        }
        if i <= 3 {
            spatial[i - 1] = d as usize;
        } else {
            frames *= d as u128;
        }
    }
    Ok((spatial, frames as usize))
}

fn element_size(datatype: i16) -> Result<usize, NiftiError> {
    Ok(match datatype {
        2 | 256 => 1,
        4 | 512 => 2,
        8 | 16 | 768 => 4,
        64 | 1024 | 1280 => 8,
        other => return Err(NiftiError::UnsupportedDataType(other)),
    })
}

/// nibabel's rule: a zero or non-finite slope means "no scaling"; a valid slope with a
/// non-finite intercept is an error.
fn scaling(h: &RawHeader) -> Result<(f64, f64), NiftiError> {
    if h.scl_slope == 0.0 || !h.scl_slope.is_finite() {
        return Ok((1.0, 0.0));
    }
    if !h.scl_inter.is_finite() {
        return Err(NiftiError::Malformed(format!(
            "valid scl_slope {} but invalid scl_inter {}",
            h.scl_slope, h.scl_inter
        )));
    }
    Ok((h.scl_slope, h.scl_inter))
}

/// Converts stored values to f32 and appends them to `out` (whose capacity the caller has
/// reserved); scaling is done in f64 so integer data scales as nibabel does.
fn decode_voxels(
    bytes: &[u8],
    datatype: i16,
    little_endian: bool,
    slope: f64,
    inter: f64,
    out: &mut Vec<f32>,
) -> Result<(), NiftiError> {
    macro_rules! convert {
        ($t:ty, $n:expr) => {
            out.extend(
                bytes
                    .chunks_exact($n)
                    .map(|c| {
                        let a: [u8; $n] = c.try_into().unwrap_or([0; $n]);
                        let v = if little_endian {
                            <$t>::from_le_bytes(a)
                        } else {
                            <$t>::from_be_bytes(a)
                        };
                        v as f64
                    })
                    .map(|v| if slope == 1.0 && inter == 0.0 { v } else { v * slope + inter } as f32),
            )
        };
    }
    match datatype {
        2 => convert!(u8, 1),
        256 => convert!(i8, 1),
        4 => convert!(i16, 2),
        512 => convert!(u16, 2),
        8 => convert!(i32, 4),
        768 => convert!(u32, 4),
        16 => convert!(f32, 4),
        64 => convert!(f64, 8),
        1024 => convert!(i64, 8),
        1280 => convert!(u64, 8),
        other => return Err(NiftiError::UnsupportedDataType(other)),
    }
    Ok(())
}

/// nibabel's `get_best_affine` in RAS, and which transform it came from.
fn best_affine(
    h: &RawHeader,
    spatial: [usize; 3],
) -> Result<([[f64; 4]; 4], &'static str), NiftiError> {
    if h.sform_code < 0 || h.qform_code < 0 {
        return Err(NiftiError::Malformed(format!(
            "negative xform code (sform {}, qform {})",
            h.sform_code, h.qform_code
        )));
    }
    let pix = [h.pixdim[1], h.pixdim[2], h.pixdim[3]];
    if let Some(p) = pix.iter().find(|p| !p.is_finite() || **p < 0.0) {
        return Err(NiftiError::Malformed(format!(
            "pixdim[1..3] = {pix:?} contains {p}; voxel sizes must be finite and non-negative"
        )));
    }
    if h.sform_code > 0 {
        let s = h.srow;
        if s.iter().flatten().any(|v| !v.is_finite()) {
            return Err(NiftiError::Malformed(format!("non-finite sform {s:?}")));
        }
        return Ok(([s[0], s[1], s[2], [0.0, 0.0, 0.0, 1.0]], "sform"));
    }
    if h.qform_code > 0 {
        return qform_affine(h, pix).map(|a| (a, "qform"));
    }
    // nibabel's shape_zoom_affine with x flipped: centred on the middle voxel.
    let zooms = [-pix[0], pix[1], pix[2]];
    let mut a = [[0.0; 4]; 4];
    for i in 0..3 {
        a[i][i] = zooms[i];
        a[i][3] = -((spatial[i] as f64 - 1.0) / 2.0) * zooms[i];
    }
    a[3][3] = 1.0;
    Ok((a, "pixdim"))
}

/// The qform affine as nibabel computes it: quaternion (b, c, d) completed with
/// `a = sqrt(1 − b² − c² − d²)` (tolerating a tiny negative argument, 3 float32 eps, as zero),
/// rotation R, then `R · diag(pixdim1, pixdim2, qfac·pixdim3)` and the qoffset.
fn qform_affine(h: &RawHeader, pix: [f64; 3]) -> Result<[[f64; 4]; 4], NiftiError> {
    let [b, c, d] = h.quatern;
    if !(b.is_finite() && c.is_finite() && d.is_finite())
        || h.qoffset.iter().any(|v| !v.is_finite())
    {
        return Err(NiftiError::Malformed(format!(
            "non-finite quaternion {:?} or offset {:?}",
            h.quatern, h.qoffset
        )));
    }
    let w2 = 1.0 - (b * b + c * c + d * d);
    let threshold = -3.0 * f64::from(f32::EPSILON);
    if w2 < threshold {
        return Err(NiftiError::Malformed(format!(
            "quaternion (b, c, d) = ({b}, {c}, {d}) has norm > 1 (1 − |q|² = {w2:e})"
        )));
    }
    let a = w2.max(0.0).sqrt();
    let qfac = match h.pixdim[0] {
        0.0 | 1.0 => 1.0,
        -1.0 => -1.0,
        q => {
            return Err(NiftiError::Malformed(format!(
                "qfac (pixdim[0]) is {q}; it must be 1 or -1"
            )));
        }
    };
    let r = quaternion_to_rotation([a, b, c, d]);
    let zoom = [pix[0], pix[1], pix[2] * qfac];
    let mut m = [[0.0; 4]; 4];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = r[i][j] * zoom[j];
        }
        m[i][3] = h.qoffset[i];
    }
    m[3][3] = 1.0;
    Ok(m)
}

/// Element types the writer stores, with their NIfTI type.
pub trait NiftiElement: bytemuck::Pod {
    const TYPE: nifti::NiftiType;
}
impl NiftiElement for f32 {
    const TYPE: nifti::NiftiType = nifti::NiftiType::Float32;
}
impl NiftiElement for u32 {
    const TYPE: nifti::NiftiType = nifti::NiftiType::Uint32;
}
impl NiftiElement for u8 {
    const TYPE: nifti::NiftiType = nifti::NiftiType::Uint8;
}
impl NiftiElement for i16 {
    const TYPE: nifti::NiftiType = nifti::NiftiType::Int16;
}

/// Writes a volume as NIfTI-1 (`.nii`, or gzip when the name ends in `.gz`) with sform and
/// qform (both code 1, scanner-based) describing the same RAS affine.
pub fn write<T: NiftiElement>(
    path: impl AsRef<Path>,
    volume: &Volume<T>,
) -> Result<(), NiftiError> {
    let path = path.as_ref();
    let fail = |message: String| NiftiError::Write {
        path: path.display().to_string(),
        message,
    };
    let g = volume.geometry();
    let [nx, ny, nz] = g.dims();
    if [nx, ny, nz].iter().any(|&d| d > i16::MAX as usize) {
        return Err(fail(format!(
            "dims {:?} exceed NIfTI-1's limit of 32767",
            g.dims()
        )));
    }
    let ras = ras_to_lps(&g.affine_lps());
    let (quatern, qfac) = rotation_to_quaternion(&ras, g.spacing_mm());
    let s = g.spacing_mm();
    let header = NiftiHeader {
        pixdim: [
            qfac as f32,
            s[0] as f32,
            s[1] as f32,
            s[2] as f32,
            1.0,
            1.0,
            1.0,
            1.0,
        ],
        xyzt_units: 2, // millimetres
        sform_code: 1,
        qform_code: 1,
        srow_x: ras[0].map(|v| v as f32),
        srow_y: ras[1].map(|v| v as f32),
        srow_z: ras[2].map(|v| v as f32),
        quatern_b: quatern[0] as f32,
        quatern_c: quatern[1] as f32,
        quatern_d: quatern[2] as f32,
        quatern_x: ras[0][3] as f32,
        quatern_y: ras[1][3] as f32,
        quatern_z: ras[2][3] as f32,
        ..NiftiHeader::default()
    };

    // The nifti crate reports a missing folder in Rust's debug form: say it plainly first.
    if let Some(folder) = path
        .parent()
        .filter(|f| !f.as_os_str().is_empty() && !f.is_dir())
    {
        return Err(fail(format!(
            "the folder {} does not exist or is not a folder",
            folder.display()
        )));
    }
    let mut voxels = Vec::new();
    voxels.try_reserve_exact(volume.data().len()).map_err(|_| {
        fail(format!(
            "cannot allocate {} bytes to copy the voxels: out of memory",
            std::mem::size_of_val(volume.data())
        ))
    })?;
    voxels.extend_from_slice(volume.data());
    let array = ndarray::Array3::from_shape_vec(ndarray::ShapeBuilder::f((nx, ny, nz)), voxels)
        .map_err(|e| fail(e.to_string()))?;
    // The nifti crate derives its output name by swapping extensions, which mangles names with
    // dots in the stem ("a.b.nii" becomes "a.nii"). Write to a dot-free name beside the target,
    // then rename: the file lands exactly at `path`, and a failed write leaves no partial file.
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let staging = path.with_file_name(format!(
        ".uptake-write-{}-{}.{}",
        std::process::id(),
        WRITE_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        if gz { "nii.gz" } else { "nii" }
    ));
    let written = WriterOptions::new(&staging)
        .reference_header(&header)
        .write_nifti_with_type(&array, T::TYPE)
        .map_err(|e| fail(e.to_string()))
        .and_then(|()| std::fs::rename(&staging, path).map_err(|e| fail(e.to_string())));
    if written.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    written
}

/// Distinguishes concurrent writes of one process in the same folder.
static WRITE_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(mut edit: impl FnMut(&mut NiftiHeader)) -> Vec<u8> {
        // Write a tiny valid file through our writer, then patch the header with the nifti crate.
        let dir = std::env::temp_dir().join(format!("uptake-nifti-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("t{}.nii", rand_name()));
        let g = Geometry::axis_aligned([3, 4, 5], [2.0, 2.0, 3.0], [1.0, 2.0, 3.0]).unwrap();
        let v = Volume::new(g, (0..60).map(|i| i as f32).collect()).unwrap();
        write(&path, &v).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        let mut h = NiftiHeader::from_reader(Cursor::new(&bytes[..348])).unwrap();
        edit(&mut h);
        patch_nifti1(&mut bytes, &h);
        bytes
    }

    fn rand_name() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    /// Rewrites the fields the tests touch at their NIfTI-1 offsets (little-endian).
    fn patch_nifti1(bytes: &mut [u8], h: &NiftiHeader) {
        for (i, d) in h.dim.iter().enumerate() {
            bytes[40 + 2 * i..42 + 2 * i].copy_from_slice(&(*d as i16).to_le_bytes());
        }
        bytes[70..72].copy_from_slice(&h.datatype.to_le_bytes());
        for (i, p) in h.pixdim.iter().enumerate() {
            bytes[76 + 4 * i..80 + 4 * i].copy_from_slice(&p.to_le_bytes());
        }
        bytes[108..112].copy_from_slice(&h.vox_offset.to_le_bytes());
        bytes[252..254].copy_from_slice(&h.qform_code.to_le_bytes());
        bytes[254..256].copy_from_slice(&h.sform_code.to_le_bytes());
        for (i, q) in [h.quatern_b, h.quatern_c, h.quatern_d].iter().enumerate() {
            bytes[256 + 4 * i..260 + 4 * i].copy_from_slice(&q.to_le_bytes());
        }
    }

    #[test]
    fn round_trip_keeps_values_and_geometry() {
        let bytes = header_bytes(|_| {});
        let img = decode(&bytes).unwrap();
        assert_eq!(img.nifti_version, 1);
        assert_eq!(img.affine_source, "sform");
        assert_eq!(img.geometry.dims(), [3, 4, 5]);
        assert_eq!(img.geometry.orientation_code(), "LPS");
        let o = img.geometry.origin_mm();
        assert!(
            (o[0] - 1.0).abs() < 1e-6 && (o[1] - 2.0).abs() < 1e-6 && (o[2] - 3.0).abs() < 1e-6
        );
        assert_eq!(img.data, (0..60).map(|i| i as f32).collect::<Vec<_>>());
    }

    #[test]
    fn names_with_dots_are_written_where_asked() {
        let dir = std::env::temp_dir().join(format!("uptake-dots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let g = Geometry::axis_aligned([2, 2, 2], [1.0; 3], [0.0; 3]).unwrap();
        let v = Volume::new(g, vec![3u32; 8]).unwrap();
        for name in ["study.v2_labels.nii", "a.b.c.nii.gz"] {
            write(dir.join(name), &v).unwrap();
            let back = read(dir.join(name)).unwrap();
            assert_eq!(back.data, vec![3.0; 8], "{name}");
        }
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.b.c.nii.gz", "study.v2_labels.nii"]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn qform_alone_gives_the_same_geometry() {
        let bytes = header_bytes(|h| h.sform_code = 0);
        let img = decode(&bytes).unwrap();
        assert_eq!(img.affine_source, "qform");
        let p = img.geometry.voxel_to_patient([2.0, 3.0, 4.0]);
        let want = [1.0 + 4.0, 2.0 + 6.0, 3.0 + 12.0];
        for a in 0..3 {
            assert!((p[a] - want[a]).abs() < 1e-5, "{p:?} vs {want:?}");
        }
    }

    #[test]
    fn oblique_left_handed_round_trip_through_sform_and_qform() {
        let (s, c) = 0.4f64.sin_cos();
        // A rotation about y with the third axis flipped: a left-handed frame needs qfac = −1.
        let d = [[c, 0.0, -s], [0.0, 1.0, 0.0], [-s, 0.0, -c]];
        let g = Geometry::new([4, 3, 2], [1.5, 2.5, 3.5], [-10.0, 5.0, 7.0], d).unwrap();
        let v = Volume::new(g, vec![1.0f32; 24]).unwrap();
        let path = std::env::temp_dir().join(format!("uptake-oblique-{}.nii", std::process::id()));
        write(&path, &v).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        let from_sform = decode(&bytes).unwrap();
        bytes[254..256].copy_from_slice(&0i16.to_le_bytes());
        let from_qform = decode(&bytes).unwrap();
        assert_eq!(
            (from_sform.affine_source, from_qform.affine_source),
            ("sform", "qform")
        );
        for img in [from_sform, from_qform] {
            for ijk in [[0.0, 0.0, 0.0], [3.0, 2.0, 1.0]] {
                let (p, q) = (g.voxel_to_patient(ijk), img.geometry.voxel_to_patient(ijk));
                for a in 0..3 {
                    assert!(
                        (p[a] - q[a]).abs() < 1e-4,
                        "{}: {p:?} vs {q:?}",
                        img.affine_source
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_headers_are_errors() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "negative pixdim",
                header_bytes(|h| {
                    h.sform_code = 0;
                    h.pixdim[2] = -2.0;
                }),
            ),
            (
                "bad quaternion",
                header_bytes(|h| {
                    h.sform_code = 0;
                    h.quatern_b = 0.9;
                    h.quatern_c = 0.9;
                }),
            ),
            (
                "bad qfac",
                header_bytes(|h| {
                    h.sform_code = 0;
                    h.pixdim[0] = 0.5;
                }),
            ),
            (
                "vox_offset inside header",
                header_bytes(|h| h.vox_offset = 100.0),
            ),
            (
                "vox_offset past the end",
                header_bytes(|h| h.vox_offset = 1.0e6),
            ),
            (
                "fractional vox_offset",
                header_bytes(|h| h.vox_offset = 352.5),
            ),
            ("dim[0] = 0", header_bytes(|h| h.dim[0] = 0)),
            ("dim[0] = 9", header_bytes(|h| h.dim[0] = 9)),
            ("zero dim", header_bytes(|h| h.dim[2] = 0)),
            ("negative dim", header_bytes(|h| h.dim[1] = (-3i16) as u16)),
            (
                "huge dims",
                header_bytes(|h| {
                    h.dim = [3, 32767, 32767, 32767, 1, 1, 1, 1];
                }),
            ),
            ("complex data", header_bytes(|h| h.datatype = 32)),
            ("garbage", vec![7u8; 600]),
            ("empty", vec![]),
        ];
        for (name, bytes) in cases {
            match decode(&bytes) {
                Err(e) => assert!(!e.to_string().is_empty(), "{name}"),
                Ok(_) => panic!("{name}: accepted a malformed file"),
            }
        }
        let good = header_bytes(|_| {});
        for cut in [0, 3, 100, 347, 352, 400, good.len() - 1] {
            assert!(decode(&good[..cut]).is_err(), "truncated at {cut} accepted");
        }
    }

    #[test]
    fn nifti2_header_is_read() {
        // Build a NIfTI-2 file by hand: 2×2×1 float32, sform as identity RAS shifted.
        let mut b = vec![0u8; 544];
        b[0..4].copy_from_slice(&540i32.to_le_bytes());
        b[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
        b[12..14].copy_from_slice(&16i16.to_le_bytes());
        b[14..16].copy_from_slice(&32i16.to_le_bytes());
        for (i, d) in [3i64, 2, 2, 1, 1, 1, 1, 1].iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&d.to_le_bytes());
        }
        for (i, p) in [1.0f64, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
            .iter()
            .enumerate()
        {
            b[104 + 8 * i..112 + 8 * i].copy_from_slice(&p.to_le_bytes());
        }
        b[168..176].copy_from_slice(&544i64.to_le_bytes());
        b[348..352].copy_from_slice(&1i32.to_le_bytes());
        let rows = [
            [1.0f64, 0.0, 0.0, 10.0],
            [0.0, 1.0, 0.0, 20.0],
            [0.0, 0.0, 1.0, 30.0],
        ];
        for (r, row) in rows.iter().enumerate() {
            for (k, v) in row.iter().enumerate() {
                let o = 400 + 32 * r + 8 * k;
                b[o..o + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        for v in [1.0f32, 2.0, 3.0, 4.0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let img = decode(&b).unwrap();
        assert_eq!(img.nifti_version, 2);
        assert_eq!(img.data, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(img.geometry.orientation_code(), "RAS");
        assert_eq!(
            img.geometry.voxel_to_patient([1.0, 1.0, 0.0]),
            [-11.0, -21.0, 30.0]
        );
        assert!(decode(&b[..b.len() - 1]).is_err());
    }
}
