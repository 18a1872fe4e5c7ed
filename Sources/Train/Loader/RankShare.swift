/// One rank's part of every batch in data-parallel training. The epoch's order stays the one pure function of
/// (seed, epoch) that a single process reads; it is cut into global batches of `batchSize × ranks` samples, and
/// rank r reads the r-th `batchSize` samples of each. So the ranks together read exactly the batches one process
/// would, whatever the rank count, and a global batch's gradient is the same sum.
public struct RankShare: Equatable, Sendable {
    /// This process's rank, 0 ..< ranks.
    public var rank: Int
    /// How many ranks share the batches.
    public var ranks: Int

    /// A single process reading whole batches.
    public static let whole = RankShare(rank: 0, ranks: 1)

    /// Rank `rank` of `ranks`.
    public init(rank: Int, ranks: Int) {
        precondition(ranks >= 1 && (0..<ranks).contains(rank), "rank \(rank) of \(ranks)")
        self.rank = rank
        self.ranks = ranks
    }

    /// This rank's samples of `order`, in order: `batchSize` from each complete global batch (an incomplete
    /// last global batch is dropped, as the single process drops it).
    public func share(of order: [Int], batchSize: Int) -> [Int] {
        guard ranks > 1 else { return order }
        let global = batchSize * ranks
        var mine: [Int] = []
        mine.reserveCapacity(order.count / ranks)
        for start in stride(from: 0, to: order.count - global + 1, by: global) {
            let first = start + rank * batchSize
            mine += order[first..<first + batchSize]
        }
        return mine
    }
}
