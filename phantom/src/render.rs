//! Image formation: one scene (body primitives plus lesions, each with a concentration and an
//! attenuation) rendered onto the PET grid (fine activity map, PSF blur, averaging onto the PET
//! voxels, noise) and onto the CT grid (sub-slice sampling, CT blur, correlated noise).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::body::{Body, Primitive};
use super::disease::LesionPlan;
use super::raster::{Plane, blur_plane, blur_stack, gaussian_kernel, paint, value_noise};
use super::shape::{Bounds, Shape};
use uptake::volume::Geometry;

/// Random streams (ChaCha stream numbers) of one study; each purpose has its own so that a
/// change in one does not reshuffle the others. (Associated constants, so that the C header
/// generator does not mistake them for ABI constants.)
pub(crate) struct Stream;

impl Stream {
    pub(crate) const ANATOMY: u64 = 1;
    pub(crate) const DISEASE: u64 = 2;
    pub(crate) const UPTAKE: u64 = 3;
    pub(crate) const HU: u64 = 4;
    pub(crate) const TEXTURE: u64 = 5;
    pub(crate) const SCANNER: u64 = 6;
    /// PET noise of slice k uses stream PET_NOISE + k.
    pub(crate) const PET_NOISE: u64 = 1 << 32;
    /// CT noise of slice k uses stream CT_NOISE + k.
    pub(crate) const CT_NOISE: u64 = 2 << 32;
}

/// A seeded generator for one stream.
pub fn rng(seed: u64, stream_id: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream_id);
    r
}

/// The body and its lesions with everything needed to form images.
pub struct Scene<'a> {
    pub body: &'a Body,
    pub lesions: &'a [LesionPlan],
    pub lesion_prims: Vec<Primitive>,
    /// SUV concentration of each body primitive (structure concentration × local factor).
    pub prim_activity: Vec<f32>,
    /// SUV concentration at the centre of each lesion (its profile falls off outwards).
    pub lesion_activity: Vec<f32>,
    /// HU of each body primitive and its texture amplitude.
    pub prim_hu: Vec<f32>,
    pub prim_texture: Vec<f32>,
    pub lesion_hu: Vec<f32>,
    pub texture_seed: u64,
}

impl<'a> Scene<'a> {
    pub fn new(body: &'a Body, lesions: &'a [LesionPlan]) -> Self {
        let lesion_prims = lesions
            .iter()
            .map(|l| {
                let shape = Shape::Ellipsoid {
                    centre: l.centre,
                    radii: l.radii,
                    rotation: l.rotation,
                };
                Primitive {
                    bounds: shape.bounds(),
                    shape,
                    structure: l.host,
                    activity: 1.0,
                    hu_offset: 0.0,
                }
            })
            .collect();
        Scene {
            body,
            lesions,
            lesion_prims,
            prim_activity: vec![0.0; body.primitives.len()],
            lesion_activity: vec![0.0; lesions.len()],
            prim_hu: vec![0.0; body.primitives.len()],
            prim_texture: vec![0.0; body.primitives.len()],
            lesion_hu: lesions.iter().map(|l| l.hu).collect(),
            texture_seed: 0,
        }
    }
}

/// Relative concentration inside lesion `l` at point p: peaked towards the centre, with a
/// cold core for necrotic lesions.
pub fn lesion_profile(l: &LesionPlan, p: [f64; 3]) -> f32 {
    let d = [p[0] - l.centre[0], p[1] - l.centre[1], p[2] - l.centre[2]];
    let r = &l.rotation;
    let q2: f64 = (0..3)
        .map(|j| ((r[0][j] * d[0] + r[1][j] * d[1] + r[2][j] * d[2]) / l.radii[j]).powi(2))
        .sum();
    if l.necrotic && q2 < 0.25 {
        return 0.25;
    }
    (1.0 - 0.35 * q2.min(1.0)) as f32
}

/// What a fine-grid render should contain.
#[derive(Clone, Copy, PartialEq)]
pub enum Select {
    /// Everything, with labels.
    All,
    /// Only the activity of one structure (for its recovery coefficient).
    Structure(usize),
    /// Only one lesion's activity with unit concentration.
    Lesion(usize),
}

/// A box of PET voxels rendered on a finer grid (each PET voxel split into `sub` pieces).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// First PET voxel and count along each axis.
    pub start: [usize; 3],
    pub count: [usize; 3],
    pub sub: [usize; 3],
}

impl Window {
    /// The PET voxels covering `bounds` (mm) plus `margin_vox`, clipped to the grid.
    pub fn covering(
        g: &Geometry,
        bounds: Bounds,
        margin_vox: [usize; 3],
        sub: [usize; 3],
    ) -> Option<Self> {
        let lo = g.patient_to_voxel(bounds.lo);
        let hi = g.patient_to_voxel(bounds.hi);
        let dims = g.dims();
        let mut start = [0; 3];
        let mut count = [0; 3];
        for a in 0..3 {
            let (l, h) = (lo[a].min(hi[a]), lo[a].max(hi[a]));
            let s = (l.floor() as i64 - margin_vox[a] as i64).max(0);
            let e = (h.ceil() as i64 + margin_vox[a] as i64).min(dims[a] as i64 - 1);
            if e < s {
                return None;
            }
            start[a] = s as usize;
            count[a] = (e - s + 1) as usize;
        }
        Some(Window { start, count, sub })
    }

    fn fine_dims(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.count[a] * self.sub[a])
    }

    /// The fine plane and the z of fine slice k.
    fn fine_plane(&self, g: &Geometry) -> (Plane, f64, f64) {
        let s = g.spacing_mm();
        let o = g.origin_mm();
        let first =
            |a: usize| o[a] + (self.start[a] as f64 - 0.5 + 0.5 / self.sub[a] as f64) * s[a];
        let fd = self.fine_dims();
        (
            Plane {
                x0: first(0),
                dx: s[0] / self.sub[0] as f64,
                nx: fd[0],
                y0: first(1),
                dy: s[1] / self.sub[1] as f64,
                ny: fd[1],
            },
            first(2),
            s[2] / self.sub[2] as f64,
        )
    }
}

/// PET rendered in a window: noise-free SUV per PET voxel, and the labels when `Select::All`.
pub struct PetWindow {
    pub window: Window,
    pub suv: Vec<f32>,
    pub structures: Vec<u16>,
    pub lesions: Vec<u16>,
}

/// Renders the fine activity of `select` in `win`, blurs it by the PSF (FWHM mm) and averages
/// it onto the PET voxels of the window.
pub fn render_pet(
    scene: &Scene,
    g: &Geometry,
    win: Window,
    fwhm_mm: f64,
    select: Select,
) -> PetWindow {
    let (plane, z0, dz) = win.fine_plane(g);
    let fd = win.fine_dims();
    let plane_len = plane.len();
    let with_labels = select == Select::All;
    let mut act = vec![0.0f32; plane_len * fd[2]];
    let mut lab_s = vec![0u16; if with_labels { act.len() } else { 0 }];
    let mut lab_l = vec![0u16; if with_labels { act.len() } else { 0 }];

    let fill = |k: usize, act: &mut [f32], ls: Option<&mut [u16]>, ll: Option<&mut [u16]>| {
        let z = z0 + k as f64 * dz;
        let mut prim = vec![0u16; plane_len];
        let mut les = vec![0u16; plane_len];
        paint(&scene.body.primitives, &plane, z, &mut prim);
        paint(&scene.lesion_prims, &plane, z, &mut les);
        for idx in 0..plane_len {
            let (l, p) = (les[idx] as usize, prim[idx] as usize);
            let value = if l > 0 {
                let lesion = &scene.lesions[l - 1];
                let keep = match select {
                    Select::All => Some(scene.lesion_activity[l - 1]),
                    Select::Lesion(i) if i == l - 1 => Some(1.0),
                    _ => None,
                };
                keep.map(|a| {
                    let x = plane.x0 + (idx % plane.nx) as f64 * plane.dx;
                    let y = plane.y0 + (idx / plane.nx) as f64 * plane.dy;
                    a * lesion_profile(lesion, [x, y, z])
                })
                .unwrap_or(0.0)
            } else if p > 0 {
                match select {
                    Select::All => scene.prim_activity[p - 1],
                    Select::Structure(s) if scene.body.primitives[p - 1].structure == s => {
                        scene.body.primitives[p - 1].activity
                    }
                    _ => 0.0,
                }
            } else {
                0.0
            };
            act[idx] = value;
        }
        if let (Some(ls), Some(ll)) = (ls, ll) {
            for idx in 0..plane_len {
                let (l, p) = (les[idx] as usize, prim[idx] as usize);
                ls[idx] = if l > 0 {
                    (scene.lesions[l - 1].host + 1) as u16
                } else if p > 0 {
                    (scene.body.primitives[p - 1].structure + 1) as u16
                } else {
                    0
                };
                ll[idx] = l as u16;
            }
        }
    };
    if with_labels {
        act.par_chunks_mut(plane_len)
            .zip(lab_s.par_chunks_mut(plane_len))
            .zip(lab_l.par_chunks_mut(plane_len))
            .enumerate()
            .for_each(|(k, ((a, s), l))| fill(k, a, Some(s), Some(l)));
    } else {
        act.par_chunks_mut(plane_len)
            .enumerate()
            .for_each(|(k, a)| fill(k, a, None, None));
    }

    let n = win.count;
    let out_len = n[0] * n[1] * n[2];
    let [sx, sy, sz] = win.sub;
    let per_voxel = sx * sy * sz;
    let slice = n[0] * n[1];
    // Fine sample `a` of PET voxel (i, j) in PET slice k, for sub-slice c and sub-row b.
    let fine_row = |k: usize, c: usize, j: usize, b: usize, i: usize| {
        ((k * sz + c) * fd[1] + j * sy + b) * fd[0] + i * sx
    };

    // Labels from the unblurred samples. A voxel belongs to a lesion that covers at least half
    // of it; otherwise to the structure with the largest activity-weighted share, so a small
    // hot gland owns the voxels its signal comes from even when it fills less than half.
    let mut structures = vec![0u16; if with_labels { out_len } else { 0 }];
    let mut lesions = vec![0u16; if with_labels { out_len } else { 0 }];
    if with_labels {
        structures
            .par_chunks_mut(slice)
            .zip(lesions.par_chunks_mut(slice))
            .enumerate()
            .for_each(|(k, (st, le))| {
                let mut weights: Vec<(u16, f32)> = Vec::with_capacity(8);
                let mut counts: Vec<(u16, u16)> = Vec::with_capacity(8);
                for j in 0..n[1] {
                    for i in 0..n[0] {
                        weights.clear();
                        counts.clear();
                        for c in 0..sz {
                            for b in 0..sy {
                                let row = fine_row(k, c, j, b, i);
                                for a in row..row + sx {
                                    add_weight(&mut weights, lab_s[a], act[a] + 0.05);
                                    tally(&mut counts, lab_l[a]);
                                }
                            }
                        }
                        let o = j * n[0] + i;
                        let lesion = counts
                            .iter()
                            .filter(|c| c.0 > 0 && 2 * c.1 as usize >= per_voxel)
                            .max_by_key(|c| (c.1, std::cmp::Reverse(c.0)))
                            .map(|c| c.0)
                            .unwrap_or(0);
                        le[o] = lesion;
                        st[o] = if lesion > 0 {
                            (scene.lesions[lesion as usize - 1].host + 1) as u16
                        } else {
                            weights
                                .iter()
                                .max_by(|x, y| x.1.total_cmp(&y.1).then(y.0.cmp(&x.0)))
                                .map(|w| w.0)
                                .unwrap_or(0)
                        };
                    }
                }
            });
    }

    let sigma = fwhm_mm / (8.0 * 2f64.ln()).sqrt();
    let kx = gaussian_kernel(sigma / plane.dx);
    let ky = gaussian_kernel(sigma / plane.dy);
    let kz = gaussian_kernel(sigma / dz);
    act.par_chunks_mut(plane_len)
        .for_each(|p| blur_plane(p, plane.nx, plane.ny, &kx, &ky));
    let act = blur_stack(&act, plane_len, &kz);

    let mut suv = vec![0.0f32; out_len];
    suv.par_chunks_mut(slice).enumerate().for_each(|(k, out)| {
        for j in 0..n[1] {
            for i in 0..n[0] {
                let mut acc = 0.0f32;
                for c in 0..sz {
                    for b in 0..sy {
                        let row = fine_row(k, c, j, b, i);
                        acc += act[row..row + sx].iter().sum::<f32>();
                    }
                }
                out[j * n[0] + i] = acc / per_voxel as f32;
            }
        }
    });
    PetWindow {
        window: win,
        suv,
        structures,
        lesions,
    }
}

/// Adds `w` to a label's weight in a tiny (label, weight) list.
fn add_weight(weights: &mut Vec<(u16, f32)>, label: u16, w: f32) {
    match weights.iter_mut().find(|x| x.0 == label) {
        Some(x) => x.1 += w,
        None => weights.push((label, w)),
    }
}

/// Counts one label occurrence in a tiny (label, count) list.
fn tally(counts: &mut Vec<(u16, u16)>, label: u16) {
    match counts.iter_mut().find(|c| c.0 == label) {
        Some(c) => c.1 += 1,
        None => counts.push((label, 1)),
    }
}

/// Scanner noise on the PET grid: Gaussian with SD `alpha`·√SUV, spatially correlated like a
/// reconstructed image (white noise blurred by `corr_vox` voxels, rescaled to unit variance),
/// clipped at 0 as OSEM images are.
pub fn pet_noise(
    clean: &[f32],
    dims: [usize; 3],
    alpha: f32,
    corr_vox: [f64; 3],
    seed: u64,
) -> Vec<f32> {
    let plane_len = dims[0] * dims[1];
    let mut white = vec![0.0f32; clean.len()];
    let kx = gaussian_kernel(corr_vox[0]);
    let ky = gaussian_kernel(corr_vox[1]);
    let kz = gaussian_kernel(corr_vox[2]);
    white
        .par_chunks_mut(plane_len)
        .enumerate()
        .for_each(|(k, p)| {
            let mut r = rng(seed, Stream::PET_NOISE + k as u64);
            for v in p.iter_mut() {
                *v = StandardNormal.sample(&mut r);
            }
            blur_plane(p, dims[0], dims[1], &kx, &ky);
        });
    let noise = blur_stack(&white, plane_len, &kz);
    let energy = |k: &[f32]| k.iter().map(|w| w * w).sum::<f32>();
    let norm = (energy(&kx) * energy(&ky) * energy(&kz)).sqrt();
    clean
        .par_iter()
        .zip(noise.par_iter())
        .map(|(&c, &n)| (c + alpha * c.max(0.0).sqrt() * n / norm).max(0.0))
        .collect()
}

/// CT rendered on its grid: HU, structure labels, lesion labels.
pub struct CtImages {
    pub hu: Vec<f32>,
    pub structures: Vec<u16>,
    pub lesions: Vec<u16>,
}

/// Renders the CT: each slice averages `z_samples` sub-slices (slice-thickness partial volume),
/// adds tissue texture, is blurred by the in-plane resolution and gets correlated noise of SD
/// `noise_hu`. Labels come from the central sub-slice.
pub fn render_ct(
    scene: &Scene,
    g: &Geometry,
    z_samples: usize,
    noise_hu: f32,
    seed: u64,
) -> CtImages {
    let [nx, ny, nz] = g.dims();
    let s = g.spacing_mm();
    let o = g.origin_mm();
    let plane = Plane {
        x0: o[0],
        dx: s[0],
        nx,
        y0: o[1],
        dy: s[1],
        ny,
    };
    let plane_len = nx * ny;
    let mut hu = vec![0.0f32; plane_len * nz];
    let mut structures = vec![0u16; plane_len * nz];
    let mut lesions = vec![0u16; plane_len * nz];
    let psf = [gaussian_kernel(0.5 / s[0]), gaussian_kernel(0.5 / s[1])];
    let corr = [gaussian_kernel(0.9 / s[0]), gaussian_kernel(0.9 / s[1])];
    let energy = |k: &[f32]| k.iter().map(|w| w * w).sum::<f32>();
    let corr_norm = (energy(&corr[0]) * energy(&corr[1])).sqrt();
    let z_samples = z_samples.max(1);
    hu.par_chunks_mut(plane_len)
        .zip(structures.par_chunks_mut(plane_len))
        .zip(lesions.par_chunks_mut(plane_len))
        .enumerate()
        .for_each(|(k, ((h, st), le))| {
            let zc = o[2] + k as f64 * s[2];
            let mut prim = vec![0u16; plane_len];
            let mut les = vec![0u16; plane_len];
            h.fill(0.0);
            for sample in 0..z_samples {
                let offset = (sample as f64 + 0.5) / z_samples as f64 - 0.5;
                let z = zc + offset * s[2];
                prim.fill(0);
                les.fill(0);
                paint(&scene.body.primitives, &plane, z, &mut prim);
                paint(&scene.lesion_prims, &plane, z, &mut les);
                for idx in 0..plane_len {
                    let (l, p) = (les[idx] as usize, prim[idx] as usize);
                    h[idx] += if l > 0 {
                        scene.lesion_hu[l - 1]
                    } else if p > 0 {
                        scene.prim_hu[p - 1]
                    } else {
                        -1000.0
                    };
                }
                if sample == z_samples / 2 {
                    for idx in 0..plane_len {
                        let (l, p) = (les[idx] as usize, prim[idx] as usize);
                        le[idx] = l as u16;
                        st[idx] = if l > 0 {
                            (scene.lesions[l - 1].host + 1) as u16
                        } else if p > 0 {
                            (scene.body.primitives[p - 1].structure + 1) as u16
                        } else {
                            0
                        };
                        let tex = if l == 0 && p > 0 {
                            scene.prim_texture[p - 1]
                        } else {
                            0.0
                        };
                        if tex > 0.0 {
                            let x = plane.x0 + (idx % nx) as f64 * plane.dx;
                            let y = plane.y0 + (idx / nx) as f64 * plane.dy;
                            // Texture is added once per voxel, after the sub-slice average.
                            h[idx] += z_samples as f32
                                * tex
                                * value_noise([x, y, zc], 2.5, scene.texture_seed);
                        }
                    }
                }
            }
            let inv = 1.0 / z_samples as f32;
            h.iter_mut().for_each(|v| *v *= inv);
            blur_plane(h, nx, ny, &psf[0], &psf[1]);
            let mut r = rng(seed, Stream::CT_NOISE + k as u64);
            let mut noise: Vec<f32> = (0..plane_len)
                .map(|_| StandardNormal.sample(&mut r))
                .collect();
            blur_plane(&mut noise, nx, ny, &corr[0], &corr[1]);
            for (v, n) in h.iter_mut().zip(&noise) {
                *v += noise_hu * n / corr_norm;
            }
        });
    CtImages {
        hu,
        structures,
        lesions,
    }
}
