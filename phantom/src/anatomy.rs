//! A male body from skull vertex to the knees, described once in patient coordinates.
//!
//! Positions are written for a reference man 1750 mm tall (z measured from the soles, x to the
//! patient's left, y posterior) and mapped to the patient by his height, trunk width and depth,
//! a couch offset, and per-organ size and position jitter. The patient frame puts the vertex
//! near z = 0, so the body extends to negative z as on most scanners' couch coordinates.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::body::{Body, Habitus, NodeStation, Sites, StructureId, Tissue};
use super::shape::{LoftKnot, Shape, Vec3, compose, rotation};

const REFERENCE_HEIGHT: f64 = 1750.0;

/// Standard normal draw clipped to ±2.5 SD so that no patient is grotesque.
fn gauss(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    let z: f64 = Normal::new(0.0, 1.0).map(|n| n.sample(rng)).unwrap_or(0.0);
    mean + sd * z.clamp(-2.5, 2.5)
}

/// Maps the reference man onto the patient and records what it builds.
struct Builder<'r> {
    body: Body,
    rng: &'r mut ChaCha8Rng,
    /// Width (x), depth (y) and height (z) scales.
    scale: [f64; 3],
    /// Couch offset of the patient in x and y (mm).
    offset: [f64; 2],
    /// Subcutaneous fat (mm).
    fat: f64,
}

impl Builder<'_> {
    fn p(&self, x: f64, y: f64, z: f64) -> Vec3 {
        [
            x * self.scale[0] + self.offset[0],
            y * self.scale[1] + self.offset[1],
            (z - REFERENCE_HEIGHT) * self.scale[2],
        ]
    }

    fn r(&self, rx: f64, ry: f64, rz: f64) -> Vec3 {
        [rx * self.scale[0], ry * self.scale[1], rz * self.scale[2]]
    }

    /// A tube radius scaled by the mean in-plane scale.
    fn tube_r(&self, r: f64) -> f64 {
        r * 0.5 * (self.scale[0] + self.scale[1])
    }

    fn jitter(&mut self, sd: f64) -> [f64; 3] {
        [
            gauss(self.rng, 0.0, sd),
            gauss(self.rng, 0.0, sd),
            gauss(self.rng, 0.0, sd),
        ]
    }

    fn structure(&mut self, name: &str, class: Option<&str>, tissue: Tissue) -> StructureId {
        self.body.add_structure(name, class, tissue)
    }

    fn ellipsoid(&mut self, s: StructureId, c: Vec3, r: Vec3) -> usize {
        let shape = Shape::ellipsoid(self.p(c[0], c[1], c[2]), self.r(r[0], r[1], r[2]));
        self.body.add(s, shape, 1.0)
    }

    fn ellipsoid_rot(&mut self, s: StructureId, c: Vec3, r: Vec3, rot: [[f64; 3]; 3]) -> usize {
        let shape = Shape::Ellipsoid {
            centre: self.p(c[0], c[1], c[2]),
            radii: self.r(r[0], r[1], r[2]),
            rotation: rot,
        };
        self.body.add(s, shape, 1.0)
    }

    fn superellipsoid(&mut self, s: StructureId, c: Vec3, r: Vec3, e: f64, f: f64) -> usize {
        let shape = Shape::SuperEllipsoid {
            centre: self.p(c[0], c[1], c[2]),
            radii: self.r(r[0], r[1], r[2]),
            e,
            f,
        };
        self.body.add(s, shape, 1.0)
    }

    /// A chain of capsules through reference points (x, y, z, radius); returns the primitives.
    fn tube(&mut self, s: StructureId, points: &[[f64; 4]]) -> Vec<usize> {
        let mut out = Vec::new();
        for w in points.windows(2) {
            let a = self.p(w[0][0], w[0][1], w[0][2]);
            let b = self.p(w[1][0], w[1][1], w[1][2]);
            let r = self.tube_r(0.5 * (w[0][3] + w[1][3]));
            out.push(self.body.add(s, Shape::Capsule { a, b, r }, 1.0));
        }
        out
    }

    /// A loft through reference knots (z, cx, cy, half-x, half-y).
    fn loft(&mut self, s: StructureId, knots: &[[f64; 5]], exponent: f64) -> usize {
        let mut k: Vec<LoftKnot> = knots
            .iter()
            .map(|&[z, cx, cy, hx, hy]| {
                let c = self.p(cx, cy, z);
                LoftKnot {
                    z: c[2],
                    centre: [c[0], c[1]],
                    half: [hx * self.scale[0], hy * self.scale[1]],
                }
            })
            .collect();
        k.sort_by(|a, b| a.z.total_cmp(&b.z));
        self.body.add(s, Shape::Loft { knots: k, exponent }, 1.0)
    }
}

/// Muscle wall of the trunk (reference, without subcutaneous fat): z, cx, cy, half-x, half-y.
const TRUNK: [[f64; 5]; 11] = [
    [1455.0, 0.0, 15.0, 60.0, 55.0],
    [1435.0, 0.0, 10.0, 150.0, 95.0],
    [1400.0, 0.0, 10.0, 162.0, 105.0],
    [1300.0, 0.0, 5.0, 150.0, 110.0],
    [1200.0, 0.0, 5.0, 145.0, 108.0],
    [1100.0, 0.0, 5.0, 135.0, 100.0],
    [1030.0, 0.0, 10.0, 140.0, 100.0],
    [950.0, 0.0, 10.0, 152.0, 100.0],
    [880.0, 0.0, 10.0, 158.0, 95.0],
    [830.0, 0.0, 10.0, 148.0, 85.0],
    [790.0, 0.0, 10.0, 110.0, 70.0],
];

/// The reference trunk wall's cross-section at height z (linear between knots).
fn trunk_section(z: f64) -> [f64; 4] {
    let i = TRUNK
        .iter()
        .position(|k| k[0] <= z)
        .unwrap_or(TRUNK.len() - 1)
        .max(1);
    let (a, b) = (TRUNK[i - 1], TRUNK[i]);
    let t = ((a[0] - z) / (a[0] - b[0])).clamp(0.0, 1.0);
    [1, 2, 3, 4].map(|j| a[j] + (b[j] - a[j]) * t)
}

/// Vertebral levels C1…L5: (name, reference z of the body centre, y of the body centre,
/// half-width, half-depth, half-height).
fn vertebral_levels() -> Vec<(String, f64, f64, f64, f64, f64)> {
    let mut v = Vec::new();
    for i in 0..7 {
        let z = 1565.0 - 16.5 * i as f64;
        v.push((format!("C{}", i + 1), z, 18.0, 14.0, 11.0, 6.0));
    }
    for i in 0..12 {
        let t = i as f64 / 11.0;
        let z = 1445.0 - t * (1445.0 - 1195.0);
        // Thoracic kyphosis: bodies lie deepest at mid-thorax.
        let y = 40.0 + 22.0 * (std::f64::consts::PI * (0.15 + 0.8 * t)).sin();
        v.push((
            format!("T{}", i + 1),
            z,
            y,
            15.0 + 7.0 * t,
            13.0 + 5.0 * t,
            8.0 + 3.0 * t,
        ));
    }
    for i in 0..5 {
        let t = i as f64 / 4.0;
        let z = 1160.0 - 35.0 * i as f64;
        let y = 45.0 - 14.0 * (std::f64::consts::PI * t).sin();
        v.push((
            format!("L{}", i + 1),
            z,
            y,
            24.0 + 2.0 * t,
            18.0 + 2.0 * t,
            12.5,
        ));
    }
    v
}

/// A name with the patient side (+x is the patient's left).
fn sided(name: &str, side: f64) -> String {
    format!("{name}_{}", if side > 0.0 { "left" } else { "right" })
}

/// Builds one patient from the anatomy random stream.
pub fn build(rng: &mut ChaCha8Rng) -> Body {
    let height = gauss(rng, 1760.0, 70.0);
    let width = gauss(rng, 1.0, 0.06);
    let depth = width * gauss(rng, 1.0, 0.05);
    let fat = gauss(rng, 20.0, 9.0).max(5.0);
    let bladder_filling: f64 = rng.random_range(0.05..1.0);
    let prostatectomy = rng.random_bool(0.35);
    let iv_contrast = rng.random_bool(0.6);
    let offset = [gauss(rng, 0.0, 12.0), gauss(rng, 0.0, 10.0)];
    let h = height / REFERENCE_HEIGHT;
    let habitus = Habitus {
        height_mm: height,
        width_scale: width,
        depth_scale: depth,
        fat_mm: fat,
        bladder_filling,
        prostatectomy,
        iv_contrast,
        weight_kg: 0.0,
    };
    let mut b = Builder {
        body: Body {
            structures: Vec::new(),
            primitives: Vec::new(),
            habitus,
            sites: Sites::default(),
        },
        rng,
        scale: [width, depth, h],
        offset,
        fat,
    };
    build_wall(&mut b);
    build_head_and_neck(&mut b);
    build_thorax(&mut b);
    build_abdomen(&mut b);
    build_pelvis(&mut b);
    build_skeleton(&mut b);
    build_vessels(&mut b);
    build_ganglia(&mut b);
    build_nodes(&mut b);
    let mut body = b.body;
    body.habitus.weight_kg = estimate_weight_kg(&body);
    body
}

/// Weight from the trunk and leg lofts (mL ≈ g at density ~1), scaled up for what the
/// field of view leaves out (lower legs, feet, forearms).
fn estimate_weight_kg(body: &Body) -> f64 {
    let h = body.habitus.height_mm / REFERENCE_HEIGHT;
    let w = body.habitus.width_scale * body.habitus.depth_scale;
    let lean = 62.0 * h * w;
    let fat = 0.9 * (body.habitus.fat_mm - 15.0) * h * w.sqrt();
    (lean + fat).clamp(45.0, 160.0)
}

fn build_wall(b: &mut Builder) {
    let fat = b.fat;
    let subcut = b.structure("subcutaneous_fat", Some("soft_tissue"), Tissue::Fat);
    let muscle = b.structure("muscle", Some("soft_tissue"), Tissue::Muscle);
    // Belly fat lies mostly in front; the back and chest carry less.
    let outline: Vec<[f64; 5]> = TRUNK
        .iter()
        .map(|&[z, cx, cy, hx, hy]| {
            let belly = if (850.0..1150.0).contains(&z) {
                1.4
            } else {
                0.8
            };
            let g = fat * belly / b.scale[0];
            [z, cx, cy - 0.25 * g, hx + g, hy + g]
        })
        .collect();
    b.loft(subcut, &outline, 2.4);
    b.loft(muscle, &TRUNK, 2.4);
    for side in [1.0, -1.0] {
        let leg_fat = 0.8 * fat / b.scale[0];
        let leg = |hx: f64, hy: f64, g: f64| [hx + g, hy + g];
        let knots = |g: f64| {
            vec![
                {
                    let [hx, hy] = leg(72.0, 78.0, g);
                    [845.0, side * 82.0, 5.0, hx, hy]
                },
                {
                    let [hx, hy] = leg(65.0, 70.0, g);
                    [700.0, side * 85.0, 0.0, hx, hy]
                },
                {
                    let [hx, hy] = leg(55.0, 58.0, g);
                    [540.0, side * 88.0, 0.0, hx, hy]
                },
                {
                    let [hx, hy] = leg(48.0, 50.0, g);
                    [430.0, side * 88.0, 0.0, hx, hy]
                },
            ]
        };
        b.loft(subcut, &knots(leg_fat), 2.0);
        b.loft(muscle, &knots(0.0), 2.0);
        // Arms raised above the head, as for a whole-body PET/CT.
        let arm = [
            [side * 178.0, 15.0, 1390.0],
            [side * 168.0, 20.0, 1580.0],
            [side * 150.0, 30.0, 1780.0],
        ];
        let with_r = |r: f64| arm.map(|[x, y, z]| [x, y, z, r]);
        b.tube(subcut, &with_r(40.0 + 0.5 * fat));
        b.tube(muscle, &with_r(38.0));
        b.ellipsoid(
            subcut,
            [side * 165.0, 10.0, 1415.0],
            [50.0 + 0.4 * fat, 55.0, 45.0],
        );
        b.ellipsoid(muscle, [side * 165.0, 10.0, 1415.0], [46.0, 50.0, 40.0]);
    }
}

fn build_head_and_neck(b: &mut Builder) {
    let soft = b.structure("head_soft_tissue", Some("soft_tissue"), Tissue::Muscle);
    let neck = b.structure("neck", Some("soft_tissue"), Tissue::Muscle);
    let neck_fat = b.fat * 0.4 / b.scale[0];
    b.loft(
        neck,
        &[
            [1440.0, 0.0, 12.0, 62.0 + neck_fat, 58.0 + neck_fat],
            [1500.0, 0.0, 5.0, 56.0 + neck_fat, 56.0 + neck_fat],
            [1555.0, 0.0, 0.0, 58.0, 58.0],
        ],
        2.2,
    );
    b.ellipsoid(soft, [0.0, 5.0, 1660.0], [80.0, 100.0, 92.0]);
    b.ellipsoid(soft, [0.0, -42.0, 1578.0], [62.0, 58.0, 62.0]);
    let skull = b.structure("skull", Some("bone"), Tissue::CorticalBone);
    let skull_p = b.ellipsoid(skull, [0.0, 5.0, 1662.0], [75.0, 95.0, 87.0]);
    b.body
        .sites
        .marrow
        .push((skull_p, 0.4, "skull".to_string()));
    b.ellipsoid(skull, [0.0, 12.0, 1598.0], [55.0, 48.0, 9.0]);
    let mandible = b.structure("mandible", Some("bone"), Tissue::CorticalBone);
    for side in [1.0, -1.0] {
        b.tube(
            mandible,
            &[
                [side * 48.0, 5.0, 1592.0, 7.0],
                [side * 46.0, -8.0, 1540.0, 8.0],
                [side * 34.0, -55.0, 1524.0, 8.0],
                [0.0, -76.0, 1521.0, 9.0],
            ],
        );
    }
    let teeth = b.structure("teeth", Some("bone"), Tissue::Teeth);
    b.ellipsoid(teeth, [0.0, -58.0, 1560.0], [28.0, 20.0, 9.0]);
    b.ellipsoid(teeth, [0.0, -60.0, 1538.0], [26.0, 18.0, 7.0]);

    let airway = b.structure("airway", None, Tissue::Air);
    b.ellipsoid(airway, [0.0, -66.0, 1598.0], [10.0, 25.0, 22.0]);
    for side in [1.0, -1.0] {
        b.ellipsoid(airway, [side * 28.0, -48.0, 1596.0], [13.0, 15.0, 16.0]);
    }

    let orbit_fat = b.structure("orbital_fat", Some("soft_tissue"), Tissue::Fat);
    let eye = b.structure("eye", Some("soft_tissue"), Tissue::Soft);
    let lacrimal = b.structure("lacrimal_gland", Some("lacrimal_gland"), Tissue::Lacrimal);
    for side in [1.0, -1.0] {
        b.ellipsoid(orbit_fat, [side * 32.0, -52.0, 1630.0], [20.0, 24.0, 18.0]);
        b.ellipsoid(eye, [side * 32.0, -64.0, 1628.0], [12.0, 12.0, 12.0]);
        let j = b.jitter(1.5);
        let s = gauss(b.rng, 1.0, 0.12);
        let p = b.ellipsoid(
            lacrimal,
            [side * 37.0 + j[0], -58.0 + j[1], 1643.0 + j[2]],
            [8.0 * s, 5.0 * s, 4.0 * s],
        );
        b.body.sites.organ_primitives.push((lacrimal, p));
    }

    // Brain: grey ribbon over white matter, deep grey nuclei, ventricles, cerebellum.
    let grey = b.structure("brain_grey_matter", Some("brain"), Tissue::BrainGrey);
    let white = b.structure("brain_white_matter", Some("brain"), Tissue::BrainWhite);
    let deep = b.structure("basal_ganglia_thalami", Some("brain"), Tissue::DeepGrey);
    let csf = b.structure("ventricles", Some("brain"), Tissue::Csf);
    let cerebellum = b.structure("cerebellum", Some("brain"), Tissue::Cerebellum);
    let stem = b.structure("brainstem", Some("brain"), Tissue::BrainWhite);
    let g = b.ellipsoid(grey, [0.0, 5.0, 1664.0], [68.0, 88.0, 79.0]);
    b.body.sites.organ_primitives.push((grey, g));
    b.ellipsoid(white, [0.0, 5.0, 1676.0], [50.0, 68.0, 52.0]);
    for side in [1.0, -1.0] {
        b.ellipsoid(deep, [side * 22.0, -5.0, 1668.0], [9.0, 14.0, 11.0]);
        b.ellipsoid(deep, [side * 10.0, 12.0, 1668.0], [9.0, 11.0, 9.0]);
        b.ellipsoid(csf, [side * 10.0, 5.0, 1684.0], [6.0, 26.0, 8.0]);
    }
    b.ellipsoid(cerebellum, [0.0, 55.0, 1606.0], [50.0, 30.0, 22.0]);
    b.tube(
        stem,
        &[[0.0, 22.0, 1645.0, 12.0], [0.0, 28.0, 1590.0, 11.0]],
    );

    let parotid = b.structure("parotid_gland", Some("salivary_gland"), Tissue::Parotid);
    let submandibular = b.structure(
        "submandibular_gland",
        Some("salivary_gland"),
        Tissue::Submandibular,
    );
    let sublingual = b.structure(
        "sublingual_gland",
        Some("salivary_gland"),
        Tissue::Sublingual,
    );
    for side in [1.0, -1.0] {
        let s = gauss(b.rng, 1.0, 0.12);
        let j = b.jitter(2.0);
        let p = b.ellipsoid(
            parotid,
            [side * 52.0 + j[0], -4.0 + j[1], 1584.0 + j[2]],
            [13.0 * s, 21.0 * s, 25.0 * s],
        );
        b.body.sites.organ_primitives.push((parotid, p));
        let s = gauss(b.rng, 1.0, 0.12);
        let j = b.jitter(2.0);
        let p = b.ellipsoid(
            submandibular,
            [side * 34.0 + j[0], -36.0 + j[1], 1536.0 + j[2]],
            [11.0 * s, 13.0 * s, 10.0 * s],
        );
        b.body.sites.organ_primitives.push((submandibular, p));
        b.ellipsoid(sublingual, [side * 13.0, -56.0, 1541.0], [6.0, 12.0, 5.0]);
    }

    // Pharynx: muscular wall around an air column, Waldeyer's ring, larynx.
    let pharynx = b.structure("pharynx_wall", Some("pharynx"), Tissue::PharynxWall);
    let tonsil = b.structure("waldeyer_ring", Some("pharynx"), Tissue::Tonsil);
    let larynx = b.structure("larynx", Some("pharynx"), Tissue::Larynx);
    b.tube(
        pharynx,
        &[
            [0.0, 2.0, 1612.0, 14.0],
            [0.0, -8.0, 1545.0, 15.0],
            [0.0, -22.0, 1500.0, 13.0],
        ],
    );
    b.ellipsoid(larynx, [0.0, -30.0, 1495.0], [19.0, 17.0, 24.0]);
    b.ellipsoid(tonsil, [0.0, 6.0, 1604.0], [13.0, 8.0, 8.0]);
    b.ellipsoid(tonsil, [0.0, -30.0, 1548.0], [12.0, 6.0, 6.0]);
    for side in [1.0, -1.0] {
        let p = b.ellipsoid(tonsil, [side * 14.0, -14.0, 1560.0], [8.0, 8.0, 12.0]);
        b.body.sites.organ_primitives.push((tonsil, p));
    }
    b.tube(
        airway,
        &[
            [0.0, 2.0, 1612.0, 7.0],
            [0.0, -8.0, 1545.0, 8.0],
            [0.0, -26.0, 1505.0, 7.0],
            [0.0, -28.0, 1470.0, 8.0],
        ],
    );

    let thyroid = b.structure("thyroid", Some("thyroid"), Tissue::Thyroid);
    let s = gauss(b.rng, 1.0, 0.15);
    for side in [1.0, -1.0] {
        let p = b.ellipsoid(
            thyroid,
            [side * 18.0, -20.0, 1460.0],
            [9.0 * s, 9.0 * s, 21.0 * s],
        );
        b.body.sites.organ_primitives.push((thyroid, p));
    }
    b.ellipsoid(thyroid, [0.0, -30.0, 1452.0], [12.0, 4.0, 6.0]);
}

fn build_thorax(b: &mut Builder) {
    let mediastinum = b.structure("mediastinal_fat", Some("soft_tissue"), Tissue::Fat);
    b.loft(
        mediastinum,
        &[
            [1190.0, 0.0, 15.0, 120.0, 85.0],
            [1300.0, 0.0, 5.0, 128.0, 92.0],
            [1400.0, 0.0, 10.0, 115.0, 82.0],
            [1448.0, 0.0, 12.0, 60.0, 45.0],
        ],
        2.3,
    );
    let axillary_fat = b.structure("axillary_fat", Some("soft_tissue"), Tissue::Fat);
    for side in [1.0, -1.0] {
        b.ellipsoid(
            axillary_fat,
            [side * 128.0, 15.0, 1380.0],
            [30.0, 38.0, 40.0],
        );
    }
    let brown_fat = b.rng.random_bool(0.12);
    if brown_fat {
        let bat = b.structure("brown_fat", Some("soft_tissue"), Tissue::BrownFat);
        for side in [1.0, -1.0] {
            b.ellipsoid(bat, [side * 55.0, 20.0, 1455.0], [22.0, 18.0, 20.0]);
            b.ellipsoid(bat, [side * 30.0, 75.0, 1400.0], [14.0, 10.0, 30.0]);
        }
    }
    for (name, side, scale) in [("lung_left", 1.0, 1.0), ("lung_right", -1.0, 1.06)] {
        let lung = b.structure(name, Some("lung"), Tissue::Lung);
        let s = scale * gauss(b.rng, 1.0, 0.05);
        let knots: Vec<[f64; 5]> = [
            [1452.0, 42.0, 18.0, 20.0, 24.0],
            [1405.0, 68.0, 12.0, 48.0, 58.0],
            [1320.0, 80.0, 10.0, 62.0, 86.0],
            [1250.0, 83.0, 15.0, 64.0, 88.0],
            [1190.0, 86.0, 25.0, 62.0, 76.0],
            [1150.0, 95.0, 48.0, 42.0, 42.0],
        ]
        .iter()
        .map(|&[z, cx, cy, hx, hy]| [z, side * cx, cy, hx * s.min(1.08), hy * s.min(1.08)])
        .collect();
        let p = b.loft(lung, &knots, 2.2);
        b.body.sites.organ_primitives.push((lung, p));
    }
    let airway = b.structure("trachea_bronchi", None, Tissue::Air);
    b.tube(
        airway,
        &[
            [0.0, -28.0, 1470.0, 9.0],
            [0.0, -15.0, 1400.0, 9.0],
            [0.0, -2.0, 1340.0, 8.0],
        ],
    );
    for side in [1.0, -1.0] {
        b.tube(
            airway,
            &[
                [0.0, -2.0, 1340.0, 7.0],
                [side * 35.0, 2.0, 1322.0, 6.0],
                [side * 58.0, 8.0, 1302.0, 4.5],
            ],
        );
    }
    let pulmonary = b.structure("pulmonary_vessels", Some("lung"), Tissue::Blood);
    for side in [1.0, -1.0] {
        let hilum = [side * 58.0, 8.0, 1320.0];
        for _ in 0..7 {
            let dir: [f64; 3] = [
                side * b.rng.random_range(0.3..1.0),
                b.rng.random_range(-0.8..0.9),
                b.rng.random_range(-1.0..0.8),
            ];
            let n = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]).sqrt();
            let len = b.rng.random_range(40.0..75.0);
            let mid = [0, 1, 2].map(|i| hilum[i] + dir[i] / n * len * 0.55);
            let end = [0, 1, 2].map(|i| hilum[i] + dir[i] / n * len);
            b.tube(
                pulmonary,
                &[
                    [hilum[0], hilum[1], hilum[2], 5.0],
                    [mid[0], mid[1], mid[2], 3.5],
                    [end[0], end[1], end[2], 2.0],
                ],
            );
        }
    }
    let esophagus = b.structure("esophagus", Some("bowel"), Tissue::Esophagus);
    b.tube(
        esophagus,
        &[
            [0.0, -12.0, 1490.0, 8.0],
            [2.0, 18.0, 1400.0, 8.0],
            [8.0, 30.0, 1300.0, 8.0],
            [18.0, 22.0, 1225.0, 8.0],
            [38.0, 12.0, 1195.0, 9.0],
        ],
    );

    // Heart: long axis from the base (right, posterior, superior) to the apex.
    let axis = rotation_to([0.55, -0.5, -0.67]);
    let pericardial = b.structure("pericardial_fat", Some("soft_tissue"), Tissue::Fat);
    let myocardium = b.structure("myocardium", Some("heart"), Tissue::Myocardium);
    let blood = b.structure("heart_blood_pool", Some("heart"), Tissue::Blood);
    let s = gauss(b.rng, 1.0, 0.08);
    let c = [22.0, -22.0, 1290.0];
    b.ellipsoid_rot(pericardial, c, [72.0 * s, 52.0 * s, 52.0 * s], axis);
    let p = b.ellipsoid_rot(myocardium, c, [64.0 * s, 45.0 * s, 45.0 * s], axis);
    b.body.sites.organ_primitives.push((myocardium, p));
    let lv = [c[0] + 12.0, c[1] - 4.0, c[2] - 10.0];
    b.ellipsoid_rot(blood, lv, [40.0 * s, 22.0 * s, 22.0 * s], axis);
    b.ellipsoid_rot(
        blood,
        [c[0] - 18.0, c[1] - 14.0, c[2]],
        [38.0 * s, 18.0 * s, 22.0 * s],
        axis,
    );
    b.ellipsoid(blood, [8.0, 18.0, 1325.0], [26.0, 18.0, 20.0]);
    b.ellipsoid(blood, [-32.0, -2.0, 1300.0], [22.0, 22.0, 26.0]);
}

/// A rotation whose first column is the given direction.
fn rotation_to(dir: Vec3) -> [[f64; 3]; 3] {
    let n = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]).sqrt();
    let u = dir.map(|v| v / n);
    // Rotate the x axis onto u about the axis x × u.
    let axis = [0.0, -u[2], u[1]];
    let angle = u[0].clamp(-1.0, 1.0).acos();
    if (axis[1] * axis[1] + axis[2] * axis[2]) < 1e-12 {
        return rotation(
            [0.0, 0.0, 1.0],
            if u[0] > 0.0 {
                0.0
            } else {
                std::f64::consts::PI
            },
        );
    }
    rotation(axis, angle)
}

fn build_abdomen(b: &mut Builder) {
    let visceral = b.structure("visceral_fat", Some("soft_tissue"), Tissue::Fat);
    b.loft(
        visceral,
        &[
            [845.0, 0.0, -5.0, 38.0, 35.0],
            [875.0, 0.0, 5.0, 58.0, 50.0],
            [930.0, 0.0, 8.0, 80.0, 62.0],
            [980.0, 0.0, 5.0, 112.0, 76.0],
            [1050.0, 0.0, 0.0, 120.0, 80.0],
            [1180.0, 0.0, 0.0, 125.0, 85.0],
        ],
        2.2,
    );
    // Diaphragm dome: the upper abdomen bulges into the thorax, higher on the right.
    b.ellipsoid(visceral, [-15.0, 5.0, 1180.0], [128.0, 88.0, 52.0]);

    let psoas = b.structure("psoas", Some("soft_tissue"), Tissue::Muscle);
    for side in [1.0, -1.0] {
        b.tube(
            psoas,
            &[
                [side * 24.0, 42.0, 1175.0, 9.0],
                [side * 38.0, 38.0, 1100.0, 17.0],
                [side * 50.0, 32.0, 1020.0, 22.0],
                [side * 62.0, 15.0, 950.0, 20.0],
                [side * 76.0, -10.0, 900.0, 16.0],
                [side * 86.0, -25.0, 855.0, 14.0],
            ],
        );
    }

    let liver = b.structure("liver", Some("liver"), Tissue::Liver);
    let s = gauss(b.rng, 1.0, 0.08);
    let j = b.jitter(5.0);
    let p1 = b.ellipsoid(
        liver,
        [-62.0 + j[0], 5.0 + j[1], 1162.0 + j[2]],
        [88.0 * s, 88.0 * s, 72.0 * s],
    );
    let p2 = b.ellipsoid(
        liver,
        [18.0 + j[0], -38.0 + j[1], 1185.0 + j[2]],
        [55.0 * s, 42.0 * s, 34.0 * s],
    );
    b.body.sites.organ_primitives.push((liver, p1));
    b.body.sites.organ_primitives.push((liver, p2));
    let gallbladder = b.structure(
        "gallbladder",
        Some("adrenal_other_organ"),
        Tissue::Gallbladder,
    );
    let tilt = rotation([1.0, 0.0, 0.0], 0.5);
    b.ellipsoid_rot(
        gallbladder,
        [-48.0 + j[0], -58.0 + j[1], 1118.0 + j[2]],
        [14.0, 14.0, 32.0],
        tilt,
    );

    let spleen = b.structure("spleen", Some("spleen"), Tissue::Spleen);
    let s = gauss(b.rng, 1.0, 0.15);
    let j = b.jitter(5.0);
    let p = b.ellipsoid_rot(
        spleen,
        [92.0 + j[0], 48.0 + j[1], 1180.0 + j[2]],
        [28.0 * s, 50.0 * s, 58.0 * s],
        rotation([0.0, 0.0, 1.0], -0.5),
    );
    b.body.sites.organ_primitives.push((spleen, p));

    let stomach = b.structure("stomach", Some("bowel"), Tissue::Stomach);
    let content = b.structure("stomach_content", Some("bowel"), Tissue::StomachContent);
    let gas = b.structure("bowel_gas", None, Tissue::BowelGas);
    let path = [
        [55.0, 15.0, 1208.0, 38.0],
        [55.0, -15.0, 1160.0, 36.0],
        [35.0, -45.0, 1122.0, 28.0],
        [0.0, -55.0, 1102.0, 20.0],
        [-20.0, -45.0, 1105.0, 13.0],
    ];
    let prims = b.tube(stomach, &path);
    for &p in &prims {
        b.body.sites.organ_primitives.push((stomach, p));
    }
    b.tube(
        content,
        &path.map(|[x, y, z, r]| [x, y, z, (r - 6.0).max(3.0)]),
    );
    b.ellipsoid(gas, [48.0, -22.0, 1190.0], [22.0, 10.0, 18.0]);

    let pancreas = b.structure("pancreas", Some("adrenal_other_organ"), Tissue::Pancreas);
    let prims = b.tube(
        pancreas,
        &[
            [-35.0, -10.0, 1075.0, 14.0],
            [-10.0, -24.0, 1098.0, 11.0],
            [25.0, -10.0, 1110.0, 10.0],
            [72.0, 25.0, 1140.0, 8.0],
        ],
    );
    for &p in &prims {
        b.body.sites.organ_primitives.push((pancreas, p));
    }
    let duodenum = b.structure("duodenum", Some("bowel"), Tissue::Duodenum);
    b.tube(
        duodenum,
        &[
            [-20.0, -45.0, 1105.0, 13.0],
            [-42.0, -25.0, 1108.0, 13.0],
            [-55.0, -5.0, 1085.0, 12.0],
            [-52.0, -5.0, 1048.0, 12.0],
            [-20.0, -10.0, 1035.0, 12.0],
            [15.0, -10.0, 1040.0, 12.0],
            [30.0, -15.0, 1065.0, 12.0],
        ],
    );

    for (side, zc, name_k, name_p, name_s, name_a) in [
        (
            1.0,
            1125.0,
            "kidney_left",
            "renal_pelvis_left",
            "renal_sinus_fat_left",
            "adrenal_left",
        ),
        (
            -1.0,
            1105.0,
            "kidney_right",
            "renal_pelvis_right",
            "renal_sinus_fat_right",
            "adrenal_right",
        ),
    ] {
        let kidney = b.structure(name_k, Some("kidney"), Tissue::KidneyCortex);
        let pelvis = b.structure(name_p, Some("kidney"), Tissue::RenalPelvis);
        let sinus_fat = b.structure(name_s, Some("kidney"), Tissue::Fat);
        let adrenal = b.structure(name_a, Some("adrenal_other_organ"), Tissue::Adrenal);
        let s = gauss(b.rng, 1.0, 0.08);
        let j = b.jitter(6.0);
        let c = [side * 74.0 + j[0], 55.0 + j[1], zc + j[2]];
        let rot = compose(
            rotation([0.0, 0.0, 1.0], side * 0.5),
            rotation([0.0, 1.0, 0.0], side * 0.25),
        );
        let p = b.ellipsoid_rot(kidney, c, [26.0 * s, 24.0 * s, 54.0 * s], rot);
        b.body.sites.organ_primitives.push((kidney, p));
        // Fat of the renal sinus around the pelvis: the real CT's kidneys are 14 HU in median.
        b.ellipsoid_rot(
            sinus_fat,
            [c[0] - side * 9.0, c[1] - 3.0, c[2]],
            [14.0 * s, 11.0 * s, 34.0 * s],
            rot,
        );
        b.ellipsoid_rot(
            pelvis,
            [c[0] - side * 10.0, c[1] - 4.0, c[2]],
            [10.0 * s, 8.0 * s, 26.0 * s],
            rot,
        );
        let p = b.ellipsoid_rot(
            adrenal,
            [side * 44.0 + j[0] * 0.5, 40.0, zc + 62.0],
            [5.0, 14.0, 20.0],
            rotation([0.0, 0.0, 1.0], side * 0.6),
        );
        b.body.sites.organ_primitives.push((adrenal, p));
    }
}

fn build_pelvis(b: &mut Builder) {
    let colon = b.structure("colon", Some("bowel"), Tissue::Colon);
    let rectum = b.structure("rectum", Some("bowel"), Tissue::Rectum);
    let small = b.structure("small_bowel", Some("bowel"), Tissue::SmallBowel);

    // Colon frame, each link with its own content: gas or stool, and its own uptake.
    let frame = [
        [-75.0, -30.0, 958.0, 30.0],
        [-86.0, 0.0, 1005.0, 27.0],
        [-88.0, 10.0, 1065.0, 25.0],
        [-78.0, -25.0, 1112.0, 24.0],
        [-40.0, -72.0, 1082.0, 22.0],
        [0.0, -78.0, 1062.0, 22.0],
        [45.0, -72.0, 1095.0, 22.0],
        [90.0, 5.0, 1142.0, 22.0],
        [96.0, 25.0, 1080.0, 18.0],
        [90.0, 25.0, 1000.0, 18.0],
        [70.0, 0.0, 962.0, 16.0],
        [30.0, -15.0, 940.0, 16.0],
        [-8.0, 20.0, 935.0, 16.0],
        [0.0, 60.0, 922.0, 17.0],
    ];
    let prims = b.tube(colon, &frame);
    for p in prims {
        let gas: bool = b.rng.random_bool(0.35);
        let act = b.rng.random_range(0.15..1.0f32).powi(2);
        b.body.primitives[p].activity = act;
        b.body.primitives[p].hu_offset = if gas {
            -b.rng.random_range(500.0..900.0)
        } else {
            -b.rng.random_range(0.0..150.0)
        };
        b.body.sites.organ_primitives.push((colon, p));
    }
    let prims = b.tube(
        rectum,
        &[
            [0.0, 60.0, 922.0, 17.0],
            [0.0, 55.0, 880.0, 18.0],
            [0.0, 32.0, 842.0, 15.0],
            [0.0, 18.0, 812.0, 8.0],
        ],
    );
    for p in prims {
        b.body.primitives[p].activity = b.rng.random_range(0.5..1.0);
    }

    // Small bowel: a random walk between the duodenojejunal flexure and the caecum, kept
    // inside the mid-abdomen, each link with its own uptake.
    let lo = [-85.0, -88.0, 955.0];
    let hi = [85.0, 10.0, 1065.0];
    let mut pos = [30.0, -15.0, 1060.0];
    let end = [-70.0, -28.0, 960.0];
    let mut dir = [-0.5, -0.6, -0.3];
    let steps = 80;
    let mut points = vec![[pos[0], pos[1], pos[2], 13.0]];
    for step in 0..steps {
        let pull = step as f64 / steps as f64;
        for i in 0..3 {
            let to_end = end[i] - pos[i];
            dir[i] = 0.75 * dir[i] + b.rng.random_range(-0.6..0.6) + pull * pull * to_end / 40.0;
        }
        let n = (dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2])
            .sqrt()
            .max(1e-6);
        for i in 0..3 {
            dir[i] /= n;
            pos[i] = (pos[i] + 20.0 * dir[i]).clamp(lo[i], hi[i]);
        }
        points.push([pos[0], pos[1], pos[2], b.rng.random_range(10.0..14.0)]);
    }
    points.push([end[0], end[1], end[2], 14.0]);
    let prims = b.tube(small, &points);
    for p in prims {
        let act = b.rng.random_range(0.2..1.0f32);
        b.body.primitives[p].activity = act * act;
        b.body.primitives[p].hu_offset = if b.rng.random_bool(0.15) {
            -b.rng.random_range(300.0..800.0)
        } else {
            0.0
        };
        b.body.sites.organ_primitives.push((small, p));
    }

    // Bladder: its size follows filling; it rises out of the pelvis as it fills.
    let bladder = b.structure("bladder", Some("bladder"), Tissue::Bladder);
    let fill = b.body.habitus.bladder_filling;
    let k = 0.55 + 0.6 * fill;
    let p = b.ellipsoid(
        bladder,
        [0.0, -25.0, 872.0 + 30.0 * k],
        [48.0 * k, 40.0 * k, 34.0 * k],
    );
    b.body.sites.organ_primitives.push((bladder, p));

    let prostate_c = [0.0, -18.0, 838.0];
    if b.body.habitus.prostatectomy {
        let bed = b.structure("prostate_bed", Some("prostate"), Tissue::ProstateBed);
        let r = [10.0, 8.0, 9.0];
        b.ellipsoid(bed, prostate_c, r);
        b.body.sites.prostate = (
            b.p(prostate_c[0], prostate_c[1], prostate_c[2]),
            b.r(r[0], r[1], r[2]),
        );
    } else {
        let prostate = b.structure("prostate", Some("prostate"), Tissue::Prostate);
        let vesicle = b.structure("seminal_vesicles", Some("prostate"), Tissue::SeminalVesicle);
        let s = b.rng.random_range(0.9..1.45);
        let r = [20.0 * s, 16.0 * s, 18.0 * s];
        b.ellipsoid(prostate, prostate_c, r);
        b.body.sites.prostate = (
            b.p(prostate_c[0], prostate_c[1], prostate_c[2]),
            b.r(r[0], r[1], r[2]),
        );
        for side in [1.0, -1.0] {
            b.tube(
                vesicle,
                &[
                    [side * 8.0, 8.0, 858.0, 6.0],
                    [side * 30.0, 14.0, 872.0, 6.0],
                ],
            );
        }
    }

    let ureter = b.structure("ureter", Some("ureter"), Tissue::Ureter);
    for (side, zp) in [(1.0, 1110.0), (-1.0, 1090.0)] {
        let prims = b.tube(
            ureter,
            &[
                [side * 60.0, 48.0, zp, 3.5],
                [side * 52.0, 36.0, 1060.0, 3.0],
                [side * 46.0, 30.0, 1010.0, 3.0],
                [side * 48.0, 26.0, 965.0, 3.0],
                [side * 55.0, 16.0, 925.0, 3.0],
                [side * 46.0, 2.0, 885.0, 3.0],
                [side * 24.0, -8.0, 862.0, 3.0],
            ],
        );
        for p in prims {
            // Urine passes in boluses: some segments are full, others nearly empty.
            let full = b.rng.random_bool(0.4);
            b.body.primitives[p].activity = if full {
                b.rng.random_range(0.6..1.0)
            } else {
                b.rng.random_range(0.05..0.3)
            };
            b.body.sites.ureter.push(p);
        }
    }
    let side_wall = b.structure("pelvic_wall_muscle", Some("soft_tissue"), Tissue::Muscle);
    for side in [1.0, -1.0] {
        b.ellipsoid(side_wall, [side * 62.0, 5.0, 880.0], [12.0, 32.0, 28.0]);
    }
}

fn build_skeleton(b: &mut Builder) {
    let cortex = b.structure("cortical_bone", Some("bone"), Tissue::CorticalBone);
    let marrow = b.structure("bone_marrow", Some("bone"), Tissue::TrabecularBone);
    let shaft_marrow = b.structure("femoral_shaft_marrow", Some("bone"), Tissue::YellowMarrow);
    let disc = b.structure(
        "intervertebral_disc",
        Some("soft_tissue"),
        Tissue::Cartilage,
    );
    let canal = b.structure("spinal_canal", Some("soft_tissue"), Tissue::SpinalCord);
    let cartilage = b.structure("costal_cartilage", Some("bone"), Tissue::Cartilage);

    let levels = vertebral_levels();
    let mut canal_path = Vec::new();
    for (i, (name, z, y, hx, hy, hz)) in levels.iter().enumerate() {
        let (z, y, hx, hy, hz) = (*z, *y, *hx, *hy, *hz);
        // Disc above the body (none above C1).
        if i > 0 {
            let zd = 0.5 * (z + levels[i - 1].1);
            let gap = 0.5 * (levels[i - 1].1 - z) - hz;
            b.superellipsoid(
                disc,
                [0.0, y, zd + 0.0],
                [hx, hy, gap.max(2.0) + 1.5],
                2.6,
                4.0,
            );
        }
        // A vertebral body's cortex is about 1 mm thick: mostly marrow on a 3 mm voxel.
        b.superellipsoid(cortex, [0.0, y, z], [hx, hy, hz], 2.6, 5.0);
        let m = b.superellipsoid(
            marrow,
            [0.0, y, z],
            [hx - 1.2, hy - 1.2, hz - 1.0],
            2.6,
            5.0,
        );
        b.body
            .sites
            .marrow
            .push((m, hx * hy * hz / 2000.0, name.clone()));
        // Neural arch, transverse and spinous processes.
        let yc = y + hy + 8.0;
        let arch_r = if name.starts_with('C') { 10.0 } else { 12.0 };
        let spine_len = if name.starts_with('T') { 38.0 } else { 30.0 };
        let spine_drop = if name.starts_with('T') { 18.0 } else { 4.0 };
        // Arch and processes: marrow inside a cortical shell, as the body.
        let shelled = |b: &mut Builder, path: &[[f64; 4]]| {
            b.tube(cortex, path);
            b.tube(
                marrow,
                &path
                    .iter()
                    .map(|&[x, y, z, r]| [x, y, z, (r - 1.5).max(1.0)])
                    .collect::<Vec<_>>(),
            );
        };
        shelled(
            b,
            &[
                [0.0, yc, z, arch_r],
                [0.0, yc + spine_len, z - spine_drop, 5.0],
            ],
        );
        let tp_len = if name.starts_with('L') { 42.0 } else { 30.0 };
        for side in [1.0, -1.0] {
            shelled(
                b,
                &[
                    [side * 8.0, yc - 2.0, z, 6.0],
                    [side * tp_len, yc + 6.0, z, 5.0],
                ],
            );
        }
        canal_path.push([0.0, yc, z, if name.starts_with('C') { 7.0 } else { 6.5 }]);
    }
    // Sacrum and coccyx.
    for (c, r) in [
        ([0.0, 48.0, 985.0], [46.0, 22.0, 18.0]),
        ([0.0, 58.0, 955.0], [38.0, 18.0, 15.0]),
        ([0.0, 68.0, 928.0], [28.0, 14.0, 13.0]),
        ([0.0, 73.0, 902.0], [18.0, 10.0, 12.0]),
        ([0.0, 69.0, 878.0], [8.0, 7.0, 10.0]),
    ] {
        b.ellipsoid(cortex, c, r);
        let m = b.ellipsoid(marrow, c, [r[0] - 3.0, r[1] - 3.0, r[2] - 3.0]);
        b.body
            .sites
            .marrow
            .push((m, r[0] * r[1] * r[2] / 2000.0, "sacrum".to_string()));
    }
    canal_path.push([0.0, 70.0, 985.0, 5.0]);
    b.tube(canal, &canal_path);

    // Ribs: arcs inside the chest wall from the transverse process to the front, descending.
    for (i, level) in levels.iter().filter(|l| l.0.starts_with('T')).enumerate() {
        let z0 = level.1;
        let rib = i + 1;
        let drop = 25.0 + 4.0 * rib as f64;
        let end_angle: f64 = match rib {
            1..=7 => -1.15,
            8..=10 => -0.8,
            _ => -0.1 - 0.1 * (12 - rib) as f64,
        };
        for side in [1.0, -1.0] {
            let mut pts = Vec::new();
            let n = 9;
            let start_angle = 1.25;
            for k in 0..=n {
                let t = k as f64 / n as f64;
                let ang = start_angle + (end_angle - start_angle) * t;
                let z = z0 - drop * (1.0 - (1.0 - t) * (1.0 - t)) - 5.0;
                let [_, cy, hx, hy] = trunk_section(z);
                let (hx, hy) = (hx - 9.0, hy - 9.0);
                let x = side * hx * ang.cos().max(0.25);
                let y = cy + hy * ang.sin();
                pts.push([x, y, z]);
            }
            let r_cortex = if rib <= 2 { 4.5 } else { 5.0 };
            let outer: Vec<[f64; 4]> = pts.iter().map(|p| [p[0], p[1], p[2], r_cortex]).collect();
            b.tube(cortex, &outer);
            let inner: Vec<[f64; 4]> = pts
                .iter()
                .map(|p| [p[0], p[1], p[2], r_cortex - 1.5])
                .collect();
            let prims = b.tube(marrow, &inner);
            for p in prims {
                b.body
                    .sites
                    .marrow
                    .push((p, 0.15, sided(&format!("rib_{rib}"), side)));
            }
            if rib <= 10 {
                let last = pts[pts.len() - 1];
                let [_, cy, _, hy] = trunk_section(last[2] - 15.0);
                b.tube(
                    cartilage,
                    &[
                        [last[0], last[1], last[2], 4.5],
                        [
                            side * 18.0,
                            cy - hy + 14.0,
                            last[2] + if rib <= 7 { 0.0 } else { 30.0 },
                            4.0,
                        ],
                    ],
                );
            }
        }
    }
    // Sternum and clavicles.
    for (zc, hz, hx) in [(1405.0, 24.0, 26.0), (1300.0, 72.0, 15.0)] {
        let [_, cy, _, hy] = trunk_section(zc);
        let c = [0.0, cy - hy + 13.0, zc];
        b.superellipsoid(cortex, c, [hx, 7.0, hz], 2.5, 3.0);
        let m = b.superellipsoid(marrow, c, [hx - 2.5, 4.5, hz - 2.5], 2.5, 3.0);
        b.body.sites.marrow.push((m, 0.5, "sternum".to_string()));
    }
    for side in [1.0, -1.0] {
        let [_, cy, _, hy] = trunk_section(1435.0);
        let path = [
            [side * 18.0, cy - hy + 18.0, 1436.0],
            [side * 80.0, cy - hy + 22.0, 1448.0],
            [side * 148.0, -12.0, 1452.0],
        ];
        b.tube(cortex, &path.map(|[x, y, z]| [x, y, z, 7.0]));
        b.tube(marrow, &path.map(|[x, y, z]| [x, y, z, 3.5]));
        // Scapula blade behind the ribs, glenoid, humerus raised beside the head.
        let scap_c = [side * 100.0, 88.0, 1355.0];
        let rot = rotation([0.0, 0.0, 1.0], side * 0.45);
        b.ellipsoid_rot(cortex, scap_c, [48.0, 6.0, 62.0], rot);
        let m = b.ellipsoid_rot(marrow, scap_c, [44.0, 3.0, 58.0], rot);
        b.body.sites.marrow.push((m, 0.3, sided("scapula", side)));
        let humerus = [
            [side * 168.0, 15.0, 1410.0],
            [side * 166.0, 20.0, 1580.0],
            [side * 152.0, 30.0, 1770.0],
        ];
        b.ellipsoid(cortex, [side * 168.0, 15.0, 1412.0], [22.0, 22.0, 22.0]);
        b.tube(cortex, &humerus.map(|[x, y, z]| [x, y, z, 12.0]));
        let m = b.ellipsoid(marrow, [side * 168.0, 15.0, 1412.0], [19.0, 19.0, 19.0]);
        b.body.sites.marrow.push((m, 0.4, sided("humerus", side)));
        b.tube(shaft_marrow, &humerus.map(|[x, y, z]| [x, y, z, 6.0]));
    }

    // Pelvis: iliac wings, acetabula, pubic and ischial rami; femora.
    for side in [1.0, -1.0] {
        let wing_c = [side * 85.0, 40.0, 1018.0];
        let rot = rotation([0.0, 0.0, 1.0], -side * 0.6);
        b.ellipsoid_rot(cortex, wing_c, [52.0, 11.0, 48.0], rot);
        let m = b.ellipsoid_rot(marrow, wing_c, [48.0, 7.0, 44.0], rot);
        b.body.sites.marrow.push((m, 2.0, sided("ilium", side)));
        let ac = [side * 78.0, 5.0, 920.0];
        b.ellipsoid(cortex, ac, [28.0, 30.0, 34.0]);
        let m = b.ellipsoid(marrow, ac, [25.0, 27.0, 31.0]);
        b.body
            .sites
            .marrow
            .push((m, 1.5, sided("acetabulum", side)));
        let rami = [
            [side * 72.0, -10.0, 910.0],
            [side * 18.0, -52.0, 884.0],
            [side * 22.0, -48.0, 868.0],
            [side * 48.0, -10.0, 846.0],
            [side * 62.0, 24.0, 866.0],
        ];
        b.tube(cortex, &rami.map(|[x, y, z]| [x, y, z, 10.0]));
        let prims = b.tube(marrow, &rami.map(|[x, y, z]| [x, y, z, 7.0]));
        for p in prims {
            b.body.sites.marrow.push((p, 0.4, sided("pubis", side)));
        }
        let ischium = [side * 68.0, 22.0, 888.0];
        b.ellipsoid(cortex, ischium, [15.0, 18.0, 30.0]);
        let m = b.ellipsoid(marrow, ischium, [12.0, 15.0, 27.0]);
        b.body.sites.marrow.push((m, 0.6, sided("ischium", side)));

        let head = [side * 90.0, 2.0, 915.0];
        b.ellipsoid(cortex, head, [23.0, 23.0, 23.0]);
        let m = b.ellipsoid(marrow, head, [21.0, 21.0, 21.0]);
        b.body
            .sites
            .marrow
            .push((m, 1.0, sided("femoral_head", side)));
        let neck = [
            [head[0], head[1], head[2], 14.0],
            [side * 120.0, 10.0, 895.0, 15.0],
        ];
        b.tube(cortex, &neck);
        let prims = b.tube(marrow, &neck.map(|[x, y, z, r]| [x, y, z, r - 3.0]));
        for p in prims {
            b.body
                .sites
                .marrow
                .push((p, 0.6, sided("femoral_neck", side)));
        }
        let troch = [side * 126.0, 14.0, 893.0];
        b.ellipsoid(cortex, troch, [14.0, 16.0, 20.0]);
        let m = b.ellipsoid(marrow, troch, [11.0, 13.0, 17.0]);
        b.body
            .sites
            .marrow
            .push((m, 0.5, sided("greater_trochanter", side)));
        let shaft = [
            [side * 118.0, 8.0, 885.0],
            [side * 102.0, 2.0, 700.0],
            [side * 92.0, -2.0, 480.0],
        ];
        b.tube(cortex, &shaft.map(|[x, y, z]| [x, y, z, 14.0]));
        let prims = b.tube(shaft_marrow, &shaft.map(|[x, y, z]| [x, y, z, 8.0]));
        for p in prims {
            b.body.sites.marrow.push((p, 0.5, sided("femur", side)));
        }
    }
}

fn build_vessels(b: &mut Builder) {
    let artery = b.structure("arteries", Some("soft_tissue"), Tissue::Artery);
    let vein = b.structure("veins", Some("soft_tissue"), Tissue::Vein);
    b.tube(
        artery,
        &[
            [10.0, -22.0, 1310.0, 14.0],
            [4.0, -26.0, 1360.0, 14.0],
            [0.0, -8.0, 1386.0, 12.0],
            [14.0, 22.0, 1376.0, 11.0],
            [22.0, 40.0, 1330.0, 11.0],
            [20.0, 45.0, 1250.0, 11.0],
            [12.0, 35.0, 1190.0, 10.0],
            [8.0, 20.0, 1120.0, 10.0],
            [5.0, 15.0, 1060.0, 9.0],
            [3.0, 15.0, 1040.0, 8.0],
        ],
    );
    b.tube(
        artery,
        &[[15.0, -35.0, 1305.0, 12.0], [10.0, -15.0, 1338.0, 12.0]],
    );
    for side in [1.0, -1.0] {
        b.tube(
            artery,
            &[[10.0, -15.0, 1338.0, 9.0], [side * 58.0, 6.0, 1333.0, 8.0]],
        );
        b.tube(
            artery,
            &[
                [3.0, 15.0, 1040.0, 6.5],
                [side * 45.0, 25.0, 985.0, 6.0],
                [side * 65.0, 5.0, 930.0, 5.0],
                [side * 76.0, -25.0, 880.0, 5.0],
                [side * 86.0, -32.0, 830.0, 4.5],
                [side * 88.0, -18.0, 700.0, 4.0],
                [side * 86.0, -5.0, 560.0, 3.5],
            ],
        );
        b.tube(
            artery,
            &[
                [side * 45.0, 25.0, 985.0, 4.0],
                [side * 55.0, 45.0, 948.0, 3.5],
            ],
        );
        b.tube(
            artery,
            &[
                [side * 25.0, 0.0, 1380.0, 4.0],
                [side * 28.0, 0.0, 1565.0, 3.5],
            ],
        );
        b.tube(
            vein,
            &[
                [side * 14.0 - 6.0, 22.0, 1040.0, 7.0],
                [side * 42.0, 32.0, 985.0, 7.0],
                [side * 62.0, 10.0, 930.0, 6.5],
                [side * 70.0, -22.0, 880.0, 6.5],
                [side * 78.0, -30.0, 830.0, 6.0],
                [side * 80.0, -15.0, 700.0, 5.0],
                [side * 80.0, -2.0, 560.0, 4.5],
            ],
        );
        b.tube(
            vein,
            &[
                [side * 36.0, 5.0, 1390.0, 5.5],
                [side * 38.0, 5.0, 1565.0, 5.0],
            ],
        );
        b.tube(
            vein,
            &[
                [-28.0, -8.0, 1390.0, 8.0],
                [side * 70.0, -8.0, 1428.0, 7.0],
                [side * 150.0, 5.0, 1440.0, 6.0],
            ],
        );
    }
    b.tube(
        vein,
        &[
            [-20.0, 22.0, 1040.0, 11.0],
            [-22.0, 15.0, 1130.0, 12.0],
            [-25.0, 5.0, 1200.0, 12.0],
            [-30.0, 0.0, 1280.0, 13.0],
        ],
    );
    b.tube(
        vein,
        &[[-30.0, -8.0, 1392.0, 9.0], [-30.0, -4.0, 1318.0, 10.0]],
    );
}

fn build_ganglia(b: &mut Builder) {
    let ganglion = b.structure("ganglia", Some("ganglion"), Tissue::Ganglion);
    for side in [1.0, -1.0] {
        for (c, r) in [
            ([side * 32.0, 16.0, 1545.0], [4.0, 4.0, 12.0]),
            ([side * 28.0, 45.0, 1432.0], [5.0, 4.0, 8.0]),
            ([side * 16.0, 10.0, 1152.0], [7.0, 4.5, 8.0]),
            ([side * 24.0, 58.0, 945.0], [3.5, 3.5, 6.0]),
        ] {
            let p = b.ellipsoid(ganglion, c, r);
            b.body.sites.organ_primitives.push((ganglion, p));
        }
    }
}

/// Normal nodes: (station, S6 class, reference centres for the left side, mirrored).
const STATIONS: [(&str, &str, &[[f64; 3]]); 12] = [
    (
        "external_iliac",
        "ln_pelvic",
        &[[70.0, -18.0, 918.0], [78.0, -30.0, 885.0]],
    ),
    (
        "obturator",
        "ln_pelvic",
        &[[55.0, 0.0, 895.0], [52.0, 8.0, 878.0]],
    ),
    ("internal_iliac", "ln_pelvic", &[[50.0, 38.0, 955.0]]),
    ("presacral", "ln_pelvic", &[[12.0, 50.0, 962.0]]),
    (
        "common_iliac",
        "ln_common_iliac",
        &[[32.0, 12.0, 1012.0], [44.0, 16.0, 995.0]],
    ),
    (
        "paraaortic",
        "ln_retroperitoneal",
        &[[28.0, 18.0, 1080.0], [28.0, 22.0, 1130.0]],
    ),
    ("paracaval", "ln_retroperitoneal", &[[-40.0, 15.0, 1070.0]]),
    (
        "inguinal",
        "ln_inguinal",
        &[[90.0, -55.0, 835.0], [76.0, -58.0, 818.0]],
    ),
    (
        "mediastinal",
        "ln_supradiaphragmatic",
        &[
            [-14.0, -12.0, 1372.0],
            [0.0, 12.0, 1312.0],
            [20.0, -12.0, 1352.0],
        ],
    ),
    ("hilar", "ln_supradiaphragmatic", &[[55.0, -4.0, 1318.0]]),
    (
        "axillary",
        "ln_supradiaphragmatic",
        &[[125.0, 12.0, 1378.0], [132.0, 25.0, 1395.0]],
    ),
    (
        "cervical_supraclavicular",
        "ln_supradiaphragmatic",
        &[
            [40.0, -6.0, 1528.0],
            [42.0, 0.0, 1492.0],
            [48.0, -4.0, 1450.0],
        ],
    ),
];

fn build_nodes(b: &mut Builder) {
    for (name, class, centres) in STATIONS {
        let s = b.structure(&format!("ln_{name}"), Some(class), Tissue::Node);
        let mut nodes = Vec::new();
        let mirrored = !matches!(
            name,
            "presacral" | "mediastinal" | "paracaval" | "paraaortic"
        );
        for side in if mirrored {
            &[1.0, -1.0][..]
        } else {
            &[1.0][..]
        } {
            for c in centres.iter() {
                let j = b.jitter(2.5);
                let c = [side * c[0] + j[0], c[1] + j[1], c[2] + j[2]];
                let r = b.rng.random_range(3.0..5.5);
                let node = b.ellipsoid(s, c, [r, r * 0.8, r * 1.3]);
                // Unspecific uptake differs from node to node; a few are clearly visible.
                b.body.primitives[node].activity = if b.rng.random_bool(0.15) {
                    b.rng.random_range(1.5..2.5)
                } else {
                    b.rng.random_range(0.4..1.0)
                };
                nodes.push(b.p(c[0], c[1], c[2]));
            }
        }
        b.body.sites.node_stations.push(NodeStation {
            name,
            class,
            structure: s,
            nodes,
        });
    }
}
