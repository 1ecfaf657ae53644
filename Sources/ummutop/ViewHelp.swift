import UmmuTopUI

/// What the screen says about each view: when its table is empty, and
/// what its columns mean (the help screen).
extension TopViewKind {
    var emptyText: String {
        switch self {
        case .drivers: return "(no process has used the devices in this interval)"
        case .mmuNotifier: return "(no mm with an MMU notifier was invalidated in this interval)"
        case .subscribers: return "(no MMU-notifier subscriber was called in this interval)"
        case .userfaultfd: return "(no userfaultfd fault or ioctl in this interval)"
        }
    }

    var columnHelp: [String] {
        switch self {
        case .drivers: return [
            "Columns: INVAL/s ummunotify invalidations per second (UNMAP CLEAR PROTV PROTP OTHER by",
            "reason), REGS registrations held, FAULT/s umem faults per second, SVC service latency",
            "(fault -> page written by the server), STALL fault -> fault done, p50/p99; PEND pending.",
        ]
        case .mmuNotifier: return [
            "Columns: INVAL/s MMU-notifier invalidations of the process's mm per second (by reason),",
            "NOT-SELF/s those caused by another process or a kernel thread, CB50/CB99 how long the",
            "subscribers' invalidate_range_start callbacks held the caller, RELEASE mm releases,",
            "YOUNG/s page-aging calls, CAUSE the busiest cause ([kthread], comm:pid or self) and its share.",
        ]
        case .subscribers: return [
            "Columns: one row per process and subscriber of its mm: SUBSCRIBER the module (kvm,",
            "ummunotify, ...) or ops symbol, KIND notifier or interval notifier, INVAL/s invalidations",
            "it was called for (by reason), RELEASE, YOUNG/s, CAUSE the process's busiest cause.",
        ]
        case .userfaultfd: return [
            "Columns: FAULT/s userfaultfd faults per second (MISSING WP MINOR by kind), STALL50/99",
            "fault entered -> returned, WAITING faults not yet returned, OPS/s resolving ioctls",
            "(COPY ZERO CONT WPROT MOVE per second), PAGES/s pages they resolved, FAILED ioctls",
            "that resolved nothing.",
        ]
        }
    }
}
