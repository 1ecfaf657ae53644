import CNcurses
import Glibc
import UmmuKit

/// The interactive screen: header, process table, latency/history panel,
/// footer; keys; the refresh loop.
final class TopView {
    let screen = Screen()
    let source: Source
    let signalFD: Int32
    var status: TopStatus
    var table: TopTable
    var history = TopHistory(capacity: 120)
    var lastInterval: Interval?
    var maxRefreshes: Int?
    var refreshes = 0

    var showHelp = false
    var filterEditing: String?
    var filterBefore = ""
    var scroll = 0
    var message = ""

    static let intervals: [Double] = [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60]

    init(source: Source, signalFD: Int32, status: TopStatus, table: TopTable, maxRefreshes: Int?) {
        self.source = source
        self.signalFD = signalFD
        self.status = status
        self.table = table
        self.maxRefreshes = maxRefreshes
    }

    /// Runs until q, a signal, the refresh count or the terminal going away.
    /// Returns the signal that ended it (0: none).
    func run() throws -> Int32 {
        try screen.start()
        defer { screen.stop() }
        var prev = source.snapshot()
        var deadline = monotonicNs() + intervalNs
        draw()
        while true {
            let now = monotonicNs()
            if now >= deadline {
                if !status.paused {
                    let cur = source.snapshot()
                    let iv = Interval(from: prev, to: cur)
                    prev = cur
                    apply(iv)
                    source.maintain()
                    refreshes += 1
                    draw()
                    if let m = maxRefreshes, refreshes >= m { return 0 }
                }
                deadline = max(deadline + intervalNs, monotonicNs() + intervalNs / 2)
                continue
            }
            let ms = Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
            var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, ms)
            if n < 0 && errno != EINTR { return 0 }
            if fds[1].revents & Int16(POLLIN) != 0 {
                let s = readSignal(signalFD)
                if s > 0 { return s }
            }
            if fds[0].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 && fds[0].revents & Int16(POLLIN) == 0 {
                return SIGHUP  // the terminal is gone
            }
            // Keys (and KEY_RESIZE after SIGWINCH, which interrupts poll).
            var changed = false
            while let k = screen.key() {
                switch handle(k) {
                case .quit: return 0
                case .redraw: changed = true
                case .resample:
                    prev = source.snapshot()
                    deadline = monotonicNs() + intervalNs
                    changed = true
                case .none: break
                }
            }
            if changed { draw() }
        }
    }

    var intervalNs: UInt64 { UInt64(status.intervalSeconds * 1e9) }

    func apply(_ iv: Interval) {
        lastInterval = iv
        table.update(iv)
        let stall = iv.umem?.stallLatency.percentile(0.99)
        history.append(invalidationsPerSec: iv.rate(iv.ummunotify?.totalInvalidations ?? 0),
                       faultsPerSec: iv.rate(iv.umem?.faults ?? 0), stallP99: stall, rows: table.allRows)
    }

    // MARK: keys

    enum Action { case none, redraw, quit, resample }

    func handle(_ k: Int32) -> Action {
        if k == ummu_key_resize() { return .redraw }
        if filterEditing != nil { return editFilter(k) }
        if showHelp {
            showHelp = false
            return k == Int32(UInt8(ascii: "q")) ? .quit : .redraw
        }
        switch k {
        case ummu_key_up(): table.moveSelection(-1); return .redraw
        case ummu_key_down(): table.moveSelection(1); return .redraw
        case ummu_key_ppage(): table.moveSelection(-max(1, tableHeight - 1)); return .redraw
        case ummu_key_npage(): table.moveSelection(max(1, tableHeight - 1)); return .redraw
        case ummu_key_home(): table.selectedPID = nil; scroll = 0; return .redraw
        case ummu_key_f(10): return .quit
        default: break
        }
        guard k >= 0 && k < 128, let u = Unicode.Scalar(UInt32(k)) else { return .none }
        let c = Character(u)
        switch c {
        case "q", "Q": return .quit
        case "p", " ":
            status.paused.toggle()
            return status.paused ? .redraw : .resample
        case "+", "=":
            status.intervalSeconds = TopView.intervals.first { $0 > status.intervalSeconds + 1e-9 } ?? status.intervalSeconds
            return .resample
        case "-", "_":
            status.intervalSeconds = TopView.intervals.last { $0 < status.intervalSeconds - 1e-9 } ?? status.intervalSeconds
            return .resample
        case "/", "f", "F":
            filterBefore = table.filter.text
            filterEditing = table.filter.text
            return .redraw
        case "h", "?":
            showHelp = true
            return .redraw
        case "\u{1b}", "a":
            if c == "\u{1b}" && !table.filter.isEmpty && table.selectedPID == nil {
                table.setFilter("")
            }
            table.selectedPID = nil
            return .redraw
        case "j": table.moveSelection(1); return .redraw
        case "k": table.moveSelection(-1); return .redraw
        case "<", ",": table.sort(by: table.sortKey.cycled(by: -1)); return .redraw
        case ">", ".": table.sort(by: table.sortKey.cycled(by: 1)); return .redraw
        case "R": table.reversed.toggle(); table.refresh(); return .redraw
        default:
            if let key = TopSortKey.forKey(c) {
                table.sort(by: key)
                return .redraw
            }
            return .none
        }
    }

    func editFilter(_ k: Int32) -> Action {
        guard var text = filterEditing else { return .none }
        switch k {
        case 27:  // Esc: back to the filter before editing
            filterEditing = nil
            table.setFilter(filterBefore)
            return .redraw
        case 10, 13, ummu_key_enter():
            filterEditing = nil
            return .redraw
        case 8, 127, ummu_key_backspace():
            if !text.isEmpty { text.removeLast() }
        case 21:  // Ctrl-U
            text = ""
        default:
            guard k >= 32 && k < 127, let u = Unicode.Scalar(UInt32(k)) else { return .none }
            if text.count < 64 { text.append(Character(u)) }
        }
        filterEditing = text
        table.setFilter(text)  // incremental, as htop does
        scroll = 0
        return .redraw
    }

    // MARK: drawing

    var panelHeight: Int {
        let rows = screen.rows
        if rows < 22 { return 0 }
        return min(14, max(7, rows / 3))
    }

    var tableHeight: Int { max(1, screen.rows - 5 - 1 - panelHeight - 1) }

    func draw() {
        screen.clear()
        let w = screen.cols
        status.filterText = filterEditing ?? table.filter.text
        status.sortKey = table.sortKey
        status.reversed = table.reversed
        var y = 0
        if let iv = lastInterval {
            for (i, line) in TopRender.header(iv, status: status, processCount: table.allRows.count).enumerated() {
                screen.draw(y, 0, line, i == 0 ? .title : .normal)
                y += 1
            }
        } else {
            screen.draw(0, 0, "ummutop - collecting the first \(Fmt.compact(status.intervalSeconds))s interval... (h for help, q to quit)", .title)
            y = 4
        }
        y += 1
        if showHelp {
            drawHelp(from: y)
        } else {
            let cols = TopColumn.fitting(w)
            screen.draw(y, 0, TopColumn.headerLine(cols, sortedBy: table.sortKey), .tableHeader, fill: true)
            y += 1
            let h = tableHeight
            if let sel = table.selectedIndex {
                if sel < scroll { scroll = sel }
                if sel >= scroll + h { scroll = sel - h + 1 }
            }
            scroll = max(0, min(scroll, max(0, table.rows.count - h)))
            let visible = table.rows.dropFirst(scroll).prefix(h)
            for r in visible {
                screen.draw(y, 0, TopColumn.line(cols, r), r.pid == table.selectedPID ? .selected : .normal,
                            fill: r.pid == table.selectedPID)
                y += 1
            }
            if table.rows.isEmpty {
                screen.draw(y, 0, table.filter.isEmpty ? "  (no process has used the devices in this interval)"
                                                       : "  (no process matches the filter)", .dim)
            }
            if panelHeight > 0 { drawPanel(top: screen.rows - 1 - panelHeight, width: w) }
        }
        drawFooter(w)
        screen.flush()
    }

    func drawPanel(top: Int, width: Int) {
        let pid = table.selectedPID
        let row = pid.flatMap { p in lastInterval?.processes.first { $0.pid == p } }
        let who = pid.map { p in "pid \(p) \(row?.comm ?? "")" } ?? "all processes"
        let title = screen.unicode ? "── " + who + " ── latency, last interval (↑/↓ select, a all) "
                                   : "-- " + who + " -- latency, last interval (up/down select, a all) "
        screen.draw(top, 0, title, .title)
        let stall = (pid == nil ? lastInterval?.umem?.stallLatency : row?.umem?.stallLatency) ?? Histogram()
        let service = (pid == nil ? lastInterval?.umem?.serviceLatency : row?.umem?.serviceLatency) ?? Histogram()
        let histH = panelHeight - 1 - HistoryMetric.allCases.count
        let half = max(20, (width - 2) / 2)
        let left = TopRender.histogram(stall, title: "stall (fault -> done)", width: half, height: histH, unicode: screen.unicode)
        let right = TopRender.histogram(service, title: "service (fault -> page written)", width: width - half - 2,
                                        height: histH, unicode: screen.unicode)
        for (i, l) in left.enumerated() where i < histH { screen.draw(top + 1 + i, 0, l) }
        if width >= 60 {
            for (i, l) in right.enumerated() where i < histH { screen.draw(top + 1 + i, half + 2, l) }
        }
        let spark = TopRender.sparklines(history, pid: pid, width: width, unicode: screen.unicode)
        for (i, l) in spark.enumerated() { screen.draw(top + 1 + histH + i, 0, l) }
    }

    func drawFooter(_ w: Int) {
        let y = screen.rows - 1
        if let text = filterEditing {
            screen.draw(y, 0, "filter (pid or command; Enter keep, Esc cancel): " + text + "_", .footer, fill: true)
            return
        }
        let sorts = TopSortKey.allCases.map { "\($0.key) \($0.label)" }.joined(separator: "  ")
        let line = "q quit  p pause  +/- interval  / filter  h help  sort: " + sorts + "  < > R"
        screen.draw(y, 0, line, .footer, fill: true)
    }

    func drawHelp(from top: Int) {
        var lines = [
            "ummutop: live view of ummunotify invalidations and umem fault service",
            "",
            "  q, F10      quit (the terminal is restored; Ctrl-C too)",
            "  p, space    pause / resume",
            "  + / -       refresh interval longer / shorter (now \(Fmt.compact(status.intervalSeconds))s)",
            "  / or f      filter by pid or command (comma-separated terms; Enter keeps, Esc cancels)",
            "  up/down j/k select a process: the panel shows its latency histograms and history",
            "  a, Home     select all processes again (Esc also clears the filter)",
            "  < >         previous / next sort column;  R reverses the order",
        ]
        for k in TopSortKey.allCases { lines.append("  \(k.key)           sort by \(k.label)") }
        lines += [
            "",
            "Columns: INVAL/s invalidations per second (UNMAP CLEAR PROTV PROTP OTHER by reason),",
            "REGS registrations held, FAULT/s umem faults per second, SVC service latency (fault ->",
            "page written by the server), STALL fault -> fault done, p50/p99; PEND pending requests.",
            "bpf: ummutop's own BPF programs: ns per event and % of one CPU (kernel run statistics).",
            "",
            "Press any key to return.",
        ]
        for (i, l) in lines.enumerated() where top + i < screen.rows - 1 { screen.draw(top + i, 0, l) }
    }
}

/// The signal number from a signalfd (0 when none could be read).
func readSignal(_ fd: Int32) -> Int32 {
    var buf = [UInt8](repeating: 0, count: 128)  // struct signalfd_siginfo
    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 128) }
    guard n >= 4 else { return 0 }
    return buf.withUnsafeBytes { Int32(bitPattern: $0.load(as: UInt32.self)) }
}
