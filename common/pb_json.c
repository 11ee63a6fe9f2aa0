/* protobuf-c messages to the proto3 canonical JSON mapping, by walking the
 * descriptors. protobuf-c descriptors carry no json_name and no map_entry
 * option, so both are reconstructed here the way protoc defines them. */
#include "pb_json.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define PB_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static struct json_object *message_json(const ProtobufCMessage *msg);

/* ---------------------------------------------------------------- names */

/*
 * protoc's ToJsonName: drop each '_' and upper-case the ASCII letter after it;
 * everything else is kept, so "startFromFileName" stays as it is. Returns a
 * malloc'ed string, or NULL.
 */
static char *json_name(const char *name)
{
  char *out = malloc(strlen(name) + 1);
  if (out == NULL)
    return NULL;
  char *o = out;
  bool upper = false;
  for (const char *p = name; *p != '\0'; p++) {
    if (*p == '_') {
      upper = true;
      continue;
    }
    *o++ = (upper && *p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
    upper = false;
  }
  *o = '\0';
  return out;
}

/*
 * Whether `short_name` is protoc's MapEntryName for the field `field`:
 * "locations_map" -> "LocationsMapEntry" (upper-case the first letter and each
 * letter after '_', drop the '_', append "Entry").
 */
static bool is_map_entry_name(const char *field, const char *short_name)
{
  const char *s = short_name;
  bool upper = true;
  for (const char *p = field; *p != '\0'; p++) {
    if (*p == '_') {
      upper = true;
      continue;
    }
    char want = (upper && *p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
    if (*s++ != want)
      return false;
    upper = false;
  }
  return strcmp(s, "Entry") == 0;
}

static bool is_map_key_type(ProtobufCType t)
{
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_BOOL:
  case PROTOBUF_C_TYPE_STRING:
    return true;
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_DOUBLE:
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_BYTES:
  case PROTOBUF_C_TYPE_MESSAGE:
    return false;
  }
  return false;
}

/*
 * protoc-c compiles `map<K, V> f = n;` into `repeated FEntry f = n;` where
 * FEntry is a message nested in the parent with fields key = 1 and value = 2,
 * and drops the map_entry option that would say so. A field is taken for a map
 * only when all of that holds, so an ordinary repeated message that merely
 * ends in "Entry" stays a list.
 */
static bool is_map_field(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *fd)
{
  if (fd->label != PROTOBUF_C_LABEL_REPEATED || fd->type != PROTOBUF_C_TYPE_MESSAGE || fd->descriptor == NULL)
    return false;
  const ProtobufCMessageDescriptor *e = fd->descriptor;
  if (e->n_fields != 2 || e->fields[0].id != 1 || strcmp(e->fields[0].name, "key") != 0 || e->fields[1].id != 2 ||
      strcmp(e->fields[1].name, "value") != 0 || !is_map_key_type(e->fields[0].type))
    return false;
  if (!is_map_entry_name(fd->name, e->short_name))
    return false;
  size_t plen = strlen(parent->name);
  return strncmp(e->name, parent->name, plen) == 0 && e->name[plen] == '.' &&
         strcmp(e->name + plen + 1, e->short_name) == 0;
}

/* ---------------------------------------------------------------- presence */

/* The element size of a repeated field's array, as protobuf-c lays it out. */
static size_t elt_size(ProtobufCType t)
{
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_ENUM:
    return 4;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(void *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  }
  return 0;
}

/* A proto3 field without presence is written only when it is not its zero value. */
static bool is_zero(const ProtobufCFieldDescriptor *fd, const void *member)
{
  switch (fd->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_ENUM:
    return *(const uint32_t *)member == 0;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return *(const uint64_t *)member == 0;
  case PROTOBUF_C_TYPE_FLOAT:
    return *(const float *)member == 0;
  case PROTOBUF_C_TYPE_DOUBLE:
    return *(const double *)member == 0;
  case PROTOBUF_C_TYPE_BOOL:
    return *(const protobuf_c_boolean *)member == 0;
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(const char *const *)member;
    return s == NULL || s[0] == '\0';
  }
  case PROTOBUF_C_TYPE_BYTES:
    return ((const ProtobufCBinaryData *)member)->len == 0;
  case PROTOBUF_C_TYPE_MESSAGE:
    return *(const void *const *)member == NULL;
  }
  return true;
}

/*
 * Whether the field at `base` is emitted: the same decision protobuf-c's
 * protobuf_c_message_pack makes, so the JSON shows what the wire carries. Note
 * that for string and message members of a oneof or a proto2 optional, a
 * pointer equal to the descriptor's default_value counts as unset; for proto3
 * strings that default is protobuf_c_empty_string, the value __init stores.
 */
static bool is_present(const ProtobufCFieldDescriptor *fd, const char *base)
{
  const void *member = base + fd->offset;
  const void *qmember = base + fd->quantifier_offset;
  bool pointer = fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_MESSAGE;

  if (fd->label == PROTOBUF_C_LABEL_REPEATED)
    return *(const size_t *)qmember != 0;
  if (fd->label == PROTOBUF_C_LABEL_REQUIRED)
    return !pointer || *(const void *const *)member != NULL;
  if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    if (*(const uint32_t *)qmember != fd->id)
      return false;
  } else if (fd->label == PROTOBUF_C_LABEL_NONE) {
    return !is_zero(fd, member);
  } else if (!pointer) { /* PROTOBUF_C_LABEL_OPTIONAL with a has_ flag */
    return *(const protobuf_c_boolean *)qmember != 0;
  }
  if (pointer) {
    const void *p = *(const void *const *)member;
    return p != NULL && p != fd->default_value;
  }
  return true;
}

/* ---------------------------------------------------------------- values */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with '=' padding (RFC 4648 section 4), as proto3 JSON wants for bytes. */
static struct json_object *bytes_json(const ProtobufCBinaryData *b)
{
  size_t n = b->data != NULL ? b->len : 0;
  if (n > (size_t)INT_MAX / 4 * 3) /* json_object_new_string_len takes an int */
    return NULL;
  size_t out_len = (n + 2) / 3 * 4;
  char *out = malloc(out_len + 1);
  if (out == NULL)
    return NULL;
  const uint8_t *in = b->data;
  char *o = out;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *o++ = b64_alphabet[v >> 18];
    *o++ = b64_alphabet[(v >> 12) & 63];
    *o++ = b64_alphabet[(v >> 6) & 63];
    *o++ = b64_alphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    *o++ = b64_alphabet[v >> 18];
    *o++ = b64_alphabet[(v >> 12) & 63];
    *o++ = '=';
    *o++ = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    *o++ = b64_alphabet[v >> 18];
    *o++ = b64_alphabet[(v >> 12) & 63];
    *o++ = b64_alphabet[(v >> 6) & 63];
    *o++ = '=';
  }
  *o = '\0';
  struct json_object *j = json_object_new_string_len(out, (int)out_len);
  free(out);
  return j;
}

/*
 * A float or double as a JSON number in the shortest form that reads back as
 * the same value (what Python and Go print), with a '.' or exponent so that it
 * re-parses as a double; NaN and the infinities as the strings proto3 names.
 */
static struct json_object *number_json(double v, bool single)
{
  if (isnan(v))
    return json_object_new_string("NaN");
  if (isinf(v))
    return json_object_new_string(v > 0 ? "Infinity" : "-Infinity");
  char buf[48];
  int max = single ? 9 : 17;
  for (int prec = single ? 6 : 15;; prec++) {
    snprintf(buf, sizeof buf - 2, "%.*g", prec, v);
    if (prec >= max || (single ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v))
      break;
  }
  /* printf follows LC_NUMERIC; JSON does not */
  char *comma = strchr(buf, ',');
  if (comma != NULL)
    *comma = '.';
  if (strpbrk(buf, ".e") == NULL)
    strcat(buf, ".0");
  return json_object_new_double_s(v, buf);
}

static struct json_object *int64_json(int64_t v)
{
  char buf[24];
  snprintf(buf, sizeof buf, "%" PRId64, v);
  return json_object_new_string(buf);
}

static struct json_object *uint64_json(uint64_t v)
{
  char buf[24];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  return json_object_new_string(buf);
}

/* An enum by its value name; a value the descriptor does not know as the number. */
static struct json_object *enum_json(const ProtobufCEnumDescriptor *ed, int v)
{
  const ProtobufCEnumValue *ev = ed != NULL ? protobuf_c_enum_descriptor_get_value(ed, v) : NULL;
  if (ev != NULL)
    return json_object_new_string(ev->name);
  return json_object_new_int(v);
}

/* One value of field `fd` (a singular field, or one element of a repeated one) at `p`. */
static struct json_object *value_json(const ProtobufCFieldDescriptor *fd, const void *p)
{
  switch (fd->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    return json_object_new_int(*(const int32_t *)p);
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    return json_object_new_int64(*(const uint32_t *)p);
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    return int64_json(*(const int64_t *)p);
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return uint64_json(*(const uint64_t *)p);
  case PROTOBUF_C_TYPE_FLOAT:
    return number_json(*(const float *)p, true);
  case PROTOBUF_C_TYPE_DOUBLE:
    return number_json(*(const double *)p, false);
  case PROTOBUF_C_TYPE_BOOL:
    return json_object_new_boolean(*(const protobuf_c_boolean *)p != 0);
  case PROTOBUF_C_TYPE_ENUM:
    return enum_json(fd->descriptor, *(const int *)p);
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(const char *const *)p;
    return json_object_new_string(s != NULL ? s : "");
  }
  case PROTOBUF_C_TYPE_BYTES:
    return bytes_json(p);
  case PROTOBUF_C_TYPE_MESSAGE: {
    /* a map value or list element that was never set reads as the empty message */
    const ProtobufCMessage *m = *(const ProtobufCMessage *const *)p;
    return m != NULL ? message_json(m) : json_object_new_object();
  }
  }
  return NULL;
}

/* A map key as the JSON object key: decimal for integers, "true"/"false", the string itself. */
static const char *map_key(const ProtobufCFieldDescriptor *fd, const void *p, char *buf, size_t len)
{
  switch (fd->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    snprintf(buf, len, "%" PRId32, *(const int32_t *)p);
    return buf;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    snprintf(buf, len, "%" PRIu32, *(const uint32_t *)p);
    return buf;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    snprintf(buf, len, "%" PRId64, *(const int64_t *)p);
    return buf;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    snprintf(buf, len, "%" PRIu64, *(const uint64_t *)p);
    return buf;
  case PROTOBUF_C_TYPE_BOOL:
    return *(const protobuf_c_boolean *)p ? "true" : "false";
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(const char *const *)p;
    return s != NULL ? s : "";
  }
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_DOUBLE:
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_BYTES:
  case PROTOBUF_C_TYPE_MESSAGE:
    break; /* excluded by is_map_key_type */
  }
  return "";
}

/* ---------------------------------------------------------------- containers */

/* json-c leaves `val` with the caller when an add fails; release it then. */
static int object_add(struct json_object *obj, const char *key, struct json_object *val)
{
  if (val == NULL)
    return FM_ENOMEM;
  if (json_object_object_add(obj, key, val) != 0) {
    json_object_put(val);
    return FM_ENOMEM;
  }
  return 0;
}

static int array_add(struct json_object *arr, struct json_object *val)
{
  if (val == NULL)
    return FM_ENOMEM;
  if (json_object_array_add(arr, val) != 0) {
    json_object_put(val);
    return FM_ENOMEM;
  }
  return 0;
}

static struct json_object *array_json(const ProtobufCFieldDescriptor *fd, size_t n, const char *items)
{
  struct json_object *arr = json_object_new_array_ext(n > INT_MAX ? INT_MAX : (int)n);
  if (arr == NULL)
    return NULL;
  size_t size = elt_size(fd->type);
  for (size_t i = 0; i < n; i++) {
    if (array_add(arr, value_json(fd, items + i * size)) != 0) {
      json_object_put(arr);
      return NULL;
    }
  }
  return arr;
}

/* Entries in wire order; a repeated key keeps its last value, as when the map is parsed. */
static struct json_object *map_json(const ProtobufCFieldDescriptor *fd, size_t n,
                                    const ProtobufCMessage *const *entries)
{
  const ProtobufCFieldDescriptor *kfd = &((const ProtobufCMessageDescriptor *)fd->descriptor)->fields[0];
  const ProtobufCFieldDescriptor *vfd = &((const ProtobufCMessageDescriptor *)fd->descriptor)->fields[1];
  struct json_object *obj = json_object_new_object();
  if (obj == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    const char *e = (const char *)entries[i];
    if (e == NULL)
      continue;
    char buf[24];
    const char *key = map_key(kfd, e + kfd->offset, buf, sizeof buf);
    if (object_add(obj, key, value_json(vfd, e + vfd->offset)) != 0) {
      json_object_put(obj);
      return NULL;
    }
  }
  return obj;
}

static struct json_object *field_json(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *fd,
                                      const char *base)
{
  if (fd->label != PROTOBUF_C_LABEL_REPEATED)
    return value_json(fd, base + fd->offset);
  size_t n = *(const size_t *)(const void *)(base + fd->quantifier_offset);
  const void *items = *(const void *const *)(const void *)(base + fd->offset);
  if (is_map_field(d, fd))
    return map_json(fd, n, items);
  return array_json(fd, n, items);
}

/* protoc-c sorts each descriptor's fields by number, so keys come out in field-number order. */
static struct json_object *message_json(const ProtobufCMessage *msg)
{
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  const char *base = (const char *)msg;
  struct json_object *obj = json_object_new_object();
  if (obj == NULL)
    return NULL;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *fd = &d->fields[i];
    if (!is_present(fd, base))
      continue;
    char *name = json_name(fd->name);
    int rc = name != NULL ? object_add(obj, name, field_json(d, fd, base)) : FM_ENOMEM;
    free(name);
    if (rc != 0) {
      json_object_put(obj);
      return NULL;
    }
  }
  return obj;
}

/* ---------------------------------------------------------------- API */

struct json_object *fm_pb_json_object(const ProtobufCMessage *msg)
{
  return message_json(msg);
}

/*
 * Every failed allocation while building the tree is reported as FM_ENOMEM.
 * json-c 0.16's writer, though, ignores a failed buffer append while escaping
 * a string or key, so if memory runs out during the final serialization the
 * text can lose characters instead of the call failing.
 */
int fm_pb_json_string(const ProtobufCMessage *msg, char **out)
{
  *out = NULL;
  struct json_object *obj = message_json(msg);
  if (obj == NULL)
    return FM_ENOMEM;
  size_t len = 0;
  const char *s = json_object_to_json_string_length(obj, PB_JSON_FLAGS, &len);
  char *copy = s != NULL ? malloc(len + 1) : NULL;
  if (copy != NULL) {
    memcpy(copy, s, len);
    copy[len] = '\0';
  }
  json_object_put(obj);
  if (copy == NULL)
    return FM_ENOMEM;
  *out = copy;
  return 0;
}
