#include "llmux_kernels.h"
