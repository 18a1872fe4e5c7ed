#ifndef CTORCH_H
#define CTORCH_H
#ifdef __cplusplus
extern "C" {
#endif
/** libtorch's version string. */
const char *at_version(void);
#ifdef __cplusplus
}
#endif
#endif
