//! A bounds-checked wrapper around the `gemm` crate (runtime dispatch up to AVX-512): the one
//! place in the model where `unsafe` is needed.

use super::ModelError;

/// A strided f32 matrix view: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major `cols × rows` matrix, without copying.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: 1,
            col_stride: rows,
        }
    }
}

/// Whether the largest index of a strided view lies inside a slice of `len` elements.
fn fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1)
        .checked_mul(row_stride)
        .zip((cols - 1).checked_mul(col_stride))
        .and_then(|(a, b)| a.checked_add(b));
    matches!(last, Some(i) if i < len)
}

/// `dst = a · b`, with `dst` row-major `a.rows × b.cols` (row stride `b.cols`).
/// `threads` > 1 lets gemm split the product over the current rayon pool.
///
/// Shapes that disagree or a view reaching past its slice are an internal error (callers size
/// every buffer from the checked graph), reported rather than risked.
pub fn matmul(
    dst: &mut [f32],
    a: MatRef<'_>,
    b: MatRef<'_>,
    threads: usize,
) -> Result<(), ModelError> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let ok = b.rows == k
        && fits(dst.len(), m, n, n, 1)
        && fits(a.data.len(), m, k, a.row_stride, a.col_stride)
        && fits(b.data.len(), k, n, b.row_stride, b.col_stride);
    if !ok {
        return Err(ModelError::Engine(format!(
            "internal: matmul of {m}×{k} by {}×{n} into {} floats does not fit its buffers",
            b.rows,
            dst.len()
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        dst[..m * n].fill(0.0);
        return Ok(());
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the checks above prove that every element gemm reads or writes lies inside the
    // slices: dst (m × n, row stride n), a (m × k) and b (k × n) with their strides. dst is a
    // unique borrow, so it cannot alias a or b. Strides fit isize because they index slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}
