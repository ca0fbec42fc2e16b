// nyto IR -> LLVM IR for one kernel function.
//
// Shape of the generated function (explicit vector IR, so vectorization never depends on the loop
// vectorizer's cost model or on runtime alias checks; the kernel ABI allows an output to alias an
// input only at the same address, and every vector iteration loads all its inputs before it stores):
//
//   void k(const FlatArgs* a, i64 member, i64 begin, i64 end, i64 slot)
//   entry:  load row pointers, params, scalars; compute every uniform (Scalar) node once, in double
//   vloop:  for i in [begin, vend) step W: W-wide loads, the Elem nodes, W-wide stores
//   tail:   for i in [vend, end): the same body with scalars (or one lane-masked vector iteration)
//
// With draws, the loop steps by whole blocks of B = 16 S elements (80 float32, 32 float64), the
// lane-major layout of backend/Random.h: each block's 16 Philox calls per site are done once and
// slot j of them is 16 consecutive elements, so a block is B / 16 bodies of 16 lanes whose draws
// need no shuffle across lanes. A second-tier kernel unrolls the block (its draws in registers)
// and runs both ends as one lane-masked block emitted once (emit_block_edges); a kernel built for
// compile speed (the first tier, large kernels) runs one loop over 16-lane parts, making a
// block's draws into stack buffers at its first part (emit_part_loop). In the JIT's first tier the
// Philox words of every rand() / randn() site come from one call per block of nyto_philox_words
// (Philox.h, precompiled), so LLVM compiles the rule's arithmetic and not the ten rounds per site.
//
// A kernel with chunk outputs (KernelSpec::chunk: the arguments of the parameter-axis driver's
// tsum/psum, tmin/pmin, tmax/pmax) stores no value of them: it walks [begin, end) in 1024-element
// chunks (ir::kParamChunk) and keeps one accumulator of 32 lanes (ir::kSumLanes) per such output,
// a phi through the loops. A sum is done the way the driver sums a stored chunk (chunk_sum,
// backend/ParamAxis.cpp):
//
//   chunk:  for cs in [begin, end) step 1024, slot, slot + 1, ...: acc = -0 in all 32 lanes
//     vloop:  for i in [cs, vend) step W: the body; acc += fpext(value) (element i into lane
//             (i - cs) mod 32)
//     tail:   the rest of the chunk (a masked-off lane adds -0, and x + -0 is x, bit for bit)
//     done:   acc folded in halves (lane j += lane j + w, w = 16, 8, 4, 2, 1); out[o][slot] = lane 0
//
// Each lane gets the chunk's elements of its residue in element order, by the same fpext and
// adds (no fast-math flag: nothing is reassociated), then the same fold: the driver's bits.
// W is a multiple of 32 (chunk_width): a vector iteration starts 32k elements into the chunk,
// so its lane l is accumulator lane l mod 32, its W/32 rows added in element order; a scalar
// iteration (the tail without masking) adds into lane (i - cs) mod 32 alone. A minimum or
// maximum is the same loop in the dtype, ir::ieee_minimum/maximum (as Op::Min/Max) from +inf /
// -inf, widened after the fold: the driver's value whatever the order (both are the true
// minimum with -0 below +0, NaN if any element is; only which NaN, when a chunk holds NaNs of
// different bits, may differ).
//
// Internal helpers, emitted once per module and never inlined, keep the body's size (and the
// time LLVM takes on it) linear in the rule: nyto.<fn>.<type> does a vector's lanes of one SLEEF
// function; in a large kernel (kInlineSites) nyto.draw.W.K does the Philox rounds and the draws
// of one random site.
//
// Numerics (ir/IR.h): uniform nodes in double, Elem nodes in the dtype, fptrunc (round to nearest)
// where a double meets the dtype. No fast-math flags anywhere, so LLVM neither contracts to FMA
// nor reassociates: + - * / sqrt floor ceil abs min max neg are bit-identical to the interpreter.
#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <map>
#include <stdexcept>

#include "backend/Random.h"
#include "backend/llvm/Internal.h"
#include "backend/llvm/LlvmBackend.h"
#include "backend/llvm/Philox.h"
#include "backend/llvm/Sleef.h"
#include "ir/ParamAxis.h"
#include "ir/Passes.h"

namespace nyto::llvm_backend {

using ir::Op;
using ir::NodeId;

[[noreturn]] void internal_error(const std::string& what) {
  throw std::logic_error("nyto internal error (this is a bug in nyto): " + what);
}

ir::Graph specialize(const ir::Graph& g, const KernelSpec& spec) {
  ir::Graph typed = ir::specialize_inputs(g, bind_types(spec.kinds));
  ir::verify(typed);
  return typed;
}

int chunk_width(int width) { return width <= 1 ? 1 : std::max(width, ir::kSumLanes); }

void check_graph(const ir::Graph& g, const KernelSpec& spec) {
  ir::verify(g);
  if (spec.kinds.size() != g.inputs.size())
    internal_error("KernelSpec has " + std::to_string(spec.kinds.size()) + " bind kinds for " +
                   std::to_string(g.inputs.size()) + " graph inputs");
  if (spec.chunk.size() > g.outputs.size()) internal_error("KernelSpec::chunk longer than the outputs");
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    int arity = ir::op_arity(n.op);
    for (int a = 0; a < arity; ++a)
      if (n.args[a] < 0 || size_t(n.args[a]) >= i) internal_error("IR node argument not topological");
    if (n.op == Op::Input && (n.index < 0 || size_t(n.index) >= g.inputs.size()))
      internal_error("IR input index out of range");
    if (n.op == Op::Param && (n.index < 0 || size_t(n.index) >= g.params.size()))
      internal_error("IR param index out of range");
    if (ir::is_random(n.op) && (n.index < 0 || n.index >= g.rand_sites || n.index > 0x7FFF))
      internal_error("IR random site out of range");
  }
  for (const ir::Output& o : g.outputs)
    if (o.node < 0 || size_t(o.node) >= g.nodes.size()) internal_error("IR output node out of range");
}

namespace {

using ir::NodeId;

// Up to this many rand() / randn() sites, their conversions (Box-Muller included) are in the loop
// body, on the words of one nyto_philox_words call per iteration. Beyond it the kernel is "large":
// Philox and Box-Muller become helper functions of the module called once per site, so compile
// time grows linearly with the number of random sites instead of with their conversions.
constexpr size_t kInlineSites = 8;

// A rand() / randn() site; an element draw of the block layout (a site or a keyed draw).
bool is_site_draw(ir::Op op) { return op == ir::Op::Rand || op == ir::Op::Randn; }
using ir::is_element_draw;

size_t random_sites(const ir::Graph& g) {
  return size_t(std::count_if(g.nodes.begin(), g.nodes.end(), [](const ir::Node& n) { return is_site_draw(n.op); }));
}
// The sites whose Philox rounds a second-tier kernel inlines: rand() / randn() and the keyed
// rand(k, j) / randn(k, j). More than kInlineSites and the kernel has one tier, its keyed draws
// from nyto_philox_words (its rand() sites from the large kernel's helpers).
size_t draw_sites(const ir::Graph& g) {
  return random_sites(g) + size_t(std::count_if(g.nodes.begin(), g.nodes.end(),
                                                [](const ir::Node& n) { return ir::is_keyed(n.op); }));
}

class Codegen {
 public:
  Codegen(llvm::LLVMContext& ctx, const ir::Graph& g, const KernelSpec& spec, int width, const KernelShape& shape,
          bool shared_draws)
      : ctx_(ctx), g_(g), spec_(spec), width_(width), masked_(shape.masked && width > 1),
        math_lanes_(shape.math_lanes), shared_draws_(shared_draws), b_(ctx) {
    f64_ = llvm::Type::getDoubleTy(ctx);
    elem_ = spec.dtype == DType::F32 ? llvm::Type::getFloatTy(ctx) : f64_;
    pack_qwords_ = std::max(1, shape.width * (spec.dtype == DType::F32 ? 4 : 8) / 8);
    i32_ = llvm::Type::getInt32Ty(ctx);
    i64_ = llvm::Type::getInt64Ty(ctx);
    ptr_ = llvm::PointerType::get(ctx, 0);
    for (const ir::Node& n : g.nodes) {
      has_blocks_ = has_blocks_ || is_element_draw(n.op);
      if (is_site_draw(n.op) && std::find(sites_.begin(), sites_.end(), uint32_t(n.index)) == sites_.end())
        sites_.push_back(uint32_t(n.index));
    }
    large_ = random_sites(g) > kInlineSites;
    keyed_words_ = shared_draws || draw_sites(g) > kInlineSites;
    // Software prefetch only where the loop body is long (draws): the core then retires the
    // Philox rounds of several iterations before their loads issue, and the hardware prefetcher
    // alone left a third of the memory time unhidden (pso-big, bench/README.md). A short
    // streaming body keeps enough loads in flight without it.
    prefetch_ = has_blocks_ && width > 1 ? shape.prefetch_bytes : 0;
    chunk_.assign(g.outputs.size(), ChunkReduce::None);
    std::copy(spec.chunk.begin(), spec.chunk.end(), chunk_.begin());
    chunked_ = spec.has_chunk_outputs();
    if (chunked_ && width_ > 1 && width_ % ir::kSumLanes != 0)
      internal_error("a chunk kernel's vector width must be a multiple of 32 (chunk_width)");
    block_mode_ = has_blocks_ && width_ > 1 && !chunked_;
    window_ = has_blocks_ && width_ > 1 && chunked_ && width_ <= int(block_elems());
    if (block_mode_ && (width_ & (width_ - 1)) != 0) internal_error("vector width not a power of two");
  }

  std::unique_ptr<llvm::Module> build(const std::string& name) {
    auto m = std::make_unique<llvm::Module>("nyto_" + name, ctx_);
    mod_ = m.get();
    auto* fty = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_, i64_, i64_, i64_, i64_}, false);
    fn_ = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, name, *m);
    fn_->addFnAttr(llvm::Attribute::NoUnwind);
    fn_->addFnAttr(llvm::Attribute::NoRecurse);
    auto* args = fn_->getArg(0);
    args->setName("args");
    args->addAttr(llvm::Attribute::NoAlias);
    args->addAttr(llvm::Attribute::ReadOnly);
    args->addAttr(llvm::Attribute::NoCapture);
    member_ = fn_->getArg(1);
    member_->setName("member");
    auto* begin_arg = fn_->getArg(2);
    begin_arg->setName("begin");
    llvm::Value* begin = begin_arg;
    auto* end = fn_->getArg(3);
    end->setName("end");
    auto* slot = fn_->getArg(4);
    slot->setName("slot");

    auto* entry = llvm::BasicBlock::Create(ctx_, "entry", fn_);
    b_.SetInsertPoint(entry);
    emit_entry(args);

    auto* exit = llvm::BasicBlock::Create(ctx_, "exit", fn_);
    if (chunked_) {
      emit_chunks(begin, end, slot, exit);
      return finish(std::move(m));
    }
    if (block_mode_) {
      if (shared_draws_ || large_)
        emit_part_loop(begin, end, exit);
      else
        emit_block_edges(begin, end, exit);
      return finish(std::move(m));
    }
    if (masked_) {
      emit_masked_edges(begin, end, exit);
      return finish(std::move(m));
    }
    auto* tail_check = llvm::BasicBlock::Create(ctx_, "tail.check", fn_);
    llvm::Value* vend = begin;
    if (width_ > 1) {
      // vend = begin + (end - begin) / W * W  (end >= begin by contract)
      llvm::Value* n = b_.CreateSub(end, begin, "n");
      llvm::Value* nv = b_.CreateAnd(n, b_.getInt64(~uint64_t(width_ - 1)), "n.vec");
      vend = b_.CreateAdd(begin, nv, "vend");
      emit_loop(begin, vend, width_, tail_check, "vloop", "i");
    } else {
      b_.CreateBr(tail_check);
      b_.SetInsertPoint(tail_check);
    }
    emit_loop(vend, end, 1, exit, "tail", "j");
    return finish(std::move(m));
  }

 private:
  std::unique_ptr<llvm::Module> finish(std::unique_ptr<llvm::Module> m) {
    b_.CreateRetVoid();
    std::string err;
    llvm::raw_string_ostream os(err);
    if (llvm::verifyModule(*m, &os)) internal_error("generated LLVM IR does not verify: " + os.str());
    return m;
  }

  // A host with cheap masking (AVX-512): both ends of the range run as one lane-masked vector
  // iteration, emitted once (the body is most of the kernel's code, and LLVM's time is linear in
  // it: one copy fewer than a scalar tail loop). Measured: a loop masked in every iteration ran
  // 40% slower than the plain vector loop, so only the tail is masked.
  //   vloop: whole vectors from begin
  //   tail:  index = vend, lanes < end
  void emit_masked_edges(llvm::Value* begin, llvm::Value* end, llvm::BasicBlock* exit) {
    auto* tail = llvm::BasicBlock::Create(ctx_, "tail.check", fn_, exit);
    auto* edge = llvm::BasicBlock::Create(ctx_, "edge", fn_, exit);
    // vend = begin + (end - begin) / W * W  (end >= begin)
    llvm::Value* nv = b_.CreateAnd(b_.CreateSub(end, begin, "n"), b_.getInt64(~uint64_t(width_ - 1)), "n.vec");
    llvm::Value* vend = b_.CreateAdd(begin, nv, "vend");
    emit_loop(begin, vend, width_, tail, "vloop", "i");
    b_.CreateCondBr(b_.CreateICmpSLT(vend, end), edge, exit);
    b_.SetInsertPoint(edge);
    emit_body(vend, width_, lanes_in(vend, vend, end, width_));
    b_.CreateBr(exit);
    b_.SetInsertPoint(exit);
  }

  // A kernel with draws (block_mode_): its iterations are whole blocks of B = 16 S elements
  // (rng::block_elems), so each block's 16 Philox calls per site are done once and their words
  // go to the lanes unshuffled (backend/Random.h). A block is emitted as B / ws bodies of ws =
  // min(W, 16) lanes (emit_block), and an iteration is blocks_per_iteration() blocks. The ends run
  // as one lane-masked block, emitted once, entered once per block:
  //   head (begin not a multiple of B): index = begin - begin mod B, lanes >= begin (and < end)
  //   bloop: whole iterations from start = min(head + B, end) (or begin)
  //   tail:  index = bend, lanes < end; then the next block (the last iteration's whole blocks
  //          and the partial one)
  // Masked loads and stores are one instruction on AVX-512 and AVX2 (vmaskmov); on older x86 LLVM
  // splits them into per-lane branches, which only the ends pay.
  void emit_block_edges(llvm::Value* begin, llvm::Value* end, llvm::BasicBlock* exit) {
    const uint64_t B = block_elems(), step = B * uint64_t(blocks_per_iteration());
    llvm::BasicBlock* entry = b_.GetInsertBlock();
    auto* vsetup = llvm::BasicBlock::Create(ctx_, "bsetup", fn_, exit);
    auto* tail_check = llvm::BasicBlock::Create(ctx_, "tail.check", fn_, exit);
    auto* edge = llvm::BasicBlock::Create(ctx_, "edge", fn_, exit);
    llvm::Value* head = b_.CreateSub(begin, b_.CreateURem(begin, b_.getInt64(B)), "head");
    b_.CreateCondBr(b_.CreateICmpSLT(head, begin), edge, vsetup);
    b_.SetInsertPoint(vsetup);
    llvm::PHINode* start = b_.CreatePHI(i64_, 2, "start");
    start->addIncoming(begin, entry);
    // bend = start + (end - start) / step * step  (end >= start)
    llvm::Value* ni = b_.CreateUDiv(b_.CreateSub(end, start, "n"), b_.getInt64(step), "n.iterations");
    llvm::Value* bend = b_.CreateAdd(start, b_.CreateMul(ni, b_.getInt64(step)), "bend");
    emit_loop(start, bend, int(step), tail_check, "bloop", "i", true);
    b_.CreateCondBr(b_.CreateICmpSLT(bend, end), edge, exit);

    b_.SetInsertPoint(edge);
    llvm::PHINode* index = b_.CreatePHI(i64_, 2, "e");
    llvm::PHINode* lo = b_.CreatePHI(i64_, 2, "e.lo");
    index->addIncoming(bend, tail_check);
    lo->addIncoming(bend, tail_check);
    index->addIncoming(head, entry);
    lo->addIncoming(begin, entry);
    emit_block(index, lo, end, false);
    llvm::Value* next = b_.CreateAdd(index, b_.getInt64(B), "e.next", true, true);
    next = b_.CreateSelect(b_.CreateICmpSLT(next, end), next, end);
    start->addIncoming(next, b_.GetInsertBlock());
    b_.CreateCondBr(b_.CreateICmpSLT(next, end), vsetup, exit);
    b_.SetInsertPoint(exit);
  }
  // Blocks per iteration of a second-tier draw loop: one per 32 lanes of the kernel's width
  // (vector width x JitOptions::interleave), at least 1, at most 4. A block's 16 calls per site are
  // two dependent chains of ten multiply rounds; a kernel with little else (the staged driver's
  // keyed draws, keyed_interleave) needs the chains of several blocks to fill the multipliers.
  int blocks_per_iteration() const { return std::clamp(width_ / 32, 1, 4); }
  // The mask of the w lanes at element `at` that hold elements in [lo, end).
  llvm::Value* lanes_in(llvm::Value* at, llvm::Value* lo, llvm::Value* end, int w) {
    llvm::Value* lane = iota64(w);
    return b_.CreateAnd(b_.CreateICmpSGE(lane, splat(b_.CreateSub(lo, at), w)),
                        b_.CreateICmpSLT(lane, splat(b_.CreateSub(end, at), w)), "lanes");
  }
  // The block geometry of this kernel's dtype (backend/Random.h): slots per call, elements per
  // block, and the lanes of each of its bodies.
  uint32_t slots() const { return rng::slots(spec_.dtype == DType::F64); }
  uint32_t block_elems() const { return rng::block_elems(spec_.dtype == DType::F64); }
  int block_lanes() const { return std::min(width_, int(rng::kCallLanes)); }
  // One block at `index` (a multiple of B); with `lo`, only the lanes in [lo, end) load and store.
  // Unrolled (a second-tier kernel's whole blocks): B / ws bodies, body k on elements index + k ws
  // .. index + k ws + ws - 1, the block's draws made at their first use (body 0) and sliced for the
  // others (block_slice). Otherwise (a second-tier kernel's masked ends): the block's draws are
  // made first, into stack buffers, and one body runs in a loop over the block's B / ws parts,
  // loading its draws from them, so the ends add one copy of the body, not B / ws.
  void emit_block(llvm::Value* index, llvm::Value* lo, llvm::Value* end, bool unrolled) {
    const int ws = block_lanes(), B = int(block_elems());
    begin_block(index);
    auto lanes = [&](llvm::Value* at) { return lo ? lanes_in(at, lo, end, ws) : nullptr; };
    if (unrolled) {
      for (int k = 0; k < B / ws; ++k) {
        block_body_ = k;
        llvm::Value* at = k == 0 ? index : b_.CreateAdd(index, b_.getInt64(uint64_t(k * ws)), "", true, true);
        emit_body(at, ws, lanes(at));
      }
      block_body_ = -1;
      return;
    }
    draw_buffers(uint64_t(B), "draws");
    store_block_draws();
    llvm::BasicBlock* from = b_.GetInsertBlock();
    auto* part = llvm::BasicBlock::Create(ctx_, "part", fn_);
    auto* done = llvm::BasicBlock::Create(ctx_, "part.done", fn_);
    b_.CreateBr(part);
    b_.SetInsertPoint(part);
    llvm::PHINode* at = b_.CreatePHI(i64_, 2, "at");
    at->addIncoming(index, from);
    block_body_ = kLoopBody;
    part_offset_ = b_.CreateSub(at, index);
    emit_body(at, ws, lanes(at));
    block_body_ = -1;
    llvm::Value* next = b_.CreateAdd(at, b_.getInt64(uint64_t(ws)), "at.next", true, true);
    at->addIncoming(next, b_.GetInsertBlock());
    b_.CreateCondBr(b_.CreateICmpSLT(next, b_.CreateAdd(index, b_.getInt64(uint64_t(B)))), part, done)
        ->setMetadata(llvm::LLVMContext::MD_loop, loop_md());
    b_.SetInsertPoint(done);
  }
  // The state of a new block at `index`: its first Philox call, 16 (index / B) mod 2^32
  // (rng::call_of), and no draws or words made yet.
  void begin_block(llvm::Value* index) {
    block_draws_.clear();
    words_at_ = nullptr;
    call_base_ = b_.CreateTrunc(b_.CreateMul(b_.CreateUDiv(index, b_.getInt64(uint64_t(block_elems()))),
                                             b_.getInt64(rng::kCallLanes)),
                                i32_, "call.base");
  }
  // Every draw node's stack buffer (draw_stack_) of `elems` elements, made once.
  void draw_buffers(uint64_t elems, const char* name) {
    for (size_t i = 0; i < g_.nodes.size(); ++i)
      if (elem(NodeId(i)) && is_element_draw(g_.nodes[i].op) && !draw_stack_.count(NodeId(i)))
        draw_stack_[NodeId(i)] = entry_alloca(llvm::ArrayType::get(elem_, elems), name);
  }
  // Every draw node's values for the group_blocks_ blocks from call_base_ on, block after block,
  // into its buffer from element `at` on (null: its start).
  void store_block_draws(llvm::Value* at = nullptr) {
    llvm::Type* vt = vec(elem_, int(rng::kCallLanes));
    for (auto& [id, buf] : draw_stack_) {
      std::vector<llvm::Value*> v = make_block_draws(g_.nodes[id]);
      llvm::Value* to = at ? b_.CreateGEP(elem_, buf, at) : buf;
      for (size_t j = 0; j < v.size(); ++j)
        b_.CreateAlignedStore(v[j], b_.CreateConstInBoundsGEP1_64(vt, to, j), llvm::Align(64));
    }
  }
  // The window (window_) holding the draws of element `index` and the B - 1 after it: blocks b =
  // index / B and b + 1. Unchanged if it holds them already; moved on by one block (the second
  // block's draws copied to the first, the next block made) when the iteration has entered the
  // second block, as consecutive iterations do; else both made. The draws are made once per
  // block, as in a block kernel, where a draw per lane (lane_draw) did a Philox call per element.
  void ensure_window(llvm::Value* index) {
    const uint64_t B = block_elems();
    if (!window_block_) {
      window_block_ = entry_alloca(i64_, "window.block");
      llvm::IRBuilder<>(llvm::cast<llvm::Instruction>(window_block_)->getNextNode())
          .CreateStore(b_.getInt64(uint64_t(-2)), window_block_);
      draw_buffers(2 * B, "window");
    }
    llvm::Value* b = b_.CreateUDiv(index, b_.getInt64(B), "block");
    llvm::Value* held = b_.CreateLoad(i64_, window_block_, "window.held");
    auto* fill = llvm::BasicBlock::Create(ctx_, "window.fill", fn_);
    auto* move = llvm::BasicBlock::Create(ctx_, "window.move", fn_);
    auto* make = llvm::BasicBlock::Create(ctx_, "window.make", fn_);
    auto* ready = llvm::BasicBlock::Create(ctx_, "window.ready", fn_);
    b_.CreateCondBr(b_.CreateICmpEQ(b, held), ready, fill);
    b_.SetInsertPoint(fill);
    llvm::Value* b1 = b_.CreateAdd(b, b_.getInt64(1), "block.next");
    b_.CreateCondBr(b_.CreateICmpEQ(b, b_.CreateAdd(held, b_.getInt64(1))), move, make);
    b_.SetInsertPoint(move);
    for (auto& [id, buf] : draw_stack_)
      b_.CreateMemCpy(buf, llvm::Align(64), b_.CreateConstInBoundsGEP1_64(elem_, buf, B), llvm::Align(64),
                      B * uint64_t(elem_bytes()));
    b_.CreateBr(make);
    b_.SetInsertPoint(make);
    llvm::PHINode* g = b_.CreatePHI(i64_, 3, "window.g");
    g->addIncoming(b, fill);
    g->addIncoming(b1, move);
    // block g into its half of the window, then g + 1 if that is b + 1
    begin_block(b_.CreateMul(g, b_.getInt64(B), "", true, true));
    store_block_draws(b_.CreateMul(b_.CreateSub(g, b), b_.getInt64(B)));
    words_at_ = nullptr;  // made inside this loop: no use after it may see them
    llvm::Value* g_next = b_.CreateAdd(g, b_.getInt64(1));
    g->addIncoming(g_next, b_.GetInsertBlock());
    auto* done = llvm::BasicBlock::Create(ctx_, "window.done", fn_);
    b_.CreateCondBr(b_.CreateICmpULE(g_next, b1), make, done);
    b_.SetInsertPoint(done);
    b_.CreateStore(b, window_block_);
    b_.CreateBr(ready);
    b_.SetInsertPoint(ready);
    window_offset_ = b_.CreateSub(index, b_.CreateMul(b, b_.getInt64(B)), "window.offset");
  }
  // Draw node `nd` for the w elements from index_ on, from the window (ensure_window).
  llvm::Value* window_slice(const ir::Node& nd, int w) {
    llvm::Value* at = b_.CreateGEP(elem_, draw_stack_.at(node_id(nd)), window_offset_);
    return b_.CreateAlignedLoad(vec(elem_, w), at, llvm::Align(elem_bytes()));
  }
  // A kernel built for compile speed (the first tier, large kernels): [begin, end) as one loop
  // over parts of ws lanes, from the part holding `begin` on. A part makes the draws of a group
  // of blocks_per_iteration() blocks (one nyto_philox_words call for all: a keyed-draw kernel's
  // one site then gets 64 calls, not 16, enough chains for the precompiled rounds) when it is the group's
  // first (k = 0) or the loop's first; a part wholly inside [begin, end) runs the
  // plain body, the others (at most one at each end) the lane-masked one. So the kernel holds the
  // draws once and the body twice; a loop of blocks around a loop of parts, with masked blocks
  // at the ends, had the draws twice, three loops, and took LLVM 1.3x as long.
  void emit_part_loop(llvm::Value* begin, llvm::Value* end, llvm::BasicBlock* exit) {
    const int nb = blocks_per_iteration(), ws = block_lanes(), parts = nb * int(block_elems()) / ws;
    const uint64_t group = uint64_t(nb) * block_elems();
    llvm::BasicBlock* from = b_.GetInsertBlock();
    llvm::Value* first = b_.CreateSub(begin, b_.CreateURem(begin, b_.getInt64(uint64_t(ws))), "first");
    llvm::Value* k0 = b_.CreateUDiv(b_.CreateURem(first, b_.getInt64(group)), b_.getInt64(uint64_t(ws)), "k0");
    auto* loop = llvm::BasicBlock::Create(ctx_, "ploop", fn_, exit);
    auto* draws = llvm::BasicBlock::Create(ctx_, "ploop.draws", fn_, exit);
    auto* pick = llvm::BasicBlock::Create(ctx_, "ploop.pick", fn_, exit);
    auto* full = llvm::BasicBlock::Create(ctx_, "ploop.full", fn_, exit);
    auto* edge = llvm::BasicBlock::Create(ctx_, "ploop.edge", fn_, exit);
    auto* latch = llvm::BasicBlock::Create(ctx_, "ploop.latch", fn_, exit);
    b_.CreateCondBr(b_.CreateICmpSLT(begin, end), loop, exit);
    b_.SetInsertPoint(loop);
    llvm::PHINode* at = b_.CreatePHI(i64_, 2, "i");
    llvm::PHINode* k = b_.CreatePHI(i64_, 2, "k");
    llvm::PHINode* fresh = b_.CreatePHI(b_.getInt1Ty(), 2, "fresh");
    at->addIncoming(first, from);
    k->addIncoming(k0, from);
    fresh->addIncoming(b_.getTrue(), from);
    b_.CreateCondBr(b_.CreateOr(fresh, b_.CreateICmpEQ(k, b_.getInt64(0))), draws, pick);
    b_.SetInsertPoint(draws);
    begin_block(b_.CreateSub(at, b_.CreateURem(at, b_.getInt64(group))));
    group_blocks_ = nb;
    draw_buffers(group, "draws");
    store_block_draws();
    group_blocks_ = 1;
    b_.CreateBr(pick);
    b_.SetInsertPoint(pick);
    part_offset_ = b_.CreateMul(k, b_.getInt64(uint64_t(ws)), "part.offset", true, true);
    llvm::Value* next = b_.CreateAdd(at, b_.getInt64(uint64_t(ws)), "i.next", true, true);
    b_.CreateCondBr(b_.CreateAnd(b_.CreateICmpSGE(at, begin), b_.CreateICmpSLE(next, end)), full, edge);
    block_body_ = kLoopBody;
    b_.SetInsertPoint(full);
    emit_body(at, ws, nullptr);
    b_.CreateBr(latch);
    b_.SetInsertPoint(edge);
    emit_body(at, ws, lanes_in(at, begin, end, ws));
    b_.CreateBr(latch);
    block_body_ = -1;
    b_.SetInsertPoint(latch);
    llvm::Value* kn = b_.CreateAdd(k, b_.getInt64(1));
    kn = b_.CreateSelect(b_.CreateICmpEQ(kn, b_.getInt64(uint64_t(parts))), b_.getInt64(0), kn);
    at->addIncoming(next, latch);
    k->addIncoming(kn, latch);
    fresh->addIncoming(b_.getFalse(), latch);
    b_.CreateCondBr(b_.CreateICmpSLT(next, end), loop, exit)->setMetadata(llvm::LLVMContext::MD_loop, loop_md());
    b_.SetInsertPoint(exit);
  }

  // for (i = lo; i < hi; i += w) emit_body(i, w) (emit_block(i) if `block`, w = B): entered from the
  // insert point, left in `after`
  // (a new block: its only predecessors are the insert point and the loop). The chunk
  // accumulators (acc_) are carried through the loop and merged in `after`.
  void emit_loop(llvm::Value* lo, llvm::Value* hi, int w, llvm::BasicBlock* after, const char* name,
                 const char* index, bool block = false) {
    auto* loop = llvm::BasicBlock::Create(ctx_, name, fn_, after);
    llvm::BasicBlock* from = b_.GetInsertBlock();
    b_.CreateCondBr(b_.CreateICmpSLT(lo, hi), loop, after);
    b_.SetInsertPoint(loop);
    auto* i = b_.CreatePHI(i64_, 2, index);
    i->addIncoming(lo, from);
    const std::vector<llvm::Value*> acc_in = acc_;
    std::vector<llvm::PHINode*> acc_phi(acc_.size(), nullptr);
    for (size_t o = 0; o < acc_.size(); ++o)
      if (acc_[o]) {
        acc_phi[o] = b_.CreatePHI(acc_[o]->getType(), 2, "acc" + std::to_string(o));
        acc_phi[o]->addIncoming(acc_[o], from);
        acc_[o] = acc_phi[o];
      }
    if (block)
      for (int j = 0; j < w / int(block_elems()); ++j)
        emit_block(j == 0 ? i : b_.CreateAdd(i, b_.getInt64(uint64_t(j) * block_elems()), "", true, true), nullptr,
                   nullptr, true);
    else
      emit_body(i, w, nullptr);
    llvm::Value* next = b_.CreateAdd(i, b_.getInt64(w), std::string(index) + ".next", true, true);
    llvm::BasicBlock* latch = b_.GetInsertBlock();
    i->addIncoming(next, latch);
    for (size_t o = 0; o < acc_.size(); ++o)
      if (acc_phi[o]) acc_phi[o]->addIncoming(acc_[o], latch);
    b_.CreateCondBr(b_.CreateICmpSLT(next, hi), loop, after)->setMetadata(llvm::LLVMContext::MD_loop, loop_md());
    b_.SetInsertPoint(after);
    merge_acc(acc_in, from, latch);
  }
  // In the block just entered from `a` (with the accumulators `acc_a`) or from `b` (with acc_):
  // phis of the two.
  void merge_acc(const std::vector<llvm::Value*>& acc_a, llvm::BasicBlock* a, llvm::BasicBlock* b) {
    for (size_t o = 0; o < acc_.size(); ++o)
      if (acc_[o]) {
        llvm::PHINode* phi = b_.CreatePHI(acc_[o]->getType(), 2, "acc" + std::to_string(o));
        phi->addIncoming(acc_a[o], a);
        phi->addIncoming(acc_[o], b);
        acc_[o] = phi;
      }
  }

  // The chunk loop of a kernel with chunk outputs (the header comment): entered from the insert
  // point, left in `exit`.
  void emit_chunks(llvm::Value* begin, llvm::Value* end, llvm::Value* slot0, llvm::BasicBlock* exit) {
    constexpr int L = ir::kSumLanes;
    auto* chunk = llvm::BasicBlock::Create(ctx_, "chunk", fn_, exit);
    llvm::BasicBlock* from = b_.GetInsertBlock();
    b_.CreateCondBr(b_.CreateICmpSLT(begin, end), chunk, exit);
    b_.SetInsertPoint(chunk);
    auto* cs = b_.CreatePHI(i64_, 2, "cs");
    auto* slot = b_.CreatePHI(i64_, 2, "slot");
    cs->addIncoming(begin, from);
    slot->addIncoming(slot0, from);
    llvm::Value* next = b_.CreateAdd(cs, b_.getInt64(ir::kParamChunk), "cs.next", true, true);
    llvm::Value* ce = b_.CreateSelect(b_.CreateICmpSLT(next, end), next, end, "ce");
    chunk_start_ = cs;
    acc_.assign(g_.outputs.size(), nullptr);
    for (size_t o = 0; o < g_.outputs.size(); ++o)
      if (chunk_[o] != ChunkReduce::None) acc_[o] = identity(chunk_[o], L);

    auto* tail_check = llvm::BasicBlock::Create(ctx_, "tail.check", fn_, exit);
    llvm::Value* vend = cs;
    if (width_ > 1) {
      llvm::Value* nv = b_.CreateAnd(b_.CreateSub(ce, cs), b_.getInt64(~uint64_t(width_ - 1)), "n.vec");
      vend = b_.CreateAdd(cs, nv, "vend");
      emit_loop(cs, vend, width_, tail_check, "vloop", "i");
    } else {
      b_.CreateBr(tail_check);
      b_.SetInsertPoint(tail_check);
    }
    auto* done = llvm::BasicBlock::Create(ctx_, "chunk.done", fn_, exit);
    if (masked_) {
      auto* tail = llvm::BasicBlock::Create(ctx_, "tail", fn_, done);
      llvm::BasicBlock* check = b_.GetInsertBlock();
      b_.CreateCondBr(b_.CreateICmpSLT(vend, ce), tail, done);
      b_.SetInsertPoint(tail);
      const std::vector<llvm::Value*> acc_in = acc_;
      llvm::Value* rem = splat(b_.CreateSub(ce, vend, "rem"), width_);
      emit_body(vend, width_, b_.CreateICmpSLT(iota64(width_), rem, "lanes"));
      llvm::BasicBlock* tail_end = b_.GetInsertBlock();
      b_.CreateBr(done);
      b_.SetInsertPoint(done);
      merge_acc(acc_in, check, tail_end);
    } else {
      emit_loop(vend, ce, 1, done, "tail", "j");
    }
    for (size_t o = 0; o < g_.outputs.size(); ++o)
      if (acc_[o])
        b_.CreateAlignedStore(fold_lanes(chunk_[o], acc_[o]), b_.CreateGEP(f64_, out_row_[o], slot), llvm::Align(8));
    llvm::Value* slot_next = b_.CreateAdd(slot, b_.getInt64(1), "slot.next", true, true);
    llvm::BasicBlock* latch = b_.GetInsertBlock();
    cs->addIncoming(next, latch);
    slot->addIncoming(slot_next, latch);
    b_.CreateCondBr(b_.CreateICmpSLT(next, end), chunk, exit)->setMetadata(llvm::LLVMContext::MD_loop, loop_md());
    b_.SetInsertPoint(exit);
  }
  // The identity of a chunk reduction, in each of w lanes: -0 for a sum (the driver's lanes start
  // at -0 too; x + -0 is x for every x), +inf / -inf for a minimum / maximum (in the dtype).
  llvm::Constant* identity(ChunkReduce r, int w) {
    if (r == ChunkReduce::Sum) return cfp(f64_, -0.0, w);
    return cfp(elem_, r == ChunkReduce::Min ? INFINITY : -INFINITY, w);
  }
  // One step of a chunk reduction: acc + x (doubles), or ir::ieee_minimum/maximum(acc, x).
  llvm::Value* combine(ChunkReduce r, llvm::Value* acc, llvm::Value* x) {
    if (r == ChunkReduce::Sum) return b_.CreateFAdd(acc, x);
    return ieee_min_max(r == ChunkReduce::Min, acc, x);
  }
  // acc (op) the w lanes of `v` (the output's value in the dtype; widened to double for a sum),
  // lane l into accumulator lane l mod 32 (w a multiple of 32: the iteration starts 32k elements
  // into the chunk), its rows of 32 in element order; `mask`: the lanes holding elements, the
  // others give the identity. A scalar (w == 1) goes to lane (index - chunk start) mod 32.
  llvm::Value* accumulate(ChunkReduce r, llvm::Value* acc, llvm::Value* v, int w, llvm::Value* mask) {
    constexpr int L = ir::kSumLanes;
    llvm::Value* x = r == ChunkReduce::Sum ? b_.CreateFPExt(v, vec(f64_, w)) : v;  // fpext: a no-op for float64
    if (w == 1) {
      llvm::Value* lane = b_.CreateAnd(b_.CreateSub(index_, chunk_start_), b_.getInt64(L - 1), "lane");
      return b_.CreateInsertElement(acc, combine(r, b_.CreateExtractElement(acc, lane), x), lane);
    }
    if (mask) x = b_.CreateSelect(mask, x, identity(r, w));
    for (int row = 0; row < w / L; ++row) {
      llvm::Value* part = x;
      if (w > L) {
        std::vector<int> lanes(L);
        for (int l = 0; l < L; ++l) lanes[size_t(l)] = row * L + l;
        part = b_.CreateShuffleVector(x, lanes);
      }
      acc = combine(r, acc, part);
    }
    return acc;
  }
  // The chunk's value: the 32 lanes folded in halves, lane j + w into lane j (w = 16, ..., 1),
  // lane 0 as a double.
  llvm::Value* fold_lanes(ChunkReduce r, llvm::Value* acc) {
    for (int w = ir::kSumLanes / 2; w >= 1; w /= 2) {
      std::vector<int> lo(static_cast<size_t>(w)), hi(static_cast<size_t>(w));
      for (int j = 0; j < w; ++j) lo[size_t(j)] = j, hi[size_t(j)] = j + w;
      acc = combine(r, b_.CreateShuffleVector(acc, lo), b_.CreateShuffleVector(acc, hi));
    }
    llvm::Value* v = b_.CreateExtractElement(acc, uint64_t(0));
    return r == ChunkReduce::Sum ? v : b_.CreateFPExt(v, f64_, "chunk.value");
  }
  // Both loops are final as emitted: the vector loop is already vectorized and the tail must stay
  // scalar (at most W-1 iterations). Telling LoopVectorize/LoopUnroll to leave them alone halves
  // the machine code and the JIT time.
  llvm::MDNode* loop_md() {
    auto* self = llvm::MDNode::getTemporary(ctx_, {}).release();
    llvm::Metadata* ops[] = {
        self,
        llvm::MDNode::get(ctx_, {llvm::MDString::get(ctx_, "llvm.loop.vectorize.enable"),
                                 llvm::ConstantAsMetadata::get(b_.getFalse())}),
        llvm::MDNode::get(ctx_, {llvm::MDString::get(ctx_, "llvm.loop.interleave.count"),
                                 llvm::ConstantAsMetadata::get(b_.getInt32(1))}),
        llvm::MDNode::get(ctx_, {llvm::MDString::get(ctx_, "llvm.loop.unroll.disable")})};
    llvm::MDNode* md = llvm::MDNode::getDistinct(ctx_, ops);
    md->replaceOperandWith(0, md);
    llvm::MDNode::deleteTemporary(self);
    return md;
  }

  // <0, 1, ..., w-1> of integer type t (the scalar 0 when w == 1).
  llvm::Constant* iota(llvm::Type* t, int w) {
    std::vector<llvm::Constant*> lanes;
    for (int l = 0; l < w; ++l) lanes.push_back(llvm::ConstantInt::get(t, uint64_t(l)));
    return w == 1 ? lanes[0] : llvm::ConstantVector::get(lanes);
  }
  llvm::Constant* iota64(int w) { return iota(i64_, w); }
  llvm::Constant* iota32(int w) { return iota(i32_, w); }

  // ---- types and constants ------------------------------------------------------------------
  llvm::Type* vec(llvm::Type* t, int w) {
    return w == 1 ? t : llvm::FixedVectorType::get(t, unsigned(w));
  }
  llvm::Value* splat(llvm::Value* v, int w) { return w == 1 ? v : b_.CreateVectorSplat(unsigned(w), v); }
  llvm::Constant* cfp(llvm::Type* scalar_ty, double v, int w) {
    return llvm::ConstantFP::get(vec(scalar_ty, w), v);
  }
  llvm::Constant* ci32(uint32_t v, int w) { return llvm::ConstantInt::get(vec(i32_, w), v); }
  llvm::Constant* ci64(uint64_t v, int w) { return llvm::ConstantInt::get(vec(i64_, w), v); }
  // The IR's numerics rule (ir/IR.h), from the type of the graph specialized for the binding: a
  // node with the element axis varies per element (it is computed in the loop) and computes in the
  // dtype; every other node is computed once, before the loop, in double. A comparison's type has
  // the element axis exactly when one of its operands does, so it compares in the dtype then.
  bool elem(NodeId id) const { return g_.nodes[id].type.element; }
  int elem_bytes() const { return spec_.dtype == DType::F32 ? 4 : 8; }

  llvm::Value* load_field(llvm::Value* args, int field, llvm::Type* ty, const char* name) {
    // FlatArgs (LlvmBackend.h, which static_asserts this layout): 6 pointers, then seed (i64),
    // invocation (i64), group (i32), members (i64).
    auto* st = llvm::StructType::get(ctx_, {ptr_, ptr_, ptr_, ptr_, ptr_, ptr_, i64_, i64_, i32_, i64_});
    return b_.CreateLoad(ty, b_.CreateStructGEP(st, args, unsigned(field)), name);
  }
  llvm::Value* load_at(llvm::Type* ty, llvm::Value* array, int64_t index, const std::string& name) {
    return b_.CreateLoad(ty, b_.CreateConstInBoundsGEP1_64(ty, array, uint64_t(index)), name);
  }

  // ---- entry: everything uniform -------------------------------------------------------------
  void emit_entry(llvm::Value* args) {
    llvm::Value* in = load_field(args, 0, ptr_, "in");
    llvm::Value* in_stride = load_field(args, 1, ptr_, "in.stride");
    llvm::Value* scalar = load_field(args, 2, ptr_, "scalar");
    llvm::Value* params = load_field(args, 3, ptr_, "params");
    llvm::Value* out = load_field(args, 4, ptr_, "out");
    llvm::Value* out_stride = load_field(args, 5, ptr_, "out.stride");
    llvm::Value* seed = load_field(args, 6, i64_, "seed");
    llvm::Value* invocation = load_field(args, 7, i64_, "invocation");
    llvm::Value* group = load_field(args, 8, i32_, "group");
    members_ = load_field(args, 9, i64_, "members");

    // Philox key and the uniform counter words (backend/Random.h key layout).
    key0_ = b_.CreateTrunc(seed, i32_, "k0");
    key1_ = b_.CreateTrunc(b_.CreateLShr(seed, 32), i32_, "k1");
    ctr1_ = b_.CreateTrunc(member_, i32_, "c1");
    ctr2_ = b_.CreateTrunc(invocation, i32_, "c2");
    group_shl_ = b_.CreateShl(group, 16, "group.shl");
    round_keys(key0_, key1_, round_key_);
    if (large_) store_philox_key();

    size_t n = g_.nodes.size();
    uni_.assign(n, nullptr);
    uni_dt_.assign(n, nullptr);
    row_.assign(g_.inputs.size(), nullptr);
    for (size_t i = 0; i < g_.inputs.size(); ++i) {
      BindKind k = spec_.kinds[i];
      std::string nm = "in" + std::to_string(i);
      if (k == BindKind::Particle || k == BindKind::Swarm) {
        llvm::Value* base = load_at(ptr_, in, int64_t(i), nm + ".base");
        if (k == BindKind::Swarm) {
          llvm::Value* stride = load_at(i64_, in_stride, int64_t(i), nm + ".stride");
          base = b_.CreateGEP(elem_, base, b_.CreateMul(member_, stride), nm + ".row");
        }
        row_[i] = base;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      const ir::Node& nd = g_.nodes[i];
      if (elem(NodeId(i))) continue;
      llvm::Value* v = nullptr;
      if (nd.op == Op::Input) {
        BindKind k = spec_.kinds[nd.index];
        std::string nm = "in" + std::to_string(nd.index);
        if (k == BindKind::Scalar) {
          v = load_at(f64_, scalar, nd.index, nm);
        } else {  // MemberScalar: ((const double*)in[i])[member]
          llvm::Value* base = load_at(ptr_, in, nd.index, nm + ".base");
          v = b_.CreateLoad(f64_, b_.CreateGEP(f64_, base, member_), nm);
        }
      } else if (nd.op == Op::Param) {
        v = load_at(f64_, params, nd.index, "p" + std::to_string(nd.index));
      } else if (nd.op == Op::Member) {
        v = b_.CreateSIToFP(member_, f64_, "member.f");
      } else if (nd.op == Op::Members) {
        v = b_.CreateSIToFP(members_, f64_, "members.f");
      } else {
        v = emit_op(NodeId(i), 1, [&](NodeId a, bool want_dtype) {
          return want_dtype ? uniform_dtype(a) : uni_[a];
        });
      }
      uni_[i] = v;
    }
    out_row_.assign(g_.outputs.size(), nullptr);
    for (size_t o = 0; o < g_.outputs.size(); ++o) {
      std::string nm = "out" + std::to_string(o);
      llvm::Value* base = load_at(ptr_, out, int64_t(o), nm + ".base");
      llvm::Value* stride = load_at(i64_, out_stride, int64_t(o), nm + ".stride");
      // A chunk output's rows are doubles, one per chunk.
      const bool chunk = chunk_[o] != ChunkReduce::None;
      out_row_[o] = b_.CreateGEP(chunk ? f64_ : elem_, base, b_.CreateMul(member_, stride), nm + ".row");
    }
    // Dtype copies of uniform values used by per-element code, made here so they are computed once.
    for (size_t i = 0; i < n; ++i)
      if (!elem(NodeId(i)) && !g_.nodes[i].type.mask)
        uniform_dtype(NodeId(i));
  }

  llvm::Value* to_elem(llvm::Value* d) {
    return spec_.dtype == DType::F32 ? b_.CreateFPTrunc(d, elem_) : d;
  }
  // The value of uniform node `id` in the dtype (converted once, in the entry block).
  llvm::Value* uniform_dtype(NodeId id) {
    if (!uni_dt_[id]) {
      llvm::Value* v = uni_[id];
      if (v->getType() == f64_) {
        auto ip = b_.saveIP();
        llvm::Instruction* def = llvm::dyn_cast<llvm::Instruction>(v);
        if (def) b_.SetInsertPoint(def->getParent(), std::next(def->getIterator()));
        v = to_elem(v);
        b_.restoreIP(ip);
      }
      uni_dt_[id] = v;
    }
    return uni_dt_[id];
  }

  // ---- per element ----------------------------------------------------------------------------
  void emit_body(llvm::Value* index, int w, llvm::Value* mask) {
    std::vector<llvm::Value*> val(g_.nodes.size(), nullptr);
    // Each uniform operand is splatted from its entry-block value (LICM-free by construction).
    auto arg = [&](NodeId a, bool want_dtype) -> llvm::Value* {
      if (elem(a)) return val[a];
      llvm::Value* u = want_dtype && !g_.nodes[a].type.mask
                           ? uniform_dtype(a)
                           : uni_[a];
      return splat(u, w);
    };
    index_ = index;
    if (block_body_ == -1) words_at_ = nullptr;
    if (window_) ensure_window(index);
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      if (!elem(NodeId(i))) continue;
      const ir::Node& nd = g_.nodes[i];
      if (nd.op == Op::Input) {
        auto* p = b_.CreateGEP(elem_, row_[nd.index], index);
        std::string nm = "x" + std::to_string(nd.index);
        if (prefetch_ > 0 && !mask && w == (block_mode_ ? block_lanes() : width_))
          for (int off = 0; off < w * elem_bytes(); off += 64)  // each cache line once
            b_.CreateIntrinsic(llvm::Intrinsic::prefetch, {ptr_},
                               {b_.CreateGEP(b_.getInt8Ty(), p, b_.getInt64(uint64_t(prefetch_ + off))),
                                b_.getInt32(0), b_.getInt32(3), b_.getInt32(1)});
        if (mask)
          val[i] = b_.CreateMaskedLoad(vec(elem_, w), p, llvm::Align(elem_bytes()), mask,
                                       llvm::Constant::getNullValue(vec(elem_, w)), nm);
        else
          val[i] = b_.CreateAlignedLoad(vec(elem_, w), p, llvm::Align(elem_bytes()), nm);
      } else {
        val[i] = emit_op(NodeId(i), w, arg);
      }
    }
    for (size_t o = 0; o < g_.outputs.size(); ++o) {
      NodeId id = g_.outputs[o].node;
      llvm::Value* v;
      if (g_.nodes[id].type.mask) {
        v = b_.CreateSelect(arg(id, true), cfp(elem_, 1.0, w), cfp(elem_, 0.0, w));
      } else {
        v = arg(id, true);
      }
      if (chunk_[o] != ChunkReduce::None) {  // the value the driver would have stored, reduced instead
        acc_[o] = accumulate(chunk_[o], acc_[o], v, w, mask);
        continue;
      }
      auto* p = b_.CreateGEP(elem_, out_row_[o], index);
      if (mask)
        b_.CreateMaskedStore(v, p, llvm::Align(elem_bytes()), mask);
      else
        b_.CreateAlignedStore(v, p, llvm::Align(elem_bytes()));
    }
  }

  // ---- one node --------------------------------------------------------------------------------
  // `get(a, want_dtype)` returns operand a at this width: in the dtype if want_dtype, else as it
  // was computed (double for a uniform double node, i1 for masks).
  template <class Get>
  llvm::Value* emit_op(NodeId id, int w, Get get) {
    const ir::Node& nd = g_.nodes[id];
    bool dt = elem(id);
    llvm::Type* fty = dt ? elem_ : f64_;
    auto A = [&](int k) { return get(nd.args[k], dt); };
    switch (nd.op) {
      case Op::Const: return cfp(fty, dt && spec_.dtype == DType::F32 ? double(float(nd.value)) : nd.value, w);
      case Op::Rand:
      case Op::Randn: return emit_random(nd, w);
      case Op::MRand:
      case Op::MRandn: return emit_member_draw(nd);
      case Op::KRand:
      case Op::KRandn: return emit_keyed_draw(nd, w);
      case Op::Neg: return b_.CreateFNeg(A(0));
      case Op::Abs: return unary_intrinsic(llvm::Intrinsic::fabs, A(0));
      case Op::Sqrt: return unary_intrinsic(llvm::Intrinsic::sqrt, A(0));
      case Op::Exp: return math_call("exp", {A(0)});
      case Op::Log: return math_call("log", {A(0)});
      case Op::Sin: return math_call("sin", {A(0)});
      case Op::Cos: return math_call("cos", {A(0)});
      case Op::Floor: return unary_intrinsic(llvm::Intrinsic::floor, A(0));
      case Op::Ceil: return unary_intrinsic(llvm::Intrinsic::ceil, A(0));
      case Op::Tanh: return math_call("tanh", {A(0)});
      case Op::Acos: return math_call("acos", {A(0)});
      case Op::Asin: return math_call("asin", {A(0)});
      case Op::Atan: return math_call("atan", {A(0)});
      case Op::Sigmoid: {
        // 1 / (1 + exp(-x)), the IR.h definition, in this order.
        llvm::Value* e = math_call("exp", {b_.CreateFNeg(A(0))});
        llvm::Constant* one = cfp(fty, 1.0, w);
        return b_.CreateFDiv(one, b_.CreateFAdd(one, e));
      }
      case Op::Sign: {
        // ir::sign_of: -1, +0 (for both zeros) or 1; NaN stays NaN (x != x selects x itself).
        llvm::Value* x = A(0);
        llvm::Value* r = b_.CreateSelect(b_.CreateFCmpUNO(x, x), x, cfp(fty, 0.0, w));
        r = b_.CreateSelect(b_.CreateFCmpOLT(x, cfp(fty, 0.0, w)), cfp(fty, -1.0, w), r);
        return b_.CreateSelect(b_.CreateFCmpOGT(x, cfp(fty, 0.0, w)), cfp(fty, 1.0, w), r);
      }
      case Op::Add: return b_.CreateFAdd(A(0), A(1));
      case Op::Sub: return b_.CreateFSub(A(0), A(1));
      case Op::Mul: return b_.CreateFMul(A(0), A(1));
      case Op::Div: return b_.CreateFDiv(A(0), A(1));
      case Op::Pow: return math_call("pow", {A(0), A(1)});
      case Op::Atan2: return math_call("atan2", {A(0), A(1)});
      case Op::Mod: {
        // ir::floored_mod: r = fmod(a, b) (LLVM's frem is C's fmod); r + b where r != 0 (or NaN)
        // and the signs of r and b differ; a zero remainder takes b's sign.
        llvm::Value* a = A(0);
        llvm::Value* bb = A(1);
        llvm::Value* zero = cfp(fty, 0.0, w);
        llvm::Value* r = b_.CreateFRem(a, bb);
        llvm::Value* differ = b_.CreateXor(b_.CreateFCmpOLT(r, zero), b_.CreateFCmpOLT(bb, zero));
        llvm::Value* nonzero = b_.CreateFCmpUNE(r, zero);
        llvm::Value* fixed = b_.CreateSelect(differ, b_.CreateFAdd(r, bb), r);
        llvm::Value* signed_zero = b_.CreateBinaryIntrinsic(llvm::Intrinsic::copysign, zero, bb);
        return b_.CreateSelect(nonzero, fixed, signed_zero);
      }
      case Op::Min:
      case Op::Max: return ieee_min_max(nd.op == Op::Min, A(0), A(1));
      case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne: {
        llvm::Value* a = get(nd.args[0], dt);
        llvm::Value* bb = get(nd.args[1], dt);
        switch (nd.op) {
          case Op::Lt: return b_.CreateFCmpOLT(a, bb);
          case Op::Le: return b_.CreateFCmpOLE(a, bb);
          case Op::Gt: return b_.CreateFCmpOGT(a, bb);
          case Op::Ge: return b_.CreateFCmpOGE(a, bb);
          case Op::Eq: return b_.CreateFCmpOEQ(a, bb);
          default: return b_.CreateFCmpUNE(a, bb);  // C++ != : true when either is NaN
        }
      }
      case Op::Select: {
        llvm::Value* m = get(nd.args[0], false);
        return b_.CreateSelect(m, get(nd.args[1], dt), get(nd.args[2], dt));
      }
      case Op::Input:
      case Op::Param:
      case Op::Member:
      case Op::Members: break;
    }
    internal_error(std::string("LLVM codegen: unexpected node ") + ir::op_name(nd.op));
  }

  // ir::ieee_minimum / ieee_maximum (IEEE 754-2019 minimum/maximum) as selects, same order:
  // a<b ? a : b<a ? b : a==b ? (pick -0 for min, +0 for max) : (isnan(a) ? a : b).
  llvm::Value* ieee_min_max(bool is_min, llvm::Value* a, llvm::Value* bb) {
    llvm::Type* it = llvm::Type::getIntNTy(ctx_, a->getType()->getScalarSizeInBits());
    if (auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(a->getType())) it = llvm::FixedVectorType::get(it, vt->getNumElements());
    llvm::Value* a_neg = b_.CreateICmpSLT(b_.CreateBitCast(a, it), llvm::Constant::getNullValue(it));
    llvm::Value* zeros = is_min ? b_.CreateSelect(a_neg, a, bb) : b_.CreateSelect(a_neg, bb, a);
    llvm::Value* r = b_.CreateSelect(b_.CreateFCmpUNO(a, a), a, bb);
    r = b_.CreateSelect(b_.CreateFCmpOEQ(a, bb), zeros, r);
    r = b_.CreateSelect(is_min ? b_.CreateFCmpOLT(bb, a) : b_.CreateFCmpOGT(bb, a), bb, r);
    return b_.CreateSelect(is_min ? b_.CreateFCmpOLT(a, bb) : b_.CreateFCmpOGT(a, bb), a, r);
  }

  llvm::Value* unary_intrinsic(llvm::Intrinsic::ID id, llvm::Value* x) {
    llvm::Function* f = llvm::Intrinsic::getDeclaration(mod_, id, {x->getType()});
    return b_.CreateCall(f, {x});
  }
  // A transcendental function: SLEEF's (backend/llvm/Sleef.h), whose lane function is the
  // interpreter's (ir/Math.h), so results are bit-identical to it. A vector of W lanes is done by
  // a helper `nyto.<fn>.<type>` emitted once per module (each use costs one call in the kernel
  // body, not one per piece with every live vector spilled around it), which calls SLEEF's vector
  // form of math_lanes_ lanes (the hardware vector) on each piece of that many lanes, or the
  // scalar form per lane where SLEEF has no form that wide or a piece's arguments are beyond
  // sleef_vector_bound (bounded_call). The functions are pure (no errno):
  // marked as not touching memory, so LLVM may hoist or merge calls on equal arguments.
  llvm::Value* math_call(const std::string& fn, std::vector<llvm::Value*> xs) {
    llvm::Type* t = xs[0]->getType();
    auto* vt = llvm::dyn_cast<llvm::FixedVectorType>(t);
    const bool f64 = t->getScalarType()->isDoubleTy();
    if (!vt) return sleef_call(sleef_function(fn, f64, 1), xs);
    const int w = int(vt->getNumElements());
    int piece = std::min(w, math_lanes_);
    std::string vector_fn = piece > 1 ? sleef_function(fn, f64, piece) : std::string();
    if (vector_fn.empty()) piece = 1;
    std::string helper = "nyto." + fn + "." + (f64 ? "f64x" : "f32x") + std::to_string(w);
    llvm::Function* f = mod_->getFunction(helper);
    if (!f) {
      std::vector<llvm::Type*> params(xs.size(), vt);
      f = helper_function(llvm::FunctionType::get(vt, params, false), helper);
      auto ip = b_.saveIP();
      b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", f));
      std::vector<llvm::Value*> args;
      for (llvm::Argument& x : f->args()) args.push_back(&x);
      llvm::Value* r = piece == 1 ? per_lane(sleef_function(fn, f64, 1), args) : llvm::PoisonValue::get(vt);
      for (int p0 = 0; piece > 1 && p0 < w; p0 += piece) {
        std::vector<llvm::Value*> part;
        std::vector<int> lanes(piece), widen(w, -1);
        for (int l = 0; l < piece; ++l) lanes[l] = p0 + l;
        for (llvm::Value* x : args) part.push_back(piece == w ? x : b_.CreateShuffleVector(x, lanes));
        llvm::Value* y = bounded_call(fn, f64, vector_fn, part);
        if (piece == w) {
          r = y;
          break;
        }
        // Insert the piece's lanes: y widened to w lanes, then picked lane by lane.
        for (int l = 0; l < piece; ++l) widen[l] = l;
        llvm::Value* wide = b_.CreateShuffleVector(y, widen);
        std::vector<int> pick(w);
        for (int l = 0; l < w; ++l) pick[l] = l >= p0 && l < p0 + piece ? w + (l - p0) : l;
        r = b_.CreateShuffleVector(r, wide, pick);
      }
      b_.CreateRet(r);
      b_.restoreIP(ip);
    }
    return b_.CreateCall(f, xs);
  }
  // The vector form on `xs` where every lane is within sleef_vector_bound, else the scalar form
  // lane by lane: the scalar form's bits either way.
  llvm::Value* bounded_call(const std::string& fn, bool f64, const std::string& vector_fn,
                            const std::vector<llvm::Value*>& xs) {
    const double bound = sleef_vector_bound(fn, f64);
    if (bound == 0) return sleef_call(vector_fn, xs);
    llvm::Value* x = xs[0];
    auto* vt = llvm::cast<llvm::FixedVectorType>(x->getType());
    llvm::Value* inside = b_.CreateFCmpOLT(unary_intrinsic(llvm::Intrinsic::fabs, x),
                                           llvm::ConstantFP::get(vt, bound));  // false for NaN
    llvm::Function* f = b_.GetInsertBlock()->getParent();
    auto* fast = llvm::BasicBlock::Create(ctx_, fn + ".vector", f);
    auto* slow = llvm::BasicBlock::Create(ctx_, fn + ".lanes", f);
    auto* join = llvm::BasicBlock::Create(ctx_, fn + ".join", f);
    b_.CreateCondBr(b_.CreateAndReduce(inside), fast, slow);
    b_.SetInsertPoint(fast);
    llvm::Value* y_fast = sleef_call(vector_fn, xs);
    b_.CreateBr(join);
    b_.SetInsertPoint(slow);
    llvm::Value* y_slow = per_lane(sleef_function(fn, f64, 1), xs);
    b_.CreateBr(join);
    b_.SetInsertPoint(join);
    llvm::PHINode* y = b_.CreatePHI(vt, 2);
    y->addIncoming(y_fast, fast);
    y->addIncoming(y_slow, slow);
    return y;
  }
  // The scalar function `scalar_fn` on every lane of the vectors `xs`.
  llvm::Value* per_lane(const std::string& scalar_fn, const std::vector<llvm::Value*>& xs) {
    auto* vt = llvm::cast<llvm::FixedVectorType>(xs[0]->getType());
    llvm::Value* r = llvm::PoisonValue::get(vt);
    for (unsigned l = 0; l < vt->getNumElements(); ++l) {
      std::vector<llvm::Value*> lane;
      for (llvm::Value* a : xs) lane.push_back(b_.CreateExtractElement(a, l));
      r = b_.CreateInsertElement(r, sleef_call(scalar_fn, lane), l);
    }
    return r;
  }
  llvm::Value* sleef_call(const std::string& name, const std::vector<llvm::Value*>& xs) {
    llvm::Type* t = xs[0]->getType();
    std::vector<llvm::Type*> params(xs.size(), t);
    auto callee = mod_->getOrInsertFunction(name, llvm::FunctionType::get(t, params, false));
    if (auto* f = llvm::dyn_cast<llvm::Function>(callee.getCallee())) {
      f->addFnAttr(llvm::Attribute::NoUnwind);
      f->addFnAttr(llvm::Attribute::WillReturn);
      f->setDoesNotAccessMemory();
    }
    return b_.CreateCall(callee, xs);
  }

  // ---- random numbers: Philox4x32-10, bit for bit backend/Random.h ---------------------------
  struct Words {
    llvm::Value* r[4];
  };
  // Philox4x32-10 (Salmon et al., SC 2011, "Parallel random numbers: as easy as 1, 2, 3"), the
  // same round function as rng::philox4x32_10. Every 32-bit word lives in the low half of a
  // 64-bit lane for all ten rounds: a 32x32->64 product is then one (v)pmuludq on the masked
  // lanes (the backend drops the masks: pmuludq reads only the low halves), hi is one shift, and
  // no lane packing or unpacking happens between rounds. The upper halves of lo/xor results are
  // don't-care; only low halves are ever used (masked before each multiply, truncated at the end).
  // The element word differs per lane; the other words and the keys are uniform, so LICM hoists
  // the uniform part of the first two rounds out of the loop.
  // The uniform inputs of one Philox call: round keys (k + round * W mod 2^32) and counter words
  // c1..c3, all i32 scalars.
  struct PhiloxKey {
    llvm::Value* k[2][10];
    llvm::Value* c1;
    llvm::Value* c2;
    llvm::Value* c3;
  };
  // Round keys from the two key words, as i32 adds at the insertion point.
  void round_keys(llvm::Value* k0, llvm::Value* k1, llvm::Value* (&out)[2][10]) {
    for (int r = 0; r < 10; ++r) {
      out[0][r] = r == 0 ? k0 : b_.CreateAdd(out[0][r - 1], b_.getInt32(rng::kPhiloxW0));
      out[1][r] = r == 0 ? k1 : b_.CreateAdd(out[1][r - 1], b_.getInt32(rng::kPhiloxW1));
    }
  }
  // The rounds on the w calls of c0 (i32 lanes), each word back in lane order.
  Words philox_rounds(llvm::Value* c0, const PhiloxKey& key, int w) {
    if (!packs(w)) return packed_rounds(c0, key, w);
    std::vector<int> to_qword(static_cast<size_t>(w));  // 64-bit lane s takes lane lane_of_qword(s)'s call
    for (int s = 0; s < w; ++s) to_qword[size_t(s)] = lane_of_qword(s);
    return packed_rounds(b_.CreateShuffleVector(c0, to_qword), key, w);
  }
  // The same on calls c0 already in the 64-bit lanes pack_source gives them (lane order where w
  // does not pack), each word packed to lane order.
  Words packed_rounds(llvm::Value* c0, const PhiloxKey& key, int w) {
    Words r = philox_rounds64(c0, key, w);
    for (llvm::Value*& word : r.r) word = packs(w) ? pack_low_halves(word, w) : b_.CreateTrunc(word, vec(i32_, w));
    return r;
  }
  // The words of a round's 64-bit lanes go back to i32 lanes at the end. In lane order that is a
  // truncation, which LLVM 16 lowers to two vpmovqd and an insert per 16 lanes on AVX-512 (5 uops
  // on the shuffle port of Intel cores) and to 6 shuffles on AVX2. Instead, lane o's call is put
  // in the 64-bit lane pack_source(o), from which one (v)shufps per register (imm 0x88: the low
  // halves of a 128-bit part of two registers) brings each low half to its place. With 2-qword
  // registers (SSE) that is lane order itself.
  int pack_source(int o) const {
    const int r2 = 2 * pack_qwords_, p = o / r2, r = o % r2, k = r / 4, j = r % 4;
    return (2 * p + (j >= 2 ? 1 : 0)) * pack_qwords_ + 2 * k + (j & 1);
  }
  // Its inverse: the lane whose call 64-bit lane s holds.
  int lane_of_qword(int s) const {
    const int reg = s / pack_qwords_, q = s % pack_qwords_;
    return (reg / 2) * 2 * pack_qwords_ + 4 * (q / 2) + 2 * (reg % 2) + (q & 1);
  }
  // Whether w lanes are whole pairs of registers (else a truncation packs them).
  bool packs(int w) const { return pack_qwords_ >= 2 && w % (2 * pack_qwords_) == 0; }
  llvm::Value* pack_low_halves(llvm::Value* v64, int w) {
    std::vector<int> m(static_cast<size_t>(w));
    for (int o = 0; o < w; ++o) m[size_t(o)] = 2 * pack_source(o);
    return b_.CreateShuffleVector(b_.CreateBitCast(v64, vec(i32_, 2 * w)), m);
  }
  // The same rounds, the words left in the low halves of their 64-bit lanes (inline_words packs them).
  Words philox_rounds64(llvm::Value* c0, const PhiloxKey& key, int w) {
    llvm::Type* t64 = vec(i64_, w);
    auto wide = [&](llvm::Value* v32) { return splat(b_.CreateZExt(v32, i64_), w); };
    llvm::Value* c1 = wide(key.c1);
    llvm::Value* c2 = wide(key.c2);
    llvm::Value* c3 = wide(key.c3);
    llvm::Constant* low = ci64(0xFFFFFFFFull, w);
    c0 = b_.CreateZExt(c0, t64);
    for (int round = 0; round < 10; ++round) {
      llvm::Value* k0 = wide(key.k[0][round]);
      llvm::Value* k1 = wide(key.k[1][round]);
      llvm::Value* p0 = b_.CreateMul(b_.CreateAnd(c0, low), ci64(rng::kPhiloxM0, w));
      llvm::Value* p1 = b_.CreateMul(b_.CreateAnd(c2, low), ci64(rng::kPhiloxM1, w));
      llvm::Value* hi0 = high_to_low(p0, w);
      llvm::Value* hi1 = high_to_low(p1, w);
      llvm::Value* n0 = b_.CreateXor(b_.CreateXor(hi1, c1), k0);
      llvm::Value* n2 = b_.CreateXor(b_.CreateXor(hi0, c3), k1);
      c0 = n0, c1 = p1, c2 = n2, c3 = p0;
    }
    return {{c0, c1, c2, c3}};
  }
  // Each lane's high half copied into its low half (the high half keeps its value: don't-care).
  // A shift by 32 would do, but x86 runs vector shifts on the port of the multiplies (port 0 of
  // the Intel cores with AVX-512, where 512-bit float math runs too), and the rounds are bound by
  // that port: a dword shuffle (pshufd) runs on port 5, beside them.
  llvm::Value* high_to_low(llvm::Value* v64, int w) {
    std::vector<int> m(size_t(2 * w));
    for (int l = 0; l < 2 * w; ++l) m[size_t(l)] = l | 1;
    llvm::Value* d = b_.CreateBitCast(v64, vec(i32_, 2 * w));
    return b_.CreateBitCast(b_.CreateShuffleVector(d, d, m), v64->getType());
  }
  // The uniform Philox words of a large kernel, stored once in the entry block: i32 k0, k1, c1,
  // c2, group << 16 (backend/Random.h key layout).
  void store_philox_key() {
    llvm::Type* key_ty = llvm::ArrayType::get(i32_, 5);
    philox_key_ = b_.CreateAlloca(key_ty, nullptr, "philox.key");
    llvm::Value* words[] = {key0_, key1_, ctr1_, ctr2_, group_shl_};
    for (unsigned k = 0; k < 5; ++k)
      b_.CreateStore(words[k], b_.CreateConstInBoundsGEP2_32(key_ty, philox_key_, 0, k));
  }
  // Large kernel: the draws of one site by one call of a helper, which does the ten rounds and the
  // conversions (Box-Muller included). Its arguments are the block's first call (or the element
  // index), a constant and two stack addresses, so nothing per site is computed before the loop
  // and no constant stays live across the calls (LICM hoisted one value per site, all live across
  // the loop: register allocation then grew quadratically).
  // In a block: the S slot vectors of the block (nyto.draw.block.K).
  std::vector<llvm::Value*> draw_block_large(uint32_t site, bool normal) {
    const int S = int(slots()), L = int(rng::kCallLanes);
    llvm::Type* vt = vec(elem_, L);
    if (!block_buf_) block_buf_ = entry_alloca(llvm::ArrayType::get(vt, unsigned(S)), "draw.block");
    b_.CreateCall(draw_block_function(normal), {block_buf_, philox_key_, call_base_, b_.getInt32(site)});
    std::vector<llvm::Value*> out;
    for (int j = 0; j < S; ++j) out.push_back(b_.CreateLoad(vt, b_.CreateConstInBoundsGEP1_64(vt, block_buf_, uint64_t(j))));
    return out;
  }
  // Outside blocks (a chunk kernel): the w draws at index_ (nyto.draw.W.K).
  llvm::Value* draw_large(uint32_t site, bool normal, int w) {
    llvm::Type* vt = vec(elem_, w);
    llvm::Value*& buf = draw_buf_[w];
    if (!buf) buf = entry_alloca(vt, "draw.buf");
    b_.CreateCall(draw_function(normal, w), {buf, philox_key_, index_, b_.getInt32(site)});
    return b_.CreateLoad(vt, buf);
  }
  // The key of a helper from the stored words (store_philox_key) and the site.
  PhiloxKey helper_key(llvm::Function* f) {
    llvm::Type* key_ty = llvm::ArrayType::get(i32_, 5);
    llvm::Value* kw[5];
    for (unsigned k = 0; k < 5; ++k)
      kw[k] = b_.CreateLoad(i32_, b_.CreateConstInBoundsGEP2_32(key_ty, f->getArg(1), 0, k));
    PhiloxKey key{{}, kw[2], kw[3], b_.CreateOr(kw[4], f->getArg(3))};
    round_keys(kw[0], kw[1], key.k);
    return key;
  }
  // void nyto.draw.block.K(ptr out, ptr key, i32 call_base, i32 site): the S slot vectors of site
  // `site` (K: u uniform, n normal) for the block whose first call is call_base, stored to out; key
  // as store_philox_key.
  llvm::Function* draw_block_function(bool normal) {
    std::string name = std::string("nyto.draw.block.") + (normal ? 'n' : 'u');
    if (llvm::Function* f = mod_->getFunction(name)) return f;
    auto* fty = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_, ptr_, i32_, i32_}, false);
    llvm::Function* f = helper_function(fty, name);
    auto ip = b_.saveIP();
    llvm::Value* saved_base = call_base_;
    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", f));
    call_base_ = f->getArg(2);
    std::vector<llvm::Value*> v = block_slots(normal, inline_words(helper_key(f)));
    llvm::Type* vt = vec(elem_, int(rng::kCallLanes));
    for (size_t j = 0; j < v.size(); ++j) b_.CreateStore(v[j], b_.CreateConstInBoundsGEP1_64(vt, f->getArg(0), j));
    b_.CreateRetVoid();
    call_base_ = saved_base;
    b_.restoreIP(ip);
    return f;
  }
  // void nyto.draw.W.K(ptr out, ptr key, i64 index, i32 site): the draws of site `site` for the W
  // elements index, index + 1, ... (lane_draw), stored to out.
  llvm::Function* draw_function(bool normal, int w) {
    std::string name = "nyto.draw." + std::to_string(w) + "." + (normal ? 'n' : 'u');
    if (llvm::Function* f = mod_->getFunction(name)) return f;
    auto* fty = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_, ptr_, i64_, i32_}, false);
    llvm::Function* f = helper_function(fty, name);
    auto ip = b_.saveIP();
    b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", f));
    b_.CreateStore(lane_draw(helper_key(f), normal, f->getArg(2), w), f->getArg(0));
    b_.CreateRetVoid();
    b_.restoreIP(ip);
    return f;
  }
  // An internal, never-inlined helper of the kernel (emitted once per module).
  llvm::Function* helper_function(llvm::FunctionType* fty, const std::string& name) {
    llvm::Function* f = llvm::Function::Create(fty, llvm::Function::InternalLinkage, name, *mod_);
    f->addFnAttr(llvm::Attribute::NoInline);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    f->addFnAttr(llvm::Attribute::NoRecurse);
    return f;
  }

  // The key of a draw under the run's seed (the round keys of the entry block) with counter
  // words c1..c3.
  PhiloxKey seed_key(llvm::Value* c1, llvm::Value* c2, llvm::Value* c3) {
    PhiloxKey key{{}, c1, c2, c3};
    std::copy(&round_key_[0][0], &round_key_[0][0] + 20, &key.k[0][0]);
    return key;
  }
  NodeId node_id(const ir::Node& nd) const { return NodeId(&nd - g_.nodes.data()); }
  // The key of rand() / randn() site `site`, and of keyed draw `nd` (c1 = j, c2 = k).
  PhiloxKey site_key(uint32_t site) { return seed_key(ctr1_, ctr2_, b_.CreateOr(group_shl_, b_.getInt32(site))); }
  PhiloxKey keyed_key(const ir::Node& nd) {
    return seed_key(key_word(nd.args[1]), key_word(nd.args[0]),
                    b_.CreateOr(group_shl_, b_.getInt32(0x8000u | uint32_t(nd.op == Op::KRandn))));
  }

  // rand() / randn(): rng::draw_f32 / draw_f64, counter (call, member, invocation,
  // group << 16 | site).
  llvm::Value* emit_random(const ir::Node& nd, int w) {
    const bool normal = nd.op == Op::Randn;
    const uint32_t site = uint32_t(nd.index);
    if (block_body_ != -1) return block_slice(nd, w);
    if (window_) return window_slice(nd, w);
    if (large_) return draw_large(site, normal, w);
    return lane_draw(site_key(site), normal, index_, w);
  }
  // The S slot vectors of draw node `nd` (rand, randn or keyed) for each of the group_blocks_
  // blocks from call_base_ on, block after block.
  std::vector<llvm::Value*> make_block_draws(const ir::Node& nd) {
    const int nb = group_blocks_, q = nb * int(rng::kCallLanes);
    std::vector<llvm::Value*> out;
    auto add = [&](const std::vector<llvm::Value*>& v) { out.insert(out.end(), v.begin(), v.end()); };
    // Block i's call base, for the draws made block by block.
    auto each_block = [&](const std::function<std::vector<llvm::Value*>()>& make) {
      llvm::Value* base = call_base_;
      for (int i = 0; i < nb; ++i) {
        call_base_ = i == 0 ? base : b_.CreateAdd(base, b_.getInt32(uint32_t(i) * rng::kCallLanes));
        add(make());
      }
      call_base_ = base;
    };
    auto from_words = [&](bool normal, llvm::Value* words) {
      for (int i = 0; i < nb; ++i)
        add(block_slots(normal, load_words(b_.CreateConstInBoundsGEP1_64(i32_, words, uint64_t(i) * rng::kCallLanes), q)));
    };
    if (ir::is_keyed(nd.op)) {
      const bool normal = nd.op == Op::KRandn;
      if (keyed_words_) {
        from_words(normal, keyed_words(key_word(nd.args[1]), key_word(nd.args[0]), 0x8000u | uint32_t(normal)));
      } else {
        const PhiloxKey key = keyed_key(nd);
        each_block([&] { return block_slots(normal, inline_words(key)); });
      }
      return out;
    }
    const bool normal = nd.op == Op::Randn;
    const uint32_t site = uint32_t(nd.index);
    if (large_) {
      each_block([&] { return draw_block_large(site, normal); });
    } else if (shared_words()) {
      const auto slot = std::find(sites_.begin(), sites_.end(), site) - sites_.begin();
      from_words(normal, b_.CreateConstInBoundsGEP1_64(i32_, site_words(), uint64_t(slot) * 4 * uint64_t(q)));
    } else {
      const PhiloxKey key = site_key(site);
      each_block([&] { return block_slots(normal, inline_words(key)); });
    }
    return out;
  }
  // A keyed draw's key word: the keys are uniform doubles, integers in [0, 2^32) (the prelude
  // checked them), so fptoui is exact.
  llvm::Value* key_word(NodeId a) { return b_.CreateTrunc(b_.CreateFPToUI(uni_[a], i64_), i32_); }

  // A member draw from the Philox words, exactly as rng::member_draw: a double uniform from
  // r[0..1], a normal by Box-Muller on all four.
  llvm::Value* member_from_words(const Words& p, bool normal) {
    if (!normal) return uniform_f64_from(bits53(p.r[0], p.r[1], 1), 1);
    return box_muller(u1_f64_from(bits53(p.r[0], p.r[1], 1), 1), uniform_f64_from(bits53(p.r[2], p.r[3], 1), 1), 1,
                      true);
  }

  // mrand() / mrandn(): one double per member (rng::member_draw), computed once before the loop.
  llvm::Value* emit_member_draw(const ir::Node& nd) {
    Words words = philox_rounds(b_.getInt32(0), seed_key(ctr1_, ctr2_, b_.getInt32(0xFFFF0000u | uint32_t(nd.index))), 1);
    return member_from_words(words, nd.op == Op::MRandn);
  }

  // rand(k, j) / randn(k, j): rng::keyed_f32 / keyed_f64.
  llvm::Value* emit_keyed_draw(const ir::Node& nd, int w) {
    if (block_body_ != -1) return block_slice(nd, w);
    if (window_) return window_slice(nd, w);
    return lane_draw(keyed_key(nd), nd.op == Op::KRandn, index_, w);
  }
  // Whether a block's rand() / randn() words come from nyto_philox_words (backend/llvm/Philox.h):
  // in a kernel built with shared_draws (the JIT's first tier) that inlines its sites (not large_).
  bool shared_words() const { return shared_draws_ && !large_; }
  // The call of nyto_philox_words for the block at call_base_: `nsites` sites of `sites`, keyed by
  // the 5 words at `key`, its 16 calls into `buf`.
  void call_words(llvm::Value* key, llvm::Value* sites, uint32_t nsites, llvm::Value* buf) {
    llvm::FunctionCallee fn = mod_->getOrInsertFunction(
        kPhiloxWordsSymbol, llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_),
                                                    {ptr_, ptr_, i32_, i32_, i32_, i32_, ptr_}, false));
    if (auto* f = llvm::dyn_cast<llvm::Function>(fn.getCallee()); f && !f->hasFnAttribute(llvm::Attribute::NoUnwind)) {
      // It reads key and sites and writes out, nothing else: loads and stores of the rows move
      // freely around the call.
      f->addFnAttr(llvm::Attribute::NoUnwind);
      f->addFnAttr(llvm::Attribute::WillReturn);
      f->addFnAttr(llvm::Attribute::NoSync);
      f->setOnlyAccessesArgMemory();
      for (unsigned a : {0u, 1u}) f->addParamAttr(a, llvm::Attribute::ReadOnly), f->addParamAttr(a, llvm::Attribute::NoCapture);
      f->addParamAttr(6, llvm::Attribute::WriteOnly);
      f->addParamAttr(6, llvm::Attribute::NoCapture);
      f->addParamAttr(6, llvm::Attribute::NoAlias);
    }
    b_.CreateCall(fn, {key, sites, b_.getInt32(nsites), call_base_, b_.getInt32(0xFFFFFFFFu),
                       b_.getInt32(group_blocks_ * int32_t(rng::kCallLanes)), buf});
  }
  // An entry-block alloca of `t` (64-byte aligned), emitted before everything else there.
  llvm::Value* entry_alloca(llvm::Type* t, const char* name) {
    auto ip = b_.saveIP();
    b_.SetInsertPoint(&fn_->getEntryBlock(), fn_->getEntryBlock().begin());
    auto* a = b_.CreateAlloca(t, nullptr, name);
    a->setAlignment(llvm::Align(64));
    b_.restoreIP(ip);
    return a;
  }
  // An entry-block alloca of n i32.
  llvm::Value* entry_words(uint64_t n, const char* name) { return entry_alloca(llvm::ArrayType::get(i32_, n), name); }
  // The words of one keyed draw (counter words c1, c2, site `site`) for the block at call_base_:
  // a call of nyto_philox_words of its own, its counter words stored just before (the key words
  // and group, the same for every keyed draw, once in the entry block). Its words are loaded
  // right after (load_words), so every keyed site shares one buffer.
  llvm::Value* keyed_words(llvm::Value* c1, llvm::Value* c2, uint32_t site) {
    llvm::Type* key_ty = llvm::ArrayType::get(i32_, 5);
    if (!keyed_key_) {
      keyed_key_ = entry_words(5, "philox.keyed.key");
      auto ip = b_.saveIP();
      b_.SetInsertPoint(fn_->getEntryBlock().getTerminator());  // after emit_entry's key words
      for (auto [k, v] : {std::pair<unsigned, llvm::Value*>{0, key0_}, {1, key1_}, {4, group_shl_}})
        b_.CreateStore(v, b_.CreateConstInBoundsGEP2_32(key_ty, keyed_key_, 0, k));
      b_.restoreIP(ip);
    }
    if (!keyed_buf_)
      keyed_buf_ = entry_words(4 * uint64_t(rng::kCallLanes) * uint64_t(blocks_per_iteration()), "philox.keyed.words");
    llvm::GlobalVariable*& sites = keyed_sites_[site & 1];
    if (!sites)
      sites = new llvm::GlobalVariable(*mod_, llvm::ArrayType::get(i32_, 1), true, llvm::GlobalValue::PrivateLinkage,
                                       llvm::ConstantDataArray::get(ctx_, llvm::ArrayRef<uint32_t>(site)),
                                       "philox.keyed.site");
    b_.CreateStore(c1, b_.CreateConstInBoundsGEP2_32(key_ty, keyed_key_, 0, 2));
    b_.CreateStore(c2, b_.CreateConstInBoundsGEP2_32(key_ty, keyed_key_, 0, 3));
    call_words(keyed_key_, sites, 1, keyed_buf_);
    return keyed_buf_;
  }
  // The words of every site for the block at call_base_: one call of nyto_philox_words per block
  // (emitted at the block's first draw), into a buffer of the entry block.
  llvm::Value* site_words() {
    if (words_at_) return words_at_;
    if (!words_buf_)
      words_buf_ = entry_words(uint64_t(sites_.size()) * 4 * rng::kCallLanes * uint64_t(blocks_per_iteration()),
                               "philox.words");
    if (!philox_key_) {  // after the key words of the entry block (emit_entry)
      auto ip = b_.saveIP();
      b_.SetInsertPoint(fn_->getEntryBlock().getTerminator());
      store_philox_key();
      b_.restoreIP(ip);
    }
    if (!sites_global_) {
      auto* init = llvm::ConstantDataArray::get(ctx_, sites_);
      sites_global_ = new llvm::GlobalVariable(*mod_, init->getType(), true, llvm::GlobalValue::PrivateLinkage,
                                               init, "philox.sites");
    }
    call_words(philox_key_, sites_global_, uint32_t(sites_.size()), words_buf_);
    return words_at_ = words_buf_;
  }

  // ---- the draws of a block (backend/Random.h's lane-major layout) ---------------------------
  using BlockWords = std::array<llvm::Value*, 4>;  // word j of the block's 16 calls, <16 x i32>
  // The words of 16 calls at `at` (nyto_philox_words' layout for q calls: word j of call t at
  // q j + t).
  BlockWords load_words(llvm::Value* at, int q = int(rng::kCallLanes)) {
    BlockWords r;
    for (int j = 0; j < 4; ++j)
      r[size_t(j)] = b_.CreateAlignedLoad(vec(i32_, 16), b_.CreateConstInBoundsGEP1_64(i32_, at, uint64_t(q * j)),
                                          llvm::Align(64));
    return r;
  }
  // The words of the block's 16 calls (call_base_ + lane) under `key`: the rounds inline, on
  // 64-bit lanes, each call in the lane pack_source puts it, then each word packed.
  BlockWords inline_words(const PhiloxKey& key) {
    const int L = int(rng::kCallLanes);
    std::vector<llvm::Constant*> calls;  // the call of each 64-bit lane (pack_source)
    for (int s = 0; s < L; ++s) calls.push_back(b_.getInt32(uint32_t(packs(L) ? lane_of_qword(s) : s)));
    Words r = packed_rounds(b_.CreateAdd(splat(call_base_, L), llvm::ConstantVector::get(calls)), key, L);
    return {r.r[0], r.r[1], r.r[2], r.r[3]};
  }
  // The S slot vectors (16 lanes each, the dtype) of one site's block: rng::lane_draw_f32 /
  // slot_f64 op for op. A normal's pair shares one logarithm and square root (r cos and r sin).
  std::vector<llvm::Value*> block_slots(bool normal, const BlockWords& r) {
    const int L = int(rng::kCallLanes);
    if (spec_.dtype == DType::F64) {
      llvm::Value* a = bits53(r[0], r[1], L);
      llvm::Value* c = bits53(r[2], r[3], L);
      if (!normal) return {uniform_f64_from(a, L), uniform_f64_from(c, L)};
      llvm::Value* rad = radius(u1_f64_from(a, L), L, true);
      llvm::Value* u2 = uniform_f64_from(c, L);
      llvm::Value* all = b_.CreateFMul(concat(rad, rad), cos2pi(concat(u2, quarter_shift(u2, L, true)), 2 * L, true));
      return {lanes_of(all, 0, L), lanes_of(all, L, L)};
    }
    llvm::Value* bits[5];
    for (int j = 0; j < 4; ++j) bits[j] = b_.CreateLShr(r[size_t(j)], 8);
    bits[4] = fifth_bits(r[0], r[1], r[2], L);
    if (!normal) {
      std::vector<llvm::Value*> out;
      for (llvm::Value* x : bits) out.push_back(f32_of_bits(x, false, L));
      return out;
    }
    // Slots 0-3: pairs (0, 1) and (2, 3); all = [cos 0 | cos 2 | sin 1 | sin 3] of 16 lanes each.
    llvm::Value* u1 = f32_of_bits(concat(bits[0], bits[2]), true, 2 * L);
    llvm::Value* u2 = f32_of_bits(concat(bits[1], bits[3]), false, 2 * L);
    llvm::Value* rad = radius(u1, 2 * L, false);
    llvm::Value* all = b_.CreateFMul(concat(rad, rad), cos2pi(concat(u2, quarter_shift(u2, 2 * L, false)), 4 * L, false));
    // Slot 4: lanes 0-7 pair with lanes 8-15: [cos | sin] of 8 lanes each.
    const int H = L / 2;
    llvm::Value* v1 = f32_of_bits(lanes_of(bits[4], 0, H), true, H);
    llvm::Value* v2 = f32_of_bits(lanes_of(bits[4], H, H), false, H);
    llvm::Value* rad4 = radius(v1, H, false);
    llvm::Value* s4 = b_.CreateFMul(concat(rad4, rad4), cos2pi(concat(v2, quarter_shift(v2, H, false)), L, false));
    return {lanes_of(all, 0, L), lanes_of(all, 2 * L, L), lanes_of(all, L, L), lanes_of(all, 3 * L, L), s4};
  }
  // rng::fifth_bits: float32 slot 4's 24 bits, (r0 ^ r1 << 8 ^ r2 << 16) mod 2^24.
  llvm::Value* fifth_bits(llvm::Value* r0, llvm::Value* r1, llvm::Value* r2, int w) {
    return b_.CreateAnd(b_.CreateXor(b_.CreateXor(r0, b_.CreateShl(r1, 8)), b_.CreateShl(r2, 16)), ci32(0xFFFFFFu, w));
  }
  // Lanes first .. first + n - 1 of v.
  llvm::Value* lanes_of(llvm::Value* v, int first, int n) {
    if (n == 1) return b_.CreateExtractElement(v, uint64_t(first));
    std::vector<int> m(static_cast<size_t>(n));
    for (int l = 0; l < n; ++l) m[size_t(l)] = first + l;
    return b_.CreateShuffleVector(v, m);
  }
  // Draw node `nd` for the body being emitted (w lanes at index_): in a block emitted as a loop,
  // loaded from its stack buffer; unrolled, the block's slot vectors (made at the node's first use
  // in the block) sliced for body block_body_.
  llvm::Value* block_slice(const ir::Node& nd, int w) {
    const NodeId id = node_id(nd);
    if (block_body_ == kLoopBody) {
      llvm::Value* at = b_.CreateGEP(elem_, draw_stack_.at(id), part_offset_);
      return b_.CreateAlignedLoad(vec(elem_, w), at, llvm::Align(elem_bytes()));
    }
    auto it = block_draws_.find(id);
    if (it == block_draws_.end()) it = block_draws_.emplace(id, make_block_draws(nd)).first;
    const int L = int(rng::kCallLanes), first = block_body_ * w;
    llvm::Value* v = it->second[size_t(first / L)];
    return w == L ? v : lanes_of(v, first % L, w);
  }

  // The draws of the w elements index .. index + w - 1, each lane its own call (rng::draw_f32 /
  // draw_f64 op for op): a chunk kernel (its vector iterations start anywhere in a block), the
  // scalar-only shape and a large chunk kernel's helper. A float32 normal of slot 4 needs the
  // words of its partner lane's call too (lane l ^ 8), so it does two calls per lane.
  llvm::Value* lane_draw(const PhiloxKey& key, bool normal, llvm::Value* index, int w) {
    const bool f64 = spec_.dtype == DType::F64;
    const uint32_t B = rng::block_elems(f64);
    // element index + l = B (block + q) + rr, rr < B: call 16 (block + q) + rr mod 16, slot rr / 16
    llvm::Value* block = b_.CreateUDiv(index, b_.getInt64(B));
    llvm::Value* rem = b_.CreateTrunc(b_.CreateURem(index, b_.getInt64(B)), i32_);
    llvm::Value* r = b_.CreateAdd(splat(rem, w), iota32(w));
    llvm::Value* q = b_.CreateUDiv(r, ci32(B, w));
    llvm::Value* rr = b_.CreateSub(r, b_.CreateMul(q, ci32(B, w)));
    llvm::Value* lane = b_.CreateAnd(rr, ci32(rng::kCallLanes - 1, w));
    llvm::Value* slot = b_.CreateLShr(rr, 4);
    llvm::Value* call = b_.CreateAdd(splat(b_.CreateTrunc(b_.CreateMul(block, b_.getInt64(rng::kCallLanes)), i32_), w),
                                     b_.CreateAdd(b_.CreateShl(q, 4), lane));
    Words p = philox_rounds(call, key, w);
    auto is = [&](uint32_t v) { return b_.CreateICmpEQ(slot, ci32(v, w)); };
    if (f64) {
      llvm::Value* odd = is(1);
      if (!normal)
        return uniform_f64_from(bits53(b_.CreateSelect(odd, p.r[2], p.r[0]), b_.CreateSelect(odd, p.r[3], p.r[1]), w), w);
      llvm::Value* u1 = u1_f64_from(bits53(p.r[0], p.r[1], w), w);
      llvm::Value* u2 = uniform_f64_from(bits53(p.r[2], p.r[3], w), w);
      return b_.CreateFMul(radius(u1, w, true), cos2pi(b_.CreateSelect(odd, quarter_shift(u2, w, true), u2), w, true));
    }
    auto fifth = [&](const Words& x) { return fifth_bits(x.r[0], x.r[1], x.r[2], w); };
    auto top = [&](llvm::Value* word) { return b_.CreateLShr(word, 8); };
    if (!normal) {
      llvm::Value* bits = b_.CreateSelect(
          is(0), top(p.r[0]),
          b_.CreateSelect(is(1), top(p.r[1]),
                          b_.CreateSelect(is(2), top(p.r[2]), b_.CreateSelect(is(3), top(p.r[3]), fifth(p)))));
      return f32_of_bits(bits, false, w);
    }
    Words partner = philox_rounds(b_.CreateXor(call, ci32(8, w)), key, w);
    llvm::Value* s4 = is(4);
    llvm::Value* low = b_.CreateICmpULT(lane, ci32(8, w));
    llvm::Value* hi_pair = b_.CreateICmpUGE(slot, ci32(2, w));
    llvm::Value* a = b_.CreateSelect(s4, b_.CreateSelect(low, fifth(p), fifth(partner)),
                                     top(b_.CreateSelect(hi_pair, p.r[2], p.r[0])));
    llvm::Value* c = b_.CreateSelect(s4, b_.CreateSelect(low, fifth(partner), fifth(p)),
                                     top(b_.CreateSelect(hi_pair, p.r[3], p.r[1])));
    llvm::Value* sine = b_.CreateSelect(s4, b_.CreateNot(low),
                                        b_.CreateICmpNE(b_.CreateAnd(slot, ci32(1, w)), ci32(0, w)));
    llvm::Value* u2 = f32_of_bits(c, false, w);
    return b_.CreateFMul(radius(f32_of_bits(a, true, w), w, false),
                         cos2pi(b_.CreateSelect(sine, quarter_shift(u2, w, false), u2), w, false));
  }
  // The lanes of a then those of b (two vectors of one type).
  llvm::Value* concat(llvm::Value* a, llvm::Value* b) {
    const int n = int(llvm::cast<llvm::FixedVectorType>(a->getType())->getNumElements());
    std::vector<int> m(size_t(2 * n));
    for (int l = 0; l < 2 * n; ++l) m[size_t(l)] = l;
    return b_.CreateShuffleVector(a, b, m);
  }
  // ((hi << 32) | lo) >> 11: the 53 bits of a float64 uniform.
  llvm::Value* bits53(llvm::Value* hi, llvm::Value* lo, int w) {
    llvm::Type* t64 = vec(i64_, w);
    llvm::Value* v = b_.CreateOr(b_.CreateShl(b_.CreateZExt(hi, t64), 32), b_.CreateZExt(lo, t64));
    return b_.CreateLShr(v, 11);
  }
  // The conversions of rng::lane_draw_f32: 24 bits to a float32 uniform, bits 2^-24 (or (bits + 1)
  // 2^-24, Box-Muller's u1 in (0, 1]); and their float64 twins.
  llvm::Value* f32_of_bits(llvm::Value* bits, bool plus_one, int w) {
    llvm::Type* ft = llvm::Type::getFloatTy(ctx_);
    if (plus_one) bits = b_.CreateAdd(bits, ci32(1, w));
    return b_.CreateFMul(b_.CreateUIToFP(bits, vec(ft, w)), cfp(ft, 0x1p-24, w));
  }
  llvm::Value* uniform_f64_from(llvm::Value* bits, int w) {
    return b_.CreateFMul(b_.CreateUIToFP(bits, vec(f64_, w)), cfp(f64_, 0x1p-53, w));
  }
  llvm::Value* u1_f64_from(llvm::Value* bits, int w) {
    return b_.CreateFMul(b_.CreateUIToFP(b_.CreateAdd(bits, ci64(1, w)), vec(f64_, w)), cfp(f64_, 0x1p-53, w));
  }
  // rng::sin2pi's argument: u - 1/4 mod 1, exact on the uniforms' grid.
  llvm::Value* quarter_shift(llvm::Value* u, int w, bool f64) {
    llvm::Type* et = f64 ? f64_ : llvm::Type::getFloatTy(ctx_);
    return b_.CreateSelect(b_.CreateFCmpOGE(u, cfp(et, 0.25, w)), b_.CreateFSub(u, cfp(et, 0.25, w)),
                           b_.CreateFAdd(u, cfp(et, 0.75, w)));
  }

  // coef[0] + z (coef[1] + z (...)), in Random.h's order (no FMA: none is ever emitted).
  template <class C>
  llvm::Value* horner_of(llvm::Value* z, const C* coef, int n, llvm::Type* et, int w) {
    llvm::Value* p = cfp(et, double(coef[n - 1]), w);
    for (int i = n - 2; i >= 0; --i) p = b_.CreateFAdd(b_.CreateFMul(p, z), cfp(et, double(coef[i]), w));
    return p;
  }
  // sqrt(-2 log u1) * cos(2 pi u2) with rng::log_f32/64 and rng::cos2pi_f32/64, op for op.
  llvm::Value* box_muller(llvm::Value* u1, llvm::Value* u2, int w, bool f64) {
    return b_.CreateFMul(radius(u1, w, f64), cos2pi(u2, w, f64));
  }
  // sqrt(-2 log u1).
  llvm::Value* radius(llvm::Value* u1, int w, bool f64) {
    bool f32 = !f64;
    llvm::Type* et = f64 ? f64_ : llvm::Type::getFloatTy(ctx_);
    auto c = [&](double v) { return cfp(et, v, w); };
    auto horner = [&](llvm::Value* z, const auto* coef, int n) { return horner_of(z, coef, n, et, w); };
    // log(u1)
    llvm::Value* lg;
    {
      llvm::Type* it = vec(f32 ? i32_ : i64_, w);
      llvm::Value* bits = b_.CreateBitCast(u1, it);
      llvm::Value* e;
      llvm::Value* mbits;
      if (f32) {
        e = b_.CreateSub(b_.CreateLShr(bits, 23), ci32(127, w));
        mbits = b_.CreateOr(b_.CreateAnd(bits, ci32(0x007FFFFFu, w)), ci32(0x3F800000u, w));
      } else {
        e = b_.CreateSub(b_.CreateTrunc(b_.CreateLShr(bits, 52), vec(i32_, w)), ci32(1023, w));
        mbits = b_.CreateOr(b_.CreateAnd(bits, ci64(0x000FFFFFFFFFFFFFull, w)),
                            ci64(0x3FF0000000000000ull, w));
      }
      llvm::Value* m = b_.CreateBitCast(mbits, vec(et, w));
      llvm::Value* big = b_.CreateFCmpOGT(m, c(f32 ? double(rng::kSqrt2F32) : rng::kSqrt2F64));
      m = b_.CreateSelect(big, b_.CreateFMul(m, c(0.5)), m);
      e = b_.CreateSelect(big, b_.CreateAdd(e, ci32(1, w)), e);
      llvm::Value* f = b_.CreateFSub(m, c(1.0));
      llvm::Value* s = b_.CreateFDiv(f, b_.CreateFAdd(c(2.0), f));
      llvm::Value* z = b_.CreateFMul(s, s);
      llvm::Value* p = f32 ? horner(z, rng::kLogCoefF32, int(std::size(rng::kLogCoefF32)))
                           : horner(z, rng::kLogCoefF64, int(std::size(rng::kLogCoefF64)));
      llvm::Value* ef = b_.CreateSIToFP(e, vec(et, w));
      lg = b_.CreateFAdd(b_.CreateFMul(ef, c(f32 ? double(rng::kLn2F32) : rng::kLn2F64)),
                         b_.CreateFMul(b_.CreateFMul(c(2.0), s), p));
    }
    return unary_intrinsic(llvm::Intrinsic::sqrt, b_.CreateFMul(c(-2.0), lg));
  }
  // cos(2 pi u2) = -sin(2 pi (1/4 - |u2 - 1/2|))
  llvm::Value* cos2pi(llvm::Value* u2, int w, bool f64) {
    bool f32 = !f64;
    llvm::Type* et = f64 ? f64_ : llvm::Type::getFloatTy(ctx_);
    auto c = [&](double v) { return cfp(et, v, w); };
    auto horner = [&](llvm::Value* z, const auto* coef, int n) { return horner_of(z, coef, n, et, w); };
    llvm::Value* cs;
    {
      llvm::Value* bb = b_.CreateFSub(c(0.25), unary_intrinsic(llvm::Intrinsic::fabs, b_.CreateFSub(u2, c(0.5))));
      llvm::Value* x = b_.CreateFMul(c(f32 ? double(rng::kTwoPiF32) : rng::kTwoPiF64), bb);
      llvm::Value* z = b_.CreateFMul(x, x);
      llvm::Value* p = f32 ? horner(z, rng::kSinCoefF32, int(std::size(rng::kSinCoefF32)))
                           : horner(z, rng::kSinCoefF64, int(std::size(rng::kSinCoefF64)));
      cs = b_.CreateFNeg(b_.CreateFMul(x, p));
    }
    return cs;
  }

  llvm::LLVMContext& ctx_;
  const ir::Graph& g_;
  const KernelSpec& spec_;
  int width_;
  bool masked_;
  int math_lanes_;  // lanes per call of a vector SLEEF function (math_call)
  int pack_qwords_ = 1;  // 64-bit lanes per hardware vector (pack_source)
  bool shared_draws_;  // build_module's shared_draws (shared_words)
  bool has_blocks_ = false;  // a draw (rand, randn or keyed)
  // Vector kernels with draws iterate by whole blocks (emit_block_edges); in the body being
  // emitted: its number in the block (-1 outside blocks), the block's first Philox call, and the
  // draws made for the block so far, per node (S slot vectors of 16 lanes each, block_slots).
  // In a block emitted as a loop (emit_block, emit_part_loop): block_body_ is kLoopBody, and each
  // draw node's values for the block are in its stack buffer (draw_stack_), from element
  // part_offset_ on.
  static constexpr int kLoopBody = -2;
  bool block_mode_ = false;
  int block_body_ = -1;
  int group_blocks_ = 1;  // blocks whose draws make_block_draws makes at once (emit_part_loop)
  llvm::Value* call_base_ = nullptr;
  llvm::Value* part_offset_ = nullptr;
  std::map<NodeId, std::vector<llvm::Value*>> block_draws_;
  std::map<NodeId, llvm::Value*> draw_stack_;
  // A chunk kernel's vector iterations start anywhere in a block (chunks of 1024 and blocks of B
  // do not line up): with window_, each draw node's buffer (draw_stack_) holds the draws of two
  // consecutive blocks, from block window_block_ (an entry-block i64, -2 until the first fill) on,
  // which an iteration of at most B lanes never leaves (ensure_window).
  bool window_ = false;
  llvm::Value* window_block_ = nullptr;
  llvm::Value* window_offset_ = nullptr;  // index_ - B * (the window's first block), after ensure_window
  int prefetch_ = 0;         // bytes ahead of each input row's load the vector loop prefetches
  bool chunked_ = false;    // has chunk outputs: emit_chunks
  std::vector<ChunkReduce> chunk_;   // per output: how it is reduced per chunk (None: stored)
  std::vector<llvm::Value*> acc_;    // per chunk output: its accumulator at the insert point
  llvm::Value* chunk_start_ = nullptr;  // the current chunk's first element (emit_chunks)
  llvm::IRBuilder<> b_;
  llvm::Module* mod_ = nullptr;
  llvm::Function* fn_ = nullptr;
  llvm::Type *f64_, *elem_, *i32_, *i64_;
  llvm::PointerType* ptr_;
  llvm::Value* member_ = nullptr;
  llvm::Value* members_ = nullptr;
  llvm::Value* index_ = nullptr;
  llvm::Value *key0_ = nullptr, *key1_ = nullptr, *ctr1_ = nullptr, *ctr2_ = nullptr,
              *group_shl_ = nullptr;
  llvm::Value* round_key_[2][10] = {};
  bool large_ = false;  // see kInlineSites
  // Large kernels (see kInlineSites): the key on the stack; the block helper's output; per width
  // the per-lane helper's output.
  llvm::Value* philox_key_ = nullptr;
  llvm::Value* block_buf_ = nullptr;
  std::map<int, llvm::Value*> draw_buf_;
  // shared_words: the sites' numbers (nd.index of each rand() / randn()), the call's buffer per
  // width, the words of the body being emitted (null until its first draw), the sites' array.
  std::vector<uint32_t> sites_;
  llvm::Value* words_buf_ = nullptr;
  llvm::Value* words_at_ = nullptr;
  llvm::GlobalVariable* sites_global_ = nullptr;
  // keyed_words: whether keyed draws take their words from nyto_philox_words (the first tier, or a
  // kernel with more than kInlineSites draw sites), their key's stack words, the buffer per width,
  // the one-site arrays of rand(k, j) and randn(k, j).
  bool keyed_words_ = false;
  llvm::Value* keyed_key_ = nullptr;
  llvm::Value* keyed_buf_ = nullptr;
  llvm::GlobalVariable* keyed_sites_[2] = {};
  std::vector<llvm::Value*> uni_, uni_dt_, row_, out_row_;
};

}  // namespace

std::unique_ptr<llvm::Module> build_module(llvm::LLVMContext& ctx, const ir::Graph& graph,
                                           const KernelSpec& spec, const std::string& name,
                                           int vector_width, const KernelShape& shape, bool shared_draws) {
  check_graph(graph, spec);
  ir::Graph typed = specialize(graph, spec);
  return Codegen(ctx, typed, spec, vector_width, shape, shared_draws).build(name);
}

bool has_tiered_draws(const ir::Graph& graph, const KernelSpec& spec) {
  const size_t sites = draw_sites(graph);
  return sites > 0 && sites <= kInlineSites && !spec.has_chunk_outputs();
}

}  // namespace nyto::llvm_backend
