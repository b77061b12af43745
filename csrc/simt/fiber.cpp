// fiber.cpp — the context switch between the scheduler and the fibers that are CUDA threads, the
// fibers' guarded stacks, and the sanitizer announcements that go with every switch.
//
// Fibers switch through a 20-instruction x86-64 routine (callee-saved registers, MXCSR and the x87
// control word; no system call), or ucontext elsewhere. Sanitizer builds announce every switch:
// AddressSanitizer so it knows which stack is live, ThreadSanitizer so that each simulated thread
// is its own TSan fiber and barriers/warp operations are the only synchronisation it sees.
#include "simt_runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

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

extern "C" __attribute__((visibility("hidden"), used)) void simt_fiber_entry(void* raw);

namespace simt {
namespace rt {

namespace {
long page_size() {
  static const long page = sysconf(_SC_PAGESIZE);
  return page;
}
}  // namespace

// SIMT_STACK_KB: the usable stack of each simulated thread. Too small a value is an error that
// says so, never silently raised.
size_t stack_bytes() {
  static const size_t bytes = [] {
    constexpr long kMinKb = 64;
    long kb = SIMT_ASAN || SIMT_TSAN ? 1024 : 256;
    if (const char* env = std::getenv("SIMT_STACK_KB")) {
      char* end = nullptr;
      errno = 0;
      long v = std::strtol(env, &end, 10);
      if (end == env || *end != '\0' || errno == ERANGE || v < kMinKb || v > (1L << 20))
        throw std::invalid_argument(
            std::string("SIMT_STACK_KB must be an integer number of KiB in [") +
            std::to_string(kMinKb) + ", 1048576], got '" + env + "'");
      kb = v;
    }
    return static_cast<size_t>(kb) * 1024;
  }();
  return bytes;
}

Stack make_stack() {
  long page = page_size();
  size_t size = stack_bytes() + static_cast<size_t>(page);
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) fail("cannot allocate a fiber stack");
  // The lowest page is the guard: a kernel that overflows its stack faults instead of silently
  // writing into its neighbour's.
  mprotect(mem, static_cast<size_t>(page), PROT_NONE);
  return Stack{static_cast<unsigned char*>(mem), size};
}

Worker::~Worker() {
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

SIMT_NO_TSAN void switch_to_fiber(Worker& w, Fiber& f) {
  w.current = &f;
  threadIdx = f.tid;
#if SIMT_TSAN
  __tsan_switch_to_fiber(f.tsan_fiber, kTsanSwitchNoSync);
#endif
#if SIMT_ASAN
  const Stack& s = w.stacks[static_cast<size_t>(f.linear)];
  __sanitizer_start_switch_fiber(&w.asan_fake_stack, s.base + page_size(), s.size - page_size());
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
namespace {
void ucontext_entry(unsigned hi, unsigned lo) {
  auto p = (static_cast<std::uintptr_t>(hi) << 32) | lo;
  simt_fiber_entry(reinterpret_cast<void*>(p));
}
}  // namespace
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
  f.uc.uc_stack.ss_sp = s.base + page_size();
  f.uc.uc_stack.ss_size = s.size - static_cast<size_t>(page_size());
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


}  // namespace rt
}  // namespace simt

extern "C" SIMT_NO_TSAN void simt_fiber_entry(void* raw) {
  using namespace simt::rt;
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
