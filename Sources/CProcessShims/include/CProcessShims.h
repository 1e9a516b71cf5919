// What Swift's Glibc module leaves out: <malloc.h> and <sys/prctl.h>.
#ifndef C_PROCESS_SHIMS_H
#define C_PROCESS_SHIMS_H

#include <stddef.h>

#ifdef __linux__
#include <malloc.h>
#include <sys/prctl.h>

/// Bytes the allocator holds free in its arenas: memory the process has but does not use.
static inline size_t ep_malloc_free_bytes(void) {
    struct mallinfo2 info = mallinfo2();
    return info.fordblks;
}

/// Returns free pages of every arena to the system; 1 if memory was released.
static inline int ep_malloc_trim(void) {
    return malloc_trim(0);
}

/// No core dump, ptrace attach or /proc/PID/mem read by the user's other processes.
static inline int ep_set_not_dumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
#else
static inline size_t ep_malloc_free_bytes(void) { return 0; }
static inline int ep_malloc_trim(void) { return 0; }
static inline int ep_set_not_dumpable(void) { return 0; }
#endif

#endif
