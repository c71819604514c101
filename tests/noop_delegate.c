/* A TFLite external delegate that takes no operator: the graph stays on LiteRT's CPU kernels.
   Or, with KERAS_RESNET_TEST_DELEGATE_FAILS set, one whose creation fails with a message. */
#include <stdint.h>
#include <stdlib.h>

typedef struct TfLiteDelegate {
  void* data_;
  int (*Prepare)(void* context, struct TfLiteDelegate* delegate);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
} TfLiteDelegate;

static int prepare_nothing(void* context, TfLiteDelegate* delegate) { return 0; /* kTfLiteOk */ }

TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t count, void (*report_error)(const char*)) {
  if (getenv("KERAS_RESNET_TEST_DELEGATE_FAILS")) {
    report_error("no device found");
    return NULL;
  }
  TfLiteDelegate* delegate = calloc(1, sizeof(TfLiteDelegate));
  delegate->Prepare = prepare_nothing;
  return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) { free(delegate); }
