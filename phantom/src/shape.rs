//! Solid primitives in continuous patient coordinates (mm, LPS) and their exact intersection with
//! a line parallel to the x axis.
//!
//! Every primitive is convex along x (a line meets it in one interval), so a scanline rasteriser
//! fills whole spans instead of testing voxels one by one: the cost of a primitive is one
//! quadratic per grid row it crosses, whatever the grid's resolution.

/// A point or vector in patient LPS coordinates (mm).
pub type Vec3 = [f64; 3];

/// Axis-aligned box: `lo` and `hi` corners (mm).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub lo: Vec3,
    pub hi: Vec3,
}

impl Bounds {
    pub fn union(self, other: Bounds) -> Bounds {
        Bounds {
            lo: [0, 1, 2].map(|i| self.lo[i].min(other.lo[i])),
            hi: [0, 1, 2].map(|i| self.hi[i].max(other.hi[i])),
        }
    }

    pub fn grow(self, margin: f64) -> Bounds {
        Bounds {
            lo: self.lo.map(|v| v - margin),
            hi: self.hi.map(|v| v + margin),
        }
    }
}

/// One knot of a [`Shape::Loft`]: the superelliptic cross-section at height `z`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoftKnot {
    pub z: f64,
    /// Centre of the cross-section (x, y).
    pub centre: [f64; 2],
    /// Half-width along x and half-depth along y.
    pub half: [f64; 2],
}

/// A convex-along-x solid.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Rotated ellipsoid: points p with |M (p − centre)| ≤ 1, M = diag(1/radii) · Rᵀ.
    Ellipsoid {
        centre: Vec3,
        radii: Vec3,
        /// Row-major rotation; column j is the direction of semi-axis j.
        rotation: [[f64; 3]; 3],
    },
    /// Axis-aligned superellipsoid (|dx/rx|^e + |dy/ry|^e)^(f/e) + |dz/rz|^f ≤ 1: e = 2 gives
    /// round cross-sections, larger e squarer ones; f > 2 flattens the ends (vertebral bodies).
    SuperEllipsoid {
        centre: Vec3,
        radii: Vec3,
        e: f64,
        f: f64,
    },
    /// Segment from `a` to `b` swept by a ball of radius `r` (one link of a tube).
    Capsule { a: Vec3, b: Vec3, r: f64 },
    /// Stack of superelliptic cross-sections interpolated linearly in z between knots (sorted by
    /// z), with flat ends: trunk, neck and limbs.
    Loft { knots: Vec<LoftKnot>, exponent: f64 },
}

const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// Rotation by `angle` radians about the unit `axis` (Rodrigues).
pub fn rotation(axis: Vec3, angle: f64) -> [[f64; 3]; 3] {
    let n = dot(axis, axis).sqrt();
    if n == 0.0 || angle == 0.0 {
        return IDENTITY;
    }
    let [x, y, z] = axis.map(|v| v / n);
    let (s, c) = angle.sin_cos();
    let t = 1.0 - c;
    [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]
}

/// Product of two rotations (a · b).
pub fn compose(a: [[f64; 3]; 3], b: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

/// The interval {t : a t² + 2 b t + c ≤ 0}, for a > 0.
fn quadratic_interval(a: f64, b: f64, c: f64) -> Option<(f64, f64)> {
    if a <= 1e-300 {
        return None;
    }
    let disc = b * b - a * c;
    if disc < 0.0 {
        return None;
    }
    let root = disc.sqrt();
    Some(((-b - root) / a, (-b + root) / a))
}

fn hull(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<(f64, f64)> {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
        (x, None) | (None, x) => x,
    }
}

impl Shape {
    pub fn ellipsoid(centre: Vec3, radii: Vec3) -> Shape {
        Shape::Ellipsoid {
            centre,
            radii,
            rotation: IDENTITY,
        }
    }

    pub fn sphere(centre: Vec3, r: f64) -> Shape {
        Shape::ellipsoid(centre, [r; 3])
    }

    /// Exact volume in mL where a closed form exists (ellipsoids, capsules, round superellipsoid
    /// ends are not needed by callers).
    pub fn volume_ml(&self) -> Option<f64> {
        use std::f64::consts::PI;
        match self {
            Shape::Ellipsoid { radii, .. } => {
                Some(4.0 / 3.0 * PI * radii[0] * radii[1] * radii[2] / 1000.0)
            }
            Shape::Capsule { a, b, r } => {
                let l = dot(sub(*b, *a), sub(*b, *a)).sqrt();
                Some((PI * r * r * l + 4.0 / 3.0 * PI * r * r * r) / 1000.0)
            }
            _ => None,
        }
    }

    /// Whether the point lies inside (used for host look-ups, not for rasterising).
    pub fn contains(&self, p: Vec3) -> bool {
        match self.span(p[1], p[2]) {
            Some((x0, x1)) => p[0] >= x0 && p[0] <= x1,
            None => false,
        }
    }

    pub fn bounds(&self) -> Bounds {
        match self {
            Shape::Ellipsoid {
                centre,
                radii,
                rotation: r,
            } => {
                let h = [0, 1, 2].map(|i| {
                    ((r[i][0] * radii[0]).powi(2)
                        + (r[i][1] * radii[1]).powi(2)
                        + (r[i][2] * radii[2]).powi(2))
                    .sqrt()
                });
                Bounds {
                    lo: [0, 1, 2].map(|i| centre[i] - h[i]),
                    hi: [0, 1, 2].map(|i| centre[i] + h[i]),
                }
            }
            Shape::SuperEllipsoid { centre, radii, .. } => Bounds {
                lo: [0, 1, 2].map(|i| centre[i] - radii[i]),
                hi: [0, 1, 2].map(|i| centre[i] + radii[i]),
            },
            Shape::Capsule { a, b, r } => Bounds {
                lo: [0, 1, 2].map(|i| a[i].min(b[i]) - r),
                hi: [0, 1, 2].map(|i| a[i].max(b[i]) + r),
            },
            Shape::Loft { knots, .. } => {
                let mut lo = [f64::INFINITY; 3];
                let mut hi = [f64::NEG_INFINITY; 3];
                for k in knots {
                    for i in 0..2 {
                        lo[i] = lo[i].min(k.centre[i] - k.half[i]);
                        hi[i] = hi[i].max(k.centre[i] + k.half[i]);
                    }
                    lo[2] = lo[2].min(k.z);
                    hi[2] = hi[2].max(k.z);
                }
                Bounds { lo, hi }
            }
        }
    }

    /// The x interval (mm) where the line {(x, y, z)} lies inside the shape, if any.
    pub fn span(&self, y: f64, z: f64) -> Option<(f64, f64)> {
        match self {
            Shape::Ellipsoid {
                centre,
                radii,
                rotation: r,
            } => {
                // q(x) = M (p − c) = u + x w with p = (x, y, z).
                let d = [-centre[0], y - centre[1], z - centre[2]];
                let mut u = [0.0; 3];
                let mut w = [0.0; 3];
                for j in 0..3 {
                    u[j] = (r[0][j] * d[0] + r[1][j] * d[1] + r[2][j] * d[2]) / radii[j];
                    w[j] = r[0][j] / radii[j];
                }
                quadratic_interval(dot(w, w), dot(u, w), dot(u, u) - 1.0)
            }
            Shape::SuperEllipsoid {
                centre,
                radii,
                e,
                f,
            } => {
                let rest_z = 1.0 - ((z - centre[2]) / radii[2]).abs().powf(*f);
                if rest_z < 0.0 {
                    return None;
                }
                let rest_xy = rest_z.powf(e / f) - ((y - centre[1]) / radii[1]).abs().powf(*e);
                if rest_xy < 0.0 {
                    return None;
                }
                let half = radii[0] * rest_xy.powf(1.0 / e);
                Some((centre[0] - half, centre[0] + half))
            }
            Shape::Capsule { a, b, r } => capsule_span(*a, *b, *r, y, z),
            Shape::Loft { knots, exponent } => {
                let k = loft_section(knots, z)?;
                let rest = 1.0 - ((y - k.centre[1]) / k.half[1]).abs().powf(*exponent);
                if rest < 0.0 {
                    return None;
                }
                let half = k.half[0] * rest.powf(1.0 / exponent);
                Some((k.centre[0] - half, k.centre[0] + half))
            }
        }
    }
}

/// The interpolated cross-section of a loft at height z, or `None` outside its ends.
fn loft_section(knots: &[LoftKnot], z: f64) -> Option<LoftKnot> {
    let first = knots.first()?;
    let last = knots.last()?;
    if z < first.z || z > last.z {
        return None;
    }
    let i = knots
        .partition_point(|k| k.z < z)
        .max(1)
        .min(knots.len() - 1);
    let (k0, k1) = (knots[i - 1], knots[i]);
    let t = if k1.z > k0.z {
        (z - k0.z) / (k1.z - k0.z)
    } else {
        0.0
    };
    let lerp = |a: f64, b: f64| a + (b - a) * t;
    Some(LoftKnot {
        z,
        centre: [
            lerp(k0.centre[0], k1.centre[0]),
            lerp(k0.centre[1], k1.centre[1]),
        ],
        half: [lerp(k0.half[0], k1.half[0]), lerp(k0.half[1], k1.half[1])],
    })
}

/// Span of a capsule: the hull of the finite cylinder's span and the two end balls' spans (the
/// capsule is convex, so the union of the three intervals is one interval).
fn capsule_span(a: Vec3, b: Vec3, r: f64, y: f64, z: f64) -> Option<(f64, f64)> {
    let ball = |c: Vec3| {
        let m = [-c[0], y - c[1], z - c[2]];
        quadratic_interval(1.0, m[0], dot(m, m) - r * r)
    };
    let spans = hull(ball(a), ball(b));
    let d = sub(b, a);
    let l2 = dot(d, d);
    if l2 <= 1e-12 {
        return spans;
    }
    // Line p(x) = m + x ex relative to a; s(x) = (m·d + x d_x) / l2 must lie in [0, 1].
    let m = [-a[0], y - a[1], z - a[2]];
    let md = dot(m, d);
    let slab = if d[0].abs() > 1e-12 {
        let t0 = -md / d[0];
        let t1 = (l2 - md) / d[0];
        Some((t0.min(t1), t0.max(t1)))
    } else if (0.0..=l2).contains(&md) {
        Some((f64::NEG_INFINITY, f64::INFINITY))
    } else {
        None
    };
    let Some((s0, s1)) = slab else {
        return spans;
    };
    // Components perpendicular to d.
    let m_perp = [0, 1, 2].map(|i| m[i] - md / l2 * d[i]);
    let e_perp = [0, 1, 2].map(|i| if i == 0 { 1.0 } else { 0.0 } - d[0] / l2 * d[i]);
    let cylinder = quadratic_interval(
        dot(e_perp, e_perp),
        dot(m_perp, e_perp),
        dot(m_perp, m_perp) - r * r,
    )
    .and_then(|(c0, c1)| {
        let (lo, hi) = (c0.max(s0), c1.min(s1));
        (lo <= hi).then_some((lo, hi))
    });
    hull(spans, cylinder)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute-force membership for comparison with the analytic spans.
    fn inside(shape: &Shape, p: Vec3) -> bool {
        match shape {
            Shape::Ellipsoid {
                centre,
                radii,
                rotation: r,
            } => {
                let d = sub(p, *centre);
                (0..3)
                    .map(|j| {
                        ((r[0][j] * d[0] + r[1][j] * d[1] + r[2][j] * d[2]) / radii[j]).powi(2)
                    })
                    .sum::<f64>()
                    <= 1.0
            }
            Shape::Capsule { a, b, r } => {
                let d = sub(*b, *a);
                let l2 = dot(d, d);
                let t = if l2 > 0.0 {
                    (dot(sub(p, *a), d) / l2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let q = [0, 1, 2].map(|i| a[i] + t * d[i]);
                dot(sub(p, q), sub(p, q)) <= r * r
            }
            _ => unreachable!(),
        }
    }

    fn check_against_brute_force(shape: &Shape) {
        let b = shape.bounds().grow(2.0);
        let n = 24;
        for iy in 0..n {
            for iz in 0..n {
                let y = b.lo[1] + (b.hi[1] - b.lo[1]) * (iy as f64 + 0.37) / n as f64;
                let z = b.lo[2] + (b.hi[2] - b.lo[2]) * (iz as f64 + 0.61) / n as f64;
                let span = shape.span(y, z);
                for ix in 0..200 {
                    let x = b.lo[0] + (b.hi[0] - b.lo[0]) * (ix as f64 + 0.5) / 200.0;
                    let by_span = span.is_some_and(|(x0, x1)| x >= x0 && x <= x1);
                    assert_eq!(
                        by_span,
                        inside(shape, [x, y, z]),
                        "{shape:?} at {x},{y},{z}"
                    );
                }
            }
        }
    }

    #[test]
    fn rotated_ellipsoid_span_matches_membership() {
        let rot = compose(
            rotation([0.0, 0.0, 1.0], 0.7),
            rotation([1.0, 0.5, 0.0], 0.4),
        );
        check_against_brute_force(&Shape::Ellipsoid {
            centre: [3.0, -4.0, 10.0],
            radii: [20.0, 8.0, 13.0],
            rotation: rot,
        });
    }

    #[test]
    fn capsule_span_matches_membership() {
        for (a, b) in [
            ([0.0, 0.0, 0.0], [30.0, 10.0, -20.0]),
            ([0.0, 0.0, 0.0], [0.0, 0.0, 25.0]),
            ([0.0, 0.0, 0.0], [40.0, 0.0, 0.0]),
            ([5.0, 5.0, 5.0], [5.0, 5.0, 5.0]),
        ] {
            check_against_brute_force(&Shape::Capsule { a, b, r: 6.0 });
        }
    }

    #[test]
    fn loft_interpolates_between_knots() {
        let loft = Shape::Loft {
            knots: vec![
                LoftKnot {
                    z: 0.0,
                    centre: [0.0, 0.0],
                    half: [10.0, 5.0],
                },
                LoftKnot {
                    z: 10.0,
                    centre: [10.0, 0.0],
                    half: [20.0, 5.0],
                },
            ],
            exponent: 2.0,
        };
        let (x0, x1) = loft.span(0.0, 5.0).unwrap();
        assert!((x0 - -10.0).abs() < 1e-12 && (x1 - 20.0).abs() < 1e-12);
        assert!(loft.span(0.0, 10.5).is_none());
        assert!(loft.span(5.1, 5.0).is_none());
    }

    #[test]
    fn superellipsoid_with_exponent_2_is_an_ellipsoid() {
        let s = Shape::SuperEllipsoid {
            centre: [1.0, 2.0, 3.0],
            radii: [10.0, 6.0, 4.0],
            e: 2.0,
            f: 2.0,
        };
        let e = Shape::ellipsoid([1.0, 2.0, 3.0], [10.0, 6.0, 4.0]);
        for (y, z) in [(2.0, 3.0), (5.0, 4.0), (0.0, 6.5), (7.9, 3.0)] {
            match (s.span(y, z), e.span(y, z)) {
                (Some(a), Some(b)) => {
                    assert!((a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9)
                }
                (a, b) => assert_eq!(a.is_some(), b.is_some()),
            }
        }
    }
}
