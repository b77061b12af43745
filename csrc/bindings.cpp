// bindings.cpp — the only pybind11 source. Compiled twice from the same text:
//   cucnn._sim   by the host compiler: arrays are NumPy arrays, kernels run on the SIMT runtime
//   cucnn._cuda  by nvcc: arrays are anything with __cuda_array_interface__ (CuPy), kernels run on
//                the GPU on the stream the caller passes (Python passes CuPy's current stream)
//
// Every entry point checks its arguments before any launch: dtype, C-contiguity, writability of
// outputs, number of dimensions, matching shapes and argument ranges. A failed check raises
// TypeError or ValueError naming the argument with the expected and actual values, so a kernel
// never sees an argument it cannot handle. Outputs are passed in: launchers never allocate.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <climits>
#include <pybind11/stl.h>
#include <tuple>
#include <utility>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/activation.cuh"
#include "kernels/adaptive_pool2d.cuh"
#include "kernels/batchnorm.cuh"
#include "kernels/conv2d.cuh"
#include "kernels/conv2d_tc.cuh"
#include "kernels/cross_entropy.cuh"
#include "kernels/depthwise_conv2d.cuh"
#include "kernels/pool2d.cuh"
#include "kernels/softmax.cuh"
#include "simt.h"

namespace py = pybind11;

namespace {

#if SIMT_HOST_EMULATION
constexpr const char* kArrayKind = "numpy.ndarray";
#else
constexpr const char* kArrayKind = "CUDA array (an object with __cuda_array_interface__)";
#endif

// A borrowed view of a contiguous array. The Python caller keeps the object alive.
struct Array {
  void* data = nullptr;
  std::vector<int64_t> shape;
  std::string dtype;  // "float32", "int64", ...
  bool writeable = true;
  int64_t itemsize = 0;
  // __cuda_array_interface__ "stream": the producer's stream (1 legacy default, 2 per-thread
  // default, else a cudaStream_t), or 0 where the interface gives none (no synchronisation asked).
  std::uintptr_t producer_stream = 0;
  int64_t size() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  int ndim() const { return static_cast<int>(shape.size()); }
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  if (s.size() == 1) o << ",";
  o << ")";
  return o.str();
}

std::string dtype_from_typestr(const std::string& t) {
  if (t.size() < 3) return t;
  const char kind = t[1];
  const std::string bytes = t.substr(2);
  if (kind == 'f') return "float" + std::to_string(std::stoi(bytes) * 8);
  if (kind == 'i') return "int" + std::to_string(std::stoi(bytes) * 8);
  if (kind == 'u') return "uint" + std::to_string(std::stoi(bytes) * 8);
  if (kind == 'b') return "bool";
  return t;
}

// The fields of a __cuda_array_interface__ dict (version 2 or 3), checked: shape, typestr,
// data = (pointer, read-only), C-contiguous strides (or none), and the optional "stream".
// Compiled in both modules so that the sim tests can feed it fake interfaces.
Array parse_cai(py::handle cai_obj, const char* name, bool output) {
  if (!py::isinstance<py::dict>(cai_obj))
    throw py::type_error(std::string(name) + ".__cuda_array_interface__ must be a dict");
  auto cai = py::reinterpret_borrow<py::dict>(cai_obj);
  for (const char* key : {"shape", "typestr", "data"})
    if (!cai.contains(key))
      throw py::value_error(std::string(name) + ".__cuda_array_interface__ has no '" + key + "'");
  Array a;
  const auto typestr = py::cast<std::string>(cai["typestr"]);
  a.dtype = dtype_from_typestr(typestr);
  a.itemsize = typestr.size() >= 3 ? std::stoi(typestr.substr(2)) : 0;
  for (auto d : py::cast<py::tuple>(cai["shape"])) a.shape.push_back(py::cast<int64_t>(d));
  auto data = py::cast<py::tuple>(cai["data"]);
  a.data = reinterpret_cast<void*>(py::cast<std::uintptr_t>(data[0]));
  a.writeable = !py::cast<bool>(data[1]);
  if (output && !a.writeable) throw py::value_error(std::string(name) + " must be writeable");
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    auto strides = py::cast<py::tuple>(cai["strides"]);
    int64_t expect = a.itemsize;
    for (int i = a.ndim() - 1; i >= 0; --i) {
      if (a.shape[static_cast<size_t>(i)] > 1 &&
          py::cast<int64_t>(strides[static_cast<size_t>(i)]) != expect)
        throw py::value_error(std::string(name) + " must be C-contiguous");
      expect *= a.shape[static_cast<size_t>(i)];
    }
  }
  if (cai.contains("stream") && !cai["stream"].is_none()) {
    const auto st = py::cast<int64_t>(cai["stream"]);
    if (st == 0)
      throw py::value_error(std::string(name) + ".__cuda_array_interface__['stream'] must not "
                            "be 0 (the protocol reserves it; use 1 for the legacy default stream)");
    a.producer_stream = static_cast<std::uintptr_t>(st);
  }
  return a;
}

// An array on another GPU than the current one would launch with foreign pointers (an illegal
// address that also poisons CuPy's context): refuse it before any launch.
void check_same_device(const char* name, int array_device, int current_device) {
  if (array_device != current_device)
    throw py::value_error(std::string(name) + " is on cuda device " +
                          std::to_string(array_device) + " but the current device is " +
                          std::to_string(current_device) +
                          " (move it with cupy.asarray under cupy.cuda.Device(" +
                          std::to_string(current_device) + "), or make device " +
                          std::to_string(array_device) + " current)");
}

// The arrays of the call being checked. Kernels read inputs through __restrict__ (non-coherent)
// loads, so an output that shares bytes with another argument is refused. Every entry point
// views its arrays, then launches through as_stream(), which checks them (check_overlaps) and
// forgets them; a call that fails before its launch forgets them through the exception
// translator (module init).
struct Seen {
  const char* name;
  uintptr_t begin, end;
  bool output;
  std::uintptr_t producer_stream;
};
thread_local std::vector<Seen> t_seen;

void forget_arrays() { t_seen.clear(); }

Array remember(const Array& a, const char* name, bool output) {
  const auto begin = reinterpret_cast<uintptr_t>(a.data);
  const auto end = begin + static_cast<uintptr_t>(a.size() * a.itemsize);
  t_seen.push_back({name, begin, end, output, a.producer_stream});
  return a;
}

// After every other check of the call (so a wrong shape is reported as such): no output may
// share a byte with another argument. Empty arrays share nothing.
void check_overlaps() {
  for (size_t j = 1; j < t_seen.size(); ++j) {
    const Seen& b = t_seen[j];
    for (size_t i = 0; i < j; ++i) {
      const Seen& a = t_seen[i];
      if ((a.output || b.output) && a.begin < a.end && b.begin < b.end && a.begin < b.end &&
          b.begin < a.end) {
        const std::string msg = std::string(b.output ? b.name : a.name) + " must not overlap " +
                                (b.output ? a.name : b.name) +
                                " (an output may not share memory with another argument: the "
                                "kernels read their inputs through non-coherent loads)";
        forget_arrays();
        throw py::value_error(msg);
      }
    }
  }
}

#if SIMT_HOST_EMULATION
Array view(py::handle obj, const char* name, bool output) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a " + kArrayKind + ", got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  auto arr = py::reinterpret_borrow<py::array>(obj);
  Array a;
  a.dtype = std::string(py::str(arr.dtype()));
  for (py::ssize_t i = 0; i < arr.ndim(); ++i) a.shape.push_back(arr.shape(i));
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous, got strides that are not");
  a.writeable = arr.writeable();
  if (output && !a.writeable) throw py::value_error(std::string(name) + " must be writeable");
  a.data = const_cast<void*>(arr.data());
  a.itemsize = arr.itemsize();
  return remember(a, name, output);
}
#else
Array view(py::handle obj, const char* name, bool output) {
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    throw py::type_error(std::string(name) + " must be a " + kArrayKind + ", got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  Array a = parse_cai(obj.attr("__cuda_array_interface__"), name, output);
  // The pointer query costs about a microsecond per array; with one GPU every device pointer is
  // on the current device, so it runs only where there are several (or CUCNN_LAUNCH_BLOCKING,
  // the debugging mode, asks for every check).
  static const bool several = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) cudaGetLastError();
    const char* blocking = std::getenv("CUCNN_LAUNCH_BLOCKING");
    return n > 1 || (blocking != nullptr && std::string(blocking) == "1");
  }();
  if (several && a.size() > 0 && a.data != nullptr) {
    int current = 0;
    SIMT_CUDA_CHECK(cudaGetDevice(&current));
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, a.data) != cudaSuccess) {
      cudaGetLastError();
      attr.type = cudaMemoryTypeUnregistered;
    }
    if (attr.type == cudaMemoryTypeUnregistered || attr.type == cudaMemoryTypeHost)
      throw py::value_error(std::string(name) + " must be in device memory, got a host pointer");
    if (attr.type == cudaMemoryTypeDevice) check_same_device(name, attr.device, current);
  }
  return remember(a, name, output);
}
#endif

Array in(py::handle obj, const char* name) { return view(obj, name, false); }
Array out(py::handle obj, const char* name) { return view(obj, name, true); }

void expect_dtype(const Array& a, const char* name, const char* dtype) {
  if (a.dtype != dtype)
    throw py::type_error(std::string(name) + " must be " + dtype + ", got " + a.dtype);
}
void expect_ndim(const Array& a, const char* name, int ndim) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D, got " +
                          std::to_string(a.ndim()) + "-D with shape " + shape_str(a.shape));
}
void expect_shape(const Array& a, const char* name, const std::vector<int64_t>& shape,
                  const char* why) {
  if (a.shape != shape)
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + " " + why +
                          ", got " + shape_str(a.shape));
}
void expect_cols_fit(int64_t cols, const char* name) {
  if (cols > INT_MAX)
    throw py::value_error(std::string(name) + " rows must have at most " +
                          std::to_string(INT_MAX) + " columns, got " + std::to_string(cols));
}
void expect_version(int version, int max_version) {
  if (version < 0 || version > max_version)
    throw py::value_error("version must be in [0, " + std::to_string(max_version) + "], got " +
                          std::to_string(version));
}

// The launch stream. Called by every entry point right before its launch, after its views: the
// arrays of the call are checked for overlaps and forgotten here, and on cuda the launch stream
// first waits for the streams the arrays' producers named in __cuda_array_interface__ (CuPy names
// its current stream, which is the one Python passes, so normally nothing is waited for).
cudaStream_t as_stream(std::uintptr_t s) {
  auto stream = reinterpret_cast<cudaStream_t>(s);
  check_overlaps();
#if !SIMT_HOST_EMULATION
  for (const auto& seen : t_seen) {
    const std::uintptr_t p = seen.producer_stream;
    if (p == 0 || p == s || (p == 1 && s == 0)) continue;
    cudaStream_t producer = p == 1 ? cudaStreamLegacy
                            : p == 2 ? cudaStreamPerThread
                                     : reinterpret_cast<cudaStream_t>(p);
    cudaEvent_t ev;
    SIMT_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    SIMT_CUDA_CHECK(cudaEventRecord(ev, producer));
    SIMT_CUDA_CHECK(cudaStreamWaitEvent(stream, ev, 0));
    SIMT_CUDA_CHECK(cudaEventDestroy(ev));
  }
#endif
  forget_arrays();
  return stream;
}

float* f32(const Array& a) { return static_cast<float*>(a.data); }
int64_t* i64(const Array& a) { return static_cast<int64_t*>(a.data); }

// ---- activations --------------------------------------------------------------------------------

cucnn::Act act_from(int act) {
  if (act < 0 || act > 3)
    throw py::value_error("act must be 0 (relu), 1 (leaky_relu), 2 (sigmoid) or 3 (tanh), got " +
                          std::to_string(act));
  return static_cast<cucnn::Act>(act);
}

void activation_forward(int act, py::handle x_, py::handle y_, float alpha, int version,
                        std::uintptr_t stream) {
  const auto a = act_from(act);
  expect_version(version, 1);
  Array x = in(x_, "x"), y = out(y_, "y");
  expect_dtype(x, "x", "float32");
  expect_dtype(y, "y", "float32");
  expect_shape(y, "y", x.shape, "(the shape of x)");
  py::gil_scoped_release release;
  cucnn::activation_forward(a, f32(y), f32(x), x.size(), alpha, version, as_stream(stream));
}

void activation_backward(int act, py::handle dy_, py::handle saved_, py::handle dx_, float alpha,
                         int version, std::uintptr_t stream) {
  const auto a = act_from(act);
  expect_version(version, 1);
  Array dy = in(dy_, "dy"), s = in(saved_, "saved"), dx = out(dx_, "dx");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(s, "saved", "float32");
  expect_dtype(dx, "dx", "float32");
  expect_shape(s, "saved", dy.shape, "(the shape of dy)");
  expect_shape(dx, "dx", dy.shape, "(the shape of dy)");
  py::gil_scoped_release release;
  cucnn::activation_backward(a, f32(dx), f32(dy), f32(s), dy.size(), alpha, version,
                             as_stream(stream));
}

// ---- softmax ------------------------------------------------------------------------------------

void softmax_forward(py::handle x_, py::handle y_, bool log, int version, std::uintptr_t stream) {
  expect_version(version, 1);
  Array x = in(x_, "x"), y = out(y_, "y");
  expect_dtype(x, "x", "float32");
  expect_dtype(y, "y", "float32");
  expect_ndim(x, "x", 2);
  expect_shape(y, "y", x.shape, "(the shape of x)");
  expect_cols_fit(x.shape[1], "x");
  py::gil_scoped_release release;
  cucnn::softmax_forward(f32(y), f32(x), x.shape[0], static_cast<int>(x.shape[1]), log, version,
                         as_stream(stream));
}

void softmax_backward(py::handle y_, py::handle dy_, py::handle dx_, bool log, int version,
                      std::uintptr_t stream) {
  expect_version(version, 1);
  Array y = in(y_, "y"), dy = in(dy_, "dy"), dx = out(dx_, "dx");
  expect_dtype(y, "y", "float32");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(dx, "dx", "float32");
  expect_ndim(y, "y", 2);
  expect_shape(dy, "dy", y.shape, "(the shape of y)");
  expect_shape(dx, "dx", y.shape, "(the shape of y)");
  expect_cols_fit(y.shape[1], "y");
  py::gil_scoped_release release;
  cucnn::softmax_backward(f32(dx), f32(y), f32(dy), y.shape[0], static_cast<int>(y.shape[1]), log,
                          version, as_stream(stream));
}

// ---- cross-entropy ------------------------------------------------------------------------------

void check_targets(const Array& logits, const Array& target) {
  expect_dtype(logits, "logits", "float32");
  expect_ndim(logits, "logits", 2);
  expect_dtype(target, "target", "int64");
  expect_shape(target, "target", {logits.shape[0]}, "(one class index per row of logits)");
  if (logits.shape[1] < 1 && logits.shape[0] > 0)
    throw py::value_error("logits must have at least one class, got shape " +
                          shape_str(logits.shape));
  expect_cols_fit(logits.shape[1], "logits");
}

// Targets are range-checked inside the kernel (it never reads out of bounds; the first bad row
// goes to `status`), so no entry point reads device memory on the host.

// The optional class weights (C,) and their sum (1,), both float32.
const float* class_weight(py::object weight_, int64_t cols) {
  if (weight_.is_none()) return nullptr;
  Array w = in(weight_, "weight");
  expect_dtype(w, "weight", "float32");
  expect_shape(w, "weight", {cols}, "(one per class)");
  return f32(w);
}

void check_smoothing(float smoothing) {
  if (!(smoothing >= 0.0f && smoothing <= 1.0f))
    throw py::value_error("label_smoothing must be in [0, 1], got " + std::to_string(smoothing));
}

void cross_entropy_forward(py::handle logits_, py::handle target_, py::handle loss_,
                           py::handle lse_, py::handle wt_, py::handle status_,
                           int64_t ignore_index, py::object weight_, float label_smoothing,
                           std::uintptr_t stream) {
  Array x = in(logits_, "logits"), t = in(target_, "target");
  Array loss = out(loss_, "loss"), lse = out(lse_, "lse"), wt = out(wt_, "wt");
  Array status = out(status_, "status");
  check_targets(x, t);
  expect_dtype(loss, "loss", "float32");
  expect_dtype(lse, "lse", "float32");
  expect_dtype(wt, "wt", "float32");
  expect_shape(loss, "loss", {x.shape[0]}, "(one per row of logits)");
  expect_shape(lse, "lse", {x.shape[0]}, "(one per row of logits)");
  expect_shape(wt, "wt", {x.shape[0]}, "(one per row of logits)");
  expect_dtype(status, "status", "int64");
  expect_shape(status, "status", {1}, "(the first bad row, filled with INT64_MAX by the caller)");
  const float* weight = class_weight(weight_, x.shape[1]);
  check_smoothing(label_smoothing);
  py::gil_scoped_release release;
  cucnn::cross_entropy_forward(f32(loss), f32(lse), f32(wt), i64(status), f32(x), i64(t), weight,
                               x.shape[0], static_cast<int>(x.shape[1]), ignore_index,
                               label_smoothing, as_stream(stream));
}

void cross_entropy_backward(py::handle logits_, py::handle target_, py::handle lse_,
                            py::handle dloss_, py::handle dx_, int64_t ignore_index,
                            py::object weight_, py::object weight_sum_, float label_smoothing,
                            std::uintptr_t stream) {
  Array x = in(logits_, "logits"), t = in(target_, "target"), lse = in(lse_, "lse");
  Array dloss = in(dloss_, "dloss"), dx = out(dx_, "dx");
  check_targets(x, t);
  expect_dtype(lse, "lse", "float32");
  expect_dtype(dloss, "dloss", "float32");
  expect_dtype(dx, "dx", "float32");
  expect_shape(lse, "lse", {x.shape[0]}, "(one per row of logits)");
  expect_shape(dloss, "dloss", {x.shape[0]}, "(one per row of logits)");
  expect_shape(dx, "dx", x.shape, "(the shape of logits)");
  const float* weight = class_weight(weight_, x.shape[1]);
  const float* wsum = nullptr;
  if (weight && weight_sum_.is_none())
    throw py::value_error("weight_sum (1,) is required with weight");
  if (weight) {
    Array ws = in(weight_sum_, "weight_sum");
    expect_dtype(ws, "weight_sum", "float32");
    expect_shape(ws, "weight_sum", {1}, "(the sum of weight)");
    wsum = f32(ws);
  }
  check_smoothing(label_smoothing);
  py::gil_scoped_release release;
  cucnn::cross_entropy_backward(f32(dx), f32(x), i64(t), f32(lse), f32(dloss), weight, wsum,
                                x.shape[0], static_cast<int>(x.shape[1]), ignore_index,
                                label_smoothing, as_stream(stream));
}

// ---- conv2d -------------------------------------------------------------------------------------

using Pair = std::pair<int64_t, int64_t>;
using Pads = std::tuple<int64_t, int64_t, int64_t, int64_t>;  // top, bottom, left, right

int narrow_int(int64_t v, const char* what) {
  if (v > INT_MAX) throw py::value_error(std::string(what) + " must be at most " +
                                         std::to_string(INT_MAX) + ", got " + std::to_string(v));
  return static_cast<int>(v);
}

// The geometry of a convolution of x (N, C, H, W) with w (K, C, R, S), every argument checked.
cucnn::ConvShape conv_shape(const std::vector<int64_t>& xs, const std::vector<int64_t>& ws,
                            Pair stride, Pads pads, Pair dilation) {
  if (xs.size() != 4)
    throw py::value_error("x must be 4-D (N, C, H, W), got shape " + shape_str(xs));
  if (ws.size() != 4)
    throw py::value_error("weight must be 4-D (K, C, R, S), got shape " + shape_str(ws));
  if (xs[1] != ws[1])
    throw py::value_error("expected input with " + std::to_string(ws[1]) +
                          " channels to match weight " + shape_str(ws) + ", got " +
                          std::to_string(xs[1]) + " (input shape " + shape_str(xs) + ")");
  if (stride.first < 1 || stride.second < 1)
    throw py::value_error("stride must be >= 1, got (" + std::to_string(stride.first) + ", " +
                          std::to_string(stride.second) + ")");
  if (dilation.first < 1 || dilation.second < 1)
    throw py::value_error("dilation must be >= 1, got (" + std::to_string(dilation.first) + ", " +
                          std::to_string(dilation.second) + ")");
  auto [pt, pb, pl, pr] = pads;
  if (pt < 0 || pb < 0 || pl < 0 || pr < 0)
    throw py::value_error("padding must be >= 0, got (top " + std::to_string(pt) + ", bottom " +
                          std::to_string(pb) + ", left " + std::to_string(pl) + ", right " +
                          std::to_string(pr) + ")");
  if (ws[2] < 1 || ws[3] < 1)
    throw py::value_error("weight must have a kernel of at least 1x1, got shape " + shape_str(ws));
  const int64_t eh = dilation.first * (ws[2] - 1) + 1, ew = dilation.second * (ws[3] - 1) + 1;
  const int64_t hp = xs[2] + pt + pb, wp = xs[3] + pl + pr;
  if (eh > hp || ew > wp)
    throw py::value_error("kernel (" + std::to_string(eh) + "x" + std::to_string(ew) +
                          " with dilation) is larger than the padded input (" +
                          std::to_string(hp) + "x" + std::to_string(wp) +
                          "): the output size would be <= 0");
  cucnn::ConvShape s{};
  s.N = narrow_int(xs[0], "batch size");
  s.C = narrow_int(xs[1], "channels");
  s.H = narrow_int(xs[2], "height");
  s.W = narrow_int(xs[3], "width");
  s.K = narrow_int(ws[0], "filters");
  s.R = narrow_int(ws[2], "kernel height");
  s.S = narrow_int(ws[3], "kernel width");
  s.P = narrow_int((hp - eh) / stride.first + 1, "output height");
  s.Q = narrow_int((wp - ew) / stride.second + 1, "output width");
  s.sh = narrow_int(stride.first, "stride");
  s.sw = narrow_int(stride.second, "stride");
  s.pt = narrow_int(pt, "padding");
  s.pl = narrow_int(pl, "padding");
  narrow_int(pb, "padding");
  narrow_int(pr, "padding");
  s.dh = narrow_int(dilation.first, "dilation");
  s.dw = narrow_int(dilation.second, "dilation");
  // The kernels index one image plane, one filter and the padded extent in 32-bit ints.
  if (static_cast<int64_t>(s.C) * s.R * s.S > INT_MAX || static_cast<int64_t>(s.P) * s.Q > INT_MAX ||
      static_cast<int64_t>(s.H) * s.W > INT_MAX || static_cast<int64_t>(s.K) * s.R * s.S > INT_MAX)
    throw py::value_error("convolution too large: C*R*S, K*R*S, H*W and P*Q must each be at most " +
                          std::to_string(INT_MAX) + " (32-bit indices)");
  if (hp > INT_MAX || wp > INT_MAX || eh > INT_MAX || ew > INT_MAX)
    throw py::value_error("convolution too large: the padded input (" + std::to_string(hp) + "x" +
                          std::to_string(wp) + ") and the dilated kernel must be at most " +
                          std::to_string(INT_MAX) + " a side (32-bit indices)");
  return s;
}

std::vector<int64_t> out_shape(const cucnn::ConvShape& s) { return {s.N, s.K, s.P, s.Q}; }

// The workspace argument of forward / dgrad: None (no split-K) or at least `need` floats.
float* split_workspace(py::object ws_, int64_t need, const char* query) {
  if (ws_.is_none()) return nullptr;
  Array ws = out(ws_, "workspace");
  expect_dtype(ws, "workspace", "float32");
  if (ws.size() < need)
    throw py::value_error("workspace must hold at least " + std::to_string(need) + " floats (" +
                          query + "), got " + std::to_string(ws.size()));
  return need > 0 ? f32(ws) : nullptr;
}

// The optional bias (K,) of a convolution entry point (fp32, TF32 and depthwise).
const float* conv_bias(py::object bias_, int64_t K) {
  if (bias_.is_none()) return nullptr;
  Array b = in(bias_, "bias");
  expect_dtype(b, "bias", "float32");
  expect_shape(b, "bias", {K}, "(one per filter)");
  return f32(b);
}

void conv2d_forward(py::handle x_, py::handle w_, py::object bias_, py::handle y_, Pair stride,
                    Pads pads, Pair dilation, bool relu, int version, std::uintptr_t stream,
                    py::object ws_) {
  expect_version(version, 1);
  Array x = in(x_, "x"), w = in(w_, "weight"), y = out(y_, "y");
  expect_dtype(x, "x", "float32");
  expect_dtype(w, "weight", "float32");
  expect_dtype(y, "y", "float32");
  const auto s = conv_shape(x.shape, w.shape, stride, pads, dilation);
  expect_shape(y, "y", out_shape(s), "(N, K, P, Q)");
  const float* bias = conv_bias(bias_, s.K);
  float* ws = split_workspace(ws_, version == 0 ? 0 : cucnn::conv2d_forward_workspace(s),
                              "conv2d_forward_workspace");
  py::gil_scoped_release release;
  cucnn::conv2d_forward(f32(y), f32(x), f32(w), bias, s, relu, version, as_stream(stream), ws);
}

void conv2d_backward_data(py::handle dy_, py::handle w_, py::handle dx_, Pair stride, Pads pads,
                          Pair dilation, int version, std::uintptr_t stream, py::object ws_) {
  expect_version(version, 1);
  Array dy = in(dy_, "dy"), w = in(w_, "weight"), dx = out(dx_, "dx");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(w, "weight", "float32");
  expect_dtype(dx, "dx", "float32");
  const auto s = conv_shape(dx.shape, w.shape, stride, pads, dilation);
  expect_shape(dy, "dy", out_shape(s), "(N, K, P, Q)");
  const int64_t need = version == 0 ? 0 : cucnn::conv2d_dgrad_workspace(s);
  if (need > 0 && ws_.is_none())  // version 1 keeps the flipped filters there
    throw py::value_error("workspace must hold at least " + std::to_string(need) +
                          " floats (conv2d_dgrad_workspace), got None");
  float* ws = split_workspace(ws_, need, "conv2d_dgrad_workspace");
  py::gil_scoped_release release;
  cucnn::conv2d_backward_data(f32(dx), f32(dy), f32(w), s, version, as_stream(stream), ws);
}

int64_t conv2d_wgrad_workspace(std::vector<int64_t> x_shape, std::vector<int64_t> w_shape,
                               Pair stride, Pads pads, Pair dilation, bool bias) {
  return cucnn::conv2d_wgrad_workspace(conv_shape(x_shape, w_shape, stride, pads, dilation), bias);
}

// Split-K workspace (floats) of forward / dgrad, and the plan of a pass (for tests and reports):
// (block tile M, block tile N, blocks launched including splits, splits).
int64_t conv2d_forward_workspace(std::vector<int64_t> x_shape, std::vector<int64_t> w_shape,
                                 Pair stride, Pads pads, Pair dilation) {
  return cucnn::conv2d_forward_workspace(conv_shape(x_shape, w_shape, stride, pads, dilation));
}
int64_t conv2d_dgrad_workspace(std::vector<int64_t> x_shape, std::vector<int64_t> w_shape,
                               Pair stride, Pads pads, Pair dilation) {
  return cucnn::conv2d_dgrad_workspace(conv_shape(x_shape, w_shape, stride, pads, dilation));
}
// dgrad's launches (conv2d_dgrad_phases): whether dx is zero-filled first, and per stride phase
// (a, b, rows, cols, taps R, taps S, tile M, tile N, blocks, splits, 32-bit offsets, float4 B).
py::tuple conv2d_dgrad_phases(std::vector<int64_t> x_shape, std::vector<int64_t> w_shape,
                              Pair stride, Pads pads, Pair dilation) {
  const auto s = conv_shape(x_shape, w_shape, stride, pads, dilation);
  const cucnn::DgradPhases d = cucnn::conv2d_dgrad_phases(s);
  py::list phases;
  for (const cucnn::DgradPhase& ph : d.phases) {
    const cucnn::ConvTile& t = cucnn::kConvTiles[ph.plan.tile];
    const int64_t kdim = static_cast<int64_t>(ph.g.C) * ph.g.R * ph.g.S;
    phases.append(py::make_tuple(ph.a, ph.b, ph.g.P, ph.g.Q, ph.g.R, ph.g.S, t.bm, t.bn,
                                 ph.plan.blocks, ph.plan.splits,
                                 cucnn::conv2d_dgrad_index32(ph.g), kdim % 4 == 0));
  }
  return py::make_tuple(d.zero_fill, phases);
}

std::tuple<int, int, int64_t, int> conv2d_plan(const std::string& pass, std::vector<int64_t> x_shape,
                                               std::vector<int64_t> w_shape, Pair stride, Pads pads,
                                               Pair dilation) {
  const auto s = conv_shape(x_shape, w_shape, stride, pads, dilation);
  cucnn::ConvPlan p;
  if (pass == "forward") p = cucnn::conv2d_forward_plan(s);
  else if (pass == "dgrad") p = cucnn::conv2d_dgrad_plan(s);
  else if (pass == "wgrad") p = cucnn::conv2d_wgrad_plan(s);
  else throw py::value_error("pass must be 'forward', 'dgrad' or 'wgrad', got '" + pass + "'");
  const cucnn::ConvTile& t = cucnn::kConvTiles[p.tile];
  return {t.bm, t.bn, p.blocks, p.splits};
}

// db (K,) or None: where the plan has a spare column (cucnn::conv2d_wgrad_fuses_bias), the GEMM
// computes the bias gradient too and this returns True; otherwise db is untouched (False).
bool conv2d_backward_weight(py::handle dy_, py::handle x_, py::handle dw_, py::handle ws_,
                            Pair stride, Pads pads, Pair dilation, int version,
                            std::uintptr_t stream, py::object db_) {
  expect_version(version, 1);
  Array dy = in(dy_, "dy"), x = in(x_, "x"), dw = out(dw_, "dw"), ws = out(ws_, "workspace");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(x, "x", "float32");
  expect_dtype(dw, "dw", "float32");
  expect_dtype(ws, "workspace", "float32");
  const auto s = conv_shape(x.shape, dw.shape, stride, pads, dilation);
  expect_shape(dy, "dy", out_shape(s), "(N, K, P, Q)");
  float* db = nullptr;
  if (!db_.is_none()) {
    Array dba = out(db_, "db");
    expect_dtype(dba, "db", "float32");
    expect_shape(dba, "db", {s.K}, "(one per filter)");
    db = f32(dba);
  }
  const int64_t need = version == 0 ? 0 : cucnn::conv2d_wgrad_workspace(s, db != nullptr);
  if (ws.size() < need)
    throw py::value_error("workspace must hold at least " + std::to_string(need) +
                          " floats (conv2d_wgrad_workspace" + (db ? ", bias=True" : "") +
                          "), got " + std::to_string(ws.size()));
  py::gil_scoped_release release;
  return cucnn::conv2d_backward_weight(f32(dw), f32(ws), f32(dy), f32(x), s, version,
                                       as_stream(stream), db);
}

void conv2d_backward_bias(py::handle dy_, py::handle db_, std::uintptr_t stream) {
  Array dy = in(dy_, "dy"), db = out(db_, "db");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(db, "db", "float32");
  expect_ndim(dy, "dy", 4);
  expect_shape(db, "db", {dy.shape[1]}, "(one per filter)");
  cucnn::ConvShape s{};
  s.N = narrow_int(dy.shape[0], "batch size");
  s.K = narrow_int(dy.shape[1], "filters");
  s.P = narrow_int(dy.shape[2], "output height");
  s.Q = narrow_int(dy.shape[3], "output width");
  py::gil_scoped_release release;
  cucnn::conv2d_backward_bias(f32(db), f32(dy), s, as_stream(stream));
}

// ---- conv2d on tensor cores (TF32) ----------------------------------------------------------------
// Same arguments and checks as the fp32 entry points above (no version: one kernel per pass).

// Whether this module can run the TF32 kernels: always on sim; on CUDA, a device of compute
// capability 8.0 or later (mma.sync TF32 and cp.async need sm_80) running code compiled for 8.0 or
// later (a build for sm_75 only would JIT its PTX, in which the kernels trap).
bool conv2d_tc_available() {
#if SIMT_HOST_EMULATION
  return true;
#else
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
    return false;
  cudaFuncAttributes attr{};
  if (cudaFuncGetAttributes(&attr, cucnn::conv_tc_kernel<cucnn::TcTileSmall, cucnn::TcFwdA,
                                                         cucnn::TcFwdB, cucnn::TcFwdStore>) !=
      cudaSuccess) {
    cudaGetLastError();  // clear the error so that the next CUDA call does not report it
    return false;
  }
  return major >= 8 && attr.ptxVersion >= 80;
#endif
}

void expect_tc_supported(const cucnn::ConvShape& s) {
  if (!cucnn::conv2d_tc_supported(s))
    throw py::value_error("convolution too large for the TF32 kernels (an operand or the padded "
                          "input plane has more than 2^29 elements); use the fp32 kernels");
}

bool conv2d_tc_supported(std::vector<int64_t> x_shape, std::vector<int64_t> w_shape, Pair stride,
                         Pads pads, Pair dilation) {
  return cucnn::conv2d_tc_supported(conv_shape(x_shape, w_shape, stride, pads, dilation));
}

void conv2d_tc_forward(py::handle x_, py::handle w_, py::object bias_, py::handle y_, Pair stride,
                       Pads pads, Pair dilation, bool relu, std::uintptr_t stream,
                       py::object ws_) {
  Array x = in(x_, "x"), w = in(w_, "weight"), y = out(y_, "y");
  expect_dtype(x, "x", "float32");
  expect_dtype(w, "weight", "float32");
  expect_dtype(y, "y", "float32");
  const auto s = conv_shape(x.shape, w.shape, stride, pads, dilation);
  expect_shape(y, "y", out_shape(s), "(N, K, P, Q)");
  expect_tc_supported(s);
  const float* bias = conv_bias(bias_, s.K);
  float* ws = split_workspace(ws_, cucnn::conv2d_tc_forward_workspace(s),
                              "conv2d_tc_forward_workspace");
  py::gil_scoped_release release;
  cucnn::conv2d_tc_forward(f32(y), f32(x), f32(w), bias, s, relu, as_stream(stream), ws);
}

void conv2d_tc_backward_data(py::handle dy_, py::handle w_, py::handle dx_, Pair stride, Pads pads,
                             Pair dilation, std::uintptr_t stream, py::object ws_) {
  Array dy = in(dy_, "dy"), w = in(w_, "weight"), dx = out(dx_, "dx");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(w, "weight", "float32");
  expect_dtype(dx, "dx", "float32");
  const auto s = conv_shape(dx.shape, w.shape, stride, pads, dilation);
  expect_shape(dy, "dy", out_shape(s), "(N, K, P, Q)");
  expect_tc_supported(s);
  float* ws = split_workspace(ws_, cucnn::conv2d_tc_dgrad_workspace(s),
                              "conv2d_tc_dgrad_workspace");
  py::gil_scoped_release release;
  cucnn::conv2d_tc_backward_data(f32(dx), f32(dy), f32(w), s, as_stream(stream), ws);
}

// Split-K workspace (floats) of the TF32 forward / dgrad (0: their plan does not split K).
int64_t conv2d_tc_forward_workspace(std::vector<int64_t> x_shape, std::vector<int64_t> w_shape,
                                    Pair stride, Pads pads, Pair dilation) {
  return cucnn::conv2d_tc_forward_workspace(conv_shape(x_shape, w_shape, stride, pads, dilation));
}
int64_t conv2d_tc_dgrad_workspace(std::vector<int64_t> x_shape, std::vector<int64_t> w_shape,
                                  Pair stride, Pads pads, Pair dilation) {
  return cucnn::conv2d_tc_dgrad_workspace(conv_shape(x_shape, w_shape, stride, pads, dilation));
}

int64_t conv2d_tc_wgrad_workspace(std::vector<int64_t> x_shape, std::vector<int64_t> w_shape,
                                  Pair stride, Pads pads, Pair dilation) {
  return cucnn::conv2d_tc_wgrad_workspace(conv_shape(x_shape, w_shape, stride, pads, dilation));
}

void conv2d_tc_backward_weight(py::handle dy_, py::handle x_, py::handle dw_, py::handle ws_,
                               Pair stride, Pads pads, Pair dilation, std::uintptr_t stream) {
  Array dy = in(dy_, "dy"), x = in(x_, "x"), dw = out(dw_, "dw"), ws = out(ws_, "workspace");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(x, "x", "float32");
  expect_dtype(dw, "dw", "float32");
  expect_dtype(ws, "workspace", "float32");
  const auto s = conv_shape(x.shape, dw.shape, stride, pads, dilation);
  expect_shape(dy, "dy", out_shape(s), "(N, K, P, Q)");
  expect_tc_supported(s);
  const int64_t need = cucnn::conv2d_tc_wgrad_workspace(s);
  if (ws.size() < need)
    throw py::value_error("workspace must hold at least " + std::to_string(need) +
                          " floats (conv2d_tc_wgrad_workspace), got " + std::to_string(ws.size()));
  py::gil_scoped_release release;
  cucnn::conv2d_tc_backward_weight(f32(dw), f32(ws), f32(dy), f32(x), s, as_stream(stream));
}

// The TF32 plan of a pass (conv_plan over the TF32 tile table; forward and dgrad as launched with
// their workspace): (tile M, tile N, blocks, splits).
std::tuple<int, int, int64_t, int> conv2d_tc_plan(const std::string& pass,
                                                  std::vector<int64_t> x_shape,
                                                  std::vector<int64_t> w_shape, Pair stride,
                                                  Pads pads, Pair dilation) {
  const auto s = conv_shape(x_shape, w_shape, stride, pads, dilation);
  cucnn::ConvPlan p;
  if (pass == "forward") p = cucnn::conv2d_tc_forward_plan(s);
  else if (pass == "dgrad") p = cucnn::conv2d_tc_dgrad_plan(s);
  else if (pass == "wgrad") p = cucnn::conv2d_tc_wgrad_plan(s);
  else throw py::value_error("pass must be 'forward', 'dgrad' or 'wgrad', got '" + pass + "'");
  const cucnn::ConvTile& t = cucnn::kTcTiles[p.tile];
  return {t.bm, t.bn, p.blocks, p.splits};
}

void bind_conv2d_tc(py::module_& m) {
  m.def("conv2d_tc_plan", &conv2d_tc_plan, py::arg("pass"), py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "(tile M, tile N, blocks, splits) the TF32 kernels launch for 'forward'/'dgrad'/'wgrad'");
  m.def("conv2d_tc_force_plan", [](int tile, int splits) {
    if (tile >= cucnn::kTcNumTiles)
      throw py::value_error("tile must be -1 or below " + std::to_string(cucnn::kTcNumTiles) +
                            ", got " + std::to_string(tile));
    cucnn::conv_tc_plan_override() = cucnn::TcPlanOverride{tile, splits};
  }, py::arg("tile"), py::arg("splits") = 1,
        "test hook: every TF32 conv pass uses tile number `tile` of the TF32 table (0 128x128, "
        "1 64x64, 2 128x32, 3 128x16) and `splits` (clamped; forward and dgrad split only with "
        "a workspace); -1 restores the chooser");
  m.def("conv2d_tc_available", &conv2d_tc_available,
        "whether the TF32 tensor-core conv kernels can run here (sim, or a GPU of sm_80+)");
  m.def("conv2d_tc_supported", &conv2d_tc_supported, py::arg("x_shape"), py::arg("w_shape"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "whether the TF32 kernels take this shape (the one rule; the fp32 kernels take the rest)");
  m.def("conv2d_tc_forward", &conv2d_tc_forward, py::arg("x"), py::arg("weight"),
        py::arg("bias"), py::arg("y"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("relu") = false, py::arg("stream") = 0, py::arg("workspace") = py::none(),
        "conv2d_forward on TF32 tensor cores (inputs rounded to TF32, fp32 accumulation); "
        "workspace: conv2d_tc_forward_workspace floats for split-K, or None (no split)");
  m.def("conv2d_tc_backward_data", &conv2d_tc_backward_data, py::arg("dy"), py::arg("weight"),
        py::arg("dx"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("stream") = 0, py::arg("workspace") = py::none(),
        "conv2d_backward_data on TF32 tensor cores; workspace: conv2d_tc_dgrad_workspace floats "
        "for split-K, or None (no split)");
  m.def("conv2d_tc_forward_workspace", &conv2d_tc_forward_workspace, py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "floats of split-K workspace conv2d_tc_forward needs (0: none)");
  m.def("conv2d_tc_dgrad_workspace", &conv2d_tc_dgrad_workspace, py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "floats of split-K workspace conv2d_tc_backward_data needs (0: none)");
  m.def("conv2d_tc_wgrad_workspace", &conv2d_tc_wgrad_workspace, py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "floats of workspace conv2d_tc_backward_weight needs");
  m.def("conv2d_tc_backward_weight", &conv2d_tc_backward_weight, py::arg("dy"), py::arg("x"),
        py::arg("dw"), py::arg("workspace"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("stream") = 0,
        "conv2d_backward_weight on TF32 tensor cores (split-K, fixed-order reduction)");
}

// ---- depthwise conv2d (groups == C) ----------------------------------------------------------------

// x (N, C, H, W), w (C*M, 1, R, S): the ConvShape of conv_shape with K = C*M.
cucnn::ConvShape depthwise_shape(const std::vector<int64_t>& xs, const std::vector<int64_t>& ws,
                                 Pair stride, Pads pads, Pair dilation) {
  if (xs.size() != 4)
    throw py::value_error("x must be 4-D (N, C, H, W), got shape " + shape_str(xs));
  if (ws.size() != 4 || ws[1] != 1)
    throw py::value_error("depthwise weight must be 4-D (C * multiplier, 1, R, S), got shape " +
                          shape_str(ws));
  if (xs[1] < 1 || ws[0] % xs[1])
    throw py::value_error("depthwise weight's " + std::to_string(ws[0]) +
                          " filters must be a multiple of the input's " + std::to_string(xs[1]) +
                          " channels (input shape " + shape_str(xs) + ")");
  return conv_shape(xs, {ws[0], xs[1], ws[2], ws[3]}, stride, pads, dilation);
}

void depthwise_conv2d_forward(py::handle x_, py::handle w_, py::object bias_, py::handle y_,
                              Pair stride, Pads pads, Pair dilation, int version,
                              std::uintptr_t stream) {
  expect_version(version, 1);
  Array x = in(x_, "x"), w = in(w_, "weight"), y = out(y_, "y");
  expect_dtype(x, "x", "float32");
  expect_dtype(w, "weight", "float32");
  expect_dtype(y, "y", "float32");
  const auto s = depthwise_shape(x.shape, w.shape, stride, pads, dilation);
  expect_shape(y, "y", out_shape(s), "(N, K, P, Q)");
  const float* bias = conv_bias(bias_, s.K);
  py::gil_scoped_release release;
  cucnn::depthwise_conv2d_forward(f32(y), f32(x), f32(w), bias, s, version, as_stream(stream));
}

void depthwise_conv2d_backward_data(py::handle dy_, py::handle w_, py::handle dx_, Pair stride,
                                    Pads pads, Pair dilation, int version, std::uintptr_t stream) {
  expect_version(version, 1);
  Array dy = in(dy_, "dy"), w = in(w_, "weight"), dx = out(dx_, "dx");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(w, "weight", "float32");
  expect_dtype(dx, "dx", "float32");
  const auto s = depthwise_shape(dx.shape, w.shape, stride, pads, dilation);
  expect_shape(dy, "dy", out_shape(s), "(N, K, P, Q)");
  py::gil_scoped_release release;
  cucnn::depthwise_conv2d_backward_data(f32(dx), f32(dy), f32(w), s, version, as_stream(stream));
}

void depthwise_conv2d_backward_weight(py::handle dy_, py::handle x_, py::handle dw_, Pair stride,
                                      Pads pads, Pair dilation, int version,
                                      std::uintptr_t stream) {
  expect_version(version, 1);
  Array dy = in(dy_, "dy"), x = in(x_, "x"), dw = out(dw_, "dw");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(x, "x", "float32");
  expect_dtype(dw, "dw", "float32");
  const auto s = depthwise_shape(x.shape, dw.shape, stride, pads, dilation);
  expect_shape(dy, "dy", out_shape(s), "(N, K, P, Q)");
  py::gil_scoped_release release;
  cucnn::depthwise_conv2d_backward_weight(f32(dw), f32(dy), f32(x), s, version,
                                          as_stream(stream));
}

void bind_depthwise_conv2d(py::module_& m) {
  m.def("depthwise_conv2d_forward", &depthwise_conv2d_forward, py::arg("x"), py::arg("weight"),
        py::arg("bias"), py::arg("y"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("version") = 1, py::arg("stream") = 0,
        "y = depthwise conv2d(x, weight (C*M, 1, R, S)) + bias; padding (top, bottom, left, right)");
  m.def("depthwise_conv2d_backward_data", &depthwise_conv2d_backward_data, py::arg("dy"),
        py::arg("weight"), py::arg("dx"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("version") = 1, py::arg("stream") = 0,
        "dx of depthwise conv2d");
  m.def("depthwise_conv2d_backward_weight", &depthwise_conv2d_backward_weight, py::arg("dy"),
        py::arg("x"), py::arg("dw"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("version") = 1, py::arg("stream") = 0,
        "dw of depthwise conv2d (fixed-order block reductions, no atomics)");
}

// ---- pooling ------------------------------------------------------------------------------------

// The geometry of pooling x (N, C, H, W) to (P, Q), every argument checked: the Python layer
// computes P and Q (floor/ceil mode, "same"); here we make sure every window holds an input cell.
cucnn::PoolShape pool_shape(const Array& x, Pair kernel, Pair stride, Pads pads, Pair dilation,
                            Pair out) {
  expect_ndim(x, "x", 4);
  if (kernel.first < 1 || kernel.second < 1)
    throw py::value_error("kernel_size must be >= 1, got (" + std::to_string(kernel.first) + ", " +
                          std::to_string(kernel.second) + ")");
  if (stride.first < 1 || stride.second < 1)
    throw py::value_error("stride must be >= 1, got (" + std::to_string(stride.first) + ", " +
                          std::to_string(stride.second) + ")");
  if (dilation.first < 1 || dilation.second < 1)
    throw py::value_error("dilation must be >= 1");
  auto [pt, pb, pl, pr] = pads;
  const int64_t eh = dilation.first * (kernel.first - 1) + 1;
  const int64_t ew = dilation.second * (kernel.second - 1) + 1;
  if (pt < 0 || pb < 0 || pl < 0 || pr < 0 || 2 * pt > eh || 2 * pb > eh || 2 * pl > ew ||
      2 * pr > ew)
    throw py::value_error("padding must be >= 0 and at most half of the effective kernel size (" +
                          std::to_string(eh) + "x" + std::to_string(ew) + "), got (top " +
                          std::to_string(pt) + ", bottom " + std::to_string(pb) + ", left " +
                          std::to_string(pl) + ", right " + std::to_string(pr) + ")");
  if (out.first < 1 || out.second < 1)
    throw py::value_error("output size must be >= 1, got " + std::to_string(out.first) + "x" +
                          std::to_string(out.second));
  if ((out.first - 1) * stride.first - pt >= x.shape[2] ||
      (out.second - 1) * stride.second - pl >= x.shape[3])
    throw py::value_error("the last window must start inside the input or its left/top padding");
  cucnn::PoolShape s{};
  s.planes = x.shape[0] * x.shape[1];
  s.H = narrow_int(x.shape[2], "height");
  s.W = narrow_int(x.shape[3], "width");
  s.P = narrow_int(out.first, "output height");
  s.Q = narrow_int(out.second, "output width");
  s.R = narrow_int(kernel.first, "kernel_size");
  s.S = narrow_int(kernel.second, "kernel_size");
  s.sh = narrow_int(stride.first, "stride");
  s.sw = narrow_int(stride.second, "stride");
  s.pt = narrow_int(pt, "padding");
  s.pb = narrow_int(pb, "padding");
  s.pl = narrow_int(pl, "padding");
  s.pr = narrow_int(pr, "padding");
  s.dh = narrow_int(dilation.first, "dilation");
  s.dw = narrow_int(dilation.second, "dilation");
  return s;
}

std::vector<int64_t> pooled(const Array& x, const cucnn::PoolShape& s) {
  return {x.shape[0], x.shape[1], s.P, s.Q};
}

void max_pool2d_forward(py::handle x_, py::handle y_, py::handle idx_, Pair kernel, Pair stride,
                        Pads pads, Pair dilation, std::uintptr_t stream) {
  Array x = in(x_, "x"), y = out(y_, "y"), idx = out(idx_, "indices");
  expect_dtype(x, "x", "float32");
  expect_dtype(y, "y", "float32");
  expect_dtype(idx, "indices", "int64");
  expect_ndim(y, "y", 4);
  const auto s = pool_shape(x, kernel, stride, pads, dilation, {y.shape[2], y.shape[3]});
  expect_shape(y, "y", pooled(x, s), "(N, C, P, Q)");
  expect_shape(idx, "indices", pooled(x, s), "(the shape of y)");
  py::gil_scoped_release release;
  cucnn::max_pool2d_forward(f32(y), i64(idx), f32(x), s, as_stream(stream));
}

void max_pool2d_backward(py::handle dy_, py::handle idx_, py::handle dx_, Pair kernel,
                         Pair stride, Pads pads, Pair dilation, std::uintptr_t stream) {
  Array dy = in(dy_, "dy"), idx = in(idx_, "indices"), dx = out(dx_, "dx");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(idx, "indices", "int64");
  expect_dtype(dx, "dx", "float32");
  expect_ndim(dy, "dy", 4);
  const auto s = pool_shape(dx, kernel, stride, pads, dilation, {dy.shape[2], dy.shape[3]});
  expect_shape(dy, "dy", pooled(dx, s), "(N, C, P, Q)");
  expect_shape(idx, "indices", dy.shape, "(the shape of dy)");
  py::gil_scoped_release release;
  cucnn::max_pool2d_backward(f32(dx), f32(dy), i64(idx), s, as_stream(stream));
}

void avg_pool2d_forward(py::handle x_, py::handle y_, Pair kernel, Pair stride, Pads pads,
                        bool count_include_pad, int divisor_override, std::uintptr_t stream) {
  Array x = in(x_, "x"), y = out(y_, "y");
  expect_dtype(x, "x", "float32");
  expect_dtype(y, "y", "float32");
  expect_ndim(y, "y", 4);
  const auto s = pool_shape(x, kernel, stride, pads, {1, 1}, {y.shape[2], y.shape[3]});
  expect_shape(y, "y", pooled(x, s), "(N, C, P, Q)");
  if (divisor_override < 0)
    throw py::value_error("divisor_override must be > 0 (or 0 for none), got " +
                          std::to_string(divisor_override));
  py::gil_scoped_release release;
  cucnn::avg_pool2d_forward(f32(y), f32(x), s, count_include_pad, divisor_override,
                            as_stream(stream));
}

void avg_pool2d_backward(py::handle dy_, py::handle dx_, Pair kernel, Pair stride, Pads pads,
                         bool count_include_pad, int divisor_override, std::uintptr_t stream) {
  Array dy = in(dy_, "dy"), dx = out(dx_, "dx");
  expect_dtype(dy, "dy", "float32");
  expect_dtype(dx, "dx", "float32");
  expect_ndim(dy, "dy", 4);
  const auto s = pool_shape(dx, kernel, stride, pads, {1, 1}, {dy.shape[2], dy.shape[3]});
  expect_shape(dy, "dy", pooled(dx, s), "(N, C, P, Q)");
  if (divisor_override < 0)
    throw py::value_error("divisor_override must be > 0 (or 0 for none), got " +
                          std::to_string(divisor_override));
  py::gil_scoped_release release;
  cucnn::avg_pool2d_backward(f32(dx), f32(dy), s, count_include_pad, divisor_override,
                             as_stream(stream));
}

// ---- batch normalisation --------------------------------------------------------------------------

// The shape of a batch norm over x (N, C, H, W), checked; `training` needs two values per channel.
cucnn::BNShape bn_shape(const Array& x, bool training) {
  expect_dtype(x, "x", "float32");
  expect_ndim(x, "x", 4);
  if (x.shape[1] < 1 || x.shape[1] > 65535)
    throw py::value_error("x must have between 1 and 65535 channels, got shape " +
                          shape_str(x.shape));
  const int64_t hw = x.shape[2] * x.shape[3];
  if (x.shape[0] * hw > INT_MAX)
    throw py::value_error("x has " + std::to_string(x.shape[0] * hw) + " values per channel; at "
                          "most " + std::to_string(INT_MAX) + " are supported");
  if (training && x.shape[0] * hw <= 1)
    throw py::value_error("expected more than 1 value per channel when training, got input "
                          "shape " + shape_str(x.shape));
  return cucnn::batchnorm_shape(static_cast<int>(x.shape[0]), static_cast<int>(x.shape[1]),
                                static_cast<int>(hw));
}

// A per-channel float32 vector of C elements, or nullptr for None.
const float* channel_vec(py::handle obj, const char* name, int64_t C, bool output = false) {
  if (obj.is_none()) return nullptr;
  Array a = output ? out(obj, name) : in(obj, name);
  expect_dtype(a, name, "float32");
  expect_shape(a, name, {C}, "(one per channel)");
  return f32(a);
}
float* channel_out(py::handle obj, const char* name, int64_t C) {
  return const_cast<float*>(channel_vec(obj, name, C, true));
}

void expect_eps_factor(float eps, float factor) {
  if (!(eps >= 0.0f) || eps == __builtin_huge_valf())
    throw py::value_error("eps must be finite and >= 0, got " + std::to_string(eps));
  if (!(factor >= 0.0f && factor <= 1.0f))
    throw py::value_error("factor (momentum) must be in [0, 1], got " + std::to_string(factor));
}

float* bn_workspace(py::handle ws_, const cucnn::BNShape& s, int version) {
  Array ws = out(ws_, "workspace");
  expect_dtype(ws, "workspace", "float32");
  const int64_t need = version == 0 ? 0 : cucnn::batchnorm_workspace(s);
  if (ws.size() < need)
    throw py::value_error("workspace must hold at least " + std::to_string(need) +
                          " floats (batchnorm_workspace), got " + std::to_string(ws.size()));
  return f32(ws);
}

int64_t batchnorm_workspace(std::vector<int64_t> x_shape) {
  if (x_shape.size() != 4 || x_shape[1] < 1)
    throw py::value_error("x_shape must be (N, C, H, W) with C >= 1, got " + shape_str(x_shape));
  return cucnn::batchnorm_workspace(cucnn::batchnorm_shape(
      static_cast<int>(x_shape[0]), static_cast<int>(x_shape[1]),
      static_cast<int>(x_shape[2] * x_shape[3])));
}

void batchnorm_forward_train(py::handle x_, py::handle y_, py::handle mean_, py::handle invstd_,
                             py::handle rmean_, py::handle rvar_, py::handle w_, py::handle b_,
                             py::handle ws_, float eps, float factor, int version,
                             std::uintptr_t stream) {
  expect_version(version, 1);
  Array x = in(x_, "x"), y = out(y_, "y");
  const auto s = bn_shape(x, true);
  expect_dtype(y, "y", "float32");
  expect_shape(y, "y", x.shape, "(the shape of x)");
  expect_eps_factor(eps, factor);
  float* mean = channel_out(mean_, "mean", s.C);
  float* invstd = channel_out(invstd_, "invstd", s.C);
  if (mean == nullptr || invstd == nullptr) throw py::type_error("mean and invstd are required");
  float* rmean = channel_out(rmean_, "running_mean", s.C);
  float* rvar = channel_out(rvar_, "running_var", s.C);
  if ((rmean == nullptr) != (rvar == nullptr))
    throw py::value_error("running_mean and running_var must be both given or both None");
  const float* w = channel_vec(w_, "weight", s.C);
  const float* b = channel_vec(b_, "bias", s.C);
  float* ws = bn_workspace(ws_, s, version);
  py::gil_scoped_release release;
  cucnn::batchnorm_forward_train(f32(y), mean, invstd, rmean, rvar, ws, f32(x), w, b, s, eps,
                                 factor, version, as_stream(stream));
}

void batchnorm_forward_eval(py::handle x_, py::handle y_, py::handle invstd_, py::handle rmean_,
                            py::handle rvar_, py::handle w_, py::handle b_, float eps,
                            std::uintptr_t stream) {
  Array x = in(x_, "x"), y = out(y_, "y");
  const auto s = bn_shape(x, false);
  expect_dtype(y, "y", "float32");
  expect_shape(y, "y", x.shape, "(the shape of x)");
  expect_eps_factor(eps, 0.0f);
  float* invstd = channel_out(invstd_, "invstd", s.C);
  const float* rmean = channel_vec(rmean_, "running_mean", s.C);
  const float* rvar = channel_vec(rvar_, "running_var", s.C);
  if (invstd == nullptr || rmean == nullptr || rvar == nullptr)
    throw py::type_error("invstd, running_mean and running_var are required in eval mode");
  const float* w = channel_vec(w_, "weight", s.C);
  const float* b = channel_vec(b_, "bias", s.C);
  py::gil_scoped_release release;
  cucnn::batchnorm_forward_eval(f32(y), invstd, rmean, rvar, f32(x), w, b, s, eps,
                                as_stream(stream));
}

void batchnorm_backward(py::handle dy_, py::handle x_, py::handle mean_, py::handle invstd_,
                        py::handle w_, py::handle dx_, py::handle dgamma_, py::handle dbeta_,
                        py::handle ws_, bool training, int version, std::uintptr_t stream) {
  expect_version(version, 1);
  Array dy = in(dy_, "dy"), x = in(x_, "x"), dx = out(dx_, "dx");
  const auto s = bn_shape(x, false);
  expect_dtype(dy, "dy", "float32");
  expect_dtype(dx, "dx", "float32");
  expect_shape(dy, "dy", x.shape, "(the shape of x)");
  expect_shape(dx, "dx", x.shape, "(the shape of x)");
  const float* mean = channel_vec(mean_, "mean", s.C);
  const float* invstd = channel_vec(invstd_, "invstd", s.C);
  float* dgamma = channel_out(dgamma_, "dgamma", s.C);
  float* dbeta = channel_out(dbeta_, "dbeta", s.C);
  if (mean == nullptr || invstd == nullptr || dgamma == nullptr || dbeta == nullptr)
    throw py::type_error("mean, invstd, dgamma and dbeta are required");
  const float* w = channel_vec(w_, "weight", s.C);
  float* ws = bn_workspace(ws_, s, version);
  py::gil_scoped_release release;
  cucnn::batchnorm_backward(f32(dx), dgamma, dbeta, ws, f32(dy), f32(x), mean, invstd, w, s,
                            training, version, as_stream(stream));
}

void bind_batchnorm(py::module_& m) {
  m.def("batchnorm_workspace", &batchnorm_workspace, py::arg("x_shape"),
        "floats of workspace the training forward and the backward need");
  m.def("batchnorm_forward_train", &batchnorm_forward_train, py::arg("x"), py::arg("y"),
        py::arg("mean"), py::arg("invstd"), py::arg("running_mean"), py::arg("running_var"),
        py::arg("weight"), py::arg("bias"), py::arg("workspace"), py::arg("eps"),
        py::arg("factor"), py::arg("version") = 1, py::arg("stream") = 0,
        "batch statistics (mean, invstd out; running stats updated in place by factor), then y");
  m.def("batchnorm_forward_eval", &batchnorm_forward_eval, py::arg("x"), py::arg("y"),
        py::arg("invstd"), py::arg("running_mean"), py::arg("running_var"), py::arg("weight"),
        py::arg("bias"), py::arg("eps"), py::arg("stream") = 0,
        "y from the running statistics; invstd out");
  m.def("batchnorm_backward", &batchnorm_backward, py::arg("dy"), py::arg("x"), py::arg("mean"),
        py::arg("invstd"), py::arg("weight"), py::arg("dx"), py::arg("dgamma"), py::arg("dbeta"),
        py::arg("workspace"), py::arg("training"), py::arg("version") = 1, py::arg("stream") = 0,
        "dx, dgamma = sum(dy*xhat), dbeta = sum(dy) (split reduction, fixed order)");
}

// ---- adaptive pooling -----------------------------------------------------------------------------

cucnn::AdaptiveShape adaptive_shape(const Array& x, const Array& y, const char* yname) {
  expect_dtype(x, "x", "float32");
  expect_dtype(y, yname, "float32");
  expect_ndim(x, "x", 4);
  expect_ndim(y, yname, 4);
  if (x.shape[2] < 1 || x.shape[3] < 1)
    throw py::value_error("x must have a non-empty plane, got shape " + shape_str(x.shape));
  if (y.shape[2] < 1 || y.shape[3] < 1)
    throw py::value_error(std::string(yname) + " must have an output size of at least 1x1, got "
                          "shape " + shape_str(y.shape));
  expect_shape(y, yname, {x.shape[0], x.shape[1], y.shape[2], y.shape[3]}, "(N, C, P, Q)");
  cucnn::AdaptiveShape s{};
  s.planes = x.shape[0] * x.shape[1];
  s.H = narrow_int(x.shape[2], "height");
  s.W = narrow_int(x.shape[3], "width");
  s.P = narrow_int(y.shape[2], "output height");
  s.Q = narrow_int(y.shape[3], "output width");
  if (static_cast<int64_t>(s.H) * s.W > INT_MAX)
    throw py::value_error("x planes must hold at most " + std::to_string(INT_MAX) + " values");
  // the window formulas compute (i + 1) * in + out in 32 bits
  if ((static_cast<int64_t>(s.H) + 1) * s.P + s.H > INT_MAX ||
      (static_cast<int64_t>(s.W) + 1) * s.Q + s.W > INT_MAX)
    throw py::value_error("input size x output size must fit in 32 bits, got " +
                          std::to_string(s.H) + "x" + std::to_string(s.W) + " to " +
                          std::to_string(s.P) + "x" + std::to_string(s.Q));
  return s;
}

void adaptive_avg_pool2d_forward(py::handle x_, py::handle y_, int version,
                                 std::uintptr_t stream) {
  expect_version(version, 1);
  Array x = in(x_, "x"), y = out(y_, "y");
  const auto s = adaptive_shape(x, y, "y");
  py::gil_scoped_release release;
  cucnn::adaptive_avg_pool2d_forward(f32(y), f32(x), s, version, as_stream(stream));
}

void adaptive_max_pool2d_forward(py::handle x_, py::handle y_, py::handle idx_, int version,
                                 std::uintptr_t stream) {
  expect_version(version, 1);
  Array x = in(x_, "x"), y = out(y_, "y"), idx = out(idx_, "indices");
  const auto s = adaptive_shape(x, y, "y");
  expect_dtype(idx, "indices", "int64");
  expect_shape(idx, "indices", y.shape, "(the shape of y)");
  py::gil_scoped_release release;
  cucnn::adaptive_max_pool2d_forward(f32(y), i64(idx), f32(x), s, version, as_stream(stream));
}

void adaptive_avg_pool2d_backward(py::handle dy_, py::handle dx_, std::uintptr_t stream) {
  Array dy = in(dy_, "dy"), dx = out(dx_, "dx");
  const auto s = adaptive_shape(dx, dy, "dy");
  py::gil_scoped_release release;
  cucnn::adaptive_avg_pool2d_backward(f32(dx), f32(dy), s, as_stream(stream));
}

void adaptive_max_pool2d_backward(py::handle dy_, py::handle idx_, py::handle dx_,
                                  std::uintptr_t stream) {
  Array dy = in(dy_, "dy"), idx = in(idx_, "indices"), dx = out(dx_, "dx");
  const auto s = adaptive_shape(dx, dy, "dy");
  expect_dtype(idx, "indices", "int64");
  expect_shape(idx, "indices", dy.shape, "(the shape of dy)");
  py::gil_scoped_release release;
  cucnn::adaptive_max_pool2d_backward(f32(dx), f32(dy), i64(idx), s, as_stream(stream));
}

void bind_adaptive_pool2d(py::module_& m) {
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward, py::arg("x"), py::arg("y"),
        py::arg("version") = 1, py::arg("stream") = 0,
        "adaptive average pooling to the (P, Q) of y (1x1: the global reduction path)");
  m.def("adaptive_max_pool2d_forward", &adaptive_max_pool2d_forward, py::arg("x"), py::arg("y"),
        py::arg("indices"), py::arg("version") = 1, py::arg("stream") = 0,
        "adaptive max pooling to the (P, Q) of y; indices are h*W + w within each plane");
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward, py::arg("dy"),
        py::arg("dx"), py::arg("stream") = 0, "dx of adaptive average pooling (a gather)");
  m.def("adaptive_max_pool2d_backward", &adaptive_max_pool2d_backward, py::arg("dy"),
        py::arg("indices"), py::arg("dx"), py::arg("stream") = 0,
        "dx of adaptive max pooling (a gather)");
}

}  // namespace

PYBIND11_MODULE(CUCNN_MODULE_NAME, m) {
  m.doc() = SIMT_HOST_EMULATION
                ? "cucnn kernels compiled by the host compiler, run by the SIMT runtime"
                : "cucnn kernels compiled by nvcc, run on the GPU";
  m.attr("backend") = SIMT_HOST_EMULATION ? "sim" : "cuda";
  // A call that fails before its launch forgets the arrays it viewed (see remember()).
  py::register_exception_translator([](std::exception_ptr p) {
    forget_arrays();
    if (p) std::rethrow_exception(p);
  });
  m.def("_parse_array_interface", [](py::handle cai, const char* name, bool output) {
    const Array a = parse_cai(cai, name, output);
    return py::dict(py::arg("data") = reinterpret_cast<std::uintptr_t>(a.data),
                    py::arg("shape") = a.shape, py::arg("dtype") = a.dtype,
                    py::arg("writeable") = a.writeable, py::arg("stream") = a.producer_stream);
  }, py::arg("interface"), py::arg("name"), py::arg("output"),
        "the checked fields of a __cuda_array_interface__ dict (for tests)");
  m.def("_check_same_device", &check_same_device, py::arg("name"), py::arg("array_device"),
        py::arg("current_device"), "the device check every cuda view makes (for tests)");

  m.def("activation_forward", &activation_forward, py::arg("act"), py::arg("x"), py::arg("y"),
        py::arg("alpha") = 0.0f, py::arg("version") = 1, py::arg("stream") = 0,
        "y = act(x) for act 0 relu, 1 leaky_relu (alpha = negative slope), 2 sigmoid, 3 tanh");
  m.def("activation_backward", &activation_backward, py::arg("act"), py::arg("dy"),
        py::arg("saved"), py::arg("dx"), py::arg("alpha") = 0.0f, py::arg("version") = 1,
        py::arg("stream") = 0,
        "dx = act'(saved) * dy; saved is y for relu/sigmoid/tanh and x for leaky_relu");
  m.def("softmax_forward", &softmax_forward, py::arg("x"), py::arg("y"), py::arg("log"),
        py::arg("version") = 1, py::arg("stream") = 0,
        "y = softmax(x) (or log_softmax when log) along the last axis of a 2-D x");
  m.def("softmax_backward", &softmax_backward, py::arg("y"), py::arg("dy"), py::arg("dx"),
        py::arg("log"), py::arg("version") = 1, py::arg("stream") = 0,
        "dx from the forward output y and incoming gradient dy");
  m.def("cross_entropy_forward", &cross_entropy_forward, py::arg("logits"), py::arg("target"),
        py::arg("loss"), py::arg("lse"), py::arg("wt"), py::arg("status"),
        py::arg("ignore_index"), py::arg("weight") = py::none(),
        py::arg("label_smoothing") = 0.0f, py::arg("stream") = 0,
        "per-row loss (class weights, label smoothing), logsumexp and target weight wt; "
        "status[0] = min(status[0], first row with a bad target)");
  m.def("cross_entropy_backward", &cross_entropy_backward, py::arg("logits"), py::arg("target"),
        py::arg("lse"), py::arg("dloss"), py::arg("dx"), py::arg("ignore_index"),
        py::arg("weight") = py::none(), py::arg("weight_sum") = py::none(),
        py::arg("label_smoothing") = 0.0f, py::arg("stream") = 0,
        "dx of the per-row loss times dloss[:, None]");

  m.def("conv2d_forward", &conv2d_forward, py::arg("x"), py::arg("weight"), py::arg("bias"),
        py::arg("y"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("relu") = false, py::arg("version") = 1, py::arg("stream") = 0,
        py::arg("workspace") = py::none(),
        "y = conv2d(x, weight) + bias (optionally ReLU); padding is (top, bottom, left, right); "
        "workspace: conv2d_forward_workspace floats for split-K, or None (no split)");
  m.def("conv2d_backward_data", &conv2d_backward_data, py::arg("dy"), py::arg("weight"),
        py::arg("dx"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("version") = 1, py::arg("stream") = 0, py::arg("workspace") = py::none(),
        "dx of conv2d; workspace: conv2d_dgrad_workspace floats (version 1: the flipped "
        "filters of its stride phases and split-K partials; None only when that is 0)");
  m.def("conv2d_forward_workspace", &conv2d_forward_workspace, py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "floats of split-K workspace conv2d_forward uses (0: no split)");
  m.def("conv2d_dgrad_workspace", &conv2d_dgrad_workspace, py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "floats of workspace conv2d_backward_data needs (flipped filters + split-K partials)");
  m.def("conv2d_dgrad_phases", &conv2d_dgrad_phases, py::arg("x_shape"), py::arg("w_shape"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "(zero_fill, [(a, b, rows, cols, taps_r, taps_s, bm, bn, blocks, splits, index32, vec)]): "
        "the stride phases conv2d_backward_data runs as forward GEMMs");
  m.def("conv2d_force_plan", [](int tile, int splits, bool force64) {
    cucnn::conv_plan_override() = cucnn::ConvPlanOverride{tile, splits, force64};
  }, py::arg("tile"), py::arg("splits") = 1, py::arg("force64") = false,
        "test hook: every conv pass uses tile number `tile` of the fp32 table and `splits` "
        "split-K factor (clamped), and the 64-bit-offset gathers when force64; tile -1 (and "
        "force64 False) restores the defaults");
  m.def("conv2d_plan", &conv2d_plan, py::arg("pass"), py::arg("x_shape"), py::arg("w_shape"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        "(tile M, tile N, blocks, splits) the fp32 kernels launch for 'forward'/'dgrad'/'wgrad' "
        "(dgrad: its first stride phase, the only one at stride 1)");
  m.def("conv2d_wgrad_workspace", &conv2d_wgrad_workspace, py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("bias") = false,
        "floats of workspace conv2d_backward_weight needs (bias=True: when it is given db)");
  m.def("conv2d_backward_weight", &conv2d_backward_weight, py::arg("dy"), py::arg("x"),
        py::arg("dw"), py::arg("workspace"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("version") = 1, py::arg("stream") = 0,
        py::arg("db") = py::none(),
        "dw of conv2d (split-K into workspace, then a fixed-order reduction); with db, also the "
        "bias gradient where it is free (a spare column of the last tile): returns whether it "
        "wrote db");
  m.def("conv2d_backward_bias", &conv2d_backward_bias, py::arg("dy"), py::arg("db"),
        py::arg("stream") = 0, "db[k] = sum of dy[:, k]");
  bind_conv2d_tc(m);

  bind_depthwise_conv2d(m);

  m.def("max_pool2d_forward", &max_pool2d_forward, py::arg("x"), py::arg("y"),
        py::arg("indices"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("stream") = 0,
        "max pooling to the (P, Q) of y; indices are h*W + w within each plane");
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("dy"), py::arg("indices"),
        py::arg("dx"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("stream") = 0, "dx of max pooling (a gather; no atomics)");
  m.def("avg_pool2d_forward", &avg_pool2d_forward, py::arg("x"), py::arg("y"),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("count_include_pad"), py::arg("divisor_override") = 0, py::arg("stream") = 0,
        "average pooling to the (P, Q) of y");
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("dy"), py::arg("dx"),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("count_include_pad"), py::arg("divisor_override") = 0, py::arg("stream") = 0,
        "dx of average pooling (a gather; no atomics)");
  bind_batchnorm(m);
  bind_adaptive_pool2d(m);

#if SIMT_HOST_EMULATION
  m.def("set_order", [](const std::string& o) {
    try {
      simt::set_order(o.c_str());
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }, py::arg("order"), "SIMT thread order: 'forward', 'reverse' or 'random:SEED'");
  m.def("get_order", [] { return std::string(simt::get_order()); });
  m.def("set_threads", [](int n) {
    try {
      simt::set_threads(n);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }, py::arg("n"), "host threads that run blocks in parallel");
  m.def("get_threads", [] { return simt::get_threads(); });
#else
  m.def("device_count", [] {
    int n = 0;
    // Never raises: no driver or no device is simply zero devices.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  });
  m.def("driver_version", [] {
    int v = 0;  // 0: no driver installed
    if (cudaDriverGetVersion(&v) != cudaSuccess) cudaGetLastError();
    return v;
  }, "cudaDriverGetVersion (13000 for the R580 driver; 0 without a driver)");
  m.def("runtime_version", [] {
    int v = 0;
    if (cudaRuntimeGetVersion(&v) != cudaSuccess) cudaGetLastError();
    return v;
  }, "the CUDA runtime linked statically into this module (13000 for CUDA 13.0)");
  m.def("device_capabilities", [] {
    std::vector<std::pair<int, int>> caps;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return caps;
    }
    for (int i = 0; i < n; ++i) {
      int major = 0, minor = 0;
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, i);
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, i);
      caps.emplace_back(major, minor);
    }
    cudaGetLastError();
    return caps;
  }, "(major, minor) compute capability of each visible device");
  m.def("device_count_error", [] {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    cudaGetLastError();
    return err == cudaSuccess ? std::string() : std::string(cudaGetErrorString(err));
  }, "why cudaGetDeviceCount failed, or '' when it did not");
#ifdef __CUDA_ARCH_LIST__
  m.attr("architectures") = std::vector<int>{__CUDA_ARCH_LIST__};
#else
  m.attr("architectures") = std::vector<int>{};
#endif
  m.def("synchronize", [] {
    py::gil_scoped_release release;
    SIMT_CUDA_CHECK(cudaDeviceSynchronize());
  });
#endif
}
