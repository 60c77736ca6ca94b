//! Tracer physiology (SUV per tissue) and CT attenuation (HU per tissue).
//!
//! PSMA SUVmax values for glands and organs are the mean ± SD of a 55-patient 68Ga-PSMA-11
//! series (issue 5); they are targets for the *rendered* SUVmax, i.e. after the scanner blur,
//! so the generator calibrates each such structure's concentration by its recovery
//! coefficient. The other values are ranges of concentration typical of clinical scans.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

use super::body::{Body, Tissue};
use uptake::tracer::Tracer;

/// How a tissue's concentration is drawn for one patient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Uptake {
    /// Concentration uniform in [lo, hi] SUV.
    Range(f64, f64),
    /// Rendered SUVmax drawn from N(mean, sd), clipped to mean ± 2 SD (and ≥ 0.25 mean).
    SuvMax { mean: f64, sd: f64 },
    /// Concentration (= SUVmean inside the organ) drawn from N(mean, sd), clipped as above.
    SuvMean { mean: f64, sd: f64 },
    /// A fraction in [lo, hi] of another tissue's concentration.
    Relative(Tissue, f64, f64),
    /// With probability p the first range, otherwise the second (e.g. fasting-suppressed or
    /// active myocardium).
    Either(f64, (f64, f64), (f64, f64)),
}

/// Tissues that share one draw per patient (all blood has one concentration).
fn draw_key(t: Tissue) -> Tissue {
    match t {
        Tissue::Artery | Tissue::Vein => Tissue::Blood,
        other => other,
    }
}

/// The physiological uptake of a tissue for a tracer.
pub fn uptake(tracer: Tracer, tissue: Tissue) -> Uptake {
    use Tissue::*;
    use Uptake::*;
    match tracer {
        Tracer::Psma => match tissue {
            Air | BowelGas => Range(0.0, 0.0),
            Lung => Range(0.2, 0.4),
            Fat => Range(0.1, 0.25),
            BrownFat => Range(0.15, 0.3),
            Muscle => Range(0.5, 0.9),
            Soft | Cartilage => Range(0.4, 0.7),
            CorticalBone | Teeth => Range(0.3, 0.6),
            TrabecularBone => Range(0.8, 1.8),
            YellowMarrow => Range(0.3, 0.6),
            BrainGrey | DeepGrey | Cerebellum => Range(0.15, 0.35),
            BrainWhite | SpinalCord => Range(0.1, 0.25),
            Csf => Range(0.03, 0.08),
            Lacrimal => SuvMax {
                mean: 15.7,
                sd: 7.2,
            },
            Parotid => SuvMax {
                mean: 24.4,
                sd: 8.1,
            },
            Submandibular => SuvMax {
                mean: 26.7,
                sd: 7.1,
            },
            Sublingual => Range(6.0, 15.0),
            Tonsil => SuvMax {
                mean: 10.4,
                sd: 4.3,
            },
            PharynxWall => Range(1.5, 3.5),
            Larynx => Range(1.0, 2.0),
            Thyroid => SuvMax { mean: 4.5, sd: 1.2 },
            Myocardium => Range(1.2, 2.5),
            Blood | Artery | Vein => Range(1.1, 2.0),
            Liver => SuvMax { mean: 8.2, sd: 2.5 },
            Gallbladder => Range(0.5, 3.0),
            Spleen => SuvMax {
                mean: 10.9,
                sd: 3.9,
            },
            Pancreas => Range(2.0, 4.0),
            Adrenal => Range(2.0, 4.5),
            KidneyCortex => SuvMax {
                mean: 66.4,
                sd: 25.4,
            },
            RenalPelvis => Relative(KidneyCortex, 0.3, 0.8),
            Ureter => Range(10.0, 45.0),
            Bladder => Range(15.0, 90.0),
            Prostate => Range(2.0, 5.0),
            ProstateBed => Range(0.6, 1.5),
            SeminalVesicle => Range(1.0, 2.5),
            Esophagus => Range(1.0, 2.5),
            Stomach => Range(2.0, 6.0),
            StomachContent => Range(0.5, 1.5),
            Duodenum => SuvMax {
                mean: 17.6,
                sd: 8.9,
            },
            SmallBowel => Range(5.0, 14.0),
            Colon => SuvMax {
                mean: 10.6,
                sd: 9.2,
            },
            Rectum => SuvMax { mean: 3.7, sd: 1.1 },
            Ganglion => Range(2.0, 5.0),
            Node => Range(0.8, 2.5),
        },
        Tracer::Fdg => match tissue {
            Air | BowelGas => Range(0.0, 0.0),
            Lung => Range(0.4, 0.7),
            Fat => Range(0.2, 0.4),
            BrownFat => Range(3.0, 12.0),
            Muscle => Range(0.5, 1.3),
            Soft | Cartilage => Range(0.6, 1.0),
            CorticalBone | Teeth => Range(0.4, 0.7),
            TrabecularBone => Range(1.2, 2.2),
            YellowMarrow => Range(0.4, 0.8),
            Cerebellum => SuvMean { mean: 8.0, sd: 2.2 },
            BrainGrey => Relative(Cerebellum, 1.05, 1.3),
            DeepGrey => Relative(Cerebellum, 1.0, 1.2),
            BrainWhite => Relative(Cerebellum, 0.3, 0.42),
            SpinalCord => Range(1.2, 2.0),
            Csf => Range(0.3, 0.6),
            Lacrimal => Range(1.5, 3.0),
            Parotid => Range(1.5, 3.2),
            Submandibular => Range(1.8, 3.5),
            Sublingual => Range(1.5, 3.0),
            Tonsil => Range(3.0, 8.0),
            PharynxWall => Range(2.0, 4.5),
            Larynx => Range(1.5, 3.5),
            Thyroid => Range(1.0, 2.2),
            Myocardium => Either(0.4, (1.5, 3.0), (4.0, 16.0)),
            Blood | Artery | Vein => Range(1.4, 2.2),
            Liver => SuvMean { mean: 1.9, sd: 0.4 },
            Gallbladder => Range(0.5, 1.2),
            Spleen => Range(1.5, 2.3),
            Pancreas => Range(1.2, 2.0),
            Adrenal => Range(1.5, 2.5),
            KidneyCortex => Range(2.0, 4.0),
            RenalPelvis => Range(5.0, 40.0),
            Ureter => Range(5.0, 30.0),
            Bladder => Range(15.0, 60.0),
            Prostate => Range(1.5, 3.0),
            ProstateBed => Range(1.0, 2.0),
            SeminalVesicle => Range(1.5, 2.5),
            Esophagus => Range(1.5, 3.0),
            Stomach => Range(1.5, 4.0),
            StomachContent => Range(0.5, 1.0),
            Duodenum => Range(1.5, 3.0),
            SmallBowel => Range(1.5, 4.0),
            Colon => Range(1.5, 6.0),
            Rectum => Range(1.5, 3.0),
            Ganglion => Range(1.5, 2.5),
            Node => Range(0.8, 1.6),
        },
    }
}

fn clipped_normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    let z: f64 = Normal::new(0.0, 1.0).map(|n| n.sample(rng)).unwrap_or(0.0);
    (mean + sd * z.clamp(-2.0, 2.0)).max(0.25 * mean)
}

/// What the renderer must achieve for one structure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Target {
    /// Concentration as drawn.
    Concentration,
    /// Rendered (noise-free) SUVmax equal to this value.
    SuvMax(f64),
    /// Concentration equal to this SUVmean.
    SuvMean(f64),
}

/// One structure's drawn physiology.
#[derive(Debug, Clone, Copy)]
pub struct StructureUptake {
    /// Concentration (SUV) before calibration.
    pub concentration: f64,
    pub target: Target,
    /// Reference distribution for the manifest (mean, sd) where the table gives one.
    pub reference: Option<(f64, f64)>,
}

/// One tissue's concentration and target, drawn once per patient (tissues share one draw).
pub(crate) fn draw_tissue(
    t: Tissue,
    tracer: Tracer,
    rng: &mut ChaCha8Rng,
    drawn: &mut Vec<(Tissue, f64, Target)>,
) -> (f64, Target) {
    let key = draw_key(t);
    if let Some(&(_, c, target)) = drawn.iter().find(|d| d.0 == key) {
        return (c, target);
    }
    let (c, target) = match uptake(tracer, key) {
        Uptake::Range(lo, hi) => {
            let c = if hi > lo {
                rng.random_range(lo..hi)
            } else {
                lo
            };
            (c, Target::Concentration)
        }
        Uptake::SuvMax { mean, sd } => {
            let v = clipped_normal(rng, mean, sd);
            (v, Target::SuvMax(v))
        }
        Uptake::SuvMean { mean, sd } => {
            let v = clipped_normal(rng, mean, sd);
            (v, Target::SuvMean(v))
        }
        Uptake::Relative(of, lo, hi) => {
            let (base, _) = draw_tissue(of, tracer, rng, drawn);
            (base * rng.random_range(lo..hi), Target::Concentration)
        }
        Uptake::Either(p, a, b) => {
            let (lo, hi) = if rng.random_bool(p) { a } else { b };
            (rng.random_range(lo..hi), Target::Concentration)
        }
    };
    drawn.push((key, c, target));
    (c, target)
}

/// Draws every structure's uptake for one patient.
pub fn draw(body: &Body, tracer: Tracer, rng: &mut ChaCha8Rng) -> Vec<StructureUptake> {
    let mut drawn = Vec::new();
    body.structures
        .iter()
        .map(|s| {
            let (concentration, target) = draw_tissue(s.tissue, tracer, rng, &mut drawn);
            let reference = match uptake(tracer, draw_key(s.tissue)) {
                Uptake::SuvMax { mean, sd } | Uptake::SuvMean { mean, sd } => Some((mean, sd)),
                _ => None,
            };
            StructureUptake {
                concentration,
                target,
                reference,
            }
        })
        .collect()
}

/// CT attenuation of a tissue: (mean HU for this patient, texture amplitude HU). Only tissues
/// whose CT looks structured (lung, bone, bowel content) get texture; for the others the CT
/// noise is the texture. Non-contrast ranges span textbook values and the real test CT's
/// (`scripts/ct_realism.py`, docs/phantom.md): its muscle, kidneys and pancreas are 10–40 HU
/// darker than textbook adults, as fatty infiltration with age makes them.
pub fn hu(tissue: Tissue, contrast: bool, rng: &mut ChaCha8Rng) -> (f32, f32) {
    use Tissue::*;
    let mut r = |lo: f64, hi: f64| rng.random_range(lo..hi) as f32;
    // (without contrast, with intravenous contrast)
    let mut enhanced = |plain: (f64, f64), with: (f64, f64)| {
        let (lo, hi) = if contrast { with } else { plain };
        (r(lo, hi), 0.0)
    };
    match tissue {
        Air => (-1000.0, 0.0),
        BowelGas => (r(-1000.0, -950.0), 10.0),
        Lung => (r(-880.0, -790.0), 50.0),
        Fat => (r(-110.0, -85.0), 0.0),
        BrownFat => (r(-80.0, -50.0), 0.0),
        Muscle => (r(25.0, 55.0), 0.0),
        Soft => (r(15.0, 45.0), 0.0),
        Cartilage => (r(90.0, 140.0), 10.0),
        CorticalBone => (r(700.0, 1200.0), 80.0),
        TrabecularBone => (r(120.0, 260.0), 60.0),
        YellowMarrow => (r(-40.0, 30.0), 15.0),
        Teeth => (r(1500.0, 2200.0), 100.0),
        BrainGrey | DeepGrey | Cerebellum => (r(36.0, 42.0), 0.0),
        BrainWhite => (r(26.0, 31.0), 0.0),
        Csf => (r(4.0, 12.0), 0.0),
        SpinalCord => (r(30.0, 40.0), 0.0),
        Lacrimal | Sublingual => (r(35.0, 50.0), 0.0),
        Parotid => (r(-15.0, 30.0), 0.0),
        Submandibular => (r(35.0, 55.0), 0.0),
        Tonsil | PharynxWall => (r(40.0, 55.0), 0.0),
        Larynx => (r(70.0, 120.0), 20.0),
        Thyroid => enhanced((80.0, 120.0), (130.0, 170.0)),
        Myocardium => enhanced((40.0, 50.0), (100.0, 130.0)),
        Blood | Vein => enhanced((35.0, 48.0), (140.0, 180.0)),
        Artery => enhanced((35.0, 48.0), (170.0, 250.0)),
        Liver => enhanced((40.0, 62.0), (95.0, 120.0)),
        Gallbladder => (r(0.0, 20.0), 0.0),
        Spleen => enhanced((32.0, 52.0), (105.0, 130.0)),
        Pancreas => enhanced((-10.0, 45.0), (70.0, 110.0)),
        Adrenal => enhanced((0.0, 30.0), (50.0, 70.0)),
        KidneyCortex => enhanced((20.0, 40.0), (150.0, 190.0)),
        RenalPelvis | Ureter => (r(5.0, 20.0), 0.0),
        Bladder => (r(2.0, 15.0), 0.0),
        Prostate | ProstateBed | SeminalVesicle => enhanced((35.0, 48.0), (60.0, 80.0)),
        Esophagus | Stomach | Duodenum | SmallBowel => enhanced((20.0, 45.0), (70.0, 100.0)),
        StomachContent => (r(0.0, 30.0), 10.0),
        Colon | Rectum => (r(10.0, 40.0), 40.0),
        Ganglion => (r(30.0, 45.0), 0.0),
        Node => enhanced((30.0, 45.0), (55.0, 75.0)),
    }
}

/// Pockets of another material inside a tissue: gas in bowel content, fat between muscle
/// bundles. The renderer puts the material where a smooth noise field exceeds the quantile
/// that leaves `share` of the tissue to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inclusion {
    /// Share of the tissue's volume.
    pub share: f32,
    pub hu: f32,
    /// Size of the pockets (noise cell).
    pub cell_mm: f64,
}

/// The inclusion a tissue has in this patient: colon content a third gas, small bowel and
/// stomach a little, fat lobules in the pancreas and streaks of fat in muscle (real CT: colon
/// median −409 HU, stomach and small bowel 10–34 HU with 10 % of voxels below −50).
pub fn inclusion(tissue: Tissue, rng: &mut ChaCha8Rng) -> Option<Inclusion> {
    use Tissue::*;
    let mut draw = |lo: f64, hi: f64, hu: f32, cell_mm: f64| {
        Some(Inclusion {
            share: rng.random_range(lo..hi) as f32,
            hu,
            cell_mm,
        })
    };
    match tissue {
        Colon | Rectum => draw(0.05, 0.3, -1000.0, 9.0),
        SmallBowel | Duodenum => draw(0.0, 0.08, -1000.0, 7.0),
        StomachContent => draw(0.0, 0.3, -1000.0, 12.0),
        // Fatty infiltration with age: the real test CT's pancreas is −7 HU in median.
        Pancreas => draw(0.05, 0.5, -90.0, 4.0),
        Muscle => draw(0.02, 0.12, -90.0, 3.5),
        _ => None,
    }
}

/// One tissue's CT look in one patient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CtLook {
    /// Mean HU (before texture, inclusion, blur and noise).
    pub hu: f32,
    /// Texture amplitude, HU.
    pub texture: f32,
    pub inclusion: Option<Inclusion>,
}

/// Per-structure CT look drawn once per patient (structures of one tissue share one draw).
pub fn draw_hu(body: &Body, rng: &mut ChaCha8Rng) -> Vec<CtLook> {
    let mut drawn: Vec<(Tissue, CtLook)> = Vec::new();
    body.structures
        .iter()
        .map(|s| {
            if let Some(&(_, v)) = drawn.iter().find(|d| d.0 == s.tissue) {
                return v;
            }
            let (hu, texture) = hu(s.tissue, body.habitus.iv_contrast, rng);
            let v = CtLook {
                hu,
                texture,
                inclusion: inclusion(s.tissue, rng),
            };
            drawn.push((s.tissue, v));
            v
        })
        .collect()
}
