//! The overview picture of a study: PET MIPs (coronal, sagittal) and a CT coronal section,
//! lesions outlined and numbered, the true stage in the title.

use crate::picture::{Image, PictureError, Plane, View, mip, project_labels, section};
use uptake::Tracer;

use uptake_phantom::Study;

const OUTLINE: [u8; 3] = [225, 25, 25];
const NUMBER: [u8; 3] = [0, 85, 210];
const INK: [u8; 3] = [20, 20, 20];
const PAPER: [u8; 3] = [255, 255, 255];

/// Square pixel size of the overview (mm).
const PIXEL_MM: f64 = 2.5;

/// PET display window (SUV): uptake above the upper value is black.
fn pet_window(tracer: Tracer) -> f32 {
    match tracer {
        Tracer::Psma => 12.0,
        Tracer::Fdg => 8.0,
    }
}

/// Draws each label's number next to the first pixel of its outline.
fn number_labels(img: &mut Image, labels: &Plane<u16>) {
    let mut seen = Vec::new();
    for y in 0..labels.height {
        for x in 0..labels.width {
            let l = labels.get(x, y);
            if l != 0 && !seen.contains(&l) {
                seen.push(l);
                img.text(x as i64 + 5, y as i64 - 3, &l.to_string(), NUMBER, 1);
            }
        }
    }
}

fn pet_panel(study: &Study, view: View) -> Result<Image, PictureError> {
    let pet = mip(&study.pet, view).square_pixels(PIXEL_MM);
    let labels = project_labels(&study.pet_lesions, &study.pet, view).square_pixels(PIXEL_MM);
    let mut img = Image::grey(&pet, 0.0, pet_window(study.spec.tracer), true);
    img.outline(&labels, |_| OUTLINE);
    number_labels(&mut img, &labels);
    Ok(img)
}

/// The coronal CT section through the largest lesion, or through the vertebral bodies.
fn ct_panel(study: &Study) -> Result<(Image, f64), PictureError> {
    let g = study.ct.geometry();
    let y_mm = study
        .lesions
        .iter()
        .max_by(|a, b| a.volume_ml.total_cmp(&b.volume_ml))
        .map(|l| l.centre_lps[1])
        .unwrap_or(40.0);
    let j = g.patient_to_voxel([0.0, y_mm, 0.0])[1]
        .round()
        .clamp(0.0, (g.dims()[1] - 1) as f64) as usize;
    let ct = section(&study.ct, View::Coronal, j)?.square_pixels(PIXEL_MM);
    let labels = section(&study.ct_lesions, View::Coronal, j)?.square_pixels(PIXEL_MM);
    let mut img = Image::grey(&ct, -250.0, 350.0, false);
    img.outline(&labels, |_| OUTLINE);
    number_labels(&mut img, &labels);
    Ok((img, y_mm))
}

/// One picture for a study: title, PET MIP coronal and sagittal, CT coronal section.
pub fn overview(study: &Study) -> Result<Image, PictureError> {
    let coronal = pet_panel(study, View::Coronal)?;
    let sagittal = pet_panel(study, View::Sagittal)?;
    let (ct, y_mm) = ct_panel(study)?;
    let window = pet_window(study.spec.tracer);
    let row = Image::row(
        &[
            (&coronal, &format!("PET MIP 0-{window} SUV")),
            (&sagittal, "PET MIP SAGITTAL"),
            (&ct, &format!("CT Y={y_mm:.0} MM")),
        ],
        12,
        PAPER,
        INK,
    )?;
    let t = &study.truth;
    let categories: Vec<&str> = t.m_categories.iter().map(|m| m.code()).collect();
    let m = match &t.bone_pattern {
        Some(p) => format!("{} ({})", categories.join("+"), p),
        None if categories.is_empty() => "M0".to_string(),
        None => categories.join("+"),
    };
    let title = format!(
        "{} SEED {}  {}  {} {} {}  {} LESIONS",
        study.spec.tracer.name(),
        study.spec.seed,
        study.scenario.replace('_', " "),
        t.mi_t,
        t.mi_n,
        m,
        study.lesions.len()
    );
    let title_h = 30;
    let width = row.width.max(Image::text_width(&title, 2) + 24);
    let mut out = Image::new(width, row.height + title_h, PAPER)?;
    out.text(12, 8, &title, INK, 2);
    out.blit(&row, 0, title_h);
    Ok(out)
}
