// simt.cpp — the host-side SIMT runtime behind simt.h (host compiler only).
//
// A launch runs its blocks one after another (or on SIMT_THREADS host threads in parallel). A block
// runs as one fiber per CUDA thread on one OS thread. The scheduler works in sweeps: it resumes
// every runnable fiber once, in the configured order, and each runs until it reaches a barrier or a
// warp operation, or returns. When a sweep ends every fiber is blocked or finished, which is the
// moment to decide, without guessing, which warp operations are complete, whether the barrier can
// open, or whether the block can never make progress (then it is an error, not a hang).
//
// Fibers switch through a 20-instruction x86-64 routine (callee-saved registers, MXCSR and the x87
// control word; no system call), or ucontext elsewhere. Sanitizer builds announce every switch:
// AddressSanitizer so it knows which stack is live, ThreadSanitizer so that each simulated thread
// is its own TSan fiber and barriers/warp operations are the only synchronisation it sees.
#include "simt.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) && !defined(SIMT_FORCE_UCONTEXT)
#define SIMT_ASM_SWITCH 1
#else
#define SIMT_ASM_SWITCH 0
#include <ucontext.h>
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMT_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define SIMT_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define SIMT_TSAN 1
#endif
#ifndef SIMT_ASAN
#define SIMT_ASAN 0
#endif
#ifndef SIMT_TSAN
#define SIMT_TSAN 0
#endif
#if !SIMT_TSAN
#define SIMT_NO_TSAN
#endif

#if SIMT_ASAN
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old,
                                     size_t* size_old);
void __asan_unpoison_memory_region(void const volatile* addr, size_t size);
}
#endif
// Under ThreadSanitizer every simulated thread is a TSan fiber, and switching between fibers does
// NOT synchronise (__tsan_switch_to_fiber's no-sync flag): two threads of a block are ordered only
// by what orders them on a GPU, each annotated as a release/acquire pair: __syncthreads (all
// threads of the block), warp operations (the warp), and block boundaries (a block's threads start
// after the previous block on the same worker has ended and after the launching thread wrote the
// arguments; the launching thread sees everything the blocks wrote). The scheduler's own
// bookkeeping (thread states, the shared Fiber records) is not instrumented (SIMT_NO_TSAN),
// because on a GPU it is hardware. A missing __syncthreads is then a data race that TSan reports
// with the two source lines.
#if SIMT_TSAN
#define SIMT_NO_TSAN __attribute__((no_sanitize("thread")))
constexpr unsigned kTsanSwitchNoSync = 1;  // __tsan_switch_to_fiber_no_sync
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_set_fiber_name(void* fiber, const char* name);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}
#endif

#if SIMT_ASM_SWITCH
// void simt_switch_context(void** save_sp, void* load_sp)
// Saves the callee-saved state of the running context on its own stack, stores the stack pointer
// in *save_sp, and resumes the context whose stack pointer is load_sp.
extern "C" void simt_switch_context(void** save_sp, void* load_sp);
extern "C" void simt_fiber_trampoline();
asm(R"(
    .text
    .globl simt_switch_context
    .hidden simt_switch_context
    .type simt_switch_context, @function
simt_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size simt_switch_context, .-simt_switch_context

    .globl simt_fiber_trampoline
    .hidden simt_fiber_trampoline
    .type simt_fiber_trampoline, @function
simt_fiber_trampoline:
    movq %r12, %rdi
    call simt_fiber_entry
    ud2
    .size simt_fiber_trampoline, .-simt_fiber_trampoline
)");
#endif

namespace simt {
namespace {

enum class State : unsigned char { runnable, at_barrier, at_warp, exited };

struct Fiber {
  void* sp = nullptr;  // saved stack pointer while suspended
#if !SIMT_ASM_SWITCH
  ucontext_t uc;
#endif
#if SIMT_TSAN
  void* tsan_fiber = nullptr;
#endif
  State state = State::runnable;
  uint3 tid{0, 0, 0};
  int linear = 0;
  SourceLoc loc{nullptr, 0, nullptr};  // where it waits
  WarpOp op = WarpOp::sync;
  unsigned mask = 0;
  std::uint64_t value = 0;
  int arg = 0;
  int width = 32;
  std::uint64_t result = 0;
  unsigned barriers = 0;  // barriers passed (TSan alternates sync addresses by its parity)
#if SIMT_ASAN
  void* asan_fake = nullptr;
#endif
};

struct Stack {
  unsigned char* base = nullptr;  // lowest address, the guard page
  size_t size = 0;                // including the guard page
};

enum class OrderKind { forward, reverse, random };
struct Order {
  OrderKind kind = OrderKind::forward;
  unsigned long long seed = 0;
};

std::mutex g_config_mutex;
Order g_order;
std::string g_order_name = "forward";
int g_threads = 1;

size_t stack_bytes() {
  static const size_t bytes = [] {
    size_t kb = SIMT_ASAN || SIMT_TSAN ? 1024 : 256;
    if (const char* env = std::getenv("SIMT_STACK_KB")) kb = std::max<long>(64, std::atol(env));
    return kb * 1024;
  }();
  return bytes;
}

// Everything one OS thread needs to run blocks: fibers, stacks, dynamic shared memory.
struct Worker {
  std::vector<Fiber> fibers;
  std::vector<Stack> stacks;
  std::vector<unsigned char> smem;
  unsigned char* smem_aligned = nullptr;
  size_t smem_size = 0;
  void* scheduler_sp = nullptr;
#if !SIMT_ASM_SWITCH
  ucontext_t scheduler_uc;
#endif
#if SIMT_TSAN
  void* tsan_scheduler = nullptr;
  char tsan_sync[2] = {0, 0};   // barrier k releases and acquires tsan_sync[k % 2]
  char tsan_block[2] = {0, 0};  // block j's threads acquire [j % 2] and release [(j + 1) % 2]
  unsigned long long blocks_run = 0;  // on this worker: the parity of block boundaries
#endif
#if SIMT_ASAN
  void* asan_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
#endif
  Fiber* current = nullptr;
  void (*body)(void*) = nullptr;
  void* closure = nullptr;
  std::exception_ptr error;
  std::string error_text;

  ~Worker() {
    for (auto& s : stacks) {
#if SIMT_ASAN
      // Frames of kernels with local arrays left redzones poisoned on this stack; munmap does not
      // clear ASan's shadow, so memory mapped here later (Python's arenas) would read as a stack.
      __asan_unpoison_memory_region(s.base, s.size);
#endif
      munmap(s.base, s.size);
    }
#if SIMT_TSAN
    for (auto& f : fibers)
      if (f.tsan_fiber) __tsan_destroy_fiber(f.tsan_fiber);
#endif
  }
};

thread_local Worker* tl_worker = nullptr;

Worker& worker() {
  thread_local Worker w;
  tl_worker = &w;
  return w;
}

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
bool same_loc(const SourceLoc& a, const SourceLoc& b) {
  return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
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

Stack make_stack() {
  long page = sysconf(_SC_PAGESIZE);
  size_t size = stack_bytes() + static_cast<size_t>(page);
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) fail("cannot allocate a fiber stack");
  // The lowest page is the guard: a kernel that overflows its stack faults instead of silently
  // writing into its neighbour's.
  mprotect(mem, static_cast<size_t>(page), PROT_NONE);
  return Stack{static_cast<unsigned char*>(mem), size};
}

}  // namespace
}  // namespace simt

extern "C" __attribute__((visibility("hidden"), used)) void simt_fiber_entry(void* raw);

namespace simt {
namespace {

// ---- switching ------------------------------------------------------------------------------
SIMT_NO_TSAN void switch_to_fiber(Worker& w, Fiber& f) {
  w.current = &f;
  threadIdx = f.tid;
#if SIMT_TSAN
  __tsan_switch_to_fiber(f.tsan_fiber, kTsanSwitchNoSync);
#endif
#if SIMT_ASAN
  const Stack& s = w.stacks[static_cast<size_t>(f.linear)];
  long page = sysconf(_SC_PAGESIZE);
  __sanitizer_start_switch_fiber(&w.asan_fake_stack, s.base + page, s.size - page);
#endif
#if SIMT_ASM_SWITCH
  simt_switch_context(&w.scheduler_sp, f.sp);
#else
  swapcontext(&w.scheduler_uc, &f.uc);
#endif
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(w.asan_fake_stack, nullptr, nullptr);
#endif
  w.current = nullptr;
}

// Called on a fiber: back to the scheduler. `exiting` means this fiber never resumes.
SIMT_NO_TSAN void switch_to_scheduler(Worker& w, Fiber& f, bool exiting) {
#if SIMT_TSAN
  __tsan_switch_to_fiber(w.tsan_scheduler, kTsanSwitchNoSync);
#endif
#if SIMT_ASAN
  // An exiting fiber passes no slot, so ASan frees its fake stack.
  __sanitizer_start_switch_fiber(exiting ? nullptr : &f.asan_fake, w.scheduler_stack_bottom,
                                 w.scheduler_stack_size);
#else
  (void)exiting;
#endif
#if SIMT_ASM_SWITCH
  simt_switch_context(&f.sp, w.scheduler_sp);
#else
  swapcontext(&f.uc, &w.scheduler_uc);
#endif
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(f.asan_fake, &w.scheduler_stack_bottom, &w.scheduler_stack_size);
#endif
}

#if !SIMT_ASM_SWITCH
void ucontext_entry(unsigned hi, unsigned lo) {
  auto p = (static_cast<std::uintptr_t>(hi) << 32) | lo;
  simt_fiber_entry(reinterpret_cast<void*>(p));
}
#endif

SIMT_NO_TSAN void prepare_fiber(Worker& w, Fiber& f, const Stack& s) {
#if SIMT_ASM_SWITCH
  // Initial frame, matching simt_switch_context's pops: [mxcsr|fpucw][r15][r14][r13][r12][rbx]
  // [rbp][return address = trampoline]. r12 carries the fiber pointer to simt_fiber_entry.
  // The top is 16-byte aligned so the trampoline's call leaves the ABI alignment for the callee.
  auto top = reinterpret_cast<std::uintptr_t>(s.base + s.size) & ~std::uintptr_t(15);
  auto* frame = reinterpret_cast<std::uint64_t*>(top - 80);
  std::uint32_t mxcsr;
  std::uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  frame[0] = mxcsr | (static_cast<std::uint64_t>(fpucw) << 32);
  frame[1] = 0;                                         // r15
  frame[2] = 0;                                         // r14
  frame[3] = 0;                                         // r13
  frame[4] = reinterpret_cast<std::uint64_t>(&f);       // r12
  frame[5] = 0;                                         // rbx
  frame[6] = 0;                                         // rbp
  frame[7] = reinterpret_cast<std::uint64_t>(&simt_fiber_trampoline);
  f.sp = frame;
  (void)w;
#else
  getcontext(&f.uc);
  long page = sysconf(_SC_PAGESIZE);
  f.uc.uc_stack.ss_sp = s.base + page;
  f.uc.uc_stack.ss_size = s.size - static_cast<size_t>(page);
  f.uc.uc_link = nullptr;
  auto p = reinterpret_cast<std::uintptr_t>(&f);
  makecontext(&f.uc, reinterpret_cast<void (*)()>(&ucontext_entry), 2,
              static_cast<unsigned>(p >> 32), static_cast<unsigned>(p & 0xffffffffu));
  (void)w;
#endif
#if SIMT_TSAN
  if (!f.tsan_fiber) f.tsan_fiber = __tsan_create_fiber(0);
#endif
}

// ---- scheduling -------------------------------------------------------------------------------
std::string block_text(const Fiber& f) {
  return "block " + fmt3(blockIdx) + ", thread " + fmt3(f.tid);
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
    for (int l = 0; l < lanes; ++l) {
      Fiber& leader = w.fibers[static_cast<size_t>(base + l)];
      if (leader.state != State::at_warp) continue;
      unsigned mask = leader.mask;
      if (!(mask >> l & 1u))
        fail(std::string(op_name(leader.op)) + " in " + where(leader.loc) + ": " +
             block_text(leader) + " (lane " + std::to_string(l) +
             ") calls it with a mask that does not include its own lane: mask 0x" +
             [&] { char b[16]; std::snprintf(b, sizeof b, "%08x", mask); return std::string(b); }());
      for (int j = 0; j < 32; ++j) {
        if (!(mask >> j & 1u)) continue;
        std::string head = std::string(op_name(leader.op)) + " in " + where(leader.loc) + ": " +
                           block_text(leader) + " waits for lane " + std::to_string(j);
        if (j >= lanes) fail(head + ", which does not exist (the warp has " +
                             std::to_string(lanes) + " threads)");
        Fiber& o = w.fibers[static_cast<size_t>(base + j)];
        if (o.state == State::exited) fail(head + ", which has exited");
        if (o.state == State::at_barrier)
          fail(head + ", which waits at __syncthreads in " + where(o.loc) + " (deadlock)");
        if (o.op != leader.op || o.mask != mask || !same_loc(o.loc, leader.loc) ||
            o.width != leader.width)
          fail(head + ", which is at " + op_name(o.op) + " in " + where(o.loc) +
               " (divergent warp operation or different mask/width)");
      }
      // Everyone is here: compute each participant's result from the values deposited.
      unsigned ballot = 0;
      for (int j = 0; j < 32; ++j)
        if (mask >> j & 1u && w.fibers[static_cast<size_t>(base + j)].value) ballot |= 1u << j;
      for (int j = 0; j < 32; ++j) {
        if (!(mask >> j & 1u)) continue;
        Fiber& f = w.fibers[static_cast<size_t>(base + j)];
        int width = f.width;
        int seg = j & ~(width - 1);  // first lane of this lane's width-segment
        int src = j;
        bool own = false;
        switch (f.op) {
          case WarpOp::sync: break;
          case WarpOp::shfl_idx: src = seg + (f.arg & (width - 1)); break;
          case WarpOp::shfl_up: src = j - f.arg; own = src < seg; break;
          case WarpOp::shfl_down: src = j + f.arg; own = src >= seg + width; break;
          case WarpOp::shfl_xor: src = j ^ f.arg; own = src < seg || src >= seg + width; break;
          case WarpOp::ballot: f.result = ballot; break;
          case WarpOp::all: f.result = (ballot & mask) == mask; break;
          case WarpOp::any: f.result = ballot != 0; break;
        }
        if (f.op == WarpOp::shfl_idx || f.op == WarpOp::shfl_up || f.op == WarpOp::shfl_down ||
            f.op == WarpOp::shfl_xor) {
          if (own) src = j;
          if (!(mask >> src & 1u))
            fail(std::string(op_name(f.op)) + " in " + where(f.loc) + ": " + block_text(f) +
                 " reads lane " + std::to_string(src) + ", which is not in the mask");
          f.result = w.fibers[static_cast<size_t>(base + src)].value;
        }
      }
      for (int j = 0; j < 32; ++j)
        if (mask >> j & 1u) w.fibers[static_cast<size_t>(base + j)].state = State::runnable;
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

  std::vector<int> seq(static_cast<size_t>(nthreads));
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
    if (resolve_warps(w, nthreads)) continue;
    if (!resolve_barrier(w, nthreads)) break;
  }
#if SIMT_TSAN
  ++w.blocks_run;
#endif
}

Order current_order() {
  std::lock_guard<std::mutex> lock(g_config_mutex);
  return g_order;
}

SIMT_NO_TSAN void run_blocks(Worker& w, dim3 grid, dim3 block, size_t shared_bytes,
                             void (*body)(void*), void* closure, const Order& order,
                             std::atomic<unsigned long long>& next, unsigned long long total,
                             std::atomic<bool>& stop) {
  tl_worker = &w;
  w.body = body;
  w.closure = closure;
  w.error = nullptr;
  if (w.smem.size() < shared_bytes + 64) w.smem.resize(shared_bytes + 64);
  w.smem_aligned = reinterpret_cast<unsigned char*>(
      (reinterpret_cast<std::uintptr_t>(w.smem.data()) + 63) & ~std::uintptr_t(63));
  w.smem_size = shared_bytes;
#if SIMT_TSAN
  w.tsan_scheduler = __tsan_get_current_fiber();
#endif
  blockDim = block;
  gridDim = grid;
#if SIMT_TSAN
  struct AcquireBlocks {  // on every way out: the launching thread sees what the blocks wrote
    Worker& w;
    SIMT_NO_TSAN ~AcquireBlocks() {
      __tsan_acquire(&w.tsan_block[0]);
      __tsan_acquire(&w.tsan_block[1]);
    }
  } acquire_blocks{w};
#endif
  for (;;) {
    if (stop.load()) return;
    unsigned long long b = next.fetch_add(1);
    if (b >= total) return;
    blockIdx = uint3{static_cast<unsigned>(b % grid.x),
                     static_cast<unsigned>(b / grid.x % grid.y),
                     static_cast<unsigned>(b / (static_cast<unsigned long long>(grid.x) * grid.y))};
    try {
      run_block(w, block, order, b);
    } catch (...) {
      // A scheduler error (divergent barrier, deadlock): keep it for the launching thread.
      w.error = std::current_exception();
    }
    if (w.error) {
      stop.store(true);
      return;
    }
  }
}

}  // namespace

namespace detail {

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

void trap(SourceLoc loc) {
  throw std::runtime_error("__trap() in " + where(loc));
}

void run_grid(dim3 grid, dim3 block, size_t shared_bytes, void (*body)(void*), void* closure) {
  unsigned long long nthreads = static_cast<unsigned long long>(block.x) * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || nthreads > 1024 || block.z > 64)
    fail("invalid block " + fmt3(uint3{block.x, block.y, block.z}) +
         ": at most 1024 threads, z at most 64");
  if (grid.y > 65535 || grid.z > 65535)
    fail("invalid grid " + fmt3(uint3{grid.x, grid.y, grid.z}) + ": y and z at most 65535");
  if (shared_bytes > 227 * 1024)
    fail("dynamic shared memory of " + std::to_string(shared_bytes) +
         " bytes exceeds the 227 KiB a block may have");
  unsigned long long total = static_cast<unsigned long long>(grid.x) * grid.y * grid.z;
  if (total == 0) return;

  Order order = current_order();
  int nworkers = static_cast<int>(std::min<unsigned long long>(
      static_cast<unsigned long long>(get_threads()), total));
  std::atomic<unsigned long long> next{0};
  std::atomic<bool> stop{false};
  Worker* prev = tl_worker;

  if (nworkers <= 1) {
    Worker& w = worker();
    run_blocks(w, grid, block, shared_bytes, body, closure, order, next, total, stop);
    tl_worker = prev;
    if (w.error) std::rethrow_exception(std::exchange(w.error, nullptr));
    return;
  }
  // Worker objects are thread_local and die with their threads, so errors are copied out first.
  std::vector<std::exception_ptr> errors(static_cast<size_t>(nworkers));
  std::vector<std::thread> threads;
  for (int i = 0; i < nworkers; ++i)
    threads.emplace_back([&, i] {
      Worker& w = worker();
      run_blocks(w, grid, block, shared_bytes, body, closure, order, next, total, stop);
      errors[static_cast<size_t>(i)] = std::exchange(w.error, nullptr);
    });
  for (auto& t : threads) t.join();
  tl_worker = prev;
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace detail

void set_order(const char* text) {
  std::string s = text ? text : "";
  Order o;
  if (s == "forward") {
    o.kind = OrderKind::forward;
  } else if (s == "reverse") {
    o.kind = OrderKind::reverse;
  } else if (s.rfind("random:", 0) == 0 && s.size() > 7 &&
             s.find_first_not_of("0123456789", 7) == std::string::npos && s.size() <= 7 + 19) {
    o.kind = OrderKind::random;
    o.seed = std::stoull(s.substr(7));
  } else {
    throw std::invalid_argument("SIMT order must be 'forward', 'reverse' or 'random:SEED' "
                                "(SEED a non-negative integer), got '" + s + "'");
  }
  std::lock_guard<std::mutex> lock(g_config_mutex);
  g_order = o;
  g_order_name = s;
}

const char* get_order() {
  std::lock_guard<std::mutex> lock(g_config_mutex);
  return g_order_name.c_str();
}

void set_threads(int n) {
  if (n < 1) throw std::invalid_argument("SIMT threads must be >= 1, got " + std::to_string(n));
  std::lock_guard<std::mutex> lock(g_config_mutex);
  g_threads = n;
}

int get_threads() {
  std::lock_guard<std::mutex> lock(g_config_mutex);
  return g_threads;
}

namespace {
// Environment knobs, read once when the module loads. A bad value is reported, not ignored.
struct EnvInit {
  EnvInit() {
    try {
      if (const char* o = std::getenv("SIMT_ORDER")) set_order(o);
      if (const char* t = std::getenv("SIMT_THREADS")) set_threads(std::atoi(t));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "simt: ignoring environment: %s\n", e.what());
    }
  }
} env_init;
}  // namespace

}  // namespace simt

extern "C" SIMT_NO_TSAN void simt_fiber_entry(void* raw) {
  using namespace simt;
  auto& f = *static_cast<Fiber*>(raw);
  Worker& w = *tl_worker;
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &w.scheduler_stack_bottom, &w.scheduler_stack_size);
#endif
#if SIMT_TSAN
  const unsigned long long block = w.blocks_run;
  __tsan_acquire(&w.tsan_block[block % 2]);
#endif
  try {
    w.body(w.closure);
  } catch (const std::exception& e) {
    w.error = std::make_exception_ptr(std::runtime_error(
        std::string("exception in kernel, ") + block_text(f) + ": " + e.what()));
  } catch (...) {
    w.error = std::make_exception_ptr(
        std::runtime_error("unknown exception in kernel, " + block_text(f)));
  }
  f.state = State::exited;
#if SIMT_TSAN
  __tsan_release(&w.tsan_block[(block + 1) % 2]);
#endif
  switch_to_scheduler(w, f, true);
  std::abort();  // an exited fiber is never resumed
}
