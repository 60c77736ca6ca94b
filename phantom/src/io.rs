//! Writing a study: NIfTI volumes (PET in SUV, CT in HU, label maps) and a JSON manifest.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Lesion, PhantomError, Physiological, StructureInfo, Study, TrueStage};
use uptake::volume::nifti;
use uptake::volume::{Geometry, Volume};

/// A grid as the manifest states it (LPS, identity direction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridInfo {
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    pub origin_lps_mm: [f64; 3],
    pub orientation: String,
}

impl From<&Geometry> for GridInfo {
    fn from(g: &Geometry) -> Self {
        GridInfo {
            dims: g.dims(),
            spacing_mm: g.spacing_mm(),
            origin_lps_mm: g.origin_mm(),
            orientation: g.orientation_code(),
        }
    }
}

/// Everything about a study that is not voxels, as written to `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub generator: String,
    pub tracer: uptake::tracer::Tracer,
    pub seed: u64,
    pub preset: super::Preset,
    /// File name of each volume in the study folder.
    pub files: Files,
    pub pet_grid: GridInfo,
    pub ct_grid: GridInfo,
    pub pet_units: String,
    pub ct_units: String,
    pub psf_fwhm_mm: f64,
    /// The scanners the study was imaged with (`scanner`).
    pub pet_protocol: super::scanner::PetProtocol,
    pub ct_protocol: super::scanner::CtProtocol,
    /// Manifests written before the field-of-view draw covered vertex to mid-thigh.
    #[serde(default)]
    pub field_of_view: super::scanner::FieldOfView,
    pub scenario: String,
    pub truth: TrueStage,
    pub diffuse_marrow: bool,
    pub patient: serde_json::Value,
    pub structures: Vec<StructureInfo>,
    pub lesions: Vec<Lesion>,
    pub physiological: Vec<Physiological>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Files {
    pub pet: String,
    pub ct: String,
    pub pet_structures: String,
    pub pet_lesions: String,
    pub ct_structures: String,
    pub ct_lesions: String,
}

impl Default for Files {
    fn default() -> Self {
        Files {
            pet: "pet.nii.gz".into(),
            ct: "ct.nii.gz".into(),
            pet_structures: "pet_structures.nii.gz".into(),
            pet_lesions: "pet_lesions.nii.gz".into(),
            ct_structures: "ct_structures.nii.gz".into(),
            ct_lesions: "ct_lesions.nii.gz".into(),
        }
    }
}

/// Label maps are stored as int16 (NIfTI-1 has no common unsigned 16-bit reader support);
/// `generate` guarantees fewer than 32768 labels.
fn labels_as_i16(v: &Volume<u16>) -> Result<Volume<i16>, PhantomError> {
    let data = v
        .data()
        .iter()
        .map(|&l| l.min(i16::MAX as u16) as i16)
        .collect();
    Ok(Volume::new(*v.geometry(), data)?)
}

impl Study {
    pub fn manifest(&self) -> Manifest {
        Manifest {
            format: "uptake-phantom/1".into(),
            generator: format!("uptake {}", uptake::VERSION),
            tracer: self.spec.tracer,
            seed: self.spec.seed,
            preset: self.spec.preset,
            files: Files::default(),
            pet_grid: self.pet.geometry().into(),
            ct_grid: self.ct.geometry().into(),
            pet_units: "SUVbw (g/mL)".into(),
            ct_units: "HU".into(),
            psf_fwhm_mm: self.pet_protocol.psf_fwhm_mm,
            pet_protocol: self.pet_protocol,
            ct_protocol: self.ct_protocol,
            field_of_view: self.field_of_view,
            scenario: self.scenario.clone(),
            truth: self.truth.clone(),
            diffuse_marrow: self.diffuse_marrow,
            patient: serde_json::to_value(&self.habitus).unwrap_or(serde_json::Value::Null),
            structures: self.structures.clone(),
            lesions: self.lesions.clone(),
            physiological: self.physiological.clone(),
        }
    }

    /// Writes the volumes and `manifest.json` into `dir` (created if missing). CT is stored as
    /// int16 HU (rounded), as scanners store it.
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<(), PhantomError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| PhantomError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let files = Files::default();
        nifti::write(dir.join(&files.pet), &self.pet)?;
        nifti::write(dir.join(&files.ct), &ct_as_stored(&self.ct)?)?;
        nifti::write(
            dir.join(&files.pet_structures),
            &labels_as_i16(&self.pet_structures)?,
        )?;
        nifti::write(
            dir.join(&files.pet_lesions),
            &labels_as_i16(&self.pet_lesions)?,
        )?;
        nifti::write(
            dir.join(&files.ct_structures),
            &labels_as_i16(&self.ct_structures)?,
        )?;
        nifti::write(
            dir.join(&files.ct_lesions),
            &labels_as_i16(&self.ct_lesions)?,
        )?;
        let path = dir.join("manifest.json");
        let json = serde_json::to_string_pretty(&self.manifest())?;
        std::fs::write(&path, json).map_err(|source| PhantomError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

/// A CT as scanners store it: int16 HU, rounded, within the 12-bit range −1024…3071.
pub(crate) fn ct_as_stored(ct: &Volume<f32>) -> Result<Volume<i16>, uptake::VolumeError> {
    let hu = ct
        .data()
        .iter()
        .map(|&h| h.round().clamp(-1024.0, 3071.0) as i16)
        .collect();
    Volume::new(*ct.geometry(), hu)
}
