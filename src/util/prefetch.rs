//! A hint to the processor that memory will be read soon: the cache line at an address is
//! fetched in the background while other work goes on. It never faults and changes no
//! result; where the target has no such instruction it does nothing.
//!
//! Used where one thread reads what another made long before (the backtest's in-order stage
//! reading the findings and observations of the next record to release): each of those reads
//! would otherwise wait for memory in turn.

/// Fetches the cache line holding `p` (any address, valid or not) toward the nearest cache.
#[inline(always)]
pub fn read<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it does not access memory in the program's sense and
    // never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`read`] for the cache lines of the `len` bytes from `start`, at most `lines` of them.
#[inline(always)]
pub fn read_bytes(start: *const u8, len: usize, lines: usize) {
    for off in (0..len.min(lines * 64)).step_by(64) {
        read(start.wrapping_add(off));
    }
}
