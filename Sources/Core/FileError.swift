/// A file-system operation of Core's that failed (an atomic write, a hash of a file, a block read); it names the file.
public struct FileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file or folder the operation was about.
    public var path: String
    /// What failed and why ("fsync failed: Input/output error").
    public var message: String

    /// A failure of the operation on `path`.
    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    /// `PATH: MESSAGE`, as ShardError.io says it.
    public var description: String { "\(path): \(message)" }
}
