//! Volumes in patient space (DESIGN S1).
//!
//! A volume is a dense 3-D array, x fastest in memory, placed in **patient LPS** coordinates
//! (+x patient left, +y posterior, +z superior — the DICOM and ITK convention):
//!
//! ```text
//! p = origin + D · (spacing ⊙ i)        i = (ix, iy, iz), voxel centres
//! ```
//!
//! where `D` is the 3×3 direction matrix whose *columns* are the unit vectors of the array axes.
//! PET and CT may have different grids and orientations; they are related only through `p`.

mod affine;
pub mod nifti;

use thiserror::Error;

/// Largest accepted number of voxels in one volume (S1): 2^31.
pub const MAX_VOXELS: u64 = 1 << 31;

/// Tolerance on |DᵀD − I| for a direction matrix to count as orthonormal (S1).
pub const ORTHONORMAL_TOLERANCE: f64 = 1e-3;

/// Why a volume or its geometry was rejected.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum VolumeError {
    #[error("dimension {axis} is zero (dims {dims:?})")]
    ZeroDimension { axis: usize, dims: [usize; 3] },
    #[error("volume has {voxels} voxels, more than the limit of 2^31 (dims {dims:?})")]
    TooManyVoxels { voxels: u128, dims: [usize; 3] },
    #[error("spacing along axis {axis} is {value} mm; it must be finite and > 0")]
    BadSpacing { axis: usize, value: f64 },
    #[error("origin component {axis} is {value}; it must be finite")]
    BadOrigin { axis: usize, value: f64 },
    #[error(
        "direction matrix is not orthonormal (max |DᵀD − I| = {deviation:.3e}, tolerance 1e-3)"
    )]
    NotOrthonormal { deviation: f64 },
    #[error("data length {len} does not match dims {dims:?} ({expected} voxels)")]
    DataLength {
        len: usize,
        expected: usize,
        dims: [usize; 3],
    },
    #[error(
        "{count} non-finite voxel values (NaN or ±Inf) in the {what} volume, first at index {first}"
    )]
    NonFinite {
        what: &'static str,
        count: usize,
        first: usize,
    },
}

/// Placement of a voxel grid in patient LPS space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    origin_mm: [f64; 3],
    /// Row-major 3×3; column `j` is the LPS unit vector of array axis `j`.
    direction: [[f64; 3]; 3],
}

/// The identity direction: array axes along patient L, P, S.
pub const IDENTITY_DIRECTION: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

impl Geometry {
    /// Validates and builds a geometry. Every rejection of S1 that concerns the grid is checked here.
    pub fn new(
        dims: [usize; 3],
        spacing_mm: [f64; 3],
        origin_mm: [f64; 3],
        direction: [[f64; 3]; 3],
    ) -> Result<Self, VolumeError> {
        for (axis, &d) in dims.iter().enumerate() {
            if d == 0 {
                return Err(VolumeError::ZeroDimension { axis, dims });
            }
        }
        let voxels = dims
            .iter()
            .fold(1u128, |acc, &d| acc.saturating_mul(d as u128));
        if voxels > MAX_VOXELS as u128 {
            return Err(VolumeError::TooManyVoxels { voxels, dims });
        }
        for (axis, &value) in spacing_mm.iter().enumerate() {
            if !(value.is_finite() && value > 0.0) {
                return Err(VolumeError::BadSpacing { axis, value });
            }
        }
        for (axis, &value) in origin_mm.iter().enumerate() {
            if !value.is_finite() {
                return Err(VolumeError::BadOrigin { axis, value });
            }
        }
        let deviation = orthonormality_deviation(&direction);
        // NaN compares false both ways, so test for acceptance and negate.
        if deviation.is_nan() || deviation > ORTHONORMAL_TOLERANCE {
            return Err(VolumeError::NotOrthonormal { deviation });
        }
        Ok(Self {
            dims,
            spacing_mm,
            origin_mm,
            direction,
        })
    }

    /// An axis-aligned (identity direction) grid.
    pub fn axis_aligned(
        dims: [usize; 3],
        spacing_mm: [f64; 3],
        origin_mm: [f64; 3],
    ) -> Result<Self, VolumeError> {
        Self::new(dims, spacing_mm, origin_mm, IDENTITY_DIRECTION)
    }

    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }
    pub fn spacing_mm(&self) -> [f64; 3] {
        self.spacing_mm
    }
    pub fn origin_mm(&self) -> [f64; 3] {
        self.origin_mm
    }
    /// Row-major; column `j` is the unit vector of array axis `j`.
    pub fn direction(&self) -> [[f64; 3]; 3] {
        self.direction
    }

    /// Number of voxels (fits in `usize`: at most 2^31).
    pub fn len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// Never true for a validated geometry; present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Volume of one voxel in mL (mm³ / 1000).
    pub fn voxel_volume_ml(&self) -> f64 {
        self.spacing_mm.iter().product::<f64>() / 1000.0
    }

    /// Linear index of voxel (x, y, z), x fastest.
    #[inline]
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        x + self.dims[0] * (y + self.dims[1] * z)
    }

    /// Voxel coordinates of a linear index.
    #[inline]
    pub fn coords(&self, index: usize) -> [usize; 3] {
        let x = index % self.dims[0];
        let yz = index / self.dims[0];
        [x, yz % self.dims[1], yz / self.dims[1]]
    }

    /// Patient LPS position (mm) of a continuous voxel index (voxel centres at integers).
    #[inline]
    pub fn voxel_to_patient(&self, ijk: [f64; 3]) -> [f64; 3] {
        let s = [
            ijk[0] * self.spacing_mm[0],
            ijk[1] * self.spacing_mm[1],
            ijk[2] * self.spacing_mm[2],
        ];
        let d = &self.direction;
        [
            self.origin_mm[0] + d[0][0] * s[0] + d[0][1] * s[1] + d[0][2] * s[2],
            self.origin_mm[1] + d[1][0] * s[0] + d[1][1] * s[1] + d[1][2] * s[2],
            self.origin_mm[2] + d[2][0] * s[0] + d[2][1] * s[1] + d[2][2] * s[2],
        ]
    }

    /// Continuous voxel index of a patient LPS position: i = (Dᵀ (p − origin)) / spacing.
    /// Uses the transpose as the inverse; the direction is orthonormal to 1e-3 by validation.
    #[inline]
    pub fn patient_to_voxel(&self, p: [f64; 3]) -> [f64; 3] {
        let r = [
            p[0] - self.origin_mm[0],
            p[1] - self.origin_mm[1],
            p[2] - self.origin_mm[2],
        ];
        let d = &self.direction;
        [
            (d[0][0] * r[0] + d[1][0] * r[1] + d[2][0] * r[2]) / self.spacing_mm[0],
            (d[0][1] * r[0] + d[1][1] * r[1] + d[2][1] * r[2]) / self.spacing_mm[1],
            (d[0][2] * r[0] + d[1][2] * r[1] + d[2][2] * r[2]) / self.spacing_mm[2],
        ]
    }

    /// The 4×4 voxel→LPS affine (row-major), `A = [D·diag(spacing) | origin]`.
    pub fn affine_lps(&self) -> [[f64; 4]; 4] {
        let d = &self.direction;
        let s = &self.spacing_mm;
        let o = &self.origin_mm;
        [
            [d[0][0] * s[0], d[0][1] * s[1], d[0][2] * s[2], o[0]],
            [d[1][0] * s[0], d[1][1] * s[1], d[1][2] * s[2], o[1]],
            [d[2][0] * s[0], d[2][1] * s[1], d[2][2] * s[2], o[2]],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    /// Three-letter orientation code in the ITK/DICOM sense: for each array axis, the patient
    /// direction its index increases towards (`LPS` for the identity, `RAS` for the NIfTI default).
    /// An axis that lies exactly between two directions takes the first in x, y, z order.
    pub fn orientation_code(&self) -> String {
        (0..3)
            .map(|j| {
                let col = [
                    self.direction[0][j],
                    self.direction[1][j],
                    self.direction[2][j],
                ];
                let k = (0..3)
                    .max_by(|&a, &b| {
                        col[a]
                            .abs()
                            .partial_cmp(&col[b].abs())
                            .unwrap_or(std::cmp::Ordering::Equal)
                            .then(b.cmp(&a))
                    })
                    .unwrap_or(0);
                let positive = col[k] >= 0.0;
                match (k, positive) {
                    (0, true) => 'L',
                    (0, false) => 'R',
                    (1, true) => 'P',
                    (1, false) => 'A',
                    (2, true) => 'S',
                    _ => 'I',
                }
            })
            .collect()
    }
}

/// max |(DᵀD − I)ᵢⱼ|; NaN propagates so that a NaN direction is rejected.
fn orthonormality_deviation(d: &[[f64; 3]; 3]) -> f64 {
    let mut worst = 0.0f64;
    for i in 0..3 {
        for j in 0..3 {
            let dot = d[0][i] * d[0][j] + d[1][i] * d[1][j] + d[2][i] * d[2][j];
            let dev = (dot - if i == j { 1.0 } else { 0.0 }).abs();
            if dev.is_nan() {
                return f64::NAN;
            }
            worst = worst.max(dev);
        }
    }
    worst
}

/// A validated grid with its voxel values (x fastest).
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T = f32> {
    geometry: Geometry,
    data: Vec<T>,
}

impl<T> Volume<T> {
    /// Pairs a geometry with data; the data length must equal the number of voxels.
    pub fn new(geometry: Geometry, data: Vec<T>) -> Result<Self, VolumeError> {
        if data.len() != geometry.len() {
            return Err(VolumeError::DataLength {
                len: data.len(),
                expected: geometry.len(),
                dims: geometry.dims(),
            });
        }
        Ok(Self { geometry, data })
    }

    /// A volume of one value everywhere.
    pub fn filled(geometry: Geometry, value: T) -> Self
    where
        T: Clone,
    {
        Self {
            data: vec![value; geometry.len()],
            geometry,
        }
    }

    /// [`Volume::filled`], or an error naming `what` when the memory cannot be had.
    pub fn try_filled(
        geometry: Geometry,
        value: T,
        what: &'static str,
    ) -> Result<Self, crate::memory::MemoryError>
    where
        T: Clone,
    {
        Ok(Self {
            data: crate::memory::try_vec(geometry.len(), value, what)?,
            geometry,
        })
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    pub fn dims(&self) -> [usize; 3] {
        self.geometry.dims
    }
    pub fn data(&self) -> &[T] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<T> {
        self.data
    }
}

impl Volume<f32> {
    /// Rejects NaN and ±Inf voxels (analysis input, S1). `what` names the volume in the error.
    pub fn check_finite(&self, what: &'static str) -> Result<(), VolumeError> {
        use rayon::prelude::*;
        // A whole-body CT has ~10^8 voxels: scan in parallel, find the first only on failure.
        let count = self.data.par_iter().filter(|v| !v.is_finite()).count();
        if count > 0 {
            let first = self.data.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(VolumeError::NonFinite { what, count, first });
        }
        Ok(())
    }

    /// Replaces non-finite voxels by `fill` and returns how many were replaced (the analysis
    /// option that maps them to 0 SUV / −1000 HU with a warning count).
    pub fn replace_non_finite(&mut self, fill: f32) -> usize {
        let mut count = 0;
        for v in &mut self.data {
            if !v.is_finite() {
                *v = fill;
                count += 1;
            }
        }
        count
    }

    /// (min, max) over finite values, or `None` when there is none.
    pub fn finite_range(&self) -> Option<(f32, f32)> {
        self.data
            .iter()
            .filter(|v| v.is_finite())
            .fold(None, |acc, &v| match acc {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rot_z(theta: f64) -> [[f64; 3]; 3] {
        let (s, c) = theta.sin_cos();
        [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    }

    #[test]
    fn rejects_zero_dimension() {
        for axis in 0..3 {
            let mut dims = [4, 5, 6];
            dims[axis] = 0;
            let err = Geometry::axis_aligned(dims, [1.0; 3], [0.0; 3]).unwrap_err();
            assert_eq!(err, VolumeError::ZeroDimension { axis, dims });
        }
    }

    #[test]
    fn rejects_more_than_2_pow_31_voxels() {
        let ok = Geometry::axis_aligned([1 << 11, 1 << 10, 1 << 10], [1.0; 3], [0.0; 3]);
        assert!(ok.is_ok(), "exactly 2^31 voxels is allowed");
        let err = Geometry::axis_aligned([(1 << 11) + 1, 1 << 10, 1 << 10], [1.0; 3], [0.0; 3]);
        assert!(matches!(err, Err(VolumeError::TooManyVoxels { .. })));
        let err = Geometry::axis_aligned([usize::MAX, usize::MAX, 2], [1.0; 3], [0.0; 3]);
        assert!(
            matches!(err, Err(VolumeError::TooManyVoxels { .. })),
            "no overflow"
        );
    }

    #[test]
    fn rejects_bad_spacing() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for axis in 0..3 {
                let mut spacing = [2.0; 3];
                spacing[axis] = bad;
                let err = Geometry::axis_aligned([2, 2, 2], spacing, [0.0; 3]).unwrap_err();
                assert!(
                    matches!(err, VolumeError::BadSpacing { axis: a, .. } if a == axis),
                    "{bad} on axis {axis}: {err}"
                );
            }
        }
    }

    #[test]
    fn rejects_non_finite_origin() {
        let err = Geometry::axis_aligned([2, 2, 2], [1.0; 3], [0.0, f64::NAN, 0.0]).unwrap_err();
        assert!(matches!(err, VolumeError::BadOrigin { axis: 1, .. }));
    }

    #[test]
    fn rejects_non_orthonormal_direction() {
        let scaled = [[1.01, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let sheared = [[1.0, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let singular = [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        let nan = [[f64::NAN, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        for d in [scaled, sheared, singular, nan] {
            let err = Geometry::new([2, 2, 2], [1.0; 3], [0.0; 3], d).unwrap_err();
            assert!(matches!(err, VolumeError::NotOrthonormal { .. }), "{d:?}");
        }
        let within = [[1.0004, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(Geometry::new([2, 2, 2], [1.0; 3], [0.0; 3], within).is_ok());
    }

    #[test]
    fn rejects_wrong_data_length() {
        let g = Geometry::axis_aligned([2, 3, 4], [1.0; 3], [0.0; 3]).unwrap();
        let err = Volume::new(g, vec![0.0f32; 23]).unwrap_err();
        assert_eq!(
            err,
            VolumeError::DataLength {
                len: 23,
                expected: 24,
                dims: [2, 3, 4]
            }
        );
        assert!(Volume::new(g, vec![0.0f32; 24]).is_ok());
    }

    #[test]
    fn rejects_non_finite_voxels_on_request() {
        let g = Geometry::axis_aligned([2, 2, 1], [1.0; 3], [0.0; 3]).unwrap();
        let mut v = Volume::new(g, vec![1.0, f32::NAN, f32::INFINITY, 2.0]).unwrap();
        let err = v.check_finite("PET").unwrap_err();
        assert_eq!(
            err,
            VolumeError::NonFinite {
                what: "PET",
                count: 2,
                first: 1
            }
        );
        assert_eq!(v.replace_non_finite(0.0), 2);
        assert!(v.check_finite("PET").is_ok());
        assert_eq!(v.finite_range(), Some((0.0, 2.0)));
    }

    #[test]
    fn voxel_patient_round_trip_oblique() {
        let d = rot_z(0.3);
        let g = Geometry::new([10, 11, 12], [0.9, 1.3, 3.0], [-100.0, 20.5, 7.0], d).unwrap();
        for ijk in [[0.0, 0.0, 0.0], [9.0, 10.0, 11.0], [2.5, -1.25, 7.75]] {
            let p = g.voxel_to_patient(ijk);
            let back = g.patient_to_voxel(p);
            for a in 0..3 {
                assert!(
                    (back[a] - ijk[a]).abs() < 1e-12,
                    "{ijk:?} -> {p:?} -> {back:?}"
                );
            }
        }
        // Voxel (1,0,0) lies one x-spacing along the rotated first axis.
        let p = g.voxel_to_patient([1.0, 0.0, 0.0]);
        assert!((p[0] - (-100.0 + 0.9 * 0.3f64.cos())).abs() < 1e-12);
        assert!((p[1] - (20.5 + 0.9 * 0.3f64.sin())).abs() < 1e-12);
    }

    #[test]
    fn index_and_coords_agree() {
        let g = Geometry::axis_aligned([3, 4, 5], [1.0; 3], [0.0; 3]).unwrap();
        for i in 0..g.len() {
            let [x, y, z] = g.coords(i);
            assert_eq!(g.index(x, y, z), i);
        }
        assert_eq!(g.index(1, 2, 3), 1 + 3 * (2 + 4 * 3));
    }

    #[test]
    fn orientation_codes() {
        let lps = Geometry::axis_aligned([2, 2, 2], [1.0; 3], [0.0; 3]).unwrap();
        assert_eq!(lps.orientation_code(), "LPS");
        let ras = [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]];
        let g = Geometry::new([2, 2, 2], [1.0; 3], [0.0; 3], ras).unwrap();
        assert_eq!(g.orientation_code(), "RAS");
        let coronal = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]];
        let g = Geometry::new([2, 2, 2], [1.0; 3], [0.0; 3], coronal).unwrap();
        assert_eq!(g.orientation_code(), "LIP");
    }
}
