// The bandwidth ceiling of a PSO step: the same 4 reads and 2 writes per element, no randomness.
// Built with -march=native -O3 (bench/CMakeLists.txt) so it uses the same vector ISA as the JIT.
#include <ATen/Parallel.h>

#include <cstdint>

namespace nyto::bench {

void stream6(float* x, float* v, const float* pbest, const float* gbest, int64_t members, int64_t n,
             float w, float c1, float c2) {
  const int64_t chunk = 32768;
  const int64_t per_member = (n + chunk - 1) / chunk;
  at::parallel_for(0, members * per_member, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t it = lo; it < hi; ++it) {
      int64_t m = it / per_member, b = (it % per_member) * chunk, e = b + chunk < n ? b + chunk : n;
      float* __restrict xm = x + m * n;
      float* __restrict vm = v + m * n;
      const float* __restrict pm = pbest + m * n;
      const float* __restrict gm = gbest;
      const float wl = w, c1l = c1, c2l = c2;  // locals: the lambda captures by reference
      for (int64_t i = b; i < e; ++i) {
        float xi = xm[i];
        float vi = wl * vm[i] + c1l * (pm[i] - xi) + c2l * (gm[i] - xi);
        vm[i] = vi;
        xm[i] = xi + vi;
      }
    }
  });
}

}  // namespace nyto::bench
