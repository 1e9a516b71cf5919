import CProcessShims
import Logging
import ServiceLifecycle

/// Hands memory the allocator holds free back to the system: after a burst of large concurrent bodies,
/// glibc keeps what was freed in its arenas, and each burst adds more (bench/memory_rounds.py shows it);
/// `malloc_trim` returns it. A check every `interval` costs one `mallinfo2`;
/// the trim runs only when more than `threshold` bytes sit free.
struct MemoryTrimmer: Service {
    var interval: Duration = .seconds(1)
    var threshold = 16 * 1024 * 1024
    let logger: Logger

    func run() async throws {
        await Periodic.run(every: interval) {
            let free = ep_malloc_free_bytes()
            guard free > threshold else { return }
            let released = ep_malloc_trim() == 1
            logger.trace("returned free memory to the system", metadata: ["malloc.free_bytes": "\(free)", "released": "\(released)"])
        }
    }
}
