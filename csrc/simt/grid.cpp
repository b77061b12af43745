// grid.cpp — a launch: checks the launch configuration, hands the blocks of the grid to one or
// more host threads (SIMT_THREADS), each of which runs its blocks one after another, and carries a
// failure back to the launching thread. Also the knobs: SIMT_ORDER, SIMT_THREADS (SIMT_STACK_KB is
// read where stacks are made, fiber.cpp).
#include "simt_runtime.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace simt {
namespace rt {

thread_local Worker* tl_worker = nullptr;

Worker& this_thread_worker() {
  thread_local Worker w;
  tl_worker = &w;
  return w;
}

namespace {

std::mutex g_config_mutex;
Order g_order;
std::string g_order_name = "forward";
int g_threads = 1;
// A malformed environment variable, reported by every launch until the knob is set from code.
std::string g_order_env_error, g_threads_env_error;

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
  if (profiling()) profile_worker_begin(w);
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
    if (stop.load()) break;
    unsigned long long b = next.fetch_add(1);
    if (b >= total) break;
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
      break;
    }
  }
  if (w.profile) profile_worker_done(w);
}

}  // namespace

Order current_order() {
  std::lock_guard<std::mutex> lock(g_config_mutex);
  return g_order;
}

}  // namespace rt

namespace detail {

using namespace rt;

void run_grid(dim3 grid, dim3 block, size_t shared_bytes, void (*body)(void*), void* closure,
              const void* kernel, size_t closure_bytes) {
  {
    std::lock_guard<std::mutex> lock(g_config_mutex);
    if (!g_order_env_error.empty()) throw std::invalid_argument(g_order_env_error);
    if (!g_threads_env_error.empty()) throw std::invalid_argument(g_threads_env_error);
  }
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

  const bool profile = profiling();
  if (profile)
    profile_launch_begin(LaunchInfo{nullptr, kernel, grid, block, shared_bytes, closure,
                                    closure_bytes});
  struct EndProfile {  // on every way out, the launch's record is closed
    bool on;
    ~EndProfile() {
      if (on) profile_launch_end();
    }
  } end_profile{profile};

  Order order = current_order();
  int nworkers = static_cast<int>(std::min<unsigned long long>(
      static_cast<unsigned long long>(get_threads()), total));
  std::atomic<unsigned long long> next{0};
  std::atomic<bool> stop{false};
  Worker* prev = tl_worker;

  if (nworkers <= 1) {
    Worker& w = this_thread_worker();
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
      Worker& w = this_thread_worker();
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
  rt::Order o;
  if (s == "forward") {
    o.kind = rt::OrderKind::forward;
  } else if (s == "reverse") {
    o.kind = rt::OrderKind::reverse;
  } else if (s.rfind("random:", 0) == 0 && s.size() > 7 &&
             s.find_first_not_of("0123456789", 7) == std::string::npos && s.size() <= 7 + 19) {
    o.kind = rt::OrderKind::random;
    o.seed = std::stoull(s.substr(7));
  } else {
    throw std::invalid_argument("SIMT order must be 'forward', 'reverse' or 'random:SEED' "
                                "(SEED a non-negative integer), got '" + s + "'");
  }
  std::lock_guard<std::mutex> lock(rt::g_config_mutex);
  rt::g_order = o;
  rt::g_order_name = s;
  rt::g_order_env_error.clear();
}

const char* get_order() {
  std::lock_guard<std::mutex> lock(rt::g_config_mutex);
  return rt::g_order_name.c_str();
}

void set_threads(int n) {
  if (n < 1) throw std::invalid_argument("SIMT threads must be >= 1, got " + std::to_string(n));
  std::lock_guard<std::mutex> lock(rt::g_config_mutex);
  rt::g_threads = n;
  rt::g_threads_env_error.clear();
}

int get_threads() {
  std::lock_guard<std::mutex> lock(rt::g_config_mutex);
  return rt::g_threads;
}

namespace rt {
namespace {
// Environment knobs, read once when the module loads. A malformed value is never guessed at: it is
// printed now, and every launch fails with it until the knob is set from code.
struct EnvInit {
  EnvInit() {
    if (const char* o = std::getenv("SIMT_ORDER")) {
      try {
        set_order(o);
      } catch (const std::exception& e) {
        g_order_env_error = std::string("SIMT_ORDER: ") + e.what();
      }
    }
    if (const char* t = std::getenv("SIMT_THREADS")) {
      char* end = nullptr;
      errno = 0;
      long n = std::strtol(t, &end, 10);
      if (end == t || *end != '\0' || errno == ERANGE || n < 1 || n > 4096)
        g_threads_env_error = std::string("SIMT_THREADS must be an integer number of host "
                                          "threads in [1, 4096], got '") + t + "'";
      else
        set_threads(static_cast<int>(n));
    }
    for (const std::string* e : {&g_order_env_error, &g_threads_env_error})
      if (!e->empty()) std::fprintf(stderr, "simt: %s (every launch fails until it is fixed)\n",
                                    e->c_str());
  }
} env_init;
}  // namespace
}  // namespace rt

}  // namespace simt
