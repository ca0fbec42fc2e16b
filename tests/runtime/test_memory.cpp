// Resident memory stays flat over many particle operations (nothing leaks per iteration).
#include "tests/doctest_torch.h"
#include <nyto/nyto.h>
#include <unistd.h>

#include <fstream>

#include "tests/runtime/models.h"

namespace {
int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}
}  // namespace

TEST_CASE("10,000 iterations of net = 0.5*net + 10 keep the resident set flat") {
  auto net = nyto::make_particle<NetImpl>();
  for (int i = 0; i < 1000; ++i) net = 0.5 * net + 10;  // warm up allocator caches
  int64_t start = resident_bytes();
  for (int i = 0; i < 10000; ++i) net = 0.5 * net + 10;
  int64_t growth = resident_bytes() - start;
#ifdef __SANITIZE_ADDRESS__
  // ASan's quarantine holds freed memory back on purpose; LeakSanitizer checks leaks at exit.
  MESSAGE("resident-set check skipped under AddressSanitizer; growth was " << growth);
#else
  // One iteration allocates well over 1 KiB (modules, tensors): a leak of any of it would add
  // over 10 MB. 1 MB leaves room for allocator noise.
  CHECK(growth < (1 << 20));
#endif
  CHECK(net->l1->weight[0][0].item<double>() == doctest::Approx(20.0));
}
