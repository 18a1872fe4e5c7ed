#include "ctorch.h"
#include <torch/version.h>
extern "C" const char *at_version(void) { return TORCH_VERSION; }
