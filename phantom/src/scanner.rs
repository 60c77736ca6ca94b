//! Scanner and protocol randomisation: the PET and CT a study is imaged with, drawn by seed
//! from the range of clinical systems, so that a network does not learn one scanner's
//! resolution, noise or calibration. PET: PSF 4–8 mm FWHM (digital to older analogue systems,
//! with and without resolution modelling), noise from long to short acquisitions, and the
//! ±10 % SUV calibration error that cross-calibration audits allow. CT: diagnostic to low-dose
//! noise and a few per cent of HU calibration drift. Field of view: the axial range clinics
//! scan (vertex or skull base to mid-thigh, chest to pelvis, abdomen and pelvis, pelvis only,
//! each end drawn about its landmark) and the CT's reconstruction diameter, which can cut off
//! the arms and flanks, so that a network does not rely on context a real study may lack.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use uptake::Tracer;

/// One study's PET imaging, as `study.json` states it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PetProtocol {
    /// Point-spread function, full width at half maximum.
    pub psf_fwhm_mm: f64,
    /// Noise SD per voxel is `noise_alpha`·√SUV (correlated as a reconstruction's).
    pub noise_alpha: f64,
    /// The factor every SUV of the image carries against the truth (1 = calibrated).
    pub suv_calibration: f64,
}

impl PetProtocol {
    /// Ranges of the draw.
    pub const PSF_FWHM_MM: (f64, f64) = (4.0, 8.0);
    /// Factor on the tracer's typical noise (log-uniform): long to short acquisitions.
    pub const NOISE_FACTOR: (f64, f64) = (0.6, 1.6);
    pub const SUV_CALIBRATION: (f64, f64) = (0.9, 1.1);

    /// Typical noise of a clinical acquisition: 68Ga has fewer counts than 18F.
    pub fn typical_noise_alpha(tracer: Tracer) -> f64 {
        match tracer {
            Tracer::Psma => 0.33,
            Tracer::Fdg => 0.2,
        }
    }

    /// A protocol drawn from the ranges above.
    pub fn draw(tracer: Tracer, rng: &mut ChaCha8Rng) -> Self {
        let (lo, hi) = Self::NOISE_FACTOR;
        let factor = (rng.random_range(lo.ln()..hi.ln())).exp();
        Self {
            psf_fwhm_mm: rng.random_range(Self::PSF_FWHM_MM.0..Self::PSF_FWHM_MM.1),
            noise_alpha: Self::typical_noise_alpha(tracer) * factor,
            suv_calibration: rng.random_range(Self::SUV_CALIBRATION.0..Self::SUV_CALIBRATION.1),
        }
    }
}

/// One study's CT imaging.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CtProtocol {
    /// Factor on the noise of a diagnostic dose (log-uniform): 2 is a low-dose PET/CT.
    pub noise_factor: f64,
    /// Calibration drift: every voxel's HU shifts by `hu_offset` and HU above water scale by
    /// `hu_scale` (air stays within `hu_offset` of −1000 HU, as the daily air calibration keeps it).
    pub hu_scale: f64,
    pub hu_offset: f64,
}

impl CtProtocol {
    pub const NOISE_FACTOR: (f64, f64) = (0.8, 2.0);
    pub const HU_SCALE: (f64, f64) = (0.97, 1.03);
    pub const HU_OFFSET: (f64, f64) = (-8.0, 8.0);

    /// A protocol drawn from the ranges above.
    pub fn draw(rng: &mut ChaCha8Rng) -> Self {
        let (lo, hi) = Self::NOISE_FACTOR;
        Self {
            noise_factor: rng.random_range(lo.ln()..hi.ln()).exp(),
            hu_scale: rng.random_range(Self::HU_SCALE.0..Self::HU_SCALE.1),
            hu_offset: rng.random_range(Self::HU_OFFSET.0..Self::HU_OFFSET.1),
        }
    }
}

/// The axial range a study covers, from its top landmark to its bottom one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AxialCoverage {
    /// Skull vertex to mid-thigh (a whole-body PSMA or FDG study).
    VertexToThigh,
    /// Skull base to mid-thigh (the most common FDG and PSMA range).
    SkullBaseToThigh,
    /// Lung apices to the pubis.
    ChestAbdomenPelvis,
    /// Liver dome to the femoral heads, the dome itself sometimes cut (a diagnostic
    /// abdominal CT, like the real test CT).
    AbdomenPelvis,
    /// Iliac crests to below the pubis.
    Pelvis,
}

/// Where a study's images end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FieldOfView {
    pub axial: AxialCoverage,
    /// Shifts of the top and bottom ends from their landmarks (mm, + is cranial).
    pub top_shift_mm: f64,
    pub bottom_shift_mm: f64,
    /// CT reconstruction diameter: the CT's in-plane spacing is this over its matrix.
    pub ct_diameter_mm: f64,
}

impl Default for FieldOfView {
    /// The generator's range before the draw: vertex to mid-thigh, a 500 mm CT.
    fn default() -> Self {
        Self {
            axial: AxialCoverage::VertexToThigh,
            top_shift_mm: 0.0,
            bottom_shift_mm: 0.0,
            ct_diameter_mm: 500.0,
        }
    }
}

impl FieldOfView {
    /// Share of each axial coverage, most studies still whole-body.
    pub const AXIAL_SHARES: [(AxialCoverage, f64); 5] = [
        (AxialCoverage::VertexToThigh, 0.35),
        (AxialCoverage::SkullBaseToThigh, 0.30),
        (AxialCoverage::ChestAbdomenPelvis, 0.12),
        (AxialCoverage::AbdomenPelvis, 0.15),
        (AxialCoverage::Pelvis, 0.08),
    ];
    /// Spread of each end about its landmark (mm).
    pub const SHIFT_MM: f64 = 30.0;
    /// PET/CT and diagnostic CTs reconstruct 350–500 mm (0.68–0.98 mm pixels at 512²).
    pub const CT_DIAMETER_MM: (f64, f64) = (350.0, 500.0);

    /// A field of view drawn from the shares and ranges above.
    pub fn draw(rng: &mut ChaCha8Rng) -> Self {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let mut axial = AxialCoverage::VertexToThigh;
        for (coverage, share) in Self::AXIAL_SHARES {
            acc += share;
            if u < acc {
                axial = coverage;
                break;
            }
        }
        let shift = Self::SHIFT_MM;
        Self {
            axial,
            top_shift_mm: rng.random_range(-shift..shift),
            bottom_shift_mm: rng.random_range(-shift..shift),
            ct_diameter_mm: rng.random_range(Self::CT_DIAMETER_MM.0..Self::CT_DIAMETER_MM.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_stay_in_their_ranges_and_cover_them() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draws: Vec<PetProtocol> = (0..400)
            .map(|i| PetProtocol::draw([Tracer::Psma, Tracer::Fdg][i % 2], &mut rng))
            .collect();
        let span = |f: fn(&PetProtocol) -> f64| {
            let v: Vec<f64> = draws.iter().map(f).collect();
            (
                v.iter().cloned().fold(f64::MAX, f64::min),
                v.iter().cloned().fold(0.0, f64::max),
            )
        };
        let (lo, hi) = span(|p| p.psf_fwhm_mm);
        assert!(
            (4.0..4.2).contains(&lo) && hi < 8.0 && hi > 7.8,
            "PSF {lo}..{hi}"
        );
        let (lo, hi) = span(|p| p.suv_calibration);
        assert!(
            (0.9..0.91).contains(&lo) && hi < 1.1 && hi > 1.09,
            "calibration {lo}..{hi}"
        );
        let (lo, hi) = span(|p| p.noise_alpha);
        assert!(lo >= 0.2 * 0.6 && hi <= 0.33 * 1.6, "noise {lo}..{hi}");
    }

    #[test]
    fn ct_draws_stay_in_their_ranges() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..400 {
            let p = CtProtocol::draw(&mut rng);
            assert!((0.8..2.0).contains(&p.noise_factor), "{p:?}");
            assert!((0.97..1.03).contains(&p.hu_scale), "{p:?}");
            assert!((-8.0..8.0).contains(&p.hu_offset), "{p:?}");
        }
    }

    #[test]
    fn fields_of_view_follow_their_shares() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let n = 4000;
        let draws: Vec<FieldOfView> = (0..n).map(|_| FieldOfView::draw(&mut rng)).collect();
        for (coverage, share) in FieldOfView::AXIAL_SHARES {
            let seen = draws.iter().filter(|f| f.axial == coverage).count() as f64 / n as f64;
            assert!(
                (seen - share).abs() < 0.03,
                "{coverage:?}: {seen} vs {share}"
            );
        }
        for f in &draws {
            assert!(
                f.top_shift_mm.abs() < 30.0 && f.bottom_shift_mm.abs() < 30.0,
                "{f:?}"
            );
            assert!((350.0..500.0).contains(&f.ct_diameter_mm), "{f:?}");
        }
    }
}
