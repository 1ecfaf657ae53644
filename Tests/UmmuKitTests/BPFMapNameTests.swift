// Swift names every BPF map in one place (BPFMapName, BPFObjectID.mapNames):
// checked here against the embedded objects both ways, read with libbpf
// without loading them (any kernel, no root).
import Testing
@testable import UmmuKit

extension Dictionary where Key == String {
    /// A map's entry in what BPFObject.declarations returns.
    subscript(map name: BPFMapName) -> Value? { self[name.rawValue] }
}

/// libbpf's own maps for an object's global variables, named
/// "<object>.rodata" and so on: a dot no map declared in SEC(".maps") (a C
/// identifier) can have.
func isLibbpfInternal(_ map: String) -> Bool {
    guard let dot = map.firstIndex(of: ".") else { return false }
    let section = map[dot...]
    return [".rodata", ".bss", ".data", ".kconfig"].contains { section.hasPrefix($0) }
}

@Suite("BPF map names")
struct BPFMapNameTests {
    @Test(arguments: BPFObjectID.allCases)
    func swiftNamesExactlyTheMapsOfEachEmbeddedObject(_ id: BPFObjectID) throws {
        let declared = Set(try BPFObject.declarations(id).maps.keys)
        let named = Set(id.mapNames.map(\.rawValue))
        #expect(named.count == id.mapNames.count, "\(id).mapNames lists a map twice")
        #expect(named.subtracting(declared).sorted() == [], "in \(id).mapNames but not maps of that object")
        #expect(declared.subtracting(named).filter { !isLibbpfInternal($0) }.sorted() == [],
                "maps of the \(id) object missing from \(id).mapNames (and BPFMapName)")
    }

    @Test func everyNameIsAMapOfSomeObject() {
        let listed = Set(BPFObjectID.allCases.flatMap(\.mapNames))
        #expect(BPFMapName.allCases.filter { !listed.contains($0) } == [])
    }

    @Test func onlyLibbpfsOwnMapsAreLeftOut() {
        #expect(isLibbpfInternal("umem.rodata") && isLibbpfInternal("ummunoti.bss") && isLibbpfInternal("umem.kconfig"))
        #expect(!BPFMapName.allCases.contains { isLibbpfInternal($0.rawValue) })
    }
}
