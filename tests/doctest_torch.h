// Include first in tests that use LibTorch: LibTorch pulls in glog, whose CHECK macros would
// silently replace doctest's (a failing check would then abort instead of being reported).
#pragma once

#include <c10/util/Logging.h>
#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#undef CHECK_NOTNULL
#include <doctest/doctest.h>
