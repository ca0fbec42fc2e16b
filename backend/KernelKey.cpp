// The exact key of a kernel (backend/Kernel.h): what the kernel caches, in memory
// (backend/KernelCache.h) and on disk (backend/llvm/DiskCache.h), are keyed by.
#include <cstring>
#include <string>

#include "backend/Kernel.h"

namespace nyto {

namespace {

template <class T>
void put(std::string& s, const T& v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

// Exact structural key: equal keys <=> equal generated code, so a hash collision can never
// hand out the wrong kernel (the map compares the whole key).
std::string structural_key(const ir::Graph& g) {
  std::string s;
  s.reserve(g.nodes.size() * 24 + 64);
  put(s, uint64_t(g.nodes.size()));
  for (const ir::Node& n : g.nodes) {
    put(s, uint8_t(n.op));
    put(s, n.type.bits());
    for (ir::NodeId a : n.args) put(s, a);
    uint64_t bits;
    std::memcpy(&bits, &n.value, sizeof bits);
    put(s, bits);
    put(s, n.index);
  }
  put(s, uint64_t(g.inputs.size()));
  put(s, uint64_t(g.params.size()));
  put(s, uint64_t(g.outputs.size()));
  for (const ir::Output& o : g.outputs) {
    put(s, o.node);
    put(s, o.target);
  }
  put(s, g.rand_sites);
  return s;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

uint64_t structural_hash(const ir::Graph& graph) { return fnv1a(structural_key(graph)); }

std::string kernel_key(const ir::Graph& graph, const KernelSpec& spec) {
  std::string key = structural_key(graph);
  put(key, uint8_t(spec.dtype));
  put(key, uint64_t(spec.kinds.size()));
  for (BindKind k : spec.kinds) put(key, uint8_t(k));
  put(key, uint64_t(spec.values.size()));
  for (bool v : spec.values) put(key, uint8_t(v));
  put(key, uint64_t(spec.chunk.size()));
  for (ChunkReduce c : spec.chunk) put(key, uint8_t(c));
  return key;
}

}  // namespace nyto
