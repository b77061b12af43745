// simt_runtime.h — what the three parts of the host SIMT runtime share (internal; kernels include
// simt.h only).
//
//   fiber.cpp      the context switch, fiber stacks, and the sanitizer announcements of each switch
//   scheduler.cpp  one block: sweeps over its fibers, barriers, warp operations, their diagnostics
//   grid.cpp       a launch: blocks over host threads, the knobs (SIMT_ORDER, SIMT_THREADS, ...)
//   profile.cpp    the memory profiler's callbacks (only does work in a profiling build)
//
// Diagnostics are built only on the failure path: a warp operation that completes builds no text.
#pragma once

#include "simt.h"

#include <atomic>
#include <exception>
#include <string>
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
// The scheduler's own bookkeeping is hardware on a GPU: ThreadSanitizer must not judge it.
#if SIMT_TSAN
#define SIMT_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define SIMT_NO_TSAN
#endif

#if SIMT_ASAN
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
void __asan_unpoison_memory_region(void const volatile* addr, size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old,
                                     size_t* size_old);
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
constexpr unsigned kTsanSwitchNoSync = 1;  // __tsan_switch_to_fiber_no_sync
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}
#endif


#pragma GCC visibility push(hidden)  // private to the module, as simt.h says
namespace simt {
namespace rt {

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

// Everything one OS thread needs to run blocks: fibers, stacks, dynamic shared memory.
struct Worker {
  std::vector<Fiber> fibers;
  std::vector<Stack> stacks;
  std::vector<int> sequence;  // the order of one sweep
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
  void* profile = nullptr;  // the profiler's per-worker state (profile.cpp), when profiling

  ~Worker();
};

extern thread_local Worker* tl_worker;
Worker& this_thread_worker();

// ---- fiber.cpp ----------------------------------------------------------------------------------
size_t stack_bytes();  // usable bytes of one fiber stack (SIMT_STACK_KB)
Stack make_stack();
void prepare_fiber(Worker& w, Fiber& f, const Stack& s);
void switch_to_fiber(Worker& w, Fiber& f);
void switch_to_scheduler(Worker& w, Fiber& f, bool exiting);

// ---- scheduler.cpp ------------------------------------------------------------------------------
void run_block(Worker& w, dim3 block, const Order& order, unsigned long long block_linear);

// ---- grid.cpp -----------------------------------------------------------------------------------
Order current_order();

// ---- diagnostics (scheduler.cpp), called only when something has failed ------------------------
[[noreturn]] void fail(const std::string& msg);
std::string fmt3(uint3 v);
std::string where(const SourceLoc& l);
std::string block_text(const Fiber& f);
const char* op_name(WarpOp op);

// ---- profile.cpp: hooks the scheduler and the grid runner call; no-ops unless profiling --------
struct LaunchInfo {
  const char* kernel;  // the kernel's name, or null (resolved from `body`'s closure at report time)
  const void* kernel_pc;
  dim3 grid, block;
  size_t shared_bytes;
  const void* closure;
  size_t closure_bytes;
};
bool profiling();                          // cheap: whether a profile is being recorded
void profile_launch_begin(const LaunchInfo& info);
void profile_launch_end();
void profile_worker_begin(Worker& w);      // on each worker, before its first block of the launch
void profile_block_begin(Worker& w);       // on the worker, before the block's first sweep
void profile_sweep_end(Worker& w);         // every fiber is blocked: warp-level requests complete
void profile_worker_done(Worker& w);       // the worker's part of the launch is over

}  // namespace rt
}  // namespace simt
#pragma GCC visibility pop
