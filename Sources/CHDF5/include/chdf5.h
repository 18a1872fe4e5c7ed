#ifndef CHDF5_H
#define CHDF5_H
#include <hdf5.h>
/** Registers the Zstandard filter (HDF5 filter id 32015) in this process; returns < 0 on failure. */
int fz_register_zstd(void);
#endif
