// Prelude of every kernel file (prepended by src/gpu/mod.rs before NVRTC compiles it).
// NVRTC runs without the CUDA toolkit's headers here, so fixed-width integer types, the fp16
// conversions and the trilinear sampler shared by resample.cu and mpr.cu are defined in this file.

typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

// fp16 values travel as their raw bits (u16); conversions go through the PTX cvt instructions,
// round-to-nearest-even like half::f16::from_f32 on the host.
__device__ __forceinline__ float half_to_float(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 float_to_half(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// The patient-space map from one grid's voxel indices (or from patient mm) to a source volume's
// continuous indices: j = m · i + t, m row-major. Computed on the host in f64.
struct IndexMap {
    double m[9];
    double t[3];
};

// Trilinear sampling with the convention of crate::grid: voxel centres at integer indices; a
// point is inside when every continuous index f lies in the voxel-edge box [-0.5, n - 0.5]
// (NaN is outside); inside, f is clamped to [0, n - 1] (edge voxels extend over the outer half
// voxel), the lower neighbour is min(floor(f), n - 2) and an axis of length 1 has step 0.
struct Cell {
    i64 base;
    i64 step[3];
    float w[3];
};

__device__ __forceinline__ bool axis_split(double f, int n, i64 stride, i64* lower, float* w, i64* step) {
    if (!(f >= -0.5 && f <= (double)n - 0.5)) {
        return false;
    }
    double c = fmin(fmax(f, 0.0), (double)(n - 1));
    int lo = (int)c;  // c >= 0: truncation is the floor
    int max_lower = n > 1 ? n - 2 : 0;
    lo = lo < max_lower ? lo : max_lower;
    *lower = (i64)lo * stride;
    *w = (float)(c - (double)lo);
    *step = n > 1 ? stride : 0;
    return true;
}

__device__ __forceinline__ bool locate(double fx, double fy, double fz, int nx, int ny, int nz, Cell* cell) {
    i64 lx, ly, lz;
    i64 plane = (i64)nx * ny;
    if (!axis_split(fx, nx, 1, &lx, &cell->w[0], &cell->step[0])) return false;
    if (!axis_split(fy, ny, nx, &ly, &cell->w[1], &cell->step[1])) return false;
    if (!axis_split(fz, nz, plane, &lz, &cell->w[2], &cell->step[2])) return false;
    cell->base = lx + ly + lz;
    return true;
}

__device__ __forceinline__ float lerp(float a, float b, float w) { return a + w * (b - a); }

// Every neighbour index is <= n - 1 along each axis by the clamps in axis_split.
__device__ __forceinline__ float interpolate(const float* __restrict__ data, const Cell& c) {
    const i64 b = c.base, sx = c.step[0], sy = c.step[1], sz = c.step[2];
    float c00 = lerp(data[b], data[b + sx], c.w[0]);
    float c10 = lerp(data[b + sy], data[b + sy + sx], c.w[0]);
    float c01 = lerp(data[b + sz], data[b + sz + sx], c.w[0]);
    float c11 = lerp(data[b + sz + sy], data[b + sz + sy + sx], c.w[0]);
    return lerp(lerp(c00, c10, c.w[1]), lerp(c01, c11, c.w[1]), c.w[2]);
}
