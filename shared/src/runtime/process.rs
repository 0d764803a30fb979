//! Process-wide tunables, set first thing in `main` before any thread exists.

/// Keeps the process to one malloc arena. glibc gives each thread that allocates concurrently an arena of its
/// own and keeps what is freed in each; for a server whose answers are large and short-lived (`/status` at
/// 1,000 containers is ~450 KB) that retained memory, not the data, dominates: measured at 1,000 containers,
/// 25.7 MiB resident with the default arenas, 18.7 MiB with one, at the same throughput. Call it first in
/// `main`, before any thread exists.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; called before any other thread runs, it races nothing.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Hands the allocator's free memory back to the system. glibc returns freed memory only from the top of
/// the heap, and only past a threshold that it raises itself after large allocations: what a burst of
/// short-lived allocations leaves free in the middle of the heap stays resident. status-api calls this after
/// each full re-list (a thousand inspect answers parsed and dropped): measured at 1,000 containers, 17.3 MiB
/// resident at `/ready` and 13.2 MiB after it. It walks the free chunks under the allocator's lock, a
/// millisecond or so: fine once a re-list, not on a request path.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it is thread-safe (it takes the arena lock).
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The nice value [`lower_thread_priority`] sets: a tenth of a normal thread's share of a busy CPU.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to nice [`BACKGROUND_NICE`], for threads that do work a
/// client can ask for in bulk (status-api's filter workers): when the CPUs are busy, the threads that answer
/// `/health` and the controller's long poll — and every other process at the normal priority — run first.
/// On Linux the nice value belongs to the thread, not the process. It cannot be raised again without
/// privileges: call it only on a thread that keeps doing such work. Answers whether it took effect.
pub fn lower_thread_priority() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only changes the scheduling priority of the calling thread (PRIO_PROCESS with
        // who 0 is the caller on Linux); it touches no memory.
        #[allow(unsafe_code)]
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}
