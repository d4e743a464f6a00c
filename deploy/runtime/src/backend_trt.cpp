// TensorRT backend: a serialized engine plan run through the TensorRT C++ runtime API, exposed
// to the C core through esr__trt_create (built with -DEDGESR_WITH_TENSORRT=ON).
//
// Written against the API common to TensorRT 8.6 and 10.x: IRuntime::deserializeCudaEngine,
// named I/O tensors (getIOTensorName / getTensorIOMode), IExecutionContext::setInputShape,
// setTensorAddress and enqueueV3. Objects are released with delete (valid since TensorRT 8).
//
// A plan carries no edgesr metadata, so the scale and colour come from the JSON sidecar
// "<plan>.json" written next to it ({"scale": 4, "color": "y_bt601"}).
//
// One model, many streams: the deserialized engine (the weights) is shared; each libedgesr
// stream gets its own IExecutionContext, CUDA stream and device buffers, so streams run
// concurrently. Frames: host float32 -> device (cudaMemcpyAsync) -> enqueueV3 -> host, on the
// stream's CUDA stream, synchronised before returning. Device buffers grow only when a larger
// frame arrives; the shape is set on the context only when it changes.
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include "internal.h"

namespace {

// TensorRT's log, into libedgesr's log callback (it may call this from several threads; the
// callback contract covers that).
class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    const esr_log_level level = severity <= Severity::kERROR     ? ESR_LOG_ERROR
                                : severity == Severity::kWARNING ? ESR_LOG_WARNING
                                : severity == Severity::kINFO    ? ESR_LOG_INFO
                                                                 : ESR_LOG_DEBUG;
    esr__log(level, "tensorrt: %s", msg);
  }
};

Logger& logger() {
  static Logger instance;
  return instance;
}

// The shared half: immutable once created, so any number of streams may read it at once.
struct TrtModel {
  std::unique_ptr<nvinfer1::IRuntime> runtime;
  std::unique_ptr<nvinfer1::ICudaEngine> engine;
  std::string input_name, output_name;
  int device = 0;

  ~TrtModel() {
    engine.reset();  // the engine before the runtime
    runtime.reset();
  }
};

// One libedgesr stream's state.
struct TrtStream {
  std::unique_ptr<nvinfer1::IExecutionContext> context;
  cudaStream_t stream = nullptr;
  void* d_in = nullptr;
  void* d_out = nullptr;
  size_t in_cap = 0, out_cap = 0;
  int64_t shape[4] = {0, 0, 0, 0};  // the input shape last set on the context
  uint64_t* allocs = nullptr;

  ~TrtStream() {
    context.reset();
    if (d_in) cudaFree(d_in);
    if (d_out) cudaFree(d_out);
    if (stream) cudaStreamDestroy(stream);
  }
};

esr_status cuda_fail(cudaError_t err, esr_status code, const char* what) {
  return esr__fail(code, "%s: CUDA error %d (%s)", what, static_cast<int>(err),
                   cudaGetErrorString(err));
}

esr_status reserve(TrtStream* c, void** ptr, size_t* cap, size_t bytes) {
  if (*cap >= bytes) return ESR_OK;
  if (*ptr) cudaFree(*ptr);
  *ptr = nullptr;
  *cap = 0;
  cudaError_t err = cudaMalloc(ptr, bytes);
  if (err != cudaSuccess) return cuda_fail(err, ESR_ERR_OUT_OF_MEMORY, "cudaMalloc");
  *cap = bytes;
  ++*c->allocs;
  return ESR_OK;
}

size_t elems(const int64_t s[4]) {
  return static_cast<size_t>(s[0]) * static_cast<size_t>(s[1]) * static_cast<size_t>(s[2]) *
         static_cast<size_t>(s[3]);
}

esr_status trt_stream_create(void* impl, void** ctx, uint64_t* allocs) {
  auto* m = static_cast<TrtModel*>(impl);
  cudaError_t err = cudaSetDevice(m->device);  // the calling thread may be a new one
  if (err != cudaSuccess) return cuda_fail(err, ESR_ERR_BACKEND_UNAVAILABLE, "cudaSetDevice");
  std::unique_ptr<TrtStream> c(new (std::nothrow) TrtStream());
  if (!c) return esr__fail(ESR_ERR_OUT_OF_MEMORY, "cannot allocate a TensorRT stream");
  c->allocs = allocs;
  c->context.reset(m->engine->createExecutionContext());
  if (!c->context) return esr__fail(ESR_ERR_OUT_OF_MEMORY, "createExecutionContext failed");
  err = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
  if (err != cudaSuccess) return cuda_fail(err, ESR_ERR_BACKEND_UNAVAILABLE, "creating a stream");
  *allocs += 2;  // context, CUDA stream
  *ctx = c.release();
  return ESR_OK;
}

void trt_stream_destroy(void* impl, void* ctx) {
  auto* m = static_cast<TrtModel*>(impl);
  if (ctx == nullptr) return;
  cudaSetDevice(m->device);
  delete static_cast<TrtStream*>(ctx);
}

esr_status trt_run(void* impl, void* ctx, const float* in, const int64_t in_shape[4], float* out,
                   const int64_t out_shape[4]) {
  auto* m = static_cast<TrtModel*>(impl);
  auto* c = static_cast<TrtStream*>(ctx);
  const size_t in_bytes = elems(in_shape) * sizeof(float);
  const size_t out_bytes = elems(out_shape) * sizeof(float);
  cudaError_t err = cudaSetDevice(m->device);  // the calling thread may be a new one
  if (err != cudaSuccess) return cuda_fail(err, ESR_ERR_RUNTIME, "cudaSetDevice");
  esr_status st = reserve(c, &c->d_in, &c->in_cap, in_bytes);
  if (st != ESR_OK) return st;
  st = reserve(c, &c->d_out, &c->out_cap, out_bytes);
  if (st != ESR_OK) return st;

  if (std::memcmp(c->shape, in_shape, sizeof c->shape) != 0) {
    nvinfer1::Dims dims{};
    dims.nbDims = 4;
    for (int i = 0; i < 4; ++i) dims.d[i] = static_cast<decltype(dims.d[0] + 0)>(in_shape[i]);
    if (!c->context->setInputShape(m->input_name.c_str(), dims)) {
      std::memset(c->shape, 0, sizeof c->shape);
      return esr__fail(ESR_ERR_MODEL_MISMATCH,
                       "input %lldx%lldx%lldx%lld is outside the plan's optimization profile; "
                       "rebuild the plan with a profile covering this frame size",
                       static_cast<long long>(in_shape[0]), static_cast<long long>(in_shape[1]),
                       static_cast<long long>(in_shape[2]), static_cast<long long>(in_shape[3]));
    }
    const nvinfer1::Dims o = c->context->getTensorShape(m->output_name.c_str());
    bool same = o.nbDims == 4;
    for (int i = 0; same && i < 4; ++i) same = static_cast<int64_t>(o.d[i]) == out_shape[i];
    if (!same) {
      std::memset(c->shape, 0, sizeof c->shape);
      return esr__fail(ESR_ERR_RUNTIME,
                       "the plan's output shape does not match the sidecar's scale x%lld",
                       static_cast<long long>(out_shape[2] / in_shape[2]));
    }
    std::memcpy(c->shape, in_shape, sizeof c->shape);
  }
  // Addresses can change when buffers grow, so they are set on every call (cheap).
  if (!c->context->setTensorAddress(m->input_name.c_str(), c->d_in) ||
      !c->context->setTensorAddress(m->output_name.c_str(), c->d_out)) {
    return esr__fail(ESR_ERR_RUNTIME, "TensorRT rejected the I/O tensor addresses");
  }
  err = cudaMemcpyAsync(c->d_in, in, in_bytes, cudaMemcpyHostToDevice, c->stream);
  if (err != cudaSuccess) return cuda_fail(err, ESR_ERR_RUNTIME, "copying the frame to the GPU");
  if (!c->context->enqueueV3(c->stream)) {
    cudaStreamSynchronize(c->stream);
    return esr__fail(ESR_ERR_RUNTIME, "TensorRT enqueueV3 failed (see the edgesr/tensorrt log)");
  }
  err = cudaMemcpyAsync(out, c->d_out, out_bytes, cudaMemcpyDeviceToHost, c->stream);
  if (err != cudaSuccess) return cuda_fail(err, ESR_ERR_RUNTIME, "copying the result back");
  err = cudaStreamSynchronize(c->stream);
  if (err != cudaSuccess) return cuda_fail(err, ESR_ERR_RUNTIME, "running the plan");
  return ESR_OK;
}

void trt_destroy(void* impl) {
  auto* m = static_cast<TrtModel*>(impl);
  if (m) cudaSetDevice(m->device);
  delete m;
}

const esr_backend_ops k_trt_ops = {"tensorrt", trt_stream_create, trt_run, trt_stream_destroy,
                                   trt_destroy};

// A plan dimension as libedgesr reports it (-1 dynamic), and the profile's range for it.
void dim_range(const nvinfer1::ICudaEngine& engine, const char* name, int axis, uint64_t* lo,
               uint64_t* hi) {
  const nvinfer1::Dims mn = engine.getProfileShape(name, 0, nvinfer1::OptProfileSelector::kMIN);
  const nvinfer1::Dims mx = engine.getProfileShape(name, 0, nvinfer1::OptProfileSelector::kMAX);
  const nvinfer1::Dims fixed = engine.getTensorShape(name);
  if (fixed.nbDims == 4 && fixed.d[axis] > 0) {
    *lo = *hi = static_cast<uint64_t>(fixed.d[axis]);
  } else if (mn.nbDims == 4 && mx.nbDims == 4 && mn.d[axis] > 0 && mx.d[axis] > 0) {
    *lo = static_cast<uint64_t>(mn.d[axis]);
    *hi = static_cast<uint64_t>(mx.d[axis]);
  } else {
    *lo = 1;
    *hi = UINT64_MAX;
  }
}

bool read_file(const std::string& path, std::vector<char>* data) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return false;
  const std::streamsize n = f.tellg();
  if (n <= 0) return false;
  data->resize(static_cast<size_t>(n));
  f.seekg(0);
  return static_cast<bool>(f.read(data->data(), n));
}

esr_status create(const esr_model_source* src, const esr_options* opts, void** impl,
                  const esr_backend_ops** ops, esr_model_meta* meta) {
  if (src->path == nullptr) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT,
                     "the TensorRT backend loads plans from a file (its metadata is in the "
                     "<plan>.json sidecar); use esr_model_create");
  }
  const std::string plan_path(src->path);
  std::vector<char> sidecar, plan;
  if (!read_file(plan_path + ".json", &sidecar)) {
    return esr__fail(ESR_ERR_MODEL_METADATA,
                     "no sidecar %s.json with {\"scale\", \"color\"} next to the plan; a plan has "
                     "no edgesr metadata, so write it with `edgesr export` / the TensorRT build",
                     src->path);
  }
  esr_status st = esr__parse_sidecar(sidecar.data(), sidecar.size(), meta);
  if (st != ESR_OK) return st;
  if (!read_file(plan_path, &plan)) {
    return esr__fail(ESR_ERR_MODEL_LOAD, "TensorRT plan '%s' is missing or empty", src->path);
  }

  cudaError_t err = cudaSetDevice(opts->device_id);
  if (err != cudaSuccess) {
    return cuda_fail(err, ESR_ERR_BACKEND_UNAVAILABLE, "selecting the CUDA device");
  }
  std::unique_ptr<TrtModel> b(new TrtModel());
  b->device = opts->device_id;
  b->runtime.reset(nvinfer1::createInferRuntime(logger()));
  if (!b->runtime) return esr__fail(ESR_ERR_BACKEND_UNAVAILABLE, "createInferRuntime failed");
  b->engine.reset(b->runtime->deserializeCudaEngine(plan.data(), plan.size()));
  if (!b->engine) {
    return esr__fail(ESR_ERR_MODEL_LOAD,
                     "TensorRT cannot deserialize '%s' (corrupt, or built by another TensorRT "
                     "version or for another GPU: rebuild the plan on this device)",
                     src->path);
  }
  if (b->engine->getNbIOTensors() != 2) {
    return esr__fail(ESR_ERR_MODEL_MISMATCH, "an edgesr plan has one input and one output");
  }
  for (int i = 0; i < 2; ++i) {
    const char* name = b->engine->getIOTensorName(i);
    const bool is_input = b->engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT;
    (is_input ? b->input_name : b->output_name) = name;
    if (b->engine->getTensorDataType(name) != nvinfer1::DataType::kFLOAT) {
      return esr__fail(ESR_ERR_MODEL_MISMATCH,
                       "plan tensor '%s' is not float32; build the plan with float32 I/O", name);
    }
  }
  if (b->input_name.empty() || b->output_name.empty()) {
    return esr__fail(ESR_ERR_MODEL_MISMATCH, "the plan needs one input and one output tensor");
  }
  const nvinfer1::Dims in_dims = b->engine->getTensorShape(b->input_name.c_str());
  const int64_t channels = meta->color == ESR_COLOR_RGB ? 3 : 1;
  if (in_dims.nbDims != 4 || (in_dims.d[1] > 0 && in_dims.d[1] != channels)) {
    return esr__fail(ESR_ERR_MODEL_METADATA,
                     "the plan's input is not [N,%lld,H,W] as the sidecar's colour says",
                     static_cast<long long>(channels));
  }
  const nvinfer1::Dims out_dims = b->engine->getTensorShape(b->output_name.c_str());
  for (int i = 0; i < 4; ++i) {
    meta->in_shape[i] = in_dims.d[i] > 0 ? static_cast<int64_t>(in_dims.d[i]) : -1;
    meta->out_shape[i] =
        out_dims.nbDims == 4 && out_dims.d[i] > 0 ? static_cast<int64_t>(out_dims.d[i]) : -1;
  }
  dim_range(*b->engine, b->input_name.c_str(), 3, &meta->min_w, &meta->max_w);
  dim_range(*b->engine, b->input_name.c_str(), 2, &meta->min_h, &meta->max_h);
  *impl = b.release();
  *ops = &k_trt_ops;
  return ESR_OK;
}

}  // namespace

extern "C" esr_status esr__trt_create(const esr_model_source* src, const esr_options* opts,
                                      void** impl, const esr_backend_ops** ops,
                                      esr_model_meta* meta) {
  // No C++ exception may cross into the C ABI.
  try {
    return create(src, opts, impl, ops, meta);
  } catch (const std::bad_alloc&) {
    return esr__fail(ESR_ERR_OUT_OF_MEMORY, "out of memory while loading the TensorRT plan");
  } catch (...) {
    return esr__fail(ESR_ERR_MODEL_LOAD, "unexpected C++ exception while loading the plan");
  }
}
