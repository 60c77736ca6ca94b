//! Disease plans: which lesions a patient has, where, how large and how avid, drawn before
//! anything is rasterised.
//!
//! Scenarios follow the clinical settings of the two tracers: PSMA for prostate cancer
//! (primary staging or biochemical recurrence: prostate or prostate-bed tumour, pelvic and
//! extrapelvic nodes, bone from unifocal to diffuse, lung/liver/adrenal), FDG for lymphoma- and
//! lung-cancer-like spread. Each lesion is a small ellipsoid attached to a host structure; its
//! S6 class is the host's class, so the label maps and the lesion records always agree.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::body::{Body, StructureId, Tissue};
use super::shape::{Vec3, rotation};
use uptake::classes::{Role, v1_classes};
use uptake::tracer::Tracer;

/// How bright a lesion should render.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Avidity {
    /// Rendered SUVmax (noise-free) of about this value.
    SuvMax(f64),
    /// This multiple of the host tissue's concentration: lesions barely above background.
    TimesHost(f64),
}

/// One planned lesion.
#[derive(Debug, Clone, Serialize)]
pub struct LesionPlan {
    /// 1-based; the lesion label value.
    pub id: u16,
    /// "primary", "local_recurrence", "node", "bone", "visceral" or "extranodal".
    pub kind: &'static str,
    /// Where it sits, in words (station, organ or bone).
    pub site: String,
    #[serde(skip)]
    pub host: StructureId,
    pub class_id: u32,
    pub role: Role,
    pub centre: Vec3,
    pub radii: Vec3,
    #[serde(skip)]
    pub rotation: [[f64; 3]; 3],
    pub avidity: Avidity,
    /// HU of the lesion tissue on CT.
    pub hu: f32,
    /// Large FDG lesions may have a cold necrotic core.
    pub necrotic: bool,
    /// Placed next to a physiological pitfall ("ureter", "kidney"), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_to: Option<&'static str>,
}

impl LesionPlan {
    pub fn volume_ml(&self) -> f64 {
        4.0 / 3.0 * std::f64::consts::PI * self.radii.iter().product::<f64>() / 1000.0
    }
}

/// Everything the disease adds to a patient.
#[derive(Debug, Clone, Serialize)]
pub struct DiseasePlan {
    pub scenario: &'static str,
    pub lesions: Vec<LesionPlan>,
    /// Diffuse marrow involvement (miM1b dmi): marrow uptake raised throughout the skeleton.
    pub diffuse_marrow: bool,
    /// Factor on marrow concentration when `diffuse_marrow`.
    pub marrow_factor: f64,
}

/// Log-uniform draw in [lo, hi].
pub(crate) fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (rng.random_range(lo.ln()..hi.ln())).exp()
}

/// Semi-axes of an ellipsoid of `volume_ml` with a mild random aspect.
fn radii_for(rng: &mut ChaCha8Rng, volume_ml: f64) -> Vec3 {
    let r = (3.0 * volume_ml * 1000.0 / (4.0 * std::f64::consts::PI)).cbrt();
    let a: f64 = rng.random_range(0.85..1.2);
    let b: f64 = rng.random_range(0.85..1.2);
    let c = 1.0 / (a * b);
    [r * a, r * b, r * c]
}

struct Planner<'a> {
    body: &'a Body,
    rng: &'a mut ChaCha8Rng,
    tracer: Tracer,
    lesions: Vec<LesionPlan>,
}

/// Where a lesion should be put relative to its host.
#[derive(Clone, Copy, PartialEq)]
enum Fit {
    /// Entirely inside the host (checked at the centre and the six axis ends).
    Inside,
    /// Centre inside the host; the lesion may bulge out (small glands, bone, nodes).
    Centre,
}

impl Planner<'_> {
    fn free(&self, c: Vec3, radii: Vec3) -> bool {
        let r = radii.iter().cloned().fold(0.0, f64::max);
        self.lesions.iter().all(|l| {
            let rl = l.radii.iter().cloned().fold(0.0, f64::max);
            let d2: f64 = (0..3).map(|i| (c[i] - l.centre[i]).powi(2)).sum();
            d2.sqrt() > r + rl + 2.0
        })
    }

    fn fits(&self, host: StructureId, c: Vec3, radii: Vec3, fit: Fit) -> bool {
        if self.body.structure_at(c) != Some(host) || !self.free(c, radii) {
            return false;
        }
        if fit == Fit::Centre {
            return true;
        }
        (0..3).all(|axis| {
            [-1.0, 1.0].iter().all(|s| {
                let mut p = c;
                p[axis] += s * radii[axis];
                self.body.structure_at(p) == Some(host)
            })
        })
    }

    /// A random point of the host's primitives that fits the lesion.
    fn sample_in(&mut self, host: StructureId, radii: Vec3, fit: Fit) -> Option<Vec3> {
        let prims: Vec<usize> = (0..self.body.primitives.len())
            .filter(|&i| self.body.primitives[i].structure == host)
            .collect();
        for _ in 0..300 {
            let &pi = prims.choose(self.rng)?;
            let b = self.body.primitives[pi].bounds;
            let p = [0, 1, 2].map(|i| {
                if b.hi[i] > b.lo[i] {
                    self.rng.random_range(b.lo[i]..b.hi[i])
                } else {
                    b.lo[i]
                }
            });
            if self.fits(host, p, radii, fit) {
                return Some(p);
            }
        }
        None
    }

    fn push(
        &mut self,
        kind: &'static str,
        site: String,
        host: StructureId,
        (centre, radii): (Vec3, Vec3),
        avidity: Avidity,
        hu: f32,
    ) -> Option<&mut LesionPlan> {
        let class_id = self.body.structures[host].class_id?;
        let role = v1_classes().get(class_id as usize)?.role;
        let angle = self.rng.random_range(0.0..std::f64::consts::PI);
        let axis = [
            self.rng.random_range(-1.0..1.0),
            self.rng.random_range(-1.0..1.0),
            self.rng.random_range(-1.0..1.0),
        ];
        let necrotic = self.tracer == Tracer::Fdg
            && 4.0 / 3.0 * std::f64::consts::PI * radii.iter().product::<f64>() / 1000.0 > 8.0
            && self.rng.random_bool(0.4);
        self.lesions.push(LesionPlan {
            id: (self.lesions.len() + 1) as u16,
            kind,
            site,
            host,
            class_id,
            role,
            centre,
            radii,
            rotation: rotation(axis, angle),
            avidity,
            hu,
            necrotic,
            next_to: None,
        });
        self.lesions.last_mut()
    }

    /// Avidity of an ordinary lesion: mostly clearly avid, some faint.
    fn avidity(&mut self, lo: f64, hi: f64) -> Avidity {
        if self.rng.random_bool(0.15) {
            Avidity::TimesHost(self.rng.random_range(1.6..2.8))
        } else {
            Avidity::SuvMax(log_uniform(self.rng, lo, hi))
        }
    }

    fn structure(&self, name: &str) -> Option<StructureId> {
        self.body.structure_id(name)
    }

    fn soft_hu(&mut self) -> f32 {
        let contrast = self.body.habitus.iv_contrast;
        if contrast {
            self.rng.random_range(55.0..85.0)
        } else {
            self.rng.random_range(30.0..48.0)
        }
    }

    /// An enlarged node at a station of the given S6 class.
    fn node(&mut self, class: &str, volume: (f64, f64), suv: (f64, f64)) {
        let stations: Vec<usize> = (0..self.body.sites.node_stations.len())
            .filter(|&i| self.body.sites.node_stations[i].class == class)
            .collect();
        for _ in 0..40 {
            let Some(&si) = stations.choose(self.rng) else {
                return;
            };
            let station = &self.body.sites.node_stations[si];
            let Some(&c0) = station.nodes.choose(self.rng) else {
                continue;
            };
            let (name, host) = (station.name, station.structure);
            let v = log_uniform(self.rng, volume.0, volume.1);
            let radii = radii_for(self.rng, v);
            let spread = 1.5 * radii[0];
            let c = [0, 1, 2].map(|i| c0[i] + self.rng.random_range(-spread..spread));
            let at = self.body.structure_at(c);
            let soft = at.is_some_and(|s| {
                s == host
                    || matches!(
                        self.body.structures[s].tissue,
                        Tissue::Fat | Tissue::Node | Tissue::Muscle | Tissue::Soft
                    )
            });
            if soft && self.free(c, radii) {
                let avidity = self.avidity(suv.0, suv.1);
                let hu = self.soft_hu();
                let side = if c[0] > 0.0 { "left" } else { "right" };
                self.push(
                    "node",
                    format!("{name}_{side}"),
                    host,
                    (c, radii),
                    avidity,
                    hu,
                );
                return;
            }
        }
    }

    /// A pelvic node lying against the ureter, where urine activity mimics or hides it.
    fn node_next_to_ureter(&mut self, suv: (f64, f64)) -> bool {
        let Some(host) = self.structure("ln_internal_iliac") else {
            return false;
        };
        let pelvic: Vec<usize> = self
            .body
            .sites
            .ureter
            .iter()
            .cloned()
            .filter(|&p| {
                let b = self.body.primitives[p].bounds;
                let (zlo, zhi) = self.pelvic_z();
                b.lo[2] > zlo && b.hi[2] < zhi
            })
            .collect();
        for _ in 0..20 {
            let Some(&p) = pelvic.choose(self.rng) else {
                return false;
            };
            let super::shape::Shape::Capsule { a, b, r } = self.body.primitives[p].shape else {
                continue;
            };
            let t: f64 = self.rng.random_range(0.2..0.8);
            let m = [0, 1, 2].map(|i| a[i] + t * (b[i] - a[i]));
            let v = log_uniform(self.rng, 0.25, 2.0);
            let radii = radii_for(self.rng, v);
            let out = m[0].signum();
            let c = [m[0] + out * (r + radii[0] + 1.0), m[1] + 3.0, m[2]];
            let at = self.body.structure_at(c);
            let soft = at.is_some_and(|s| {
                matches!(
                    self.body.structures[s].tissue,
                    Tissue::Fat | Tissue::Node | Tissue::Muscle | Tissue::Soft
                )
            });
            if soft && self.free(c, radii) {
                let avidity = self.avidity(suv.0, suv.1);
                let hu = self.soft_hu();
                let side = if c[0] > 0.0 { "left" } else { "right" };
                if let Some(l) = self.push(
                    "node",
                    format!("periureteric_{side}"),
                    host,
                    (c, radii),
                    avidity,
                    hu,
                ) {
                    l.next_to = Some("ureter");
                    return true;
                }
            }
        }
        false
    }

    /// z range of the true pelvis (from the femoral heads to the sacral promontory).
    fn pelvic_z(&self) -> (f64, f64) {
        let h = self.body.habitus.height_mm / 1750.0;
        ((860.0 - 1750.0) * h, (990.0 - 1750.0) * h)
    }

    /// A bone lesion; `near_kidney` picks the marrow closest to a kidney.
    fn bone(&mut self, volume: (f64, f64), suv: (f64, f64), near_kidney: bool) {
        let marrow = &self.body.sites.marrow;
        if marrow.is_empty() {
            return;
        }
        let kidney = self
            .structure("kidney_left")
            .and_then(|k| self.body.primitives.iter().find(|p| p.structure == k))
            .map(|p| [0, 1, 2].map(|i| 0.5 * (p.bounds.lo[i] + p.bounds.hi[i])));
        let total: f64 = marrow.iter().map(|m| m.1).sum();
        let mut best: Option<(f64, usize, Vec3, String)> = None;
        let tries = if near_kidney { 400 } else { 60 };
        for _ in 0..tries {
            let mut pick = self.rng.random_range(0.0..total);
            let mut prim = marrow[0].0;
            let mut bone = &marrow[0].2;
            for (p, w, name) in marrow {
                prim = *p;
                bone = name;
                if pick < *w {
                    break;
                }
                pick -= w;
            }
            let b = self.body.primitives[prim].bounds;
            let p = [0, 1, 2].map(|i| self.rng.random_range(b.lo[i]..b.hi[i].max(b.lo[i] + 1e-6)));
            let host = self.body.primitives[prim].structure;
            if self.body.structure_at(p) != Some(host) {
                continue;
            }
            let score = match (near_kidney, kidney) {
                (true, Some(k)) => (0..3).map(|i| (p[i] - k[i]).powi(2)).sum::<f64>(),
                _ => 0.0,
            };
            if best.as_ref().is_none_or(|b| score < b.0) {
                best = Some((score, prim, p, bone.clone()));
            }
            if !near_kidney {
                break;
            }
        }
        let Some((_, prim, c, bone)) = best else {
            return;
        };
        let host = self.body.primitives[prim].structure;
        let mut v = log_uniform(self.rng, volume.0, volume.1);
        // Thin bones (ribs, rami) hold only small lesions.
        if let super::shape::Shape::Capsule { r, .. } = self.body.primitives[prim].shape {
            let r_max: f64 = r + 4.0;
            v = v.min(4.0 / 3.0 * std::f64::consts::PI * r_max.powi(3) / 1000.0);
        }
        let radii = radii_for(self.rng, v.max(0.2));
        if !self.free(c, radii) {
            return;
        }
        let avidity = self.avidity(suv.0, suv.1);
        // PSMA bone metastases of prostate cancer are sclerotic; FDG ones mostly lytic.
        let hu = match self.tracer {
            Tracer::Psma => self.rng.random_range(350.0..900.0),
            Tracer::Fdg => self.rng.random_range(20.0..90.0),
        };
        if let Some(l) = self.push("bone", bone, host, (c, radii), avidity, hu)
            && near_kidney
        {
            l.next_to = Some("kidney");
        }
    }

    /// A lesion in an organ (by structure name).
    fn organ(
        &mut self,
        name: &str,
        kind: &'static str,
        volume: (f64, f64),
        suv: (f64, f64),
        fit: Fit,
    ) {
        let Some(host) = self.structure(name) else {
            return;
        };
        for _ in 0..6 {
            let v = log_uniform(self.rng, volume.0, volume.1);
            let radii = radii_for(self.rng, v);
            if let Some(c) = self.sample_in(host, radii, fit) {
                let avidity = self.avidity(suv.0, suv.1);
                let base = self.soft_hu();
                let hu = match self.body.structures[host].tissue {
                    Tissue::Lung => self.rng.random_range(20.0..45.0),
                    Tissue::Liver | Tissue::Spleen => base - 35.0,
                    _ => base,
                };
                self.push(kind, name.to_string(), host, (c, radii), avidity, hu);
                return;
            }
        }
    }

    /// The prostate tumour (or the prostate-bed recurrence after prostatectomy).
    fn prostate(&mut self) {
        let (c, r) = self.body.sites.prostate;
        if self.body.habitus.prostatectomy {
            let Some(host) = self.structure("prostate_bed") else {
                return;
            };
            let v = log_uniform(self.rng, 0.2, 3.0);
            let radii = radii_for(self.rng, v);
            let cc = [
                c[0] + self.rng.random_range(-4.0..4.0),
                c[1] + 2.0,
                c[2] + 4.0,
            ];
            let avidity = self.avidity(3.0, 25.0);
            let hu = self.soft_hu();
            self.push(
                "local_recurrence",
                "prostate_bed".into(),
                host,
                (cc, radii),
                avidity,
                hu,
            );
        } else {
            let Some(host) = self.structure("prostate") else {
                return;
            };
            let v_max =
                (0.5 * 4.0 / 3.0 * std::f64::consts::PI * r[0] * r[1] * r[2] / 1000.0).min(20.0);
            let v = log_uniform(self.rng, 0.5, v_max.max(0.6));
            let radii = radii_for(self.rng, v);
            // Mostly the peripheral zone: posterior and lateral.
            let side: f64 = if self.rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let cc = [
                c[0] + side * self.rng.random_range(0.0..0.4) * r[0],
                c[1] + self.rng.random_range(0.1..0.45) * r[1],
                c[2] + self.rng.random_range(-0.3..0.3) * r[2],
            ];
            let avidity = self.avidity(4.0, 60.0);
            let hu = self.soft_hu();
            self.push("primary", "prostate".into(), host, (cc, radii), avidity, hu);
        }
    }
}

/// Structures (by name) that can host a rare metastasis or an extranodal lymphoma site,
/// so that every S6 class but `ganglion` occurs as a lesion location somewhere in a cohort.
/// A lesion *in* an autonomic ganglion is not a clinical finding; ganglia appear in every
/// study as physiological PSMA uptake instead.
const RARE_SITES: [(&str, Fit, (f64, f64)); 16] = [
    ("muscle", Fit::Centre, (0.5, 8.0)),
    ("brain_grey_matter", Fit::Inside, (0.3, 6.0)),
    ("lacrimal_gland", Fit::Centre, (0.3, 1.0)),
    ("parotid_gland", Fit::Centre, (0.5, 4.0)),
    ("waldeyer_ring", Fit::Centre, (0.5, 5.0)),
    ("thyroid", Fit::Centre, (0.3, 3.0)),
    ("myocardium", Fit::Centre, (0.5, 4.0)),
    ("spleen", Fit::Inside, (0.5, 8.0)),
    ("kidney_left", Fit::Centre, (0.5, 6.0)),
    ("kidney_right", Fit::Centre, (0.5, 6.0)),
    ("colon", Fit::Centre, (0.5, 5.0)),
    ("small_bowel", Fit::Centre, (0.3, 3.0)),
    ("ureter", Fit::Centre, (0.2, 0.6)),
    ("bladder", Fit::Centre, (0.5, 6.0)),
    ("pancreas", Fit::Centre, (0.5, 6.0)),
    ("adrenal_left", Fit::Centre, (0.5, 8.0)),
];

/// Draws the disease of one patient.
pub fn plan(body: &Body, tracer: Tracer, rng: &mut ChaCha8Rng) -> DiseasePlan {
    let mut p = Planner {
        body,
        rng,
        tracer,
        lesions: Vec::new(),
    };
    let mut diffuse_marrow = false;
    let scenario = match tracer {
        Tracer::Psma => plan_psma(&mut p, &mut diffuse_marrow),
        Tracer::Fdg => plan_fdg(&mut p),
    };
    // Extranodal lymphoma reaches almost any organ; prostate cancer rarely leaves its usual
    // routes.
    let rare = match tracer {
        Tracer::Psma => 0.06,
        Tracer::Fdg => 0.3,
    };
    if scenario != "no_disease" && p.rng.random_bool(rare) {
        let &(name, fit, vol) = RARE_SITES.choose(p.rng).unwrap_or(&RARE_SITES[0]);
        let suv = match tracer {
            Tracer::Psma => (4.0, 30.0),
            Tracer::Fdg => (4.0, 20.0),
        };
        p.organ(name, "extranodal", vol, suv, fit);
    }
    let marrow_factor = if diffuse_marrow {
        p.rng.random_range(3.0..6.0)
    } else {
        1.0
    };
    DiseasePlan {
        scenario,
        lesions: p.lesions,
        diffuse_marrow,
        marrow_factor,
    }
}

fn plan_psma(p: &mut Planner, diffuse_marrow: &mut bool) -> &'static str {
    let recurrence = p.body.habitus.prostatectomy;
    let local = if recurrence {
        p.rng.random_bool(0.35)
    } else {
        p.rng.random_bool(0.85)
    };
    if local {
        p.prostate();
    }
    let n_nodes = match p.rng.random_range(0.0..1.0) {
        x if x < 0.45 => 0,
        x if x < 0.72 => 1,
        _ => p.rng.random_range(2..=6),
    };
    for k in 0..n_nodes {
        if k == 0 && p.rng.random_bool(0.3) && p.node_next_to_ureter((3.0, 30.0)) {
            continue;
        }
        p.node("ln_pelvic", (0.2, 5.0), (2.5, 45.0));
    }
    if p.rng.random_bool(0.3) {
        for _ in 0..p.rng.random_range(1..=5) {
            let class = *[
                "ln_common_iliac",
                "ln_retroperitoneal",
                "ln_retroperitoneal",
                "ln_inguinal",
                "ln_supradiaphragmatic",
            ]
            .choose(p.rng)
            .unwrap_or(&"ln_retroperitoneal");
            p.node(class, (0.2, 6.0), (2.5, 45.0));
        }
    }
    if p.rng.random_bool(0.38) {
        let count = match p.rng.random_range(0.0..1.0) {
            x if x < 0.3 => 1,
            x if x < 0.58 => p.rng.random_range(2..=3),
            x if x < 0.9 => p.rng.random_range(4..=25),
            _ => {
                *diffuse_marrow = true;
                p.rng.random_range(0..=12)
            }
        };
        for k in 0..count {
            let near_kidney = k == 0 && p.rng.random_bool(0.2);
            p.bone((0.2, 15.0), (3.0, 60.0), near_kidney);
        }
    }
    if p.rng.random_bool(0.12) {
        for _ in 0..p.rng.random_range(1..=3) {
            match p.rng.random_range(0..10) {
                0..=4 => {
                    let lung = if p.rng.random_bool(0.5) {
                        "lung_left"
                    } else {
                        "lung_right"
                    };
                    p.organ(lung, "visceral", (0.2, 4.0), (3.0, 25.0), Fit::Inside);
                }
                5..=7 => p.organ("liver", "visceral", (0.3, 12.0), (4.0, 30.0), Fit::Inside),
                _ => {
                    let adrenal = if p.rng.random_bool(0.5) {
                        "adrenal_left"
                    } else {
                        "adrenal_right"
                    };
                    p.organ(adrenal, "visceral", (0.5, 6.0), (4.0, 30.0), Fit::Centre);
                }
            }
        }
    }
    if recurrence {
        "biochemical_recurrence"
    } else {
        "primary_staging"
    }
}

fn plan_fdg(p: &mut Planner) -> &'static str {
    match p.rng.random_range(0.0..1.0) {
        x if x < 0.4 => {
            // Lymphoma: several nodal stations, spleen, marrow, extranodal sites.
            let classes = [
                "ln_supradiaphragmatic",
                "ln_supradiaphragmatic",
                "ln_retroperitoneal",
                "ln_common_iliac",
                "ln_pelvic",
                "ln_inguinal",
            ];
            for _ in 0..p.rng.random_range(1..=5) {
                let class = *classes.choose(p.rng).unwrap_or(&classes[0]);
                for _ in 0..p.rng.random_range(1..=4) {
                    p.node(class, (0.3, 20.0), (4.0, 25.0));
                }
            }
            if p.rng.random_bool(0.25) {
                for _ in 0..p.rng.random_range(1..=4) {
                    p.organ("spleen", "extranodal", (0.3, 6.0), (4.0, 18.0), Fit::Inside);
                }
            }
            if p.rng.random_bool(0.25) {
                for _ in 0..p.rng.random_range(1..=8) {
                    p.bone((0.3, 10.0), (3.0, 15.0), false);
                }
            }
            if p.rng.random_bool(0.2) {
                p.organ(
                    "waldeyer_ring",
                    "extranodal",
                    (1.0, 6.0),
                    (5.0, 18.0),
                    Fit::Centre,
                );
            }
            "lymphoma"
        }
        x if x < 0.75 => {
            // Lung cancer: primary, hilar/mediastinal nodes, adrenal, liver, bone, brain.
            let lung = if p.rng.random_bool(0.55) {
                "lung_right"
            } else {
                "lung_left"
            };
            p.organ(lung, "primary", (1.5, 20.0), (5.0, 25.0), Fit::Inside);
            for _ in 0..p.rng.random_range(0..=4) {
                p.node("ln_supradiaphragmatic", (0.3, 8.0), (3.0, 18.0));
            }
            if p.rng.random_bool(0.15) {
                p.node("ln_retroperitoneal", (0.3, 5.0), (3.0, 15.0));
            }
            if p.rng.random_bool(0.2) {
                let adrenal = if p.rng.random_bool(0.5) {
                    "adrenal_left"
                } else {
                    "adrenal_right"
                };
                p.organ(adrenal, "visceral", (0.5, 10.0), (4.0, 18.0), Fit::Centre);
            }
            if p.rng.random_bool(0.18) {
                for _ in 0..p.rng.random_range(1..=4) {
                    p.organ("liver", "visceral", (0.3, 12.0), (3.5, 15.0), Fit::Inside);
                }
            }
            if p.rng.random_bool(0.3) {
                let count = match p.rng.random_range(0..3) {
                    0 => 1,
                    1 => p.rng.random_range(2..=3),
                    _ => p.rng.random_range(4..=12),
                };
                for _ in 0..count {
                    p.bone((0.3, 10.0), (3.0, 15.0), false);
                }
            }
            if p.rng.random_bool(0.1) {
                p.organ(
                    "brain_grey_matter",
                    "visceral",
                    (0.3, 5.0),
                    (6.0, 20.0),
                    Fit::Inside,
                );
            }
            if p.rng.random_bool(0.1) {
                p.organ("muscle", "visceral", (0.5, 6.0), (4.0, 15.0), Fit::Centre);
            }
            "lung_cancer"
        }
        x if x < 0.87 => {
            // Colorectal cancer: bowel primary, liver metastases, pelvic nodes.
            p.organ("colon", "primary", (2.0, 15.0), (6.0, 25.0), Fit::Centre);
            for _ in 0..p.rng.random_range(0..=3) {
                p.organ("liver", "visceral", (0.5, 15.0), (4.0, 15.0), Fit::Inside);
            }
            for _ in 0..p.rng.random_range(0..=2) {
                p.node("ln_pelvic", (0.3, 3.0), (3.0, 12.0));
            }
            "colorectal_cancer"
        }
        _ => "no_disease",
    }
}
