import Foundation

/// An axis-aligned box in patient space (LPS, mm): the region a fused grid covers.
public struct PatientBox: Codable, Sendable, Equatable {
    /// Smallest x, y, z.
    public var lower: Vec3
    /// Largest x, y, z.
    public var upper: Vec3

    /// The box between two corners (LPS mm); `lower` is expected to be ≤ `upper` on every axis.
    public init(lower: Vec3, upper: Vec3) { self.lower = lower; self.upper = upper }

    /// The smallest box holding every point; nil for no points.
    public static func enclosing<S: Sequence>(_ points: S) -> PatientBox? where S.Element == Vec3 {
        var it = points.makeIterator()
        guard let first = it.next() else { return nil }
        var lo = first, hi = first
        while let p = it.next() {
            lo = Vec3(min(lo.x, p.x), min(lo.y, p.y), min(lo.z, p.z))
            hi = Vec3(max(hi.x, p.x), max(hi.y, p.y), max(hi.z, p.z))
        }
        return PatientBox(lower: lo, upper: hi)
    }

    /// The box of the region a stack's slices cover: every slice's pixel-centre corners, pushed
    /// half the stack's slice spacing along the normal to both sides (the reach of its resampling).
    public static func covering(_ stack: Stack) -> PatientBox? {
        let reach = stack.spacing / 2
        return enclosing(stack.slices.flatMap { s -> [Vec3] in
            let g = s.geometry, n = g.normal
            let corners = [(0.0, 0.0), (0.0, Double(g.columns - 1)), (Double(g.rows - 1), 0.0),
                           (Double(g.rows - 1), Double(g.columns - 1))]
            return corners.flatMap { rc -> [Vec3] in
                let p = g.patientPosition(row: rc.0, column: rc.1)
                return [p + reach * n, p - reach * n]
            }
        })
    }

    /// The smallest box holding both.
    public func union(_ other: PatientBox) -> PatientBox {
        PatientBox.enclosing([lower, upper, other.lower, other.upper])!
    }

    /// The centre point.
    public var centre: Vec3 { 0.5 * (lower + upper) }
    /// Edge lengths along x, y, z.
    public var extent: Vec3 { upper - lower }
}

extension Vec3: Codable {
    /// Encoded as `[x, y, z]`.
    public init(from decoder: Decoder) throws {
        var c = try decoder.unkeyedContainer()
        self.init(try c.decode(Double.self), try c.decode(Double.self), try c.decode(Double.self))
    }

    /// Encodes as `[x, y, z]`.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(x)
        try c.encode(y)
        try c.encode(z)
    }
}
