import Core
import XCTest

final class SplitMix64Tests: XCTestCase {
    /// The reference sequence (Vigna's splitmix64.c from seed 0), so sample orders, splits and cohorts never drift.
    func testTheSequenceIsTheReferenceOne() {
        var rng = SplitMix64(seed: 0)
        XCTAssertEqual((0..<3).map { _ in rng.next() }, [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var values = Array(0..<5)
        var shuffler = SplitMix64(seed: 7)
        shuffler.shuffle(&values)
        XCTAssertEqual(values.sorted(), Array(0..<5))
        XCTAssertNotEqual(values, Array(0..<5))
    }
}
