//! A hint to the processor that memory will be read soon: the cache line at an address is
//! fetched in the background while other work goes on. It never faults and changes no
//! result; off x86_64 it does nothing.
//!
//! Used where one thread reads what another made long before (the backtest's in-order stage
//! reading the findings and observations of the next record to release): each of those reads
//! would otherwise wait for memory in turn.

/// Fetches the cache line holding `p` (any address, valid or not) toward the nearest cache.
#[inline(always)]
pub fn read<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the intrinsic needs SSE, which every x86_64 processor has; a prefetch is a hint
    // that never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`read`] for the cache lines the `len` bytes from `start` lie on, at most `lines` of them.
#[inline(always)]
pub fn read_bytes(start: *const u8, len: usize, lines: usize) {
    // From the start of the first line (`start` need not be aligned).
    let skew = start as usize % 64;
    let first = start.wrapping_sub(skew);
    for off in (0..(skew + len).min(lines * 64)).step_by(64) {
        read(first.wrapping_add(off));
    }
}
