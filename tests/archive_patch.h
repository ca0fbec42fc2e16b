// Tests of file loaders: malformed LibTorch archives made in C++, by rewriting one record of a
// well-formed archive (through LibTorch's own zip reader and writer).
#pragma once

#include <caffe2/serialize/inline_container.h>

#include <fstream>
#include <stdexcept>
#include <string>

namespace nyto::test {

/// Replaces the first `from` in record `record` (e.g. "data.pkl") of the archive at `path` by
/// `to`. Throws std::logic_error when the record or the bytes are not there.
inline void patch_archive(const std::string& path, const std::string& record, const std::string& from,
                          const std::string& to) {
  std::string out;
  bool done = false;
  {
    caffe2::serialize::PyTorchStreamReader reader(path);
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* d, size_t n) {
      out.append(static_cast<const char*>(d), n);
      return n;
    });
    writer.setMinVersion(reader.version());
    for (const std::string& name : reader.getAllRecords()) {
      if (name == "version") continue;  // the writer writes its own
      auto [data, size] = reader.getRecord(name);
      std::string bytes(static_cast<const char*>(data.get()), size);
      if (name == record && !done) {
        auto at = bytes.find(from);
        if (at == std::string::npos) throw std::logic_error("patch_archive: bytes not in " + record);
        bytes.replace(at, from.size(), to);
        done = true;
      }
      writer.writeRecord(name, bytes.data(), bytes.size());
    }
    writer.writeEndOfFile();
  }
  if (!done) throw std::logic_error("patch_archive: no record " + record + " in " + path);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << out;
}

}  // namespace nyto::test
