//! Connected components of a binary mask, with the neighbourhoods S4 uses. Beside the region
//! stage because evaluation (autoPET's false-positive and false-negative volumes) and the hybrid
//! studies' bone and lesion hosts need the plain labelling, without S4's seeds and thresholds.

use super::Connectivity;

/// Connected components of `mask` (x fastest, then y, then z, as in [`crate::volume::Volume`])
/// with the neighbours of `connectivity`. Returns a component id per voxel (0 = outside the
/// mask; ids 1, 2, … in index order of each component's first voxel) and each component's voxel
/// count (at index id − 1).
///
/// # Panics
/// When `mask.len()` is not the product of `dims`.
pub fn components(
    mask: &[bool],
    dims: [usize; 3],
    connectivity: Connectivity,
) -> (Vec<u32>, Vec<usize>) {
    let [nx, ny, nz] = dims;
    assert_eq!(mask.len(), nx * ny * nz, "mask length and dims differ");
    let offsets = connectivity.offsets();
    let mut id = vec![0u32; mask.len()];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || id[start] != 0 {
            continue;
        }
        let label = sizes.len() as u32 + 1;
        id[start] = label;
        stack.push(start);
        let mut size = 0;
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
            for &[dx, dy, dz] in &offsets {
                let (Some(a), Some(b), Some(c)) = (
                    x.checked_add_signed(dx),
                    y.checked_add_signed(dy),
                    z.checked_add_signed(dz),
                ) else {
                    continue;
                };
                if a >= nx || b >= ny || c >= nz {
                    continue;
                }
                let j = a + nx * (b + ny * c);
                if mask[j] && id[j] == 0 {
                    id[j] = label;
                    stack.push(j);
                }
            }
        }
        sizes.push(size);
    }
    (id, sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Voxels (0,0,0), (1,1,0) share an edge, (2,2,1) a corner with (1,1,0); (3,0,1) stands alone.
    fn mask() -> Vec<bool> {
        let dims = [4, 3, 2];
        let mut m = vec![false; 24];
        for [x, y, z] in [[0, 0, 0], [1, 1, 0], [2, 2, 1], [3, 0, 1]] {
            m[x + dims[0] * (y + dims[1] * z)] = true;
        }
        m
    }

    #[test]
    fn each_connectivity_joins_only_its_neighbours() {
        let counts: Vec<Vec<usize>> = Connectivity::all()
            .iter()
            .map(|&c| components(&mask(), [4, 3, 2], c).1)
            .collect();
        assert_eq!(counts[0], vec![1, 1, 1, 1]);
        assert_eq!(counts[1], vec![2, 1, 1]);
        assert_eq!(counts[2], vec![3, 1]);
    }

    #[test]
    fn ids_follow_the_first_voxel_of_each_component() {
        let in_order = |c| -> Vec<u32> {
            let (id, _) = components(&mask(), [4, 3, 2], c);
            id.into_iter().filter(|&v| v != 0).collect()
        };
        assert_eq!(in_order(Connectivity::Eighteen), vec![1, 1, 2, 3]);
        assert_eq!(in_order(Connectivity::TwentySix), vec![1, 1, 2, 1]);
    }
}
