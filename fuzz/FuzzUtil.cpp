#include "fuzz/FuzzUtil.h"

#include <caffe2/serialize/inline_container.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <typeinfo>

namespace nyto::fuzz {

const std::string& scratch_dir() {
  // Never destroyed: the exit handler that removes the directory runs after static destructors.
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    auto* templ = new std::string(std::string(tmp && *tmp ? tmp : "/tmp") + "/nyto-fuzz-XXXXXX");
    if (!::mkdtemp(templ->data())) fail("cannot create a scratch directory in " + *templ);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return templ;
  }();
  return *dir;
}

std::string write_file(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = scratch_dir() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  if (!f.flush()) fail("cannot write " + path);
  return path;
}

std::string write_archive(const std::string& name, const uint8_t* data, size_t size) {
  if (size >= 2 && data[0] == 'P' && data[1] == 'K') return write_file(name, data, size);
  std::string path = scratch_dir() + "/" + name;
  caffe2::serialize::PyTorchStreamWriter w(path);
  size_t at = 0;
  while (at < size) {
    size_t n = data[at++];
    n = std::min(n, size - at);
    std::string record(reinterpret_cast<const char*>(data + at), n);
    at += n;
    uint32_t len = 0;
    for (int b = 0; b < 4 && at < size; ++b) len |= uint32_t(data[at++]) << (8 * b);
    size_t m = std::min<size_t>(len, size - at);
    // The writer refuses duplicate or empty names, and miniz a name that starts or ends with '/'
    // or holds '\\' or ':' (it then fails for good): the harness skips them, the loader is not
    // what refuses them.
    bool writable = !record.empty() && record.find_first_of(std::string("\0\\:", 3)) == std::string::npos &&
                    record.front() != '/' && record.back() != '/';
    if (writable && !w.getAllWrittenRecords().count(record))
      w.writeRecord(record, data + at, m);
    at += m;
  }
  w.writeEndOfFile();
  return path;
}

std::string idx_file(bool images, uint32_t n) {
  std::string s;
  auto put_be32 = [&](uint32_t v) {
    for (int b = 3; b >= 0; --b) s += char((v >> (8 * b)) & 0xff);
  };
  put_be32(images ? 2051 : 2049);
  put_be32(n);
  if (images) put_be32(28), put_be32(28);
  for (uint32_t i = 0; i < n * (images ? 784 : 1); ++i) s += char(images ? (i * 37) % 256 : i % 10);
  return s;
}

void fail(const std::string& what) {
  std::fprintf(stderr, "\n==== nyto fuzz: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void internal_error(const std::exception& e, const char* where) {
  std::string what = std::string(where) + ": an exception that is not a nyto::Error escaped (" +
                     typeid(e).name() + "): " + e.what();
  static const bool allow = [] {
    const char* v = std::getenv("NYTO_FUZZ_ALLOW_INTERNAL");
    return v && std::strcmp(v, "1") == 0;
  }();
  if (!allow) fail(what);
  static uint64_t count = 0;
  if (count++ % 1000 == 0) std::fprintf(stderr, "nyto fuzz: (allowed, %llu so far) %.300s\n",
                                        static_cast<unsigned long long>(count), what.c_str());
}

}  // namespace nyto::fuzz
