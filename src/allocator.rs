//! The settings viewkeeper gives its allocator, mimalloc (the global
//! allocator of the binary and of the engine benchmark).

/// How long mimalloc keeps memory that was freed before it gives it back
/// to the operating system. With its default, one second, the memory of
/// one batch (decoded rows, the redo record, outbox entries) was given back
/// and then faulted in again, zeroed by the kernel, for the next: the
/// engine benchmark took 170,000-230,000 page faults while streaming, and
/// 10,000-30,000 with ten seconds, at 3-8% more changes a second and about
/// 30 MiB more at its peak. Ten seconds (jemalloc's default decay too)
/// keeps the memory while changes stream and returns it soon after a burst.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// mimalloc's `mi_option_purge_delay` (its v3 header's option 15); the
/// Rust bindings name only some of the options. The test below checks the
/// number still names the purge delay, by its default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The environment variable that sets the purge delay; when an operator
/// sets it, it wins.
const PURGE_DELAY_VARIABLE: &str = "MIMALLOC_PURGE_DELAY";

/// Applies viewkeeper's allocator settings. Call it first thing in `main`.
pub fn configure() {
    if std::env::var_os(PURGE_DELAY_VARIABLE).is_some() {
        return;
    }
    // SAFETY: `mi_option_set` writes one number of mimalloc's option table,
    // which mimalloc reads when it next decides whether to purge; it may be
    // called at any time, from any thread.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Option 15 is the purge delay: its default is mimalloc's documented
    /// one second (no other option defaults to 1000), and `configure`
    /// sets it.
    #[test]
    fn configure_sets_the_purge_delay() {
        if std::env::var_os(PURGE_DELAY_VARIABLE).is_some() {
            return; // the operator's value wins, and is not the default
        }
        // SAFETY: reads one number of mimalloc's option table.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(get(), 1000, "mimalloc's default purge delay");
        configure();
        assert_eq!(get(), PURGE_DELAY_MS);
    }
}
