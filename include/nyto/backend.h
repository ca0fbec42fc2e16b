// Which backend runs a compiled rule.
#pragma once

#include <cstdint>

namespace nyto {

/// llvm: the fused, vectorized, threaded JIT loop (float32/float64 on the CPU); interp: the
/// reference interpreter, one element at a time (the oracle of the tests); aten: one LibTorch
/// operation per IR node, for any dtype and device. A rule run with llvm or interp on a storage
/// group they do not take (another dtype or device) runs that group with aten.
enum class Backend : uint8_t { Llvm, Interp, Aten };

}  // namespace nyto
