// S4 on the device: the visiting order. The sweep itself (steps 2-4) is inherently sequential
// and runs on the host over this order with the CPU's own code, so labels and statistics are
// identical by construction (docs/gpu.md).
//
// A candidate (SUV >= threshold > 0) becomes the key (~bits(SUV) << 32) | linear index: positive
// floats order like their bit patterns, so ascending keys mean descending SUV, ties by increasing
// index, exactly S4 step 1 and the host's key. Keys are unique, so any correct sort gives the one
// order; the bitonic network below sorts a power-of-two array padded with ~0 (sorts last).

// Warp-aggregated slot reservation: one atomic per warp. Every lane of the warp must reach it.
__device__ __forceinline__ u32 reserve(u32* cursor, bool take) {
    const u32 lane = threadIdx.x & 31;
    const u32 ballot = __ballot_sync(0xffffffffu, take);
    u32 base = 0;
    if (lane == 0 && ballot != 0) base = atomicAdd(cursor, (u32)__popc(ballot));
    base = __shfl_sync(0xffffffffu, base, 0);
    return base + (u32)__popc(ballot & ((1u << lane) - 1u));
}

__device__ __forceinline__ bool is_finite(float v) {
    return (__float_as_uint(v) & 0x7f800000u) != 0x7f800000u;
}

// Pass 1. pet [n] f32; counters[0] += candidates, counters[1] += non-finite voxels,
// counters[2] = min index of a non-finite voxel (initialised to ~0 by the host). One thread per
// voxel; blockDim is a multiple of 32 and no thread returns early (reserve needs the whole warp).
extern "C" __global__ void regions_count(const float* __restrict__ pet, u64 n, float threshold, u32* counters) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const float v = i < n ? pet[i] : 0.0f;
    const bool finite = is_finite(v);
    const bool candidate = i < n && finite && v >= threshold;
    const u32 lane = threadIdx.x & 31;
    const u32 candidates = __popc(__ballot_sync(0xffffffffu, candidate));
    if (lane == 0 && candidates != 0) atomicAdd(&counters[0], candidates);
    if (i < n && !finite) {
        atomicAdd(&counters[1], 1u);
        atomicMin(&counters[2], (u32)i);
    }
}

// Pass 2. Writes the keys of all candidates into keys[0 .. count) in arbitrary order (sorted
// next); `cursor` starts at 0. Same launch shape as regions_count.
extern "C" __global__ void regions_keys(const float* __restrict__ pet, u64 n, float threshold, u64* keys, u32* cursor) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    const float v = i < n ? pet[i] : 0.0f;
    const bool candidate = i < n && is_finite(v) && v >= threshold;
    const u32 slot = reserve(cursor, candidate);
    if (candidate) keys[slot] = ((u64)(~__float_as_uint(v)) << 32) | i;
}

// keys[from .. n) = ~0, the padding up to the power-of-two length. One thread per key.
extern "C" __global__ void regions_pad(u64* keys, u64 from, u64 n) {
    const u64 i = from + (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) keys[i] = ~0ull;
}

// Bitonic network over n = 2^m >= CHUNK keys. Stage (k, j) compares key i with key i ^ j and
// orders the pair ascending when (i & k) == 0, descending otherwise; stages run k = 2, 4, .., n
// and, within each, j = k/2, .., 1. Stages with j < CHUNK stay inside one CHUNK-key chunk and run
// in shared memory; larger j run one launch per stage over global memory.
#define CHUNK 2048

__device__ __forceinline__ void compare_swap(u64* a, u64* b, bool ascending) {
    const u64 x = *a, y = *b;
    if ((x > y) == ascending) {
        *a = y;
        *b = x;
    }
}

// Pair t of stage j (t < half the keys) is (i, i + j) with i = 2j·(t / j) + t % j.
__device__ __forceinline__ u64 pair_low(u64 t, u64 j) { return 2 * j * (t / j) + (t % j); }

// Runs stages (k, j) for j = j_start, j_start/2, .., 1 on one chunk in shared memory.
__device__ __forceinline__ void chunk_stages(u64* s, u64 chunk_base, u64 k, u64 j_start) {
    for (u64 j = j_start; j >= 1; j >>= 1) {
        __syncthreads();
        const u64 i = pair_low(threadIdx.x, j);
        compare_swap(&s[i], &s[i + j], ((chunk_base + i) & k) == 0);
    }
    __syncthreads();
}

// Sorts every CHUNK-key chunk (stages k = 2 .. CHUNK), alternating direction between chunks as
// the network requires. CHUNK / 2 threads per block, one block per chunk.
extern "C" __global__ void regions_sort_chunks(u64* keys) {
    __shared__ u64 s[CHUNK];
    const u64 base = (u64)blockIdx.x * CHUNK;
    s[threadIdx.x] = keys[base + threadIdx.x];
    s[threadIdx.x + CHUNK / 2] = keys[base + threadIdx.x + CHUNK / 2];
    for (u64 k = 2; k <= CHUNK; k <<= 1) chunk_stages(s, base, k, k / 2);
    keys[base + threadIdx.x] = s[threadIdx.x];
    keys[base + threadIdx.x + CHUNK / 2] = s[threadIdx.x + CHUNK / 2];
}

// One stage (k, j) with j >= CHUNK over global memory: one thread per pair, t < n / 2 guarded.
extern "C" __global__ void regions_merge_global(u64* keys, u64 n, u64 k, u64 j) {
    const u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n / 2) return;
    const u64 i = pair_low(t, j);
    compare_swap(&keys[i], &keys[i + j], (i & k) == 0);
}

// The stages (k, j) for j = CHUNK/2 .. 1 of one k > CHUNK, per chunk in shared memory.
extern "C" __global__ void regions_merge_chunks(u64* keys, u64 k) {
    __shared__ u64 s[CHUNK];
    const u64 base = (u64)blockIdx.x * CHUNK;
    s[threadIdx.x] = keys[base + threadIdx.x];
    s[threadIdx.x + CHUNK / 2] = keys[base + threadIdx.x + CHUNK / 2];
    chunk_stages(s, base, k, CHUNK / 2);
    keys[base + threadIdx.x] = s[threadIdx.x];
    keys[base + threadIdx.x + CHUNK / 2] = s[threadIdx.x + CHUNK / 2];
}
