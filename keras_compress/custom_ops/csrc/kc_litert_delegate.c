/* A LiteRT external delegate that runs the keras-compress binary operators.
 *
 * LiteRT loads a model whose KC_BINARY_FC / KC_BINARY_CONV2D custom
 * operators it cannot resolve; this delegate (load it with
 * `ai_edge_litert.interpreter.load_delegate(path)`, or
 * TfLiteInterpreterOptionsAddDelegate in an app) claims each of them as a
 * delegate node of its own and runs it with the C core (kc_binary.c). Every
 * other operator stays with LiteRT (XNNPACK or its builtin kernels).
 */
#include <stdlib.h>
#include <string.h>

#include "kc_binary.h"
#include "kc_tflite_abi.h"

#if defined(_WIN32)
#define KC_EXPORT __declspec(dllexport)
#else
#define KC_EXPORT __attribute__((visibility("default")))
#endif

typedef struct kc_kernel {
  kc_options options;
  int kind;
  int input, weights, params, output;
  int32_t batch;
  uint32_t* scratch;
  size_t scratch_bytes;
} kc_kernel;

static int kc_kind_of(const TfLiteRegistration* r) {
  if (r == NULL || r->builtin_code != kc_builtin_custom || r->custom_name == NULL)
    return 0;
  if (strcmp(r->custom_name, "KC_BINARY_FC") == 0) return KC_FC;
  if (strcmp(r->custom_name, "KC_BINARY_CONV2D") == 0) return KC_CONV2D;
  return 0;
}

static void* kc_kernel_init(TfLiteContext* context, const char* buffer,
                            size_t length) {
  const TfLiteDelegateParams* params = (const TfLiteDelegateParams*)buffer;
  TfLiteNode* node = NULL;
  TfLiteRegistration* registration = NULL;
  kc_kernel* kernel;
  (void)length;
  if (params->nodes_to_replace->size != 1 ||
      context->GetNodeAndRegistration(context, params->nodes_to_replace->data[0],
                                      &node, &registration) != kTfLiteOk) {
    return NULL;
  }
  kernel = (kc_kernel*)calloc(1, sizeof(*kernel));
  if (kernel == NULL) return NULL;
  kernel->kind = kc_kind_of(registration);
  if (node->inputs->size != 3 || node->outputs->size != 1 ||
      node->custom_initial_data_size != KC_OPTIONS_BYTES ||
      kc_parse_options((const uint8_t*)node->custom_initial_data,
                       node->custom_initial_data_size,
                       &kernel->options) != KC_OK ||
      kernel->options.kind != kernel->kind) {
    kernel->kind = 0; /* prepare reports it */
    return kernel;
  }
  kernel->input = node->inputs->data[0];
  kernel->weights = node->inputs->data[1];
  kernel->params = node->inputs->data[2];
  kernel->output = node->outputs->data[0];
  return kernel;
}

static void kc_kernel_free(TfLiteContext* context, void* buffer) {
  kc_kernel* kernel = (kc_kernel*)buffer;
  (void)context;
  if (kernel != NULL) {
    free(kernel->scratch);
    free(kernel);
  }
}

static int64_t kc_elements(const TfLiteTensor* t) {
  int64_t n = 1;
  int i;
  if (t->dims == NULL) return 0;
  for (i = 0; i < t->dims->size; ++i) {
    if (t->dims->data[i] < 0) return 0;
    n *= t->dims->data[i];
  }
  return n;
}

static kc_tensor_info kc_info(const TfLiteTensor* t, int check_size) {
  kc_tensor_info info;
  info.type = t->type;
  info.elements = check_size ? kc_elements(t) : -1;
  /* A constant without data counts as empty. */
  if (t->data == NULL && t->allocation_type == 1 /* kTfLiteMmapRo */) info.elements = 0;
  return info;
}

static TfLiteStatus kc_fail(TfLiteContext* context, const char* message) {
  context->ReportError(context, "keras-compress binary operator: %s", message);
  return kTfLiteError;
}

/* A new batch size: the output keeps its other dimensions. */
static TfLiteStatus kc_resize_output(TfLiteContext* context, TfLiteTensor* out,
                                     int32_t batch) {
  TfLiteIntArray* dims;
  int i;
  if (out->dims == NULL || out->dims->size < 1) return kc_fail(context, "the output has no shape");
  dims = (TfLiteIntArray*)malloc(sizeof(TfLiteIntArray) +
                                 sizeof(int) * (size_t)out->dims->size);
  if (dims == NULL) return kc_fail(context, "out of memory");
  dims->size = out->dims->size;
  for (i = 0; i < dims->size; ++i) dims->data[i] = out->dims->data[i];
  dims->data[0] = batch;
  return context->ResizeTensor(context, out, dims);
}

static TfLiteStatus kc_kernel_prepare(TfLiteContext* context, TfLiteNode* node) {
  kc_kernel* kernel = (kc_kernel*)node->user_data;
  TfLiteTensor *in, *weights, *params, *out;
  kc_tensor_info infos[4];
  int32_t batch = 0;
  int status;
  size_t need;
  if (kernel == NULL) return kc_fail(context, "out of memory");
  if (kernel->kind == 0) return kc_fail(context, kc_status_message(KC_BAD_OPTIONS));
  in = &context->tensors[kernel->input];
  weights = &context->tensors[kernel->weights];
  params = &context->tensors[kernel->params];
  out = &context->tensors[kernel->output];
  infos[0] = kc_info(in, 1);
  infos[1] = kc_info(weights, 1);
  infos[2] = kc_info(params, 1);
  infos[3] = kc_info(out, 0);
  status = kc_check_tensors(&kernel->options, &infos[0], &infos[1], &infos[2],
                            &infos[3], &batch);
  if (status == KC_OK) status = kc_check_table(&kernel->options, (const int32_t*)params->data);
  if (status != KC_OK) return kc_fail(context, kc_status_message(status));
  if (kc_elements(out) != (int64_t)batch * kc_output_size(&kernel->options)) {
    if (out->dims == NULL || out->dims->size < 1 || out->dims->data[0] <= 0 ||
        kc_elements(out) / out->dims->data[0] != kc_output_size(&kernel->options)) {
      return kc_fail(context, kc_status_message(KC_BAD_OUTPUT));
    }
    if (kc_resize_output(context, out, batch) != kTfLiteOk) {
      return kc_fail(context, "could not resize the output");
    }
  }
  need = (size_t)kc_scratch_bytes_fast(&kernel->options);
  if (need > kernel->scratch_bytes) {
    uint32_t* scratch = (uint32_t*)realloc(kernel->scratch, need);
    if (scratch == NULL) return kc_fail(context, "out of memory");
    kernel->scratch = scratch;
    kernel->scratch_bytes = need;
  }
  kernel->batch = batch;
  return kTfLiteOk;
}

static TfLiteStatus kc_kernel_invoke(TfLiteContext* context, TfLiteNode* node) {
  kc_kernel* kernel = (kc_kernel*)node->user_data;
  /* LiteRT 2.3's reference int8 FULLY_CONNECTED rounds once, its CONV_2D
   * twice (measured): round as the builtin operator would. */
  const int32_t rounding =
      kernel->options.kind == KC_FC ? KC_ROUND_SINGLE : KC_ROUND_DOUBLE;
  int status = kc_binary_run(
      &kernel->options, rounding, kernel->batch,
      (const int8_t*)context->tensors[kernel->input].data,
      (const uint8_t*)context->tensors[kernel->weights].data,
      (const int32_t*)context->tensors[kernel->params].data,
      (int8_t*)context->tensors[kernel->output].data, kernel->scratch,
      (int32_t)kernel->scratch_bytes);
  if (status != KC_OK) return kc_fail(context, kc_status_message(status));
  return kTfLiteOk;
}

static TfLiteStatus kc_delegate_prepare(TfLiteContext* context,
                                        TfLiteDelegate* delegate) {
  TfLiteIntArray* plan = NULL;
  TfLiteRegistration kernel_registration;
  int* ours;
  int count = 0, i;
  TfLiteStatus status = kTfLiteOk;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk) return kTfLiteError;
  ours = (int*)malloc(sizeof(int) * (size_t)(plan->size > 0 ? plan->size : 1));
  if (ours == NULL) return kTfLiteError;
  for (i = 0; i < plan->size; ++i) {
    TfLiteNode* node = NULL;
    TfLiteRegistration* registration = NULL;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node,
                                        &registration) == kTfLiteOk &&
        kc_kind_of(registration) != 0) {
      ours[count++] = plan->data[i];
    }
  }
  memset(&kernel_registration, 0, sizeof(kernel_registration));
  kernel_registration.init = kc_kernel_init;
  kernel_registration.free = kc_kernel_free;
  kernel_registration.prepare = kc_kernel_prepare;
  kernel_registration.invoke = kc_kernel_invoke;
  kernel_registration.custom_name = "KerasCompressBinary";
  kernel_registration.version = 1;
  /* One delegate node per operator: every tensor stays a LiteRT tensor. */
  for (i = 0; i < count && status == kTfLiteOk; ++i) {
    struct {
      int size;
      int data[1];
    } one;
    one.size = 1;
    one.data[0] = ours[i];
    status = context->ReplaceNodeSubsetsWithDelegateKernels(
        context, kernel_registration, (const TfLiteIntArray*)(const void*)&one,
        delegate);
  }
  free(ours);
  return status;
}

KC_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(
    char** keys, char** values, size_t count, void (*report_error)(const char*)) {
  TfLiteDelegate* delegate = (TfLiteDelegate*)calloc(1, sizeof(TfLiteDelegate));
  (void)keys;
  (void)values;
  (void)count;
  if (delegate == NULL) {
    if (report_error != NULL) report_error("keras-compress delegate: out of memory");
    return NULL;
  }
  delegate->Prepare = kc_delegate_prepare;
  /* kTfLiteDelegateFlagsAllowDynamicTensors: the kernels resize their
   * output for a new batch size, and LiteRT must not prepare the graph
   * (whose custom operators only this delegate can run) before it. */
  delegate->flags = 1;
  return delegate;
}

KC_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  free(delegate);
}
