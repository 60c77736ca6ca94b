//! AVX-512 kernel for the convolution product `dst = W · col` (the `gemm` crate on stable Rust
//! stops at AVX2): W is [rows, k] with rows padded to a multiple of [`MR`] and packed so that
//! the [`MR`] weights of one k are adjacent; col is [k, cols] row-major with cols a multiple of
//! [`NR`]. Each call of the micro-kernel keeps an [`MR`] × [`NR`] block of `dst` in 24 zmm
//! registers and streams k: per k it loads 3 vectors of col and broadcasts 8 weights into 24
//! fused multiply-adds, so the FMA units, not the loads, set the pace.
//!
//! Selected at run time when the CPU has AVX-512F; otherwise (or with
//! `UPTAKE_MODEL_KERNEL=gemm`) the engine uses the portable `gemm` path, which tests compare
//! with the same reference.

use super::ModelError;

/// Rows (output channels) per micro-kernel block.
/// cbindgen:ignore
pub const MR: usize = 8;
/// Columns (output pixels) per micro-kernel block: 3 zmm of 16 floats.
/// cbindgen:ignore
pub const NR: usize = 48;

/// Weights [rows, k] packed for the kernel: panel p holds rows p·MR … p·MR + MR − 1 as
/// [k][MR], rows beyond `rows` zero.
#[derive(Debug, Clone)]
pub struct PackedWeights {
    data: Vec<f32>,
    rows: usize,
    k: usize,
}

impl PackedWeights {
    /// Packs a row-major [rows, k] matrix.
    pub fn pack(weight: &[f32], rows: usize, k: usize) -> Self {
        let panels = rows.div_ceil(MR);
        let mut data = vec![0.0; panels * k * MR];
        for r in 0..rows {
            let (p, lane) = (r / MR, r % MR);
            for kk in 0..k {
                data[(p * k + kk) * MR + lane] = weight[r * k + kk];
            }
        }
        Self { data, rows, k }
    }

    /// Rows rounded up to whole panels: the row count of the product.
    pub fn padded_rows(&self) -> usize {
        self.rows.div_ceil(MR) * MR
    }
}

/// Whether this CPU runs the AVX-512 kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `dst[padded_rows, cols] = W · B` where row kk of B is `b[offsets[kk]..offsets[kk] + cols]`
/// (an im2col matrix, or for an implicit convolution the shifted input itself); `dst` is
/// row-major with row stride `cols`, a multiple of [`NR`]. Only valid when [`available`].
pub fn matmul_packed(
    dst: &mut [f32],
    w: &PackedWeights,
    b: &[f32],
    offsets: &[usize],
    cols: usize,
) -> Result<(), ModelError> {
    let rows = w.padded_rows();
    let ok = available()
        && cols.is_multiple_of(NR)
        && dst.len() >= rows * cols
        && offsets.len() == w.k
        && offsets
            .iter()
            .all(|&o| o.checked_add(cols).is_some_and(|end| end <= b.len()))
        && w.data.len() == rows * w.k;
    if !ok {
        return Err(ModelError::Engine(format!(
            "internal: AVX-512 product {rows}×{} by {}×{cols} does not fit its buffers",
            w.k, w.k
        )));
    }
    #[cfg(target_arch = "x86_64")]
    for p in 0..rows / MR {
        let panel = &w.data[p * w.k * MR..(p + 1) * w.k * MR];
        for j in (0..cols).step_by(NR) {
            // SAFETY: AVX-512F is present (checked above). The panel holds k·MR floats; every
            // B row offsets[kk] + j .. + NR lies in b since j + NR ≤ cols and
            // offsets[kk] + cols ≤ b.len(); dst rows p·MR..p·MR + MR hold columns j..j + NR
            // since dst.len() ≥ rows·cols.
            unsafe {
                kernel(
                    panel,
                    b.as_ptr().add(j),
                    offsets,
                    dst.as_mut_ptr().add(p * MR * cols + j),
                    cols,
                );
            }
        }
    }
    Ok(())
}

/// One MR × NR block: dst[r][c] = Σ_kk panel[kk][r] · b[offsets[kk] + c].
///
/// # Safety
/// AVX-512F must be available; `panel` must hold offsets.len()·MR floats, each
/// `b + offsets[kk]` NR floats, and `dst` rows 0..MR (stride `dst_stride`) NR floats each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel(
    panel: &[f32],
    b: *const f32,
    offsets: &[usize],
    dst: *mut f32,
    dst_stride: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 3]; MR];
    for (w, &offset) in panel.chunks_exact(MR).zip(offsets) {
        // SAFETY: in bounds by the function's contract.
        let (b0, b1, b2) = unsafe {
            let row = b.add(offset);
            (
                _mm512_loadu_ps(row),
                _mm512_loadu_ps(row.add(16)),
                _mm512_loadu_ps(row.add(32)),
            )
        };
        for (acc, &weight) in acc.iter_mut().zip(w) {
            let a = _mm512_set1_ps(weight);
            acc[0] = _mm512_fmadd_ps(a, b0, acc[0]);
            acc[1] = _mm512_fmadd_ps(a, b1, acc[1]);
            acc[2] = _mm512_fmadd_ps(a, b2, acc[2]);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        // SAFETY: row r < MR of dst holds NR floats by the function's contract.
        unsafe {
            let out = dst.add(r * dst_stride);
            _mm512_storeu_ps(out, acc[0]);
            _mm512_storeu_ps(out.add(16), acc[1]);
            _mm512_storeu_ps(out.add(32), acc[2]);
        }
    }
}
