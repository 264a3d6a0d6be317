//! A hint to the processor's cache, for keyed state read in an order the
//! hardware cannot guess: the slot of the reading after next.

/// Asks the processor to bring the cache line at `at` into its cache, so a
/// read of it a little later does not wait for memory. A hint only: it
/// changes no value and never faults, whatever the address (a dangling or
/// null pointer is fine). A no-op off x86-64.
///
/// ```
/// use weir_operators::record::cache::prefetch;
///
/// let states = vec![1_u64, 2, 3];
/// prefetch(&states[2]);
/// prefetch(std::ptr::null::<u64>());
/// assert_eq!(states[2], 3);
/// ```
#[inline(always)]
pub fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and cannot fault,
    // whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
