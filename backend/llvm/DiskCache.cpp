// The persistent kernel cache (backend/llvm/DiskCache.h): files of machine code keyed by kernel.
#include <fcntl.h>
#include <unistd.h>

#include <llvm/IR/Module.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/xxhash.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "backend/llvm/Internal.h"

namespace nyto::llvm_backend {

namespace {

// A file: magic, key length (u64), key, object length (u64), xxHash64 of the object (u64), object.
constexpr char kMagic[8] = {'N', 'Y', 'T', 'O', 'K', 'C', '0', '1'};

void put_u64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), sizeof v); }

bool read_u64(const char*& p, const char* end, uint64_t& v) {
  if (end - p < 8) return false;
  std::memcpy(&v, p, 8);
  p += 8;
  return true;
}

}  // namespace

std::string default_cache_dir() {
  if (const char* d = std::getenv("NYTO_KERNEL_CACHE_DIR")) return d;
  if (const char* d = std::getenv("NYTO_CACHE_DIR"); d && *d) return std::string(d) + "/kernels";
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/nyto/kernels";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/nyto/kernels";
  return {};
}

std::string DiskCache::stem(const std::string& key) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(llvm::xxHash64(key)));
  return b;
}

std::unique_ptr<llvm::MemoryBuffer> DiskCache::load(const std::string& key) {
  const std::string path = path_of(key);
  auto file = llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  std::lock_guard<std::mutex> lock(mu_);
  if (!file) {
    ++stats_.misses;
    return nullptr;
  }
  const char* p = (*file)->getBufferStart();
  const char* end = (*file)->getBufferEnd();
  uint64_t key_len = 0, obj_len = 0, sum = 0;
  bool ok = end - p >= 8 && std::memcmp(p, kMagic, 8) == 0;
  if (ok) p += 8;
  ok = ok && read_u64(p, end, key_len) && uint64_t(end - p) >= key_len && key_len == key.size() &&
       std::memcmp(p, key.data(), key.size()) == 0;
  if (ok) p += key_len;
  ok = ok && read_u64(p, end, obj_len) && read_u64(p, end, sum) && uint64_t(end - p) == obj_len &&
       llvm::xxHash64(llvm::StringRef(p, obj_len)) == sum;
  if (!ok) {
    ++stats_.rejected;
    ++stats_.misses;
    return nullptr;
  }
  ++stats_.hits;
  return llvm::MemoryBuffer::getMemBufferCopy(llvm::StringRef(p, obj_len), path);
}

void DiskCache::store(const std::string& key, llvm::MemoryBufferRef object) {
  std::string data(kMagic, 8);
  put_u64(data, key.size());
  data += key;
  put_u64(data, object.getBufferSize());
  put_u64(data, llvm::xxHash64(object.getBuffer()));
  data.append(object.getBufferStart(), object.getBufferSize());
  // A name no other writer uses (process, thread, count), then rename(): readers see the old file
  // or the new one, whole; of two writers of one entry, the last rename wins.
  static std::atomic<uint64_t> count{0};
  const std::string path = path_of(key);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id())) + "." +
                          std::to_string(count++);
  bool ok = false;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (!ec) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      size_t done = 0;
      while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += size_t(n);
      }
      ok = done == data.size() && ::fsync(fd) == 0;
      ok = ::close(fd) == 0 && ok;
      ok = ok && std::rename(tmp.c_str(), path.c_str()) == 0;
      if (!ok) std::remove(tmp.c_str());
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++(ok ? stats_.written : stats_.write_failures);
}

DiskCacheStats DiskCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

// notifyObjectCompiled is in JitEngine.cpp, beside the keys it recognizes.

std::unique_ptr<llvm::MemoryBuffer> DiskCache::getObject(const llvm::Module*) {
  // The engine looks entries up itself before it builds a module (DiskCache::load): a module
  // reaches the compiler only when its entry was missing or not trusted, so compile it.
  return nullptr;
}

}  // namespace nyto::llvm_backend
