/* Parsing of the model metadata: the ONNX metadata_props values and the TensorRT sidecar. */
#include <string.h>

#include "internal.h"

esr_status esr__parse_scale(const char* text, int32_t* scale) {
  /* Digits only: "4", not " 4", "4.0" or "+4", so a damaged value is caught, not coerced. */
  int32_t value = 0;
  const char* p = text;
  if (text == NULL || *text == '\0') {
    return esr__fail(ESR_ERR_MODEL_METADATA, "edgesr.scale is empty");
  }
  for (; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') {
      return esr__fail(ESR_ERR_MODEL_METADATA, "edgesr.scale '%.32s' is not an integer", text);
    }
    value = value * 10 + (*p - '0');
    if (value > ESR_MAX_SCALE) break;
  }
  if (value < 1 || value > ESR_MAX_SCALE) {
    return esr__fail(ESR_ERR_MODEL_METADATA, "edgesr.scale '%.32s' is outside 1..%d", text,
                     ESR_MAX_SCALE);
  }
  *scale = value;
  return ESR_OK;
}

esr_status esr__parse_color(const char* text, esr_color* color) {
  if (text != NULL && strcmp(text, "y_bt601") == 0) {
    *color = ESR_COLOR_Y_BT601;
    return ESR_OK;
  }
  if (text != NULL && strcmp(text, "rgb") == 0) {
    *color = ESR_COLOR_RGB;
    return ESR_OK;
  }
  return esr__fail(ESR_ERR_MODEL_METADATA,
                   "edgesr.color '%.32s' is not one of 'y_bt601', 'rgb'", text ? text : "");
}

/* ---- A minimal JSON reader: enough for one flat object of scalars (nested values are
 * skipped). Written for the sidecar only; every read is bounds-checked against `end`. ---- */

typedef struct json_cursor {
  const char* p;
  const char* end;
} json_cursor;

static void skip_ws(json_cursor* c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
    ++c->p;
  }
}

/* Reads a string without escapes into buf (escaped strings are skipped and reported as ""). */
static int read_string(json_cursor* c, char* buf, size_t cap) {
  size_t n = 0;
  int escaped = 0;
  if (c->p >= c->end || *c->p != '"') return 0;
  ++c->p;
  while (c->p < c->end && *c->p != '"') {
    if (*c->p == '\\') {
      escaped = 1;
      if (++c->p >= c->end) return 0;
    }
    if (n + 1 < cap) buf[n++] = *c->p;
    ++c->p;
  }
  if (c->p >= c->end) return 0;
  ++c->p; /* closing quote */
  buf[escaped ? 0 : n] = '\0';
  return 1;
}

/* Skips any JSON value, tracking nesting so that brackets inside strings are ignored. */
static int skip_value(json_cursor* c) {
  int depth = 0;
  char tmp[2];
  do {
    skip_ws(c);
    if (c->p >= c->end) return 0;
    if (*c->p == '"') {
      if (!read_string(c, tmp, sizeof tmp)) return 0;
    } else if (*c->p == '{' || *c->p == '[') {
      ++depth;
      ++c->p;
    } else if (*c->p == '}' || *c->p == ']') {
      if (depth == 0) return 1; /* end of the enclosing object: leave it for the caller */
      --depth;
      ++c->p;
    } else if (*c->p == ',' || *c->p == ':') {
      if (depth == 0) return 1;
      ++c->p;
    } else {
      ++c->p; /* number / literal characters */
    }
  } while (depth > 0 || (c->p < c->end && *c->p != ',' && *c->p != '}'));
  return 1;
}

esr_status esr__parse_sidecar(const char* json, size_t len, esr_model_meta* meta) {
  json_cursor c;
  char key[32];
  char text[32];
  int have_scale = 0, have_color = 0;
  if (json == NULL || meta == NULL) {
    return esr__fail(ESR_ERR_INVALID_ARGUMENT, "sidecar JSON is NULL");
  }
  c.p = json;
  c.end = json + len;
  skip_ws(&c);
  if (c.p >= c.end || *c.p != '{') {
    return esr__fail(ESR_ERR_MODEL_METADATA, "sidecar is not a JSON object");
  }
  ++c.p;
  for (;;) {
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') break;
    if (!read_string(&c, key, sizeof key)) {
      return esr__fail(ESR_ERR_MODEL_METADATA, "sidecar JSON: expected a quoted key");
    }
    skip_ws(&c);
    if (c.p >= c.end || *c.p != ':') {
      return esr__fail(ESR_ERR_MODEL_METADATA, "sidecar JSON: expected ':' after \"%s\"", key);
    }
    ++c.p;
    skip_ws(&c);
    if (strcmp(key, "scale") == 0) {
      size_t n = 0;
      while (c.p < c.end && n + 1 < sizeof text && *c.p >= '0' && *c.p <= '9') text[n++] = *c.p++;
      text[n] = '\0';
      if (esr__parse_scale(text, &meta->scale) != ESR_OK) return ESR_ERR_MODEL_METADATA;
      have_scale = 1;
    } else if (strcmp(key, "color") == 0) {
      if (!read_string(&c, text, sizeof text) ||
          esr__parse_color(text, &meta->color) != ESR_OK) {
        return esr__fail(ESR_ERR_MODEL_METADATA,
                         "sidecar JSON: \"color\" must be \"y_bt601\" or \"rgb\"");
      }
      have_color = 1;
    } else if (strcmp(key, "precision") == 0 && c.p < c.end && *c.p == '"') {
      /* Optional: reported by esr_model_get_info ("" if absent or not a plain string). */
      if (!read_string(&c, meta->precision, sizeof meta->precision)) {
        return esr__fail(ESR_ERR_MODEL_METADATA, "sidecar JSON: bad \"precision\" string");
      }
    } else if (!skip_value(&c)) {
      return esr__fail(ESR_ERR_MODEL_METADATA, "sidecar JSON: malformed value for \"%s\"", key);
    }
    skip_ws(&c);
    if (c.p < c.end && *c.p == ',') {
      ++c.p;
      continue;
    }
    if (c.p < c.end && *c.p == '}') break;
    return esr__fail(ESR_ERR_MODEL_METADATA, "sidecar JSON: expected ',' or '}' after \"%s\"",
                     key);
  }
  if (!have_scale || !have_color) {
    return esr__fail(ESR_ERR_MODEL_METADATA,
                     "sidecar JSON lacks \"%s\"; write it with `edgesr export` next to the plan",
                     have_scale ? "color" : "scale");
  }
  return ESR_OK;
}
