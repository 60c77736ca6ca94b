//! A `u32` buffer reserved uninitialised and cut into slots, each written as a prefix from its
//! start; reads see only what was written. The compact sweep's lists live here (see
//! `compact::Lists`): zeroing their reservation first would be a pass over memory as large as
//! all the lists may need and would map every page of it.
//!
//! Invariant: entries `[k·slot, k·slot + written[k])` of slot `k` are initialised. Writes keep
//! the written part a prefix (a write starts inside it or right after it) and reads are checked
//! against it, so the one `unsafe` below relies on nothing outside this module.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

pub(super) struct Slots {
    entries: Box<[MaybeUninit<u32>]>,
    slot: usize,
    /// Initialised entries from the start of each slot.
    written: Vec<usize>,
}

/// Write access to one slot.
pub(super) struct SlotWriter<'a> {
    entries: &'a mut [MaybeUninit<u32>],
    written: &'a mut usize,
}

impl Slots {
    /// `len` entries in slots of `slot` (the last one may be shorter), none written.
    pub(super) fn new(len: usize, slot: usize) -> Self {
        let slot = slot.max(1);
        Self {
            entries: Box::new_uninit_slice(len),
            slot,
            written: vec![0; len.div_ceil(slot)],
        }
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The slots in order, for writing in parallel.
    pub(super) fn par_slots_mut(&mut self) -> impl IndexedParallelIterator<Item = SlotWriter<'_>> {
        self.entries
            .par_chunks_mut(self.slot)
            .zip(self.written.par_iter_mut())
            .map(|(entries, written)| SlotWriter { entries, written })
    }

    /// Entries `range` (absolute), which must lie in the written part of one slot.
    #[inline]
    #[allow(unsafe_code)]
    pub(super) fn get(&self, range: Range<usize>) -> &[u32] {
        if range.is_empty() {
            return &[];
        }
        let k = range.start / self.slot;
        assert!(
            range.end <= k * self.slot + self.written[k],
            "entries {range:?} lie beyond what slot {k} holds"
        );
        let list = &self.entries[range];
        // SAFETY: the range lies in the initialised prefix of slot k (checked above; the
        // invariant of this module), and `MaybeUninit<u32>` has the layout of `u32`.
        unsafe { &*(list as *const [MaybeUninit<u32>] as *const [u32]) }
    }
}

impl SlotWriter<'_> {
    /// Writes `values` at `at` in this slot; `at` lies in the written part or right after it.
    #[inline]
    pub(super) fn write<const N: usize>(&mut self, at: usize, values: &[u32; N]) {
        assert!(at <= *self.written, "a write at {at} would leave a gap");
        for (entry, &value) in self.entries[at..at + N].iter_mut().zip(values) {
            entry.write(value);
        }
        *self.written = (*self.written).max(at + N);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_what_each_slot_was_written() {
        let mut slots = Slots::new(10, 4);
        slots.par_slots_mut().enumerate().for_each(|(k, mut w)| {
            if k != 1 {
                w.write(0, &[10 * k as u32, 10 * k as u32 + 1]);
                w.write(1, &[7]);
            }
        });
        assert_eq!(slots.get(0..2), [0, 7]);
        assert_eq!(slots.get(8..10), [20, 7]);
        assert_eq!(slots.get(5..5), [] as [u32; 0]);
    }

    #[test]
    #[should_panic(expected = "beyond what slot 1 holds")]
    fn a_read_past_the_written_part_is_refused() {
        let mut slots = Slots::new(8, 4);
        slots.par_slots_mut().for_each(|mut w| w.write(0, &[1]));
        slots.get(4..6);
    }

    #[test]
    #[should_panic(expected = "would leave a gap")]
    fn a_write_after_a_gap_is_refused() {
        let mut slots = Slots::new(8, 4);
        slots.par_slots_mut().for_each(|mut w| w.write(2, &[1]));
    }
}
