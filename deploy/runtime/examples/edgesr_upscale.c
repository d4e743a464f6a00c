/* edgesr_upscale: upscale a PGM (Y model), PPM (RGB or Y model) or raw YUV 4:2:0 camera frame
 * (NV12, NV21, I420) with an edgesr model through libedgesr, and print per-frame latency
 * percentiles.
 *
 *   edgesr_upscale --model espcn_x4.onnx --input in.pgm --out out.pgm --frames 50
 *   edgesr_upscale --model espcn_x4.onnx --yuv cam.yuv --format nv12 --size 480x270 --out sr.yuv
 *   edgesr_upscale --model espcn_x4.onnx --yuv cam.yuv --size 480x270 --streams 2   # two cameras
 *   edgesr_upscale --model espcn_x4.onnx --synthetic 480x270 --float --frames 30 --json
 *
 * One model is loaded; each of --streams camera threads gets its own stream of it (shared
 * weights and thread pool, own buffers) and upscales --frames frames. --float times
 * esr_upscale_f32 on float planes (what ONNX Runtime from Python is given), the others the 8-bit
 * frame calls. Latency is the wall time of each frame call, over all streams; the first
 * --warmup calls of each stream are not counted. --out writes stream 0's last frame. */
#define _POSIX_C_SOURCE 200112L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgesr.h"

typedef enum { IN_NONE, IN_PGM, IN_PPM, IN_YUV, IN_SYNTH } input_kind;

typedef struct args {
  const char* model;
  const char* input;
  const char* out;
  input_kind kind;
  esr_pixel_format format; /* of --yuv input */
  esr_yuv_matrix matrix;
  esr_yuv_range range;
  size_t w, h;
  int threads, frames, warmup, use_float, json, backend, device, streams;
} args;

static void usage(void) {
  fprintf(stderr,
          "usage: edgesr_upscale --model MODEL (--input IN.pgm|IN.ppm |\n"
          "                      --yuv IN.yuv --size WxH [--format nv12|nv21|i420] [--bt709]\n"
          "                      [--full-range] | --synthetic WxH) [--out OUT] [--frames N]\n"
          "                      [--warmup N] [--streams N] [--threads N]\n"
          "                      [--backend onnxruntime|tensorrt] [--device N] [--float] [--json]\n");
}

static int parse_size(const char* s, size_t* w, size_t* h) {
  char* end;
  unsigned long a = strtoul(s, &end, 10), b;
  if (*end != 'x') return 0;
  b = strtoul(end + 1, &end, 10);
  if (*end != '\0' || a == 0 || b == 0) return 0;
  *w = a;
  *h = b;
  return 1;
}

static int parse_args(int argc, char** argv, args* a) {
  int i;
  memset(a, 0, sizeof *a);
  a->frames = 10;
  a->warmup = 2;
  a->streams = 1;
  a->format = ESR_PIXEL_NV12;
  for (i = 1; i < argc; ++i) {
    const char* k = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(k, "--float") == 0) { a->use_float = 1; continue; }
    if (strcmp(k, "--json") == 0) { a->json = 1; continue; }
    if (strcmp(k, "--bt709") == 0) { a->matrix = ESR_YUV_BT709; continue; }
    if (strcmp(k, "--full-range") == 0) { a->range = ESR_RANGE_FULL; continue; }
    if (v == NULL) return 0;
    ++i;
    if (strcmp(k, "--model") == 0) a->model = v;
    else if (strcmp(k, "--out") == 0) a->out = v;
    else if (strcmp(k, "--threads") == 0) a->threads = atoi(v);
    else if (strcmp(k, "--frames") == 0) a->frames = atoi(v);
    else if (strcmp(k, "--warmup") == 0) a->warmup = atoi(v);
    else if (strcmp(k, "--streams") == 0) a->streams = atoi(v);
    else if (strcmp(k, "--device") == 0) a->device = atoi(v);
    else if (strcmp(k, "--backend") == 0) a->backend = strcmp(v, "tensorrt") == 0;
    else if (strcmp(k, "--input") == 0) {
      const char* dot = strrchr(v, '.');
      a->input = v;
      a->kind = dot && (strcmp(dot, ".ppm") == 0 || strcmp(dot, ".PPM") == 0) ? IN_PPM : IN_PGM;
    } else if (strcmp(k, "--yuv") == 0 || strcmp(k, "--nv12") == 0) {
      a->input = v;
      a->kind = IN_YUV;
    } else if (strcmp(k, "--format") == 0) {
      if (strcmp(v, "nv12") == 0) a->format = ESR_PIXEL_NV12;
      else if (strcmp(v, "nv21") == 0) a->format = ESR_PIXEL_NV21;
      else if (strcmp(v, "i420") == 0) a->format = ESR_PIXEL_I420;
      else return 0;
    } else if (strcmp(k, "--size") == 0) { if (!parse_size(v, &a->w, &a->h)) return 0; }
    else if (strcmp(k, "--synthetic") == 0) {
      if (!parse_size(v, &a->w, &a->h)) return 0;
      a->kind = IN_SYNTH;
    } else return 0;
  }
  if (a->model == NULL || a->kind == IN_NONE || a->frames < 1 || a->warmup < 0) return 0;
  if (a->streams < 1 || a->streams > 64) return 0;
  if (a->kind == IN_YUV && (a->w == 0 || a->h == 0 || a->w % 2 || a->h % 2)) return 0;
  return 1;
}

/* ---- PGM / PPM (binary, maxval 255) ---- */

static int read_token(FILE* f, char* buf, size_t cap) {
  int c;
  size_t n = 0;
  do { /* whitespace and # comments */
    c = fgetc(f);
    if (c == '#') while (c != '\n' && c != EOF) c = fgetc(f);
  } while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
  while (c != EOF && c != ' ' && c != '\t' && c != '\n' && c != '\r' && n + 1 < cap) {
    buf[n++] = (char)c;
    c = fgetc(f);
  }
  buf[n] = '\0';
  return n > 0;
}

static uint8_t* read_pnm(const char* path, int channels, size_t* w, size_t* h) {
  FILE* f = fopen(path, "rb");
  char tok[32];
  unsigned long tw, th, maxval;
  uint8_t* data = NULL;
  size_t n;
  if (f == NULL) {
    fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
    return NULL;
  }
  if (!read_token(f, tok, sizeof tok) || strcmp(tok, channels == 1 ? "P5" : "P6") != 0) {
    fprintf(stderr, "%s is not a binary %s file\n", path, channels == 1 ? "PGM (P5)" : "PPM (P6)");
    goto done;
  }
  if (!read_token(f, tok, sizeof tok) || (tw = strtoul(tok, NULL, 10)) == 0 ||
      !read_token(f, tok, sizeof tok) || (th = strtoul(tok, NULL, 10)) == 0 ||
      !read_token(f, tok, sizeof tok) || (maxval = strtoul(tok, NULL, 10)) != 255 ||
      tw > 65536 || th > 65536) {
    fprintf(stderr, "%s: unsupported header (need maxval 255, sides <= 65536)\n", path);
    goto done;
  }
  n = (size_t)tw * th * (size_t)channels;
  data = (uint8_t*)malloc(n);
  if (data == NULL || fread(data, 1, n, f) != n) {
    fprintf(stderr, "%s: truncated pixel data\n", path);
    free(data);
    data = NULL;
    goto done;
  }
  *w = tw;
  *h = th;
done:
  fclose(f);
  return data;
}

static int write_file(const char* path, const char* header, const uint8_t* data, size_t n) {
  FILE* f = fopen(path, "wb");
  int ok;
  if (f == NULL) {
    fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    return 0;
  }
  ok = fputs(header, f) >= 0 && fwrite(data, 1, n, f) == n;
  ok = (fclose(f) == 0) && ok;
  return ok;
}

/* ---- timing ---- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

/* Linear interpolation between order statistics, as numpy.percentile's default. */
static double percentile(const double* sorted, int n, double p) {
  double pos = p / 100.0 * (n - 1);
  int i = (int)pos;
  if (i >= n - 1) return sorted[n - 1];
  return sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]);
}

/* One camera stream: its own esr_stream of the shared model and its own output frame. */
typedef struct camera {
  const args* a;
  esr_model* model;
  esr_stream* stream;
  esr_image in, out;         /* u8 frames (planes point into in_buf / out_buf) */
  const float* fin;          /* --float: shared input planes */
  float* fout;
  uint8_t* out_buf;
  size_t channels;
  double* times;             /* a->frames per stream */
  esr_status status;
  char error[512];
} camera;

static void* camera_loop(void* arg) {
  camera* c = (camera*)arg;
  const args* a = c->a;
  int i;
  for (i = -a->warmup; i < a->frames; ++i) {
    double t0 = now_ms();
    if (a->use_float) {
      c->status = esr_upscale_f32(c->stream, c->fin, 1, c->channels, c->in.width, c->in.height,
                                  c->fout);
    } else {
      c->status = esr_upscale_image(c->stream, &c->in, &c->out);
    }
    if (c->status != ESR_OK) {
      /* esr_last_error is per thread: keep this thread's message for main. */
      snprintf(c->error, sizeof c->error, "%s", esr_last_error());
      return NULL;
    }
    if (i >= 0) c->times[i] = now_ms() - t0;
  }
  return NULL;
}

/* Plane layout of a packed w x h frame of `format` in one buffer (as raw .yuv files store it);
 * returns the buffer size. */
static size_t layout(esr_pixel_format format, size_t w, size_t h, uint8_t* base, esr_image* im) {
  im->width = w;
  im->height = h;
  im->format = format;
  im->planes[0] = base;
  if (format == ESR_PIXEL_GRAY8) {
    im->pitches[0] = w;
    return w * h;
  }
  if (format == ESR_PIXEL_RGB24) {
    im->pitches[0] = 3 * w;
    return 3 * w * h;
  }
  im->pitches[0] = w;
  if (format == ESR_PIXEL_I420) {
    im->planes[1] = base ? base + w * h : NULL;
    im->planes[2] = base ? base + w * h + (w / 2) * (h / 2) : NULL;
    im->pitches[1] = im->pitches[2] = w / 2;
  } else {
    im->planes[1] = base ? base + w * h : NULL;
    im->pitches[1] = w;
  }
  return w * h + 2 * (w / 2) * (h / 2);
}

int main(int argc, char** argv) {
  args a;
  esr_options opts;
  esr_model* model = NULL;
  esr_model_info info;
  camera* cams = NULL;
  pthread_t* tids = NULL;
  esr_image in_im, out_im;
  esr_pixel_format format = ESR_PIXEL_GRAY8;
  size_t w = 0, h = 0, ow = 0, oh = 0, ch, x, y, in_n = 0, out_n = 0, mc, n_times;
  uint8_t* in = NULL;
  float *fin = NULL, *fout = NULL;
  double *times = NULL, mean = 0;
  int i, rc = 1, started = 0;

  if (!parse_args(argc, argv, &a)) {
    usage();
    return 2;
  }
  esr_options_init(&opts, sizeof opts);
  opts.num_threads = a.threads;
  opts.backend = a.backend ? ESR_BACKEND_TENSORRT : ESR_BACKEND_ONNXRUNTIME;
  opts.device_id = a.device;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if (esr_model_create(a.model, &opts, &model) != ESR_OK ||
      esr_model_get_info(model, &info) != ESR_OK) {
    fprintf(stderr, "edgesr_upscale: %s\n", esr_last_error());
    esr_model_destroy(model);
    return 1;
  }
  mc = (size_t)info.channels;

  /* Load or make the input frame. Its format comes from the file, never from the model: a PGM
   * is one luma plane whatever the model wants. */
  memset(&in_im, 0, sizeof in_im);
  in_im.struct_size = sizeof in_im;
  in_im.matrix = a.matrix;
  in_im.range = a.range;
  if (a.kind == IN_PGM) {
    in = read_pnm(a.input, 1, &w, &h);
    format = ESR_PIXEL_GRAY8;
  } else if (a.kind == IN_PPM) {
    in = read_pnm(a.input, 3, &w, &h);
    format = ESR_PIXEL_RGB24;
  } else if (a.kind == IN_YUV) {
    FILE* f = fopen(a.input, "rb");
    w = a.w;
    h = a.h;
    format = a.format;
    in_n = layout(format, w, h, NULL, &in_im);
    in = (uint8_t*)malloc(in_n);
    if (f == NULL || in == NULL || fread(in, 1, in_n, f) != in_n) {
      fprintf(stderr, "cannot read %zu bytes of YUV 4:2:0 from %s\n", in_n, a.input);
      free(in);
      in = NULL;
    }
    if (f) fclose(f);
  } else {
    w = a.w;
    h = a.h;
    format = mc == 3 ? ESR_PIXEL_RGB24 : ESR_PIXEL_GRAY8;
    ch = mc;
    in = (uint8_t*)malloc(w * h * ch);
    if (in)
      for (y = 0; y < h; ++y)
        for (x = 0; x < w * ch; ++x) in[y * w * ch + x] = (uint8_t)((x * 255) / (w * ch) ^ (y & 31));
  }
  if (in == NULL) goto done;
  if (format == ESR_PIXEL_GRAY8 && info.color == ESR_COLOR_RGB) {
    fprintf(stderr,
            "edgesr_upscale: %s is one luma plane but the model is rgb; give it a PPM (P6) or "
            "YUV frame, or use a y_bt601 model\n",
            a.input ? a.input : "the synthetic frame");
    goto done;
  }
  if (esr_output_size(model, w, h, &ow, &oh) != ESR_OK) {
    fprintf(stderr, "edgesr_upscale: %s\n", esr_last_error());
    goto done;
  }
  in_n = layout(format, w, h, in, &in_im);
  out_im = in_im;
  out_n = layout(format, ow, oh, NULL, &out_im);
  n_times = (size_t)a.frames * (size_t)a.streams;
  times = (double*)malloc(sizeof(double) * n_times);
  cams = (camera*)calloc((size_t)a.streams, sizeof *cams);
  tids = (pthread_t*)calloc((size_t)a.streams, sizeof *tids);
  if (times == NULL || cams == NULL || tids == NULL) goto done;
  if (a.use_float) {
    /* The float planes of the frame's luma (or RGB planes), as Python's ORT would get them. */
    fin = (float*)malloc(w * h * mc * sizeof(float));
    fout = (float*)malloc(ow * oh * mc * sizeof(float) * (size_t)a.streams);
    if (fin == NULL || fout == NULL) goto done;
    for (x = 0; x < w * h * mc; ++x) fin[x] = (float)in[x % (w * h)] / 255.0f;
  }
  for (i = 0; i < a.streams; ++i) {
    camera* c = &cams[i];
    c->a = &a;
    c->model = model;
    c->in = in_im;
    c->out = out_im;
    c->channels = mc;
    c->fin = fin;
    c->fout = fout ? fout + (size_t)i * ow * oh * mc : NULL;
    c->times = times + (size_t)i * (size_t)a.frames;
    c->out_buf = (uint8_t*)malloc(out_n);
    if (c->out_buf == NULL) goto done;
    layout(format, ow, oh, c->out_buf, &c->out);
    if (esr_stream_create(model, &c->stream) != ESR_OK ||
        esr_stream_prepare(c->stream, w, h) != ESR_OK) {
      fprintf(stderr, "edgesr_upscale: stream %d: %s\n", i, esr_last_error());
      goto done;
    }
  }
  for (i = 0; i < a.streams; ++i) {
    if (pthread_create(&tids[i], NULL, camera_loop, &cams[i]) != 0) break;
    ++started;
  }
  for (i = 0; i < started; ++i) pthread_join(tids[i], NULL);
  if (started < a.streams) {
    fprintf(stderr, "edgesr_upscale: cannot start %d camera threads\n", a.streams);
    goto done;
  }
  for (i = 0; i < a.streams; ++i) {
    if (cams[i].status != ESR_OK) {
      fprintf(stderr, "edgesr_upscale: stream %d: frame failed: %s\n", i, cams[i].error);
      goto done;
    }
  }
  for (x = 0; x < n_times; ++x) mean += times[x] / (double)n_times;
  qsort(times, n_times, sizeof(double), cmp_double);
  if (a.json) {
    printf("{\"in\": [%zu, %zu], \"out\": [%zu, %zu], \"scale\": %d, \"threads\": %d, "
           "\"streams\": %d, \"path\": \"%s\", \"frames\": %d, \"p50_ms\": %.4f, "
           "\"p90_ms\": %.4f, \"p99_ms\": %.4f, \"mean_ms\": %.4f, \"min_ms\": %.4f}\n",
           h, w, oh, ow, (int)info.scale, a.threads, a.streams,
           a.use_float                      ? "f32"
           : format == ESR_PIXEL_NV12       ? "nv12"
           : format == ESR_PIXEL_NV21       ? "nv21"
           : format == ESR_PIXEL_I420       ? "i420"
           : format == ESR_PIXEL_RGB24      ? "rgb_u8"
                                            : "y_u8",
           a.frames, percentile(times, (int)n_times, 50), percentile(times, (int)n_times, 90),
           percentile(times, (int)n_times, 99), mean, times[0]);
  } else {
    printf("%s: %zux%zu -> %zux%zu (x%d, %s), %d stream(s) x %d frames after %d warm-up\n",
           a.model, w, h, ow, oh, (int)info.scale, esr_version(), a.streams, a.frames, a.warmup);
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  mean %.3f  min %.3f\n",
           percentile(times, (int)n_times, 50), percentile(times, (int)n_times, 90),
           percentile(times, (int)n_times, 99), mean, times[0]);
  }
  if (a.out != NULL && !a.use_float) {
    char header[64];
    if (format != ESR_PIXEL_GRAY8 && format != ESR_PIXEL_RGB24) header[0] = '\0';
    else
      snprintf(header, sizeof header, "%s\n%zu %zu\n255\n",
               format == ESR_PIXEL_RGB24 ? "P6" : "P5", ow, oh);
    if (!write_file(a.out, header, cams[0].out_buf, out_n)) goto done;
  }
  rc = 0;
done:
  for (i = 0; cams != NULL && i < a.streams; ++i) {
    esr_stream_destroy(cams[i].stream);
    free(cams[i].out_buf);
  }
  esr_model_destroy(model);
  free(cams);
  free(tids);
  free(in);
  free(fin);
  free(fout);
  free(times);
  return rc;
}
