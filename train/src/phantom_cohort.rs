//! Annotated studies from the synthetic phantom (DESIGN S11), in memory.

use uptake::Tracer;
use uptake::volume::Volume;
use uptake_phantom::{Coverage, PhantomSpec, Preset, Study, generate};

use crate::studies::{AnnotatedStudy, Stage, StudyError, StudyInfo};

/// The whole-body phantom study of `tracer` and `seed`, converted to the tool's ground-truth
/// layout.
pub fn phantom_study(
    tracer: Tracer,
    seed: u64,
    preset: Preset,
) -> Result<AnnotatedStudy, StudyError> {
    phantom_study_over(PhantomSpec {
        tracer,
        seed,
        preset,
        coverage: Coverage::WholeBody,
    })
}

/// The phantom study of `spec`, converted to the tool's ground-truth layout.
pub fn phantom_study_over(spec: PhantomSpec) -> Result<AnnotatedStudy, StudyError> {
    let (tracer, seed) = (spec.tracer, spec.seed);
    let study = generate(&spec).map_err(|e| StudyError::Study {
        path: format!("phantom {} seed {seed}", tracer.name()).into(),
        message: e.to_string(),
    })?;
    convert(&study, format!("{}-{seed:05}", tracer.name()))
}

/// Structure labels → S6 class + 1 (0 where the structure is no location), lesion labels kept.
fn convert(study: &Study, subject: String) -> Result<AnnotatedStudy, StudyError> {
    let class_of_label: Vec<u32> = study
        .structures
        .iter()
        .map(|s| s.class_id.map_or(0, |c| c + 1))
        .collect();
    let structures = study
        .pet_structures
        .data()
        .iter()
        .map(|&l| class_of_label.get(usize::from(l)).copied().unwrap_or(0))
        .collect();
    let lesions = study
        .pet_lesions
        .data()
        .iter()
        .map(|&l| u32::from(l))
        .collect();
    let max_id = study
        .lesions
        .iter()
        .map(|l| usize::from(l.id))
        .max()
        .unwrap_or(0);
    let mut lesion_classes = vec![0; max_id];
    for l in study.lesions.iter().filter(|l| l.id > 0) {
        lesion_classes[usize::from(l.id) - 1] = l.class_id;
    }
    let truth = &study.truth;
    let geometry = *study.pet.geometry();
    let volume = |data: Vec<u32>| {
        Volume::new(geometry, data).map_err(|e| StudyError::Study {
            path: subject.clone().into(),
            message: e.to_string(),
        })
    };
    Ok(AnnotatedStudy {
        info: StudyInfo {
            subject: subject.clone(),
            tracer: study.spec.tracer,
            lesion_classes,
            stage: Some(Stage {
                n: truth.mi_n.to_string(),
                m: truth.m_code(),
            }),
            hybrid: false,
        },
        pet: study.pet.clone(),
        ct: study.ct.clone(),
        structures: volume(structures)?,
        lesions: volume(lesions)?,
    })
}
