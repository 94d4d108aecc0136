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

/* A popcount instruction where the target has one (GCC and clang call a
 * helper function for __builtin_popcount otherwise); else bit twiddling,
 * which compilers also vectorize. */
static int32_t kc_popcount(uint32_t v) {
#if (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__POPCNT__) || defined(__aarch64__) || defined(__ARM_NEON))
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

/* Where each channel parameter is read: a table column (stride: the
 * table's width) or the shared value (stride 0). */
typedef struct kc_params_view {
  const int32_t* base[KC_PARAM_COUNT];
  long stride[KC_PARAM_COUNT];
} kc_params_view;

static void kc_view(const kc_options* o, const int32_t* table, kc_params_view* v) {
  const int32_t columns = kc_table_columns(o);
  int i, k = 0;
  for (i = 0; i < KC_PARAM_COUNT; ++i) {
    if ((o->columns >> i) & 1) {
      v->base[i] = table + k++;
      v->stride[i] = columns;
    } else {
      v->base[i] = &o->shared[i];
      v->stride[i] = 0;
    }
  }
}

#define KC_PARAM(v, i, channel) ((v)->base[i][(long)(channel) * (v)->stride[i]])

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
  int i;
  kc_params_view view;
  if (table == 0 && kc_table_columns(o) > 0) return KC_BAD_CONSTANTS;
  kc_view(o, table, &view);
  for (channel = 0; channel < o->out_c; ++channel) {
    for (i = 0; i < KC_PARAM_COUNT; ++i) p[i] = KC_PARAM(&view, i, channel);
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

/* Which per-channel int32 arrays the scratch holds. */
static int kc_needs_plus(const kc_options* o) {
  return o->input_mode == KC_INPUT_INT8 || o->d_plus != -o->d_minus;
}

static int kc_needs_ones(const kc_options* o) {
  return o->input_mode == KC_INPUT_BINARY && o->d_plus != -o->d_minus;
}

static int32_t kc_bits_words(const kc_options* o) {
  return o->input_mode == KC_INPUT_BINARY ? o->in_h * o->in_w * kc_words_per_tap(o) : 0;
}

int32_t kc_scratch_bytes(const kc_options* o) {
  /* The input's bits (binary input), then the sums per output channel and,
   * where the formula needs them, +1 weight counts. */
  return (kc_bits_words(o) + o->out_c * (1 + kc_needs_plus(o) + kc_needs_ones(o))) * 4;
}

int32_t kc_scratch_bytes_fast(const kc_options* o) {
  return kc_scratch_bytes(o) + 4 * o->out_c * KC_PARAM_COUNT;
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

/* Written with shifts by constants and 32-bit variable shifts only, which
 * compilers vectorize: t / 2^31 rounding toward zero is
 * (t + (t < 0 ? 2^31 - 1 : 0)) >> 31. */
static int32_t kc_doubling_high_mul(int32_t a, int32_t b) {
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int64_t t = ab + (ab >= 0 ? (1 << 30) : (1 - (1 << 30)));
  const int32_t high = (int32_t)((t + (t < 0 ? 0x7FFFFFFF : 0)) >> 31);
  return a == b && a == INT32_MIN ? INT32_MAX : high;
}

static int32_t kc_rounding_divide_by_pot(int32_t x, int32_t exponent) {
  const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static int32_t kc_requantize(int32_t x, int32_t multiplier, int32_t shift,
                             int32_t rounding) {
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

int32_t kc_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                            int32_t shift, int32_t rounding) {
  return kc_requantize(x, multiplier, shift, rounding);
}


/* ---- the operators ---------------------------------------------------- */

/* Packed weights are word-major: word k (k = tap * words + w) of every
 * output channel in turn, so the inner loops run over channels, on
 * contiguous memory, without horizontal sums. */
static uint32_t kc_weight(const uint8_t* weights, int32_t out_c, long k, int32_t c) {
  return kc_load_u32(weights + 4 * (k * out_c + c));
}

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

/* The scratch: input bits, then per-channel int32 arrays: sums, +1
 * weights in the window, +1 weights in all, and the channel parameters. */
typedef struct kc_scratch {
  uint32_t* bits;
  int32_t* acc;
  int32_t* plus;
  int32_t* ones;
  int32_t* param[KC_PARAM_COUNT];
} kc_scratch;


static kc_scratch kc_split(const kc_options* o, uint32_t* scratch, int32_t bytes) {
  kc_scratch s;
  int32_t* next;
  int i;
  s.bits = scratch;
  s.acc = (int32_t*)(scratch + kc_bits_words(o));
  next = s.acc + o->out_c;
  s.plus = kc_needs_plus(o) ? next : 0;
  next += kc_needs_plus(o) ? o->out_c : 0;
  s.ones = kc_needs_ones(o) ? next : 0;
  next += kc_needs_ones(o) ? o->out_c : 0;
  /* With room for them, the channel parameters as contiguous arrays. */
  for (i = 0; i < KC_PARAM_COUNT; ++i) {
    s.param[i] = bytes >= kc_scratch_bytes_fast(o) ? next + (long)i * o->out_c : 0;
  }
  return s;
}

/* acc[c] += disagreements of input word `x` with word k of channel c
 * (and plus[c] += its +1 bits). */
static void kc_xor_word(const uint8_t* restrict weights, int32_t out_c, long k,
                        uint32_t x, int32_t* restrict acc, int32_t* restrict plus) {
  int32_t c;
  if (plus == 0) {
    for (c = 0; c < out_c; ++c) acc[c] += kc_popcount(x ^ kc_weight(weights, out_c, k, c));
    return;
  }
  for (c = 0; c < out_c; ++c) {
    const uint32_t w = kc_weight(weights, out_c, k, c);
    acc[c] += kc_popcount(x ^ w);
    plus[c] += kc_popcount(w);
  }
}

/* +1 weights per channel over words [k0, k1). */
static void kc_count_ones(const uint8_t* restrict weights, int32_t out_c, long k0,
                          long k1, int32_t* restrict ones) {
  long k;
  int32_t c;
  for (k = k0; k < k1; ++k) {
    for (c = 0; c < out_c; ++c) ones[c] += kc_popcount(kc_weight(weights, out_c, k, c));
  }
}

/* Binary input, one output position: acc[c] = disagreements D over the
 * valid taps, plus[c] = +1 weights there (when they matter); returns n. */
static int64_t kc_binary_window(const kc_options* o, const uint8_t* weights,
                                const kc_scratch* s, int32_t iy0, int32_t ix0,
                                int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1,
                                int inside, int symmetric) {
  const int32_t words = kc_words_per_tap(o), out_c = o->out_c;
  int32_t ky, kx, w, c;
  for (c = 0; c < out_c; ++c) s->acc[c] = 0;
  if (!symmetric) {
    for (c = 0; c < out_c; ++c) s->plus[c] = inside ? s->ones[c] : 0;
  }
  for (ky = ky0; ky < ky1; ++ky) {
    const int32_t iy = iy0 + ky * o->dilation_h;
    for (kx = kx0; kx < kx1; ++kx) {
      const int32_t ix = ix0 + kx * o->dilation_w;
      const uint32_t* x = s->bits + ((long)iy * o->in_w + ix) * words;
      const long k = ((long)ky * o->k_w + kx) * words;
      for (w = 0; w < words; ++w) {
        kc_xor_word(weights, o->out_c, k + w, x[w], s->acc,
                    symmetric || inside ? 0 : s->plus);
      }
    }
  }
  return (int64_t)(ky1 - ky0) * (kx1 - kx0) * o->in_c;
}

/* int8 input, one output position: acc[c] = sum of the inputs whose
 * weight is +1, plus[c] = +1 weights, over the valid taps; returns n and
 * the sum of all inputs in *total. */
static int64_t kc_int8_window(const kc_options* o, const uint8_t* weights,
                              const kc_scratch* s, const int8_t* x, int32_t iy0,
                              int32_t ix0, int32_t ky0, int32_t ky1, int32_t kx0,
                              int32_t kx1, int64_t* total) {
  const int32_t words = kc_words_per_tap(o), out_c = o->out_c;
  int32_t ky, kx, ic, c;
  int64_t sum = 0;
  int32_t* acc = s->acc;
  for (c = 0; c < out_c; ++c) s->acc[c] = s->plus[c] = 0;
  for (ky = ky0; ky < ky1; ++ky) {
    const int32_t iy = iy0 + ky * o->dilation_h;
    for (kx = kx0; kx < kx1; ++kx) {
      const int32_t ix = ix0 + kx * o->dilation_w;
      const int8_t* px = x + ((long)iy * o->in_w + ix) * o->in_c;
      const long k = ((long)ky * o->k_w + kx) * words;
      for (ic = 0; ic < o->in_c; ++ic) {
        const int32_t value = px[ic];
        const long word = k + ic / 32;
        const int32_t bit = ic % 32;
        sum += value;
        for (c = 0; c < out_c; ++c) {
          acc[c] += value & -(int32_t)((kc_weight(weights, out_c, word, c) >> bit) & 1u);
        }
      }
      kc_count_ones(weights, out_c, k, k + words, s->plus);
    }
  }
  *total = sum;
  return (int64_t)(ky1 - ky0) * (kx1 - kx0) * o->in_c;
}

/* The outputs of one position from the sums (see kc_binary.h): TFLite's
 * int32 accumulator (wrapping), requantization and clamp; one loop per
 * rounding, so compilers vectorize it. */
static void kc_write_outputs(const kc_options* o, int32_t rounding, const kc_scratch* s,
                             const kc_params_view* view, int64_t n, int64_t total,
                             int8_t* out) {
  /* Locals, not o->...: the loops store through pointers, and compilers
   * vectorize only loops whose bounds and constants cannot change. */
  const int32_t out_c = o->out_c;
  const int binary = o->input_mode == KC_INPUT_BINARY;
  const int symmetric = o->d_plus == -o->d_minus;
  const int64_t d_plus = o->d_plus, d_minus = o->d_minus;
  const int64_t zero_point = o->input_zero_point;
  const int32_t out_zero = o->output_zero_point, low = o->act_min, high = o->act_max;
  int32_t* acc = s->acc;
  const int32_t* plus = s->plus;
  int32_t c;
  for (c = 0; c < out_c; ++c) {
    const int64_t a = acc[c];
    /* int8 input: sum s_i x_i = 2 * selected - total and sum s_i = 2P - n;
     * binary input: see kc_binary.h (with d_plus = -d_minus, P cancels). */
    const int64_t sum = !binary  ? 2 * a - total - zero_point * (2 * (int64_t)plus[c] - n)
                        : symmetric ? d_plus * (n - 2 * a)
                                    : d_plus * (plus[c] - a) + d_minus * (plus[c] - n + a);
    /* TFLite's int32 accumulator wraps: only the sum mod 2^32 matters. */
    acc[c] = (int32_t)(uint32_t)(uint64_t)sum;
  }
  if (s->param[0] != 0) {
    /* The parameters as contiguous arrays (the caller gave the room): the
     * loops vectorize. */
    const int32_t* magnitude = s->param[KC_PARAM_MAGNITUDE];
    const int32_t* bias = s->param[KC_PARAM_BIAS];
    const int32_t* multiplier = s->param[KC_PARAM_MULTIPLIER];
    const int32_t* shift = s->param[KC_PARAM_SHIFT];
    for (c = 0; c < out_c; ++c) {
      acc[c] = (int32_t)(uint32_t)(uint64_t)((int64_t)magnitude[c] * acc[c] + bias[c]);
    }
    if (rounding == KC_ROUND_SINGLE && !((o->columns >> KC_PARAM_SHIFT) & 1)) {
      /* One shift for every channel: a loop-invariant shift count. */
      const int32_t total_shift = 31 - o->shared[KC_PARAM_SHIFT];
      const int64_t round = (int64_t)1 << (total_shift - 1);
      for (c = 0; c < out_c; ++c) {
        int32_t v = (int32_t)(((int64_t)acc[c] * multiplier[c] + round) >> total_shift) +
                    out_zero;
        v = v < low ? low : v;
        out[c] = (int8_t)(v > high ? high : v);
      }
      return;
    }
    for (c = 0; c < out_c; ++c) {
      int32_t v = kc_requantize(acc[c], multiplier[c], shift[c], rounding) + out_zero;
      v = v < low ? low : v;
      out[c] = (int8_t)(v > high ? high : v);
    }
    return;
  }
  /* No room: read the parameters from the table (microcontrollers). */
  for (c = 0; c < out_c; ++c) {
    const int32_t a = (int32_t)(uint32_t)(uint64_t)(
        (int64_t)KC_PARAM(view, KC_PARAM_MAGNITUDE, c) * acc[c] +
        KC_PARAM(view, KC_PARAM_BIAS, c));
    int32_t v = kc_requantize(a, KC_PARAM(view, KC_PARAM_MULTIPLIER, c),
                              KC_PARAM(view, KC_PARAM_SHIFT, c), rounding) + out_zero;
    v = v < low ? low : v;
    out[c] = (int8_t)(v > high ? high : v);
  }
}

int kc_binary_run(const kc_options* o, int32_t rounding, int32_t batch,
                  const int8_t* input, const uint8_t* weights,
                  const int32_t* params, int8_t* output, uint32_t* scratch,
                  int32_t scratch_bytes) {
  const int32_t in_size = kc_input_size(o);
  const int32_t out_size = kc_output_size(o);
  const int32_t words = kc_words_per_tap(o);
  const int binary = o->input_mode == KC_INPUT_BINARY;
  const int symmetric = o->d_plus == -o->d_minus;
  kc_params_view view;
  kc_scratch s;
  int32_t b, oy, ox, oc;
  if (batch < 0 || (batch > 0 && (input == 0 || output == 0))) return KC_BAD_SHAPE;
  if (weights == 0 || params == 0 || scratch == 0) return KC_BAD_SHAPE;
  if (scratch_bytes < kc_scratch_bytes(o)) return KC_BAD_SHAPE;
  kc_view(o, params, &view);
  s = kc_split(o, scratch, scratch_bytes);
  if (s.param[0] != 0) {
    for (oc = 0; oc < o->out_c; ++oc) {
      int i;
      for (i = 0; i < KC_PARAM_COUNT; ++i) s.param[i][oc] = KC_PARAM(&view, i, oc);
    }
  }
  if (binary && !symmetric) {
    for (oc = 0; oc < o->out_c; ++oc) s.ones[oc] = 0;
    kc_count_ones(weights, o->out_c, 0, (long)o->k_h * o->k_w * words, s.ones);
  }
  for (b = 0; b < batch; ++b) {
    const int8_t* x = input + (long)b * in_size;
    int8_t* y = output + (long)b * out_size;
    if (binary) kc_pack_input(o, x, s.bits);
    for (oy = 0; oy < o->out_h; ++oy) {
      const int32_t iy0 = oy * o->stride_h - o->pad_top;
      int32_t ky0, ky1;
      kc_tap_range(iy0, o->k_h, o->dilation_h, o->in_h, &ky0, &ky1);
      for (ox = 0; ox < o->out_w; ++ox) {
        const int32_t ix0 = ox * o->stride_w - o->pad_left;
        int8_t* out = y + ((long)oy * o->out_w + ox) * o->out_c;
        int32_t kx0, kx1;
        int64_t n, total = 0;
        int inside;
        kc_tap_range(ix0, o->k_w, o->dilation_w, o->in_w, &kx0, &kx1);
        inside = ky0 == 0 && ky1 == o->k_h && kx0 == 0 && kx1 == o->k_w;
        if (binary) {
          n = kc_binary_window(o, weights, &s, iy0, ix0, ky0, ky1, kx0, kx1, inside,
                               symmetric);
        } else {
          n = kc_int8_window(o, weights, &s, x, iy0, ix0, ky0, ky1, kx0, kx1, &total);
        }
        kc_write_outputs(o, rounding, &s, &view, n, total, out);
      }
    }
  }
  return KC_OK;
}
