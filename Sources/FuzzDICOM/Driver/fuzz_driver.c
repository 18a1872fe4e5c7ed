// Nothing to compile: the module exists for include/fuzz_driver.h (libFuzzer's driver entry point).
#include "fuzz_driver.h"
