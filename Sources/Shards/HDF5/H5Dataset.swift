import CHDF5
import Foundation

/// An open HDF5 dataset: its shape, type, layout and filters, and reads/writes of whole
/// datasets or of one block along the first axis.
final class H5Dataset {
    /// The file the dataset lives in (kept open while the dataset is).
    let file: H5File
    /// The dataset's name in the root group.
    let name: String
    private let handle: H5Object

    init(file: H5File, name: String, handle: H5Object) {
        self.file = file
        self.name = name
        self.handle = handle
    }

    var id: hid_t { handle.id }
    private var path: String { file.path }

    /// Closes now, reporting failure.
    func close() throws { try handle.close(path, "dataset \(name)") }

    // The dataset closes before its file can: a deinit body runs before the stored properties are released,
    // and the file (opened with H5F_CLOSE_STRONG) would otherwise close the dataset first, leaving the
    // dataset's own close to fail and HDF5 to print so.
    deinit { try? close() }

    /// Current dimensions.
    func dims() throws -> [Int] {
        let space = H5Object.space(try H5.check(id: H5Dget_space(id), path, "space of \(name)"))
        let rank = Int(H5Sget_simple_extent_ndims(space.id))
        try H5.check(herr_t(rank < 0 ? -1 : 0), path, "rank of \(name)")
        var d = [hsize_t](repeating: 0, count: rank)
        try H5.check(H5Sget_simple_extent_dims(space.id, &d, nil), path, "dimensions of \(name)")
        return d.map { Int($0) }
    }

    /// The stored element type: class (H5T_FLOAT, H5T_INTEGER, ...), size in bytes, signedness.
    func elementType() throws -> (typeClass: H5T_class_t, size: Int, signed: Bool) {
        let t = H5Object.type(try H5.check(id: H5Dget_type(id), path, "type of \(name)"))
        let cls = H5Tget_class(t.id)
        return (cls, H5Tget_size(t.id), cls == H5T_INTEGER && H5Tget_sign(t.id) == H5T_SGN_2)
    }

    /// Whether the stored type equals `type` exactly (precision, byte order, bit layout).
    func typeEquals(_ type: hid_t) throws -> Bool {
        let t = H5Object.type(try H5.check(id: H5Dget_type(id), path, "type of \(name)"))
        return H5Tequal(t.id, type) > 0
    }

    /// Chunk dimensions, or nil when the dataset is not chunked.
    func chunkDims() throws -> [Int]? {
        let dcpl = H5Object.plist(try H5.check(id: H5Dget_create_plist(id), path, "creation list of \(name)"))
        guard H5Pget_layout(dcpl.id) == H5D_CHUNKED else { return nil }
        var c = [hsize_t](repeating: 0, count: 32)
        let rank = H5Pget_chunk(dcpl.id, 32, &c)
        try H5.check(herr_t(rank < 0 ? -1 : 0), path, "chunking of \(name)")
        return c.prefix(Int(rank)).map { Int($0) }
    }

    /// The filter pipeline in order, as (filter id, client data values).
    func filters() throws -> [(id: Int32, values: [UInt32])] {
        let dcpl = H5Object.plist(try H5.check(id: H5Dget_create_plist(id), path, "creation list of \(name)"))
        let n = H5Pget_nfilters(dcpl.id)
        try H5.check(herr_t(n < 0 ? -1 : 0), path, "filters of \(name)")
        return try (0..<n).map { i in
            var flags: UInt32 = 0, count = 8, config: UInt32 = 0
            var values = [UInt32](repeating: 0, count: 8)
            var nameBuffer = [CChar](repeating: 0, count: 64)
            let fid = H5Pget_filter2(dcpl.id, UInt32(i), &flags, &count, &values, 64, &nameBuffer, &config)
            try H5.check(herr_t(fid < 0 ? -1 : 0), path, "filter \(i) of \(name)")
            return (fid, Array(values.prefix(count)))
        }
    }

    /// Bytes the dataset's data occupies in the file (compressed chunks for a filtered dataset).
    func storageSize() -> Int { Int(H5Dget_storage_size(id)) }

    /// Bytes the stored chunk at element `offset` takes (0 when that chunk was never written).
    func storedChunkSize(at offset: [Int]) throws -> Int {
        var o = offset.map { hsize_t($0) }
        var mask: UInt32 = 0
        var address: haddr_t = 0
        var size: hsize_t = 0
        try H5.check(H5Dget_chunk_info_by_coord(id, &o, &mask, &address, &size), path, "look up chunk \(offset) of \(name)")
        return Int(size)
    }

    /// Reads the stored (still filtered) bytes of the chunk at element `offset` into `buffer`, which
    /// holds `storedChunkSize(at:)` bytes; returns the chunk's filter mask (bit k set: filter k skipped).
    func readRawChunk(at offset: [Int], into buffer: UnsafeMutableRawPointer) throws -> UInt32 {
        var o = offset.map { hsize_t($0) }
        var mask: UInt32 = 0
        try H5.check(H5Dread_chunk(id, ch5_P_DEFAULT(), &o, &mask, buffer), path, "read raw chunk \(offset) of \(name)")
        return mask
    }

    /// Stores already-filtered bytes as the chunk at element `offset` (filter mask 0: every filter applied).
    func writeRawChunk(at offset: [Int], _ bytes: UnsafeRawBufferPointer) throws {
        var o = offset.map { hsize_t($0) }
        try H5.check(H5Dwrite_chunk(id, ch5_P_DEFAULT(), 0, &o, bytes.count, bytes.baseAddress), path,
                     "write raw chunk \(offset) of \(name)")
    }

    /// Grows the first dimension to `n`.
    func extend(to dims: [Int]) throws {
        var d = dims.map { hsize_t($0) }
        try H5.check(H5Dset_extent(id, &d), path, "extend \(name) to \(dims)")
    }

    /// Writes the whole dataset from `buffer` (elements of `memType`).
    func writeAll(_ buffer: UnsafeRawPointer, memType: hid_t) throws {
        try H5.check(H5Dwrite(id, memType, ch5_S_ALL(), ch5_S_ALL(), ch5_P_DEFAULT(), buffer), path, "write \(name)")
    }

    /// Reads the whole dataset into `buffer` (elements of `memType`, HDF5 converts).
    func readAll(_ buffer: UnsafeMutableRawPointer, memType: hid_t) throws {
        try H5.check(H5Dread(id, memType, ch5_S_ALL(), ch5_S_ALL(), ch5_P_DEFAULT(), buffer), path, "read \(name)")
    }

    /// Runs `body` (a read) on `count` entries along the first axis from `start` (all of the other axes).
    private func block(start: Int, count: Int, _ body: (_ memSpace: hid_t, _ fileSpace: hid_t) -> herr_t,
                       _ what: String) throws {
        let dims = try dims()
        let fileSpace = H5Object.space(try H5.check(id: H5Dget_space(id), path, "space of \(name)"))
        var offset = [hsize_t](repeating: 0, count: dims.count)
        offset[0] = hsize_t(start)
        var extent = dims.map { hsize_t($0) }
        extent[0] = hsize_t(count)
        try H5.check(H5Sselect_hyperslab(fileSpace.id, H5S_SELECT_SET, &offset, nil, &extent, nil),
                     path, "select \(name)[\(start)..<\(start + count)]")
        let memSpace = H5Object.space(try H5.check(
            id: H5Screate_simple(Int32(extent.count), &extent, nil), path, "create memory space for \(name)"))
        try H5.check(body(memSpace.id, fileSpace.id), path, "\(what) \(name)[\(start)..<\(start + count)]")
    }

    /// Reads entries `start..<start+count` along the first axis.
    func read(start: Int, count: Int, _ buffer: UnsafeMutableRawPointer, memType: hid_t) throws {
        try block(start: start, count: count, { H5Dread(id, memType, $0, $1, ch5_P_DEFAULT(), buffer) }, "read")
    }
}
