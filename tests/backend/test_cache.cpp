// KernelCache: one compile per (structure, spec, backend), thread-safe, exact keys.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>
#include <vector>

#include "backend/KernelCache.h"
#include "backend/llvm/LlvmBackend.h"
#include "tests/backend/Rules.h"

using namespace nyto;

namespace {
KernelSpec pso_spec(DType dt = DType::F32) {
  return {dt, {BindKind::Swarm, BindKind::Swarm, BindKind::Swarm, BindKind::Particle}};
}
}  // namespace

TEST_CASE("cache: same rule and binding compile once; other spec/structure compile again") {
  KernelCache cache;
  auto k1 = cache.get(test::pso_graph(), pso_spec());
  auto k2 = cache.get(test::pso_graph(), pso_spec());
  CHECK((k1 == k2));
  CHECK((cache.stats().misses == 1));
  CHECK((cache.stats().hits == 1));
  auto k3 = cache.get(test::pso_graph(), pso_spec(DType::F64));
  CHECK((k3 != k1));
  KernelSpec particle_x = pso_spec();
  particle_x.kinds[0] = BindKind::Particle;
  CHECK((cache.get(test::pso_graph(), particle_x) != k1));
  // A different constant is a different kernel; different names/defaults are not.
  ir::Graph g = test::pso_graph();
  g.params[0].default_value = 0.5;
  g.inputs[0].name = "position";
  CHECK((cache.get(g, pso_spec()) == k1));
  CHECK((structural_hash(g) == structural_hash(test::pso_graph())));
  ir::Graph h;
  h.inputs = {{"x"}};
  ir::Builder b(h);
  h.outputs = {{"y", b.binary(ir::Op::Mul, b.input(0, ir::Type::Elem), b.constant(0.5)), -1}};
  ir::Graph h2 = h;
  for (auto& n : h2.nodes)
    if (n.op == ir::Op::Const) n.value = 0.25;
  CHECK((structural_hash(h) != structural_hash(h2)));
  KernelSpec s1{DType::F32, {BindKind::Particle}};
  CHECK((cache.get(h, s1) != cache.get(h2, s1)));
  CHECK((cache.stats().misses == 5));
  CHECK_THROWS_AS(cache.get(h, s1, Backend::Aten), std::invalid_argument);
  auto ki = cache.get(h, s1, Backend::Interp);  // built in
  CHECK((ki != cache.get(h, s1)));
  CHECK((ki == cache.get(h, s1, Backend::Interp)));
  cache.set_factory(Backend::Aten, [&](const ir::Graph& gg, const KernelSpec& ss) {
    return llvm_backend::compile(cache.jit(), gg, ss);  // any Kernel will do for the test
  });
  CHECK((cache.get(h, s1, Backend::Aten) != cache.get(h, s1)));
}

TEST_CASE("cache: concurrent requests for one key compile once") {
  KernelCache cache;
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<const Kernel>> got(4);
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] { got[i] = cache.get(test::pso_graph(), pso_spec()); });
  for (auto& t : threads) t.join();
  for (auto& k : got) CHECK((k == got[0]));
  CHECK((cache.stats().misses == 1));
  CHECK((cache.stats().hits == 3));
}

TEST_CASE("cache: kernels outlive the cache and its JIT owner; default cache shuts down") {
  std::shared_ptr<const Kernel> k;
  {
    KernelCache cache;
    k = cache.get(test::pso_graph(), pso_spec());
  }
  std::vector<float> x(40, 1), v(40, 0), pb(40, 2), gb(20, 3);
  KernelArgs a;
  a.members = 2;
  a.ranges = {{0, 20}};
  a.in = {x.data(), v.data(), pb.data(), gb.data()};
  a.in_stride = {20, 20, 20, 0};
  a.scalar = {0, 0, 0, 0};
  a.params = {0.7, 1.5, 1.5};
  a.out = {v.data(), x.data()};
  a.out_stride = {20, 20};
  k->run(a);
  CHECK(x[0] > 1);
  auto& c = default_cache();
  auto k2 = c.get(test::pso_graph(), pso_spec());
  shutdown_default_cache();
  k2->run(a);
  // Left alive on purpose: the atexit handler must destroy it before LLVM's statics.
  default_cache().get(test::pso_graph(), pso_spec());
}

// The persistent kernel cache (backend/llvm/DiskCache.h): a second engine (a second process) gets
// the kernel from the file the first wrote; files that cannot be trusted are compiled again.
namespace {
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static std::atomic<int> n{0};
    path = std::filesystem::temp_directory_path() /
           ("nyto_test_cache_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    std::filesystem::remove_all(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};
llvm_backend::JitOptions in_dir(const std::filesystem::path& dir) {
  llvm_backend::JitOptions o;
  o.cache_dir = dir.string();
  return o;
}
// The PSO kernel on 3 members of 50 elements: the new v and x.
std::vector<float> run_pso(const Kernel& k) {
  std::vector<float> x(150), v(150), pb(150), gb(50);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i) * 0.01f, v[i] = 0.5f - float(i % 7) * 0.1f, pb[i] = float(i % 11);
  for (size_t i = 0; i < gb.size(); ++i) gb[i] = float(i % 5);
  KernelArgs a;
  a.members = 3;
  a.ranges = {{0, 50}};
  a.in = {x.data(), v.data(), pb.data(), gb.data()};
  a.in_stride = {50, 50, 50, 0};
  a.scalar = {0, 0, 0, 0};
  a.params = {0.7, 1.5, 1.5};
  a.out = {v.data(), x.data()};
  a.out_stride = {50, 50};
  a.seed = 9;
  k.run(a);
  v.insert(v.end(), x.begin(), x.end());
  return v;
}
std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> r;
  if (std::filesystem::exists(dir))
    for (const auto& e : std::filesystem::directory_iterator(dir)) r.push_back(e.path());
  std::sort(r.begin(), r.end());
  return r;
}
}  // namespace

TEST_CASE("disk cache: a second engine loads the kernel from the file the first wrote") {
  TempDir d;
  std::vector<float> want;
  {
    llvm_backend::JitEngine e(in_dir(d.path));
    CHECK(e.cache_dir() == d.path.string());
    auto k = llvm_backend::compile(e, test::pso_graph(), pso_spec());
    CHECK_FALSE(e.last_compile_times().from_disk);
    want = run_pso(*k);
    CHECK(e.disk_cache_stats().written == 1);
    CHECK(e.disk_cache_stats().misses == 1);
    // A second copy in the same engine while the first is linked: compiled, no second file.
    auto k2 = llvm_backend::compile(e, test::pso_graph(), pso_spec());
    CHECK_FALSE(e.last_compile_times().from_disk);
    CHECK(run_pso(*k2) == want);
    CHECK(e.disk_cache_stats().written == 1);
  }
  REQUIRE(files_in(d.path).size() == 1);
  llvm_backend::JitEngine e(in_dir(d.path));
  auto k = llvm_backend::compile(e, test::pso_graph(), pso_spec());
  CHECK(e.last_compile_times().from_disk);
  CHECK(e.last_compile_times().codegen_ms == 0);
  CHECK(e.disk_cache_stats().hits == 1);
  CHECK(e.disk_cache_stats().written == 0);
  CHECK(run_pso(*k) == want);
  // Another code shape (what another CPU gets: 256-bit vectors) is another entry.
  llvm_backend::JitOptions avx2 = in_dir(d.path);
  avx2.vector_bytes = 32;
  llvm_backend::JitEngine e2(avx2);
  auto k3 = llvm_backend::compile(e2, test::pso_graph(), pso_spec());
  CHECK_FALSE(e2.last_compile_times().from_disk);
  CHECK(run_pso(*k3) == want);
  CHECK(files_in(d.path).size() == 2);
  // No cache: nothing read or written.
  llvm_backend::JitOptions none;
  none.cache_dir = "";
  llvm_backend::JitEngine e3(none);
  CHECK(e3.cache_dir().empty());
  auto k4 = llvm_backend::compile(e3, test::pso_graph(), pso_spec());
  CHECK_FALSE(e3.last_compile_times().from_disk);
  CHECK(e3.disk_cache_stats().misses == 0);
}

TEST_CASE("disk cache: corrupt, truncated or foreign files are compiled again and rewritten") {
  TempDir d;
  std::vector<float> want;
  {
    llvm_backend::JitEngine e(in_dir(d.path));
    want = run_pso(*llvm_backend::compile(e, test::pso_graph(), pso_spec()));
  }
  REQUIRE(files_in(d.path).size() == 1);
  const std::filesystem::path file = files_in(d.path)[0];
  std::string good;
  {
    std::ifstream in(file, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  REQUIRE(good.size() > 200);
  auto damaged = [&](const std::string& what, const std::string& bytes) {
    CAPTURE(what);
    {
      std::ofstream out(file, std::ios::binary | std::ios::trunc);
      out << bytes;
    }
    llvm_backend::JitEngine e(in_dir(d.path));
    auto k = llvm_backend::compile(e, test::pso_graph(), pso_spec());
    CHECK_FALSE(e.last_compile_times().from_disk);
    CHECK(e.disk_cache_stats().rejected == 1);
    CHECK(e.disk_cache_stats().written == 1);
    CHECK(run_pso(*k) == want);
    std::ifstream in(file, std::ios::binary);
    CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == good);  // rewritten whole
  };
  std::string flipped = good;
  flipped[flipped.size() - 100] ^= 0x40;  // in the machine code: the checksum fails
  damaged("a flipped bit in the object", flipped);
  damaged("truncated", good.substr(0, good.size() / 2));
  damaged("empty", "");
  std::string foreign = good;
  const size_t at = foreign.find("llvm ");
  REQUIRE(at != std::string::npos);
  foreign[at + 5] = foreign[at + 5] == '9' ? '8' : '9';  // another LLVM version's key, same file name
  damaged("another key", foreign);
}

TEST_CASE("disk cache: engines writing one entry at once leave one whole file; an unwritable directory only costs the cache") {
  TempDir d;
  std::vector<float> want;
  {
    llvm_backend::JitOptions none;
    none.cache_dir = "";
    llvm_backend::JitEngine e(none);
    want = run_pso(*llvm_backend::compile(e, test::pso_graph(), pso_spec()));
  }
  for (int round = 0; round < 3; ++round) {
    std::filesystem::remove_all(d.path);
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        llvm_backend::JitEngine e(in_dir(d.path));
        if (run_pso(*llvm_backend::compile(e, test::pso_graph(), pso_spec())) == want) ++ok;
      });
    for (auto& t : threads) t.join();
    CHECK(ok == 4);
    CHECK(files_in(d.path).size() == 1);  // no temporary left behind
    llvm_backend::JitEngine e(in_dir(d.path));
    auto k = llvm_backend::compile(e, test::pso_graph(), pso_spec());
    CHECK(e.last_compile_times().from_disk);
    CHECK(run_pso(*k) == want);
  }
  // The cache directory is a file: nothing can be written, the kernel still runs.
  std::filesystem::remove_all(d.path);
  { std::ofstream(d.path) << "not a directory"; }
  llvm_backend::JitEngine e(in_dir(d.path));
  auto k = llvm_backend::compile(e, test::pso_graph(), pso_spec());
  CHECK(run_pso(*k) == want);
  CHECK(e.disk_cache_stats().write_failures == 1);
  std::filesystem::remove(d.path);
}

TEST_CASE("disk cache: the default directory follows NYTO_KERNEL_CACHE_DIR, NYTO_CACHE_DIR, XDG_CACHE_HOME, HOME") {
  const char* names[] = {"NYTO_KERNEL_CACHE_DIR", "NYTO_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  std::vector<std::optional<std::string>> saved;
  for (const char* n : names) {
    const char* v = std::getenv(n);
    saved.push_back(v ? std::optional<std::string>(v) : std::nullopt);
  }
  ::setenv("NYTO_KERNEL_CACHE_DIR", "/tmp/k", 1);
  ::setenv("NYTO_CACHE_DIR", "/tmp/a", 1);
  ::setenv("XDG_CACHE_HOME", "/tmp/x", 1);
  ::setenv("HOME", "/tmp/h", 1);
  CHECK(llvm_backend::default_cache_dir() == "/tmp/k");
  ::setenv("NYTO_KERNEL_CACHE_DIR", "", 1);
  CHECK(llvm_backend::default_cache_dir().empty());  // set and empty: no cache
  ::unsetenv("NYTO_KERNEL_CACHE_DIR");
  CHECK(llvm_backend::default_cache_dir() == "/tmp/a/kernels");
  ::unsetenv("NYTO_CACHE_DIR");
  CHECK(llvm_backend::default_cache_dir() == "/tmp/x/nyto/kernels");
  ::unsetenv("XDG_CACHE_HOME");
  CHECK(llvm_backend::default_cache_dir() == "/tmp/h/.cache/nyto/kernels");
  ::unsetenv("HOME");
  CHECK(llvm_backend::default_cache_dir().empty());
  for (size_t i = 0; i < saved.size(); ++i) {
    if (saved[i]) ::setenv(names[i], saved[i]->c_str(), 1);
    else ::unsetenv(names[i]);
  }
}
