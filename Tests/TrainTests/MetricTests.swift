import Core
import Foundation
import TestSupport
import XCTest
@testable import Train

final class MetricTests: XCTestCase {
    /// Random predictions for `n` studies, about a fifth of the labels missing (a few studies without any spinal label).
    private func randomPredictions(_ n: Int, seed: UInt64) -> StudyPredictions {
        var rng = SplitMix64(seed: seed)
        var probs: [Double] = [], labels: [Int8] = []
        for s in 0..<n {
            for column in 0..<25 {
                let raw = (0..<3).map { _ in 0.02 + rng.nextUnit() }
                let total = raw.reduce(0, +)
                probs += raw.map { $0 / total }
                let u = rng.nextUnit()
                let missing = u < 0.2 || (s % 7 == 3 && column < 5)
                labels.append(missing ? -1 : Int8(rng.next() % 3))
            }
        }
        return StudyPredictions(studyIDs: (0..<n).map { Int64(1000 + $0) }, probabilities: probs, labels: labels)
    }

    /// Kaggle's scoring with scikit-learn's `log_loss` and sample weights, on the rows the JSON holds.
    private static let kaggle = """
    import json, sys
    import numpy as np
    from sklearn.metrics import log_loss
    d = json.load(open(sys.argv[1]))
    P = np.array(d["probs"]).reshape(-1, 25, 3)
    Y = np.array(d["labels"]).reshape(-1, 25)
    W = np.array([1.0, 2.0, 4.0])
    groups = {"spinal": [0], "foraminal": [1, 2], "subarticular": [3, 4]}
    out = {}
    for name, conditions in groups.items():
        cols = [c * 5 + l for c in conditions for l in range(5)]
        y, p = Y[:, cols].reshape(-1), P[:, cols, :].reshape(-1, 3)
        keep = y >= 0
        out[name] = log_loss(y[keep], p[keep], labels=[0, 1, 2], sample_weight=W[y[keep]])
    ys, ws, ps = [], [], []
    for s in range(len(Y)):
        y = Y[s, :5]
        keep = y >= 0
        if not keep.any():
            continue
        ys.append(int((y[keep] == 2).any())); ws.append(W[y[keep]].max()); ps.append(P[s, :5, 2][keep].max())
    out["any_severe_spinal"] = log_loss(ys, ps, labels=[0, 1], sample_weight=ws)
    out["score"] = float(np.mean([out[k] for k in ["spinal", "foraminal", "subarticular", "any_severe_spinal"]]))
    col = []
    for c in range(25):
        y = Y[:, c]; keep = y >= 0
        col.append(log_loss(y[keep], P[keep, c, :], labels=[0, 1, 2], sample_weight=W[y[keep]]))
    out["columns"] = col
    print(json.dumps(out))
    """

    func testScoreMatchesScikitLearnLogLossWithSampleWeights() throws {
        let predictions = randomPredictions(40, seed: 7)
        let file = try Fixtures.scratch().appendingPathComponent("predictions.json")
        let payload: [String: Any] = ["probs": predictions.probabilities, "labels": predictions.labels.map(Int.init)]
        try JSONSerialization.data(withJSONObject: payload).write(to: file)
        let r = try Fixtures.python(Self.kaggle, [file.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let peer = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let score = RSNAScore(predictions)
        XCTAssertEqual(score.spinal, try XCTUnwrap(peer["spinal"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(score.foraminal, try XCTUnwrap(peer["foraminal"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(score.subarticular, try XCTUnwrap(peer["subarticular"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(score.anySevereSpinal, try XCTUnwrap(peer["any_severe_spinal"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(score.score, try XCTUnwrap(peer["score"] as? Double), accuracy: 1e-12)
        let columns = try XCTUnwrap(peer["columns"] as? [Double])
        for c in 0..<25 { XCTAssertEqual(score.columnLosses[c], columns[c], accuracy: 1e-12, RSNA.labelColumns[c]) }
        XCTAssertEqual(score.labelledRows, predictions.labels.filter { $0 >= 0 }.count)
        // A random guess is worse than uniform (ln 3 per row) only by chance; it is nowhere near zero.
        XCTAssertGreaterThan(score.score, 0.5)
    }

    func testPerfectPredictionsScoreNearZeroAndFillTheConfusionDiagonal() {
        var p = randomPredictions(10, seed: 3)
        for s in 0..<p.count {
            for c in 0..<25 {
                let y = max(0, Int(p.labels[s * 25 + c]))
                for k in 0..<3 { p.probabilities[(s * 25 + c) * 3 + k] = k == y ? 1 : 0 }
            }
        }
        let score = RSNAScore(p)
        XCTAssertLessThan(score.score, 1e-12)
        let diagonal = score.confusion.reduce(0) { $0 + $1[0][0] + $1[1][1] + $1[2][2] }
        XCTAssertEqual(diagonal, score.labelledRows)
    }

    func testPriorIsWeightedClassCountsAndBeatsFrequenciesAndUniform() {
        // Column 0: 6 normal, 3 moderate, 1 severe, plus one of each → weighted 7, 8, 8 → 7/23, 8/23, 8/23; no label → 1/7, 2/7, 4/7.
        var labels = [Int8](repeating: -1, count: 10 * 25)
        let column0: [Int8] = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2]
        for (s, y) in column0.enumerated() { labels[s * 25] = y }
        let prior = RSNAScore.prior(labels: labels)
        XCTAssertEqual(Array(prior[0..<3]), [7.0 / 23, 8.0 / 23, 8.0 / 23])
        XCTAssertEqual(Array(prior[3..<6]), [1.0 / 7, 2.0 / 7, 4.0 / 7])

        // On a skewed cohort the weighted prior beats both plain frequencies and uniform.
        var rng = SplitMix64(seed: 11)
        let skewed: [Int8] = (0..<(200 * 25)).map { _ in
            let u = rng.nextUnit()
            return u < 0.75 ? 0 : (u < 0.93 ? 1 : 2)
        }
        let blank = StudyPredictions(studyIDs: (0..<200).map { Int64($0) }, probabilities: [Double](repeating: 0, count: 200 * 75), labels: skewed)
        let weighted = RSNAScore(blank.replacing(with: RSNAScore.prior(labels: skewed))).score
        var frequencies = [Double](repeating: 0, count: 75)
        for (i, y) in skewed.enumerated() { frequencies[(i % 25) * 3 + Int(y)] += 1.0 / 200 }
        let plain = RSNAScore(blank.replacing(with: frequencies)).score
        let uniform = RSNAScore(blank.replacing(with: [Double](repeating: 1.0 / 3, count: 75))).score
        XCTAssertLessThan(weighted, uniform)
        XCTAssertLessThan(uniform, plain)
    }
}
