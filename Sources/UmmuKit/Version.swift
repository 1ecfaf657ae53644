// Version.swift - ummu's version, in one place: both tools' --version and
// the exporter's ummu_build_info{version}. Bump it together with
// debian/changelog, whose top entry must carry the same version
// (VersionTests and scripts/build-debs check).

/// The version of this ummu build.
public enum UmmuVersion {
    public static let string = "0.1.0"
}
