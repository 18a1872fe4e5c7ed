import Foundation

/// What one fusion did (its provenance), stored beside the sample so a grid can be traced to its inputs.
public struct FusionRecord: Codable, Sendable, Equatable {
    /// The study fused.
    public var studyID: Int64
    /// The parameters asked for.
    public var parameters: FusionParameters
    /// The box policy actually used (the sagittal field of view falls back to the union without sagittal series).
    public var boxPolicy: GridBoxPolicy
    /// The patient-space box the policy gave, before an isotropic grid grows it to a cube.
    public var box: PatientBox
    /// The grid the channels were resampled onto.
    public var grid: Grid
    /// Per channel, in the fixed order (T1, T2/STIR, axial T2).
    public var channels: [ChannelRecord]
    /// Series of other kinds, which were not fused.
    public var ignoredSeries: [String]
    /// How many of the 25 keypoints were placed.
    public var keypointsPlaced: Int
    /// Label coordinates whose image is not known without doubt (a series or instance not in the study, a
    /// multi-frame file without a frame, an instance number that names several files), each with its reason;
    /// no keypoint came from them.
    public var unresolvedCoordinates: [UnresolvedCoordinate]
}

/// What went into one channel of a fused grid.
public struct ChannelRecord: Codable, Sendable, Equatable {
    /// `Channels.names` entry.
    public var name: String
    /// Whether a series of this channel's kind covers any voxel of the grid (`stacks` lists those tried).
    public var present: Bool
    /// The stacks resampled into the channel.
    public var stacks: [StackRecord]
    /// Fraction of the grid's voxels some stack covers.
    public var coverage: Double
    /// Raw value mapped to 0 (the low percentile of the covered voxels; 0 for an absent channel).
    public var low: Float
    /// Raw value mapped to 1 (the high percentile of the covered voxels; 0 for an absent channel).
    public var high: Float
}

/// One stack resampled into a channel.
public struct StackRecord: Codable, Sendable, Equatable {
    /// The series the stack belongs to.
    public var seriesID: String
    /// Its number of slices.
    public var slices: Int
    /// Its median slice spacing along the normal (mm).
    public var spacing: Double
    /// Its unit normal (LPS).
    public var normal: Vec3
    /// Voxels of the grid it covers.
    public var coveredVoxels: Int
}
