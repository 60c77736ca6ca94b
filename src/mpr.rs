//! Coronal reformations, the network input (DESIGN S5).
//!
//! For a region whose SUVmax lies at patient point `c`, plane `p` (offset `o_p` mm along y) has
//! pixel (row `r`, column `k`) at
//!
//! ```text
//! x = c + A · ((k − h)·pixel_mm, o_p, (h − r)·pixel_mm)          h = plane_size / 2 (integer)
//! ```
//!
//! in LPS, where `A = scale · Rz(γ) · Ry(β) · Rx(α)` is the augmentation ([`Augment`], identity by
//! default): rows run superior to inferior, columns patient right to left. Each pixel is sampled
//! trilinearly from the common grid (S3) with the convention of [`crate::grid`]; outside the grid
//! PET reads 0 SUV and CT −1000 HU, *before* windowing, so a region at the border of the field of
//! view gets planes that are partly 0 (PET) and 0 (CT, −1000 HU clipped to the window).
//!
//! The tensor is `[2·P, plane_size, plane_size]`, row-major: the P PET planes in offset order, then
//! the P CT planes. PET is clipped to `pet_window_suv`, CT to `ct_window_hu`, both mapped linearly
//! to [0, 1].

use rand::Rng;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::grid::{IndexMap, Trilinear};
use crate::volume::Volume;

/// Why this stage rejected its input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MprError {
    #[error("invalid reformation spec: {0}")]
    BadSpec(String),
    #[error(
        "PET and CT must lie on the same grid (the common grid of S3) to be reformatted together"
    )]
    GridMismatch,
    #[error("output buffer holds {got} floats; {expected} are needed")]
    OutputLength { expected: usize, got: usize },
    #[error("region centre {0:?} mm is not finite")]
    BadCentre([f64; 3]),
    #[error("invalid augmentation: {0}")]
    BadAugment(String),
    #[error("{augments} augmentations given for {centres} centres")]
    AugmentCount { centres: usize, augments: usize },
}

/// Geometry and windows of the network input. Stored as JSON in the model file's `input`
/// metadata key, so the field names are part of the model format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MprSpec {
    /// y-offsets (mm, LPS: + is posterior) of the coronal planes from the centre.
    pub plane_offsets_mm: Vec<f64>,
    /// Pixels per side of each plane.
    pub plane_size: usize,
    /// Pixel size in mm.
    pub pixel_mm: f64,
    /// PET window [low, high] in SUV, mapped to [0, 1].
    pub pet_window_suv: [f64; 2],
    /// CT window [low, high] in HU, mapped to [0, 1].
    pub ct_window_hu: [f64; 2],
}

impl Default for MprSpec {
    /// The S5 values: 13 planes at ±144, ±96, ±48, ±24, ±12, ±6, 0 mm; 64 × 64 pixels of 3 mm;
    /// PET [0, 15] SUV, CT [−300, 300] HU.
    fn default() -> Self {
        Self {
            plane_offsets_mm: vec![
                -144.0, -96.0, -48.0, -24.0, -12.0, -6.0, 0.0, 6.0, 12.0, 24.0, 48.0, 96.0, 144.0,
            ],
            plane_size: 64,
            pixel_mm: 3.0,
            pet_window_suv: [0.0, 15.0],
            ct_window_hu: [-300.0, 300.0],
        }
    }
}

/// Bounds that keep a spec's tensor small (a hostile spec must not allocate gigabytes).
const MAX_PLANES: usize = 256;
const MAX_PLANE_SIZE: usize = 1024;

impl MprSpec {
    /// Checks that the spec describes a usable, bounded tensor.
    pub fn validate(&self) -> Result<(), MprError> {
        let bad = |m: String| Err(MprError::BadSpec(m));
        let planes = self.plane_offsets_mm.len();
        if planes == 0 || planes > MAX_PLANES {
            return bad(format!("{planes} planes; 1 to {MAX_PLANES} are allowed"));
        }
        if let Some(o) = self.plane_offsets_mm.iter().find(|o| !o.is_finite()) {
            return bad(format!("plane offset {o} is not finite"));
        }
        if self.plane_size == 0 || self.plane_size > MAX_PLANE_SIZE {
            return bad(format!(
                "plane_size {}; 1 to {MAX_PLANE_SIZE} is allowed",
                self.plane_size
            ));
        }
        if !(self.pixel_mm.is_finite() && self.pixel_mm > 0.0) {
            return bad(format!("pixel_mm {} must be finite and > 0", self.pixel_mm));
        }
        for (name, [lo, hi]) in [
            ("pet_window_suv", self.pet_window_suv),
            ("ct_window_hu", self.ct_window_hu),
        ] {
            if !(lo.is_finite() && hi.is_finite() && hi > lo) {
                return bad(format!(
                    "{name} [{lo}, {hi}] must be finite with low < high"
                ));
            }
        }
        Ok(())
    }

    /// Number of planes per modality.
    pub fn planes(&self) -> usize {
        self.plane_offsets_mm.len()
    }

    /// Floats in one region's tensor: 2 · planes · plane_size².
    pub fn tensor_len(&self) -> usize {
        2 * self.planes() * self.plane_size * self.plane_size
    }
}

/// The affine about the region centre used for training augmentation (S5, S12): isotropic
/// `scale` and rotations (degrees) about the patient x, y and z axes, applied in that order:
/// `A = scale · Rz(z) · Ry(y) · Rx(x)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    pub scale: f64,
    pub rotation_deg: [f64; 3],
}

impl Default for Augment {
    fn default() -> Self {
        Self::IDENTITY
    }
}

/// S5 augmentation ranges.
const SCALE_RANGE: (f64, f64) = (0.8, 1.2);
const ROTATION_MAX_DEG: f64 = 17.2;

impl Augment {
    pub const IDENTITY: Augment = Augment {
        scale: 1.0,
        rotation_deg: [0.0; 3],
    };

    /// Draws the S5 ranges uniformly: scale in [0.8, 1.2], each rotation in [−17.2°, 17.2°].
    pub fn random(rng: &mut impl Rng) -> Self {
        Self {
            scale: rng.random_range(SCALE_RANGE.0..=SCALE_RANGE.1),
            rotation_deg: std::array::from_fn(|_| {
                rng.random_range(-ROTATION_MAX_DEG..=ROTATION_MAX_DEG)
            }),
        }
    }

    /// [`Augment::random`] from a ChaCha8 generator seeded with `seed` (reproducible).
    pub fn seeded(seed: u64) -> Self {
        Self::random(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))
    }

    fn validate(&self) -> Result<(), MprError> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(MprError::BadAugment(format!(
                "scale {} must be finite and > 0",
                self.scale
            )));
        }
        if self.rotation_deg.iter().any(|a| !a.is_finite()) {
            return Err(MprError::BadAugment(format!(
                "rotation {:?} must be finite",
                self.rotation_deg
            )));
        }
        Ok(())
    }

    /// The 3×3 matrix `scale · Rz · Ry · Rx` (row-major).
    pub fn matrix(&self) -> [[f64; 3]; 3] {
        let [a, b, g] = self.rotation_deg.map(f64::to_radians);
        let (sa, ca) = a.sin_cos();
        let (sb, cb) = b.sin_cos();
        let (sg, cg) = g.sin_cos();
        let rx = [[1.0, 0.0, 0.0], [0.0, ca, -sa], [0.0, sa, ca]];
        let ry = [[cb, 0.0, sb], [0.0, 1.0, 0.0], [-sb, 0.0, cb]];
        let rz = [[cg, -sg, 0.0], [sg, cg, 0.0], [0.0, 0.0, 1.0]];
        let r = matmul(&rz, &matmul(&ry, &rx));
        r.map(|row| row.map(|v| v * self.scale))
    }
}

fn matmul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

/// Writes the reformation tensor of one region (module docs) into `out`
/// (`spec.tensor_len()` floats).
pub fn extract(
    pet3: &Volume<f32>,
    ct3: &Volume<f32>,
    spec: &MprSpec,
    centre_lps: [f64; 3],
    augment: &Augment,
    out: &mut [f32],
) -> Result<(), MprError> {
    check_inputs(pet3, ct3, spec, out.len(), 1)?;
    check_region(centre_lps, augment)?;
    Reformatter::new(pet3, ct3, spec).region(centre_lps, augment, out);
    Ok(())
}

/// [`extract`] for many regions, in parallel: `out` holds `centres.len()` tensors one after
/// another; `augments`, when given, has one entry per centre.
pub fn extract_batch(
    pet3: &Volume<f32>,
    ct3: &Volume<f32>,
    spec: &MprSpec,
    centres: &[[f64; 3]],
    augments: Option<&[Augment]>,
    out: &mut [f32],
) -> Result<(), MprError> {
    check_inputs(pet3, ct3, spec, out.len(), centres.len())?;
    if let Some(a) = augments
        && a.len() != centres.len()
    {
        return Err(MprError::AugmentCount {
            centres: centres.len(),
            augments: a.len(),
        });
    }
    for (i, &c) in centres.iter().enumerate() {
        check_region(c, augments.map_or(&Augment::IDENTITY, |a| &a[i]))?;
    }
    if centres.is_empty() {
        return Ok(());
    }
    let reformatter = Reformatter::new(pet3, ct3, spec);
    out.par_chunks_mut(spec.tensor_len())
        .enumerate()
        .for_each(|(i, tensor)| {
            let augment = augments.map_or(&Augment::IDENTITY, |a| &a[i]);
            reformatter.region(centres[i], augment, tensor);
        });
    Ok(())
}

fn check_inputs(
    pet3: &Volume<f32>,
    ct3: &Volume<f32>,
    spec: &MprSpec,
    out_len: usize,
    regions: usize,
) -> Result<(), MprError> {
    spec.validate()?;
    if pet3.geometry() != ct3.geometry() {
        return Err(MprError::GridMismatch);
    }
    let expected = spec.tensor_len().saturating_mul(regions);
    if out_len != expected {
        return Err(MprError::OutputLength {
            expected,
            got: out_len,
        });
    }
    Ok(())
}

fn check_region(centre: [f64; 3], augment: &Augment) -> Result<(), MprError> {
    if centre.iter().any(|c| !c.is_finite()) {
        return Err(MprError::BadCentre(centre));
    }
    augment.validate()
}

/// Window [lo, hi] as `(v − lo)·scale` clamped to [0, 1].
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: f32,
    scale: f32,
}

impl Window {
    fn new([lo, hi]: [f64; 2]) -> Self {
        Self {
            lo: lo as f32,
            scale: (1.0 / (hi - lo)) as f32,
        }
    }

    #[inline(always)]
    fn apply(&self, v: f32) -> f32 {
        ((v - self.lo) * self.scale).clamp(0.0, 1.0)
    }
}

/// Everything that does not change from one region to the next; inputs already validated.
struct Reformatter<'a> {
    sampler: Trilinear<'a>,
    pet: &'a [f32],
    ct: &'a [f32],
    to_index: IndexMap,
    spec: &'a MprSpec,
    pet_window: Window,
    ct_window: Window,
    /// The windowed values of the outside padding: 0 SUV and −1000 HU.
    pet_outside: f32,
    ct_outside: f32,
}

impl<'a> Reformatter<'a> {
    fn new(pet3: &'a Volume<f32>, ct3: &'a Volume<f32>, spec: &'a MprSpec) -> Self {
        let pet_window = Window::new(spec.pet_window_suv);
        let ct_window = Window::new(spec.ct_window_hu);
        Self {
            sampler: Trilinear::new(pet3),
            pet: pet3.data(),
            ct: ct3.data(),
            to_index: IndexMap::patient_to(pet3.geometry()),
            spec,
            pet_window,
            ct_window,
            pet_outside: pet_window.apply(0.0),
            ct_outside: ct_window.apply(-1000.0),
        }
    }

    fn region(&self, centre: [f64; 3], augment: &Augment, out: &mut [f32]) {
        let n = self.spec.plane_size;
        let plane_len = n * n;
        let (pet_out, ct_out) = out.split_at_mut(self.spec.planes() * plane_len);
        let a = augment.matrix();
        let px = self.spec.pixel_mm;
        // Index-space steps for one column, one row and one mm of plane offset.
        let along = |v: [f64; 3]| {
            self.to_index.linear(std::array::from_fn(|i| {
                a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2]
            }))
        };
        let col_step = along([px, 0.0, 0.0]);
        let row_step = along([0.0, 0.0, -px]);
        let offset_step = along([0.0, 1.0, 0.0]);
        let centre_index = self.to_index.apply(centre);
        let h = (n / 2) as f64;
        for (p, &offset) in self.spec.plane_offsets_mm.iter().enumerate() {
            let planes = pet_out[p * plane_len..(p + 1) * plane_len]
                .chunks_exact_mut(n)
                .zip(ct_out[p * plane_len..(p + 1) * plane_len].chunks_exact_mut(n));
            for (r, (pet_row, ct_row)) in planes.enumerate() {
                let dr = r as f64 - h;
                let start: [f64; 3] = std::array::from_fn(|i| {
                    centre_index[i] + offset * offset_step[i] - h * col_step[i] + dr * row_step[i]
                });
                self.row(start, col_step, pet_row, ct_row);
            }
        }
    }

    /// One row of pixels in both modalities: the cell is located once and read twice.
    #[inline]
    fn row(&self, start: [f64; 3], step: [f64; 3], pet_row: &mut [f32], ct_row: &mut [f32]) {
        self.sampler
            .walk_row(start, step, pet_row.len(), |k, cell| match cell {
                Some(cell) => {
                    pet_row[k] = self
                        .pet_window
                        .apply(self.sampler.interpolate(self.pet, cell));
                    ct_row[k] = self
                        .ct_window
                        .apply(self.sampler.interpolate(self.ct, cell));
                }
                None => {
                    pet_row[k] = self.pet_outside;
                    ct_row[k] = self.ct_outside;
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Geometry;

    fn grid_pair() -> (Volume<f32>, Volume<f32>) {
        let g = Geometry::axis_aligned([40, 30, 50], [3.0; 3], [-60.0, -45.0, -75.0]).unwrap();
        let pet = (0..g.len()).map(|i| (i % 17) as f32).collect();
        let ct = (0..g.len()).map(|i| (i % 700) as f32 - 350.0).collect();
        (Volume::new(g, pet).unwrap(), Volume::new(g, ct).unwrap())
    }

    #[test]
    fn default_spec_is_s5_and_round_trips_as_json() {
        let spec = MprSpec::default();
        assert_eq!(spec.planes(), 13);
        assert_eq!(spec.tensor_len(), 26 * 64 * 64);
        let json = serde_json::to_string(&spec).unwrap();
        for key in [
            "plane_offsets_mm",
            "plane_size",
            "pixel_mm",
            "pet_window_suv",
            "ct_window_hu",
        ] {
            assert!(json.contains(key), "{json}");
        }
        assert_eq!(serde_json::from_str::<MprSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn centre_pixel_of_plane_zero_is_the_voxel_value() {
        let (pet, ct) = grid_pair();
        let spec = MprSpec::default();
        let mut out = vec![0.0; spec.tensor_len()];
        // Voxel (10, 12, 20) sits at (−30, −9, −15).
        let g = pet.geometry();
        let c = g.voxel_to_patient([10.0, 12.0, 20.0]);
        extract(&pet, &ct, &spec, c, &Augment::IDENTITY, &mut out).unwrap();
        let v = g.index(10, 12, 20);
        let centre = 6 * 64 * 64 + 32 * 64 + 32;
        assert_eq!(out[centre], pet.data()[v] / 15.0);
        let ct_expected = ((ct.data()[v] + 300.0) / 600.0).clamp(0.0, 1.0);
        assert!((out[13 * 64 * 64 + centre] - ct_expected).abs() < 1e-6);
        // One column to the right moves +3 mm in x (one voxel); one row down −3 mm in z.
        assert_eq!(out[centre + 1], pet.data()[g.index(11, 12, 20)] / 15.0);
        assert_eq!(out[centre + 64], pet.data()[g.index(10, 12, 19)] / 15.0);
        // Plane 7 is +6 mm posterior: two voxels along y.
        assert_eq!(
            out[7 * 64 * 64 + 32 * 64 + 32],
            pet.data()[g.index(10, 14, 20)] / 15.0
        );
    }

    #[test]
    fn far_outside_is_padding_and_bad_input_is_an_error() {
        let (pet, ct) = grid_pair();
        let spec = MprSpec::default();
        let mut out = vec![9.0; spec.tensor_len()];
        extract(
            &pet,
            &ct,
            &spec,
            [1e6, 0.0, 0.0],
            &Augment::IDENTITY,
            &mut out,
        )
        .unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
        let mut short = vec![0.0; 10];
        assert!(matches!(
            extract(&pet, &ct, &spec, [0.0; 3], &Augment::IDENTITY, &mut short),
            Err(MprError::OutputLength { .. })
        ));
        assert!(matches!(
            extract(
                &pet,
                &ct,
                &spec,
                [f64::NAN, 0.0, 0.0],
                &Augment::IDENTITY,
                &mut out
            ),
            Err(MprError::BadCentre(_))
        ));
        let bad_aug = Augment {
            scale: 0.0,
            rotation_deg: [0.0; 3],
        };
        assert!(matches!(
            extract(&pet, &ct, &spec, [0.0; 3], &bad_aug, &mut out),
            Err(MprError::BadAugment(_))
        ));
        let mut bad_spec = spec.clone();
        bad_spec.plane_size = 1 << 20;
        assert!(matches!(bad_spec.validate(), Err(MprError::BadSpec(_))));
        let other = Volume::filled(
            Geometry::axis_aligned([40, 30, 50], [3.0; 3], [0.0; 3]).unwrap(),
            0.0,
        );
        assert!(matches!(
            extract(&pet, &other, &spec, [0.0; 3], &Augment::IDENTITY, &mut out),
            Err(MprError::GridMismatch)
        ));
    }

    #[test]
    fn batch_equals_single_extractions() {
        let (pet, ct) = grid_pair();
        let spec = MprSpec::default();
        let centres = [[0.0, 0.0, 0.0], [-50.0, 20.0, 60.0], [10.5, -3.2, 7.7]];
        let augments = [Augment::IDENTITY, Augment::seeded(1), Augment::seeded(2)];
        let n = spec.tensor_len();
        let mut batch = vec![0.0; 3 * n];
        extract_batch(&pet, &ct, &spec, &centres, Some(&augments), &mut batch).unwrap();
        for i in 0..3 {
            let mut one = vec![0.0; n];
            extract(&pet, &ct, &spec, centres[i], &augments[i], &mut one).unwrap();
            assert_eq!(&batch[i * n..(i + 1) * n], &one[..]);
        }
        assert!(matches!(
            extract_batch(&pet, &ct, &spec, &centres, Some(&augments[..2]), &mut batch),
            Err(MprError::AugmentCount { .. })
        ));
    }

    #[test]
    fn augment_ranges_and_matrix() {
        for seed in 0..200 {
            let a = Augment::seeded(seed);
            assert!((0.8..=1.2).contains(&a.scale));
            assert!(a.rotation_deg.iter().all(|r| r.abs() <= 17.2));
        }
        assert_eq!(Augment::seeded(5), Augment::seeded(5));
        assert_ne!(Augment::seeded(5), Augment::seeded(6));
        let m = Augment {
            scale: 2.0,
            rotation_deg: [0.0, 0.0, 90.0],
        }
        .matrix();
        // 90° about z takes +x to +y.
        assert!((m[1][0] - 2.0).abs() < 1e-12 && m[0][0].abs() < 1e-12);
    }
}
