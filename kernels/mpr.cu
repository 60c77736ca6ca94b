// S5: batched reformation gather, every region of a study in one launch.
//
// Inputs: pet3 and ct3 on the same common grid [nz][ny][nx] f32. Per region r, `frames` holds 12
// doubles in the grid's continuous index space: the centre, and the steps of one column, one row
// and one mm of plane offset (augmentation already folded in). `offsets_mm` holds the P plane
// offsets. Output [regions][2P][S][S] (PET planes, then CT planes), windowed to [0, 1]: f32 for
// the parity tests, fp16 bits for the network. One thread per (region, plane, row, column),
// linear index guarded against regions·P·S·S; the cell is located once and read in both volumes.
// Pixel (r, k) of plane p lies at centre + o_p·offset_step - h·col_step + (r - h)·row_step
// + k·col_step with h = S / 2: the same order of operations as crate::mpr on the host.

struct Window {
    float lo;
    float scale;
};

__device__ __forceinline__ float apply_window(Window w, float v) {
    return fminf(fmaxf((v - w.lo) * w.scale, 0.0f), 1.0f);
}

__device__ __forceinline__ void store(float* out, i64 i, float v) { out[i] = v; }
__device__ __forceinline__ void store(u16* out, i64 i, float v) { out[i] = float_to_half(v); }

template <typename Out>
__device__ void gather(
    const float* __restrict__ pet3, const float* __restrict__ ct3, int nx, int ny, int nz,
    const double* __restrict__ frames, const double* __restrict__ offsets_mm,
    int regions, int planes, int size, Window pet_window, Window ct_window, Out* __restrict__ out)
{
    const i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const i64 plane_len = (i64)size * size;
    if (t >= (i64)regions * planes * plane_len) return;
    const int k = (int)(t % size);
    const int r = (int)((t / size) % size);
    const int p = (int)((t / plane_len) % planes);
    const i64 region = t / (plane_len * planes);

    const double* f = frames + region * 12;  // centre[3], col[3], row[3], offset[3]
    const double h = (double)(size / 2);
    const double o = offsets_mm[p];
    const double dr = (double)r - h;
    const double kf = (double)k;
    double at[3];
    for (int a = 0; a < 3; ++a) {
        const double start = f[a] + o * f[9 + a] - h * f[3 + a] + dr * f[6 + a];
        at[a] = start + kf * f[3 + a];
    }
    Cell cell;
    float pet, ct;
    if (locate(at[0], at[1], at[2], nx, ny, nz, &cell)) {
        pet = apply_window(pet_window, interpolate(pet3, cell));
        ct = apply_window(ct_window, interpolate(ct3, cell));
    } else {
        pet = apply_window(pet_window, 0.0f);
        ct = apply_window(ct_window, -1000.0f);
    }
    const i64 tensor = region * 2 * planes * plane_len;
    const i64 pixel = (i64)r * size + k;
    store(out, tensor + p * plane_len + pixel, pet);
    store(out, tensor + (planes + p) * plane_len + pixel, ct);
}

extern "C" __global__ void mpr_gather_f32(
    const float* __restrict__ pet3, const float* __restrict__ ct3, int nx, int ny, int nz,
    const double* __restrict__ frames, const double* __restrict__ offsets_mm,
    int regions, int planes, int size, Window pet_window, Window ct_window, float* __restrict__ out)
{
    gather(pet3, ct3, nx, ny, nz, frames, offsets_mm, regions, planes, size, pet_window, ct_window, out);
}

extern "C" __global__ void mpr_gather_f16(
    const float* __restrict__ pet3, const float* __restrict__ ct3, int nx, int ny, int nz,
    const double* __restrict__ frames, const double* __restrict__ offsets_mm,
    int regions, int planes, int size, Window pet_window, Window ct_window, u16* __restrict__ out)
{
    gather(pet3, ct3, nx, ny, nz, frames, offsets_mm, regions, planes, size, pet_window, ct_window, out);
}
