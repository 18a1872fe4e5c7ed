/// Why a shard, a manifest or a sample was refused; each case names the file (or study) at fault.
public enum ShardError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file's `schema_version` is absent or one this build does not read.
    case unsupportedSchemaVersion(path: String, found: Int64?, supported: [Int64])
    /// The file does not match data-schema.md (missing dataset, wrong dtype or shape, ...).
    case schema(path: String, String)
    /// A sample that cannot go into this dataset (other grid shape, study already written, ...).
    case sample(studyID: Int64, String)
    /// A file-system operation failed.
    case io(path: String, String)

    /// A one-line message naming the file (or study) and the problem.
    public var description: String {
        switch self {
        case let .unsupportedSchemaVersion(path, found, supported):
            let reads = supported.map(String.init).joined(separator: ", ")
            let what = found.map { "schema_version \($0) is not supported" } ?? "no schema_version attribute (not a fuse3d shard?)"
            return "\(path): \(what); this fuse3d reads schema_version \(reads)"
        case let .schema(path, message): return "\(path): \(message)"
        case let .sample(studyID, message): return "study \(studyID): \(message)"
        case let .io(path, message): return "\(path): \(message)"
        }
    }
}
