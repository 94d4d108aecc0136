/* The binary operators in the pip `tflite-micro` wheel's Python interpreter
 * (`custom_op_registerers=["KcRegisterBinaryOps"]`), for checking exported
 * files on the host. Firmware uses kc_tflm_ops.h instead.
 *
 * This is written for the ABI of the pinned wheel (see
 * keras_compress/custom_ops/_runtimes.py): its kernels reach the
 * interpreter through exported functions (MicroContextGetEvalTensor, ...),
 * whose addresses Python hands over with KcSetMicroApi; its nodes and
 * TFLMRegistration are laid out as in kc_tflite_abi.h. The wheel looks the
 * registerer up by name and calls it with its PythonOpsResolver, a
 * MicroMutableOpResolver<200> whose AddCustom is an inline C++ template:
 * KcRegisterBinaryOps writes the two registrations the way AddCustom does,
 * into that resolver's layout (the vtable pointer, TFLMRegistration
 * registrations_[200], unsigned registrations_len_), after checking that
 * the layout holds what the wheel puts there.
 */
#include <string.h>

#include "kc_binary.h"
#include "kc_tflite_abi.h"

#define KC_EXPORT __attribute__((visibility("default")))
#define KC_RESOLVER_CAPACITY 200
#define KC_BUILTIN_LIMIT 1024

typedef struct kc_micro_api {
  void* (*allocate_persistent_buffer)(void* context, size_t bytes);
  TfLiteStatus (*request_scratch_buffer)(void* context, size_t bytes, int* index);
  void* (*get_scratch_buffer)(void* context, int index);
  TfLiteEvalTensor* (*get_eval_tensor)(const void* context, int index);
  void (*report_error)(void* context, const char* format, ...);
} kc_micro_api;

static kc_micro_api kc_api;

typedef struct kc_micro_data {
  kc_options options;
  int status;
  int scratch_index;
  int32_t batch;
} kc_micro_data;

KC_EXPORT int KcSetMicroApi(void* allocate, void* request, void* get_scratch,
                            void* get_eval_tensor, void* report_error) {
  if (!allocate || !request || !get_scratch || !get_eval_tensor || !report_error) {
    return 0;
  }
  kc_api.report_error = (void (*)(void*, const char*, ...))report_error;
  kc_api.allocate_persistent_buffer = (void* (*)(void*, size_t))allocate;
  kc_api.request_scratch_buffer = (TfLiteStatus (*)(void*, size_t, int*))request;
  kc_api.get_scratch_buffer = (void* (*)(void*, int))get_scratch;
  kc_api.get_eval_tensor = (TfLiteEvalTensor* (*)(const void*, int))get_eval_tensor;
  return 1;
}

static void* kc_init(struct TfLiteContext* context, const char* buffer,
                     size_t length) {
  kc_micro_data* data =
      (kc_micro_data*)kc_api.allocate_persistent_buffer(context, sizeof(kc_micro_data));
  if (data == 0) return 0;
  data->scratch_index = -1;
  data->batch = 0;
  data->status = length == KC_OPTIONS_BYTES
                     ? kc_parse_options((const uint8_t*)buffer, (int32_t)length,
                                        &data->options)
                     : KC_BAD_OPTIONS;
  return data;
}

static kc_tensor_info kc_info(const TfLiteEvalTensor* t) {
  kc_tensor_info info;
  int i;
  info.type = t == 0 ? -1 : t->type;
  info.elements = t == 0 || t->dims == 0 ? -2 : 1;
  for (i = 0; info.elements > 0 && i < t->dims->size; ++i) {
    info.elements = t->dims->data[i] < 0 ? -2 : info.elements * t->dims->data[i];
  }
  return info;
}

static TfLiteStatus kc_fail(struct TfLiteContext* context, int status) {
  kc_api.report_error(context, "keras-compress binary operator: %s",
                      kc_status_message(status));
  return kTfLiteError;
}

static TfLiteStatus kc_prepare(struct TfLiteContext* context,
                               TfLiteMicroNode* node, int32_t kind) {
  kc_micro_data* data = (kc_micro_data*)node->user_data;
  kc_tensor_info infos[4];
  int i;
  if (data == 0) return kTfLiteError;
  if (data->status == KC_OK && data->options.kind != kind) data->status = KC_BAD_OPTIONS;
  if (data->status != KC_OK) return kc_fail(context, data->status);
  if (node->inputs == 0 || node->outputs == 0 || node->inputs->size != 3 ||
      node->outputs->size != 1) {
    return kc_fail(context, KC_BAD_SHAPE);
  }
  for (i = 0; i < 3; ++i) {
    infos[i] = kc_info(kc_api.get_eval_tensor(context, node->inputs->data[i]));
  }
  infos[3] = kc_info(kc_api.get_eval_tensor(context, node->outputs->data[0]));
  data->status = kc_check_tensors(&data->options, &infos[0], &infos[1],
                                  &infos[2], &infos[3], &data->batch);
  if (data->status == KC_OK) {
    data->status = kc_check_table(
        &data->options,
        (const int32_t*)kc_api.get_eval_tensor(context, node->inputs->data[2])->data);
  }
  if (data->status != KC_OK) return kc_fail(context, data->status);
  if (kc_scratch_bytes(&data->options) > 0) {
    return kc_api.request_scratch_buffer(
        context, (size_t)kc_scratch_bytes(&data->options), &data->scratch_index);
  }
  return kTfLiteOk;
}

static TfLiteStatus kc_prepare_fc(struct TfLiteContext* context, TfLiteMicroNode* node) {
  return kc_prepare(context, node, KC_FC);
}

static TfLiteStatus kc_prepare_conv2d(struct TfLiteContext* context,
                                      TfLiteMicroNode* node) {
  return kc_prepare(context, node, KC_CONV2D);
}

static TfLiteStatus kc_invoke(struct TfLiteContext* context, TfLiteMicroNode* node) {
  const kc_micro_data* data = (const kc_micro_data*)node->user_data;
  const TfLiteEvalTensor* t[4];
  uint32_t* scratch = 0;
  int i;
  for (i = 0; i < 3; ++i) t[i] = kc_api.get_eval_tensor(context, node->inputs->data[i]);
  t[3] = kc_api.get_eval_tensor(context, node->outputs->data[0]);
  if (data->scratch_index >= 0) {
    scratch = (uint32_t*)kc_api.get_scratch_buffer(context, data->scratch_index);
  }
  /* The wheel's builtin int8 operators round twice (measured). */
  return kc_binary_run(&data->options, KC_ROUND_DOUBLE, data->batch,
                       (const int8_t*)t[0]->data,
                       (const uint8_t*)t[1]->data, (const int32_t*)t[2]->data,
                       (int8_t*)t[3]->data, scratch,
                       kc_scratch_bytes(&data->options)) == KC_OK
             ? kTfLiteOk
             : kTfLiteError;
}

typedef struct KcPythonResolver {
  void* vtable;
  KcMicroRegistration registrations[KC_RESOLVER_CAPACITY];
  unsigned int registrations_len;
} KcPythonResolver;

static int kc_layout_ok(const KcPythonResolver* resolver) {
  unsigned int i;
  if (resolver->vtable == 0 || resolver->registrations_len == 0 ||
      resolver->registrations_len > KC_RESOLVER_CAPACITY - 2) {
    return 0;
  }
  for (i = 0; i < resolver->registrations_len; ++i) {
    const KcMicroRegistration* r = &resolver->registrations[i];
    if (r->invoke == 0 || r->builtin_code < 0 || r->builtin_code > KC_BUILTIN_LIMIT) {
      return 0;
    }
    if (r->builtin_code == kc_builtin_custom && r->custom_name != 0 &&
        (strcmp(r->custom_name, "KC_BINARY_FC") == 0 ||
         strcmp(r->custom_name, "KC_BINARY_CONV2D") == 0)) {
      return 0; /* registered already */
    }
  }
  return 1;
}

static void kc_add(KcPythonResolver* resolver, const char* name,
                   TfLiteStatus (*prepare)(struct TfLiteContext*, TfLiteMicroNode*)) {
  KcMicroRegistration* r = &resolver->registrations[resolver->registrations_len];
  memset(r, 0, sizeof(*r));
  r->init = kc_init;
  r->prepare = prepare;
  r->invoke = kc_invoke;
  r->builtin_code = kc_builtin_custom;
  r->custom_name = name;
  resolver->registrations_len += 1;
}

KC_EXPORT _Bool KcRegisterBinaryOps(void* resolver) {
  KcPythonResolver* r = (KcPythonResolver*)resolver;
  if (r == 0 || kc_api.get_eval_tensor == 0 || !kc_layout_ok(r)) return 0;
  kc_add(r, "KC_BINARY_FC", kc_prepare_fc);
  kc_add(r, "KC_BINARY_CONV2D", kc_prepare_conv2d);
  return 1;
}
