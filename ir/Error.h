// Internal errors: a broken invariant of nyto itself (Halide's internal_assert, src/Error.h).
// A user's mistake is never reported this way; the frontend emits a Diagnostic instead.
#pragma once

#include <stdexcept>
#include <string>

namespace nyto::ir {

/// Throws std::logic_error("nyto internal error (this is a bug in nyto): " + what).
[[noreturn]] inline void internal_error(const std::string& what) {
  throw std::logic_error("nyto internal error (this is a bug in nyto): " + what);
}

}  // namespace nyto::ir

/// internal_assert: throws an internal error naming the failed condition when `cond` is false.
#define NYTO_INTERNAL_ASSERT(cond, what)                                          \
  do {                                                                            \
    if (!(cond)) ::nyto::ir::internal_error(std::string(what) + " [" #cond "]"); \
  } while (0)
