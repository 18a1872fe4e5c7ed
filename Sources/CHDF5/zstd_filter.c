#include "chdf5.h"
int fz_register_zstd(void) { return -1; }
