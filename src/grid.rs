//! Common 3 mm grid (DESIGN S3): PET and CT resampled onto one axis-aligned LPS grid.
//!
//! # Trilinear convention
//! Voxel centres sit at integer indices. A point is *inside* a volume when its continuous index
//! lies in the voxel-edge box `[−0.5, n − 0.5]` on every axis, i.e. within the field of view the
//! voxels tile. Inside, the value is the trilinear interpolation of the eight surrounding centres,
//! with the index first clamped to `[0, n − 1]`: in the outer half voxel the edge voxels are
//! extended as constants (ITK's `LinearInterpolateImageFunction` does the same). Outside, the
//! caller's `outside` value is returned (S3: PET 0 SUV, CT −1000 HU).
//!
//! # The common grid
//! [`common_grid`] takes the PET field of view — the box spanned by the eight corners of its
//! voxel-edge box, mapped to patient LPS — and lays over it an axis-aligned grid of 3 mm voxels
//! centred on that box: along each axis `n = ⌈extent / 3 mm⌉` voxels (at least 1; an extent within
//! 1e-6 mm of a multiple of 3 mm is not rounded up), origin = box centre − (n − 1)/2 · 3 mm. The
//! grid's own edge box therefore covers the PET field of view with at most 3 mm to spare per axis,
//! split evenly between both sides.

use rayon::prelude::*;
use thiserror::Error;

use crate::memory::MemoryError;
use crate::volume::{Geometry, Volume, VolumeError};

/// Voxel size of the common grid in mm (S3).
const COMMON_SPACING_MM: f64 = 3.0;

/// Why this stage rejected its input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GridError {
    #[error("the {spacing_mm} mm grid over the PET field of view is not a valid volume: {source}")]
    Grid {
        spacing_mm: f64,
        source: VolumeError,
    },
    #[error("grid spacing {0} mm must be finite and > 0")]
    BadSpacing(f64),
    #[error(
        "PET and CT do not overlap in patient space: no voxel of the common grid lies inside the CT \
         (PET field of view {pet_lo:?} … {pet_hi:?} mm, CT {ct_lo:?} … {ct_hi:?} mm, LPS)"
    )]
    NoOverlap {
        pet_lo: [f64; 3],
        pet_hi: [f64; 3],
        ct_lo: [f64; 3],
        ct_hi: [f64; 3],
    },
    #[error(
        "the CT covers {:.1} % of the PET's axial extent, less than the {:.1} % required \
         (min_ct_coverage): check that this CT belongs to this PET",
        100.0 * covered,
        100.0 * minimum
    )]
    CtCoverage { covered: f64, minimum: f64 },
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

impl GridError {
    /// The error for a CT that shares no part of the PET's field of view, with both boxes.
    pub fn no_overlap(pet: &Geometry, ct: &Geometry) -> Self {
        let (pet_lo, pet_hi) = field_of_view(pet);
        let (ct_lo, ct_hi) = field_of_view(ct);
        Self::NoOverlap {
            pet_lo,
            pet_hi,
            ct_lo,
            ct_hi,
        }
    }
}

/// The axis-aligned LPS bounding box (lo, hi) of a volume's voxel-edge box, in mm.
pub fn field_of_view(g: &Geometry) -> ([f64; 3], [f64; 3]) {
    let dims = g.dims();
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for corner in 0..8 {
        let ijk: [f64; 3] = std::array::from_fn(|a| {
            if corner >> a & 1 == 0 {
                -0.5
            } else {
                dims[a] as f64 - 0.5
            }
        });
        let p = g.voxel_to_patient(ijk);
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    (lo, hi)
}

/// The common 3 mm axis-aligned LPS grid over the PET field of view (see the module docs).
pub fn common_grid(pet: &Geometry) -> Result<Geometry, GridError> {
    covering_grid(pet, COMMON_SPACING_MM)
}

/// An axis-aligned LPS grid of `spacing_mm` isotropic voxels over `g`'s field of view, placed as
/// [`common_grid`] places its 3 mm grid.
pub fn covering_grid(g: &Geometry, spacing_mm: f64) -> Result<Geometry, GridError> {
    if !(spacing_mm.is_finite() && spacing_mm > 0.0) {
        return Err(GridError::BadSpacing(spacing_mm));
    }
    let (lo, hi) = field_of_view(g);
    let mut dims = [1usize; 3];
    let mut origin = [0.0; 3];
    for a in 0..3 {
        let extent = hi[a] - lo[a];
        // Capped before the cast so that absurd extents become a TooManyVoxels error below.
        let n = ((extent / spacing_mm - 1e-6 / spacing_mm).ceil()).clamp(1.0, 1e12) as usize;
        dims[a] = n;
        origin[a] = 0.5 * (lo[a] + hi[a]) - 0.5 * (n - 1) as f64 * spacing_mm;
    }
    Geometry::axis_aligned(dims, [spacing_mm; 3], origin)
        .map_err(|source| GridError::Grid { spacing_mm, source })
}

/// Resamples `src` onto `target` by trilinear interpolation in patient space; `outside` where a
/// target voxel centre falls outside `src` (module docs). Parallel over target slices. An error
/// only when the target's memory cannot be had.
pub fn resample(
    src: &Volume<f32>,
    target: &Geometry,
    outside: f32,
) -> Result<Volume<f32>, MemoryError> {
    Ok(resample_counting(src, target, outside)?.0)
}

/// [`resample`], also returning how many target voxels fell inside `src`.
pub fn resample_counting(
    src: &Volume<f32>,
    target: &Geometry,
    outside: f32,
) -> Result<(Volume<f32>, usize), MemoryError> {
    let sampler = Trilinear::new(src);
    let map = IndexMap::between(target, src.geometry());
    let [nx, ny, _] = target.dims();
    let mut volume = Volume::try_filled(*target, outside, "a volume on the common grid")?;
    let separable = map.is_diagonal();
    // Along x the source position depends on the target x alone whenever the map is diagonal
    // (both grids axis-aligned up to flips): split it once per column, not once per voxel.
    let columns: Vec<Option<(usize, f32)>> = (0..nx)
        .map(|x| sampler.axes[0].locate(map.apply([x as f64, 0.0, 0.0])[0]))
        .collect();
    let inside: usize = volume
        .data_mut()
        .par_chunks_mut(nx * ny)
        .enumerate()
        .map(|(z, slice)| {
            let mut inside = 0;
            for (y, row) in slice.chunks_exact_mut(nx).enumerate() {
                let start = map.apply([0.0, y as f64, z as f64]);
                inside += if separable {
                    sampler.row_separable(start, &columns, outside, row)
                } else {
                    sampler.row(start, map.col(0), outside, row)
                };
            }
            inside
        })
        .sum();
    Ok((volume, inside))
}

/// Resamples PET (0 outside) and CT (−1000 outside) onto the common grid of the PET.
/// An error when no voxel of that grid lies inside the CT; a CT that covers only part of the
/// PET is fine, the rest is −1000 HU (air).
pub fn to_common_grid(
    pet: &Volume<f32>,
    ct: &Volume<f32>,
) -> Result<(Volume<f32>, Volume<f32>), GridError> {
    let grid = common_grid(pet.geometry())?;
    let (ct3, ct_inside) = resample_counting(ct, &grid, -1000.0)?;
    if ct_inside == 0 {
        return Err(GridError::no_overlap(pet.geometry(), ct.geometry()));
    }
    if ct_inside < grid.len() {
        log::info!(
            "the CT covers {:.1} % of the PET field of view; the rest is −1000 HU",
            100.0 * ct_inside as f64 / grid.len() as f64
        );
    }
    let pet3 = resample(pet, &grid, 0.0)?;
    Ok((pet3, ct3))
}

/// The affine map from one grid's voxel indices to another's: `j = M·i + t`. `#[repr(C)]`: the
/// CUDA kernels take it as it is (`struct IndexMap` in kernels/common.cuh).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct IndexMap {
    m: [[f64; 3]; 3],
    t: [f64; 3],
}

impl IndexMap {
    /// From patient LPS points to `to`'s continuous indices.
    pub(crate) fn patient_to(to: &Geometry) -> Self {
        let d = to.direction();
        let s = to.spacing_mm();
        let o = to.origin_mm();
        // j = S⁻¹ Dᵀ (p − o); Dᵀ is D's inverse (orthonormal by validation).
        let m: [[f64; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| d[c][r] / s[r]));
        let t = std::array::from_fn(|r| -(m[r][0] * o[0] + m[r][1] * o[1] + m[r][2] * o[2]));
        Self { m, t }
    }

    /// From `from`'s voxel indices to `to`'s continuous indices.
    pub(crate) fn between(from: &Geometry, to: &Geometry) -> Self {
        let p = Self::patient_to(to);
        let a = from.affine_lps();
        let m = std::array::from_fn(|r| {
            std::array::from_fn(|c| (0..3).map(|k| p.m[r][k] * a[k][c]).sum())
        });
        let t = std::array::from_fn(|r| p.t[r] + (0..3).map(|k| p.m[r][k] * a[k][3]).sum::<f64>());
        Self { m, t }
    }

    /// True when each output index depends on the same input index alone (exact zeros off the
    /// diagonal, as for two axis-aligned grids with any flips).
    pub(crate) fn is_diagonal(&self) -> bool {
        (0..3).all(|r| (0..3).all(|c| r == c || self.m[r][c] == 0.0))
    }

    #[inline]
    pub(crate) fn apply(&self, i: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|r| {
            self.m[r][0] * i[0] + self.m[r][1] * i[1] + self.m[r][2] * i[2] + self.t[r]
        })
    }

    /// The image of a direction (no translation): column `c` of `M` for a unit step along `c`.
    #[inline]
    pub(crate) fn col(&self, c: usize) -> [f64; 3] {
        [self.m[0][c], self.m[1][c], self.m[2][c]]
    }

    /// The image of a direction vector `v` (no translation).
    #[inline]
    pub(crate) fn linear(&self, v: [f64; 3]) -> [f64; 3] {
        std::array::from_fn(|r| self.m[r][0] * v[0] + self.m[r][1] * v[1] + self.m[r][2] * v[2])
    }
}

/// Where the neighbours of a continuous index along one axis are, after the edge clamp.
#[derive(Debug, Clone, Copy)]
struct Axis {
    /// Accepted index range is `[-0.5, edge]` with `edge = n − 0.5`.
    edge: f64,
    /// Largest index a sample clamps to: n − 1.
    last: f64,
    /// Largest lower neighbour: n − 2 (0 when n = 1).
    max_lower: usize,
    /// Offset in the data between lower and upper neighbour (0 when n = 1).
    step: usize,
}

impl Axis {
    fn new(n: usize, stride: usize) -> Self {
        Self {
            edge: n as f64 - 0.5,
            last: (n - 1) as f64,
            max_lower: n.saturating_sub(2),
            step: if n > 1 { stride } else { 0 },
        }
    }

    /// Lower neighbour and weight of the upper one, for an index known to be inside.
    #[inline(always)]
    fn split(&self, f: f64) -> (usize, f32) {
        let c = f.clamp(0.0, self.last);
        // c ≥ 0, so the cast truncates towards the floor.
        let lower = (c as usize).min(self.max_lower);
        (lower, (c - lower as f64) as f32)
    }

    /// `split` for an index inside, `None` outside.
    #[inline(always)]
    fn locate(&self, f: f64) -> Option<(usize, f32)> {
        self.contains(f).then(|| self.split(f))
    }

    #[inline(always)]
    fn contains(&self, f: f64) -> bool {
        // Written so that NaN is outside.
        f >= -0.5 && f <= self.edge
    }
}

/// A located sample: linear index of the lower neighbour and the weights of the upper ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell {
    base: usize,
    weights: [f32; 3],
}

/// Trilinear sampling of one volume (module docs for the convention).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trilinear<'a> {
    data: &'a [f32],
    axes: [Axis; 3],
    stride: [usize; 3],
}

impl<'a> Trilinear<'a> {
    pub(crate) fn new(v: &'a Volume<f32>) -> Self {
        let [nx, ny, nz] = v.dims();
        let stride = [1, nx, nx * ny];
        Self {
            data: v.data(),
            axes: [
                Axis::new(nx, stride[0]),
                Axis::new(ny, stride[1]),
                Axis::new(nz, stride[2]),
            ],
            stride,
        }
    }

    /// The eight neighbours and weights of continuous index `f`, or `None` outside.
    #[inline(always)]
    pub(crate) fn locate(&self, f: [f64; 3]) -> Option<Cell> {
        let [ax, ay, az] = &self.axes;
        if !(ax.contains(f[0]) && ay.contains(f[1]) && az.contains(f[2])) {
            return None;
        }
        let (x0, wx) = ax.split(f[0]);
        let (y0, wy) = ay.split(f[1]);
        let (z0, wz) = az.split(f[2]);
        Some(Cell {
            base: x0 + y0 * self.stride[1] + z0 * self.stride[2],
            weights: [wx, wy, wz],
        })
    }

    /// Interpolates `data` — this volume's values, or another volume's on the same dims — at a
    /// located cell.
    #[inline(always)]
    pub(crate) fn interpolate(&self, data: &[f32], cell: Cell) -> f32 {
        let (sx, sy, sz) = (self.axes[0].step, self.axes[1].step, self.axes[2].step);
        let b = cell.base;
        let [wx, wy, wz] = cell.weights;
        // Each neighbour index is ≤ n − 1 along every axis by the clamps in `locate`.
        let c00 = lerp(data[b], data[b + sx], wx);
        let c10 = lerp(data[b + sy], data[b + sy + sx], wx);
        let c01 = lerp(data[b + sz], data[b + sz + sx], wx);
        let c11 = lerp(data[b + sz + sy], data[b + sz + sy + sx], wx);
        lerp(lerp(c00, c10, wy), lerp(c01, c11, wy), wz)
    }

    /// The value at continuous index `f`, or `None` outside.
    #[cfg(test)]
    fn sample(&self, f: [f64; 3]) -> Option<f32> {
        self.locate(f).map(|cell| self.interpolate(self.data, cell))
    }

    /// Visits the points `start + k·step` (continuous indices), k = 0..n, calling `visit(k, cell)`
    /// with the located cell, or `None` outside. When the row runs along x only (the common case:
    /// axis-aligned grids, coronal planes without rotation) y and z are split once for the row.
    #[inline(always)]
    pub(crate) fn walk_row(
        &self,
        start: [f64; 3],
        step: [f64; 3],
        n: usize,
        mut visit: impl FnMut(usize, Option<Cell>),
    ) {
        if step[1] == 0.0 && step[2] == 0.0 {
            let [ax, ay, az] = &self.axes;
            let (Some((y0, wy)), Some((z0, wz))) = (ay.locate(start[1]), az.locate(start[2]))
            else {
                (0..n).for_each(|k| visit(k, None));
                return;
            };
            let base_yz = y0 * self.stride[1] + z0 * self.stride[2];
            for k in 0..n {
                let cell = ax
                    .locate(start[0] + k as f64 * step[0])
                    .map(|(x0, wx)| Cell {
                        base: base_yz + x0,
                        weights: [wx, wy, wz],
                    });
                visit(k, cell);
            }
        } else {
            for k in 0..n {
                let kf = k as f64;
                visit(
                    k,
                    self.locate([
                        start[0] + kf * step[0],
                        start[1] + kf * step[1],
                        start[2] + kf * step[2],
                    ]),
                );
            }
        }
    }

    /// Samples `out.len()` points `start + k·step` into `out`, `outside` where a point falls
    /// outside; returns how many fell inside.
    #[inline]
    pub(crate) fn row(
        &self,
        start: [f64; 3],
        step: [f64; 3],
        outside: f32,
        out: &mut [f32],
    ) -> usize {
        let mut inside = 0;
        let n = out.len();
        self.walk_row(start, step, n, |k, cell| {
            out[k] = match cell {
                Some(c) => {
                    inside += 1;
                    self.interpolate(self.data, c)
                }
                None => outside,
            }
        });
        inside
    }

    /// [`Trilinear::row`] for a diagonal index map: y and z come from `start`, x from the
    /// per-column splits `columns` (`None` outside).
    #[inline]
    fn row_separable(
        &self,
        start: [f64; 3],
        columns: &[Option<(usize, f32)>],
        outside: f32,
        out: &mut [f32],
    ) -> usize {
        let (Some((y0, wy)), Some((z0, wz))) =
            (self.axes[1].locate(start[1]), self.axes[2].locate(start[2]))
        else {
            out.fill(outside);
            return 0;
        };
        let base_yz = y0 * self.stride[1] + z0 * self.stride[2];
        let mut inside = 0;
        for (o, column) in out.iter_mut().zip(columns) {
            *o = match *column {
                Some((x0, wx)) => {
                    inside += 1;
                    self.interpolate(
                        self.data,
                        Cell {
                            base: base_yz + x0,
                            weights: [wx, wy, wz],
                        },
                    )
                }
                None => outside,
            };
        }
        inside
    }
}

#[inline(always)]
fn lerp(a: f32, b: f32, w: f32) -> f32 {
    a + w * (b - a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(g: Geometry) -> Volume<f32> {
        let data = (0..g.len())
            .map(|i| {
                let [x, y, z] = g.coords(i);
                (x + 10 * y + 100 * z) as f32
            })
            .collect();
        Volume::new(g, data).unwrap()
    }

    #[test]
    fn common_grid_covers_and_centres_the_fov() {
        let pet = Geometry::axis_aligned([100, 80, 50], [4.0, 4.0, 3.27], [-198.0, -150.0, 10.0])
            .unwrap();
        let g = common_grid(&pet).unwrap();
        let (lo, hi) = field_of_view(&pet);
        let (glo, ghi) = field_of_view(&g);
        for a in 0..3 {
            assert!(glo[a] <= lo[a] + 1e-9 && ghi[a] >= hi[a] - 1e-9);
            assert!((glo[a] - lo[a] + ghi[a] - hi[a]).abs() < 1e-9, "centred");
            assert!((ghi[a] - glo[a]) - (hi[a] - lo[a]) < 3.0);
        }
        // 400 mm, 320 mm and 163.5 mm round up to 134, 107 and 55 voxels of 3 mm.
        assert_eq!(g.dims(), [134, 107, 55]);
        assert_eq!(g.spacing_mm(), [3.0; 3]);
        assert_eq!(g.orientation_code(), "LPS");
    }

    #[test]
    fn common_grid_of_absurd_fov_is_an_error() {
        let pet = Geometry::axis_aligned([10, 10, 10], [1e9, 1e9, 1e9], [0.0; 3]).unwrap();
        assert!(matches!(common_grid(&pet), Err(GridError::Grid { .. })));
    }

    #[test]
    fn identity_resampling_reproduces_the_volume() {
        let g = Geometry::axis_aligned([7, 5, 4], [2.0, 3.0, 1.5], [1.0, -2.0, 3.0]).unwrap();
        let v = ramp(g);
        let out = resample(&v, &g, -1.0).unwrap();
        assert_eq!(out.data(), v.data());
    }

    #[test]
    fn linear_ramp_is_exact_inside_and_clamped_in_the_half_voxel() {
        let g = Geometry::axis_aligned([6, 5, 4], [1.0; 3], [0.0; 3]).unwrap();
        let v = ramp(g);
        let s = Trilinear::new(&v);
        let val = s.sample([2.25, 1.5, 0.75]).unwrap();
        assert!((val - (2.25 + 15.0 + 75.0)).abs() < 1e-5);
        assert_eq!(s.sample([-0.4, 0.0, 0.0]), Some(0.0));
        assert_eq!(s.sample([5.4, 4.4, 3.4]), Some(5.0 + 40.0 + 300.0));
        assert_eq!(s.sample([-0.6, 0.0, 0.0]), None);
        assert_eq!(s.sample([0.0, 4.6, 0.0]), None);
        assert_eq!(s.sample([f64::NAN, 0.0, 0.0]), None);
    }

    #[test]
    fn single_voxel_axes_are_constant() {
        let g = Geometry::axis_aligned([1, 1, 1], [2.0; 3], [0.0; 3]).unwrap();
        let v = Volume::new(g, vec![7.0]).unwrap();
        let s = Trilinear::new(&v);
        assert_eq!(s.sample([0.3, -0.2, 0.5]), Some(7.0));
    }

    #[test]
    fn non_overlapping_ct_is_an_error_partial_is_padded() {
        let pet = Volume::filled(
            Geometry::axis_aligned([10, 10, 10], [3.0; 3], [0.0; 3]).unwrap(),
            1.0,
        );
        let far = Volume::filled(
            Geometry::axis_aligned([10, 10, 10], [3.0; 3], [500.0, 0.0, 0.0]).unwrap(),
            40.0,
        );
        assert!(matches!(
            to_common_grid(&pet, &far),
            Err(GridError::NoOverlap { .. })
        ));
        let half = Volume::filled(
            Geometry::axis_aligned([5, 10, 10], [3.0; 3], [0.0; 3]).unwrap(),
            40.0,
        );
        let (pet3, ct3) = to_common_grid(&pet, &half).unwrap();
        assert!(pet3.data().iter().all(|&v| v == 1.0));
        let at = |x| ct3.data()[ct3.geometry().index(x, 3, 3)];
        assert_eq!((at(0), at(4), at(5), at(9)), (40.0, 40.0, -1000.0, -1000.0));
    }

    #[test]
    fn index_map_round_trips_through_patient_space() {
        let (s, c) = 0.4f64.sin_cos();
        let d = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
        let a = Geometry::new([5, 6, 7], [1.1, 2.0, 3.0], [4.0, -5.0, 6.0], d).unwrap();
        let b = Geometry::axis_aligned([3, 3, 3], [3.0; 3], [-1.0, 2.0, 0.5]).unwrap();
        let m = IndexMap::between(&a, &b);
        let i = [1.5, 2.0, -0.5];
        let direct = b.patient_to_voxel(a.voxel_to_patient(i));
        let got = m.apply(i);
        for k in 0..3 {
            assert!((got[k] - direct[k]).abs() < 1e-12);
        }
    }
}
