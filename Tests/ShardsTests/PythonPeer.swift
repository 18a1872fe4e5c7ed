/// Python (h5py + hdf5plugin, the project's .venv) sides of the interoperability tests; both use
/// SampleFactory's closed-form voxels, so each side checks the other's exact values.
enum PythonPeer {
    /// Shared by both snippets: the sample of `seed` as numpy arrays.
    private static let common = """
    import json, sys
    import h5py, hdf5plugin, numpy as np
    D, H, W = 4, 6, 5
    def volume(seed):
        c, d, h, w = np.meshgrid(np.arange(3), np.arange(D), np.arange(H), np.arange(W), indexing="ij")
        return (((seed + 7 * c + 5 * d + 3 * h + w) % 1024) / 1024).astype(np.float16)
    def labels(seed):
        return ((np.arange(25) + seed) % 4 - 1).astype(np.int8)

    """

    /// argv: shard path. Prints a JSON description of the shard and whether every volume equals
    /// the closed form (exit 1 if one does not).
    static let readShard = common + """
    f = h5py.File(sys.argv[1], "r")
    v = f["volumes"]
    plist = v.id.get_create_plist()
    filters = [[int(plist.get_filter(i)[0]), [int(x) for x in plist.get_filter(i)[2]]] for i in range(plist.get_nfilters())]
    ids = f["study_id"][:]
    for i, sid in enumerate(ids):
        seed = int(sid) - 1000000000
        assert np.array_equal(v[i], volume(seed)), f"volume {i} differs"
        assert np.array_equal(f["labels"][i], labels(seed)), f"labels {i} differ"
    kp = f["keypoints"][1]
    print(json.dumps({
        "dtype": str(v.dtype), "shape": list(v.shape), "chunks": list(v.chunks), "filters": filters,
        "schema_version": int(f.attrs["schema_version"]),
        "channels": [str(s) for s in f.attrs["channels"]],
        "label_columns": [str(s) for s in f.attrs["label_columns"]],
        "parameters": json.loads(f.attrs["parameters"]),
        "study_id": [int(x) for x in ids],
        "labels_dtype": str(f["labels"].dtype), "present": f["present"][:].tolist(),
        "affine_1": f["affine"][1].tolist(), "norm_1": f["norm"][1].tolist(),
        "keypoints_1_nan": [bool(x) for x in np.isnan(kp[1])], "keypoints_1_last": float(kp[24, 2]),
        "voxel_1_2_3_5_4": float(v[1, 2, 3, 5, 4]),
    }, sort_keys=True))
    """

    /// argv: shard path, schema_version, variant: "zstd" (the schema), "zstd-sparse" (the last sample's
    /// channel 2 chunk never written) or "gzip" (other filters, same sparse chunk). Writes three
    /// samples (seeds 10, 11, 12).
    static let writeShard = common + """
    seeds = [10, 11, 12]
    conditions = ["spinal_canal_stenosis", "left_neural_foraminal_narrowing", "right_neural_foraminal_narrowing",
                  "left_subarticular_stenosis", "right_subarticular_stenosis"]
    columns = [f"{c}_{l}" for c in conditions for l in ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"]]
    with h5py.File(sys.argv[1], "w") as f:
        f.attrs["schema_version"] = np.int64(int(sys.argv[2]))
        f.attrs["channels"] = ["sagittal_t1", "sagittal_t2_stir", "axial_t2"]
        f.attrs["label_columns"] = columns
        f.attrs["parameters"] = json.dumps({"writer": "h5py"})
        filters = {"compression": "gzip"} if sys.argv[3] == "gzip" else hdf5plugin.Zstd(clevel=5)
        v = f.create_dataset("volumes", shape=(3, 3, D, H, W), dtype=np.float16, maxshape=(None, 3, D, H, W),
                             chunks=(1, 1, D, H, W), shuffle=True, **filters)
        for i, s in enumerate(seeds):
            for c in range(3 if sys.argv[3] == "zstd" or i < 2 else 2):
                v[i, c] = volume(s)[c]
        f["study_id"] = np.array([1000000000 + s for s in seeds], dtype=np.int64)
        f["labels"] = np.stack([labels(s) for s in seeds])
        f["present"] = np.array([[1, 1, 0]] * 3, dtype=np.uint8)
        f["affine"] = np.stack([np.eye(4) * (s + 1) for s in seeds]).astype(np.float64)
        kp = np.full((3, 25, 3), np.nan, dtype=np.float32)
        kp[:, 0] = [[s, 2 * s, 0.5] for s in seeds]
        f["keypoints"] = kp
        f["norm"] = np.array([[[0, 1], [2, 3], [4, 5]]] * 3, dtype=np.float32)
    """
}
