//! The compact sweep: S4 on arrays indexed by visiting rank instead of on the volume.
//!
//! Visiting order jumps around the volume, so the direct sweep's reads of each neighbourhood
//! in the volume-sized label map nearly all miss the cache. Here the neighbourhoods are read
//! in index order instead, where consecutive candidates share cache lines, and kept as lists:
//!
//! 1. Every candidate's rank (its position in visiting order) + 1 goes into the label map.
//! 2. In index order, every candidate's list: the ranks of its neighbours of lower rank,
//!    which are exactly the neighbours S4 has visited before it. Passes 1 and 2 run together,
//!    the ranks written one slice ahead of the neighbourhoods that read them.
//! 3. The sweep runs over the ranks, reading each list and, for the ranks in it, the sweep
//!    labels already given, from an array of one `u32` per candidate instead of the volume.
//!
//! Memory beyond the label map and the keys: 8 bytes per candidate for the visiting order
//! (16 while it is radix sorted), 4 each for the ranks (until the lists are built), the list
//! bounds and the sweep labels, and 4 per pair of neighbouring candidates: at most half the
//! connectivity per candidate, 13 for 26-connectivity.

use super::RegionParams;
use super::sweep::{Forest, Neighbourhood, sort_by_suv, unpack};
use crate::volume::Volume;

/// Ranks per batch of the sweep (see pass 3).
const BATCH: usize = 64;

/// Whether the lists of `candidates` candidates can be addressed by `u32` offsets.
pub(super) fn fits(candidates: usize) -> bool {
    candidates
        .checked_mul(13)
        .is_some_and(|pairs| pairs < u32::MAX as usize)
}

/// The result of the compact sweep.
pub(super) struct Ranked {
    /// Volume-sized: rank + 1 at every candidate, 0 elsewhere.
    pub labels: Vec<u32>,
    /// The sweep label of every rank: [`super::sweep::VISITED_BACKGROUND`] or node + 1.
    pub sweep_labels: Vec<u32>,
    pub forest: Forest,
}

/// S4 steps 2–4 for `candidates` (keys in index order, from [`super::sweep::candidates`]);
/// at most [`fits`] candidates.
pub(super) fn sweep(pet: &Volume<f32>, candidates: &[u64], params: &RegionParams) -> Ranked {
    let count = candidates.len();
    // Keys with the position in `candidates` as the low half: positions increase with the
    // index, so the sort gives S4's visiting order.
    let mut order: Vec<u64> = candidates
        .iter()
        .enumerate()
        .map(|(position, &key)| (key & !0xFFFF_FFFF) | position as u64)
        .collect();
    sort_by_suv(&mut order);
    let mut rank_of = vec![0u32; count];
    for (rank, &key) in order.iter().enumerate() {
        rank_of[unpack(key).1] = rank as u32;
    }

    // Passes 1 and 2 together, in index order: the lists, list p being
    // `lists[starts[p]..starts[p + 1]]`, with the ranks written into the label map just ahead
    // of the neighbourhoods that read them, while their cache lines are still at hand.
    let [nx, ny, _] = pet.dims();
    let reach = nx * ny + nx + 1;
    let neighbourhood = Neighbourhood::new(pet.dims(), params.connectivity.offsets());
    let mut labels = vec![0u32; pet.data().len()];
    let mut written = 0;
    let mut neighbour_labels = [0u32; 26];
    let mut starts = Vec::with_capacity(count + 1);
    // The most the lists can hold in all (and room for one whole `earlier` beyond): reserved,
    // not touched, so no reallocation copies.
    let mut lists = Vec::with_capacity(count * neighbourhood.len() / 2 + 26);
    starts.push(0);
    for &key in candidates {
        let index = unpack(key).1;
        // Every neighbour lies within `reach` of the voxel in index order.
        while let Some(&ahead) = candidates.get(written) {
            let ahead = unpack(ahead).1;
            if ahead > index + reach {
                break;
            }
            labels[ahead] = rank_of[written] + 1;
            written += 1;
        }
        let rank = labels[index];
        // Branch-free: whether a neighbour was visited before is a coin toss.
        let mut earlier = [0u32; 26];
        let mut len = 0;
        for &label in neighbourhood.gather(&labels, index, &mut neighbour_labels) {
            // Visited before: a candidate (label ≥ 1) of lower rank.
            earlier[len] = label.wrapping_sub(1);
            len += usize::from(label.wrapping_sub(1) < rank - 1);
        }
        // A copy of fixed size is a few vector moves, where one of variable size is a call to
        // memmove per candidate; the list is then cut to its length.
        let end = lists.len() + len;
        lists.extend_from_slice(&earlier);
        lists.truncate(end);
        starts.push(lists.len() as u32);
    }
    drop(rank_of);

    // Pass 3: the sweep, in visiting order, a batch of ranks at a time. Visiting order jumps
    // around the lists, and the sweep branches too often for the processor to run ahead to the
    // next list; so each batch first touches its lists in a loop of independent loads, whose
    // cache misses overlap.
    let mut forest = Forest::new();
    let mut sweep_labels: Vec<u32> = Vec::with_capacity(count);
    let mut visited = [0u32; 26];
    let mut touched = 0;
    for keys in order.chunks(BATCH) {
        for &key in keys {
            let position = unpack(key).1;
            let (start, end) = (starts[position], starts[position + 1]);
            // The first and last entry: most lists span one or two cache lines.
            touched |= lists.get(start as usize).copied().unwrap_or(0);
            touched |= lists
                .get(end.wrapping_sub(1) as usize)
                .copied()
                .unwrap_or(0);
        }
        for &key in keys {
            let (suv, position) = unpack(key);
            let list = &lists[starts[position] as usize..starts[position + 1] as usize];
            for (label, &other) in visited.iter_mut().zip(list) {
                *label = sweep_labels[other as usize];
            }
            sweep_labels.push(forest.visit(suv, &visited[..list.len()], params));
        }
    }
    std::hint::black_box(touched);
    Ranked {
        labels,
        sweep_labels,
        forest,
    }
}
