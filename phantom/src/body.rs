//! The body as data: structures (what a voxel is) and primitives (where it is), in precedence
//! order. Later primitives win where they overlap, so organs are painted over the fat that
//! surrounds them and lesions over their host.

use super::shape::{Bounds, Shape, Vec3};

/// Index of a structure in [`Body::structures`]; its label value is `index + 1` (0 = outside
/// the body).
pub type StructureId = usize;

/// What a structure is made of, for CT (HU) and for the tracer physiology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tissue {
    Air,
    Lung,
    Fat,
    Muscle,
    /// Soft tissue of no particular uptake (skin, connective tissue, eye, disc).
    Soft,
    Cartilage,
    CorticalBone,
    TrabecularBone,
    /// Fatty (yellow) marrow of the long-bone shafts.
    YellowMarrow,
    Teeth,
    BrainGrey,
    BrainWhite,
    DeepGrey,
    Cerebellum,
    Csf,
    SpinalCord,
    Lacrimal,
    Parotid,
    Submandibular,
    Sublingual,
    Tonsil,
    PharynxWall,
    Larynx,
    Thyroid,
    Myocardium,
    Blood,
    Artery,
    Vein,
    Liver,
    Gallbladder,
    Spleen,
    Pancreas,
    Adrenal,
    KidneyCortex,
    RenalPelvis,
    Ureter,
    Bladder,
    Prostate,
    ProstateBed,
    SeminalVesicle,
    Esophagus,
    Stomach,
    StomachContent,
    Duodenum,
    SmallBowel,
    Colon,
    Rectum,
    BowelGas,
    Ganglion,
    Node,
    BrownFat,
}

/// One labelled structure.
#[derive(Debug, Clone)]
pub struct StructureDef {
    pub name: String,
    /// S6 location class, `None` for non-locations (air in airways, bowel gas).
    pub class_id: Option<u32>,
    pub tissue: Tissue,
}

/// A shape painted with a structure's label; `activity` scales the structure's tracer
/// concentration locally (bowel and ureter segments differ along their length).
#[derive(Debug, Clone)]
pub struct Primitive {
    pub shape: Shape,
    pub structure: StructureId,
    pub activity: f32,
    /// HU offset of this piece relative to its structure (gas versus stool in the colon).
    pub hu_offset: f32,
    pub bounds: Bounds,
}

/// Per-patient build parameters that the rest of the generator needs to know.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Habitus {
    /// Standing height (mm).
    pub height_mm: f64,
    /// Trunk width and depth scale relative to the reference man.
    pub width_scale: f64,
    pub depth_scale: f64,
    /// Subcutaneous fat thickness at the flank (mm).
    pub fat_mm: f64,
    /// Bladder filling (0 = nearly empty, 1 = full).
    pub bladder_filling: f64,
    pub prostatectomy: bool,
    pub iv_contrast: bool,
    /// Patient weight estimated from the body model (kg), for the manifest.
    pub weight_kg: f64,
}

/// Places where lesions may grow, grouped by what they mean.
#[derive(Debug, Clone, Default)]
pub struct Sites {
    /// Lymph node stations: (station name, S6 class name, structure, centres of its normal nodes).
    pub node_stations: Vec<NodeStation>,
    /// Marrow primitives, their relative weight (how much bone they hold) and the bone's name.
    pub marrow: Vec<(usize, f64, String)>,
    /// Primitives of each organ that can host a metastasis, by structure name.
    pub organ_primitives: Vec<(StructureId, usize)>,
    /// Ureter primitives (for nodes next to the ureter).
    pub ureter: Vec<usize>,
    /// Prostate centre and radii (or the prostate bed after prostatectomy).
    pub prostate: (Vec3, Vec3),
}

#[derive(Debug, Clone)]
pub struct NodeStation {
    pub name: &'static str,
    pub class: &'static str,
    pub structure: StructureId,
    pub nodes: Vec<Vec3>,
}

/// The whole patient.
#[derive(Debug, Clone)]
pub struct Body {
    pub structures: Vec<StructureDef>,
    pub primitives: Vec<Primitive>,
    pub habitus: Habitus,
    pub sites: Sites,
}

impl Body {
    pub fn add_structure(
        &mut self,
        name: &str,
        class: Option<&str>,
        tissue: Tissue,
    ) -> StructureId {
        self.structures.push(StructureDef {
            name: name.to_string(),
            class_id: class.and_then(uptake::classes::v1_id),
            tissue,
        });
        self.structures.len() - 1
    }

    pub fn add(&mut self, structure: StructureId, shape: Shape, activity: f32) -> usize {
        self.add_with_hu(structure, shape, activity, 0.0)
    }

    pub fn add_with_hu(
        &mut self,
        structure: StructureId,
        shape: Shape,
        activity: f32,
        hu_offset: f32,
    ) -> usize {
        let bounds = shape.bounds();
        self.primitives.push(Primitive {
            shape,
            structure,
            activity,
            hu_offset,
            bounds,
        });
        self.primitives.len() - 1
    }

    /// The structure at a point after precedence (the last primitive containing it), if any.
    pub fn structure_at(&self, p: Vec3) -> Option<StructureId> {
        self.primitives
            .iter()
            .rev()
            .find(|q| {
                (0..3).all(|i| p[i] >= q.bounds.lo[i] && p[i] <= q.bounds.hi[i])
                    && q.shape.contains(p)
            })
            .map(|q| q.structure)
    }

    /// Bounding box of everything.
    pub fn bounds(&self) -> Bounds {
        self.primitives
            .iter()
            .map(|p| p.bounds)
            .reduce(Bounds::union)
            .unwrap_or(Bounds {
                lo: [0.0; 3],
                hi: [0.0; 3],
            })
    }

    pub fn structure_id(&self, name: &str) -> Option<StructureId> {
        self.structures.iter().position(|s| s.name == name)
    }
}
