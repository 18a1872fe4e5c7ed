#ifndef CGDCM_H
#define CGDCM_H
/*
 * C API over GDCM, in the style of tch-rs' torch_api.h: opaque handles with a matching *_free,
 * no C++ exception crosses this boundary, failures return NULL / -1 and leave a message in a
 * thread-local last error that the caller drains with gd_last_error().
 */
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/** GDCM's version string, e.g. "3.0.21" (static storage). */
const char *gd_version(void);

/** The calling thread's last error (malloc'd; free with gd_string_free), or NULL if none. Clears it. */
char *gd_last_error(void);

/** Frees a string returned by this API. */
void gd_string_free(char *s);

#ifdef __cplusplus
}
#endif
#endif
