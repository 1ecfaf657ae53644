// MetricsFileWriter.swift - replaces a metrics file atomically, for
// node_exporter's textfile collector (which reads `*.prom` at every scrape).
//
// Every write: create `<dir>/.<name>.tmp` with O_CREAT|O_EXCL|O_NOFOLLOW
// (never follows or reuses whatever sits at that path), write everything,
// fsync, rename over `<dir>/<name>`, fsync the directory. A reader opening
// `<dir>/<name>` sees the old file or the new one, never a part of one. The
// temporary name starts with a dot and does not end in `.prom`, so the
// collector never reads it.
//
// If the temporary path already exists: a symbolic link (or anything that
// is not a regular file) is refused with an error and left alone; a regular
// file (left by a crash) is removed and the create retried once.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public enum MetricsFileError: Error, Equatable, CustomStringConvertible {
    case directoryMissing(String)
    case notADirectory(String)
    case directoryNotWritable(String, errno: Int32)
    case symlinkAtTemporaryPath(String)
    case temporaryPathNotRegularFile(String)
    case invalidPath(String)
    case io(String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .directoryMissing(let d):
            return "metrics directory \(d) does not exist: create it (e.g. the node_exporter textfile directory) or pass another --metrics-file"
        case .notADirectory(let d):
            return "\(d) is not a directory: --metrics-file must name a file inside a directory"
        case .directoryNotWritable(let d, let e):
            return "metrics directory \(d) is not writable (\(Self.message(e))): run as a user who may create files there"
        case .symlinkAtTemporaryPath(let p):
            return "refusing to write: \(p) is a symbolic link (someone placed it there; remove it after checking)"
        case .temporaryPathNotRegularFile(let p):
            return "refusing to write: \(p) exists and is not a regular file"
        case .invalidPath(let p):
            return "invalid metrics file path \"\(p)\": give a file name such as /var/lib/prometheus/node-exporter/ummu.prom"
        case .io(let p, let op, let e):
            return "\(op) \(p): \(Self.message(e))"
        }
    }

    static func message(_ e: Int32) -> String {
        guard let s = strerror(e) else { return "errno \(e)" }
        return String(cString: s)
    }
}

public struct MetricsFileWriter: Sendable {
    /// The file readers see.
    public let path: String
    /// Its directory.
    public let directory: String
    /// Where each new version is written before the rename.
    public let temporaryPath: String
    /// Mode of the file (before umask is irrelevant: set with fchmod).
    public let mode: mode_t

    /// Checks the directory now, so a wrong path fails at start-up with one
    /// clear line rather than at the first interval.
    public init(path: String, mode: mode_t = 0o644) throws {
        guard !path.isEmpty, !path.hasSuffix("/") else { throw MetricsFileError.invalidPath(path) }
        let slash = path.lastIndex(of: "/")
        let dir: String
        let base: String
        if let slash {
            dir = slash == path.startIndex ? "/" : String(path[..<slash])
            base = String(path[path.index(after: slash)...])
        } else {
            dir = "."
            base = path
        }
        guard !base.isEmpty, base != ".", base != ".." else { throw MetricsFileError.invalidPath(path) }
        self.path = path
        self.directory = dir
        self.temporaryPath = (dir == "/" ? "" : dir) + "/." + base + ".tmp"
        self.mode = mode
        try checkDirectory()
    }

    /// Fails with directoryMissing, notADirectory or directoryNotWritable.
    public func checkDirectory() throws {
        var st = stat()
        if stat(directory, &st) != 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR { throw MetricsFileError.directoryMissing(directory) }
            throw MetricsFileError.io(directory, operation: "stat", errno: e)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw MetricsFileError.notADirectory(directory) }
        if faccessat(AT_FDCWD, directory, W_OK | X_OK, AT_EACCESS) != 0 {
            throw MetricsFileError.directoryNotWritable(directory, errno: errno)
        }
    }

    /// Replaces the file with `contents`. On failure the previous file is
    /// untouched and no temporary file is left behind.
    public func write(_ contents: String) throws {
        var bytes = Array(contents.utf8)
        try write(bytes: &bytes)
    }

    public func write(bytes: inout [UInt8]) throws {
        let fd = try createTemporary()
        var ok = false
        defer {
            if !ok { unlink(temporaryPath) }
        }
        do {
            defer { close(fd) }
            try writeAll(fd, bytes)
            if fchmod(fd, mode) != 0 { throw MetricsFileError.io(temporaryPath, operation: "fchmod", errno: errno) }
            if fsync(fd) != 0 { throw MetricsFileError.io(temporaryPath, operation: "fsync", errno: errno) }
        }
        if rename(temporaryPath, path) != 0 {
            throw MetricsFileError.io(path, operation: "rename to", errno: errno)
        }
        ok = true
        try syncDirectory()
    }

    private func createTemporary() throws -> Int32 {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        for attempt in 0..<2 {
            let fd = open(temporaryPath, flags, 0o600)
            if fd >= 0 { return fd }
            let e = errno
            switch e {
            case EEXIST, ELOOP:
                var st = stat()
                if lstat(temporaryPath, &st) == 0 {
                    let kind = st.st_mode & S_IFMT
                    if kind == S_IFLNK { throw MetricsFileError.symlinkAtTemporaryPath(temporaryPath) }
                    if kind != S_IFREG { throw MetricsFileError.temporaryPathNotRegularFile(temporaryPath) }
                    // A regular file left by a crash: remove it (unlink never
                    // follows links) and try once more.
                    if attempt == 0, unlink(temporaryPath) == 0 { continue }
                }
                throw MetricsFileError.io(temporaryPath, operation: "create", errno: e)
            case ENOENT, ENOTDIR:
                throw MetricsFileError.directoryMissing(directory)
            case EACCES, EPERM, EROFS:
                throw MetricsFileError.directoryNotWritable(directory, errno: e)
            default:
                throw MetricsFileError.io(temporaryPath, operation: "create", errno: e)
            }
        }
        throw MetricsFileError.io(temporaryPath, operation: "create", errno: EEXIST)
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = posixWrite(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw MetricsFileError.io(temporaryPath, operation: "write", errno: errno)
                }
                off += n
            }
        }
    }

    private func syncDirectory() throws {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd < 0 { throw MetricsFileError.io(directory, operation: "open", errno: errno) }
        defer { close(dfd) }
        if fsync(dfd) != 0 { throw MetricsFileError.io(directory, operation: "fsync", errno: errno) }
    }
}

// `write` is shadowed inside the struct by the method of the same name.
@inline(__always)
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    write(fd, p, n)
}
