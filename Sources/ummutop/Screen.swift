import CNcurses
import Glibc

/// The terminal, through ncursesw. One instance between `start()` and
/// `stop()`; `stop()` is also run from atexit, so any exit() restores the
/// terminal. SIGINT/SIGTERM/SIGHUP arrive on the caller's signalfd and end
/// the loop normally; SIGWINCH is ncurses' own (getch returns KEY_RESIZE).
/// SIGQUIT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP and SIGABRT (a crash,
/// a Swift trap, Ctrl-\) restore the terminal from a signal handler
/// (CNcurses' ummu_restore_*) and then take their usual course: the process
/// dies by the signal, with its exit status and core dump, SIGQUIT too.
final class Screen {
    enum Style { case normal, title, tableHeader, selected, dim, footer }

    private(set) var active = false
    nonisolated(unsafe) static var atexitRegistered = false
    private(set) var unicode = false
    private var colors = false

    var rows: Int { Int(ummu_lines()) }
    var cols: Int { Int(ummu_cols()) }

    /// Fails with a one-line reason when the terminal cannot be set up
    /// (no terminfo entry for $TERM, for example).
    func start() throws {
        setlocale(LC_ALL, "")
        addBundledTerminfo()
        unicode = ummu_utf8_locale() != 0
        // The tty's modes before curses changes them, for the crash handler.
        ummu_restore_save(fileno(ummu_stdout()))
        // newterm (unlike initscr) returns NULL instead of exiting.
        guard let term = newterm(nil, ummu_stdout(), ummu_stdin()) else {
            let t = getenv("TERM").map { String(cString: $0) } ?? "unset"
            throw ScreenError("cannot use terminal type '\(t)': no terminfo entry"
                + " (set TERMINFO to a terminfo directory, or use -b for batch mode)")
        }
        _ = set_term(term)
        active = true
        // From here a crash signal restores the terminal (terminfo is loaded).
        ummu_restore_install()
        if !Screen.atexitRegistered {
            Screen.atexitRegistered = true
            // Any exit() after this point restores the terminal too.
            atexit { if !isendwin() { endwin() } }
        }
        cbreak()
        noecho()
        nonl()
        _ = keypad(ummu_stdscr(), true)
        _ = nodelay(ummu_stdscr(), true)
        _ = curs_set(0)
        set_escdelay(25)
        if has_colors() {
            colors = true
            start_color()
            use_default_colors()
            init_pair(1, Int16(COLOR_CYAN), -1)
            init_pair(2, Int16(COLOR_BLACK), Int16(COLOR_GREEN))
            init_pair(3, Int16(COLOR_BLACK), Int16(COLOR_CYAN))
            init_pair(4, Int16(COLOR_BLACK), Int16(COLOR_WHITE))
        }
    }

    /// A static binary in a bare system (the busybox guest) has no terminfo
    /// database: when neither TERMINFO nor TERMINFO_DIRS is set, also look
    /// in a `terminfo` directory beside the executable or its parent
    /// (scripts/demo copies the host's entries there), after the usual ones.
    private func addBundledTerminfo() {
        guard getenv("TERMINFO") == nil, getenv("TERMINFO_DIRS") == nil else { return }
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return }
        let dir = String(exe[..<slash])
        let parent = dir.lastIndex(of: "/").map { String(dir[..<$0]) } ?? dir
        for candidate in [dir + "/terminfo", parent + "/terminfo"] where access(candidate, R_OK | X_OK) == 0 {
            setenv("TERMINFO_DIRS", "/etc/terminfo:/lib/terminfo:/usr/share/terminfo:" + candidate, 1)
            return
        }
    }

    func stop() {
        guard active else { return }
        active = false
        endwin()
        ummu_restore_remove()
    }

    deinit { stop() }

    private func attributes(_ s: Style) -> Int32 {
        switch s {
        case .normal: return 0
        case .title: return ummu_attr_bold() | (colors ? ummu_color_pair(1) : 0)
        case .tableHeader: return colors ? ummu_color_pair(2) : ummu_attr_reverse()
        case .selected: return colors ? ummu_color_pair(3) : ummu_attr_reverse()
        case .dim: return ummu_attr_dim()
        case .footer: return colors ? ummu_color_pair(4) : ummu_attr_reverse()
        }
    }

    func clear() { erase() }

    /// Draws `text` at (y, x), cut to the screen; `fill` pads the styled
    /// line to the right edge (for bars).
    func draw(_ y: Int, _ x: Int, _ text: String, _ style: Style = .normal, fill: Bool = false) {
        guard active, y >= 0, y < rows, x >= 0, x < cols else { return }
        let room = cols - x
        var t = text.count > room ? String(text.prefix(room)) : text
        if fill && t.count < room { t += String(repeating: " ", count: room - t.count) }
        // The bottom-right cell cannot be written without scrolling.
        if y == rows - 1 && x + t.count >= cols { t = String(t.prefix(max(0, room - 1))) }
        let a = attributes(style)
        if a != 0 { attron(a) }
        _ = mvaddstr(Int32(y), Int32(x), t)
        if a != 0 { attroff(a) }
    }

    func flush() { refresh() }

    /// The next key, nil when none is pending.
    func key() -> Int32? {
        let k = getch()
        return k == ERR ? nil : k
    }
}

struct ScreenError: Error {
    let message: String
    init(_ m: String) { message = m }
}
