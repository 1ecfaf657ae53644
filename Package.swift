// swift-tools-version: 6.3;(experimentalCGen)
//
// ummu: BPF aggregation of the ummunotify/umem driver tracepoints and the
// tools on top of it. `swift build` compiles bpf/*.bpf.c with clang
// -target bpf (Plugins/BPFEmbed) and embeds the objects in the binaries.
import PackageDescription

let package = Package(
    name: "ummu",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "UmmuKit", targets: ["UmmuKit"]),
        .executable(name: "ummutrace", targets: ["ummutrace"]),
        .executable(name: "ummutop", targets: ["ummutop"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // libbpf from the system (Debian: libbpf-dev, libelf-dev, zlib1g-dev).
        .systemLibrary(
            name: "CLibbpf",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libelf-dev", "zlib1g-dev"])]
        ),
        // Build-tool plugin: bpf/*.bpf.c -> C arrays of the BPF objects.
        .plugin(name: "BPFEmbed", capability: .buildTool()),
        // The embedded BPF objects, the shared layouts and a small C shim.
        .target(
            name: "UmmuBPF",
            dependencies: ["CLibbpf"],
            plugins: ["BPFEmbed"]
        ),
        // What both tools share: load/attach, snapshots, model, the text, JSON
        // and Prometheus renderers. No ummutop UI: that is UmmuTopUI.
        .target(name: "UmmuKit", dependencies: ["UmmuBPF", "CLibbpf"]),
        // ummutop's views without the terminal: rows, columns, sort, filter,
        // history, header and batch text, synthetic processes. Not a product:
        // only ummutop, its benchmark and the tests use it.
        .target(name: "UmmuTopUI", dependencies: ["UmmuKit"]),
        // The command-line options and error exits both tools share.
        .target(
            name: "UmmuCLI",
            dependencies: [
                "UmmuKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "ummutrace",
            dependencies: [
                "UmmuKit",
                "UmmuCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // ncursesw from the system (Debian: libncurses-dev), for ummutop's screen.
        .systemLibrary(
            name: "CNcurses",
            pkgConfig: "ncursesw",
            providers: [.apt(["libncurses-dev"])]
        ),
        .executableTarget(
            name: "ummutop",
            dependencies: [
                "UmmuKit",
                "UmmuTopUI",
                "UmmuCLI",
                "CNcurses",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Benchmark (not a test): ummutop's refresh cost with many processes.
        .executableTarget(
            name: "ummutop-bench",
            dependencies: ["UmmuKit", "UmmuTopUI", "UmmuBPF", "CLibbpf"],
            path: "bench/ummutop_bench"
        ),
        // Benchmark (not a test): per-event BPF cost and ring buffer -> NDJSON rate.
        .executableTarget(
            name: "ummu-bpf-bench",
            dependencies: ["UmmuKit", "UmmuBPF", "CLibbpf"],
            path: "bench/bpf_bench"
        ),
        // UmmuTopUI for HostileCommTests only: ummutop's rows are among the
        // outputs that must not pass a comm's control characters through.
        .testTarget(
            name: "UmmuKitTests",
            dependencies: ["UmmuKit", "UmmuTopUI", "UmmuBPF", "CLibbpf"]
        ),
        .testTarget(
            name: "UmmuTopUITests",
            dependencies: ["UmmuKit", "UmmuTopUI"]
        ),
    ]
)
