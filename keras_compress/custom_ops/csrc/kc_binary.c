/* keras-compress binary operators: the portable C99 core (see kc_binary.h). */
#include "kc_binary.h"

#define KC_MAX_DIM 65535
#define KC_MAX_ELEMENTS (1L << 26)

static uint32_t kc_load_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

static void kc_store_u32(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)(v & 0xFFu);
  p[1] = (uint8_t)((v >> 8) & 0xFFu);
  p[2] = (uint8_t)((v >> 16) & 0xFFu);
  p[3] = (uint8_t)((v >> 24) & 0xFFu);
}

static int32_t kc_popcount(uint32_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return (int32_t)__builtin_popcount(v);
#else
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  v = (v + (v >> 4)) & 0x0F0F0F0Fu;
  return (int32_t)((v * 0x01010101u) >> 24);
#endif
}

/* ---- options ---------------------------------------------------------- */

static int32_t* kc_field(kc_options* o, int i) {
  int32_t* fields[KC_OPTIONS_FIELDS];
  fields[0] = &o->kind;
  fields[1] = &o->input_mode;
  fields[2] = &o->input_zero_point;
  fields[3] = &o->threshold;
  fields[4] = &o->d_plus;
  fields[5] = &o->d_minus;
  fields[6] = &o->output_zero_point;
  fields[7] = &o->act_min;
  fields[8] = &o->act_max;
  fields[9] = &o->in_h;
  fields[10] = &o->in_w;
  fields[11] = &o->in_c;
  fields[12] = &o->out_h;
  fields[13] = &o->out_w;
  fields[14] = &o->out_c;
  fields[15] = &o->k_h;
  fields[16] = &o->k_w;
  fields[17] = &o->stride_h;
  fields[18] = &o->stride_w;
  fields[19] = &o->dilation_h;
  fields[20] = &o->dilation_w;
  fields[21] = &o->pad_top;
  fields[22] = &o->pad_left;
  fields[23] = &o->columns;
  fields[24] = &o->shared[KC_PARAM_MAGNITUDE];
  fields[25] = &o->shared[KC_PARAM_BIAS];
  fields[26] = &o->shared[KC_PARAM_MULTIPLIER];
  fields[27] = &o->shared[KC_PARAM_SHIFT];
  return fields[i];
}

static int kc_in_range(int32_t v, int32_t low, int32_t high) {
  return v >= low && v <= high;
}

/* The first and last output row (or column) must read at least one input
 * row: start = out * stride - pad, extent = (k - 1) * dilation + 1. */
static int kc_axis_ok(int32_t in, int32_t out, int32_t k, int32_t stride,
                      int32_t dilation, int32_t pad) {
  long extent = (long)(k - 1) * dilation + 1;
  long last_start = (long)(out - 1) * stride - pad;
  if (pad < 0 || pad >= extent) return 0;
  return last_start < in && last_start + extent > 0;
}

/* The values the arithmetic needs in range: no shift past 31 bits. */
static int kc_check_row(const int32_t* p) {
  if (!kc_in_range(p[KC_PARAM_MAGNITUDE], 0, 255) || p[KC_PARAM_MULTIPLIER] < 0 ||
      !kc_in_range(p[KC_PARAM_SHIFT], -31, 30)) {
    return KC_BAD_CONSTANTS;
  }
  return KC_OK;
}

/* One channel's parameters, from its table row and the shared values. */
static void kc_channel(const kc_options* o, const int32_t* table, int32_t channel,
                       int32_t* out) {
  const int32_t columns = kc_table_columns(o);
  const int32_t* row = table + (long)channel * columns;
  int i, k = 0;
  for (i = 0; i < KC_PARAM_COUNT; ++i) {
    out[i] = (o->columns >> i) & 1 ? row[k++] : o->shared[i];
  }
}

static int kc_check_options(const kc_options* o) {
  const int32_t dims[] = {o->in_h,     o->in_w,       o->in_c,
                          o->out_h,    o->out_w,      o->out_c,
                          o->k_h,      o->k_w,        o->stride_h,
                          o->stride_w, o->dilation_h, o->dilation_w};
  unsigned i;
  if (o->kind != KC_FC && o->kind != KC_CONV2D) return KC_BAD_OPTIONS;
  if (o->input_mode != KC_INPUT_INT8 && o->input_mode != KC_INPUT_BINARY)
    return KC_BAD_OPTIONS;
  if (o->columns < 0 || o->columns >= (1 << KC_PARAM_COUNT)) return KC_BAD_OPTIONS;
  if (kc_check_row(o->shared) != KC_OK) return KC_BAD_OPTIONS;
  for (i = 0; i < sizeof(dims) / sizeof(dims[0]); ++i) {
    if (!kc_in_range(dims[i], 1, KC_MAX_DIM)) return KC_BAD_OPTIONS;
  }
  if (!kc_in_range(o->input_zero_point, -128, 127) ||
      !kc_in_range(o->output_zero_point, -128, 127) ||
      !kc_in_range(o->act_min, -128, 127) ||
      !kc_in_range(o->act_max, o->act_min, 127) ||
      !kc_in_range(o->threshold, -128, 128) ||
      !kc_in_range(o->d_plus, -255, 255) ||
      !kc_in_range(o->d_minus, -255, 255)) {
    return KC_BAD_OPTIONS;
  }
  if ((long)o->in_h * o->in_w * o->in_c > KC_MAX_ELEMENTS ||
      (long)o->out_h * o->out_w * o->out_c > KC_MAX_ELEMENTS ||
      (long)o->k_h * o->k_w * o->in_c > KC_MAX_ELEMENTS) {
    return KC_BAD_OPTIONS;
  }
  if (o->kind == KC_FC) {
    if (o->in_h != 1 || o->in_w != 1 || o->out_h != 1 || o->out_w != 1 ||
        o->k_h != 1 || o->k_w != 1 || o->stride_h != 1 || o->stride_w != 1 ||
        o->dilation_h != 1 || o->dilation_w != 1 || o->pad_top != 0 ||
        o->pad_left != 0) {
      return KC_BAD_OPTIONS;
    }
    return KC_OK;
  }
  if (!kc_axis_ok(o->in_h, o->out_h, o->k_h, o->stride_h, o->dilation_h,
                  o->pad_top) ||
      !kc_axis_ok(o->in_w, o->out_w, o->k_w, o->stride_w, o->dilation_w,
                  o->pad_left)) {
    return KC_BAD_OPTIONS;
  }
  return KC_OK;
}

int kc_parse_options(const uint8_t* data, int32_t size, kc_options* out) {
  int i;
  if (data == 0 || out == 0 || size != KC_OPTIONS_BYTES) return KC_BAD_OPTIONS;
  if (kc_load_u32(data) != KC_OPTIONS_MAGIC) return KC_BAD_OPTIONS;
  for (i = 0; i < KC_OPTIONS_FIELDS; ++i) {
    *kc_field(out, i) = (int32_t)kc_load_u32(data + 4 + 4 * i);
  }
  return kc_check_options(out);
}

void kc_write_options(const kc_options* options, uint8_t* data) {
  kc_options copy = *options;
  int i;
  kc_store_u32(data, KC_OPTIONS_MAGIC);
  for (i = 0; i < KC_OPTIONS_FIELDS; ++i) {
    kc_store_u32(data + 4 + 4 * i, (uint32_t)*kc_field(&copy, i));
  }
}

/* ---- sizes ------------------------------------------------------------ */

int32_t kc_words_per_tap(const kc_options* o) { return (o->in_c + 31) / 32; }

int32_t kc_row_bytes(const kc_options* o) {
  return o->k_h * o->k_w * kc_words_per_tap(o) * 4;
}

int32_t kc_table_columns(const kc_options* o) {
  int32_t n = 0, i;
  for (i = 0; i < KC_PARAM_COUNT; ++i) n += (o->columns >> i) & 1;
  return n;
}

int kc_check_table(const kc_options* o, const int32_t* table) {
  int32_t channel, p[KC_PARAM_COUNT];
  if (table == 0 && kc_table_columns(o) > 0) return KC_BAD_CONSTANTS;
  for (channel = 0; channel < o->out_c; ++channel) {
    kc_channel(o, table, channel, p);
    if (kc_check_row(p) != KC_OK) return KC_BAD_CONSTANTS;
  }
  return KC_OK;
}

int32_t kc_input_size(const kc_options* o) {
  return o->in_h * o->in_w * o->in_c;
}

int32_t kc_output_size(const kc_options* o) {
  return o->out_h * o->out_w * o->out_c;
}

int32_t kc_scratch_bytes(const kc_options* o) {
  if (o->input_mode != KC_INPUT_BINARY) return 0;
  return o->in_h * o->in_w * kc_words_per_tap(o) * 4;
}

/* ---- tensor checks ---------------------------------------------------- */

int kc_check_tensors(const kc_options* o, const kc_tensor_info* input,
                     const kc_tensor_info* weights,
                     const kc_tensor_info* params,
                     const kc_tensor_info* output, int32_t* batch) {
  const int64_t sample = kc_input_size(o);
  if (input->type != KC_TYPE_INT8 || output->type != KC_TYPE_INT8 ||
      (weights->type != KC_TYPE_UINT8 && weights->type != KC_TYPE_INT8) ||
      params->type != KC_TYPE_INT32) {
    return KC_BAD_TYPES;
  }
  if (weights->elements != (int64_t)o->out_c * kc_row_bytes(o) ||
      params->elements != (int64_t)o->out_c * kc_table_columns(o)) {
    return KC_BAD_CONSTANTS;
  }
  if (input->elements <= 0 || input->elements % sample != 0 ||
      input->elements / sample > 0x7FFFFFFF) {
    return KC_BAD_INPUT;
  }
  *batch = (int32_t)(input->elements / sample);
  if (output->elements >= 0 &&
      output->elements != (int64_t)*batch * kc_output_size(o)) {
    return KC_BAD_OUTPUT;
  }
  return KC_OK;
}

const char* kc_status_message(int status) {
  switch (status) {
    case KC_OK:
      return "ok";
    case KC_BAD_OPTIONS:
      return "bad custom options (expected the KCB1 options of this operator)";
    case KC_BAD_SHAPE:
      return "missing tensor data or a negative batch";
    case KC_BAD_TYPES:
      return "expected int8 input and output, uint8 packed weights and int32 "
             "channel parameters";
    case KC_BAD_CONSTANTS:
      return "the packed weights or channel parameters do not match the options";
    case KC_BAD_INPUT:
      return "the input is not a whole number of samples of the options' shape";
    case KC_BAD_OUTPUT:
      return "the output does not hold one result per input sample";
    default:
      return "unknown error";
  }
}

/* ---- TFLite's integer requantization ----------------------------------- */

static int32_t kc_doubling_high_mul(int32_t a, int32_t b) {
  int64_t ab;
  int32_t nudge;
  if (a == b && a == INT32_MIN) return INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

static int32_t kc_rounding_divide_by_pot(int32_t x, int32_t exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t kc_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                            int32_t shift, int32_t rounding) {
  if (rounding == KC_ROUND_SINGLE) {
    /* One rounding of x * multiplier * 2^(shift - 31). */
    const int32_t total = 31 - shift;
    const int64_t round = (int64_t)1 << (total - 1);
    return (int32_t)(((int64_t)x * multiplier + round) >> total);
  } else {
    /* A rounding doubling high multiply, then a rounding right shift. */
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return kc_rounding_divide_by_pot(kc_doubling_high_mul(shifted, multiplier),
                                     right);
  }
}

static int8_t kc_output(const kc_options* o, int32_t rounding, const int32_t* table,
                        int32_t channel, int64_t sum) {
  int32_t p[KC_PARAM_COUNT];
  kc_channel(o, table, channel, p);
  /* Wraps like TFLite's int32 accumulator. */
  int32_t acc = (int32_t)(uint32_t)(uint64_t)(
      (int64_t)p[KC_PARAM_MAGNITUDE] * sum + p[KC_PARAM_BIAS]);
  int32_t v = kc_multiply_by_quantized_multiplier(
      acc, p[KC_PARAM_MULTIPLIER], p[KC_PARAM_SHIFT], rounding);
  v += o->output_zero_point;
  if (v < o->act_min) v = o->act_min;
  if (v > o->act_max) v = o->act_max;
  return (int8_t)v;
}

/* ---- the operators ---------------------------------------------------- */

/* Packs each input pixel's channels into words: bit c = x[c] >= threshold. */
static void kc_pack_input(const kc_options* o, const int8_t* x,
                          uint32_t* bits) {
  const int32_t words = kc_words_per_tap(o);
  const int32_t pixels = o->in_h * o->in_w;
  int32_t p, w, c;
  for (p = 0; p < pixels; ++p) {
    const int8_t* px = x + (long)p * o->in_c;
    uint32_t* out = bits + (long)p * words;
    for (w = 0; w < words; ++w) {
      const int32_t first = 32 * w;
      const int32_t count = o->in_c - first < 32 ? o->in_c - first : 32;
      uint32_t word = 0;
      for (c = 0; c < count; ++c) {
        word |= (uint32_t)(px[first + c] >= o->threshold) << c;
      }
      out[w] = word;
    }
  }
}

/* The valid kernel taps of one output position along an axis. */
static void kc_tap_range(int32_t start, int32_t k, int32_t dilation,
                         int32_t in, int32_t* first, int32_t* last) {
  int32_t t = 0;
  while (t < k && start + t * dilation < 0) ++t;
  *first = t;
  t = k;
  while (t > *first && start + (t - 1) * dilation >= in) --t;
  *last = t; /* exclusive */
}

/* sum_i s_i * d(x_i) over the valid taps, binary input: D disagreements,
 * P weights of +1, n elements; with d_plus = -d_minus, P cancels. */
static int64_t kc_binary_sum(const kc_options* o, const uint8_t* row,
                             const uint32_t* bits, int32_t iy0, int32_t ix0,
                             int32_t ky0, int32_t ky1, int32_t kx0,
                             int32_t kx1) {
  const int32_t words = kc_words_per_tap(o);
  /* The popcount of the weights is needed only when P does not cancel. */
  const int symmetric = o->d_plus == -o->d_minus;
  int64_t d = 0, p = 0, n;
  int32_t ky, kx, w;
  for (ky = ky0; ky < ky1; ++ky) {
    const int32_t iy = iy0 + ky * o->dilation_h;
    for (kx = kx0; kx < kx1; ++kx) {
      const int32_t ix = ix0 + kx * o->dilation_w;
      const uint8_t* wt = row + ((long)ky * o->k_w + kx) * words * 4;
      const uint32_t* xt = bits + ((long)iy * o->in_w + ix) * words;
      int32_t disagree = 0, plus = 0;
      if (symmetric) {
        for (w = 0; w < words; ++w) disagree += kc_popcount(xt[w] ^ kc_load_u32(wt + 4 * w));
      } else {
        for (w = 0; w < words; ++w) {
          const uint32_t wv = kc_load_u32(wt + 4 * w);
          disagree += kc_popcount(xt[w] ^ wv);
          plus += kc_popcount(wv);
        }
      }
      d += disagree;
      p += plus;
    }
  }
  n = (int64_t)(ky1 - ky0) * (kx1 - kx0) * o->in_c;
  if (symmetric) return (int64_t)o->d_plus * (n - 2 * d);
  return (int64_t)o->d_plus * (p - d) + (int64_t)o->d_minus * (p - n + d);
}

/* sum_i s_i * (x_i - zp) over the valid taps, int8 input. */
static int64_t kc_int8_sum(const kc_options* o, const uint8_t* row,
                           const int8_t* x, int32_t iy0, int32_t ix0,
                           int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1,
                           int64_t total) {
  const int32_t words = kc_words_per_tap(o);
  int64_t selected = 0, plus = 0, n;
  int32_t ky, kx, w, c;
  for (ky = ky0; ky < ky1; ++ky) {
    const int32_t iy = iy0 + ky * o->dilation_h;
    for (kx = kx0; kx < kx1; ++kx) {
      const int32_t ix = ix0 + kx * o->dilation_w;
      const uint8_t* wt = row + ((long)ky * o->k_w + kx) * words * 4;
      const int8_t* px = x + ((long)iy * o->in_w + ix) * o->in_c;
      int32_t tap_sum = 0;
      for (w = 0; w < words; ++w) {
        const uint32_t wv = kc_load_u32(wt + 4 * w);
        const int32_t first = 32 * w;
        const int32_t count = o->in_c - first < 32 ? o->in_c - first : 32;
        for (c = 0; c < count; ++c) {
          tap_sum += px[first + c] & -(int32_t)((wv >> c) & 1u);
        }
        plus += kc_popcount(wv);
      }
      selected += tap_sum;
    }
  }
  n = (int64_t)(ky1 - ky0) * (kx1 - kx0) * o->in_c;
  /* sum s_i x_i = 2 * selected - total; sum s_i = 2 * plus - n. */
  return 2 * selected - total - (int64_t)o->input_zero_point * (2 * plus - n);
}

static int64_t kc_window_total(const kc_options* o, const int8_t* x,
                               int32_t iy0, int32_t ix0, int32_t ky0,
                               int32_t ky1, int32_t kx0, int32_t kx1) {
  int64_t total = 0;
  int32_t ky, kx, c;
  for (ky = ky0; ky < ky1; ++ky) {
    const int32_t iy = iy0 + ky * o->dilation_h;
    for (kx = kx0; kx < kx1; ++kx) {
      const int32_t ix = ix0 + kx * o->dilation_w;
      const int8_t* px = x + ((long)iy * o->in_w + ix) * o->in_c;
      for (c = 0; c < o->in_c; ++c) total += px[c];
    }
  }
  return total;
}

int kc_binary_run(const kc_options* o, int32_t rounding, int32_t batch,
                  const int8_t* input, const uint8_t* weights,
                  const int32_t* params, int8_t* output, uint32_t* scratch) {
  const int32_t in_size = kc_input_size(o);
  const int32_t out_size = kc_output_size(o);
  const int32_t row_bytes = kc_row_bytes(o);
  const int binary = o->input_mode == KC_INPUT_BINARY;
  int32_t b, oy, ox, oc;
  if (batch < 0 || (batch > 0 && (input == 0 || output == 0))) {
    return KC_BAD_SHAPE;
  }
  if (weights == 0 || params == 0 || (binary && batch > 0 && scratch == 0)) {
    return KC_BAD_SHAPE;
  }
  for (b = 0; b < batch; ++b) {
    const int8_t* x = input + (long)b * in_size;
    int8_t* y = output + (long)b * out_size;
    if (binary) kc_pack_input(o, x, scratch);
    for (oy = 0; oy < o->out_h; ++oy) {
      const int32_t iy0 = oy * o->stride_h - o->pad_top;
      int32_t ky0, ky1;
      kc_tap_range(iy0, o->k_h, o->dilation_h, o->in_h, &ky0, &ky1);
      for (ox = 0; ox < o->out_w; ++ox) {
        const int32_t ix0 = ox * o->stride_w - o->pad_left;
        int32_t kx0, kx1;
        int64_t total = 0;
        kc_tap_range(ix0, o->k_w, o->dilation_w, o->in_w, &kx0, &kx1);
        if (!binary) total = kc_window_total(o, x, iy0, ix0, ky0, ky1, kx0, kx1);
        for (oc = 0; oc < o->out_c; ++oc) {
          const uint8_t* row = weights + (long)oc * row_bytes;
          const int64_t sum =
              binary ? kc_binary_sum(o, row, scratch, iy0, ix0, ky0, ky1, kx0, kx1)
                     : kc_int8_sum(o, row, x, iy0, ix0, ky0, ky1, kx0, kx1,
                                   total);
          y[((long)oy * o->out_w + ox) * o->out_c + oc] = kc_output(o, rounding, params, oc, sum);
        }
      }
    }
  }
  return KC_OK;
}
