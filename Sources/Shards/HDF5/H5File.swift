import CHDF5
import Foundation

/// An open HDF5 file with the few operations shards need: root attributes and datasets.
final class H5File {
    /// The file's path (named in every error).
    let path: String
    private let handle: H5Object

    private init(path: String, handle: H5Object) {
        self.path = path
        self.handle = handle
    }

    /// Creates (truncates) `path` for deterministic output: no object timestamps, and the file
    /// format pinned to HDF5 1.8's (readable by HDF5 ≥ 1.8, h5py included) whatever the library.
    static func create(_ path: String) throws -> H5File {
        try H5.begin(path)
        let fcpl = H5Object.plist(try H5.check(id: H5Pcreate(ch5_P_FILE_CREATE()), path, "create file property list"))
        try H5.check(H5Pset_obj_track_times(fcpl.id, false), path, "turn off time tracking")
        let fapl = try accessList(path)
        try H5.check(H5Pset_libver_bounds(fapl.id, H5F_LIBVER_V18, H5F_LIBVER_V18), path, "pin the file format to HDF5 1.8")
        let id = try H5.check(id: H5Fcreate(path, ch5_F_ACC_TRUNC(), fcpl.id, fapl.id), path, "create file")
        return H5File(path: path, handle: .file(id))
    }

    /// Opens `path` read-only.
    static func open(_ path: String) throws -> H5File {
        try H5.begin(path)
        let fapl = try accessList(path)
        let id = try H5.check(id: H5Fopen(path, ch5_F_ACC_RDONLY(), fapl.id), path, "open file")
        return H5File(path: path, handle: .file(id))
    }

    /// A file access list whose close really closes the file (no object left open keeps it alive).
    private static func accessList(_ path: String) throws -> H5Object {
        let fapl = H5Object.plist(try H5.check(id: H5Pcreate(ch5_P_FILE_ACCESS()), path, "create file access list"))
        try H5.check(H5Pset_fclose_degree(fapl.id, H5F_CLOSE_STRONG), path, "set close degree")
        return fapl
    }

    /// Flushes and closes the file; later use is an error.
    func close() throws { try handle.close(path, "file") }

    var id: hid_t { handle.id }

    // MARK: Attributes on the root group

    /// Whether the root group has the attribute `name`.
    func hasAttribute(_ name: String) throws -> Bool {
        let r = H5Aexists(id, name)
        try H5.check(herr_t(r < 0 ? -1 : 0), path, "look up attribute \(name)")
        return r > 0
    }

    /// Writes a scalar 64-bit integer attribute.
    func writeAttribute(_ name: String, int value: Int64) throws {
        let space = H5Object.space(try H5.check(id: H5Screate(H5S_SCALAR), path, "create scalar space"))
        let attr = H5Object.attribute(try H5.check(
            id: H5Acreate2(id, name, ch5_T_STD_I64LE(), space.id, ch5_P_DEFAULT(), ch5_P_DEFAULT()), path, "create attribute \(name)"))
        var v = value
        try H5.check(H5Awrite(attr.id, ch5_T_NATIVE_INT64(), &v), path, "write attribute \(name)")
    }

    /// Writes a UTF-8 variable-length string attribute: scalar for one string (`scalar: true`), else 1-D.
    func writeAttribute(_ name: String, strings: [String], scalar: Bool = false) throws {
        precondition(!scalar || strings.count == 1)
        let space: H5Object
        if scalar {
            space = .space(try H5.check(id: H5Screate(H5S_SCALAR), path, "create scalar space"))
        } else {
            var n = hsize_t(strings.count)
            space = .space(try H5.check(id: H5Screate_simple(1, &n, nil), path, "create space for \(name)"))
        }
        let type = try Self.variableString(path)
        let attr = H5Object.attribute(try H5.check(
            id: H5Acreate2(id, name, type.id, space.id, ch5_P_DEFAULT(), ch5_P_DEFAULT()), path, "create attribute \(name)"))
        let cStrings = strings.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        try H5.check(H5Awrite(attr.id, type.id, &pointers), path, "write attribute \(name)")
    }

    /// Reads an integer attribute of any integer width as Int64 (nil when absent).
    func intAttribute(_ name: String) throws -> Int64? {
        guard try hasAttribute(name) else { return nil }
        let attr = H5Object.attribute(try H5.check(id: H5Aopen(id, name, ch5_P_DEFAULT()), path, "open attribute \(name)"))
        let type = H5Object.type(try H5.check(id: H5Aget_type(attr.id), path, "type of attribute \(name)"))
        let space = H5Object.space(try H5.check(id: H5Aget_space(attr.id), path, "space of attribute \(name)"))
        guard H5Tget_class(type.id) == H5T_INTEGER, H5Sget_simple_extent_npoints(space.id) == 1 else {
            throw ShardError.schema(path: path, "attribute \(name) is not a single integer")
        }
        var v: Int64 = 0
        try H5.check(H5Aread(attr.id, ch5_T_NATIVE_INT64(), &v), path, "read attribute \(name)")
        return v
    }

    /// Reads a string attribute (variable- or fixed-length, scalar or 1-D) as an array (nil when absent).
    func stringsAttribute(_ name: String) throws -> [String]? {
        guard try hasAttribute(name) else { return nil }
        let attr = H5Object.attribute(try H5.check(id: H5Aopen(id, name, ch5_P_DEFAULT()), path, "open attribute \(name)"))
        let fileType = H5Object.type(try H5.check(id: H5Aget_type(attr.id), path, "type of attribute \(name)"))
        let space = H5Object.space(try H5.check(id: H5Aget_space(attr.id), path, "space of attribute \(name)"))
        guard H5Tget_class(fileType.id) == H5T_STRING else {
            throw ShardError.schema(path: path, "attribute \(name) is not a string")
        }
        let count = Int(H5Sget_simple_extent_npoints(space.id))
        if H5Tis_variable_str(fileType.id) > 0 {
            let memType = try Self.variableString(path)
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            try H5.check(H5Aread(attr.id, memType.id, &pointers), path, "read attribute \(name)")
            defer { _ = H5Dvlen_reclaim(memType.id, space.id, ch5_P_DEFAULT(), &pointers) }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        let width = H5Tget_size(fileType.id)
        let memType = H5Object.type(try H5.check(id: H5Tcopy(ch5_T_C_S1()), path, "copy string type"))
        try H5.check(H5Tset_size(memType.id, width), path, "size string type")
        var bytes = [UInt8](repeating: 0, count: width * count)
        try H5.check(H5Aread(attr.id, memType.id, &bytes), path, "read attribute \(name)")
        return (0..<count).map { i in
            let slice = bytes[(i * width)..<((i + 1) * width)].prefix { $0 != 0 }
            return String(decoding: slice, as: UTF8.self)
        }
    }

    /// A UTF-8 variable-length string type (what h5py writes for Python `str`).
    private static func variableString(_ path: String) throws -> H5Object {
        let t = H5Object.type(try H5.check(id: H5Tcopy(ch5_T_C_S1()), path, "copy string type"))
        try H5.check(H5Tset_size(t.id, ch5_T_VARIABLE()), path, "make string type variable")
        try H5.check(H5Tset_cset(t.id, H5T_CSET_UTF8), path, "set string type to UTF-8")
        return t
    }

    // MARK: Datasets

    /// Creates a dataset. `chunk` non-nil makes it chunked; `zstdLevel` non-nil adds
    /// byte-shuffle then Zstandard (id 32015) to its filter pipeline.
    func createDataset(_ name: String, type: hid_t, dims: [Int], maxDims: [Int]? = nil,
                       chunk: [Int]? = nil, zstdLevel: Int? = nil) throws -> H5Dataset {
        var current = dims.map { hsize_t($0) }
        var maximum = (maxDims ?? dims).map { $0 < 0 ? ch5_S_UNLIMITED() : hsize_t($0) }
        let space = H5Object.space(try H5.check(
            id: H5Screate_simple(Int32(dims.count), &current, &maximum), path, "create space for \(name)"))
        let dcpl = H5Object.plist(try H5.check(id: H5Pcreate(ch5_P_DATASET_CREATE()), path, "create dataset property list"))
        try H5.check(H5Pset_obj_track_times(dcpl.id, false), path, "turn off time tracking for \(name)")
        if let chunk {
            var c = chunk.map { hsize_t($0) }
            try H5.check(H5Pset_chunk(dcpl.id, Int32(c.count), &c), path, "set chunking of \(name)")
            if let zstdLevel {
                try H5.check(H5Pset_shuffle(dcpl.id), path, "add shuffle filter to \(name)")
                var level = [UInt32(bitPattern: Int32(zstdLevel))]
                try H5.check(H5Pset_filter(dcpl.id, fz_zstd_filter_id(), UInt32(H5Z_FLAG_MANDATORY), 1, &level),
                             path, "add zstd filter to \(name)")
            }
        }
        let id = try H5.check(id: H5Dcreate2(self.id, name, type, space.id, ch5_P_DEFAULT(), dcpl.id, ch5_P_DEFAULT()),
                              path, "create dataset \(name)")
        return H5Dataset(file: self, name: name, handle: .dataset(id))
    }

    /// Whether the root group has a link named `name`.
    func hasDataset(_ name: String) -> Bool { H5Lexists(id, name, ch5_P_DEFAULT()) > 0 }

    /// Opens an existing dataset.
    func openDataset(_ name: String) throws -> H5Dataset {
        guard hasDataset(name) else { throw ShardError.schema(path: path, "dataset \(name) is missing") }
        let id = try H5.check(id: H5Dopen2(self.id, name, ch5_P_DEFAULT()), path, "open dataset \(name)")
        return H5Dataset(file: self, name: name, handle: .dataset(id))
    }
}
