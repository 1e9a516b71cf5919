import CProcessShims

#if canImport(Glibc)
import Glibc
#endif

/// Process-wide settings that protect the keys a process holds in memory and the server's descriptors.
public enum ProcessHardening {
    /// No core file, and no ptrace attach or /proc/PID/mem read by other processes of the same user: a
    /// core dump or a debugger would hold every key the process had opened.
    public static func forbidCoreDumps() {
        var none = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(Int32(RLIMIT_CORE.rawValue), &none)
        _ = ep_set_not_dumpable()
    }

    /// Raises the soft limit on open descriptors to the hard limit, so that `--max-connections` and not
    /// a distribution's small default (often 1,024) decides how many clients are served. Returns the
    /// soft limit in force afterwards.
    @discardableResult
    public static func raiseDescriptorLimit() -> Int {
        var limits = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limits) == 0 else { return 1024 }
        if limits.rlim_cur < limits.rlim_max {
            var raised = limits
            raised.rlim_cur = limits.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limits = raised }
        }
        return limits.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limits.rlim_cur)
    }
}
