// S7: the v1 network on the device: fp16 storage, fp32 accumulation.
//
// Activations: fp16 bits, NCHW [batch][C][H][W]. Convolution weights: fp16 [Cout][Kpad] with
// K = Cin·9 in (ci, ky, kx) order (PyTorch's [Cout][Cin][3][3] flattened), zero-padded to Kpad, a
// multiple of BK. Biases f32. Linear weights fp16 [out][ldw], row o holding W[o][0 .. in) and,
// with has_extra, W[o][in] for the appended tracer bit.

#define BM 64          // output pixels per block (4 warps × 16 rows)
#define BK 32          // reduction slice per shared-memory stage (two k16 MMA steps)
#define SK (BK + 8)    // shared row stride in halves: the +8 makes fragment loads conflict-free
#define CONV_THREADS 128

__device__ __forceinline__ u32 load_pair(const u16* p) { return *reinterpret_cast<const u32*>(p); }

// D = A·B + D for one warp, A 16×16 row-major, B 16×8 column-major, fp16 in, fp32 accumulate.
// Fragments (PTX ISA, mma.m16n8k16 .f16): with g = lane / 4 and q = lane % 4,
//   a0 = A[g][2q..2q+1], a1 = A[g+8][2q..], a2 = A[g][2q+8..], a3 = A[g+8][2q+8..]
//   b0 = B[2q..2q+1][g], b1 = B[2q+8..2q+9][g]
//   d[0..1] = D[g][2q..2q+1], d[2..3] = D[g+8][2q..2q+1]
// (lower k or column in the lower 16 bits of each register).
__device__ __forceinline__ void mma_16816(float* d, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
#if __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
    __trap();  // the host launches the tensor-core kernels only on compute capability >= 8.0
#endif
}

// 3×3 convolution, padding 1, stride 1, + bias + ReLU as an implicit GEMM on tensor cores:
// M = batch·H·W output pixels, N = Cout, K = Cin·9. Grid (ceil(M / BM), ceil(Cout / BN)),
// CONV_THREADS threads; block tile BM × BN with BN = 8·NT; warp w owns rows 16w .. 16w+15 and all
// NT column tiles. Each BK slice: the im2col rows of the block's pixels (zero outside the image,
// for m >= M and for k >= K) and the weight rows go to shared memory, then each warp runs BK/16
// MMA steps per column tile. Guards: m < M and co < Cout on every load and store.
template <int NT>
__device__ void conv3x3_mma(
    const u16* __restrict__ in, const u16* __restrict__ w, const float* __restrict__ bias,
    u16* __restrict__ out, int batch, int cin, int cout, int h, int wd, int kpad)
{
    constexpr int BN = 8 * NT;
    __shared__ __align__(16) u16 sa[BM * SK];
    __shared__ __align__(16) u16 sb[BN * SK];

    const int tid = threadIdx.x;
    const int warp = tid >> 5, lane = tid & 31, g = lane >> 2, q = lane & 3;
    const int hw = h * wd;
    const int k_total = cin * 9;
    const i64 m_total = (i64)batch * hw;
    const i64 m0 = (i64)blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;

    // This thread gathers half of one im2col row: pixel a_row, k offsets a_k0 .. a_k0 + BK/2.
    const int a_row = tid % BM;
    const int a_k0 = (tid / BM) * (BK / 2);
    const i64 m = m0 + a_row;
    const bool m_ok = m < m_total;
    const i64 image = m_ok ? m / hw : 0;
    const int pixel = m_ok ? (int)(m % hw) : 0;
    const int y = pixel / wd, x = pixel % wd;
    const u16* in_image = in + image * cin * hw;

    float acc[NT][4];
    for (int t = 0; t < NT; ++t)
        for (int e = 0; e < 4; ++e) acc[t][e] = 0.0f;

    for (int k0 = 0; k0 < kpad; k0 += BK) {
        for (int j = 0; j < BK / 2; ++j) {
            const int k = k0 + a_k0 + j;
            u16 v = 0;
            if (m_ok && k < k_total) {
                const int ci = k / 9, r = k - 9 * (k / 9);
                const int iy = y + r / 3 - 1, ix = x + r % 3 - 1;
                if (iy >= 0 && iy < h && ix >= 0 && ix < wd) v = in_image[(i64)ci * hw + iy * wd + ix];
            }
            sa[a_row * SK + a_k0 + j] = v;
        }
        for (int e = tid; e < BN * BK; e += CONV_THREADS) {
            const int nn = e / BK, kk = e % BK;
            const int co = n0 + nn;
            sb[nn * SK + kk] = co < cout ? w[(i64)co * kpad + k0 + kk] : (u16)0;
        }
        __syncthreads();
        for (int ks = 0; ks < BK; ks += 16) {
            const u16* a = sa + (warp * 16) * SK + ks;
            const u32 a0 = load_pair(a + g * SK + 2 * q);
            const u32 a1 = load_pair(a + (g + 8) * SK + 2 * q);
            const u32 a2 = load_pair(a + g * SK + 2 * q + 8);
            const u32 a3 = load_pair(a + (g + 8) * SK + 2 * q + 8);
            for (int t = 0; t < NT; ++t) {
                const u16* b = sb + (t * 8 + g) * SK + ks;
                mma_16816(acc[t], a0, a1, a2, a3, load_pair(b + 2 * q), load_pair(b + 2 * q + 8));
            }
        }
        __syncthreads();
    }

    for (int t = 0; t < NT; ++t) {
        for (int half = 0; half < 2; ++half) {
            const i64 row = m0 + warp * 16 + g + 8 * half;
            if (row >= m_total) continue;
            const i64 img = row / hw;
            const int px = (int)(row % hw);
            for (int c = 0; c < 2; ++c) {
                const int co = n0 + t * 8 + 2 * q + c;
                if (co >= cout) continue;
                const float v = fmaxf(acc[t][2 * half + c] + bias[co], 0.0f);
                out[(img * cout + co) * hw + px] = float_to_half(v);
            }
        }
    }
}

// BN = 32 (Cout 32, the first layer) and BN = 64 (every wider layer).
extern "C" __global__ void conv3x3_relu_mma_n32(
    const u16* in, const u16* w, const float* bias, u16* out, int batch, int cin, int cout, int h, int wd, int kpad)
{
    conv3x3_mma<4>(in, w, bias, out, batch, cin, cout, h, wd, kpad);
}

extern "C" __global__ void conv3x3_relu_mma_n64(
    const u16* in, const u16* w, const float* bias, u16* out, int batch, int cin, int cout, int h, int wd, int kpad)
{
    conv3x3_mma<8>(in, w, bias, out, batch, cin, cout, h, wd, kpad);
}

// The same convolution without tensor cores (devices below compute capability 8.0, and the
// UPTAKE_GPU_CONV=simt check): one thread per output element (image, co, y, x), linear index
// guarded against batch·Cout·H·W, fp32 accumulation in (ci, ky, kx) order.
extern "C" __global__ void conv3x3_relu_simt(
    const u16* __restrict__ in, const u16* __restrict__ w, const float* __restrict__ bias,
    u16* __restrict__ out, int batch, int cin, int cout, int h, int wd, int kpad)
{
    const i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const int hw = h * wd;
    if (t >= (i64)batch * cout * hw) return;
    const int pixel = (int)(t % hw);
    const int co = (int)((t / hw) % cout);
    const i64 image = t / ((i64)hw * cout);
    const int y = pixel / wd, x = pixel % wd;
    const u16* in_image = in + image * cin * hw;
    const u16* w_co = w + (i64)co * kpad;
    float acc = bias[co];
    for (int ci = 0; ci < cin; ++ci) {
        for (int ky = 0; ky < 3; ++ky) {
            const int iy = y + ky - 1;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < 3; ++kx) {
                const int ix = x + kx - 1;
                if (ix < 0 || ix >= wd) continue;
                acc += half_to_float(in_image[(i64)ci * hw + iy * wd + ix]) * half_to_float(w_co[ci * 9 + ky * 3 + kx]);
            }
        }
    }
    out[t] = float_to_half(fmaxf(acc, 0.0f));
}

// 2×2 max-pool, stride 2: in [planes][h][w] -> out [planes][h/2][w/2] (planes = batch·C; h and w
// even, checked by the host). One thread per output element, guarded against planes·(h/2)·(w/2).
extern "C" __global__ void maxpool2(const u16* __restrict__ in, u16* __restrict__ out, i64 planes, int h, int wd) {
    const i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const int oh = h / 2, ow = wd / 2;
    if (t >= planes * oh * ow) return;
    const int ox = (int)(t % ow);
    const int oy = (int)((t / ow) % oh);
    const i64 plane = t / ((i64)oh * ow);
    const u16* p = in + plane * h * wd + (2 * oy) * wd + 2 * ox;
    const float v = fmaxf(fmaxf(half_to_float(p[0]), half_to_float(p[1])),
                          fmaxf(half_to_float(p[wd]), half_to_float(p[wd + 1])));
    out[t] = float_to_half(v);
}

__device__ __forceinline__ float load_value(const u16* p, i64 i) { return half_to_float(p[i]); }
__device__ __forceinline__ float load_value(const float* p, i64 i) { return p[i]; }

// y[n][o] = act(bias[o] + sum_k x[n][k]·W[o][k] (+ W[o][in]·extra[n] with has_extra)), f32 out.
// One warp per (n, o): lanes stride over k (coalesced reads of both rows), then a shuffle
// reduction. Blocks of 256 threads = 8 warps; warp index guarded against batch·out_features.
template <typename In>
__device__ void linear(
    const In* __restrict__ x, int in_features, const float* __restrict__ extra, int has_extra,
    const u16* __restrict__ w, int ldw, const float* __restrict__ bias, float* __restrict__ y,
    int batch, int out_features, int relu)
{
    const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (warp >= (i64)batch * out_features) return;  // whole warps leave together
    const int o = (int)(warp % out_features);
    const i64 n = warp / out_features;
    const In* xn = x + n * in_features;
    const u16* wo = w + (i64)o * ldw;
    float acc = 0.0f;
    for (int k = lane; k < in_features; k += 32) acc += load_value(xn, k) * half_to_float(wo[k]);
    for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    if (lane == 0) {
        acc += bias[o];
        if (has_extra) acc += half_to_float(wo[in_features]) * extra[n];
        y[n * out_features + o] = relu ? fmaxf(acc, 0.0f) : acc;
    }
}

extern "C" __global__ void linear_f16_in(
    const u16* x, int in_features, const float* extra, int has_extra, const u16* w, int ldw,
    const float* bias, float* y, int batch, int out_features, int relu)
{
    linear(x, in_features, extra, has_extra, w, ldw, bias, y, batch, out_features, relu);
}

extern "C" __global__ void linear_f32_in(
    const float* x, int in_features, const float* extra, int has_extra, const u16* w, int ldw,
    const float* bias, float* y, int batch, int out_features, int relu)
{
    linear(x, in_features, extra, has_extra, w, ldw, bias, y, batch, out_features, relu);
}
