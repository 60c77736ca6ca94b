//! Scanner and protocol randomisation: the PET and CT a study is imaged with, drawn by seed
//! from the range of clinical systems, so that a network does not learn one scanner's
//! resolution, noise or calibration. PET: PSF 4–8 mm FWHM (digital to older analogue systems,
//! with and without resolution modelling), noise from long to short acquisitions, and the
//! ±10 % SUV calibration error that cross-calibration audits allow. CT: diagnostic to low-dose
//! noise and a few per cent of HU calibration drift.

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
}
