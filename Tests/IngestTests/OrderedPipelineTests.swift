import Foundation
@testable import Ingest
import XCTest

/// The ingest's worker pool: results reach the writer in item order whatever the workers' speed, and
/// no worker runs further ahead of the writer than the window allows.
final class OrderedPipelineTests: XCTestCase {
    // Sendable by hand: written under `lock`; `maxAhead` is read once the pipeline's threads are done.
    final class Counter: @unchecked Sendable {
        let lock = NSLock()
        var consumed = 0
        var maxAhead = 0
        func started(_ i: Int) {
            lock.lock(); defer { lock.unlock() }
            maxAhead = max(maxAhead, i - consumed)
        }
    }

    func testResultsArriveInOrderWithinTheWindow() throws {
        let counter = Counter()
        var order: [Int] = []
        try OrderedPipeline.run(count: 60, workers: 4, window: 5, work: { i in
            counter.started(i)
            usleep(UInt32((i * 7919) % 5) * 300)
            return i * i
        }) { i, value in
            XCTAssertEqual(value, i * i)
            order.append(i)
            counter.lock.lock(); counter.consumed = i + 1; counter.lock.unlock()
        }
        XCTAssertEqual(order, Array(0..<60))
        XCTAssertLessThanOrEqual(counter.maxAhead, 5)
    }

    func testAWriterErrorStopsTheWorkersAndIsRethrown() {
        struct Full: Error {}
        let counter = Counter()
        XCTAssertThrowsError(try OrderedPipeline.run(count: 1000, workers: 3, window: 4, work: { i in counter.started(i); return i }) { i, _ in
            if i == 10 { throw Full() }
        }) { XCTAssertTrue($0 is Full) }
        XCTAssertLessThan(counter.maxAhead, 20)
    }
}
