//! The candidates and their visiting order, the union-find forest of regions with S4's rule
//! for one voxel ([`Forest::visit`]), shared by both sweeps, and the direct sweep.
//!
//! Every region created by the sweep is a node of the forest; nodes are numbered in order of
//! creation, which is also the visiting order of their seeds, so a node's peak never exceeds
//! the peak of a node created before it. Merging always hangs a region under the node created
//! first, hence `parent[n] ≤ n` for every node and a root is the oldest node of its region.

use rayon::prelude::*;

use super::RegionParams;
use crate::volume::{Volume, VolumeError};

/// Label of a voxel visited so far that belongs to no region. Otherwise a label is 0 (not
/// visited yet, or no candidate) or `node + 1`.
pub(super) const VISITED_BACKGROUND: u32 = u32::MAX;

/// Voxels per work item of the parallel candidate scan; fixed so the result does not depend on
/// the number of threads.
const SCAN_CHUNK: usize = 1 << 16;

/// How many candidates ahead the sweep loads the neighbourhood rows. Visiting order jumps
/// around the volume, so nearly every neighbourhood misses the cache; loading it early lets
/// those misses overlap instead of stalling one after another.
const LOOKAHEAD: usize = 16;

/// Below this many candidates a comparison sort beats the radix sort's fixed cost.
const RADIX_MIN: usize = 1 << 8;

/// A candidate as a sort key: the high half is the complement of the SUV's bits (positive
/// floats order like their bit patterns, so ascending keys mean descending SUV) and the low half
/// is the linear index, which breaks ties as S4 prescribes. Indices fit: at most 2^31 voxels.
#[inline]
pub(super) fn candidate_key(suv: f32, index: usize) -> u64 {
    (u64::from(!suv.to_bits()) << 32) | index as u64
}

/// SUV and linear index of a candidate key.
#[inline]
pub(super) fn unpack(key: u64) -> (f32, usize) {
    (
        f32::from_bits(!((key >> 32) as u32)),
        (key & 0xFFFF_FFFF) as usize,
    )
}

struct ChunkScan {
    non_finite: usize,
    first_non_finite: usize,
    keys: Vec<u64>,
}

/// Voxels per block of the scan: one branch-free, vectorised test per block skips the blocks
/// without candidates or non-finite voxels, which are nearly all of a PET.
const SCAN_BLOCK: usize = 64;

impl ChunkScan {
    /// Records the candidates and non-finite voxels of `voxels` (at most [`SCAN_BLOCK`]), the
    /// first at linear index `base`.
    fn record(&mut self, voxels: &[f32], base: usize, threshold: f32) {
        if voxels.iter().any(|v| !v.is_finite()) {
            // The scan fails: only the non-finite voxels matter now.
            for (i, v) in voxels.iter().enumerate() {
                if !v.is_finite() {
                    self.first_non_finite = self.first_non_finite.min(base + i);
                    self.non_finite += 1;
                }
            }
            return;
        }
        // Branch-free: which voxels of a block with uptake are candidates is a coin toss.
        // Every voxel's key is written, and the next one overwrites it unless it is a candidate.
        let mut keys = [0u64; SCAN_BLOCK];
        let mut count = 0;
        for (i, &v) in voxels.iter().enumerate() {
            keys[count] = candidate_key(v, base + i);
            count += usize::from(v >= threshold);
        }
        self.keys.extend_from_slice(&keys[..count]);
    }
}

/// The candidates of `chunk` (whose first voxel has linear index `base`) as keys in index
/// order, and its non-finite voxels.
fn scan_chunk(chunk: &[f32], base: usize, threshold: f32) -> ChunkScan {
    let mut scan = ChunkScan {
        non_finite: 0,
        first_non_finite: usize::MAX,
        keys: Vec::new(),
    };
    // A block is notable when some |SUV| ≥ threshold or some voxel is not finite. The bits of
    // |v| order like its value, and non-finite values have the largest, so one integer
    // comparison per voxel covers both (negative voxels of large magnitude pass too, and are
    // sorted out by `record`).
    let magnitude = threshold.to_bits();
    let mut blocks = chunk.chunks_exact(SCAN_BLOCK);
    for (b, block) in blocks.by_ref().enumerate() {
        let notable = block.iter().fold(0u32, |any, &v| {
            any | u32::from(v.to_bits() & 0x7FFF_FFFF >= magnitude)
        });
        if notable != 0 {
            scan.record(block, base + b * SCAN_BLOCK, threshold);
        }
    }
    let rest = blocks.remainder();
    scan.record(rest, base + chunk.len() - rest.len(), threshold);
    scan
}

/// The candidates (SUV ≥ `threshold`, which is > 0) as keys in index order. Rejects
/// non-finite voxels with the same error as [`Volume::check_finite`], in the same pass.
pub(super) fn candidates(pet: &Volume<f32>, threshold: f32) -> Result<Vec<u64>, VolumeError> {
    let scans: Vec<ChunkScan> = pet
        .data()
        .par_chunks(SCAN_CHUNK)
        .enumerate()
        .map(|(c, chunk)| scan_chunk(chunk, c * SCAN_CHUNK, threshold))
        .collect();

    let non_finite: usize = scans.iter().map(|s| s.non_finite).sum();
    if non_finite > 0 {
        return Err(VolumeError::NonFinite {
            what: "PET",
            count: non_finite,
            first: scans.iter().map(|s| s.first_non_finite).min().unwrap_or(0),
        });
    }
    let mut keys = Vec::with_capacity(scans.iter().map(|s| s.keys.len()).sum());
    for scan in scans {
        keys.extend_from_slice(&scan.keys);
    }
    Ok(keys)
}

/// Puts keys from index order into visiting order. Keys whose low halves increase with the
/// index (linear indices, or positions in index order) need only a stable sort on the SUV half.
pub(super) fn sort_by_suv(keys: &mut Vec<u64>) {
    if keys.len() < RADIX_MIN {
        keys.sort_unstable();
    } else {
        radix_sort_half(keys, 32);
    }
}

/// Puts keys from visiting order back into linear index order (the indices are distinct).
pub(super) fn sort_by_index(keys: &mut Vec<u64>) {
    if keys.len() < RADIX_MIN {
        keys.sort_unstable_by_key(|&key| key & 0xFFFF_FFFF);
    } else {
        radix_sort_half(keys, 0);
    }
}

/// Stable LSD radix sort of `keys` by the 32 bits starting at `low_bit` (0 or 32), 11 + 11 + 10
/// bits per pass; a pass whose digit is the same for every key (common: the SUVs share sign and
/// most exponent bits) is skipped.
fn radix_sort_half(keys: &mut Vec<u64>, low_bit: u32) {
    const SHIFTS: [u32; 3] = [0, 11, 22];
    const BUCKETS: usize = 1 << 11;
    let digit =
        |key: u64, shift: u32| (((key >> low_bit) as u32 >> shift) as usize) & (BUCKETS - 1);
    let mut histograms = vec![[0usize; BUCKETS]; SHIFTS.len()];
    for &key in keys.iter() {
        for (histogram, &shift) in histograms.iter_mut().zip(&SHIFTS) {
            histogram[digit(key, shift)] += 1;
        }
    }
    let mut scratch = vec![0u64; keys.len()];
    for (histogram, &shift) in histograms.iter_mut().zip(&SHIFTS) {
        if histogram.contains(&keys.len()) {
            continue;
        }
        let mut next = 0;
        for slot in histogram.iter_mut() {
            let count = *slot;
            *slot = next;
            next += count;
        }
        for &key in keys.iter() {
            let slot = &mut histogram[digit(key, shift)];
            scratch[*slot] = key;
            *slot += 1;
        }
        std::mem::swap(keys, &mut scratch);
    }
}

/// The regions created by the sweep: a forest whose roots are the surviving regions.
pub(super) struct Forest {
    parent: Vec<u32>,
    /// SUV of each node's seed; non-increasing in the node number.
    peak: Vec<f32>,
}

impl Forest {
    pub(super) fn new() -> Self {
        Self {
            parent: Vec::new(),
            peak: Vec::new(),
        }
    }

    fn seed(&mut self, suv: f32) -> u32 {
        let node = self.parent.len() as u32;
        self.parent.push(node);
        self.peak.push(suv);
        node
    }

    /// The root of `node`, halving the path on the way.
    #[inline]
    fn find(&mut self, mut node: u32) -> u32 {
        loop {
            let parent = self.parent[node as usize];
            if parent == node {
                return node;
            }
            let grandparent = self.parent[parent as usize];
            self.parent[node as usize] = grandparent;
            node = grandparent;
        }
    }

    /// S4 steps 2–4 for a voxel of SUV `suv` whose neighbours carry the sweep labels
    /// `neighbours` (0 = not visited, [`VISITED_BACKGROUND`] or node + 1, in any order);
    /// returns the voxel's own sweep label.
    #[inline(always)]
    pub(super) fn visit(&mut self, suv: f32, neighbours: &[u32], params: &RegionParams) -> u32 {
        // Branch-free: the first visited neighbour's label, and whether all visited neighbours
        // carry it (the common case inside uptake: one region, or only background).
        let first = neighbours
            .iter()
            .fold(0, |first, &label| if first == 0 { label } else { first });
        if first == 0 {
            return if suv > params.seed_min_suv {
                self.seed(suv) + 1
            } else {
                VISITED_BACKGROUND
            };
        }
        let uniform = neighbours.iter().fold(true, |uniform, &label| {
            uniform & ((label == 0) | (label == first))
        });
        // Distinct roots of the visited neighbours (the set R of S4).
        let mut roots = [0u32; 26];
        let mut root_count = 0;
        if uniform {
            // One label: no set to build.
            if first != VISITED_BACKGROUND {
                roots[0] = self.find(first - 1);
                root_count = 1;
            }
        } else {
            let mut previous = 0;
            for &label in neighbours {
                // Neighbours often share a label; 0 and VISITED_BACKGROUND belong to no region.
                if label == previous || label == 0 || label == VISITED_BACKGROUND {
                    continue;
                }
                previous = label;
                let root = self.find(label - 1);
                if !roots[..root_count].contains(&root) {
                    roots[root_count] = root;
                    root_count += 1;
                }
            }
        }
        let roots = &roots[..root_count];
        let accepts = |root: u32| suv >= params.fraction * self.peak[root as usize];
        // Among the accepting regions A, the highest peak (ties: created first) is the oldest
        // node, because peaks do not increase with the node number.
        match roots.iter().copied().filter(|&r| accepts(r)).min() {
            None => VISITED_BACKGROUND,
            Some(winner) => {
                for &root in roots {
                    if root != winner && accepts(root) {
                        self.parent[root as usize] = winner;
                    }
                }
                winner + 1
            }
        }
    }

    /// Replaces the forest by the final region id (1-based) of every node. Roots are numbered
    /// in creation order, which is descending SUVmax with ties by the maximum's linear index.
    pub(super) fn into_region_ids(self) -> (Vec<u32>, u32) {
        let mut ids = self.parent;
        let mut regions = 0u32;
        // Ascending order: a node's parent is older, so its slot already holds the region id.
        for node in 0..ids.len() {
            let parent = ids[node] as usize;
            ids[node] = if parent == node {
                regions += 1;
                regions
            } else {
                ids[parent]
            };
        }
        (ids, regions)
    }
}

/// The voxel (x, y, z) at a linear index of a volume with `nx` × `ny` voxels per slice.
#[inline]
pub(super) fn voxel_of(index: usize, nx: usize, ny: usize) -> [usize; 3] {
    // u32 division: indices are below 2^31, and it is much cheaper than u64 division.
    let (index, nx, ny) = (index as u32, nx as u32, ny as u32);
    let (x, yz) = (index % nx, index / nx);
    [x as usize, (yz % ny) as usize, (yz / ny) as usize]
}

/// Reads the labels of a voxel's neighbours (a subset of the connectivity's steps) from a
/// volume-sized label map.
pub(super) struct Neighbourhood {
    dims: [usize; 3],
    steps: Vec<[isize; 3]>,
    /// The same steps as flat index offsets.
    flat: Vec<isize>,
}

impl Neighbourhood {
    pub(super) fn new(dims: [usize; 3], steps: Vec<[isize; 3]>) -> Self {
        let [nx, ny, _] = dims;
        let flat = steps
            .iter()
            .map(|&[dx, dy, dz]| dx + (dy + dz * ny as isize) * nx as isize)
            .collect();
        Self { dims, steps, flat }
    }

    /// Number of neighbours.
    pub(super) fn len(&self) -> usize {
        self.flat.len()
    }

    /// The labels of the neighbours of voxel `index`, in step order, 0 outside the volume;
    /// `out` holds at least as many labels as there are steps.
    #[inline(always)]
    pub(super) fn gather<'a>(&self, labels: &[u32], index: usize, out: &'a mut [u32]) -> &'a [u32] {
        let [nx, ny, nz] = self.dims;
        let out = &mut out[..self.flat.len()];
        let [x, y, z] = voxel_of(index, nx, ny);
        if x > 0 && x + 1 < nx && y > 0 && y + 1 < ny && z > 0 && z + 1 < nz {
            // Independent loads that can overlap.
            for (label, &offset) in out.iter_mut().zip(&self.flat) {
                *label = labels[index.wrapping_add_signed(offset)];
            }
        } else {
            for (label, &[dx, dy, dz]) in out.iter_mut().zip(&self.steps) {
                let (xn, yn, zn) = (
                    x.wrapping_add_signed(dx),
                    y.wrapping_add_signed(dy),
                    z.wrapping_add_signed(dz),
                );
                // A step below 0 wraps to a huge value and fails the test as well.
                *label = if xn < nx && yn < ny && zn < nz {
                    labels[xn + nx * (yn + ny * zn)]
                } else {
                    0
                };
            }
        }
        out
    }
}

/// Visits the candidates in `order` (keys in visiting order) directly on a volume-sized label
/// map, S4 steps 2–4; returns that map (0, [`VISITED_BACKGROUND`] or node + 1) and the forest.
pub(super) fn sweep(pet: &Volume<f32>, order: &[u64], params: &RegionParams) -> (Vec<u32>, Forest) {
    let dims = pet.dims();
    let [nx, ny, _] = dims;
    let steps = params.connectivity.offsets();
    // Flat offsets of the rows (x - 1 ..= x + 1) that hold the neighbours, for the lookahead.
    let mut rows: Vec<isize> = steps
        .iter()
        .map(|&[_, dy, dz]| (dy + dz * ny as isize) * nx as isize)
        .collect();
    rows.sort_unstable();
    rows.dedup();
    let neighbourhood = Neighbourhood::new(dims, steps);

    let mut labels = vec![0u32; pet.data().len()];
    let mut forest = Forest::new();
    let mut touched = 0u32;
    let mut neighbour_labels = [0u32; 26];
    for (k, &key) in order.iter().enumerate() {
        if let Some(&ahead) = order.get(k + LOOKAHEAD) {
            let (_, ahead) = unpack(ahead);
            for &row in &rows {
                if let Some(&label) = labels.get(ahead.wrapping_add_signed(row)) {
                    touched |= label;
                }
            }
        }
        let (suv, index) = unpack(key);
        let neighbours = neighbourhood.gather(&labels, index, &mut neighbour_labels);
        labels[index] = forest.visit(suv, neighbours, params);
    }
    std::hint::black_box(touched);
    (labels, forest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_by_descending_suv_then_index() {
        let mut keys = [
            candidate_key(1.5, 7),
            candidate_key(2.0, 9),
            candidate_key(1.5, 3),
            candidate_key(0.5, 0),
            candidate_key(2.0, 1),
        ];
        keys.sort_unstable();
        let order: Vec<(f32, usize)> = keys.iter().map(|&k| unpack(k)).collect();
        assert_eq!(order, [(2.0, 1), (2.0, 9), (1.5, 3), (1.5, 7), (0.5, 0)]);
    }

    #[test]
    fn radix_sort_equals_comparison_sort() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for (len, levels) in [(5000usize, 7u32), (20_000, 1 << 20), (3000, 1)] {
            // Index order, as the scan produces; few distinct levels give many ties.
            let mut keys: Vec<u64> = (0..len)
                .map(|i| candidate_key(0.5 + rng.random_range(0..levels) as f32 * 0.37, i))
                .collect();
            let mut expected = keys.clone();
            expected.sort_unstable();
            radix_sort_half(&mut keys, 32);
            assert_eq!(keys, expected, "len {len}, levels {levels}");
            let mut by_index = expected.clone();
            sort_by_index(&mut by_index);
            assert!(
                by_index.iter().map(|&k| unpack(k).1).eq(0..len),
                "len {len}"
            );
        }
    }
}
