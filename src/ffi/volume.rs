//! Volume descriptor: how a host hands the library a PET or CT volume without copying it first.

use super::{guard, read_sized};
use crate::error::Error;
use crate::volume::{Geometry, Volume};

/// A caller-owned volume in patient LPS space (DESIGN S1). The library only reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UptakeVolume {
    /// `sizeof(UptakeVolume)` as compiled by the caller.
    pub struct_size: u32,
    /// Voxels along x, y, z (x fastest in memory); each ≥ 1, product ≤ 2^31.
    pub dims: [u32; 3],
    /// Voxel size in mm along each array axis; finite and > 0.
    pub spacing_mm: [f64; 3],
    /// LPS position (mm) of the centre of voxel (0, 0, 0).
    pub origin_mm: [f64; 3],
    /// Row-major 3×3 matrix whose columns are the LPS unit vectors of the array axes
    /// (identity = axes along patient left, posterior, superior); orthonormal to 1e-3.
    pub direction: [f64; 9],
    /// `dims[0]·dims[1]·dims[2]` values, 4-byte aligned, x fastest.
    pub data: *const f32,
    /// Number of values at `data`; must equal the product of `dims`.
    pub data_len: u64,
}

impl Default for UptakeVolume {
    fn default() -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>() as u32,
            dims: [0; 3],
            spacing_mm: [0.0; 3],
            origin_mm: [0.0; 3],
            direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            data: std::ptr::null(),
            data_len: 0,
        }
    }
}

const VOLUME_V1_SIZE: usize = std::mem::size_of::<UptakeVolume>();

impl UptakeVolume {
    /// Checks the geometry (every S1 rule) without touching the voxel data.
    pub fn geometry(&self) -> Result<Geometry, Error> {
        let d = &self.direction;
        let g = Geometry::new(
            self.dims.map(|v| v as usize),
            self.spacing_mm,
            self.origin_mm,
            [[d[0], d[1], d[2]], [d[3], d[4], d[5]], [d[6], d[7], d[8]]],
        )?;
        if self.data.is_null() {
            return Err(Error::InvalidArgument("volume->data is NULL".into()));
        }
        if !(self.data as usize).is_multiple_of(std::mem::align_of::<f32>()) {
            return Err(Error::InvalidArgument(
                "volume->data is not 4-byte aligned".into(),
            ));
        }
        if self.data_len != g.len() as u64 {
            return Err(Error::InvalidArgument(format!(
                "volume->data_len is {} but dims {:?} hold {} voxels",
                self.data_len,
                g.dims(),
                g.len()
            )));
        }
        Ok(g)
    }

    /// Copies the caller's voxels into a validated volume.
    ///
    /// # Safety
    /// `data` must point to `data_len` readable floats for the duration of the call.
    pub unsafe fn to_volume(&self) -> Result<Volume<f32>, Error> {
        let g = self.geometry()?;
        // SAFETY: non-NULL, aligned and data_len == g.len() checked above; readable by contract.
        let data = unsafe { std::slice::from_raw_parts(self.data, g.len()) };
        let copy = crate::memory::try_copy(data, "a copy of the host's volume")?;
        Ok(Volume::new(g, copy)?)
    }
}

/// Reads a caller's volume descriptor.
///
/// # Safety
/// `ptr` must be NULL or point to at least `struct_size` readable bytes.
pub(crate) unsafe fn read_volume(
    ptr: *const UptakeVolume,
    name: &str,
) -> Result<UptakeVolume, Error> {
    // SAFETY: forwarded contract.
    unsafe { read_sized(ptr, VOLUME_V1_SIZE, name) }
}

/// Fills `*volume` with an empty descriptor: `struct_size` set, identity direction, no data.
///
/// # Safety
/// `volume` must be NULL or point to a writable `UptakeVolume`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_volume_init(volume: *mut UptakeVolume) -> u32 {
    guard(|| {
        if volume.is_null() {
            return Err(super::null("volume"));
        }
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { volume.write_unaligned(UptakeVolume::default()) };
        Ok(())
    })
}

/// Checks a volume descriptor against every rule of DESIGN S1 (dims, spacing, direction, data
/// pointer and length) and that its voxels are finite. Reads, never writes, the caller's data.
///
/// # Safety
/// `volume` must be NULL or a valid descriptor whose `data` holds `data_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_volume_check(volume: *const UptakeVolume) -> u32 {
    guard(|| {
        // SAFETY: forwarded contract.
        let v = unsafe { read_volume(volume, "volume")? };
        let g = v.geometry()?;
        // SAFETY: geometry() checked pointer, alignment and length.
        let data = unsafe { std::slice::from_raw_parts(v.data, g.len()) };
        if let Some(first) = data.iter().position(|x| !x.is_finite()) {
            let count = data.iter().filter(|x| !x.is_finite()).count();
            return Err(crate::volume::VolumeError::NonFinite {
                what: "given",
                count,
                first,
            }
            .into());
        }
        Ok(())
    })
}
