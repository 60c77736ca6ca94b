//! Synthetic dual-tracer phantom (DESIGN S11): seeded, deterministic whole-body male
//! 68Ga-PSMA-11 and 18F-FDG PET/CT studies with full ground truth.
//!
//! The body is described once in continuous patient coordinates ([`anatomy`]) as labelled
//! primitives with a precedence order ([`body`]); a disease plan adds lesions attached to host
//! structures ([`disease`]); every image and label map is rasterised from that one description
//! ([`render`]), so the PET grid, the CT grid and the ground truth always agree. The same seed
//! gives the same patient for both tracers (only the disease and the uptake differ) and the
//! same bytes on every run.

pub mod anatomy;
pub mod body;
pub mod disease;
pub mod hybrid;
mod io;
pub mod physiology;
pub mod raster;
pub mod render;
pub mod scanner;
pub mod shape;
pub mod truth;

use serde::{Deserialize, Serialize};

pub use io::Manifest;
pub use truth::{TrueBonePattern, TrueStage, stage};

use body::Body;
use disease::{Avidity, DiseasePlan};
use physiology::Target;
use render::{Scene, Select, Stream, Window, rng};
use scanner::{AxialCoverage, CtProtocol, FieldOfView, PetProtocol};
use uptake::classes::{Role, v1_classes};
use uptake::tracer::Tracer;
use uptake::volume::{Geometry, Volume, VolumeError};

/// Why the phantom could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum PhantomError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    Nifti(#[from] uptake::volume::nifti::NiftiError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode the manifest: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0} labels do not fit the 16-bit label maps")]
    TooManyLabels(usize),
    #[error("unknown preset {0:?}: expected small or clinical")]
    UnknownPreset(String),
    #[error("the anatomy has no {0:?}, a landmark of the field of view")]
    MissingLandmark(String),
}

/// Grid sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Coarse grids for tests and training: PET 8.15 × 8.15 × 6 mm, CT 3.9 × 3.9 × 6 mm.
    Small,
    /// Clinical grids: PET 4.07 × 4.07 × 3 mm (168²), CT 0.98 × 0.98 × 3 mm (512²).
    Clinical,
}

impl std::str::FromStr for Preset {
    type Err = PhantomError;
    fn from_str(s: &str) -> Result<Self, PhantomError> {
        match s.to_ascii_lowercase().as_str() {
            "small" => Ok(Preset::Small),
            "clinical" => Ok(Preset::Clinical),
            other => Err(PhantomError::UnknownPreset(other.to_string())),
        }
    }
}

/// Grid parameters of a preset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GridConfig {
    pub pet_spacing_mm: [f64; 3],
    pub pet_matrix: usize,
    pub ct_spacing_mm: [f64; 3],
    pub ct_matrix: usize,
    /// Fine PET sub-voxels per PET voxel along each axis (activity is rendered and blurred on
    /// that grid before averaging: partial volume and PSF in one step).
    pub pet_fine: [usize; 3],
    /// Sub-slices averaged per CT slice (slice-thickness partial volume).
    pub ct_z_samples: usize,
}

impl Preset {
    pub fn grids(self) -> GridConfig {
        match self {
            Preset::Small => GridConfig {
                pet_spacing_mm: [8.1456, 8.1456, 6.0],
                pet_matrix: 84,
                ct_spacing_mm: [3.90625, 3.90625, 6.0],
                ct_matrix: 128,
                pet_fine: [3, 3, 2],
                ct_z_samples: 3,
            },
            Preset::Clinical => GridConfig {
                pet_spacing_mm: [4.0728, 4.0728, 3.0],
                pet_matrix: 168,
                ct_spacing_mm: [0.9765625, 0.9765625, 3.0],
                ct_matrix: 512,
                pet_fine: [2, 2, 2],
                ct_z_samples: 3,
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::Small => "small",
            Preset::Clinical => "clinical",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhantomSpec {
    pub tracer: Tracer,
    pub seed: u64,
    pub preset: Preset,
    /// The axial range and CT diameter (specs written before the choice were whole-body).
    #[serde(default)]
    pub coverage: Coverage,
}

/// Which field of view a study is imaged over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Coverage {
    /// Skull vertex to mid-thigh on a 500 mm CT: every organ in view (demo, tests).
    #[default]
    WholeBody,
    /// Drawn by seed with the scanner (`scanner::FieldOfView`): truncated axial ranges and
    /// smaller CT diameters, as clinical studies come.
    Drawn,
}

impl std::str::FromStr for Coverage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "whole-body" => Ok(Coverage::WholeBody),
            "drawn" => Ok(Coverage::Drawn),
            other => Err(format!(
                "unknown coverage {other:?}: expected whole-body or drawn"
            )),
        }
    }
}

/// One label value of the structure maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructureInfo {
    /// Value in the structure label maps (0 = outside the body).
    pub label: u16,
    pub name: String,
    /// S6 location class, or `None` for what is not a location (outside air, airways, gas).
    pub class_id: Option<u32>,
    pub class_name: Option<String>,
    pub tissue: String,
    /// Mean HU of this tissue in this patient (before texture, blur and noise).
    pub hu: f32,
    /// Tracer concentration rendered (SUV, before blur).
    pub concentration_suv: f32,
}

/// Ground truth of one lesion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lesion {
    /// Value in the lesion label maps.
    pub id: u16,
    pub kind: String,
    pub site: String,
    pub class_id: u32,
    pub class_name: String,
    pub role: Role,
    /// Label value and name of the host structure.
    pub host_label: u16,
    pub host_name: String,
    /// Exact volume of the lesion ellipsoid (mL).
    pub volume_ml: f64,
    pub radii_mm: [f64; 3],
    pub centre_lps: [f64; 3],
    /// Noise-free SUVmax and SUVmean over the lesion's PET voxels (blur and background
    /// included), and the SUVmax of the noisy image there.
    pub suv_max: f64,
    pub suv_mean: f64,
    pub suv_max_noisy: f64,
    /// Concentration at the lesion centre before blur (SUV).
    pub concentration_suv: f64,
    /// PET voxel (x, y, z) of the noise-free SUVmax.
    pub peak_voxel: [usize; 3],
    pub pet_voxels: usize,
    pub ct_voxels: usize,
    pub hu: f32,
    pub necrotic: bool,
    pub next_to: Option<String>,
}

/// Physiological uptake actually rendered in one structure (noise-free, lesions removed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Physiological {
    pub label: u16,
    pub name: String,
    pub class_id: Option<u32>,
    pub pet_voxels: usize,
    pub suv_max: f64,
    pub suv_mean: f64,
    /// Max and mean over voxels whose six neighbours carry the same label: away from the
    /// borders, where blur from hot neighbours (kidneys next to liver and spleen) spills in.
    /// This is what a reader's organ VOI measures.
    pub suv_max_core: Option<f64>,
    pub suv_mean_core: Option<f64>,
    pub suv_max_noisy: f64,
    /// "suv_max" or "suv_mean" when the generator aimed at a drawn value, with that value and
    /// the reference mean ± SD it was drawn from.
    pub target: Option<(String, f64)>,
    pub reference: Option<(f64, f64)>,
}

/// A generated study with its ground truth.
#[derive(Debug, Clone)]
pub struct Study {
    pub spec: PhantomSpec,
    /// SUV (body weight) on the native PET grid.
    pub pet: Volume<f32>,
    /// HU on the native CT grid.
    pub ct: Volume<f32>,
    pub pet_structures: Volume<u16>,
    pub pet_lesions: Volume<u16>,
    pub ct_structures: Volume<u16>,
    pub ct_lesions: Volume<u16>,
    /// Index = label value.
    pub structures: Vec<StructureInfo>,
    pub lesions: Vec<Lesion>,
    pub truth: TrueStage,
    pub physiological: Vec<Physiological>,
    pub habitus: body::Habitus,
    pub scenario: String,
    pub diffuse_marrow: bool,
    pub pet_protocol: PetProtocol,
    pub ct_protocol: CtProtocol,
    pub field_of_view: FieldOfView,
}

/// The anatomy and the disease plan of a spec, without rendering (fast: what a cohort's
/// statistics need).
pub fn plan(spec: &PhantomSpec) -> (Body, DiseasePlan) {
    let body = anatomy::build(&mut rng(spec.seed, Stream::ANATOMY));
    let disease = disease::plan(&body, spec.tracer, &mut rng(spec.seed, Stream::DISEASE));
    (body, disease)
}

/// The stage of every lesion of a disease plan, without rendering (cohort statistics). A
/// rendered study's `truth` leaves out lesions beyond the PET field of view, which this cannot
/// know; they are rare (the centres of 59 of 23,287 planned lesions of seeds 1–2000, both tracers).
pub fn plan_truth(disease: &DiseasePlan) -> TrueStage {
    let roles: Vec<Role> = disease.lesions.iter().map(|l| l.role).collect();
    stage(&roles, disease.diffuse_marrow)
}

/// PET and CT grids of a patient over a field of view, centred in x and y. The whole-body
/// range runs from the skull vertex (plus margin) to mid-thigh; the others from the landmarks
/// `AxialCoverage` names, each end shifted as drawn and kept inside the whole-body range.
pub fn geometries(
    preset: Preset,
    body: &Body,
    fov: &FieldOfView,
) -> Result<(Geometry, Geometry), PhantomError> {
    let g = preset.grids();
    let h = body.habitus.height_mm / 1750.0;
    let (vertex, thigh) = (15.0 * h, (640.0 - 1750.0) * h);
    let z = |name: &str| {
        let s = body.structure_id(name);
        let mut b = body.primitives.iter().filter(|p| Some(p.structure) == s);
        b.next()
            .map(|p| b.fold(p.bounds, |a, p| a.union(p.bounds)))
            .map(|b| (b.lo[2], b.hi[2]))
            .ok_or_else(|| PhantomError::MissingLandmark(name.to_string()))
    };
    let (landmark_top, landmark_bottom) = match fov.axial {
        AxialCoverage::VertexToThigh => (vertex, thigh),
        AxialCoverage::SkullBaseToThigh => (z("skull")?.0, thigh),
        // The bladder rests on the pubic symphysis; the common iliac nodes lie at the crests.
        AxialCoverage::ChestAbdomenPelvis => (z("lung_left")?.1, z("bladder")?.0),
        AxialCoverage::AbdomenPelvis => (z("liver")?.1, z("bladder")?.0 - 40.0),
        AxialCoverage::Pelvis => (z("ln_common_iliac")?.1, z("bladder")?.0 - 60.0),
    };
    let top = (landmark_top + fov.top_shift_mm).min(vertex + FieldOfView::SHIFT_MM);
    let bottom = (landmark_bottom + fov.bottom_shift_mm).max(thigh);
    // NIfTI stores spacing and origin as f32: grids use f32-exact values so that a study
    // read back from its files has exactly the geometry it was generated on.
    let f32_exact = |v: f64| v as f32 as f64;
    let make = |spacing: [f64; 3], matrix: usize| {
        let spacing = spacing.map(f32_exact);
        let nz = ((top - bottom) / spacing[2]).ceil() as usize + 1;
        let half = (matrix as f64 - 1.0) / 2.0;
        Geometry::axis_aligned(
            [matrix, matrix, nz],
            spacing,
            [
                f32_exact(-half * spacing[0]),
                f32_exact(-half * spacing[1]),
                f32_exact(top - (nz - 1) as f64 * spacing[2]),
            ],
        )
    };
    let ct_pixel = fov.ct_diameter_mm / g.ct_matrix as f64;
    Ok((
        make(g.pet_spacing_mm, g.pet_matrix)?,
        make([ct_pixel, ct_pixel, g.ct_spacing_mm[2]], g.ct_matrix)?,
    ))
}

fn margin_vox(g: &Geometry, fwhm: f64) -> [usize; 3] {
    let sigma = fwhm / (8.0 * 2f64.ln()).sqrt();
    g.spacing_mm()
        .map(|s| (3.0 * sigma / s).ceil() as usize + 1)
}

/// Places a window's values into a full volume buffer.
fn place<T: Copy>(full: &mut [T], dims: [usize; 3], win: &Window, values: &[T]) {
    let n = win.count;
    for k in 0..n[2] {
        for j in 0..n[1] {
            let src = (k * n[1] + j) * n[0];
            let dst = win.start[0] + dims[0] * (win.start[1] + j + dims[1] * (win.start[2] + k));
            full[dst..dst + n[0]].copy_from_slice(&values[src..src + n[0]]);
        }
    }
}

/// Generates one study.
pub fn generate(spec: &PhantomSpec) -> Result<Study, PhantomError> {
    let (body, disease) = plan(spec);
    let uptake = physiology::draw(&body, spec.tracer, &mut rng(spec.seed, Stream::UPTAKE));
    let hu = physiology::draw_hu(&body, &mut rng(spec.seed, Stream::HU));
    let n_labels = body.structures.len() + 1;
    if n_labels > i16::MAX as usize || disease.lesions.len() >= i16::MAX as usize {
        return Err(PhantomError::TooManyLabels(
            n_labels.max(disease.lesions.len()),
        ));
    }
    let grids = spec.preset.grids();
    // The scanners, from a stream of their own: PET, CT, then the field of view.
    let mut scanner_rng = rng(spec.seed, Stream::SCANNER);
    let pet_protocol = PetProtocol::draw(spec.tracer, &mut scanner_rng);
    let ct_protocol = CtProtocol::draw(&mut scanner_rng);
    let field_of_view = match spec.coverage {
        Coverage::WholeBody => FieldOfView::default(),
        Coverage::Drawn => FieldOfView::draw(&mut scanner_rng),
    };
    let (pet_g, ct_g) = geometries(spec.preset, &body, &field_of_view)?;
    let fwhm = pet_protocol.psf_fwhm_mm;
    let margin = margin_vox(&pet_g, fwhm);

    let mut scene = Scene::new(&body, &disease.lesions);
    scene.texture_seed = rand::Rng::random(&mut rng(spec.seed, Stream::TEXTURE));
    let mut concentration: Vec<f64> = uptake.iter().map(|u| u.concentration).collect();
    if disease.diffuse_marrow {
        for (s, st) in body.structures.iter().enumerate() {
            if st.tissue == body::Tissue::TrabecularBone || st.tissue == body::Tissue::YellowMarrow
            {
                concentration[s] *= disease.marrow_factor;
            }
        }
    }
    for (i, p) in body.primitives.iter().enumerate() {
        scene.prim_hu[i] = hu[p.structure].hu + p.hu_offset;
        scene.prim_texture[i] = hu[p.structure].texture;
        scene.prim_inclusion[i] = hu[p.structure].inclusion;
    }

    // Calibrate structures whose rendered SUVmax is prescribed by their recovery coefficient:
    // the rendered image is linear in each structure's concentration.
    for (s, u) in uptake.iter().enumerate() {
        if let Target::SuvMax(target) = u.target {
            let Some(bounds) = body
                .primitives
                .iter()
                .filter(|p| p.structure == s)
                .map(|p| p.bounds)
                .reduce(shape::Bounds::union)
            else {
                continue;
            };
            let Some(win) = Window::covering(&pet_g, bounds, margin, grids.pet_fine) else {
                continue;
            };
            let unit = render::render_pet(&scene, &pet_g, win, fwhm, Select::Structure(s));
            let rc = unit.suv.iter().cloned().fold(0.0f32, f32::max) as f64;
            if rc > 1e-3 {
                concentration[s] = target / rc;
            }
        }
    }
    for (i, p) in body.primitives.iter().enumerate() {
        scene.prim_activity[i] = (concentration[p.structure] * p.activity as f64) as f32;
    }

    // Lesion concentrations: reach the planned SUVmax over the host background it replaces.
    let mut unit_lesions = Vec::with_capacity(disease.lesions.len());
    for (i, l) in disease.lesions.iter().enumerate() {
        let win = Window::covering(&pet_g, scene.lesion_prims[i].bounds, margin, grids.pet_fine);
        let unit = win.map(|w| render::render_pet(&scene, &pet_g, w, fwhm, Select::Lesion(i)));
        let rc = unit
            .as_ref()
            .map(|u| u.suv.iter().cloned().fold(0.0f32, f32::max) as f64)
            .unwrap_or(1.0)
            .max(1e-3);
        let host = body
            .primitives
            .iter()
            .rposition(|p| p.structure == l.host && p.shape.contains(l.centre))
            .map(|p| scene.prim_activity[p] as f64)
            .unwrap_or(concentration[l.host]);
        let target = match l.avidity {
            Avidity::SuvMax(v) => v,
            Avidity::TimesHost(f) => (f * host).max(1.5),
        };
        let a = ((target - host * (1.0 - rc)) / rc).max(1.1 * host).max(0.5);
        scene.lesion_activity[i] = a as f32;
        unit_lesions.push(unit);
    }

    // The full PET.
    let pet_dims = pet_g.dims();
    let mut clean = vec![0.0f32; pet_g.len()];
    let mut pet_structures = vec![0u16; pet_g.len()];
    let mut pet_lesions = vec![0u16; pet_g.len()];
    if let Some(win) = Window::covering(&pet_g, body.bounds(), margin, grids.pet_fine) {
        let full = render::render_pet(&scene, &pet_g, win, fwhm, Select::All);
        place(&mut clean, pet_dims, &win, &full.suv);
        place(&mut pet_structures, pet_dims, &win, &full.structures);
        place(&mut pet_lesions, pet_dims, &win, &full.lesions);
    }
    ensure_every_lesion_labelled(&pet_g, &disease, &mut pet_lesions, &mut pet_structures);

    // Physiological image: the full image minus each lesion's own blurred contribution.
    let mut physiological_suv = clean.clone();
    for (i, unit) in unit_lesions.iter().enumerate() {
        if let Some(u) = unit {
            let mut scaled: Vec<f32> = u.suv.iter().map(|v| v * scene.lesion_activity[i]).collect();
            let mut current = vec![0.0f32; scaled.len()];
            extract(&physiological_suv, pet_dims, &u.window, &mut current);
            for (s, c) in scaled.iter_mut().zip(&current) {
                *s = (c - *s).max(0.0);
            }
            place(&mut physiological_suv, pet_dims, &u.window, &scaled);
        }
    }

    // Heavier patients give noisier images.
    let alpha = (pet_protocol.noise_alpha * (body.habitus.weight_kg / 75.0).sqrt()) as f32;
    let corr = [0.7, 0.7, 0.5];
    let mut pet = render::pet_noise(&clean, pet_dims, alpha, corr, spec.seed);
    let calibration = pet_protocol.suv_calibration as f32;
    pet.iter_mut().for_each(|v| *v *= calibration);

    // 17 HU per 0.98 mm pixel for an average build: 11–12 on 3 mm voxels, as the real test
    // CT's organs show.
    let habitus = body.habitus.width_scale * body.habitus.depth_scale;
    let ct_noise = (17.0 * habitus.powf(1.5) * ct_protocol.noise_factor) as f32;
    let mut ct_img = render::render_ct(&scene, &ct_g, grids.ct_z_samples, ct_noise, spec.seed);
    let (scale, offset) = (ct_protocol.hu_scale as f32, ct_protocol.hu_offset as f32);
    // Scale above water only: the daily air and water calibration pins both, while dense
    // tissue's HU drifts with the beam's energy.
    ct_img
        .hu
        .iter_mut()
        .for_each(|h| *h += (scale - 1.0) * h.max(0.0) + offset);
    let mut ct_lesions = ct_img.lesions;
    let mut ct_structures = ct_img.structures;
    ensure_every_lesion_labelled(&ct_g, &disease, &mut ct_lesions, &mut ct_structures);

    let classes = v1_classes();
    let mut structures = vec![StructureInfo {
        label: 0,
        name: "outside_body".into(),
        class_id: None,
        class_name: None,
        tissue: "Air".into(),
        hu: -1000.0,
        concentration_suv: 0.0,
    }];
    for (s, st) in body.structures.iter().enumerate() {
        structures.push(StructureInfo {
            label: (s + 1) as u16,
            name: st.name.clone(),
            class_id: st.class_id,
            class_name: st.class_id.map(|c| classes[c as usize].name.clone()),
            tissue: format!("{:?}", st.tissue),
            hu: hu[s].hu,
            concentration_suv: concentration[s] as f32,
        });
    }

    let lesions = lesion_records(
        &disease,
        &scene,
        &structures,
        (&clean, &pet, &pet_lesions),
        &pet_g,
        &ct_lesions,
    );
    let physiological = physiological_records(
        &structures,
        &uptake,
        (&physiological_suv, &pet, &pet_structures, &pet_lesions),
        pet_dims,
    );
    // The stage an expert reads from the scan: a lesion beyond the PET field of view (low in a
    // femur, below mid-thigh) is in the body but not in the image.
    let roles: Vec<Role> = lesions
        .iter()
        .filter(|l| l.pet_voxels > 0)
        .map(|l| l.role)
        .collect();
    let truth = stage(&roles, disease.diffuse_marrow);

    Ok(Study {
        spec: *spec,
        pet: Volume::new(pet_g, pet)?,
        ct: Volume::new(ct_g, ct_img.hu)?,
        pet_structures: Volume::new(pet_g, pet_structures)?,
        pet_lesions: Volume::new(pet_g, pet_lesions)?,
        ct_structures: Volume::new(ct_g, ct_structures)?,
        ct_lesions: Volume::new(ct_g, ct_lesions)?,
        structures,
        lesions,
        truth,
        physiological,
        habitus: body.habitus.clone(),
        scenario: disease.scenario.to_string(),
        diffuse_marrow: disease.diffuse_marrow,
        pet_protocol,
        ct_protocol,
        field_of_view,
    })
}

fn extract<T: Copy>(full: &[T], dims: [usize; 3], win: &Window, out: &mut [T]) {
    let n = win.count;
    for k in 0..n[2] {
        for j in 0..n[1] {
            let dst = (k * n[1] + j) * n[0];
            let src = win.start[0] + dims[0] * (win.start[1] + j + dims[1] * (win.start[2] + k));
            out[dst..dst + n[0]].copy_from_slice(&full[src..src + n[0]]);
        }
    }
}

/// A lesion smaller than a voxel may own no voxel by majority; it then gets the voxel that
/// holds its centre, so every lesion is findable in the label map.
fn ensure_every_lesion_labelled(
    g: &Geometry,
    disease: &DiseasePlan,
    lesions: &mut [u16],
    structures: &mut [u16],
) {
    let mut present = vec![false; disease.lesions.len() + 1];
    for &l in lesions.iter() {
        present[l as usize] = true;
    }
    let dims = g.dims();
    for l in &disease.lesions {
        if present[l.id as usize] {
            continue;
        }
        let v = g.patient_to_voxel(l.centre).map(|c| c.round());
        if (0..3).all(|a| v[a] >= 0.0 && (v[a] as usize) < dims[a]) {
            let idx = g.index(v[0] as usize, v[1] as usize, v[2] as usize);
            lesions[idx] = l.id;
            structures[idx] = (l.host + 1) as u16;
        }
    }
}

fn lesion_records(
    disease: &DiseasePlan,
    scene: &Scene,
    structures: &[StructureInfo],
    (clean, noisy, labels): (&[f32], &[f32], &[u16]),
    pet_g: &Geometry,
    ct_labels: &[u16],
) -> Vec<Lesion> {
    let n = disease.lesions.len() + 1;
    let mut max = vec![0.0f32; n];
    let mut peak = vec![0usize; n];
    let mut sum = vec![0.0f64; n];
    let mut count = vec![0usize; n];
    let mut noisy_max = vec![0.0f32; n];
    for (i, &l) in labels.iter().enumerate() {
        if l == 0 {
            continue;
        }
        let l = l as usize;
        if count[l] == 0 || clean[i] > max[l] {
            max[l] = clean[i];
            peak[l] = i;
        }
        noisy_max[l] = noisy_max[l].max(noisy[i]);
        sum[l] += clean[i] as f64;
        count[l] += 1;
    }
    let mut ct_count = vec![0usize; n];
    for &l in ct_labels {
        ct_count[l as usize] += 1;
    }
    let classes = v1_classes();
    disease
        .lesions
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let id = l.id as usize;
            let host = &structures[l.host + 1];
            Lesion {
                id: l.id,
                kind: l.kind.to_string(),
                site: l.site.clone(),
                class_id: l.class_id,
                class_name: classes[l.class_id as usize].name.clone(),
                role: l.role,
                host_label: host.label,
                host_name: host.name.clone(),
                volume_ml: l.volume_ml(),
                radii_mm: l.radii,
                centre_lps: l.centre,
                suv_max: max[id] as f64,
                suv_mean: if count[id] > 0 {
                    sum[id] / count[id] as f64
                } else {
                    0.0
                },
                suv_max_noisy: noisy_max[id] as f64,
                concentration_suv: scene.lesion_activity[i] as f64,
                peak_voxel: pet_g.coords(peak[id]),
                pet_voxels: count[id],
                ct_voxels: ct_count[id],
                hu: l.hu,
                necrotic: l.necrotic,
                next_to: l.next_to.map(str::to_string),
            }
        })
        .collect()
}

fn physiological_records(
    structures: &[StructureInfo],
    uptake: &[physiology::StructureUptake],
    (phys, noisy, labels, lesions): (&[f32], &[f32], &[u16], &[u16]),
    dims: [usize; 3],
) -> Vec<Physiological> {
    let n = structures.len();
    let mut max = vec![0.0f32; n];
    let mut noisy_max = vec![0.0f32; n];
    let mut sum = vec![0.0f64; n];
    let mut count = vec![0usize; n];
    let mut core_sum = vec![0.0f64; n];
    let mut core_max = vec![0.0f32; n];
    let mut core_count = vec![0usize; n];
    let [nx, ny, nz] = dims;
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let i = x + nx * (y + ny * z);
                let s = labels[i] as usize;
                if s == 0 || lesions[i] != 0 {
                    continue;
                }
                max[s] = max[s].max(phys[i]);
                noisy_max[s] = noisy_max[s].max(noisy[i]);
                sum[s] += phys[i] as f64;
                count[s] += 1;
                let interior =
                    x > 0 && y > 0 && z > 0 && x + 1 < nx && y + 1 < ny && z + 1 < nz && {
                        let plane = nx * ny;
                        [i - 1, i + 1, i - nx, i + nx, i - plane, i + plane]
                            .iter()
                            .all(|&j| labels[j] as usize == s && lesions[j] == 0)
                    };
                if interior {
                    core_max[s] = core_max[s].max(phys[i]);
                    core_sum[s] += phys[i] as f64;
                    core_count[s] += 1;
                }
            }
        }
    }
    structures
        .iter()
        .skip(1)
        .filter(|st| count[st.label as usize] > 0)
        .map(|st| {
            let s = st.label as usize;
            let u = &uptake[s - 1];
            Physiological {
                label: st.label,
                name: st.name.clone(),
                class_id: st.class_id,
                pet_voxels: count[s],
                suv_max: max[s] as f64,
                suv_mean: sum[s] / count[s] as f64,
                suv_max_core: (core_count[s] > 0).then(|| core_max[s] as f64),
                suv_mean_core: (core_count[s] > 0).then(|| core_sum[s] / core_count[s] as f64),
                suv_max_noisy: noisy_max[s] as f64,
                target: match u.target {
                    Target::Concentration => None,
                    Target::SuvMax(v) => Some(("suv_max".to_string(), v)),
                    Target::SuvMean(v) => Some(("suv_mean".to_string(), v)),
                },
                reference: u.reference,
            }
        })
        .collect()
}
