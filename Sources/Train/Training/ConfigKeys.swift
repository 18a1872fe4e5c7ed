import Config

extension ConfigKey {
    /// A box size in voxels [D, H, W]; nil leaves the key out.
    static func voxelSize(_ name: String, _ path: WritableKeyPath<Value, [Int]?> & Sendable, _ help: String) -> ConfigKey {
        ConfigKey(name: name, help: "\(help) [three whole numbers D, H, W]",
                  read: { s, v in if let x = try s.voxelSize(name) { v[keyPath: path] = x } },
                  write: { v in v[keyPath: path].map { ["\(name): \(yamlList($0))"] } ?? [] })
    }
}

extension ConfigSection {
    /// A box size in voxels: three whole numbers [D, H, W], each at least 1.
    func voxelSize(_ name: String) throws -> [Int]? {
        guard let size = try doubles(name) else { return nil }
        guard size.count == 3, size.allSatisfy({ $0 >= 1 && $0 == $0.rounded() && $0 < 1e6 }) else {
            throw error(name, "expected three whole numbers of voxels [D, H, W], got \(size.map { "\($0)" })")
        }
        return size.map { Int($0) }
    }
}
