// S3: trilinear resampling of a volume onto a target grid (the common 3 mm grid).
//
// Layout: src [sz][sy][sx] and dst [tz][ty][tx] f32, x fastest. One thread per target voxel,
// linear index v < tx·ty·tz (guarded); `map` takes a target voxel index (x, y, z) to the source's
// continuous index. Outside the source, `outside` (PET 0 SUV, CT -1000 HU).
extern "C" __global__ void resample_trilinear(
    const float* __restrict__ src, int sx, int sy, int sz,
    float* __restrict__ dst, int tx, int ty, int tz,
    IndexMap map, float outside)
{
    const i64 v = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const i64 total = (i64)tx * ty * tz;
    if (v >= total) return;
    const double x = (double)(v % tx);
    const double y = (double)((v / tx) % ty);
    const double z = (double)(v / ((i64)tx * ty));
    const double fx = map.m[0] * x + map.m[1] * y + map.m[2] * z + map.t[0];
    const double fy = map.m[3] * x + map.m[4] * y + map.m[5] * z + map.t[1];
    const double fz = map.m[6] * x + map.m[7] * y + map.m[8] * z + map.t[2];
    Cell cell;
    dst[v] = locate(fx, fy, fz, sx, sy, sz, &cell) ? interpolate(src, cell) : outside;
}
