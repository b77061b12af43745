// scheduler.cpp — one block on one OS thread: the sweeps over its fibers, __syncthreads, warp
// operations, and the diagnostics when a block can never make progress.
//
// The scheduler works in sweeps: it resumes every runnable fiber once, in the configured order, and
// each runs until it reaches a barrier or a warp operation, or returns. When a sweep ends every
// fiber is blocked or finished, which is the moment to decide, without guessing, which warp
// operations are complete, whether the barrier can open, or whether the block can never make
// progress (then it is an error, not a hang).
//
// The checks run on every warp operation; the text that describes a failed check is built only
// when it fails (building it per lane on success once made the sim ~5x slower).
#include "simt_runtime.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>

namespace simt {
namespace rt {

// ---- diagnostics: only ever called on the way to an error ------------------------------------
[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error("simt: " + msg); }

std::string fmt3(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}
std::string where(const SourceLoc& l) {
  std::string file = l.file ? l.file : "?";
  auto slash = file.find_last_of('/');
  if (slash != std::string::npos) file = file.substr(slash + 1);
  return std::string(l.func ? l.func : "?") + " at " + file + ":" + std::to_string(l.line);
}
std::string block_text(const Fiber& f) {
  return "block " + fmt3(blockIdx) + ", thread " + fmt3(f.tid);
}
const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::sync: return "__syncwarp";
    case WarpOp::shfl_idx: return "__shfl_sync";
    case WarpOp::shfl_up: return "__shfl_up_sync";
    case WarpOp::shfl_down: return "__shfl_down_sync";
    case WarpOp::shfl_xor: return "__shfl_xor_sync";
    case WarpOp::ballot: return "__ballot_sync";
    case WarpOp::all: return "__all_sync";
    case WarpOp::any: return "__any_sync";
  }
  return "?";
}

namespace {

bool same_loc(const SourceLoc& a, const SourceLoc& b) {
  return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

// Why lane j cannot take part in the warp operation `leader` waits at (`lanes` threads exist in
// the warp). Built only when the cheap check has already failed.
[[noreturn]] void fail_participant(const Fiber& leader, int j, int lanes, const Fiber* o) {
  std::string head = std::string(op_name(leader.op)) + " in " + where(leader.loc) + ": " +
                     block_text(leader) + " waits for lane " + std::to_string(j);
  if (!o) fail(head + ", which does not exist (the warp has " + std::to_string(lanes) +
               " threads)");
  if (o->state == State::exited) fail(head + ", which has exited");
  if (o->state == State::at_barrier)
    fail(head + ", which waits at __syncthreads in " + where(o->loc) + " (deadlock)");
  fail(head + ", which is at " + op_name(o->op) + " in " + where(o->loc) +
       " (divergent warp operation or different mask/width)");
}

[[noreturn]] void fail_own_lane(const Fiber& leader, int l) {
  char mask[16];
  std::snprintf(mask, sizeof mask, "%08x", leader.mask);
  fail(std::string(op_name(leader.op)) + " in " + where(leader.loc) + ": " + block_text(leader) +
       " (lane " + std::to_string(l) +
       ") calls it with a mask that does not include its own lane: mask 0x" + mask);
}

// Resolve every warp operation whose participants have all arrived. Returns whether any did.
// Called only between sweeps, when no fiber is runnable: a participant that is not waiting at the
// same operation now will never get there.
SIMT_NO_TSAN bool resolve_warps(Worker& w, int nthreads) {
  bool progressed = false;
  int nwarps = (nthreads + 31) / 32;
  for (int wi = 0; wi < nwarps; ++wi) {
    int base = wi * 32;
    int lanes = std::min(32, nthreads - base);
    Fiber* warp = &w.fibers[static_cast<size_t>(base)];
    for (int l = 0; l < lanes; ++l) {
      Fiber& leader = warp[l];
      if (leader.state != State::at_warp) continue;
      unsigned mask = leader.mask;
      if (!(mask >> l & 1u)) fail_own_lane(leader, l);
      for (int j = 0; j < 32; ++j) {
        if (!(mask >> j & 1u)) continue;
        if (j >= lanes) fail_participant(leader, j, lanes, nullptr);
        const Fiber& o = warp[j];
        if (o.state != State::at_warp || o.op != leader.op || o.mask != mask ||
            o.width != leader.width || !same_loc(o.loc, leader.loc))
          fail_participant(leader, j, lanes, &o);
      }
      // Everyone is here: compute each participant's result from the values deposited.
      unsigned ballot = 0;
      for (int j = 0; j < 32; ++j)
        if (mask >> j & 1u && warp[j].value) ballot |= 1u << j;
      for (int j = 0; j < 32; ++j) {
        if (!(mask >> j & 1u)) continue;
        Fiber& f = warp[j];
        int width = f.width;
        int seg = j & ~(width - 1);  // first lane of this lane's width-segment
        int src = j;
        bool own = false;
        bool shuffle = true;
        switch (f.op) {
          case WarpOp::sync: shuffle = false; break;
          case WarpOp::shfl_idx: src = seg + (f.arg & (width - 1)); break;
          case WarpOp::shfl_up: src = j - f.arg; own = src < seg; break;
          case WarpOp::shfl_down: src = j + f.arg; own = src >= seg + width; break;
          case WarpOp::shfl_xor: src = j ^ f.arg; own = src < seg || src >= seg + width; break;
          case WarpOp::ballot: f.result = ballot; shuffle = false; break;
          case WarpOp::all: f.result = (ballot & mask) == mask; shuffle = false; break;
          case WarpOp::any: f.result = ballot != 0; shuffle = false; break;
        }
        if (shuffle) {
          if (own) src = j;
          if (!(mask >> src & 1u))
            fail(std::string(op_name(f.op)) + " in " + where(f.loc) + ": " + block_text(f) +
                 " reads lane " + std::to_string(src) + ", which is not in the mask");
          f.result = warp[src].value;
        }
      }
      for (int j = 0; j < 32; ++j)
        if (mask >> j & 1u) warp[j].state = State::runnable;
      progressed = true;
    }
  }
  return progressed;
}

// All fibers are blocked or done and no warp operation can complete: the barrier opens, or the
// block is stuck and we say why.
SIMT_NO_TSAN bool resolve_barrier(Worker& w, int nthreads) {
  const Fiber* waiting = nullptr;
  const Fiber* gone = nullptr;
  for (int t = 0; t < nthreads; ++t) {
    const Fiber& f = w.fibers[static_cast<size_t>(t)];
    if (f.state == State::at_barrier) {
      if (!waiting) waiting = &f;
      else if (!same_loc(f.loc, waiting->loc))
        fail("divergent __syncthreads: " + block_text(*waiting) + " waits in " +
             where(waiting->loc) + " but thread " + fmt3(f.tid) + " waits in " + where(f.loc));
    } else if (f.state == State::exited) {
      if (!gone) gone = &f;
    } else {
      fail("internal: unexpected thread state after a sweep");
    }
  }
  if (!waiting) return false;  // everyone has returned: the block is done
  if (gone)
    fail("__syncthreads in " + where(waiting->loc) + ": " + block_text(*waiting) +
         " waits, but thread " + fmt3(gone->tid) +
         " has exited and will never reach it (early return before a barrier?)");
  for (int t = 0; t < nthreads; ++t) w.fibers[static_cast<size_t>(t)].state = State::runnable;
  return true;
}

}  // namespace

SIMT_NO_TSAN void run_block(Worker& w, dim3 block, const Order& order,
                            unsigned long long block_linear) {
  int nthreads = static_cast<int>(block.x * block.y * block.z);
  if (w.fibers.size() < static_cast<size_t>(nthreads)) w.fibers.resize(static_cast<size_t>(nthreads));
  while (w.stacks.size() < static_cast<size_t>(nthreads)) w.stacks.push_back(make_stack());
  for (int t = 0; t < nthreads; ++t) {
    Fiber& f = w.fibers[static_cast<size_t>(t)];
    f.state = State::runnable;
    f.barriers = 0;
    f.linear = t;
    f.tid = uint3{static_cast<unsigned>(t) % block.x,
                  static_cast<unsigned>(t) / block.x % block.y,
                  static_cast<unsigned>(t) / (block.x * block.y)};
    prepare_fiber(w, f, w.stacks[static_cast<size_t>(t)]);
  }
#if SIMT_TSAN
  // After the previous block's threads (their exits released here), before this block's.
  __tsan_acquire(&w.tsan_block[w.blocks_run % 2]);
#endif
  // Reads of dynamic shared memory that nothing wrote in this block see NaN.
  if (w.smem_size) std::memset(w.smem_aligned, 0xff, w.smem_size);
#if SIMT_TSAN
  __tsan_release(&w.tsan_block[w.blocks_run % 2]);
#endif
  const bool profile = w.profile != nullptr;
  if (profile) profile_block_begin(w);

  std::vector<int>& seq = w.sequence;
  seq.resize(static_cast<size_t>(nthreads));
  std::mt19937_64 rng(order.seed * 0x9E3779B97F4A7C15ull + block_linear);
  for (;;) {
    for (int i = 0; i < nthreads; ++i) seq[static_cast<size_t>(i)] = i;
    if (order.kind == OrderKind::reverse) std::reverse(seq.begin(), seq.end());
    if (order.kind == OrderKind::random) std::shuffle(seq.begin(), seq.end(), rng);
    for (int t : seq) {
      Fiber& f = w.fibers[static_cast<size_t>(t)];
      if (f.state != State::runnable) continue;
      switch_to_fiber(w, f);
      if (w.error) return;
    }
    if (profile) profile_sweep_end(w);
    if (resolve_warps(w, nthreads)) continue;
    if (!resolve_barrier(w, nthreads)) break;
  }
#if SIMT_TSAN
  ++w.blocks_run;
#endif
}

}  // namespace rt

namespace detail {

using namespace rt;

SIMT_NO_TSAN void sync_threads(SourceLoc loc) {
  Worker& w = *tl_worker;
  Fiber& f = *w.current;
  f.state = State::at_barrier;
  f.loc = loc;
#if SIMT_TSAN
  // Every thread releases on arrival and acquires on leaving. Alternating two addresses keeps a
  // thread that already left this barrier (and released at the next one) out of what a slower
  // thread acquires here.
  __tsan_release(&w.tsan_sync[f.barriers % 2]);
#endif
  switch_to_scheduler(w, f, false);
#if SIMT_TSAN
  __tsan_acquire(&w.tsan_sync[f.barriers % 2]);
#endif
  ++f.barriers;
}

SIMT_NO_TSAN std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int arg,
                                   int width, SourceLoc loc) {
  if (width <= 0 || width > 32 || (width & (width - 1)))
    fail(std::string(op_name(op)) + " in " + where(loc) + ": width must be a power of two in "
         "[1, 32], got " + std::to_string(width));
  Worker& w = *tl_worker;
  Fiber& f = *w.current;
  f.state = State::at_warp;
  f.op = op;
  f.mask = mask;
  f.value = value;
  f.arg = arg;
  f.width = width;
  f.loc = loc;
#if SIMT_TSAN
  // The warp's participants synchronise with one another; a per-warp address keeps TSan from
  // treating a warp operation as a block-wide barrier.
  __tsan_release(&w.fibers[static_cast<size_t>(f.linear / 32 * 32)].result);
#endif
  switch_to_scheduler(w, f, false);
#if SIMT_TSAN
  __tsan_acquire(&w.fibers[static_cast<size_t>(f.linear / 32 * 32)].result);
#endif
  return f.result;
}

unsigned char* dynamic_shared() { return tl_worker->smem_aligned; }

void trap(SourceLoc loc) { throw std::runtime_error("__trap() in " + where(loc)); }

}  // namespace detail
}  // namespace simt
