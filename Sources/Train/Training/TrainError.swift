/// An error of training that is not libtorch's: a configuration that cannot be used, a run folder that
/// cannot be read or written (or would be overwritten), loader options, a diverging loss. Its message is
/// shown as it is; `TorchError` stays for what libtorch itself reports and is marked "libtorch:".
public struct TrainError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What the error is about.
    public enum Kind: String, Sendable {
        /// A configuration (file or flags) that cannot be trained as given.
        case configuration
        /// A run folder that cannot be read, written or trained into as asked.
        case runFolder
        /// Loader options out of range.
        case loader
        /// A training loss that became NaN or infinite.
        case diverged
    }

    /// What the error is about, and the sentence shown (naming the file or key where there is one).
    public var kind: Kind, message: String

    /// An error of `kind` with `message`.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The message as it is (no "libtorch:" prefix).
    public var description: String { message }
}
