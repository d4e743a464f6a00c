/* libedgesr: run an edgesr super-resolution model on camera frames from C.
 *
 * A C99 ABI over ONNX Runtime (always built) and TensorRT (built with
 * -DEDGESR_WITH_TENSORRT=ON when TensorRT and CUDA are found).
 *
 * One model, many streams: an esr_model holds the weights, the backend session and its thread
 * pool, and is shared; each camera stream gets an esr_stream (its working buffers and backend
 * state). Two NV12 camera streams on one model:
 *
 *   esr_options opts;
 *   esr_options_init(&opts, sizeof opts);                         // defaults, this header's size
 *   opts.num_threads = 2;
 *   esr_model* model = NULL;
 *   if (esr_model_create("espcn_x4.onnx", &opts, &model) != ESR_OK) {
 *     fprintf(stderr, "edgesr: %s\n", esr_last_error());
 *     return 1;
 *   }
 *   esr_stream* cam[2] = {NULL, NULL};
 *   for (int i = 0; i < 2; ++i) {
 *     esr_stream_create(model, &cam[i]);
 *     esr_stream_prepare(cam[i], 480, 270);                        // refuses sizes the model cannot take
 *   }
 *   esr_model_destroy(model);                                      // the streams keep it alive
 *   // per frame, on each camera's own thread (buffers as the camera delivers them):
 *   esr_image in = {0}, out = {0};
 *   in.struct_size = out.struct_size = sizeof in;
 *   in.format = out.format = ESR_PIXEL_NV12;
 *   in.matrix = out.matrix = ESR_YUV_BT601;
 *   in.range = out.range = ESR_RANGE_LIMITED;
 *   in.width = 480;  in.height = 270;  in.planes[0] = y;  in.pitches[0] = y_pitch;
 *   in.planes[1] = uv;  in.pitches[1] = uv_pitch;
 *   out.width = 1920;  out.height = 1080;  ... caller-owned output planes and pitches ...
 *   if (esr_upscale_image(cam[i], &in, &out) != ESR_OK) fprintf(stderr, "%s\n", esr_last_error());
 *   ...
 *   esr_stream_destroy(cam[0]);
 *   esr_stream_destroy(cam[1]);                                    // the last one frees the model
 *
 * ABI. ESR_ABI_VERSION is the library's SOVERSION (libedgesr.so.<ABI>): it changes whenever a
 * call, a struct layout or an enum value changes incompatibly. Structs passed to the library
 * (esr_options, esr_model_info, esr_image) start with struct_size: the library reads or writes
 * only min(struct_size, its own sizeof) bytes and defaults the rest, so a program built against
 * an older header (a smaller struct) keeps working when fields are appended. Fields are only
 * ever appended, enum values and status codes only ever added.
 *
 * Model files. ONNX backend: an ONNX file written by `edgesr export`: one float32 input
 * [N,C,H,W] in [0,1], one output [N,C,sH,sW]; the scale s and the colour convention come from
 * the metadata_props `edgesr.scale` ("2", "3", "4", ...) and `edgesr.color` ("y_bt601": C = 1,
 * the BT.601 studio-range luma plane; "rgb": C = 3). TensorRT backend: a serialized engine
 * plan; a plan has no metadata, so they are read from the JSON sidecar `<plan path>.json`,
 * e.g. {"scale": 4, "color": "y_bt601"}. A model without that metadata is refused
 * (ESR_ERR_MODEL_METADATA): guessing the scale or colour would give silently wrong frames.
 *
 * Pixel conventions. uint8 -> float is v / 255 in float32 (as edgesr.data.color.to_float).
 * float -> uint8 clamps to [0, 1] and rounds half away from zero: floor(clamp(v, 0, 1) * 255 + 0.5)
 * computed in double, as edgesr.data.color.to_uint8 (MATLAB's im2uint8); NaN becomes 0.
 * Chroma (4:2:0 planes, and CbCr of RGB frames on a Y model) is upsampled bilinearly with
 * centre-aligned samples and clamped edges (see esr_upscale_image).
 *
 * Thread safety, per call: every call is marked [any thread] (may run concurrently with any
 * other call, including on the same handle), [model] (concurrently with other [model] and
 * stream calls on the same model; not with esr_model_destroy of the caller's own reference)
 * or [one thread per stream] (a stream is used by one thread at a time; different streams,
 * even of one model, run concurrently). esr_last_error is per thread.
 *
 * Memory. Every pointer the caller passes stays owned by the caller; the library keeps none of
 * them after a call returns. Outputs are caller-allocated. A stream allocates its working
 * buffers on the first frame of a size (or in esr_stream_prepare) and reuses them while the
 * size stays the same, so steady-state frame calls allocate nothing in libedgesr (the backend
 * may still use its own arena). Strings returned by the library are static or owned by it.
 *
 * Sizes are size_t pixels. A size of 0, a pitch smaller than the row it holds, or an odd size
 * for a 4:2:0 format is ESR_ERR_INVALID_ARGUMENT; size arithmetic that would overflow size_t (or
 * the backend's int64 dimensions) is ESR_ERR_SIZE_OVERFLOW. No call aborts on bad input.
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
#define ESR_VERSION_MINOR 2
#define ESR_VERSION_PATCH 0
/* The ABI this header describes; equals the library's SOVERSION. */
#define ESR_ABI_VERSION 1

/* Status codes. Values are part of the ABI: new codes are only ever appended. */
typedef enum esr_status {
  ESR_OK = 0,
  ESR_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, zero/odd size, pitch < row, bad option */
  ESR_ERR_SIZE_OVERFLOW = 2,    /* a size computation would overflow */
  ESR_ERR_MODEL_LOAD = 3,       /* model missing, unreadable, corrupt or not ONNX / a plan */
  ESR_ERR_MODEL_METADATA = 4,   /* no or bad edgesr.scale / edgesr.color (or sidecar) */
  ESR_ERR_MODEL_MISMATCH = 5,   /* model does not fit the call (GRAY8 on an RGB model, a frame
                                   size outside the model's static shape or profile) */
  ESR_ERR_BACKEND_UNAVAILABLE = 6, /* backend not compiled in, or its device is missing */
  ESR_ERR_RUNTIME = 7,          /* the backend failed while running a frame */
  ESR_ERR_OUT_OF_MEMORY = 8     /* libedgesr's or the backend's allocation failed */
} esr_status;

typedef enum esr_backend {
  ESR_BACKEND_ONNXRUNTIME = 0, /* CPU execution provider through ORT's C API */
  ESR_BACKEND_TENSORRT = 1     /* a TensorRT engine plan on an NVIDIA GPU */
} esr_backend;

typedef enum esr_color {
  ESR_COLOR_Y_BT601 = 0, /* one channel: BT.601 studio-range luma in [0, 1] */
  ESR_COLOR_RGB = 1      /* three channels, planar R, G, B in [0, 1] */
} esr_color;

typedef enum esr_log_level {
  ESR_LOG_DEBUG = 0,
  ESR_LOG_INFO = 1,
  ESR_LOG_WARNING = 2,
  ESR_LOG_ERROR = 3
} esr_log_level;

/* Model options. Initialise with esr_options_init(&o, sizeof o), then change fields. */
typedef struct esr_options {
  uint32_t struct_size; /* sizeof the caller's struct; set by esr_options_init */
  esr_backend backend;  /* default ESR_BACKEND_ONNXRUNTIME */
  int32_t num_threads;  /* ORT intra-op threads, shared by all streams of the model;
                           0 = ORT's default (one per physical core) */
  int32_t device_id;    /* CUDA device for TensorRT; ignored by the ONNX Runtime backend */
  /* ---- ABI 1 ---- */
  int32_t intra_op_spinning; /* ORT pool threads spin while waiting for work: 1 on, 0 off (less
                                CPU between frames of several streams), -1 = ORT's default */
} esr_options;

/* Opaque handles. A model is shared by its streams; a stream is one camera's state. */
typedef struct esr_model esr_model;
typedef struct esr_stream esr_stream;

/* What a model takes and gives (esr_model_get_info). -1 in a shape is a dynamic dimension. */
typedef struct esr_model_info {
  uint32_t struct_size;      /* set by the caller: sizeof(esr_model_info) */
  int32_t scale;             /* output = input * scale */
  esr_color color;
  int32_t channels;          /* 1 (y_bt601) or 3 (rgb) */
  esr_backend backend;
  int32_t num_threads;       /* as requested in the options (0 = backend default) */
  int32_t intra_op_spinning; /* as requested (-1 = backend default) */
  char precision[32];        /* edgesr.precision ("fp32", "int8-qdq", ...); "" if not recorded */
  int64_t input_shape[4];    /* N, C, H, W as the model declares them */
  int64_t output_shape[4];
  uint64_t min_width, min_height; /* input frame sizes the model accepts */
  uint64_t max_width, max_height; /* (UINT64_MAX: no limit other than memory) */
} esr_model_info;

/* Camera frames. */
typedef enum esr_pixel_format {
  ESR_PIXEL_GRAY8 = 0, /* one plane: luma (Y model) */
  ESR_PIXEL_RGB24 = 1, /* one plane: interleaved R, G, B bytes */
  ESR_PIXEL_NV12 = 2,  /* Y plane + interleaved U, V plane at half width and height */
  ESR_PIXEL_NV21 = 3,  /* Y plane + interleaved V, U plane at half width and height */
  ESR_PIXEL_I420 = 4   /* Y, U, V planes, U and V at half width and height */
} esr_pixel_format;

typedef enum esr_yuv_matrix {
  ESR_YUV_BT601 = 0,
  ESR_YUV_BT709 = 1
} esr_yuv_matrix;

typedef enum esr_yuv_range {
  ESR_RANGE_LIMITED = 0, /* Y in 16..235, chroma in 16..240 ("studio", "video") */
  ESR_RANGE_FULL = 1     /* Y and chroma in 0..255 ("JPEG", "PC") */
} esr_yuv_range;

/* A frame in caller-owned memory. planes[i] / pitches[i] (bytes between rows) per plane:
 * GRAY8 and RGB24 use plane 0; NV12/NV21 planes 0 (Y) and 1 (UV or VU); I420 planes 0, 1, 2
 * (Y, U, V). Unused planes are ignored. Planes may live at unrelated addresses and rows may be
 * padded (pitch > row bytes); the padding of output rows is never written. matrix and range
 * describe YUV frames (GRAY8 uses the range only; RGB24 neither). Input planes are only read. */
typedef struct esr_image {
  uint32_t struct_size; /* sizeof(esr_image) */
  esr_pixel_format format;
  esr_yuv_matrix matrix;
  esr_yuv_range range;
  size_t width, height; /* in pixels of plane 0 */
  uint8_t* planes[3];
  size_t pitches[3];
} esr_image;

/* Messages for the log callback: every failure (ESR_LOG_ERROR, the text of esr_last_error),
 * model loading (INFO), slow fallbacks (WARNING), buffer growth (DEBUG), and ONNX Runtime's own
 * log (prefixed "onnxruntime: "; only if libedgesr created the process's ORT environment). */
typedef void (*esr_log_fn)(void* user_data, esr_log_level level, const char* message);

/* ---- library ---- */

/* "MAJOR.MINOR.PATCH (abi N; backends: onnxruntime[,tensorrt])". [any thread] Static string. */
ESR_API const char* esr_version(void);

/* The ABI version of the loaded library (compare with ESR_ABI_VERSION). [any thread] */
ESR_API uint32_t esr_abi_version(void);

/* A short, static description of a status code (unknown codes get a generic text).
 * [any thread] Static string, never free it. */
ESR_API const char* esr_status_string(esr_status status);

/* The detailed message (what failed and how to fix it) if the most recent status-returning call
 * on this thread failed, "" if it succeeded: every call that returns an esr_status clears it.
 * [any thread; per thread] Valid until the next libedgesr call on this thread; never free it. */
ESR_API const char* esr_last_error(void);

/* Sends libedgesr's messages at `min_level` and above to `fn` (NULL: no logging, the default).
 * Process-wide. `fn` may be called from any thread, including the backend's, and concurrently:
 * it must be thread-safe and must not call libedgesr. [any thread] */
ESR_API void esr_set_log_callback(esr_log_fn fn, void* user_data, esr_log_level min_level);

/* Fills *options with the defaults for a struct of `struct_size` bytes (pass sizeof *options;
 * a smaller, older struct gets the fields it has). ESR_ERR_INVALID_ARGUMENT for NULL or a size
 * below the first version's 16 bytes. [any thread] */
ESR_API esr_status esr_options_init(esr_options* options, size_t struct_size);

/* ---- models ---- */

/* Load a model file. `options` may be NULL for the defaults. On success *out_model is a new
 * model with one reference, held by the caller; on failure it is set to NULL.
 * Ownership: `model_path` and `options` are only read during the call. [any thread] */
ESR_API esr_status esr_model_create(const char* model_path, const esr_options* options,
                                    esr_model** out_model);

/* Load a model from memory (ONNX backend only: the TensorRT backend reads its sidecar file).
 * Ownership: `data` is only read during the call and may be freed afterwards. [any thread] */
ESR_API esr_status esr_model_create_from_memory(const void* data, size_t size,
                                                const esr_options* options,
                                                esr_model** out_model);

/* Drops the caller's reference: the model is freed when its last stream is destroyed too.
 * NULL is a no-op. The caller must not use `model` afterwards (its streams stay valid).
 * [any thread, once per reference] */
ESR_API void esr_model_destroy(esr_model* model);

/* Fills *info (info->struct_size set by the caller) with the model's scale, colour, precision,
 * backend, I/O shapes and accepted frame sizes. [model] */
ESR_API esr_status esr_model_get_info(const esr_model* model, esr_model_info* info);

/* The output size for an input of in_w x in_h (in_w * scale, in_h * scale), checked for
 * overflow (ESR_ERR_SIZE_OVERFLOW) and zero sizes (ESR_ERR_INVALID_ARGUMENT). [model] */
ESR_API esr_status esr_output_size(const esr_model* model, size_t in_w, size_t in_h,
                                   size_t* out_w, size_t* out_h);

/* ---- streams ---- */

/* A new stream of `model` (takes a reference on it). Streams of one model share its weights
 * and thread pool; each has its own buffers. Ownership: the caller owns *out_stream and
 * releases it with esr_stream_destroy. [model] */
ESR_API esr_status esr_stream_create(esr_model* model, esr_stream** out_stream);

/* The model a stream runs, borrowed: valid while the stream lives (no reference is taken).
 * NULL for NULL. [any thread] */
ESR_API esr_model* esr_stream_model(const esr_stream* stream);

/* Releases a stream (and the model, if this was its last reference). NULL is a no-op.
 * [one thread per stream] */
ESR_API void esr_stream_destroy(esr_stream* stream);

/* Checks that frames of width x height fit the model (its static shape, or the TensorRT
 * profile: ESR_ERR_MODEL_MISMATCH otherwise) and allocates the buffers for them, so the first
 * frame allocates nothing more in libedgesr. Optional: frame calls do the same lazily.
 * [one thread per stream] */
ESR_API esr_status esr_stream_prepare(esr_stream* stream, size_t width, size_t height);

/* Upscale one frame. `dst` must have the format, matrix and range of `src` and its width and
 * height times the scale; 4:2:0 formats need an even width and height.
 * y_bt601 model: GRAY8 and YUV frames send their Y plane through the model (full-range Y is
 * mapped to the model's studio range and back; the matrix does not change which plane is
 * luma); chroma planes are upsampled bilinearly in integers (output sample x reads the input at
 * (x + 0.5) / s - 0.5, edges clamped, weights in units of 1 / (2s), sum rounded half up):
 * exactly reproducible on every platform. RGB24 frames run BT.601 studio-range luma (as
 * edgesr.data.color), with Cb and Cr upsampled bilinearly in float.
 * rgb model: RGB24 frames run their three channels. YUV frames are converted to RGB with their
 * matrix and range (chroma upsampled 2x bilinearly, RGB clamped to [0, 1]) and the model's
 * RGB back to YUV (chroma: the mean of each 2x2 block). GRAY8 is ESR_ERR_MODEL_MISMATCH.
 * Ownership: all planes are caller-owned; src is read and dst written during the call.
 * [one thread per stream] */
ESR_API esr_status esr_upscale_image(esr_stream* stream, const esr_image* src, esr_image* dst);

/* Shorthands for packed frames: a GRAY8 plane and an RGB24 frame (esr_upscale_image).
 * [one thread per stream] */
ESR_API esr_status esr_upscale_y_u8(esr_stream* stream, const uint8_t* src, size_t width,
                                    size_t height, size_t src_pitch, uint8_t* dst,
                                    size_t dst_pitch);
ESR_API esr_status esr_upscale_rgb_u8(esr_stream* stream, const uint8_t* src, size_t width,
                                      size_t height, size_t src_pitch, uint8_t* dst,
                                      size_t dst_pitch);

/* Upscale float planes exactly as the model computes them: `src` is a contiguous float32
 * NCHW tensor [batch, channels, height, width] (channels must match the model: 1 or 3) and
 * `dst` a contiguous [batch, channels, height*scale, width*scale] tensor. No clamping, no
 * rounding: bit-identical to running the same model in ONNX Runtime from Python with the
 * same thread count. Ownership: `src` and `dst` are caller-owned. [one thread per stream] */
ESR_API esr_status esr_upscale_f32(esr_stream* stream, const float* src, size_t batch,
                                   size_t channels, size_t width, size_t height, float* dst);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EDGESR_H_ */
