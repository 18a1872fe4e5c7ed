#ifndef CGDCM_H
#define CGDCM_H
/* C API over GDCM (see gdcm_shim.cpp). */
#ifdef __cplusplus
extern "C" {
#endif
/** GDCM's version string, e.g. "3.0.21". */
const char *gd_version(void);
#ifdef __cplusplus
}
#endif
#endif
