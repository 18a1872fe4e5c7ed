import Shards
import XCTest

/// The F16C conversion (where the CPU has it) gives Swift's `Float16(_:)` bits for every kind of value: rounding
/// ties, half subnormals, overflow to infinity, signed zeros, infinities; odd lengths use the scalar tail.
final class HalfConversionTests: XCTestCase {
    func testVectorAndScalarConversionsAgree() {
        var values: [Float] = [0, -0, 1, -1, 0.5, 1.0 / 3, 65504, 65519.996, 65520, 1e6, -1e6, .infinity, -.infinity,
                               Float(Float16.leastNonzeroMagnitude), Float(Float16.leastNormalMagnitude) * 0.75,
                               1 + Float(Float16.ulpOfOne) / 2, 1 + 3 * Float(Float16.ulpOfOne) / 2, 1e-8, -6e-8]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<100_003 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: state >> 32))
            if !f.isNaN { values.append(f) }
        }
        var fast = [Float16](repeating: 0, count: values.count)
        var slow = [Float16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { v in
            fast.withUnsafeMutableBufferPointer { HalfConversion.convert(v, into: $0) }
            slow.withUnsafeMutableBufferPointer { HalfConversion.convert(v, into: $0, portable: true) }
        }
        for i in values.indices where fast[i].bitPattern != slow[i].bitPattern {
            XCTFail("\(values[i]) (bits \(String(values[i].bitPattern, radix: 16))): \(fast[i].bitPattern) against \(slow[i].bitPattern)")
            break
        }
        XCTAssertEqual(slow[2].bitPattern, 0x3C00)
        XCTAssertEqual(slow[7].bitPattern, 0x7BFF)
        XCTAssertEqual(slow[8].bitPattern, 0x7C00)
    }
}
