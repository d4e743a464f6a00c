/* edgesr_upscale: upscale a PGM (Y model), PPM (RGB or Y model) or raw NV12 frame with an
 * edgesr model through libedgesr, and print per-frame latency percentiles.
 *
 *   edgesr_upscale --model espcn_x4.onnx --input in.pgm --out out.pgm --frames 50
 *   edgesr_upscale --model espcn_x4.onnx --nv12 cam.yuv --size 480x270 --out sr.yuv
 *   edgesr_upscale --model espcn_x4.onnx --synthetic 480x270 --float --frames 30 --json
 *
 * --float times esr_upscale_f32 on float planes (what ONNX Runtime from Python is given),
 * the others the 8-bit frame calls. Latency is the wall time of each frame call; the first
 * --warmup calls are not counted. */
#define _POSIX_C_SOURCE 200112L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgesr.h"

typedef enum { IN_NONE, IN_PGM, IN_PPM, IN_NV12, IN_SYNTH } input_kind;

typedef struct args {
  const char* model;
  const char* input;
  const char* out;
  input_kind kind;
  size_t w, h;
  int threads, frames, warmup, use_float, json, backend, device;
} args;

static void usage(void) {
  fprintf(stderr,
          "usage: edgesr_upscale --model MODEL (--input IN.pgm|IN.ppm | --nv12 IN.yuv --size WxH |\n"
          "                      --synthetic WxH) [--out OUT] [--frames N] [--warmup N]\n"
          "                      [--threads N] [--backend onnxruntime|tensorrt] [--device N]\n"
          "                      [--float] [--json]\n");
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
  for (i = 1; i < argc; ++i) {
    const char* k = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(k, "--float") == 0) { a->use_float = 1; continue; }
    if (strcmp(k, "--json") == 0) { a->json = 1; continue; }
    if (v == NULL) return 0;
    ++i;
    if (strcmp(k, "--model") == 0) a->model = v;
    else if (strcmp(k, "--out") == 0) a->out = v;
    else if (strcmp(k, "--threads") == 0) a->threads = atoi(v);
    else if (strcmp(k, "--frames") == 0) a->frames = atoi(v);
    else if (strcmp(k, "--warmup") == 0) a->warmup = atoi(v);
    else if (strcmp(k, "--device") == 0) a->device = atoi(v);
    else if (strcmp(k, "--backend") == 0) a->backend = strcmp(v, "tensorrt") == 0;
    else if (strcmp(k, "--input") == 0) {
      const char* dot = strrchr(v, '.');
      a->input = v;
      a->kind = dot && (strcmp(dot, ".ppm") == 0 || strcmp(dot, ".PPM") == 0) ? IN_PPM : IN_PGM;
    } else if (strcmp(k, "--nv12") == 0) { a->input = v; a->kind = IN_NV12; }
    else if (strcmp(k, "--size") == 0) { if (!parse_size(v, &a->w, &a->h)) return 0; }
    else if (strcmp(k, "--synthetic") == 0) {
      if (!parse_size(v, &a->w, &a->h)) return 0;
      a->kind = IN_SYNTH;
    } else return 0;
  }
  if (a->model == NULL || a->kind == IN_NONE || a->frames < 1 || a->warmup < 0) return 0;
  if (a->kind == IN_NV12 && (a->w == 0 || a->h == 0)) return 0;
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

int main(int argc, char** argv) {
  args a;
  esr_options opts = esr_default_options();
  esr_engine* engine = NULL;
  int32_t scale = 0;
  esr_color color = ESR_COLOR_Y_BT601;
  size_t w = 0, h = 0, ow = 0, oh = 0, ch, x, y, in_n, out_n;
  uint8_t *in = NULL, *out = NULL;
  float *fin = NULL, *fout = NULL;
  double* times = NULL;
  double mean = 0;
  esr_status st = ESR_OK;
  int i, rc = 1;

  if (!parse_args(argc, argv, &a)) {
    usage();
    return 2;
  }
  opts.num_threads = a.threads;
  opts.backend = a.backend ? ESR_BACKEND_TENSORRT : ESR_BACKEND_ONNXRUNTIME;
  opts.device_id = a.device;
  if (esr_engine_create(a.model, &opts, &engine) != ESR_OK) {
    fprintf(stderr, "edgesr_upscale: %s\n", esr_last_error());
    return 1;
  }
  esr_engine_info(engine, &scale, &color);
  ch = color == ESR_COLOR_RGB ? 3 : 1;

  /* Load or make the input frame. */
  if (a.kind == IN_PGM) {
    in = read_pnm(a.input, 1, &w, &h);
  } else if (a.kind == IN_PPM) {
    in = read_pnm(a.input, 3, &w, &h);
    ch = 3;
  } else if (a.kind == IN_NV12) {
    FILE* f = fopen(a.input, "rb");
    w = a.w;
    h = a.h;
    in_n = w * h + w * (h / 2);
    in = (uint8_t*)malloc(in_n);
    if (f == NULL || in == NULL || fread(in, 1, in_n, f) != in_n) {
      fprintf(stderr, "cannot read %zu bytes of NV12 from %s\n", in_n, a.input);
      free(in);
      in = NULL;
    }
    if (f) fclose(f);
  } else {
    w = a.w;
    h = a.h;
    in = (uint8_t*)malloc(w * h * ch);
    if (in)
      for (y = 0; y < h; ++y)
        for (x = 0; x < w * ch; ++x) in[y * w * ch + x] = (uint8_t)((x * 255) / (w * ch) ^ (y & 31));
  }
  if (in == NULL) goto done;
  if (esr_output_size(engine, w, h, &ow, &oh) != ESR_OK) {
    fprintf(stderr, "edgesr_upscale: %s\n", esr_last_error());
    goto done;
  }
  out_n = a.kind == IN_NV12 ? ow * oh + ow * (oh / 2) : ow * oh * ch;
  out = (uint8_t*)malloc(out_n);
  times = (double*)malloc(sizeof(double) * (size_t)a.frames);
  if (out == NULL || times == NULL) goto done;
  if (a.use_float) {
    size_t mc = color == ESR_COLOR_RGB ? 3 : 1;
    fin = (float*)malloc(w * h * mc * sizeof(float));
    fout = (float*)malloc(ow * oh * mc * sizeof(float));
    if (fin == NULL || fout == NULL) goto done;
    for (x = 0; x < w * h * mc; ++x) fin[x] = (float)in[x % (w * h)] / 255.0f;
  }

  for (i = -a.warmup; i < a.frames; ++i) {
    double t0 = now_ms();
    if (a.use_float) {
      st = esr_upscale_f32(engine, fin, 1, color == ESR_COLOR_RGB ? 3 : 1, w, h, fout);
    } else if (a.kind == IN_NV12) {
      st = esr_upscale_nv12(engine, in, w, in + w * h, w, w, h, out, ow, out + ow * oh, ow);
    } else if (ch == 3) {
      st = esr_upscale_rgb_u8(engine, in, w, h, 3 * w, out, 3 * ow);
    } else {
      st = esr_upscale_y_u8(engine, in, w, h, w, out, ow);
    }
    if (st != ESR_OK) {
      fprintf(stderr, "edgesr_upscale: frame failed: %s\n", esr_last_error());
      goto done;
    }
    if (i >= 0) times[i] = now_ms() - t0;
  }
  for (i = 0; i < a.frames; ++i) mean += times[i] / a.frames;
  qsort(times, (size_t)a.frames, sizeof(double), cmp_double);
  if (a.json) {
    printf("{\"in\": [%zu, %zu], \"out\": [%zu, %zu], \"scale\": %d, \"threads\": %d, "
           "\"path\": \"%s\", \"frames\": %d, \"p50_ms\": %.4f, \"p90_ms\": %.4f, "
           "\"p99_ms\": %.4f, \"mean_ms\": %.4f, \"min_ms\": %.4f}\n",
           h, w, oh, ow, (int)scale, a.threads,
           a.use_float ? "f32" : a.kind == IN_NV12 ? "nv12" : ch == 3 ? "rgb_u8" : "y_u8",
           a.frames, percentile(times, a.frames, 50), percentile(times, a.frames, 90),
           percentile(times, a.frames, 99), mean, times[0]);
  } else {
    printf("%s: %zux%zu -> %zux%zu (x%d, %s), %d frames after %d warm-up\n", a.model, w, h, ow,
           oh, (int)scale, esr_version(), a.frames, a.warmup);
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  mean %.3f  min %.3f\n",
           percentile(times, a.frames, 50), percentile(times, a.frames, 90),
           percentile(times, a.frames, 99), mean, times[0]);
  }
  if (a.out != NULL && !a.use_float) {
    char header[64];
    if (a.kind == IN_NV12) header[0] = '\0';
    else snprintf(header, sizeof header, "%s\n%zu %zu\n255\n", ch == 3 ? "P6" : "P5", ow, oh);
    if (!write_file(a.out, header, out, out_n)) goto done;
  }
  rc = 0;
done:
  free(in);
  free(out);
  free(fin);
  free(fout);
  free(times);
  esr_engine_destroy(engine);
  return rc;
}
