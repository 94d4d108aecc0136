/* keras-compress binary operators: the portable C99 core.
 *
 * Two operators, KC_BINARY_FC and KC_BINARY_CONV2D, compute what TFLite's
 * int8 FULLY_CONNECTED and CONV_2D compute when every output channel's
 * weights are +-m (binary layers, BinaryConnect / BWN / XNOR-Net), with the
 * weights stored as bits (1 = +m), 32 to a little-endian word. The
 * arithmetic is TFLite's reference int8 arithmetic, so the outputs are
 * bit-identical to the builtin operators on the same quantized model. The
 * requantization rounds the way the runtime's builtin operator does, which
 * the caller says (kc_rounding): twice (a rounding doubling high multiply,
 * then a rounding shift: TFLite's default, TFLite Micro, LiteRT's reference
 * CONV_2D) or once (TFLITE_SINGLE_ROUNDING builds; LiteRT 2.3's reference
 * FULLY_CONNECTED).
 *
 * The core allocates nothing and needs nothing beyond <stdint.h>: callers
 * pass a scratch buffer of kc_scratch_bytes() bytes (input bits), a
 * parsed kc_options (from the operator's custom options) and the tensors.
 *
 * Input modes:
 *   KC_INPUT_INT8:   the input is any int8 tensor (zero point
 *                    input_zero_point); acc = sum_i s_i * (x_i - zp).
 *   KC_INPUT_BINARY: the input is binarized inside the operator: bit_i =
 *                    (x_i >= threshold), standing for the int8 values
 *                    d_plus / d_minus (relative to the zero point) that the
 *                    builtin graph fed its operator; the sums are XOR and
 *                    popcount over 32-bit words.
 *
 * Operator tensors: 0 input (int8), 1 packed weights (uint8, k_h * k_w *
 * kc_words_per_tap() rows of out_c little-endian 32-bit words: row k =
 * tap * words + w holds, for every output channel, the bits of input
 * channels 32 w .. 32 w + 31 at that kernel tap, bit set for +1, unused
 * bits 0), 2 channel table (int32, out_c x kc_table_columns():
 * the per-channel values of the columns set in options.columns, in
 * kc_param order; a column not set takes the options' shared value),
 * output 0 (int8).
 */
#ifndef KC_BINARY_H_
#define KC_BINARY_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KC_OPTIONS_MAGIC 0x3142434Bu /* "KCB1", little-endian */
#define KC_OPTIONS_FIELDS 28
#define KC_OPTIONS_BYTES (4 * (KC_OPTIONS_FIELDS + 1))

enum kc_status {
  KC_OK = 0,
  KC_BAD_OPTIONS = 1,  /* custom options: size, magic or values */
  KC_BAD_SHAPE = 2,    /* kc_binary_run: null pointers or batch < 0 */
  KC_BAD_TYPES = 3,    /* tensor types */
  KC_BAD_CONSTANTS = 4, /* weights or channel parameters of the wrong size */
  KC_BAD_INPUT = 5,    /* input size not a multiple of one sample */
  KC_BAD_OUTPUT = 6    /* output size not batch samples */
};
/* Tensor types, as TfLiteType numbers them. */
enum kc_type { KC_TYPE_INT32 = 2, KC_TYPE_UINT8 = 3, KC_TYPE_INT8 = 9 };
/* How the requantization rounds (see above). */
enum kc_rounding { KC_ROUND_DOUBLE = 0, KC_ROUND_SINGLE = 1 };
enum kc_kind { KC_FC = 1, KC_CONV2D = 2 };
enum kc_input_mode { KC_INPUT_INT8 = 0, KC_INPUT_BINARY = 1 };

/* The channel parameters (bit i of options.columns: column i is in the
 * table; otherwise every channel takes the options' shared value). */
enum kc_param {
  KC_PARAM_MAGNITUDE = 0,  /* m: the channel's weights are +-m (int8 units) */
  KC_PARAM_BIAS = 1,       /* int32 bias, in input scale * weight scale */
  KC_PARAM_MULTIPLIER = 2, /* TFLite quantized multiplier (Q31) */
  KC_PARAM_SHIFT = 3,      /* TFLite shift: > 0 left, < 0 right */
  KC_PARAM_COUNT = 4
};

typedef struct kc_options {
  int32_t kind;              /* KC_FC or KC_CONV2D */
  int32_t input_mode;        /* KC_INPUT_INT8 or KC_INPUT_BINARY */
  int32_t input_zero_point;  /* KC_INPUT_INT8 */
  int32_t threshold;         /* KC_INPUT_BINARY: bit = x >= threshold */
  int32_t d_plus, d_minus;   /* KC_INPUT_BINARY: values of bit 1 / bit 0 */
  int32_t output_zero_point;
  int32_t act_min, act_max;  /* output clamp (int8, fused activation) */
  int32_t in_h, in_w, in_c;  /* FC: in_h = in_w = 1, in_c = features */
  int32_t out_h, out_w, out_c;
  int32_t k_h, k_w;          /* FC: 1, 1 */
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  int32_t pad_top, pad_left; /* zero-point padding before the first row/col */
  int32_t columns;           /* bit i: kc_param i is a table column */
  int32_t shared[KC_PARAM_COUNT]; /* values of the other parameters */
} kc_options;

/* Parses and checks custom options (KC_OPTIONS_BYTES bytes: the magic,
 * then the fields of kc_options in order, int32 little-endian). Returns
 * KC_OK, or KC_BAD_OPTIONS for a wrong size, magic, or an inconsistent
 * value (shapes that do not match the kernel, stride and padding,
 * unknown kind or mode, an empty clamp range, ...). */
int kc_parse_options(const uint8_t* data, int32_t size, kc_options* out);

/* Writes options into KC_OPTIONS_BYTES bytes at `data`. */
void kc_write_options(const kc_options* options, uint8_t* data);

/* 32-bit words of packed bits per kernel tap: ceil(in_c / 32). */
int32_t kc_words_per_tap(const kc_options* o);
/* Packed weight bytes per output channel: k_h * k_w * words * 4. */
int32_t kc_row_bytes(const kc_options* o);
/* Columns of the channel table (the bits set in options.columns). */
int32_t kc_table_columns(const kc_options* o);
/* Input elements per sample (in_h * in_w * in_c) and output elements. */
int32_t kc_input_size(const kc_options* o);
int32_t kc_output_size(const kc_options* o);
/* Scratch bytes: one sample's packed input bits (KC_INPUT_BINARY) and one
 * to three int32 per output channel (the sums, and +1 weight counts where
 * the formula needs them). The samples of a batch reuse it. */
int32_t kc_scratch_bytes(const kc_options* o);
/* kc_scratch_bytes plus room to expand the channel parameters into
 * contiguous arrays (4 int32 per channel): faster where the compiler
 * vectorizes (phones, hosts); microcontrollers pass the minimum. */
int32_t kc_scratch_bytes_fast(const kc_options* o);

/* What a runtime knows of a tensor: its TfLiteType and element count. */
typedef struct kc_tensor_info {
  int32_t type;
  int64_t elements; /* -1: not checked (an output about to be resized) */
} kc_tensor_info;

/* Checks the operator's tensors against its options (int8 input and
 * output, uint8 or int8 packed weights, int32 channel table, sizes);
 * on KC_OK, *batch is the number of samples in the input. */
int kc_check_tensors(const kc_options* o, const kc_tensor_info* input,
                     const kc_tensor_info* weights,
                     const kc_tensor_info* params,
                     const kc_tensor_info* output, int32_t* batch);

/* Checks the channel table's values (magnitudes in [0, 255], multipliers
 * >= 0, shifts in [-31, 30]): KC_OK or KC_BAD_CONSTANTS. */
int kc_check_table(const kc_options* o, const int32_t* table);

/* A sentence for a status, for the runtimes' error reports. */
const char* kc_status_message(int status);

/* Runs the operator on `batch` samples, requantizing with `rounding`
 * (a kc_rounding). input: batch * kc_input_size int8;
 * weights: out_c * kc_row_bytes bytes; params: the channel table, out_c *
 * kc_table_columns int32; output: batch * kc_output_size int8; scratch:
 * scratch_bytes >= kc_scratch_bytes (or kc_scratch_bytes_fast), 4-byte
 * aligned. */
int kc_binary_run(const kc_options* o, int32_t rounding, int32_t batch,
                  const int8_t* input, const uint8_t* weights,
                  const int32_t* params, int8_t* output, uint32_t* scratch,
                  int32_t scratch_bytes);

/* TFLite's fixed-point requantization, rounding as `rounding` says. */
int32_t kc_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                            int32_t shift, int32_t rounding);

#ifdef __cplusplus
}
#endif

#endif /* KC_BINARY_H_ */
