#ifndef CTORCH_LOADER_H
#define CTORCH_LOADER_H
// Opens the libtorch bridge (libfuse3d_torch.so) on first use. Every ctorch.h function loads it
// implicitly (and ends the process with the loader's message if it cannot); Swift calls
// ctorch_load first so that a missing bridge becomes a thrown TorchError instead.
#ifdef __cplusplus
extern "C" {
#endif

/** The bridge library's file name. */
#define CTORCH_LIBRARY_NAME "libfuse3d_torch.so"

/** Opens the bridge once (thread-safe) and fills the function table; 1 when it is usable, 0 if not. */
int ctorch_load(void);
/** Why ctorch_load failed: where it looked and the command that builds the bridge (NULL after success). */
const char *ctorch_load_error(void);
/** The path of the bridge that was opened (NULL before a successful ctorch_load). */
const char *ctorch_library_path(void);

#ifdef __cplusplus
}
#endif
#endif
