// Common subexpression elimination by rebuilding through the hash-consing Builder (tinygrad's
// UOp cache: identical (op, type, args, attr) nodes are one node). Passes that rewrite nodes can
// leave duplicates (x*1 and x both becoming x makes two adds identical); this merges them.
// Builder::add never merges Rand/Randn, and re-adds them with their own site index.
#include "ir/Passes.h"
#include "ir/Rebuild.h"

namespace nyto::ir {

Graph cse(const Graph& g) {
  return detail::rebuild(g, [](const Node& n, Builder& b, const Graph&) { return b.add(n); });
}

}  // namespace nyto::ir
