/* Any protobuf-c message as proto3 canonical JSON (json_name keys, defaults
 * omitted, 64-bit integers as strings, bytes as base64, enums by name), built
 * by walking the message descriptor. Called by the `filermeta` CLI for the admin
 * commands' --json output and `filermeta tail`; any thread, no shared state. */
#ifndef FM_PB_JSON_H
#define FM_PB_JSON_H

#include <json-c/json.h>
#include <protobuf-c/protobuf-c.h>

/*
 * Returns a new json-c object for `msg` (borrowed, non-NULL); caller releases it
 * with json_object_put. NULL on allocation failure.
 *
 * A field is emitted exactly when protobuf-c would write it on the wire: proto3
 * scalars when not zero, sub-messages when the pointer is non-NULL (an empty one
 * as {}), oneof members when their case is selected, proto2 optionals when
 * their has_ flag is set. Unknown fields are not emitted. Keys follow field
 * numbers; map fields become objects keyed by the map key as a string.
 */
struct json_object *fm_pb_json_object(const ProtobufCMessage *msg);

/* Writes `msg` (borrowed, non-NULL) as one line of compact JSON, without a
 * trailing newline, into *out; caller frees *out with free(). Returns 0, or
 * FM_ENOMEM with *out set to NULL. */
int fm_pb_json_string(const ProtobufCMessage *msg, char **out);

#endif
