// profile.cpp — the memory profiler of the sim device.
//
// In a profiling build (SIMT_PROFILE_BUILD=1; scripts/sanitize.py profile, or simcc --profile) the
// kernels' translation unit is compiled with GCC's ThreadSanitizer instrumentation
// (-fsanitize=thread --param=tsan-instrument-func-entry-exit=0): every load and store the compiled
// code makes becomes a call __tsan_readN(addr) / __tsan_writeN(addr), served here; no sanitizer
// runtime is linked. (AddressSanitizer's outlined callbacks, the first choice, skip a store to an
// address the same basic block has already loaded, so `y[i] = a * x[i] + y[i]` lost its store.) Each access is attributed to its call site, the return address,
// which is turned into file:line (addr2line) only when a report is written.
//
// Classification of an address, for the thread that made it:
//   its own fiber stack (locals, spills) and the launch's closure (the kernel's parameters): ignored;
//   the block's dynamic shared memory, or this OS thread's block of the module's thread-local
//     storage (where static __shared__ lives, since __shared__ is `static thread_local`), less the
//     built-in index variables: shared;
//   anything else: global.
// Lanes of a warp are grouped into warp-level requests by (block, warp, call site, how many times
// the lane has executed that call site). A request is closed when the sweep that made it ends,
// i.e. when every thread of the block waits at a barrier or warp operation or has returned (so the
// grouping is the same in every SIMT order).
//
// Per request: global — 32-byte sectors touched, the ideal (unique bytes / 32, rounded up);
// shared — wavefronts under 32 four-byte banks: a 32-bit (or narrower) access is one phase of 32
// lanes, 64-bit two phases of 16 lanes, 128-bit four phases of 8 lanes; a phase costs the largest
// number of distinct words any bank must deliver (one word read by many lanes is one broadcast),
// ideally max(1, distinct words / 32). Per launch also the unique global bytes touched.
//
// Accesses made inside library functions that are not compiled into the kernel's translation unit
// (memcpy, libm) are not seen; header code included by the kernel (simt.h, simt_tc.h) is, and is
// attributed to the header's line, except where the emulation names the kernel's line itself
// (simt::detail::profile_site_begin: cp.async's global read at issue and shared write at the wait
// are the kernel's cp.async line's, under the execution count).
#include "simt_runtime.h"

#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#ifndef SIMT_PROFILE_BUILD
#define SIMT_PROFILE_BUILD 0
#endif

namespace simt {
namespace rt {
namespace {

struct Stat {
  unsigned long long requests = 0, cost = 0, ideal = 0, bytes = 0;  // cost: sectors or wavefronts
};
// (source line id, space: 0 global 1 shared, op: 0 load 1 store)
using SiteKey = std::tuple<int, int, int>;
using Sites = std::map<SiteKey, Stat>;

struct Record {  // one (kernel, grid, block, dynamic shared) configuration
  const void* kernel = nullptr;
  dim3 grid, block;
  size_t shared_bytes = 0;
  unsigned long long launches = 0, unique_bytes = 0;
  Sites sites;
};

std::atomic<bool> g_on{false};
std::mutex g_mutex;
std::vector<Record> g_records;
// The launch in flight: its record and the global bytes it touched (sector -> byte mask).
Record* g_launch = nullptr;
std::unordered_map<std::uintptr_t, std::uint32_t> g_launch_bytes;
LaunchInfo g_info{};

struct Access {
  std::uint64_t key, key2;  // the sort keys (set when the sweep ends)
  const void* pc;
  int line;             // source line id (set when the sweep ends)
  std::uint32_t count;  // the lane's execution count of this call site in this block
  std::uint16_t warp;
  std::uint8_t lane, size;
  std::uintptr_t addr;
  bool store, shared;
};

// Per thread of the block: how often it has executed each call site (few sites: a flat list).
struct Counts {
  std::vector<std::pair<const void*, std::uint32_t>> sites;
  std::uint32_t next(const void* pc) {
    for (auto& [p, n] : sites)
      if (p == pc) return ++n;
    sites.emplace_back(pc, 1);
    return 1;
  }
};

struct WorkerProfile {
  std::vector<Counts> counts;
  std::vector<Access> pending;                                         // this sweep's accesses
  Sites sites;
  std::unordered_map<std::uintptr_t, std::uint32_t> bytes;
  std::uintptr_t tls_lo = 0, tls_hi = 0;  // this OS thread's block of the module's TLS
  std::uintptr_t closure_lo = 0, closure_hi = 0;
};

thread_local WorkerProfile tl_profile;

int find_tls(dl_phdr_info* info, size_t, void* data) {
  auto* p = static_cast<WorkerProfile*>(data);
  auto self = reinterpret_cast<std::uintptr_t>(&find_tls);
  bool mine = false;
  size_t tls_size = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && self >= info->dlpi_addr + ph.p_vaddr &&
        self < info->dlpi_addr + ph.p_vaddr + ph.p_memsz)
      mine = true;
    if (ph.p_type == PT_TLS) tls_size = ph.p_memsz;
  }
  if (!mine) return 0;
  if (info->dlpi_tls_data) {
    p->tls_lo = reinterpret_cast<std::uintptr_t>(info->dlpi_tls_data);
    p->tls_hi = p->tls_lo + tls_size;
  }
  return 1;
}

bool inside(std::uintptr_t a, const void* lo, size_t n) {
  auto l = reinterpret_cast<std::uintptr_t>(lo);
  return a >= l && a < l + n;
}

// An override of the call site (simt::detail::profile_site_begin): the emulation of an
// instruction whose accesses belong to the kernel's line, not to the emulation's (cp.async).
struct SiteOverride {
  const void* pc = nullptr;  // a synthetic call site standing for (file, line)
  std::uint32_t count = 0;   // the execution count to record the accesses under
};
thread_local SiteOverride tl_site;

// Called for every instrumented access.
inline void on_access(std::uintptr_t addr, unsigned size, bool store, const void* pc) {
  Worker* w = tl_worker;
  if (!w || !w->current || !w->profile) return;  // host code, not a kernel
  auto& p = *static_cast<WorkerProfile*>(w->profile);
  Fiber& f = *w->current;
  const Stack& st = w->stacks[static_cast<size_t>(f.linear)];
  if (inside(addr, st.base, st.size)) return;                       // a local
  if (addr >= p.closure_lo && addr < p.closure_hi) return;          // the kernel's parameters
  // The built-in indices are registers on a GPU. Checked before the TLS range: they are inline
  // (GNU-unique) variables, so when two runtimes share a process every kernel uses the first
  // one loaded, whose TLS block is not this module's.
  if (inside(addr, &threadIdx, sizeof threadIdx) || inside(addr, &blockIdx, sizeof blockIdx) ||
      inside(addr, &blockDim, sizeof blockDim) || inside(addr, &gridDim, sizeof gridDim))
    return;
  bool shared = false;
  if (w->smem_size && inside(addr, w->smem_aligned, w->smem_size)) {
    shared = true;
  } else if (addr >= p.tls_lo && addr < p.tls_hi) {
    shared = true;  // static __shared__ (function-local, internal linkage: this module's TLS)
  }
  std::uint32_t count;
  if (tl_site.pc) {
    pc = tl_site.pc;
    count = tl_site.count;
  } else {
    count = p.counts[static_cast<size_t>(f.linear)].next(pc);
  }
  p.pending.push_back(Access{0, 0, pc, 0, count, static_cast<std::uint16_t>(f.linear / 32),
                             static_cast<std::uint8_t>(f.linear % 32),
                             static_cast<std::uint8_t>(size), addr, store, shared});
}

// One warp-level request (grouped by profile_sweep_end): its sectors or wavefronts and ideal.
void close_request(WorkerProfile& p, const Access* b, const Access* e) {
  Stat& s = p.sites[SiteKey{b->line, b->shared ? 1 : 0, b->store ? 1 : 0}];
  s.requests += 1;
  for (const Access* a = b; a != e; ++a) s.bytes += a->size;
  if (!b->shared) {
    // Sectors touched, each with the mask of its bytes asked for (ideal and unique bytes).
    thread_local std::vector<std::pair<std::uintptr_t, std::uint32_t>> buf;
    buf.clear();
    for (const Access* a = b; a != e; ++a) {
      std::uintptr_t lo = a->addr, hi = a->addr + a->size;  // [lo, hi)
      for (std::uintptr_t sec = lo >> 5; sec <= (hi - 1) >> 5; ++sec) {
        unsigned from = sec == lo >> 5 ? lo & 31 : 0, to = sec == (hi - 1) >> 5 ? ((hi - 1) & 31) + 1 : 32;
        std::uint32_t mask = to - from == 32 ? ~0u : ((1u << (to - from)) - 1u) << from;
        buf.emplace_back(sec, mask);
      }
    }
    std::sort(buf.begin(), buf.end());
    const size_t n = buf.size();
    unsigned long long sectors = 0, unique = 0;
    for (size_t i = 0; i < n;) {
      std::uint32_t mask = 0;
      size_t j = i;
      for (; j < n && buf[j].first == buf[i].first; ++j) mask |= buf[j].second;
      sectors += 1;
      unique += static_cast<unsigned>(__builtin_popcount(mask));
      p.bytes[buf[i].first] |= mask;
      i = j;
    }
    s.cost += sectors;
    s.ideal += (unique + 31) / 32;
    return;
  }
  // Shared: phases of 32, 16 or 8 lanes by access width; per phase, the most distinct words any
  // one bank holds.
  unsigned width = 0, lane_bytes[32] = {};  // the access width: the most bytes one lane asks for
  for (const Access* a = b; a != e; ++a) width = std::max(width, lane_bytes[a->lane] += a->size);
  int lanes_per_phase = width >= 16 ? 8 : width >= 8 ? 16 : 32;
  for (int phase = 0; phase < 32 / lanes_per_phase; ++phase) {
    thread_local std::vector<std::uintptr_t> words;
    words.clear();
    for (const Access* a = b; a != e; ++a) {
      if (a->lane / lanes_per_phase != phase) continue;
      for (std::uintptr_t x = a->addr >> 2; x <= (a->addr + a->size - 1) >> 2; ++x)
        words.push_back(x);
    }
    if (words.empty()) continue;
    std::sort(words.begin(), words.end());
    const size_t n = static_cast<size_t>(std::unique(words.begin(), words.end()) - words.begin());
    unsigned per_bank[32] = {};
    unsigned most = 0;
    for (size_t i = 0; i < n; ++i) most = std::max(most, ++per_bank[words[i] & 31]);
    s.cost += most;
    s.ideal += std::max<size_t>(1, (n + 31) / 32);
  }
}

// ---- call sites to source lines -------------------------------------------------------------
struct Where {
  std::string func, file;
  long line = 0;
};
std::map<const void*, Where> resolve(const std::vector<const void*>& pcs, bool is_return);

std::mutex g_lines_mutex;
std::unordered_map<const void*, int> g_line_of;                 // call site -> line id
std::map<std::pair<std::string, long>, int> g_line_ids;
std::vector<std::pair<std::string, long>> g_lines;              // line id -> (file, line)

void assign_lines(std::vector<Access>& v) {
  std::lock_guard<std::mutex> lock(g_lines_mutex);
  std::vector<const void*> unknown;
  for (auto& a : v)
    if (!g_line_of.count(a.pc)) {
      g_line_of[a.pc] = -1;
      unknown.push_back(a.pc);
    }
  if (!unknown.empty()) {
    auto where = resolve(unknown, true);
    for (const void* pc : unknown) {
      auto key = std::make_pair(where[pc].file, where[pc].line);
      auto it = g_line_ids.find(key);
      if (it == g_line_ids.end()) {
        it = g_line_ids.emplace(key, static_cast<int>(g_lines.size())).first;
        g_lines.push_back(key);
      }
      g_line_of[pc] = it->second;
    }
  }
  for (auto& a : v) a.line = g_line_of[a.pc];
}

// The synthetic call site of (file, line): a small integer no code address can equal, already
// resolved to its line id (so the report names file:line without addr2line).
const void* synthetic_site(const char* file, int line) {
  thread_local std::vector<std::tuple<const char*, int, const void*>> cache;
  for (auto& [f, l, pc] : cache)
    if (f == file && l == line) return pc;
  std::lock_guard<std::mutex> lock(g_lines_mutex);
  auto key = std::make_pair(std::string(file), static_cast<long>(line));
  auto it = g_line_ids.find(key);
  if (it == g_line_ids.end()) {
    it = g_line_ids.emplace(key, static_cast<int>(g_lines.size())).first;
    g_lines.push_back(key);
  }
  const void* pc = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(it->second) + 1);
  g_line_of[pc] = it->second;
  cache.emplace_back(file, line, pc);
  return pc;
}

}  // namespace

bool profiling() { return SIMT_PROFILE_BUILD && g_on.load(std::memory_order_relaxed); }

void profile_launch_begin(const LaunchInfo& info) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_info = info;
  g_launch = nullptr;
  for (auto& r : g_records)
    if (r.kernel == info.kernel_pc && r.grid.x == info.grid.x && r.grid.y == info.grid.y &&
        r.grid.z == info.grid.z && r.block.x == info.block.x && r.block.y == info.block.y &&
        r.block.z == info.block.z && r.shared_bytes == info.shared_bytes)
      g_launch = &r;
  if (!g_launch) {
    g_records.emplace_back();
    g_launch = &g_records.back();
    g_launch->kernel = info.kernel_pc;
    g_launch->grid = info.grid;
    g_launch->block = info.block;
    g_launch->shared_bytes = info.shared_bytes;
  }
  g_launch->launches += 1;
  g_launch_bytes.clear();
}

void profile_launch_end() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_launch) return;
  for (auto& [sector, mask] : g_launch_bytes)
    g_launch->unique_bytes += static_cast<unsigned>(__builtin_popcount(mask));
  g_launch_bytes.clear();
  g_launch = nullptr;
}

void profile_worker_begin(Worker& w) {
  WorkerProfile& p = tl_profile;
  p.sites.clear();
  p.bytes.clear();
  p.pending.clear();
  if (!p.tls_hi) dl_iterate_phdr(&find_tls, &p);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    p.closure_lo = reinterpret_cast<std::uintptr_t>(g_info.closure);
    p.closure_hi = p.closure_lo + g_info.closure_bytes;
  }
  w.profile = &p;
}

void profile_block_begin(Worker& w) {
  auto& p = *static_cast<WorkerProfile*>(w.profile);
  unsigned n = blockDim.x * blockDim.y * blockDim.z;
  if (p.counts.size() < n) p.counts.resize(n);
  for (unsigned i = 0; i < n; ++i) p.counts[i].sites.clear();
}

void profile_sweep_end(Worker& w) {
  auto& p = *static_cast<WorkerProfile*>(w.profile);
  auto& v = p.pending;
  if (v.empty()) return;
  assign_lines(v);
  // Sort by (warp, line, direction, space, execution count), then call site and lane, packed into
  // two integers (the sort is most of the profiler's own time).
  for (auto& a : v) {
    a.key = static_cast<std::uint64_t>(a.warp) << 56 |
            static_cast<std::uint64_t>(static_cast<std::uint32_t>(a.line) & 0xFFFFFu) << 36 |
            static_cast<std::uint64_t>(a.store) << 35 | static_cast<std::uint64_t>(a.shared) << 34 |
            (a.count & 0x3FFFFFFFFull);
    a.key2 = reinterpret_cast<std::uintptr_t>(a.pc) << 5 | a.lane;
  }
  auto key = [](const Access& a) { return a.key; };
  std::sort(v.begin(), v.end(), [](const Access& a, const Access& b) {
    return a.key < b.key || (a.key == b.key && a.key2 < b.key2);
  });
  // Within one (warp, line, direction, space, execution count), each call site is one
  // instruction's request. Call sites whose lanes all stay in the same aligned 16 bytes as another
  // site's lanes are the pieces of one vector access the host compiler split (a float4 read as four
  // floats): they are one request, as the GPU's one LDG.128. Loads of different arrays on one line
  // stay separate requests.
  std::vector<Access> merged;
  for (size_t i = 0; i < v.size();) {
    size_t j = i + 1;
    while (j < v.size() && key(v[j]) == key(v[i])) ++j;
    // [i, j) sorted by call site, then lane: split into call sites, and cluster them.
    std::vector<std::pair<size_t, size_t>> sites;  // [first, last) access of each call site
    for (size_t a = i; a < j;) {
      size_t b = a + 1;
      while (b < j && v[b].pc == v[a].pc) ++b;
      sites.emplace_back(a, b);
      a = b;
    }
    auto same_chunks = [&](std::pair<size_t, size_t> x, std::pair<size_t, size_t> y) {
      if (x.second - x.first != y.second - y.first) return false;
      for (size_t k = 0; k < x.second - x.first; ++k) {
        const Access& p1 = v[x.first + k];
        const Access& p2 = v[y.first + k];
        if (p1.lane != p2.lane || p1.addr >> 4 != p2.addr >> 4) return false;
      }
      return true;
    };
    std::vector<std::vector<size_t>> members;
    for (size_t si = 0; si < sites.size(); ++si) {
      size_t c = 0;
      while (c < members.size() && !same_chunks(sites[members[c][0]], sites[si])) ++c;
      if (c == members.size()) members.emplace_back();
      members[c].push_back(si);
    }
    for (auto& m : members) {
      merged.clear();
      for (size_t si : m) merged.insert(merged.end(), v.begin() + static_cast<long>(sites[si].first),
                                        v.begin() + static_cast<long>(sites[si].second));
      close_request(p, merged.data(), merged.data() + merged.size());
    }
    i = j;
  }
  v.clear();
}

void profile_worker_done(Worker& w) {
  auto& p = *static_cast<WorkerProfile*>(w.profile);
  profile_sweep_end(w);  // a block that failed mid-sweep
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_launch) {
    for (auto& [key, s] : p.sites) {
      Stat& t = g_launch->sites[key];
      t.requests += s.requests;
      t.cost += s.cost;
      t.ideal += s.ideal;
      t.bytes += s.bytes;
    }
    for (auto& [sector, mask] : p.bytes) g_launch_bytes[sector] |= mask;
  }
  p.sites.clear();
  p.bytes.clear();
  w.profile = nullptr;
}

namespace {

// ---- the report: call sites resolved to file:line by addr2line, kernels to their names -------
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::map<const void*, Where> resolve(const std::vector<const void*>& pcs, bool is_return) {
  std::map<std::string, std::vector<const void*>> by_module;
  std::map<const void*, std::uintptr_t> offset;
  for (const void* pc : pcs) {
    Dl_info info{};
    std::string path = "/proc/self/exe";
    std::uintptr_t base = 0;
    if (dladdr(pc, &info) && info.dli_fname) {
      base = reinterpret_cast<std::uintptr_t>(info.dli_fbase);
      if (std::strchr(info.dli_fname, '/') && std::strcmp(info.dli_fname, "") != 0)
        path = info.dli_fname;
    }
    // The return address follows the call: the call's own line is one byte earlier.
    offset[pc] = reinterpret_cast<std::uintptr_t>(pc) - base - (is_return ? 1 : 0);
    by_module[path].push_back(pc);
  }
  std::map<const void*, Where> out;
  for (auto& [path, list] : by_module) {
    std::string cmd = "addr2line -f -C -e " + shell_quote(path);
    for (const void* pc : list) {
      char buf[32];
      std::snprintf(buf, sizeof buf, " 0x%lx", static_cast<unsigned long>(offset[pc]));
      cmd += buf;
    }
    FILE* pipe = popen(cmd.c_str(), "r");
    for (const void* pc : list) {
      Where wh{"?", "?", 0};
      char fn[4096], loc[4096];
      if (pipe && std::fgets(fn, sizeof fn, pipe) && std::fgets(loc, sizeof loc, pipe)) {
        fn[std::strcspn(fn, "\n")] = 0;
        loc[std::strcspn(loc, "\n")] = 0;
        wh.func = fn;
        std::string l = loc;
        auto colon = l.rfind(':');
        wh.file = l.substr(0, colon);
        if (colon != std::string::npos) wh.line = std::atol(l.c_str() + colon + 1);
      }
      out[pc] = wh;
    }
    if (pipe) pclose(pipe);
  }
  return out;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string dim_json(dim3 d) {
  return "[" + std::to_string(d.x) + ", " + std::to_string(d.y) + ", " + std::to_string(d.z) + "]";
}

std::string report_json() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<const void*> kernels;
  for (auto& r : g_records) kernels.push_back(r.kernel);
  auto kname = resolve(kernels, false);
  std::lock_guard<std::mutex> lines_lock(g_lines_mutex);
  std::ostringstream o;
  o << "{\"kernels\": [";
  for (size_t i = 0; i < g_records.size(); ++i) {
    const Record& r = g_records[i];
    o << (i ? ",\n  " : "\n  ") << "{\"name\": " << json_string(kname[r.kernel].func)
      << ", \"grid\": " << dim_json(r.grid) << ", \"block\": " << dim_json(r.block)
      << ", \"shared_bytes\": " << r.shared_bytes << ", \"launches\": " << r.launches
      << ", \"unique_bytes\": " << r.unique_bytes << ", \"accesses\": [";
    std::map<std::tuple<std::string, long, int, int>, Stat> lines;  // sorted by file and line
    for (auto& [key, s] : r.sites) {
      const auto& fl = g_lines[static_cast<size_t>(std::get<0>(key))];
      lines[{fl.first, fl.second, std::get<1>(key), std::get<2>(key)}] = s;
    }
    size_t j = 0;
    for (auto& [key, s] : lines) {
      bool shared = std::get<2>(key) == 1;
      o << (j++ ? ",\n    " : "\n    ") << "{\"file\": " << json_string(std::get<0>(key))
        << ", \"line\": " << std::get<1>(key) << ", \"space\": "
        << (shared ? "\"shared\"" : "\"global\"") << ", \"op\": "
        << (std::get<3>(key) ? "\"store\"" : "\"load\"") << ", \"requests\": " << s.requests
        << ", \"" << (shared ? "wavefronts" : "sectors") << "\": " << s.cost
        << ", \"ideal\": " << s.ideal << ", \"bytes\": " << s.bytes << "}";
    }
    o << "]}";
  }
  o << "\n]}\n";
  return o.str();
}

// SIMT_PROFILE=FILE: a profiling build records from the start and writes FILE at exit.
struct EnvProfile {
  EnvProfile() {
    if (SIMT_PROFILE_BUILD && std::getenv("SIMT_PROFILE") && *std::getenv("SIMT_PROFILE")) {
      g_on = true;
      std::atexit([] {
        std::string text = report_json();
        const char* path = std::getenv("SIMT_PROFILE");
        if (FILE* f = std::fopen(path, "w")) {
          std::fputs(text.c_str(), f);
          std::fclose(f);
        } else {
          std::fprintf(stderr, "simt: SIMT_PROFILE=%s: cannot write the profile\n", path);
        }
      });
    }
  }
} env_profile;

std::string g_json;

}  // namespace
}  // namespace rt
}  // namespace simt

// Kernel-side emulation hooks (declared in simt_tc.h).
namespace simt {
namespace detail {
std::uint32_t profile_site_begin(const char* file, int line, std::uint32_t count) {
  rt::Worker* w = rt::tl_worker;
  if (!SIMT_PROFILE_BUILD || !w || !w->current || !w->profile) return 0;
  auto& p = *static_cast<rt::WorkerProfile*>(w->profile);
  const void* pc = rt::synthetic_site(file, line);
  if (count == 0) count = p.counts[static_cast<size_t>(w->current->linear)].next(pc);
  rt::tl_site = rt::SiteOverride{pc, count};
  return count;
}
void profile_site_end() { rt::tl_site.pc = nullptr; }
}  // namespace detail
}  // namespace simt

// ---- the C interface (cucnn.sim.profile() reaches it through ctypes) -------------------------
extern "C" {
__attribute__((visibility("default"))) int simt_profile_available() { return SIMT_PROFILE_BUILD; }
__attribute__((visibility("default"))) void simt_profile_start() {
  std::lock_guard<std::mutex> lock(simt::rt::g_mutex);
  simt::rt::g_records.clear();
  simt::rt::g_on = SIMT_PROFILE_BUILD != 0;
}
__attribute__((visibility("default"))) void simt_profile_stop() { simt::rt::g_on = false; }
// The JSON of everything recorded since simt_profile_start (valid until the next call).
__attribute__((visibility("default"))) const char* simt_profile_json() {
  simt::rt::g_json = simt::rt::report_json();
  return simt::rt::g_json.c_str();
}
}

#if SIMT_PROFILE_BUILD
// The instrumentation's entry points (the kernels' translation unit is compiled with
// -fsanitize=thread --param=tsan-instrument-func-entry-exit=0, but no TSan runtime is linked: these
// are it). Hidden: each module (the sim extension, a simcc program) serves its own kernels.
#define SIMT_HIDDEN extern "C" __attribute__((visibility("hidden")))
#define SIMT_ACCESS(name, n, store)                                                              \
  SIMT_HIDDEN void name(void* addr) {                                                           \
    simt::rt::on_access(reinterpret_cast<std::uintptr_t>(addr), n, store,                        \
                        __builtin_return_address(0));                                           \
  }
#define SIMT_ACCESS_SIZES(kind, store)                                                          \
  SIMT_ACCESS(__tsan_##kind##1, 1, store)                                                       \
  SIMT_ACCESS(__tsan_##kind##2, 2, store)                                                       \
  SIMT_ACCESS(__tsan_##kind##4, 4, store)                                                       \
  SIMT_ACCESS(__tsan_##kind##8, 8, store)                                                       \
  SIMT_ACCESS(__tsan_##kind##16, 16, store)                                                     \
  SIMT_ACCESS(__tsan_unaligned_##kind##2, 2, store)                                             \
  SIMT_ACCESS(__tsan_unaligned_##kind##4, 4, store)                                             \
  SIMT_ACCESS(__tsan_unaligned_##kind##8, 8, store)                                             \
  SIMT_ACCESS(__tsan_unaligned_##kind##16, 16, store)                                           \
  SIMT_ACCESS(__tsan_volatile_##kind##1, 1, store)                                              \
  SIMT_ACCESS(__tsan_volatile_##kind##2, 2, store)                                              \
  SIMT_ACCESS(__tsan_volatile_##kind##4, 4, store)                                              \
  SIMT_ACCESS(__tsan_volatile_##kind##8, 8, store)                                              \
  SIMT_ACCESS(__tsan_volatile_##kind##16, 16, store)
SIMT_ACCESS_SIZES(read, false)
SIMT_ACCESS_SIZES(write, true)

SIMT_HIDDEN void __tsan_read_range(void* addr, size_t n) {
  for (size_t i = 0; i < n; i += 16)
    simt::rt::on_access(reinterpret_cast<std::uintptr_t>(addr) + i,
                        static_cast<unsigned>(std::min<size_t>(16, n - i)), false,
                        __builtin_return_address(0));
}
SIMT_HIDDEN void __tsan_write_range(void* addr, size_t n) {
  for (size_t i = 0; i < n; i += 16)
    simt::rt::on_access(reinterpret_cast<std::uintptr_t>(addr) + i,
                        static_cast<unsigned>(std::min<size_t>(16, n - i)), true,
                        __builtin_return_address(0));
}
SIMT_HIDDEN void __tsan_init() {}
SIMT_HIDDEN void __tsan_func_entry(void*) {}
SIMT_HIDDEN void __tsan_func_exit() {}
SIMT_HIDDEN void __tsan_vptr_update(void**, void*) {}
SIMT_HIDDEN void __tsan_vptr_read(void**) {}
SIMT_HIDDEN void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
SIMT_HIDDEN void __tsan_atomic_signal_fence(int) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

// Atomics: performed (sequentially consistent, whatever order was asked) and counted as one load
// (and store) of their width, as a GPU atomic is a memory request.
#define SIMT_ATOMIC_RMW(bits, T, op, builtin, stores)                                           \
  SIMT_HIDDEN T __tsan_atomic##bits##_##op(volatile T* a, T v, int) {                           \
    simt::rt::on_access(reinterpret_cast<std::uintptr_t>(a), sizeof(T), stores,                 \
                        __builtin_return_address(0));                                           \
    return builtin(a, v, __ATOMIC_SEQ_CST);                                                     \
  }
#define SIMT_ATOMICS(bits, T)                                                                   \
  SIMT_HIDDEN T __tsan_atomic##bits##_load(const volatile T* a, int) {                          \
    simt::rt::on_access(reinterpret_cast<std::uintptr_t>(a), sizeof(T), false,                  \
                        __builtin_return_address(0));                                           \
    return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                \
  }                                                                                             \
  SIMT_HIDDEN void __tsan_atomic##bits##_store(volatile T* a, T v, int) {                       \
    simt::rt::on_access(reinterpret_cast<std::uintptr_t>(a), sizeof(T), true,                   \
                        __builtin_return_address(0));                                           \
    __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                                   \
  }                                                                                             \
  SIMT_ATOMIC_RMW(bits, T, exchange, __atomic_exchange_n, true)                                 \
  SIMT_ATOMIC_RMW(bits, T, fetch_add, __atomic_fetch_add, true)                                 \
  SIMT_ATOMIC_RMW(bits, T, fetch_sub, __atomic_fetch_sub, true)                                 \
  SIMT_ATOMIC_RMW(bits, T, fetch_and, __atomic_fetch_and, true)                                 \
  SIMT_ATOMIC_RMW(bits, T, fetch_or, __atomic_fetch_or, true)                                   \
  SIMT_ATOMIC_RMW(bits, T, fetch_xor, __atomic_fetch_xor, true)                                 \
  SIMT_ATOMIC_RMW(bits, T, fetch_nand, __atomic_fetch_nand, true)                               \
  SIMT_HIDDEN int __tsan_atomic##bits##_compare_exchange_strong(volatile T* a, T* c, T v, int,  \
                                                                 int) {                         \
    simt::rt::on_access(reinterpret_cast<std::uintptr_t>(a), sizeof(T), true,                   \
                        __builtin_return_address(0));                                           \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);     \
  }                                                                                             \
  SIMT_HIDDEN int __tsan_atomic##bits##_compare_exchange_weak(volatile T* a, T* c, T v, int,    \
                                                               int) {                           \
    simt::rt::on_access(reinterpret_cast<std::uintptr_t>(a), sizeof(T), true,                   \
                        __builtin_return_address(0));                                           \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);     \
  }                                                                                             \
  SIMT_HIDDEN T __tsan_atomic##bits##_compare_exchange_val(volatile T* a, T c, T v, int, int) { \
    simt::rt::on_access(reinterpret_cast<std::uintptr_t>(a), sizeof(T), true,                   \
                        __builtin_return_address(0));                                           \
    __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);           \
    return c;                                                                                   \
  }
SIMT_ATOMICS(8, std::uint8_t)
SIMT_ATOMICS(16, std::uint16_t)
SIMT_ATOMICS(32, std::uint32_t)
SIMT_ATOMICS(64, std::uint64_t)
#endif
