/// One slice of a fused series as the scanner stored it: its matrix and where it lies in patient space (schema_version 2,
/// data-schema.md "Source pixels"). Stage two of the two-stage model cuts its crops from these at the scanner's resolution.
public struct SourceSlice: Sendable, Equatable {
    /// The channel (index into `Channels.names`) whose series the slice belongs to.
    public var channel: Int
    /// Matrix size.
    public var rows: Int, columns: Int
    /// 12 numbers, patient LPS millimetres: the centre of pixel (row 0, column 0) (3); the step from a pixel to the next
    /// column (3: the row direction cosines × the column spacing); the step to the next row (3: the column direction
    /// cosines × the row spacing); the unit normal (3: row direction × column direction).
    public var geometry: [Double]

    /// A slice of `channel`, `rows` × `columns`, with its 12 geometry numbers.
    public init(channel: Int, rows: Int, columns: Int, geometry: [Double]) {
        precondition(geometry.count == 12, "a source slice has 12 geometry numbers")
        self.channel = channel
        self.rows = rows
        self.columns = columns
        self.geometry = geometry
    }

    /// rows × columns.
    public var pixelCount: Int { rows * columns }
}

/// A study's source slices: those of every stack of the series fused into each channel, channel by channel (0, 1, 2),
/// each channel's in the order of their position along their normal; `pixels` is their concatenation, each slice's
/// rows × columns values row-major, normalized with its channel's `norm` as the fused grid is (low → 0, high → 1,
/// clamped to [0, 1]).
public struct SourcePixels: Sendable {
    /// The slices, in storage order.
    public var slices: [SourceSlice]
    /// Their values, float16, concatenated in the same order.
    public var pixels: [Float16]

    /// Source pixels from their slices and values; traps unless the counts agree.
    public init(slices: [SourceSlice], pixels: [Float16]) {
        precondition(pixels.count == slices.reduce(0) { $0 + $1.pixelCount }, "source pixels do not match their slices")
        self.slices = slices
        self.pixels = pixels
    }

    /// No slices (a study ingested without its source pixels).
    public static let empty = SourcePixels(slices: [], pixels: [])
}
