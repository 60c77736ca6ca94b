//! Annotated studies on disk and their per-study cache (DESIGN S12).
//!
//! A study folder holds (all NIfTI, `.nii` or `.nii.gz`):
//! - `pet.nii.gz`: PET in SUV; `ct.nii.gz`: CT in HU (any grids, related through patient space);
//! - `structures.nii.gz`: on the PET grid, S6 class id + 1 of the structure at each voxel, 0 where
//!   none is labelled;
//! - `lesions.nii.gz`: on the PET grid, lesion number (1, 2, …) at each voxel, 0 outside lesions;
//! - `study.json`: `{"subject": "...", "tracer": "psma" | "fdg", "lesion_classes": [21, 16, …],
//!   "stage": {"n": "N1", "m": "M1b/u"}}` (lesion k's S6 class at index k − 1; `stage`, the true
//!   miN/miM, is optional and used by staging agreement; `"hybrid": true` marks a real CT with a
//!   synthesised PET, which evaluation reads and training refuses: real CTs are test anatomy).
//!
//! The phantom writes this layout; real annotated data converts to it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uptake::AnalyzeOptions;
use uptake::Tracer;
use uptake::grid::to_common_grid;
use uptake::regions::{Region, RegionParams, segment, subregions};
use uptake::volume::{Volume, nifti};

use crate::data::{GroundTruth, RegionRef, StudyCache, label_regions};

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("{path}: {message}")]
    Study { path: PathBuf, message: String },
    #[error(transparent)]
    Nifti(#[from] nifti::NiftiError),
    #[error(transparent)]
    Grid(#[from] uptake::grid::GridError),
    #[error(transparent)]
    Regions(#[from] uptake::regions::RegionsError),
    #[error(transparent)]
    Subregions(#[from] uptake::regions::SubregionsError),
}

/// The true stage of a study, when known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub n: String,
    pub m: String,
}

/// `study.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyInfo {
    pub subject: String,
    pub tracer: Tracer,
    pub lesion_classes: Vec<u32>,
    #[serde(default)]
    pub stage: Option<Stage>,
    /// A real CT with a synthesised PET (`uptake hybrid`): for evaluation only.
    #[serde(default)]
    pub hybrid: bool,
}

impl StudyInfo {
    /// Whether a model may learn from this study: not when it is hybrid, since real CTs are test
    /// anatomy and a model trained on them would be judged on what it has seen.
    pub fn check_trainable(&self) -> Result<(), String> {
        if self.hybrid {
            return Err(format!(
                "study {}: a hybrid study (real CT) is test anatomy, for evaluation only; \
                 training and cross-validation refuse it",
                self.subject
            ));
        }
        Ok(())
    }
}

/// A study with its ground truth.
pub struct AnnotatedStudy {
    pub info: StudyInfo,
    pub pet: Volume<f32>,
    pub ct: Volume<f32>,
    pub structures: Volume<u32>,
    pub lesions: Volume<u32>,
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf, StudyError> {
    for ext in ["nii.gz", "nii"] {
        let p = dir.join(format!("{stem}.{ext}"));
        if p.exists() {
            return Ok(p);
        }
    }
    Err(StudyError::Study {
        path: dir.to_path_buf(),
        message: format!("no {stem}.nii.gz or {stem}.nii"),
    })
}

/// A label map: non-negative integers stored in any NIfTI data type, on the PET grid.
fn read_labels(path: &Path, pet: &Volume<f32>) -> Result<Volume<u32>, StudyError> {
    let bad = |message: String| StudyError::Study {
        path: path.to_path_buf(),
        message,
    };
    let v = nifti::read_volume(path)?;
    if v.dims() != pet.dims() {
        return Err(bad(format!(
            "dims {:?} differ from the PET's {:?}: label maps live on the PET grid",
            v.dims(),
            pet.dims()
        )));
    }
    // Same dims on another grid (a shifted origin, a flipped axis) would put every label on the
    // wrong voxel: the affines must agree to within 0.01 mm.
    let (a, b) = (v.geometry().affine_lps(), pet.geometry().affine_lps());
    let off = (0..3)
        .flat_map(|r| (0..4).map(move |c| (a[r][c] - b[r][c]).abs()))
        .fold(0.0, f64::max);
    if off > 0.01 {
        return Err(bad(format!(
            "its grid differs from the PET's by up to {off:.3} mm (origin, spacing or \
             direction): label maps live on the PET grid"
        )));
    }
    let geometry = *v.geometry();
    let mut labels = Vec::with_capacity(v.data().len());
    for &x in v.data() {
        if !(x >= 0.0 && x.fract() == 0.0 && x <= u32::MAX as f32) {
            return Err(bad(format!("label {x} is not a non-negative integer")));
        }
        labels.push(x as u32);
    }
    Volume::new(geometry, labels).map_err(|e| bad(e.to_string()))
}

/// Reads a study folder.
pub fn load_study(dir: &Path) -> Result<AnnotatedStudy, StudyError> {
    let info_path = dir.join("study.json");
    let text = std::fs::read_to_string(&info_path).map_err(|e| StudyError::Study {
        path: info_path.clone(),
        message: e.to_string(),
    })?;
    let info: StudyInfo = serde_json::from_str(&text).map_err(|e| StudyError::Study {
        path: info_path.clone(),
        message: e.to_string(),
    })?;
    let pet = nifti::read_volume(find(dir, "pet")?)?;
    let ct = nifti::read_volume(find(dir, "ct")?)?;
    let structures = read_labels(&find(dir, "structures")?, &pet)?;
    let lesions = read_labels(&find(dir, "lesions")?, &pet)?;
    Ok(AnnotatedStudy {
        info,
        pet,
        ct,
        structures,
        lesions,
    })
}

/// Study folders under `root`: `root` itself when it holds `study.json`, else its sub-folders
/// that do, in name order.
pub fn study_dirs(root: &Path) -> Result<Vec<PathBuf>, StudyError> {
    if root.join("study.json").exists() {
        return Ok(vec![root.to_path_buf()]);
    }
    let entries = std::fs::read_dir(root).map_err(|e| StudyError::Study {
        path: root.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("study.json").exists())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// What is computed once per study: 3 mm grids, the candidate regions and their labels. The
/// candidates are the analysis's own (`AnalyzeOptions::default()`): S4's regions (found with
/// `regions`), then the sub-regions of the second candidate stage, labelled on their own map.
pub fn cache_study(
    study: &AnnotatedStudy,
    regions: &RegionParams,
) -> Result<StudyCache, StudyError> {
    let (pet3, ct3) = to_common_grid(&study.pet, &study.ct)?;
    let (pet3, ct3) = crop_to_body(pet3, ct3);
    let segmentation = segment(&study.pet, regions)?;
    let refs = |regions: &mut dyn Iterator<Item = &Region>| -> Vec<RegionRef> {
        regions
            .map(|r| RegionRef {
                id: r.id,
                max_voxel: r.max_voxel,
                max_lps: r.max_lps,
                suv_max: r.suv_max,
            })
            .collect()
    };
    let truth = GroundTruth {
        structures: &study.structures,
        lesions: &study.lesions,
        lesion_classes: &study.info.lesion_classes,
    };
    let mut candidates = label_regions(
        &refs(&mut segmentation.regions.iter()),
        &segmentation.labels,
        &truth,
    );
    if let Some(params) = AnalyzeOptions::default().subregions {
        let sub = subregions(&study.pet, &segmentation, regions, &params)?;
        let sub_regions = refs(&mut sub.subregions.iter().map(|s| &s.region));
        candidates.extend(label_regions(&sub_regions, &sub.labels, &truth));
    }
    Ok(StudyCache {
        subject: study.info.subject.clone(),
        tracer: study.info.tracer,
        candidates,
        pet3,
        ct3,
    })
}

/// CT above this (HU) counts as body when cropping the cached grids.
const BODY_HU: f32 = -500.0;

/// Crops the common-grid volumes to the bounding box of the body (CT > −500 HU): a whole-body
/// 3 mm grid is mostly air, and a reformation reads outside the grid as PET 0 SUV and CT
/// −1000 HU, which is what air holds anyway (S5). Keeps memory per cached study small.
fn crop_to_body(pet3: Volume<f32>, ct3: Volume<f32>) -> (Volume<f32>, Volume<f32>) {
    let g = *ct3.geometry();
    let dims = g.dims();
    let mut lo = dims;
    let mut hi = [0usize; 3];
    for (i, &hu) in ct3.data().iter().enumerate() {
        if hu > BODY_HU {
            let c = g.coords(i);
            for a in 0..3 {
                lo[a] = lo[a].min(c[a]);
                hi[a] = hi[a].max(c[a]);
            }
        }
    }
    if (0..3).any(|a| lo[a] > hi[a]) {
        return (pet3, ct3);
    }
    let sub_dims = [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1];
    let origin = g.voxel_to_patient([lo[0] as f64, lo[1] as f64, lo[2] as f64]);
    let Ok(sub) = uptake::Geometry::new(sub_dims, g.spacing_mm(), origin, g.direction()) else {
        return (pet3, ct3);
    };
    let crop = |v: &Volume<f32>| -> Vec<f32> {
        let mut out = Vec::with_capacity(sub.len());
        for z in lo[2]..=hi[2] {
            for y in lo[1]..=hi[1] {
                let row = g.index(lo[0], y, z);
                out.extend_from_slice(&v.data()[row..row + sub_dims[0]]);
            }
        }
        out
    };
    match (Volume::new(sub, crop(&pet3)), Volume::new(sub, crop(&ct3))) {
        (Ok(p), Ok(c)) => (p, c),
        _ => (pet3, ct3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uptake::Geometry;

    #[test]
    fn hybrid_studies_are_read_but_not_trained_on() {
        let json = |extra: &str| {
            format!(r#"{{"subject": "s1", "tracer": "psma", "lesion_classes": [21]{extra}}}"#)
        };
        let plain: StudyInfo = serde_json::from_str(&json("")).unwrap();
        assert!(!plain.hybrid);
        assert!(plain.check_trainable().is_ok());
        let hybrid: StudyInfo = serde_json::from_str(&json(r#", "hybrid": true"#)).unwrap();
        let err = hybrid.check_trainable().unwrap_err();
        assert!(
            err.contains("study s1") && err.contains("evaluation only"),
            "{err}"
        );
    }

    #[test]
    fn label_maps_must_share_the_pets_grid() {
        let dir = std::env::temp_dir().join(format!("uptake-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let g = Geometry::axis_aligned([4, 3, 2], [2.0, 2.0, 3.0], [10.0, 20.0, 30.0]).unwrap();
        let pet = Volume::filled(g, 1.0f32);
        let labels = |geometry: Geometry, name: &str| {
            let path = dir.join(name);
            nifti::write(&path, &Volume::filled(geometry, 2u8)).unwrap();
            read_labels(&path, &pet)
        };
        let same = labels(g, "same.nii").unwrap();
        assert!(same.data().iter().all(|&l| l == 2));
        // Same dims, other grids: an origin 3 mm away, another spacing, a flipped x axis.
        let mut flipped = g.direction();
        flipped[0][0] = -1.0;
        for (geometry, name) in [
            (
                Geometry::axis_aligned([4, 3, 2], [2.0, 2.0, 3.0], [13.0, 20.0, 30.0]),
                "shifted.nii",
            ),
            (
                Geometry::axis_aligned([4, 3, 2], [2.0, 2.0, 2.0], [10.0, 20.0, 30.0]),
                "spacing.nii",
            ),
            (
                Geometry::new([4, 3, 2], [2.0, 2.0, 3.0], [10.0, 20.0, 30.0], flipped),
                "flipped.nii",
            ),
        ] {
            let err = labels(geometry.unwrap(), name).unwrap_err().to_string();
            assert!(err.contains("differs from the PET's"), "{name}: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn crop_keeps_the_body_and_its_positions() {
        let g = Geometry::axis_aligned([6, 5, 4], [3.0; 3], [10.0, 20.0, 30.0]).unwrap();
        let mut ct = vec![-1000.0f32; g.len()];
        let mut pet = vec![0.0f32; g.len()];
        for (x, y, z) in [(1, 2, 1), (3, 3, 2)] {
            ct[g.index(x, y, z)] = 50.0;
            pet[g.index(x, y, z)] = 4.0 + x as f32;
        }
        let (p, c) = crop_to_body(Volume::new(g, pet).unwrap(), Volume::new(g, ct).unwrap());
        assert_eq!(c.dims(), [3, 2, 2]);
        let cg = c.geometry();
        assert_eq!(
            cg.voxel_to_patient([0.0; 3]),
            g.voxel_to_patient([1.0, 2.0, 1.0])
        );
        assert_eq!(p.data()[cg.index(0, 0, 0)], 5.0);
        assert_eq!(p.data()[cg.index(2, 1, 1)], 7.0);
        assert_eq!(c.data()[cg.index(1, 0, 0)], -1000.0);
    }
}
