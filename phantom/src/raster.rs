//! Scanline rasterisation of primitives onto axis-aligned planes, and the separable Gaussian
//! blur shared by the PET and CT image formation.

use super::body::Primitive;
use super::shape::{Bounds, Shape};

/// A rectangle of voxel centres at one height: x = x0 + i·dx, y = y0 + j·dy.
#[derive(Debug, Clone, Copy)]
pub struct Plane {
    pub x0: f64,
    pub dx: f64,
    pub nx: usize,
    pub y0: f64,
    pub dy: f64,
    pub ny: usize,
}

impl Plane {
    pub fn len(&self) -> usize {
        self.nx * self.ny
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Anything with a shape and a bounding box that can be painted.
pub trait Paintable {
    fn shape(&self) -> &Shape;
    fn bounds(&self) -> &Bounds;
}

impl Paintable for Primitive {
    fn shape(&self) -> &Shape {
        &self.shape
    }
    fn bounds(&self) -> &Bounds {
        &self.bounds
    }
}

/// Paints `items` in order at height z: every voxel centre inside item k gets `k + 1`, later
/// items over earlier ones. Voxels inside none keep their value.
pub fn paint<P: Paintable>(items: &[P], plane: &Plane, z: f64, out: &mut [u16]) {
    for (k, item) in items.iter().enumerate() {
        let b = item.bounds();
        if z < b.lo[2] || z > b.hi[2] {
            continue;
        }
        let j0 = ((b.lo[1] - plane.y0) / plane.dy).ceil().max(0.0) as usize;
        let j1 = ((b.hi[1] - plane.y0) / plane.dy).floor();
        if j1 < 0.0 {
            continue;
        }
        let j1 = (j1 as usize).min(plane.ny.saturating_sub(1));
        let label = (k + 1) as u16;
        for j in j0..=j1 {
            if j >= plane.ny {
                break;
            }
            let y = plane.y0 + j as f64 * plane.dy;
            let Some((xa, xb)) = item.shape().span(y, z) else {
                continue;
            };
            let i0 = ((xa - plane.x0) / plane.dx).ceil().max(0.0);
            let i1 = ((xb - plane.x0) / plane.dx)
                .floor()
                .min(plane.nx as f64 - 1.0);
            if i1 < i0 {
                continue;
            }
            let row = j * plane.nx;
            out[row + i0 as usize..=row + i1 as usize].fill(label);
        }
    }
}

/// Normalised discrete Gaussian of standard deviation `sigma` (in samples), truncated at 3σ.
pub fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    if sigma <= 1e-6 {
        return vec![1.0];
    }
    let half = (3.0 * sigma).ceil() as i64;
    let w: Vec<f64> = (-half..=half)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = w.iter().sum();
    w.iter().map(|v| (v / sum) as f32).collect()
}

/// Convolves one line with `kernel` (odd length, centred), zero outside the line.
fn convolve_line(src: &[f32], dst: &mut [f32], kernel: &[f32]) {
    let half = kernel.len() / 2;
    let n = src.len();
    for (i, d) in dst.iter_mut().enumerate() {
        let mut acc = 0.0f32;
        let lo = i.saturating_sub(half);
        let hi = (i + half).min(n - 1);
        for (s, &v) in src[lo..=hi].iter().enumerate() {
            acc += v * kernel[lo + s + half - i];
        }
        *d = acc;
    }
}

/// Blurs one x-y plane in place along x then y (the y pass combines whole rows, so it runs
/// along memory like the x pass).
pub fn blur_plane(data: &mut [f32], nx: usize, ny: usize, kx: &[f32], ky: &[f32]) {
    if kx.len() > 1 {
        let mut line = vec![0.0f32; nx];
        for row in data.chunks_exact_mut(nx) {
            line.copy_from_slice(row);
            convolve_line(&line, row, kx);
        }
    }
    if ky.len() > 1 {
        let half = ky.len() / 2;
        let src = data.to_vec();
        for j in 0..ny {
            let dst = &mut data[j * nx..(j + 1) * nx];
            dst.fill(0.0);
            let lo = j.saturating_sub(half);
            let hi = (j + half).min(ny - 1);
            for sj in lo..=hi {
                let w = ky[sj + half - j];
                for (d, &s) in dst.iter_mut().zip(&src[sj * nx..(sj + 1) * nx]) {
                    *d += w * s;
                }
            }
        }
    }
}

/// Blurs a stack of planes (each `plane_len` long) along the stacking axis, in parallel over
/// output planes (each output plane is a fixed-order sum, so the result is deterministic).
pub fn blur_stack(data: &[f32], plane_len: usize, kz: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let nz = data.len() / plane_len;
    let half = kz.len() / 2;
    let mut out = vec![0.0f32; data.len()];
    out.par_chunks_mut(plane_len)
        .enumerate()
        .for_each(|(k, dst)| {
            let lo = k.saturating_sub(half);
            let hi = (k + half).min(nz - 1);
            for src_k in lo..=hi {
                let w = kz[src_k + half - k];
                let src = &data[src_k * plane_len..(src_k + 1) * plane_len];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d += w * s;
                }
            }
        });
    out
}

/// Smooth deterministic noise in [−1, 1] at patient position `p` with lattice spacing `cell`
/// (mm): value noise with smoothstep interpolation. The same position gives the same value on
/// every grid, so CT texture agrees between resolutions.
pub fn value_noise(p: [f64; 3], cell: f64, seed: u64) -> f32 {
    let q = p.map(|v| v / cell);
    let f = q.map(f64::floor);
    let t = [0, 1, 2].map(|i| {
        let u = q[i] - f[i];
        u * u * (3.0 - 2.0 * u)
    });
    let base = f.map(|v| v as i64);
    let mut acc = 0.0;
    for corner in 0..8 {
        let d = [corner & 1, (corner >> 1) & 1, (corner >> 2) & 1];
        let w: f64 = (0..3)
            .map(|i| if d[i] == 1 { t[i] } else { 1.0 - t[i] })
            .product();
        let h = lattice_hash(
            base[0] + d[0] as i64,
            base[1] + d[1] as i64,
            base[2] + d[2] as i64,
            seed,
        );
        acc += w * h;
    }
    acc as f32
}

fn lattice_hash(x: i64, y: i64, z: i64, seed: u64) -> f64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [x, y, z] {
        h ^= v as u64;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 31;
        h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 29;
    }
    (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Primitive;

    #[test]
    fn later_primitives_win_and_spans_use_voxel_centres() {
        let mk = |shape: Shape| {
            let bounds = shape.bounds();
            Primitive {
                shape,
                structure: 0,
                activity: 1.0,
                hu_offset: 0.0,
                bounds,
            }
        };
        let items = vec![
            mk(Shape::ellipsoid([0.0, 0.0, 0.0], [10.0, 10.0, 10.0])),
            mk(Shape::sphere([0.0, 0.0, 0.0], 2.9)),
        ];
        let plane = Plane {
            x0: -12.0,
            dx: 1.0,
            nx: 25,
            y0: -12.0,
            dy: 1.0,
            ny: 25,
        };
        let mut out = vec![0u16; plane.len()];
        paint(&items, &plane, 0.0, &mut out);
        let at = |x: i64, y: i64| out[((y + 12) * 25 + (x + 12)) as usize];
        assert_eq!(at(0, 0), 2);
        assert_eq!(at(2, 2), 2); // 2.83 < 2.9
        assert_eq!(at(3, 0), 1);
        assert_eq!(at(10, 0), 1); // centre exactly on the surface is inside
        assert_eq!(at(11, 0), 0);
        assert_eq!(at(8, 7), 0); // 10.6 > 10
    }

    #[test]
    fn gaussian_kernel_is_normalised_with_the_right_variance() {
        let k = gaussian_kernel(2.0);
        let sum: f32 = k.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        let half = (k.len() / 2) as f32;
        let var: f32 = k
            .iter()
            .enumerate()
            .map(|(i, w)| w * (i as f32 - half).powi(2))
            .sum();
        assert!((var - 4.0).abs() < 0.05, "{var}");
    }

    #[test]
    fn blur_preserves_the_integral_away_from_edges() {
        let (nx, ny) = (31, 29);
        let mut plane = vec![0.0f32; nx * ny];
        plane[15 * nx + 15] = 1.0;
        let k = gaussian_kernel(1.5);
        blur_plane(&mut plane, nx, ny, &k, &k);
        let zero = vec![0.0f32; nx * ny];
        let mut planes = Vec::new();
        for k in 0..9 {
            planes.extend_from_slice(if k == 4 { &plane } else { &zero });
        }
        let stack = blur_stack(&planes, nx * ny, &gaussian_kernel(0.8));
        let total: f32 = stack.iter().sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        assert!(plane[15 * nx + 15] > plane[15 * nx + 16]);
    }

    #[test]
    fn value_noise_is_continuous_and_bounded() {
        let a = value_noise([1.0, 2.0, 3.0], 4.0, 7);
        let b = value_noise([1.001, 2.0, 3.0], 4.0, 7);
        assert!((a - b).abs() < 1e-2);
        for i in 0..1000 {
            let v = value_noise([i as f64 * 0.7, i as f64 * 1.3, -(i as f64)], 3.0, 1);
            assert!((-1.0..=1.0).contains(&v));
        }
        assert_ne!(
            value_noise([5.5, 0.0, 0.0], 4.0, 1),
            value_noise([5.5, 0.0, 0.0], 4.0, 2)
        );
    }
}
