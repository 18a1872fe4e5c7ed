import Foundation
import Core
import Synchronization
import XCTest

final class StudyParallelismTests: XCTestCase {
    /// A worker per core (or more) keeps each study's loops on its thread; fewer workers spread them; one worker
    /// always spreads. Every index is visited once either way.
    func testSerialOnlyWhenTheWorkersFillTheCores() {
        defer { StudyParallelism.configure(workers: 1) }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        StudyParallelism.configure(workers: 1)
        XCTAssertFalse(StudyParallelism.isSerial)
        StudyParallelism.configure(workers: max(2, cores))
        XCTAssertTrue(StudyParallelism.isSerial)
        if cores > 2 {
            StudyParallelism.configure(workers: 2)
            XCTAssertFalse(StudyParallelism.isSerial)
        }
        for workers in [1, max(2, cores)] {
            StudyParallelism.configure(workers: workers)
            let visits = Mutex([Int](repeating: 0, count: 100))
            StudyParallelism.forEach(100) { i in visits.withLock { $0[i] += 1 } }
            XCTAssertEqual(visits.withLock { $0 }, [Int](repeating: 1, count: 100), "workers \(workers)")
        }
    }

    /// When workers run out of studies and stop, fewer hold studies than there are cores: the studies still running
    /// spread their loops again.
    func testStoppedWorkersLetTheLastStudiesSpread() {
        defer { StudyParallelism.configure(workers: 1) }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        StudyParallelism.configure(workers: max(2, cores))
        XCTAssertTrue(StudyParallelism.isSerial)
        for _ in 0..<(max(2, cores) - 1) { StudyParallelism.workerFinished() }
        XCTAssertFalse(StudyParallelism.isSerial)
        StudyParallelism.workerFinished()
        XCTAssertFalse(StudyParallelism.isSerial)
    }
}
