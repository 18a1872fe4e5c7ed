/// An error of training that is not libtorch's: a configuration that cannot be used, a run folder that
/// cannot be read or written (or would be overwritten), loader options, sizes that do not fit, a diverging loss. Its message is
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
        /// Sizes that do not fit together, found by our own checks before libtorch sees them: values for a tensor's
        /// shape, a layer's channels, a loss's inputs, crop points, a saved state (weights, optimiser) for what it is
        /// loaded into.
        case shape
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
