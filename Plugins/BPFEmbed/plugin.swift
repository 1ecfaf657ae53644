// BPFEmbed: compiles every bpf/*.bpf.c of the package with clang -target bpf
// and emits one generated C source per program holding the object's bytes,
// which SwiftPM then compiles into the target (UmmuBPF). Generated C sources
// (not headers) are ordered correctly by SwiftPM; the declarations live in
// the hand-written Sources/UmmuBPF/include/ummu_bpf.h.
import Foundation
import PackagePlugin

@main
struct BPFEmbed: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let bpfDir = root.appending(path: "bpf")
        let script = bpfDir.appending(path: "embed.sh")
        let clang: URL
        if let env = ProcessInfo.processInfo.environment["BPF_CLANG"], !env.isEmpty {
            clang = URL(fileURLWithPath: env)
        } else {
            clang = try context.tool(named: "clang").url
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: bpfDir.path).sorted()
        let headers = files.filter { $0.hasSuffix(".h") }.map { bpfDir.appending(path: $0) }
        return files.filter { $0.hasSuffix(".bpf.c") }.map { name in
            let base = String(name.dropLast(".bpf.c".count))
            let out = context.pluginWorkDirectoryURL.appending(path: "\(base)_bpf_obj.c")
            return .buildCommand(
                displayName: "Compiling BPF program \(name)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, clang.path, bpfDir.appending(path: name).path,
                            out.path, "ummu_\(base)_bpf_obj"],
                inputFiles: [bpfDir.appending(path: name), script] + headers,
                outputFiles: [out]
            )
        }
    }
}
