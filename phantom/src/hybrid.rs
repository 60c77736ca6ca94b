//! Hybrid studies (issue #27): a real CT plus a TotalSegmentator-style label map become a
//! PET/CT study in the training layout (docs/training.md), with a PET synthesised from the
//! phantom's physiology per structure and lesions planted by seed.
//!
//! The PET lives on the CT's own grid (same dims, spacing, origin and direction). Each voxel
//! gets a tissue: from the segmentation where a label covers it ([`CLASS_MAP`]), else from the
//! CT's HU (air, fat, soft tissue, bone as large components above 200 HU, a bladder found from
//! the CT when no label gives one). Concentrations are the phantom's per-tissue uptake
//! (`physiology::draw_tissue`, jittered per seed), lesions are spheres with the phantom's
//! radial profile (`render::lesion_profile`) and SUVmax ranges, the activity is blurred by the
//! phantom's PSF (`raster::gaussian_kernel`, `raster::blur_plane`, `raster::blur_stack`)
//! and gets its noise (`render::pet_noise`). The CT is written unchanged (lesions are PET-only).
//! These studies are test anatomy only: `study.json` carries `"hybrid": true`.

use std::collections::BTreeMap;
use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::body::Tissue;
use super::disease::{Avidity, LesionPlan, log_uniform};
use super::physiology::draw_tissue;
use super::raster::{blur_plane, blur_stack, gaussian_kernel};
use super::render::{Stream, lesion_profile, pet_noise, rng};
use super::scanner::PetProtocol;
use super::{PhantomError, truth};
use uptake::classes::{Role, v1_classes, v1_id};
use uptake::regions::{Connectivity, components};
use uptake::tracer::Tracer;
use uptake::volume::nifti;
use uptake::volume::{Geometry, Volume};

/// Why a hybrid study could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HybridError {
    #[error(transparent)]
    Phantom(#[from] PhantomError),
    #[error(transparent)]
    Volume(#[from] uptake::volume::VolumeError),
    #[error(transparent)]
    Nifti(#[from] nifti::NiftiError),
    #[error("{0}")]
    Input(String),
}

/// Which lesion host a segmented structure offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Host {
    None,
    /// Vertebrae, sacrum, ribs, hip bones (and, outside the segmentation, CT bone).
    Bone,
    Liver,
    Adrenal,
    /// Great vessels: retroperitoneal nodes are planted beside them.
    Vessel,
    /// Iliac vessels: pelvic nodes are planted beside them.
    IliacVessel,
    Lung,
    /// Stomach, small bowel and colon: lesions in their wall.
    Bowel,
}

/// TotalSegmentator class name (prefix; the first matching row wins) → phantom tissue, S6
/// location class and lesion host. Names not listed are background soft tissue.
pub const CLASS_MAP: &[(&str, Tissue, &str, Host)] = &[
    ("spleen", Tissue::Spleen, "spleen", Host::None),
    ("kidney_cyst", Tissue::Soft, "kidney", Host::None),
    ("kidney_", Tissue::KidneyCortex, "kidney", Host::None),
    ("gallbladder", Tissue::Gallbladder, "liver", Host::None),
    ("liver", Tissue::Liver, "liver", Host::Liver),
    ("stomach", Tissue::Stomach, "bowel", Host::Bowel),
    (
        "pancreas",
        Tissue::Pancreas,
        "adrenal_other_organ",
        Host::None,
    ),
    (
        "adrenal_gland",
        Tissue::Adrenal,
        "adrenal_other_organ",
        Host::Adrenal,
    ),
    ("lung_", Tissue::Lung, "lung", Host::Lung),
    ("esophagus", Tissue::Esophagus, "bowel", Host::None),
    ("trachea", Tissue::Air, "", Host::None),
    ("thyroid_gland", Tissue::Thyroid, "thyroid", Host::None),
    ("small_bowel", Tissue::SmallBowel, "bowel", Host::Bowel),
    ("duodenum", Tissue::Duodenum, "bowel", Host::Bowel),
    ("colon", Tissue::Colon, "bowel", Host::Bowel),
    ("urinary_bladder", Tissue::Bladder, "bladder", Host::None),
    ("prostate", Tissue::Prostate, "prostate", Host::None),
    ("sacrum", Tissue::TrabecularBone, "bone", Host::Bone),
    ("vertebrae_", Tissue::TrabecularBone, "bone", Host::Bone),
    ("heart", Tissue::Myocardium, "heart", Host::None),
    ("aorta", Tissue::Artery, "soft_tissue", Host::Vessel),
    (
        "inferior_vena_cava",
        Tissue::Vein,
        "soft_tissue",
        Host::Vessel,
    ),
    (
        "superior_vena_cava",
        Tissue::Vein,
        "soft_tissue",
        Host::None,
    ),
    (
        "iliac_artery",
        Tissue::Artery,
        "soft_tissue",
        Host::IliacVessel,
    ),
    ("iliac_vena", Tissue::Vein, "soft_tissue", Host::IliacVessel),
    ("portal_vein", Tissue::Vein, "soft_tissue", Host::None),
    ("pulmonary_vein", Tissue::Blood, "heart", Host::None),
    ("atrial_appendage", Tissue::Blood, "heart", Host::None),
    ("brachiocephalic", Tissue::Vein, "soft_tissue", Host::None),
    (
        "subclavian_artery",
        Tissue::Artery,
        "soft_tissue",
        Host::None,
    ),
    ("common_carotid", Tissue::Artery, "soft_tissue", Host::None),
    ("humerus", Tissue::YellowMarrow, "bone", Host::None),
    ("femur", Tissue::YellowMarrow, "bone", Host::None),
    ("scapula", Tissue::TrabecularBone, "bone", Host::None),
    ("clavicula", Tissue::TrabecularBone, "bone", Host::None),
    ("hip_", Tissue::TrabecularBone, "bone", Host::Bone),
    ("rib_", Tissue::TrabecularBone, "bone", Host::Bone),
    ("sternum", Tissue::TrabecularBone, "bone", Host::None),
    ("skull", Tissue::TrabecularBone, "bone", Host::None),
    (
        "costal_cartilages",
        Tissue::Cartilage,
        "soft_tissue",
        Host::None,
    ),
    ("spinal_cord", Tissue::SpinalCord, "soft_tissue", Host::None),
    ("gluteus", Tissue::Muscle, "soft_tissue", Host::None),
    ("autochthon", Tissue::Muscle, "soft_tissue", Host::None),
    ("iliopsoas", Tissue::Muscle, "soft_tissue", Host::None),
    ("brain", Tissue::BrainGrey, "brain", Host::None),
    ("parotid", Tissue::Parotid, "salivary_gland", Host::None),
    (
        "submandibular",
        Tissue::Submandibular,
        "salivary_gland",
        Host::None,
    ),
];

/// HU rules where no label covers a voxel.
const AIR_BELOW_HU: f32 = -500.0;
const FAT_BELOW_HU: f32 = -20.0;
const BONE_ABOVE_HU: f32 = 200.0;
/// A bone component needs this many voxels (smaller ones are calcifications or contrast).
const BONE_MIN_VOXELS: usize = 200;

/// Where a voxel's tissue came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VoxelClass {
    tissue: Tissue,
    /// S6 class id + 1, 0 = no location.
    structure: u16,
    host: Host,
}

/// What to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HybridSpec {
    pub tracer: Tracer,
    pub seed: u64,
    /// The segmentation's slice 0 lies at this CT slice (the example data needs 82).
    pub seg_slice_offset: i64,
}

/// One planted lesion, as `study.json` states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HybridLesion {
    /// Value in `lesions.nii.gz`.
    pub id: u16,
    pub role: Role,
    pub class_id: u32,
    pub class_name: String,
    /// "bone", "liver", "adrenal", "ln_retroperitoneal" or "ln_pelvic".
    pub host: String,
    /// Where the host came from: the segmentation's class name, or "ct" (HU rules).
    pub host_source: String,
    pub centre_lps: [f64; 3],
    /// CT/PET voxel (x, y, z) of the centre.
    pub centre_voxel: [usize; 3],
    pub radius_mm: f64,
    pub target_suv_max: f64,
    pub concentration_suv: f64,
    pub host_concentration_suv: f64,
    pub pet_voxels: usize,
    /// How the lesion shows on the CT: "soft_tissue" (a node or nodule), "hypodense" (liver),
    /// "sclerotic", "lytic" or "occult" (bone).
    pub ct_appearance: String,
    /// HU added to the CT where the lesion covers a whole voxel (in proportion elsewhere).
    pub ct_hu_shift: f64,
}

/// `study.json` of a hybrid study: the training layout's fields plus the provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HybridInfo {
    pub subject: String,
    pub tracer: Tracer,
    pub lesion_classes: Vec<u32>,
    pub stage: BTreeMap<String, String>,
    /// Always true: built on real anatomy that must never be trained on.
    pub hybrid: bool,
    pub seed: u64,
    pub seg_slice_offset: i64,
    pub pet_grid: String,
    pub pet_units: String,
    pub protocol: PetProtocol,
    /// Concentration (SUV) of each tissue present, before blur and noise.
    pub tissues: BTreeMap<String, f64>,
    pub lesions: Vec<HybridLesion>,
}

/// A hybrid study: volumes on the CT grid and the manifest.
#[derive(Debug, Clone)]
pub struct HybridStudy {
    pub pet: Volume<f32>,
    pub ct: Volume<f32>,
    /// S6 class id + 1 per voxel, 0 = no location.
    pub structures: Volume<u16>,
    pub lesions: Volume<u16>,
    pub info: HybridInfo,
}

/// Reads a `classes.json`: either `{"classes": {"1": "spleen", …}}` or `{"1": "spleen", …}`.
pub fn parse_classes(text: &str) -> Result<BTreeMap<u32, String>, HybridError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| HybridError::Input(format!("classes: {e}")))?;
    let map = v.get("classes").unwrap_or(&v);
    let obj = map
        .as_object()
        .ok_or_else(|| HybridError::Input("classes: expected an object of label → name".into()))?;
    let mut out = BTreeMap::new();
    for (k, name) in obj {
        let (Ok(label), Some(name)) = (k.parse::<u32>(), name.as_str()) else {
            continue;
        };
        out.insert(label, name.to_string());
    }
    if out.is_empty() {
        return Err(HybridError::Input(
            "classes: no label → name entries".into(),
        ));
    }
    Ok(out)
}

/// The [`CLASS_MAP`] row of a TotalSegmentator class name.
pub fn map_class(name: &str) -> Option<(Tissue, &'static str, Host)> {
    CLASS_MAP
        .iter()
        .find(|r| name.starts_with(r.0))
        .map(|r| (r.1, r.2, r.3))
}

fn structure_of(class: &str) -> u16 {
    v1_id(class).map_or(0, |c| c as u16 + 1)
}

/// The tissue of every voxel: segmentation first, HU rules elsewhere. Returns the classes and
/// the name of the segmentation class at each voxel (index into `names`, 0 = none).
fn classify(
    ct: &Volume<f32>,
    seg: &Volume<f32>,
    classes: &BTreeMap<u32, String>,
    offset: i64,
) -> Result<(Vec<VoxelClass>, Vec<u32>), HybridError> {
    let [nx, ny, nz] = ct.dims();
    let sd = seg.dims();
    if sd[0] != nx || sd[1] != ny {
        return Err(HybridError::Input(format!(
            "segmentation is {}×{} in-plane, the CT {nx}×{ny}: it must share the CT's grid",
            sd[0], sd[1]
        )));
    }
    let (cs, ss) = (ct.geometry().spacing_mm(), seg.geometry().spacing_mm());
    if (0..3).any(|a| (cs[a] - ss[a]).abs() > 1e-3) {
        return Err(HybridError::Input(format!(
            "segmentation spacing {ss:?} mm differs from the CT's {cs:?} mm: it must share the \
             CT's grid"
        )));
    }
    let hu = ct.data();
    let soft = VoxelClass {
        tissue: Tissue::Soft,
        structure: structure_of("soft_tissue"),
        host: Host::None,
    };
    let air = VoxelClass {
        tissue: Tissue::Air,
        structure: 0,
        host: Host::None,
    };
    let bone_mask: Vec<bool> = hu.iter().map(|&h| h > BONE_ABOVE_HU).collect();
    let (bone_id, bone_sizes) = components(&bone_mask, [nx, ny, nz], Connectivity::TwentySix);
    let mut out: Vec<VoxelClass> = hu
        .iter()
        .zip(&bone_id)
        .map(|(&h, &b)| {
            if h < AIR_BELOW_HU {
                air
            } else if h < FAT_BELOW_HU {
                VoxelClass {
                    tissue: Tissue::Fat,
                    ..soft
                }
            } else if b > 0 && bone_sizes[b as usize - 1] >= BONE_MIN_VOXELS {
                VoxelClass {
                    tissue: Tissue::TrabecularBone,
                    structure: structure_of("bone"),
                    host: Host::Bone,
                }
            } else {
                soft
            }
        })
        .collect();
    let mut seg_label = vec![0u32; out.len()];
    let plane = nx * ny;
    let mut bladder_labelled = false;
    for k in 0..sd[2] {
        let z = k as i64 + offset;
        if z < 0 || z >= nz as i64 {
            continue;
        }
        let z = z as usize;
        for i in 0..plane {
            let v = seg.data()[k * plane + i];
            if v.is_nan() || v < 0.5 {
                continue;
            }
            let label = v.round() as u32;
            let idx = z * plane + i;
            seg_label[idx] = label;
            let Some(name) = classes.get(&label) else {
                continue;
            };
            let vc = match map_class(name) {
                Some((tissue, class, host)) => VoxelClass {
                    tissue,
                    structure: if class.is_empty() {
                        0
                    } else {
                        structure_of(class)
                    },
                    host,
                },
                None => soft,
            };
            bladder_labelled |= vc.tissue == Tissue::Bladder;
            out[idx] = vc;
        }
    }
    if !bladder_labelled {
        find_bladder(ct, &seg_label, &mut out);
    }
    Ok((out, seg_label))
}

/// The bladder from the CT: the largest 6-connected component of unlabelled −5..35 HU voxels in
/// the lowest third of the CT whose centroid lies within 40 mm of the body's midline.
fn find_bladder(ct: &Volume<f32>, seg_label: &[u32], out: &mut [VoxelClass]) {
    let [nx, ny, nz] = ct.dims();
    let g = ct.geometry();
    // The inferior end: the slice whose patient z is lowest.
    let z_of = |k: usize| g.voxel_to_patient([0.0, 0.0, k as f64])[2];
    let low_first = z_of(0) < z_of(nz - 1);
    let in_low_third = |k: usize| {
        if low_first {
            k < nz.div_ceil(3)
        } else {
            k >= nz - nz.div_ceil(3)
        }
    };
    let hu = ct.data();
    let mask: Vec<bool> = (0..hu.len())
        .map(|i| {
            let k = i / (nx * ny);
            in_low_third(k) && seg_label[i] == 0 && (-5.0..=35.0).contains(&hu[i])
        })
        .collect();
    // Body midline (patient x): mean over voxels above the air threshold.
    let (mut sx, mut n) = (0.0, 0usize);
    for (i, &h) in hu.iter().enumerate() {
        if h > AIR_BELOW_HU {
            let x = g.voxel_to_patient([(i % nx) as f64, ((i / nx) % ny) as f64, 0.0])[0];
            sx += x;
            n += 1;
        }
    }
    if n == 0 {
        return;
    }
    let mid = sx / n as f64;
    // One 6-neighbour erosion separates the bladder from the bowel and soft tissue it touches
    // through thin bridges; the chosen component grows back by one voxel within the mask.
    let plane = nx * ny;
    let inner = |i: usize| {
        let (x, y, z) = (i % nx, (i / nx) % ny, i / plane);
        mask[i]
            && x > 0
            && y > 0
            && z > 0
            && x + 1 < nx
            && y + 1 < ny
            && z + 1 < nz
            && [i - 1, i + 1, i - nx, i + nx, i - plane, i + plane]
                .iter()
                .all(|&j| mask[j])
    };
    let eroded: Vec<bool> = (0..mask.len()).map(inner).collect();
    let (id, sizes) = components(&eroded, [nx, ny, nz], Connectivity::Six);
    let mut cx = vec![0.0f64; sizes.len()];
    for (i, &c) in id.iter().enumerate() {
        if c > 0 {
            cx[c as usize - 1] +=
                g.voxel_to_patient([(i % nx) as f64, ((i / nx) % ny) as f64, 0.0])[0];
        }
    }
    let ml = g.voxel_volume_ml();
    let best = (0..sizes.len())
        .filter(|&c| {
            let v = sizes[c] as f64 * ml;
            (cx[c] / sizes[c] as f64 - mid).abs() < 40.0 && (10.0..=1500.0).contains(&v)
        })
        .max_by_key(|&c| sizes[c]);
    if let Some(b) = best {
        let label = b as u32 + 1;
        let grown: Vec<bool> = (0..id.len())
            .map(|i| {
                let (x, y, z) = (i % nx, (i / nx) % ny, i / plane);
                id[i] == label
                    || (mask[i]
                        && ((x > 0 && id[i - 1] == label)
                            || (x + 1 < nx && id[i + 1] == label)
                            || (y > 0 && id[i - nx] == label)
                            || (y + 1 < ny && id[i + nx] == label)
                            || (z > 0 && id[i - plane] == label)
                            || (z + 1 < nz && id[i + plane] == label)))
            })
            .collect();
        for (i, &inside) in grown.iter().enumerate() {
            if inside {
                out[i] = VoxelClass {
                    tissue: Tissue::Bladder,
                    structure: structure_of("bladder"),
                    host: Host::None,
                };
            }
        }
    }
}

/// A lesion site the generator can plant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    Bone,
    Liver,
    Adrenal,
    Retroperitoneal,
    Pelvic,
    Lung,
    BowelWall,
}

impl Site {
    fn name(self) -> &'static str {
        match self {
            Site::Bone => "bone",
            Site::Liver => "liver",
            Site::Adrenal => "adrenal",
            Site::Retroperitoneal => "ln_retroperitoneal",
            Site::Pelvic => "ln_pelvic",
            Site::Lung => "lung",
            Site::BowelWall => "bowel_wall",
        }
    }
    fn class(self) -> &'static str {
        match self {
            Site::Bone => "bone",
            Site::Liver => "liver",
            Site::Adrenal => "adrenal_other_organ",
            Site::Retroperitoneal => "ln_retroperitoneal",
            Site::Pelvic => "ln_pelvic",
            Site::Lung => "lung",
            Site::BowelWall => "bowel",
        }
    }
    /// SUVmax range (log-uniform) as the phantom's disease plans draw it.
    fn suv_range(self, tracer: Tracer) -> (f64, f64) {
        match (tracer, self) {
            (Tracer::Psma, Site::Bone) => (3.0, 60.0),
            (Tracer::Psma, Site::Liver | Site::Adrenal) => (4.0, 30.0),
            (Tracer::Psma, Site::Lung | Site::BowelWall) => (3.0, 20.0),
            (Tracer::Psma, _) => (2.5, 45.0),
            (Tracer::Fdg, Site::Bone) => (3.0, 15.0),
            (Tracer::Fdg, Site::Liver) => (3.5, 15.0),
            (Tracer::Fdg, Site::Adrenal) => (4.0, 18.0),
            (Tracer::Fdg, Site::BowelWall) => (4.0, 15.0),
            (Tracer::Fdg, _) => (3.0, 15.0),
        }
    }
    /// Relative frequency per tracer.
    fn weight(self, tracer: Tracer) -> f64 {
        match (tracer, self) {
            (Tracer::Psma, Site::Bone) => 3.0,
            (Tracer::Psma, Site::Retroperitoneal | Site::Pelvic) => 2.0,
            (Tracer::Psma, Site::Lung) => 0.5,
            (Tracer::Psma, Site::BowelWall) => 0.3,
            (Tracer::Psma, _) => 0.7,
            (Tracer::Fdg, Site::Liver) => 2.5,
            (Tracer::Fdg, Site::Bone) => 1.0,
            (Tracer::Fdg, Site::BowelWall) => 0.7,
            (Tracer::Fdg, _) => 1.5,
        }
    }
}

struct Grid {
    dims: [usize; 3],
    spacing: [f64; 3],
}

impl Grid {
    fn coords(&self, i: usize) -> [usize; 3] {
        let [nx, ny, _] = self.dims;
        [i % nx, (i / nx) % ny, i / (nx * ny)]
    }
    fn index(&self, c: [usize; 3]) -> usize {
        c[0] + self.dims[0] * (c[1] + self.dims[1] * c[2])
    }
    /// Voxels whose centres lie within `r` mm of voxel `c` (as indices).
    fn ball(&self, c: [usize; 3], r: f64) -> Vec<usize> {
        let mut out = Vec::new();
        let h = [0, 1, 2].map(|a| (r / self.spacing[a]).floor() as i64);
        for dz in -h[2]..=h[2] {
            for dy in -h[1]..=h[1] {
                for dx in -h[0]..=h[0] {
                    let d = [dx, dy, dz];
                    let d2: f64 = (0..3)
                        .map(|a| (d[a] as f64 * self.spacing[a]).powi(2))
                        .sum();
                    if d2 > r * r {
                        continue;
                    }
                    let p = [0, 1, 2].map(|a| c[a] as i64 + d[a]);
                    if (0..3).all(|a| p[a] >= 0 && (p[a] as usize) < self.dims[a]) {
                        out.push(self.index(p.map(|v| v as usize)));
                    }
                }
            }
        }
        out
    }
}

/// Candidate centre voxels per site.
fn candidates(
    site: Site,
    vc: &[VoxelClass],
    seg_label: &[u32],
    hu: &[f32],
    grid: &Grid,
    pelvic_slices: &dyn Fn(usize) -> bool,
    midline_x: f64,
) -> Vec<usize> {
    match site {
        Site::Bone => (0..vc.len())
            .filter(|&i| vc[i].host == Host::Bone)
            .collect(),
        Site::Liver => (0..vc.len())
            .filter(|&i| vc[i].host == Host::Liver)
            .collect(),
        Site::Adrenal => (0..vc.len())
            .filter(|&i| vc[i].host == Host::Adrenal)
            .collect(),
        Site::Lung => (0..vc.len())
            .filter(|&i| vc[i].host == Host::Lung && hu[i] < AIR_BELOW_HU)
            .collect(),
        // The wall and its fluid, not the gas.
        Site::BowelWall => (0..vc.len())
            .filter(|&i| vc[i].host == Host::Bowel && (-30.0..=90.0).contains(&hu[i]))
            .collect(),
        Site::Retroperitoneal | Site::Pelvic => {
            let want = if site == Site::Retroperitoneal {
                Host::Vessel
            } else {
                Host::IliacVessel
            };
            // Fat or unlabelled soft tissue 6–15 mm from a vessel of the wanted kind.
            let vessels: Vec<usize> = (0..vc.len()).filter(|&i| vc[i].host == want).collect();
            let mut near = vec![false; vc.len()];
            for &v in vessels.iter().step_by(3) {
                for j in grid.ball(grid.coords(v), 15.0) {
                    near[j] = true;
                }
            }
            for &v in &vessels {
                for j in grid.ball(grid.coords(v), 6.0) {
                    near[j] = false;
                }
            }
            let mut out: Vec<usize> = (0..vc.len())
                .filter(|&i| {
                    near[i]
                        && seg_label[i] == 0
                        && matches!(vc[i].tissue, Tissue::Fat | Tissue::Soft)
                        && (-150.0..=80.0).contains(&hu[i])
                })
                .collect();
            if out.is_empty() && site == Site::Pelvic {
                // No iliac vessel labels: pelvic fat from the CT, low in the pelvis.
                // Deep in the body (45 mm of body along ±x and ±y: not subcutaneous) and
                // 20–75 mm beside the midline (the pelvic side walls).
                let body = |c: [usize; 3]| hu[grid.index(c)] > AIR_BELOW_HU;
                let steps = (45.0 / grid.spacing[0].min(grid.spacing[1])).ceil() as i64;
                let deep = |c: [usize; 3]| {
                    [[1i64, 0], [-1, 0], [0, 1], [0, -1]].iter().all(|d| {
                        (1..=steps).all(|t| {
                            let x = c[0] as i64 + d[0] * t;
                            let y = c[1] as i64 + d[1] * t;
                            x >= 0
                                && y >= 0
                                && (x as usize) < grid.dims[0]
                                && (y as usize) < grid.dims[1]
                                && body([x as usize, y as usize, c[2]])
                        })
                    })
                };
                out = (0..vc.len())
                    .filter(|&i| {
                        let c = grid.coords(i);
                        let lateral = (c[0] as f64 - midline_x).abs() * grid.spacing[0];
                        pelvic_slices(c[2])
                            && seg_label[i] == 0
                            && vc[i].tissue == Tissue::Fat
                            && (20.0..=75.0).contains(&lateral)
                            && deep(c)
                    })
                    .collect();
            }
            out
        }
    }
}

/// A lesion's look on a non-contrast CT and the HU shift that draws it on a host of mean HU
/// `host_hu`: nodes, nodules and wall thickening are soft tissue, liver metastases hypodense,
/// bone metastases of prostate cancer (PSMA) mostly sclerotic, of FDG-avid cancers mostly lytic.
fn ct_appearance(
    site: Site,
    tracer: Tracer,
    host_hu: f64,
    rng: &mut ChaCha8Rng,
) -> (&'static str, f64) {
    let soft = |rng: &mut ChaCha8Rng, lo: f64, hi: f64| rng.random_range(lo..hi) - host_hu;
    match site {
        Site::Retroperitoneal | Site::Pelvic | Site::Lung => ("soft_tissue", soft(rng, 25.0, 45.0)),
        Site::Adrenal => ("soft_tissue", soft(rng, 10.0, 35.0)),
        Site::BowelWall => ("soft_tissue", soft(rng, 30.0, 50.0)),
        Site::Liver => ("hypodense", -rng.random_range(10.0..35.0)),
        Site::Bone => {
            let (sclerotic, lytic) = match tracer {
                Tracer::Psma => (0.6, 0.2),
                Tracer::Fdg => (0.25, 0.45),
            };
            let u: f64 = rng.random();
            if u < sclerotic {
                ("sclerotic", rng.random_range(150.0..500.0))
            } else if u < sclerotic + lytic {
                ("lytic", soft(rng, 20.0, 60.0))
            } else {
                ("occult", 0.0)
            }
        }
    }
}

/// Whether a lesion of radius `r` centred at `c` fits the site: the share of the ball's voxels
/// that belong to the host.
fn fits(site: Site, c: usize, r: f64, vc: &[VoxelClass], hu: &[f32], grid: &Grid) -> bool {
    let ball = grid.ball(grid.coords(c), r);
    let inside = ball
        .iter()
        .filter(|&&j| match site {
            Site::Bone => vc[j].host == Host::Bone || hu[j] > 150.0,
            Site::Liver => vc[j].host == Host::Liver,
            Site::Adrenal => true,
            Site::Lung => vc[j].host == Host::Lung,
            Site::BowelWall => vc[j].host == Host::Bowel,
            Site::Retroperitoneal | Site::Pelvic => {
                matches!(vc[j].tissue, Tissue::Fat | Tissue::Soft) && vc[j].host == Host::None
            }
        })
        .count();
    let need = match site {
        Site::Bone => 0.6,
        Site::Liver => 0.95,
        Site::Adrenal => 0.0,
        Site::Lung => 0.9,
        Site::BowelWall => 0.5,
        Site::Retroperitoneal | Site::Pelvic => 0.85,
    };
    inside as f64 >= need * ball.len() as f64
}

/// Builds the hybrid study of `spec` from a CT (HU), a segmentation and its class names.
pub fn generate(
    ct: &Volume<f32>,
    seg: &Volume<f32>,
    classes: &BTreeMap<u32, String>,
    spec: &HybridSpec,
) -> Result<HybridStudy, HybridError> {
    let g: Geometry = *ct.geometry();
    let grid = Grid {
        dims: g.dims(),
        spacing: g.spacing_mm(),
    };
    let [nx, ny, nz] = grid.dims;
    let hu = ct.data();
    let (vc, seg_label) = classify(ct, seg, classes, spec.seg_slice_offset)?;

    // Per-tissue concentration, drawn in CLASS_MAP order then the HU-rule tissues, so the
    // draws do not depend on which structures the segmentation holds.
    let mut urng = rng(spec.seed, Stream::UPTAKE);
    let mut drawn = Vec::new();
    let mut conc: Vec<(Tissue, f64)> = Vec::new();
    let order = CLASS_MAP.iter().map(|r| r.1).chain([
        Tissue::Air,
        Tissue::Fat,
        Tissue::Soft,
        Tissue::TrabecularBone,
    ]);
    for t in order {
        if conc.iter().any(|c| c.0 == t) {
            continue;
        }
        let (c, _) = draw_tissue(t, spec.tracer, &mut urng, &mut drawn);
        conc.push((t, c));
    }
    let conc_of = |t: Tissue| conc.iter().find(|c| c.0 == t).map_or(0.0, |c| c.1);
    let mut activity: Vec<f32> = vc.iter().map(|v| conc_of(v.tissue) as f32).collect();

    // Lesions.
    // The PET's scanner, from a stream of its own.
    let protocol = PetProtocol::draw(spec.tracer, &mut rng(spec.seed, Stream::SCANNER));
    let fwhm = protocol.psf_fwhm_mm;
    let sigma = fwhm / (8.0 * 2f64.ln()).sqrt();
    let kernels = [0, 1, 2].map(|a| gaussian_kernel(sigma / grid.spacing[a]));
    let z_of = |k: usize| g.voxel_to_patient([0.0, 0.0, k as f64])[2];
    let low_first = z_of(0) < z_of(nz - 1);
    let pelvic = move |k: usize| {
        if low_first {
            k < nz.div_ceil(4)
        } else {
            k >= nz - nz.div_ceil(4)
        }
    };
    // Body midline as an x index: mean over voxels above the air threshold.
    let (mut sum_x, mut n_body) = (0.0f64, 0usize);
    for (i, &h) in hu.iter().enumerate() {
        if h > AIR_BELOW_HU {
            sum_x += (i % nx) as f64;
            n_body += 1;
        }
    }
    let midline_x = if n_body > 0 {
        sum_x / n_body as f64
    } else {
        (nx as f64 - 1.0) / 2.0
    };
    let mut drng: ChaCha8Rng = rng(spec.seed, Stream::DISEASE);
    let sites = [
        Site::Bone,
        Site::Retroperitoneal,
        Site::Pelvic,
        Site::Liver,
        Site::Adrenal,
        Site::Lung,
        Site::BowelWall,
    ];
    let pools: Vec<Vec<usize>> = sites
        .iter()
        .map(|&s| candidates(s, &vc, &seg_label, hu, &grid, &pelvic, midline_x))
        .collect();
    let total_weight: f64 = sites
        .iter()
        .zip(&pools)
        .filter(|(_, p)| !p.is_empty())
        .map(|(s, _)| s.weight(spec.tracer))
        .sum();
    // The lesions' CT appearance draws from a stream of its own, so that it does not move the
    // PET's lesions.
    let mut crng: ChaCha8Rng = rng(spec.seed, Stream::HU);
    let mut ct_hu = hu.to_vec();
    let wanted = drng.random_range(3..=8usize);
    let mut lesions: Vec<HybridLesion> = Vec::new();
    let mut plans: Vec<LesionPlan> = Vec::new();
    let mut lesion_map = vec![0u16; vc.len()];
    let classes_v1 = v1_classes();
    for _ in 0..wanted * 4 {
        if lesions.len() >= wanted || total_weight <= 0.0 {
            break;
        }
        let mut pick = drng.random_range(0.0..total_weight);
        let mut si = 0;
        for (k, s) in sites.iter().enumerate() {
            if pools[k].is_empty() {
                continue;
            }
            si = k;
            pick -= s.weight(spec.tracer);
            if pick < 0.0 {
                break;
            }
        }
        let site = sites[si];
        let pool = &pools[si];
        let r_max = match site {
            Site::Adrenal => 6.0,
            Site::Lung | Site::BowelWall => 8.0,
            _ => 10.0,
        };
        let mut radius: f64 = drng.random_range(2.5..r_max);
        let mut placed = None;
        for attempt in 0..60 {
            if attempt % 15 == 14 {
                radius = (radius * 0.75).max(2.5);
            }
            let c = pool[drng.random_range(0..pool.len())];
            let cc = grid.coords(c);
            let p = g.voxel_to_patient(cc.map(|v| v as f64));
            let clear = plans.iter().all(|l| {
                let d2: f64 = (0..3).map(|a| (l.centre[a] - p[a]).powi(2)).sum();
                d2.sqrt() > l.radii[0] + radius + 4.0
            });
            if clear && fits(site, c, radius, &vc, hu, &grid) {
                placed = Some((c, p));
                break;
            }
        }
        let Some((c, centre)) = placed else {
            continue;
        };
        let class = site.class();
        let class_id = v1_id(class).expect("S6 class") as u32;
        let role = classes_v1[class_id as usize].role;
        let (lo, hi) = site.suv_range(spec.tracer);
        let avidity = if drng.random_bool(0.15) {
            Avidity::TimesHost(drng.random_range(1.6..2.8))
        } else {
            Avidity::SuvMax(log_uniform(&mut drng, lo, hi))
        };
        let id = plans.len() as u16 + 1;
        let plan = LesionPlan {
            id,
            kind: if site == Site::Bone {
                "bone"
            } else if matches!(
                site,
                Site::Liver | Site::Adrenal | Site::Lung | Site::BowelWall
            ) {
                "visceral"
            } else {
                "node"
            },
            site: site.name().to_string(),
            host: 0,
            class_id,
            role,
            centre,
            radii: [radius; 3],
            rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            avidity,
            hu: 0.0,
            necrotic: false,
            next_to: None,
        };
        let host_conc = activity[c] as f64;
        // Unit lesion, blurred, for the recovery coefficient; sub-sampled 3×3×3 per voxel.
        let (unit, frac, win) = unit_lesion(&plan, &g, &grid, radius + 3.0 * sigma + 3.0);
        let window = |i: usize| {
            let [wx, wy, _] = win.1;
            let (x, y, z) = (i % wx, (i / wx) % wy, i / (wx * wy));
            grid.index([win.0[0] + x, win.0[1] + y, win.0[2] + z])
        };
        let covered: Vec<(usize, f32)> = (0..frac.len())
            .filter(|&w| frac[w] > 0.0)
            .map(|w| (window(w), frac[w]))
            .collect();
        let host_hu = covered.iter().map(|&(i, _)| f64::from(hu[i])).sum::<f64>()
            / covered.len().max(1) as f64;
        let (ct_appearance, ct_hu_shift) = ct_appearance(site, spec.tracer, host_hu, &mut crng);
        // The real CT's own noise and texture stay; only the mean moves, in the share of each
        // voxel the lesion covers.
        for &(i, f) in &covered {
            ct_hu[i] += f * ct_hu_shift as f32;
        }
        let rc = blurred_max(&unit, win.1, &kernels).max(1e-3);
        let target = match avidity {
            Avidity::SuvMax(v) => v,
            Avidity::TimesHost(f) => (f * host_conc).max(1.5),
        };
        let a = ((target - host_conc * (1.0 - rc)) / rc)
            .max(1.1 * host_conc)
            .max(0.5);
        // Paint: the lesion replaces the host in the share of each voxel it covers.
        let mut voxels = 0;
        let [wx, wy, wz] = win.1;
        for k in 0..wz {
            for j in 0..wy {
                for i in 0..wx {
                    let w = i + wx * (j + wy * k);
                    if frac[w] <= 0.0 {
                        continue;
                    }
                    let gi = grid.index([win.0[0] + i, win.0[1] + j, win.0[2] + k]);
                    activity[gi] = (1.0 - frac[w]) * activity[gi] + a as f32 * unit[w];
                    if frac[w] >= 0.5 && lesion_map[gi] == 0 {
                        lesion_map[gi] = id;
                        voxels += 1;
                    }
                }
            }
        }
        if lesion_map[c] != id {
            if lesion_map[c] == 0 {
                voxels += 1;
            }
            lesion_map[c] = id;
        }
        let host_source = if seg_label[c] > 0 {
            classes
                .get(&seg_label[c])
                .cloned()
                .unwrap_or_else(|| format!("label {}", seg_label[c]))
        } else {
            "ct".to_string()
        };
        lesions.push(HybridLesion {
            id,
            role,
            class_id,
            class_name: class.to_string(),
            host: site.name().to_string(),
            host_source,
            centre_lps: centre,
            centre_voxel: grid.coords(c),
            radius_mm: radius,
            target_suv_max: target,
            concentration_suv: a,
            host_concentration_suv: host_conc,
            pet_voxels: voxels,
            ct_appearance: ct_appearance.to_string(),
            ct_hu_shift,
        });
        plans.push(plan);
    }

    // PSF blur and noise.
    let plane = nx * ny;
    activity
        .chunks_mut(plane)
        .for_each(|p| blur_plane(p, nx, ny, &kernels[0], &kernels[1]));
    let clean = blur_stack(&activity, plane, &kernels[2]);
    let mut pet = pet_noise(
        &clean,
        [nx, ny, nz],
        protocol.noise_alpha as f32,
        [0.7, 0.7, 0.5],
        spec.seed,
    );
    let calibration = protocol.suv_calibration as f32;
    pet.iter_mut().for_each(|v| *v *= calibration);

    let mut structures: Vec<u16> = vc.iter().map(|v| v.structure).collect();
    // Lesion voxels carry their lesion's class, as the phantom's do (a node's host is its
    // nodal station there).
    for (i, &l) in lesion_map.iter().enumerate() {
        if l > 0 {
            structures[i] = lesions[l as usize - 1].class_id as u16 + 1;
        }
    }

    let roles: Vec<Role> = lesions.iter().map(|l| l.role).collect();
    let stage = truth::stage(&roles, false);
    let mut tissues = BTreeMap::new();
    for v in &vc {
        tissues
            .entry(format!("{:?}", v.tissue))
            .or_insert_with(|| conc_of(v.tissue));
    }
    let info = HybridInfo {
        subject: format!("hybrid-{}-{:05}", spec.tracer.name(), spec.seed),
        tracer: spec.tracer,
        lesion_classes: lesions.iter().map(|l| l.class_id).collect(),
        stage: BTreeMap::from([
            ("n".to_string(), stage.mi_n.to_string()),
            ("m".to_string(), stage.m_code()),
        ]),
        hybrid: true,
        seed: spec.seed,
        seg_slice_offset: spec.seg_slice_offset,
        pet_grid: "the CT's own grid (same dims, spacing, origin, direction)".into(),
        pet_units: "SUVbw (g/mL)".into(),
        protocol,
        tissues,
        lesions,
    };
    Ok(HybridStudy {
        pet: Volume::new(g, pet)?,
        ct: Volume::new(g, ct_hu)?,
        structures: Volume::new(g, structures)?,
        lesions: Volume::new(g, lesion_map)?,
        info,
    })
}

/// The lesion's unit-concentration activity (profile × covered share) and covered share per
/// voxel in a box around it: (activity, share, (box start, box dims)).
#[allow(clippy::type_complexity)]
fn unit_lesion(
    plan: &LesionPlan,
    g: &Geometry,
    grid: &Grid,
    half_mm: f64,
) -> (Vec<f32>, Vec<f32>, ([usize; 3], [usize; 3])) {
    let c = g.patient_to_voxel(plan.centre);
    let mut start = [0usize; 3];
    let mut dims = [0usize; 3];
    for a in 0..3 {
        let h = (half_mm / grid.spacing[a]).ceil();
        let lo = (c[a] - h).floor().max(0.0) as usize;
        let hi = ((c[a] + h).ceil() as usize).min(grid.dims[a] - 1);
        start[a] = lo;
        dims[a] = hi - lo + 1;
    }
    const SUB: usize = 3;
    let n = dims[0] * dims[1] * dims[2];
    let mut unit = vec![0.0f32; n];
    let mut frac = vec![0.0f32; n];
    let r = plan.radii[0];
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                let (mut acc, mut inside) = (0.0f32, 0usize);
                for s in 0..SUB * SUB * SUB {
                    let o = [s % SUB, (s / SUB) % SUB, s / (SUB * SUB)]
                        .map(|v| (v as f64 + 0.5) / SUB as f64 - 0.5);
                    let p = g.voxel_to_patient([
                        (start[0] + i) as f64 + o[0],
                        (start[1] + j) as f64 + o[1],
                        (start[2] + k) as f64 + o[2],
                    ]);
                    let d2: f64 = (0..3).map(|a| (p[a] - plan.centre[a]).powi(2)).sum();
                    if d2 <= r * r {
                        acc += lesion_profile(plan, p);
                        inside += 1;
                    }
                }
                let w = i + dims[0] * (j + dims[1] * k);
                let per = (SUB * SUB * SUB) as f32;
                unit[w] = acc / per;
                frac[w] = inside as f32 / per;
            }
        }
    }
    (unit, frac, (start, dims))
}

fn blurred_max(unit: &[f32], dims: [usize; 3], k: &[Vec<f32>; 3]) -> f64 {
    let plane = dims[0] * dims[1];
    let mut v = unit.to_vec();
    v.chunks_mut(plane)
        .for_each(|p| blur_plane(p, dims[0], dims[1], &k[0], &k[1]));
    let v = blur_stack(&v, plane, &k[2]);
    v.iter().cloned().fold(0.0f32, f32::max) as f64
}

impl HybridStudy {
    /// Writes `pet.nii.gz` (SUV, float32), `ct.nii.gz` (int16 HU), `structures.nii.gz` and
    /// `lesions.nii.gz` (int16 labels) and `study.json` into `dir` (created if missing).
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<(), HybridError> {
        let dir = dir.as_ref();
        let io = |path: &Path, source| PhantomError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        nifti::write(dir.join("pet.nii.gz"), &self.pet)?;
        nifti::write(dir.join("ct.nii.gz"), &super::io::ct_as_stored(&self.ct)?)?;
        let labels = |v: &Volume<u16>| {
            let d: Vec<i16> = v
                .data()
                .iter()
                .map(|&l| l.min(i16::MAX as u16) as i16)
                .collect();
            Volume::new(*v.geometry(), d)
        };
        nifti::write(dir.join("structures.nii.gz"), &labels(&self.structures)?)?;
        nifti::write(dir.join("lesions.nii.gz"), &labels(&self.lesions)?)?;
        let path = dir.join("study.json");
        let json = serde_json::to_string_pretty(&self.info).map_err(PhantomError::from)?;
        std::fs::write(&path, json).map_err(|e| io(&path, e))?;
        Ok(())
    }
}
