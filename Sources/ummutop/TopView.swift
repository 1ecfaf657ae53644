import CNcurses
import Glibc
import UmmuKit
import UmmuTopUI

/// The interactive screen: header, the shown view's table, latency/history
/// panel, footer; keys; the refresh loop.
final class TopView {
    let screen = Screen()
    let source: Source
    let signalFD: Int32
    var status: TopStatus
    var tables: TopViewTables
    var history = TopHistory(capacity: 120)
    var lastInterval: Interval?
    var maxRefreshes: Int?
    var refreshes = 0

    var showHelp = false
    var filterEditing: String?
    var filterBefore = ""
    var scroll = 0
    /// Lines above the table (the header's, then a blank one).
    var headerHeight = 5

    static let intervals: [Double] = [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60]
    /// Shift-Tab: KEY_BTAB of curses.h (0541), which the shim does not name.
    static let keyBackTab: Int32 = 0o541

    init(source: Source, signalFD: Int32, status: TopStatus, tables: TopViewTables, maxRefreshes: Int?) {
        self.source = source
        self.signalFD = signalFD
        self.status = status
        self.tables = tables
        self.maxRefreshes = maxRefreshes
    }

    /// Runs until q, a signal, the refresh count or the terminal going away.
    /// Returns the signal that ended it (0: none).
    func run() throws -> Int32 {
        try screen.start()
        defer { screen.stop() }
        var prev = try source.snapshot()
        var deadline = monotonicNs() + intervalNs
        draw()
        while true {
            let now = monotonicNs()
            if now >= deadline {
                if !status.paused {
                    let cur = try source.snapshot()
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
                    prev = try source.snapshot()
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
        tables.update(iv)
        history.append(iv)
    }

    /// Shows another view (its own sort and selection; the filter stays).
    func show(_ view: TopViewKind) {
        tables.show(view)
        scroll = 0
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
        case ummu_key_up(): tables.withCurrent { $0.moveSelection(-1) }; return .redraw
        case ummu_key_down(): tables.withCurrent { $0.moveSelection(1) }; return .redraw
        case ummu_key_ppage(): tables.withCurrent { $0.moveSelection(-max(1, tableHeight - 1)) }; return .redraw
        case ummu_key_npage(): tables.withCurrent { $0.moveSelection(max(1, tableHeight - 1)) }; return .redraw
        case ummu_key_home(): tables.withCurrent { $0.clearSelection() }; scroll = 0; return .redraw
        case ummu_key_f(10): return .quit
        case TopView.keyBackTab: show(tables.view.cycled(by: -1)); return .redraw
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
            filterBefore = tables.current.filter.text
            filterEditing = filterBefore
            return .redraw
        case "h", "?":
            showHelp = true
            return .redraw
        case "\u{1b}", "a":
            if c == "\u{1b}" && !tables.current.filter.isEmpty && tables.current.selectedIndex == nil {
                tables.setFilter("")
            }
            tables.withCurrent { $0.clearSelection() }
            return .redraw
        case "j": tables.withCurrent { $0.moveSelection(1) }; return .redraw
        case "k": tables.withCurrent { $0.moveSelection(-1) }; return .redraw
        case "<", ",": tables.withCurrent { $0.cycleSort(-1) }; return .redraw
        case ">", ".": tables.withCurrent { $0.cycleSort(1) }; return .redraw
        case "R": tables.withCurrent { $0.reverse() }; return .redraw
        case "\t": show(tables.view.cycled(by: 1)); return .redraw
        default:
            if let view = TopViewKind.forKey(c) {
                show(view)
                return .redraw
            }
            if let key = tables.view.sortKey(forKey: c) {
                tables.withCurrent { $0.sort(by: key) }
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
            tables.setFilter(filterBefore)
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
        tables.setFilter(text)  // incremental, as htop does
        scroll = 0
        return .redraw
    }

    // MARK: drawing

    var panelHeight: Int {
        let rows = screen.rows
        if rows < 22 { return 0 }
        return min(14, max(7, rows / 3))
    }

    var tableHeight: Int { max(1, screen.rows - headerHeight - 1 - panelHeight - 1) }

    func draw() {
        screen.clear()
        let w = screen.cols
        let table = tables.current
        status.filterText = filterEditing ?? table.filter.text
        status.view = table.view
        status.sortKey = table.sortKey
        status.reversed = table.reversed
        // The help covers the header's source lines when it needs the room.
        let help = showHelp ? helpLines : []
        let headerRoom = showHelp ? max(1, screen.rows - 2 - help.count) : Int.max
        var y = 0
        if let iv = lastInterval {
            for (i, line) in TopRender.header(iv, status: status, processCount: table.processCount).enumerated()
                where i < headerRoom {
                screen.draw(y, 0, line, i == 0 ? .title : .normal)
                y += 1
            }
        } else {
            screen.draw(0, 0, "ummutop - collecting the first \(Fmt.compact(status.intervalSeconds))s interval... (h for help, q to quit)", .title)
            y = headerHeight - 1
        }
        y += 1
        if showHelp {
            let top = min(y, headerRoom)
            for (i, l) in help.enumerated() where top + i < screen.rows - 1 { screen.draw(top + i, 0, l) }
        } else {
            headerHeight = y
            screen.draw(y, 0, table.headerLine(width: w), .tableHeader, fill: true)
            y += 1
            let h = tableHeight
            let selected = table.selectedIndex
            if let sel = selected {
                if sel < scroll { scroll = sel }
                if sel >= scroll + h { scroll = sel - h + 1 }
            }
            scroll = max(0, min(scroll, max(0, table.rowCount - h)))
            for (i, line) in table.lines(width: w, from: scroll, count: h).enumerated() {
                let isSelected = scroll + i == selected
                screen.draw(y, 0, line, isSelected ? .selected : .normal, fill: isSelected)
                y += 1
            }
            if table.rowCount == 0 {
                screen.draw(y, 0, "  " + emptyText(table), .dim)
            }
            if panelHeight > 0 { drawPanel(top: screen.rows - 1 - panelHeight, width: w) }
        }
        drawFooter(w)
        screen.flush()
    }

    func emptyText(_ table: any TopTableModel) -> String {
        if !table.filter.isEmpty { return "(no process matches the filter)" }
        if !table.view.isTraced(status.sources) {
            return "(" + table.view.sources.map(\.rawValue).joined(separator: " and ") + " not traced: see the header, or "
                + TopViewKind.allCases.filter { $0.isTraced(status.sources) }.map { String($0.key) }.joined(separator: "/")
                + " for the traced views)"
        }
        return table.view.emptyText
    }

    func drawPanel(top: Int, width: Int) {
        let pid = tables.current.selectedPID
        let view = tables.view
        let row = pid.flatMap { p in lastInterval?.processes.first { $0.pid == p } }
        let who = pid.map { p in "pid \(p) \(Fmt.printable(row?.comm ?? ""))" } ?? "all processes"
        let title = screen.unicode ? "── " + who + " ── latency, last interval (↑/↓ select, a all) "
                                   : "-- " + who + " -- latency, last interval (up/down select, a all) "
        screen.draw(top, 0, title, .title)
        let hists = lastInterval.map { TopRender.panelHistograms($0, view: view, pid: pid) } ?? []
        let metrics = HistoryMetric.shown(in: view)
        let histH = panelHeight - 1 - metrics.count
        let half = hists.count > 1 ? max(20, (width - 2) / 2) : width
        for (n, h) in hists.prefix(2).enumerated() {
            let x = n == 0 ? 0 : half + 2
            if n > 0 && width < 60 { break }
            let lines = TopRender.histogram(h.histogram, title: h.title, width: n == 0 ? half : width - half - 2,
                                            height: histH, unicode: screen.unicode)
            for (i, l) in lines.enumerated() where i < histH { screen.draw(top + 1 + i, x, l) }
        }
        let spark = TopRender.sparklines(history, pid: pid, width: width, unicode: screen.unicode, view: view)
        for (i, l) in spark.enumerated() { screen.draw(top + 1 + histH + i, 0, l) }
    }

    func drawFooter(_ w: Int) {
        let y = screen.rows - 1
        if let text = filterEditing {
            screen.draw(y, 0, "filter (pid or command; Enter keep, Esc cancel): " + text + "_", .footer, fill: true)
            return
        }
        let sorts = tables.view.sortKeys.map { "\($0.key) \($0.label)" }.joined(separator: "  ")
        let line = "q quit  p pause  +/- interval  / filter  h help  1-4 view  sort: " + sorts + "  < > R"
        screen.draw(y, 0, line, .footer, fill: true)
    }

    var helpLines: [String] {
        let view = tables.view
        var lines = [
            "ummutop: live view of MMU-notifier invalidations, userfaultfd and the ummunotify/umem drivers",
            "",
            "  q, F10      quit (the terminal is restored; Ctrl-C too)",
            "  p, space    pause / resume",
            "  + / -       refresh interval longer / shorter (now \(Fmt.compact(status.intervalSeconds))s)",
            "  / or f      filter by pid or command (comma-separated terms; Enter keeps, Esc cancels)",
            "  up/down j/k select a row: the panel shows its process's latency histograms and history",
            "  a, Home     select all processes again (Esc also clears the filter)",
            "  " + TopViewKind.allCases.map { "\($0.key) \($0.rawValue)" }.joined(separator: "  ")
                + "   views (Tab / Shift-Tab: next / previous)",
            "  < >         previous / next sort column;  R reverses the order",
            "Sort keys of the \(view.rawValue) view (the same key again reverses):",
        ]
        for k in view.sortKeys { lines.append("  \(k.key)           sort by \(k.label)") }
        lines += [""] + view.columnHelp + [
            "bpf: ummutop's own BPF programs: ns per event and % of one CPU (kernel run statistics).",
            "",
            "Press any key to return.",
        ]
        return lines
    }
}

/// The signal number from a signalfd (0 when none could be read).
func readSignal(_ fd: Int32) -> Int32 {
    var buf = [UInt8](repeating: 0, count: 128)  // struct signalfd_siginfo
    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 128) }
    guard n >= 4 else { return 0 }
    return buf.withUnsafeBytes { Int32(bitPattern: $0.load(as: UInt32.self)) }
}
