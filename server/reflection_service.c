/* ServerReflectionInfo: a bidirectional stream answering one response per
 * request, in order. The next request is read only after the response to the
 * previous one has been sent, so a call never queues more than one response. */
#include "reflection_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reflection_v1alpha.pb-c.h"
#include "rpc_server.h"

/* gRPC status codes as reflection's ErrorResponse carries them. */
#define REFL_INVALID_ARGUMENT 3
#define REFL_NOT_FOUND 5

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse refl_response;

static void send_files(fm_rpc_call *call, refl_response *resp, const fm_descriptor_index *idx, int file)
{
  size_t n_files = fm_descriptor_index_file_count(idx);
  size_t order[64];
  size_t n = fm_descriptor_index_closure(idx, (size_t)file, order, n_files < 64 ? n_files : 64);
  ProtobufCBinaryData blobs[64];
  for (size_t i = 0; i < n; i++) {
    size_t len = 0;
    const uint8_t *b = fm_descriptor_index_file_bytes(idx, order[i], &len);
    blobs[i].data = (uint8_t *)(uintptr_t)b;
    blobs[i].len = len;
  }
  Grpc__Reflection__V1alpha__FileDescriptorResponse fdr = GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
  fdr.n_file_descriptor_proto = n;
  fdr.file_descriptor_proto = blobs;
  resp->message_response_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  resp->file_descriptor_response = &fdr;
  fm_rpc_call_send(call, &resp->base, 0);
}

/* Sends an ErrorResponse whose message is `what` followed by `arg`. */
static void send_error(fm_rpc_call *call, refl_response *resp, int code, const char *what, const char *arg)
{
  char msg[512];
  snprintf(msg, sizeof msg, "%s%s", what, arg);
  Grpc__Reflection__V1alpha__ErrorResponse er = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
  er.error_code = code;
  er.error_message = msg;
  resp->message_response_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  resp->error_response = &er;
  fm_rpc_call_send(call, &resp->base, 0);
}

static void send_services(fm_rpc_call *call, refl_response *resp, const fm_rpc_methods *t)
{
  size_t n = fm_rpc_methods_service_count(t);
  Grpc__Reflection__V1alpha__ServiceResponse *items = calloc(n ? n : 1, sizeof *items);
  Grpc__Reflection__V1alpha__ServiceResponse **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  if (items == NULL || ptrs == NULL) {
    free(items);
    free(ptrs);
    fm_rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    grpc__reflection__v1alpha__service_response__init(&items[i]);
    items[i].name = (char *)(uintptr_t)fm_rpc_methods_service(t, i);
    ptrs[i] = &items[i];
  }
  Grpc__Reflection__V1alpha__ListServiceResponse ls = GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
  ls.n_service = n;
  ls.service = ptrs;
  resp->message_response_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
  resp->list_services_response = &ls;
  fm_rpc_call_send(call, &resp->base, 0);
  free(items);
  free(ptrs);
}

static void on_request(fm_rpc_call *call, const ProtobufCMessage *msg)
{
  const fm_reflection_service *svc = fm_rpc_call_ctx(call);
  if (msg == NULL) { /* the client has no more questions */
    fm_rpc_call_finish(call, GRPC_STATUS_OK, "");
    return;
  }
  const refl_request *req = (const refl_request *)msg;
  refl_response resp = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
  resp.valid_host = req->host;
  resp.original_request = (refl_request *)(uintptr_t)req;
  const fm_descriptor_index *idx = svc->index;
  bool is_message = false;
  int file;
  switch (req->message_request_case) {
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
    send_services(call, &resp, svc->methods);
    break;
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
    file = fm_descriptor_index_find_file(idx, req->file_by_filename);
    if (file < 0)
      send_error(call, &resp, REFL_NOT_FOUND, "file not found: ", req->file_by_filename);
    else
      send_files(call, &resp, idx, file);
    break;
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
    const char *sym = req->file_containing_symbol;
    if (sym[0] == '.')
      sym++;
    file = fm_descriptor_index_find_symbol(idx, sym, NULL);
    if (file < 0)
      send_error(call, &resp, REFL_NOT_FOUND, "symbol not found: ", req->file_containing_symbol);
    else
      send_files(call, &resp, idx, file);
    break;
  }
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
    /* none of our files declares an extension */
    send_error(call, &resp, REFL_NOT_FOUND, "extension not found in ",
               req->file_containing_extension != NULL && req->file_containing_extension->containing_type != NULL
                   ? req->file_containing_extension->containing_type
                   : "");
    break;
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
    const char *type = req->all_extension_numbers_of_type;
    if (type[0] == '.')
      type++;
    if (fm_descriptor_index_find_symbol(idx, type, &is_message) < 0 || !is_message) {
      send_error(call, &resp, REFL_NOT_FOUND, "type not found: ", req->all_extension_numbers_of_type);
    } else {
      Grpc__Reflection__V1alpha__ExtensionNumberResponse en =
          GRPC__REFLECTION__V1ALPHA__EXTENSION_NUMBER_RESPONSE__INIT;
      en.base_type_name = (char *)(uintptr_t)type;
      resp.message_response_case =
          GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
      resp.all_extension_numbers_response = &en;
      fm_rpc_call_send(call, &resp.base, 0);
    }
    break;
  }
  case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST__NOT_SET:
  case _GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST__CASE_IS_INT_SIZE:
    send_error(call, &resp, REFL_INVALID_ARGUMENT, "request names no question (message_request unset)", "");
    break;
  }
}

/* The answer is out: read the next question. */
static void on_sent(fm_rpc_call *call, bool ok)
{
  if (ok)
    fm_rpc_call_recv_next(call);
}

static fm_rpc_method methods[] = {
  { .path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    .kind = FM_RPC_BIDI_STREAMING,
    .request = &grpc__reflection__v1alpha__server_reflection_request__descriptor,
    .on_request = on_request,
    .on_sent = on_sent },
  /* v1 has the same messages and field numbers, so the v1alpha types serve it */
  { .path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    .kind = FM_RPC_BIDI_STREAMING,
    .request = &grpc__reflection__v1alpha__server_reflection_request__descriptor,
    .on_request = on_request,
    .on_sent = on_sent },
};

int fm_reflection_service_register(fm_rpc_methods *t, fm_reflection_service *svc)
{
  return fm_rpc_methods_add_all(t, methods, sizeof methods / sizeof methods[0], svc);
}
