import CHDF5
import Core

/// The shard format's constants (data-schema.md is the normative description).
public enum ShardSchema {
    /// The version this build writes (2: the source pixels, data-schema.md "Source pixels").
    public static let version: Int64 = 2
    /// The versions this build reads; any other is refused. A schema-1 shard reads as one without source pixels.
    public static let readableVersions: [Int64] = [1, 2]
    /// Elements (float16) per chunk of `source_pixels`; each sample's block starts at a multiple of it.
    public static let sourceChunkElements = 65536
    /// The most rows a shard's `source_slices` may have (a 1 GB shard holds a few tens of thousands); a file claiming
    /// more is refused before its table is allocated.
    public static let maxSourceSlices = 1 << 20
    /// The largest rows or columns of a source slice.
    public static let maxSourceMatrix = 4096
    /// The HDF5 filter id of Zstandard (HDF Group registry), as hdf5plugin uses it.
    public static let zstdFilterID: Int32 = 32015
    /// HDF5's built-in byte-shuffle filter id.
    public static let shuffleFilterID: Int32 = 2
    /// Default Zstandard level: 1. On byte-shuffled float16 volumes the higher levels find almost nothing more to
    /// match and cost more CPU (BENCHMARKS.md, "Zstandard level": level 1 wrote 0.2 % smaller shards than 3, in 8 %
    /// less ingest CPU).
    public static let defaultZstdLevel = 1

    /// The linked HDF5 and libzstd versions, e.g. "HDF5 1.10.8, zstd 1.5.4" (for `fuse3d version`).
    public static var nativeLibraries: String {
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        H5get_libversion(&major, &minor, &release)
        return "HDF5 \(major).\(minor).\(release), zstd \(String(cString: fz_zstd_version()))"
    }

    /// The file name of shard `index`: `shard-00000.h5`.
    public static func fileName(index: Int) -> String {
        let digits = String(index)
        return "shard-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits + ".h5"
    }

    /// Suffix of a file still being written (never ends in `.h5`, so a reader never picks it up).
    public static let partialSuffix = AtomicFile.partialSuffix

    /// Dataset names.
    enum Dataset {
        static let volumes = "volumes"
        static let studyID = "study_id"
        static let labels = "labels"
        static let present = "present"
        static let affine = "affine"
        static let keypoints = "keypoints"
        static let norm = "norm"
        static let sourcePixels = "source_pixels"
        static let sourceSlices = "source_slices"
        static let sourceGeometry = "source_geometry"
    }

    /// Root attribute names.
    enum Attribute {
        static let schemaVersion = "schema_version"
        static let channels = "channels"
        static let labelColumns = "label_columns"
        static let parameters = "parameters"
    }
}
