#include "cgdcm.h"
#include <gdcmVersion.h>

extern "C" const char *gd_version(void) { return gdcm::Version::GetVersion(); }
