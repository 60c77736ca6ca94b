//! The compact sweep: S4 on arrays indexed by visiting rank instead of on the volume.
//!
//! Visiting order jumps around the volume, so the direct sweep's reads of each neighbourhood
//! in the volume-sized label map nearly all miss the cache. Here the neighbourhoods are read
//! in index order instead, where consecutive candidates share cache lines, and kept as lists:
//!
//! 1. Every candidate's rank (its position in visiting order) + 1 goes into the label map,
//!    in parallel over fixed ranges of the volume.
//! 2. Every candidate's list: the ranks of its neighbours of lower rank, which are exactly the
//!    neighbours S4 has visited before it. In parallel over fixed runs of candidates in index
//!    order, each run writing its lists end to end into a slot of its own (see [`Lists`]).
//! 3. The sweep runs over the ranks, reading each list and, for the ranks in it, the sweep
//!    labels already given, from an array of one `u32` per candidate instead of the volume.
//!
//! Passes 1 and 2 run on all threads; their work items are fixed, so the lists, and hence
//! the result, do not depend on the number of threads.
//!
//! Memory beyond the label map and the keys: 8 bytes per candidate for the visiting order
//! (16 while it is radix sorted), 4 each for the ranks (until pass 1 has written them), the list
//! ends and the sweep labels, and the lists: 4 bytes per pair of neighbouring candidates
//! (at most 13 pairs per candidate for 26-connectivity), written into slots reserved for the
//! longest lists, 104 bytes per candidate. The reservation is never zeroed: while it is fresh
//! from the operating system only the pages written are mapped, and memory that the allocator
//! reuses costs no pass over it.

use rayon::prelude::*;

use super::RegionParams;
use super::slots::Slots;
use super::sweep::{Forest, Neighbourhood, sort_by_suv, unpack};
use crate::volume::Volume;

/// Ranks per batch of the sweep (see pass 3).
const BATCH: usize = 64;

/// Voxels per work item of pass 1.
const RANK_RANGE: usize = 1 << 16;

/// Candidates per run of pass 2.
const LIST_RUN: usize = 1 << 14;

/// Entries a candidate's list is written with before it is cut to its length: a copy of
/// fixed size is a few vector moves, where one of variable size is a call to memmove.
const LIST_WRITE: usize = 26;

/// Whether the lists of `candidates` candidates can be addressed by `u32` offsets.
pub(super) fn fits(candidates: usize) -> bool {
    candidates
        .div_ceil(LIST_RUN)
        .checked_mul(Lists::slot(LIST_RUN, 26))
        .is_some_and(|entries| entries <= u32::MAX as usize)
}

/// Every candidate's list of neighbours of lower rank, by position in index order. Run r's
/// lists lie end to end from the start of slot r of `entries`, which holds the longest lists a
/// run can have; the last run's slot holds only its own candidates' lists. The slots are
/// reserved uninitialised ([`Slots`]).
struct Lists {
    /// Written from the start of each slot up to the end of its run's last list.
    entries: Slots,
    /// Where each list ends in `entries`; a list starts where the one before it in its run
    /// ends, the first of a run at its slot.
    ends: Vec<u32>,
    slot: usize,
}

impl Lists {
    /// Entries in the slot of a run of `candidates` with `neighbours` neighbours per voxel:
    /// all of them for every candidate, and room for the last fixed-size write.
    fn slot(candidates: usize, neighbours: usize) -> usize {
        candidates * neighbours + LIST_WRITE
    }

    /// Pass 2, from a label map holding rank + 1 at every candidate.
    fn build(labels: &[u32], candidates: &[u64], neighbourhood: &Neighbourhood) -> Self {
        let slot = Self::slot(LIST_RUN, neighbourhood.len());
        let last = candidates.len() % LIST_RUN;
        let last_slot = if last == 0 {
            0
        } else {
            Self::slot(last, neighbourhood.len())
        };
        let mut entries = Slots::new(candidates.len() / LIST_RUN * slot + last_slot, slot);
        let mut ends = vec![0u32; candidates.len()];
        entries
            .par_slots_mut()
            .zip(ends.par_chunks_mut(LIST_RUN))
            .zip(candidates.par_chunks(LIST_RUN))
            .enumerate()
            .for_each(|(run, ((mut entries, ends), candidates))| {
                let mut neighbour_labels = [0u32; 26];
                let mut len = 0;
                for (&key, end) in candidates.iter().zip(ends) {
                    let index = unpack(key).1;
                    let rank = labels[index];
                    // Branch-free: whether a neighbour was visited before is a coin toss.
                    let mut earlier = [0u32; LIST_WRITE];
                    let mut count = 0;
                    for &label in neighbourhood.gather(labels, index, &mut neighbour_labels) {
                        // Visited before: a candidate (label ≥ 1) of lower rank.
                        earlier[count] = label.wrapping_sub(1);
                        count += usize::from(label.wrapping_sub(1) < rank - 1);
                    }
                    entries.write(len, &earlier);
                    len += count;
                    *end = (run * slot + len) as u32;
                }
            });
        Self {
            entries,
            ends,
            slot,
        }
    }

    /// The list of the candidate at `position` in index order.
    #[inline]
    fn get(&self, position: usize) -> &[u32] {
        let start = if position.is_multiple_of(LIST_RUN) {
            position / LIST_RUN * self.slot
        } else {
            self.ends[position - 1] as usize
        };
        self.entries.get(start..self.ends[position] as usize)
    }
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

    // Pass 1.
    let mut labels = vec![0u32; pet.data().len()];
    labels
        .par_chunks_mut(RANK_RANGE)
        .enumerate()
        .for_each(|(range, labels)| {
            let base = range * RANK_RANGE;
            let first = candidates.partition_point(|&key| unpack(key).1 < base);
            let last = candidates.partition_point(|&key| unpack(key).1 < base + labels.len());
            for (&key, &rank) in candidates[first..last].iter().zip(&rank_of[first..last]) {
                labels[unpack(key).1 - base] = rank + 1;
            }
        });
    drop(rank_of);
    let neighbourhood = Neighbourhood::new(pet.dims(), params.connectivity.offsets());
    let lists = Lists::build(&labels, candidates, &neighbourhood);

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
            // The first and last entry: most lists span one or two cache lines.
            let list = lists.get(position);
            touched |= list.first().copied().unwrap_or(0);
            touched |= list.last().copied().unwrap_or(0);
        }
        for &key in keys {
            let (suv, position) = unpack(key);
            let list = lists.get(position);
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;

    use super::*;
    use crate::regions::Connectivity;

    /// Checks every list of the candidates `is_candidate` picks from a volume of `dims`,
    /// ranked at random, against a direct reading of the neighbourhoods.
    fn check_lists(dims: [usize; 3], is_candidate: impl Fn(usize) -> bool) {
        let [nx, ny, nz] = dims;
        let voxels = nx * ny * nz;
        let candidates: Vec<u64> = (0..voxels as u64)
            .filter(|&i| is_candidate(i as usize))
            .collect();
        let mut ranks: Vec<u32> = (1..=candidates.len() as u32).collect();
        ranks.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(14));
        let mut labels = vec![0u32; voxels];
        for (&index, &rank) in candidates.iter().zip(&ranks) {
            labels[index as usize] = rank;
        }
        for connectivity in Connectivity::all() {
            let steps = connectivity.offsets();
            let lists = Lists::build(
                &labels,
                &candidates,
                &Neighbourhood::new(dims, steps.clone()),
            );
            assert_eq!(lists.ends.len(), candidates.len());
            if candidates.is_empty() {
                assert!(lists.entries.is_empty(), "{connectivity:?}");
            }
            for (position, &index) in candidates.iter().enumerate() {
                let index = index as usize;
                let [x, y, z] = [index % nx, index / nx % ny, index / (nx * ny)];
                let expected: Vec<u32> = steps
                    .iter()
                    .filter_map(|&[dx, dy, dz]| {
                        let (xn, yn, zn) = (
                            x.checked_add_signed(dx)?,
                            y.checked_add_signed(dy)?,
                            z.checked_add_signed(dz)?,
                        );
                        (xn < nx && yn < ny && zn < nz).then(|| labels[xn + nx * (yn + ny * zn)])
                    })
                    .filter(|&label| label != 0 && label < labels[index])
                    .map(|label| label - 1)
                    .collect();
                assert_eq!(
                    lists.get(position),
                    expected,
                    "{connectivity:?} voxel {index}"
                );
            }
        }
    }

    #[test]
    fn every_list_holds_the_neighbours_of_lower_rank() {
        // 84,000 voxels, every seventh no candidate: five runs of lists, the last one partial.
        check_lists([70, 60, 20], |i| i % 7 != 3);
        // Every voxel a candidate: exactly two full runs.
        check_lists([32, 32, 32], |_| true);
        // No candidate: no lists.
        check_lists([8, 8, 8], |_| false);
    }

    #[test]
    fn lists_fit_while_their_offsets_fit_u32() {
        // 26 entries per candidate and room for one write per run of 2^14.
        assert!(fits(0));
        // 10,081 runs of 2^14 candidates, each slot 2^14 · 26 + 26 entries.
        assert!(fits(165_167_104));
        assert!(!fits(165_167_105));
        assert!(!fits(usize::MAX));
    }
}
