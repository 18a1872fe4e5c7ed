import ArgumentParser
import Foundation
import Shards
import Train

/// The argument checks several commands share, each made by the library that owns the rule and shown as a
/// usage error: written once here, not once per command.
enum SharedChecks {
    /// A shard folder argument (Shards' `Manifest.checkFolder`).
    static func shardFolder(_ path: String) throws {
        do { try Manifest.checkFolder(URL(fileURLWithPath: path)) } catch { throw ValidationError("\(error)") }
    }

    /// A `--device` argument, parsed once as the option is read (Train's `DeviceSetting.parse`); whether libtorch can
    /// use it is checked by `Torch.validate`.
    static func device(_ text: String) throws -> DeviceSetting {
        do { return try DeviceSetting.parse(text) } catch { throw ValidationError("\(error)") }
    }
}
