import Foundation
import Train

/// How `fuse3d train` joins a data-parallel run when a launcher (torchrun, srun, `--nproc`) started it as one
/// of several ranks: the device from LOCAL_RANK, NCCL on CUDA when the bridge has it (else Gloo), and one line
/// per rank saying which rank of how many it is and over which backend.
enum DistributedLaunch {
    /// The ranks this process trains with (`.single` when started alone); `config.device` "cuda" becomes the
    /// local rank's GPU.
    static func join(config: inout TrainingConfig, timeout seconds: Int) throws -> TrainingRanks {
        guard let environment = try LaunchEnvironment.detect() else { return .single }
        let device = config.device.device
        config.device = config.device.onLocalRank(environment.localRank)
        let available = try ProcessGroup.availableBackends()
        let backend: ProcessGroup.Backend = device.isCUDA && available.contains(.nccl) ? .nccl : .gloo
        guard available.contains(backend) else {
            let has = available.isEmpty ? "no c10d backend" : "only " + available.map(\.rawValue).joined(separator: ", ")
            throw DistributedError("rank \(environment.rank) of \(environment.worldSize): the libtorch bridge has \(has), not "
                                   + "\(backend.rawValue): rebuild it with `make torch` (docs/own-pytorch.md, distributed training)")
        }
        let group = try ProcessGroup(environment, backend: backend, device: config.device.device, timeout: .seconds(seconds))
        print(group.summary + ", device \(config.device)")
        return TrainingRanks(group: group)
    }
}
