/* libedgesr: run an edgesr super-resolution model on camera frames from C.
 *
 * A stable C99 ABI over ONNX Runtime (always built) and TensorRT (built with
 * -DEDGESR_WITH_TENSORRT=ON when TensorRT and CUDA are found).
 *
 * Usage:
 *
 *   esr_options opts = esr_default_options();
 *   opts.num_threads = 2;
 *   esr_engine* engine = NULL;
 *   if (esr_engine_create("espcn_x4.onnx", &opts, &engine) != ESR_OK) {
 *     fprintf(stderr, "edgesr: %s\n", esr_last_error());
 *     return 1;
 *   }
 *   size_t out_w, out_h;
 *   esr_output_size(engine, 480, 270, &out_w, &out_h);          // 1920 x 1080 for x4
 *   uint8_t* sr = malloc(out_w * out_h);                          // caller-owned output
 *   for (;;) {                                                    // one call per camera frame
 *     esr_status st = esr_upscale_y_u8(engine, y, 480, 270, y_stride, sr, out_w);
 *     if (st != ESR_OK) { fprintf(stderr, "%s\n", esr_last_error()); break; }
 *   }
 *   free(sr);
 *   esr_engine_destroy(engine);
 *
 * Model files. ONNX backend: an ONNX file written by `edgesr export`: one float32 input
 * [N,C,H,W] in [0,1], one output [N,C,sH,sW]; the scale s and the colour convention come from
 * the metadata_props `edgesr.scale` ("2", "3", "4", ...) and `edgesr.color` ("y_bt601": C = 1,
 * the BT.601 luma plane; "rgb": C = 3). TensorRT backend: a serialized engine plan; a plan has
 * no metadata, so they are read from the JSON sidecar `<plan path>.json`, e.g.
 * {"scale": 4, "color": "y_bt601"}. A model without that metadata is refused
 * (ESR_ERR_MODEL_METADATA): guessing the scale or colour would give silently wrong frames.
 *
 * Pixel conventions. uint8 -> float is v / 255 in float32 (exact, as edgesr.data.color.to_float).
 * float -> uint8 clamps to [0, 1] and rounds half away from zero: floor(clamp(v, 0, 1) * 255 + 0.5)
 * computed in double, as edgesr.data.color.to_uint8 (MATLAB's im2uint8); NaN becomes 0.
 * Chroma (NV12 UV, and CbCr of RGB frames on a Y model) is upsampled bilinearly with
 * centre-aligned samples and clamped edges, in integer arithmetic (see esr_upscale_nv12).
 *
 * Thread safety. Distinct engines may be created, used and destroyed concurrently from any
 * threads. One engine must not be used by two threads at the same time: frame calls reuse the
 * engine's buffers (serialise them yourself, or create one engine per thread). Everything else
 * (esr_version, esr_default_options, esr_status_string, esr_last_error) is thread-safe;
 * esr_last_error is per thread.
 *
 * Memory. Every pointer the caller passes stays owned by the caller; the library keeps none of
 * them after a call returns. Frames are caller-owned: the library never allocates an output for
 * the caller. An engine allocates its working buffers on the first frame of a size (and batch)
 * and reuses them while the size stays the same, so steady-state frame calls allocate nothing
 * in libedgesr (the backend may still use its own arena). Strings returned by the library are
 * static or owned by it; never free them.
 *
 * Sizes are size_t pixels. A size of 0, a stride smaller than the row it holds, or an odd NV12
 * size is ESR_ERR_INVALID_ARGUMENT; size arithmetic that would overflow size_t (or the
 * backend's int64 dimensions) is ESR_ERR_SIZE_OVERFLOW. No call aborts or crashes on bad input.
 */
#ifndef EDGESR_H_
#define EDGESR_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#if defined(EDGESR_BUILDING_LIBRARY)
#define ESR_API __declspec(dllexport)
#else
#define ESR_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define ESR_API __attribute__((visibility("default")))
#else
#define ESR_API
#endif

#define ESR_VERSION_MAJOR 0
#define ESR_VERSION_MINOR 1
#define ESR_VERSION_PATCH 0

/* Status codes. Values are part of the ABI: new codes are only ever appended. */
typedef enum esr_status {
  ESR_OK = 0,
  ESR_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, zero/odd size, stride < width, bad option */
  ESR_ERR_SIZE_OVERFLOW = 2,    /* a size computation would overflow */
  ESR_ERR_MODEL_LOAD = 3,       /* model missing, unreadable, corrupt or not ONNX / a plan */
  ESR_ERR_MODEL_METADATA = 4,   /* no or bad edgesr.scale / edgesr.color (or sidecar) */
  ESR_ERR_MODEL_MISMATCH = 5,   /* model does not fit the call (e.g. NV12 on an RGB model) */
  ESR_ERR_BACKEND_UNAVAILABLE = 6, /* backend not compiled in, or its device is missing */
  ESR_ERR_RUNTIME = 7,          /* the backend failed while running a frame */
  ESR_ERR_OUT_OF_MEMORY = 8
} esr_status;

typedef enum esr_backend {
  ESR_BACKEND_ONNXRUNTIME = 0, /* CPU execution provider through ORT's C API */
  ESR_BACKEND_TENSORRT = 1     /* a TensorRT engine plan on an NVIDIA GPU */
} esr_backend;

typedef enum esr_color {
  ESR_COLOR_Y_BT601 = 0, /* one channel: BT.601 studio-range luma in [0, 1] */
  ESR_COLOR_RGB = 1      /* three channels, planar R, G, B in [0, 1] */
} esr_color;

/* Engine options. Always start from esr_default_options() so fields added in later versions
 * get their defaults; struct_size lets the library tell which version the caller was built
 * against. */
typedef struct esr_options {
  uint32_t struct_size; /* set by esr_default_options(); do not change */
  esr_backend backend;  /* default ESR_BACKEND_ONNXRUNTIME */
  int32_t num_threads;  /* ORT intra-op threads; 0 = ORT's default (one per physical core) */
  int32_t device_id;    /* CUDA device for TensorRT; ignored by the ONNX Runtime backend */
} esr_options;

/* Opaque engine: one loaded model plus its working buffers. */
typedef struct esr_engine esr_engine;

/* The library version, "MAJOR.MINOR.PATCH (backends: onnxruntime[,tensorrt])".
 * Ownership: static string, never free it. */
ESR_API const char* esr_version(void);

/* Default options (ONNX Runtime backend, default threads, device 0), returned by value.
 * Ownership: nothing allocated. */
ESR_API esr_options esr_default_options(void);

/* A short, static description of a status code (unknown codes get a generic text).
 * Ownership: static string, never free it. */
ESR_API const char* esr_status_string(esr_status status);

/* The detailed message of the most recent failing call on this thread (what failed and how to
 * fix it), or "" if none failed yet. Valid until the next libedgesr call on this thread.
 * Ownership: thread-local library storage, never free it. */
ESR_API const char* esr_last_error(void);

/* Load a model file. `options` may be NULL for the defaults. On success *out_engine is a new
 * engine; on failure it is set to NULL and esr_last_error() says why.
 * Ownership: `model_path` and `options` are only read during the call; the caller owns the
 * returned engine and must release it with esr_engine_destroy(). */
ESR_API esr_status esr_engine_create(const char* model_path, const esr_options* options,
                                     esr_engine** out_engine);

/* Load a model from memory (ONNX backend: the bytes of an ONNX file; TensorRT backend is not
 * supported here, since its metadata lives in a sidecar file).
 * Ownership: `data` is only read during the call and may be freed afterwards; the caller owns
 * the returned engine as with esr_engine_create(). */
ESR_API esr_status esr_engine_create_from_memory(const void* data, size_t size,
                                                 const esr_options* options,
                                                 esr_engine** out_engine);

/* Release an engine and everything it allocated. NULL is a no-op.
 * Ownership: consumes `engine`; it must not be used afterwards. */
ESR_API void esr_engine_destroy(esr_engine* engine);

/* The model's integer scale and colour convention (from its metadata). Either out pointer may
 * be NULL. Ownership: writes to caller-owned memory only. */
ESR_API esr_status esr_engine_info(const esr_engine* engine, int32_t* scale, esr_color* color);

/* The output size for an input of in_w x in_h (in_w * scale, in_h * scale), checked for
 * overflow (ESR_ERR_SIZE_OVERFLOW) and zero sizes (ESR_ERR_INVALID_ARGUMENT).
 * Ownership: writes to caller-owned memory only. */
ESR_API esr_status esr_output_size(const esr_engine* engine, size_t in_w, size_t in_h,
                                   size_t* out_w, size_t* out_h);

/* Upscale one 8-bit luma plane (needs an ESR_COLOR_Y_BT601 model). `src` holds `height` rows
 * of `width` bytes, `src_stride` bytes apart; `dst` receives height*scale rows of width*scale
 * bytes, `dst_stride` bytes apart. Strides are in bytes and must be >= the row width.
 * Ownership: `src` is read and `dst` written during the call; both stay caller-owned. */
ESR_API esr_status esr_upscale_y_u8(esr_engine* engine, const uint8_t* src, size_t width,
                                    size_t height, size_t src_stride, uint8_t* dst,
                                    size_t dst_stride);

/* Upscale one NV12 frame (needs an ESR_COLOR_Y_BT601 model; width and height even). The Y
 * plane goes through the model as in esr_upscale_y_u8. The interleaved half-resolution UV
 * plane (height/2 rows of width bytes: U, V, U, V, ...) is upsampled by the scale with a
 * bilinear filter: output chroma sample (x, y) reads the input at ((x + 0.5) / s - 0.5,
 * (y + 0.5) / s - 0.5), edges clamped, weights in units of 1 / (2s) and the sum rounded half
 * up in integer arithmetic, so it is exactly reproducible on any platform.
 * Ownership: all planes are caller-owned; inputs are read and outputs written during the call.
 */
ESR_API esr_status esr_upscale_nv12(esr_engine* engine, const uint8_t* src_y, size_t src_y_stride,
                                    const uint8_t* src_uv, size_t src_uv_stride, size_t width,
                                    size_t height, uint8_t* dst_y, size_t dst_y_stride,
                                    uint8_t* dst_uv, size_t dst_uv_stride);

/* Upscale one interleaved 8-bit RGB frame (R, G, B bytes per pixel; stride in bytes >= 3 *
 * width). RGB model: the three channels go through the model. Y model: the frame is converted
 * to BT.601 studio-range YCbCr (as edgesr.data.color), Y goes through the model, Cb and Cr are
 * upsampled bilinearly (centre-aligned, clamped edges, in float) and converted back.
 * Ownership: `src` and `dst` are caller-owned. */
ESR_API esr_status esr_upscale_rgb_u8(esr_engine* engine, const uint8_t* src, size_t width,
                                      size_t height, size_t src_stride, uint8_t* dst,
                                      size_t dst_stride);

/* Upscale float planes exactly as the model computes them: `src` is a contiguous float32
 * NCHW tensor [batch, channels, height, width] (channels must match the model: 1 or 3) and
 * `dst` a contiguous [batch, channels, height*scale, width*scale] tensor. No clamping, no
 * rounding: bit-identical to running the same model in ONNX Runtime from Python with the
 * same thread count. Ownership: `src` and `dst` are caller-owned. */
ESR_API esr_status esr_upscale_f32(esr_engine* engine, const float* src, size_t batch,
                                   size_t channels, size_t width, size_t height, float* dst);

/* Testing aid: how many heap allocations libedgesr (and the backend calls it makes to wrap
 * buffers) has made for this engine so far, including its creation. Constant across frame
 * calls of an unchanged size. Returns 0 for NULL. */
ESR_API uint64_t esr_engine_allocation_count(const esr_engine* engine);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EDGESR_H_ */
