//! Voxel→world affines as NIfTI stores them, nibabel-style: quaternions and rotations, RAS and
//! LPS, and the split of an affine into spacing, direction and origin. Pure geometry; the
//! header fields they come from are parsed in `nifti`.

use super::{Geometry, VolumeError};

/// RAS ↔ LPS: negate the first two rows (the map is its own inverse).
pub fn ras_to_lps(a: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut out = *a;
    for j in 0..4 {
        out[0][j] = -a[0][j];
        out[1][j] = -a[1][j];
    }
    out
}

/// Splits a voxel→LPS affine into spacing (column norms), direction and origin, and validates.
pub(crate) fn geometry_from_affine(
    dims: [usize; 3],
    a: &[[f64; 4]; 4],
) -> Result<Geometry, VolumeError> {
    let mut spacing = [0.0; 3];
    let mut direction = [[0.0; 3]; 3];
    for j in 0..3 {
        let norm = (a[0][j] * a[0][j] + a[1][j] * a[1][j] + a[2][j] * a[2][j]).sqrt();
        spacing[j] = norm;
        for i in 0..3 {
            direction[i][j] = if norm > 0.0 { a[i][j] / norm } else { 0.0 };
        }
    }
    let origin = [a[0][3], a[1][3], a[2][3]];
    Geometry::new(dims, spacing, origin, direction)
}

/// nibabel's `quat2mat` for q = (w, x, y, z), not assumed normalised.
pub(crate) fn quaternion_to_rotation([w, x, y, z]: [f64; 4]) -> [[f64; 3]; 3] {
    let n = w * w + x * x + y * y + z * z;
    if n < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / n;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// (b, c, d) and qfac of the rotation in a RAS affine with the given column spacings.
/// A left-handed frame gets qfac −1 and its third column negated, as NIfTI prescribes.
pub(crate) fn rotation_to_quaternion(a: &[[f64; 4]; 4], spacing: [f64; 3]) -> ([f64; 3], f64) {
    let mut r = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            r[i][j] = a[i][j] / spacing[j];
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    for row in &mut r {
        row[2] *= qfac;
    }
    // Shepperd's method, keeping the scalar part a ≥ 0 as NIfTI requires.
    let trace = r[0][0] + r[1][1] + r[2][2];
    let q = if trace > 0.0 {
        let s = (trace + 1.0).sqrt() * 2.0;
        [
            0.25 * s,
            (r[2][1] - r[1][2]) / s,
            (r[0][2] - r[2][0]) / s,
            (r[1][0] - r[0][1]) / s,
        ]
    } else if r[0][0] > r[1][1] && r[0][0] > r[2][2] {
        let s = (1.0 + r[0][0] - r[1][1] - r[2][2]).sqrt() * 2.0;
        [
            (r[2][1] - r[1][2]) / s,
            0.25 * s,
            (r[0][1] + r[1][0]) / s,
            (r[0][2] + r[2][0]) / s,
        ]
    } else if r[1][1] > r[2][2] {
        let s = (1.0 + r[1][1] - r[0][0] - r[2][2]).sqrt() * 2.0;
        [
            (r[0][2] - r[2][0]) / s,
            (r[0][1] + r[1][0]) / s,
            0.25 * s,
            (r[1][2] + r[2][1]) / s,
        ]
    } else {
        let s = (1.0 + r[2][2] - r[0][0] - r[1][1]).sqrt() * 2.0;
        [
            (r[1][0] - r[0][1]) / s,
            (r[0][2] + r[2][0]) / s,
            (r[1][2] + r[2][1]) / s,
            0.25 * s,
        ]
    };
    let sign = if q[0] < 0.0 { -1.0 } else { 1.0 };
    ([q[1] * sign, q[2] * sign, q[3] * sign], qfac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation_about_z(angle: f64) -> [[f64; 3]; 3] {
        let (s, c) = angle.sin_cos();
        [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    }

    fn affine(r: [[f64; 3]; 3], spacing: [f64; 3], origin: [f64; 3]) -> [[f64; 4]; 4] {
        let mut a = [[0.0; 4]; 4];
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] = r[i][j] * spacing[j];
            }
            a[i][3] = origin[i];
        }
        a[3][3] = 1.0;
        a
    }

    #[test]
    fn quaternions_round_trip_rotations_of_either_handedness() {
        let spacing = [0.8, 1.2, 3.0];
        for angle in [0.0, 0.3, 1.9, std::f64::consts::PI, -2.5] {
            for flip in [1.0, -1.0] {
                let mut r = rotation_about_z(angle);
                // Tilt about x too, so that no axis stays put.
                let (s, c) = 0.4f64.sin_cos();
                r = std::array::from_fn(|i| {
                    [
                        r[i][0],
                        c * r[i][1] - s * r[i][2],
                        s * r[i][1] + c * r[i][2],
                    ]
                });
                for row in &mut r {
                    row[2] *= flip;
                }
                let ([b, c, d], qfac) =
                    rotation_to_quaternion(&affine(r, spacing, [0.0; 3]), spacing);
                assert_eq!(qfac, flip);
                let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
                let back = quaternion_to_rotation([a, b, c, d]);
                for i in 0..3 {
                    for j in 0..3 {
                        let want = r[i][j] * if j == 2 { qfac } else { 1.0 };
                        assert!(
                            (back[i][j] - want).abs() < 1e-12,
                            "{angle} {flip}: {back:?} vs {r:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn ras_and_lps_differ_in_the_sign_of_x_and_y() {
        let a = affine(rotation_about_z(0.7), [1.0, 2.0, 3.0], [10.0, -20.0, 30.0]);
        let lps = ras_to_lps(&a);
        assert_eq!(lps[0][3], -10.0);
        assert_eq!(lps[1][3], 20.0);
        assert_eq!(lps[2], a[2]);
        assert_eq!(ras_to_lps(&lps), a);
    }

    #[test]
    fn an_affine_splits_into_spacing_direction_and_origin() {
        let r = rotation_about_z(0.7);
        let g =
            geometry_from_affine([4, 5, 6], &affine(r, [1.5, 2.0, 3.0], [1.0, 2.0, 3.0])).unwrap();
        for (got, want) in g.spacing_mm().iter().zip([1.5, 2.0, 3.0]) {
            assert!((got - want).abs() < 1e-12);
        }
        assert_eq!(g.origin_mm(), [1.0, 2.0, 3.0]);
        for (got, want) in g.direction().iter().flatten().zip(r.iter().flatten()) {
            assert!((got - want).abs() < 1e-12);
        }
        let degenerate = affine(r, [1.5, 0.0, 3.0], [0.0; 3]);
        assert!(geometry_from_affine([4, 5, 6], &degenerate).is_err());
    }
}
