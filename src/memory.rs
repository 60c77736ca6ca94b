//! Bounded memory: fallible allocation of the large buffers and the study's memory budget.
//!
//! The library runs inside a host's process (a scanner console, a PACS node), where an abort on
//! a failed allocation takes the host down. So every buffer whose size follows from an input's
//! declared geometry is allocated with `try_reserve`, and [`Analyzer::analyze`] estimates a
//! study's working set from the geometries alone and refuses a study over its budget before it
//! allocates anything (docs/design.md, S10).
//!
//! [`Analyzer::analyze`]: crate::analyzer::Analyzer::analyze

use thiserror::Error;

/// Why memory was refused.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MemoryError {
    #[error("cannot allocate {} for {what}: out of memory", mib(*bytes))]
    Allocation { what: &'static str, bytes: u64 },
    #[error(
        "the study needs about {} of working memory ({breakdown}), more than the memory budget of \
         {}; check the PET and CT geometry, or raise the budget (AnalyzeOptions::memory_budget, \
         UptakeAnalyzeOptions.memory_budget_mb, --memory-budget-mb)",
        mib(*needed),
        mib(*budget)
    )]
    OverBudget {
        needed: u64,
        budget: u64,
        breakdown: String,
    },
}

/// A byte count as MiB with one decimal, for messages.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// `vec![value; len]`, or an error naming `what` when the memory cannot be had.
pub fn try_vec<T: Clone>(len: usize, value: T, what: &'static str) -> Result<Vec<T>, MemoryError> {
    let mut v = Vec::new();
    let bytes = (len as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    v.try_reserve_exact(len)
        .map_err(|_| MemoryError::Allocation { what, bytes })?;
    v.resize(len, value);
    Ok(v)
}

/// A copy of `data`, or an error naming `what` when the memory cannot be had.
pub fn try_copy<T: Clone>(data: &[T], what: &'static str) -> Result<Vec<T>, MemoryError> {
    let mut v = Vec::new();
    let bytes = std::mem::size_of_val(data) as u64;
    v.try_reserve_exact(data.len())
        .map_err(|_| MemoryError::Allocation { what, bytes })?;
    v.extend_from_slice(data);
    Ok(v)
}

/// The largest default budget: a whole-body study at 2 mm PET voxels with a 512² × 800 CT needs
/// well under 1 GiB beyond its inputs, so 4 GiB leaves room for any real study.
const DEFAULT_BUDGET_CAP: u64 = 4 << 30;

/// The memory budget of a study when the host sets none: 4 GiB, or half the machine's physical
/// memory where that is smaller (read from /proc/meminfo on Linux).
pub fn default_budget() -> u64 {
    physical_memory().map_or(DEFAULT_BUDGET_CAP, |total| {
        (total / 2).min(DEFAULT_BUDGET_CAP)
    })
}

/// MemTotal of /proc/meminfo in bytes, where the system has it.
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_allocation_is_an_error_not_an_abort() {
        let err = try_vec(usize::MAX / 4, 0u32, "the test buffer").unwrap_err();
        assert!(
            matches!(
                err,
                MemoryError::Allocation {
                    what: "the test buffer",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("the test buffer"), "{err}");
        assert_eq!(try_vec(3, 7u8, "x").unwrap(), vec![7, 7, 7]);
        assert_eq!(try_copy(&[1, 2], "x").unwrap(), vec![1, 2]);
    }

    #[test]
    fn the_default_budget_is_at_most_4_gib_and_half_the_machine() {
        let budget = default_budget();
        assert!(budget <= DEFAULT_BUDGET_CAP);
        if let Some(total) = physical_memory() {
            assert!(budget <= total / 2);
        }
        assert!(budget >= 64 << 20, "{}", mib(budget));
    }
}
