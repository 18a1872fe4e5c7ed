#ifndef FUSE3D_FUZZ_DRIVER_H
#define FUSE3D_FUZZ_DRIVER_H
/*
 * libFuzzer's driver entry point (compiler-rt's libclang_rt.fuzzer, linked by -sanitize=fuzzer). SwiftPM links an
 * executable target's own main under the name <Target>_main, aliased to `main`, so libFuzzer's main() is never
 * pulled in: FuzzDICOM's main hands over to the driver through this call instead.
 */
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#ifdef __cplusplus
}
#endif
#endif
