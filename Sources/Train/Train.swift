import CTorch

/// The libtorch this build links against.
public var libtorchVersion: String { String(cString: at_version()) }
