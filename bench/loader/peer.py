"""The loader's Python peers over the same shard folder (prints samples/s):
  peer.py single DIR EPOCHS                     h5py + hdf5plugin, one sample at a time, shuffled, one process
  peer.py dataloader DIR EPOCHS WORKERS BATCH   torch.utils.data.DataLoader over an h5py Dataset
                                                (shuffle, WORKERS worker processes, batches of BATCH)
Both deliver what the loader delivers: volumes, labels, present flags and keypoints per sample.
"""
import glob
import os
import sys
import time

import h5py
import hdf5plugin  # noqa: F401  (registers the zstd filter)
import numpy as np
import torch


class ShardSet(torch.utils.data.Dataset):
    """Every sample of every shard-*.h5; files are opened lazily in each worker, as h5py requires."""

    def __init__(self, folder):
        self.paths = sorted(glob.glob(os.path.join(folder, "shard-*.h5")))
        self.index = []
        for k, path in enumerate(self.paths):
            with h5py.File(path, "r") as f:
                self.index += [(k, i) for i in range(f["study_id"].shape[0])]
        self.files = {}

    def __len__(self):
        return len(self.index)

    def __getitem__(self, n):
        k, i = self.index[n]
        if k not in self.files:
            self.files[k] = h5py.File(self.paths[k], "r")
        f = self.files[k]
        return (torch.from_numpy(f["volumes"][i]), torch.from_numpy(f["labels"][i].astype(np.int64)),
                torch.from_numpy(f["present"][i].astype(np.float32)), torch.from_numpy(f["keypoints"][i]))


def single(folder, epochs):
    data = ShardSet(folder)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(epochs):
        for n in rng.permutation(len(data)):
            data[n]
    return epochs * len(data) / (time.perf_counter() - start)


def dataloader(folder, epochs, workers, batch):
    data = ShardSet(folder)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers)
    start = time.perf_counter()
    samples = 0
    for _ in range(epochs):
        for volumes, *_ in loader:
            samples += volumes.shape[0]
    return samples / (time.perf_counter() - start)


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, folder, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rate = single(folder, epochs) if mode == "single" else dataloader(folder, epochs, int(sys.argv[4]), int(sys.argv[5]))
    print(f"samples/s {rate:.2f}")
