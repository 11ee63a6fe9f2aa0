/* filer.meta.tail's -pattern: a shell-style pattern (* ? [...]) matched against an event's full path when the
 * pattern holds a '/', else against the file name alone. Pure; any thread. Used by `filermeta tail`. */
#ifndef FM_PATH_PATTERN_H
#define FM_PATH_PATTERN_H

#include <stdbool.h>

struct FilerPb__SubscribeMetadataResponse;

/* True when `pattern` matches the entry `name` in directory `dir`: on the path dir/name (a '*' or '?' never matches
 * a '/') when the pattern holds a '/', else on the name. */
bool fm_path_pattern_match(const char *pattern, const char *dir, const char *name);

/* True when `pattern` matches an event by its old entry (in `directory`) or by its new one (in new_parent_path, or
 * `directory` when that is empty): a rename shows when either side matches. */
bool fm_path_pattern_match_event(const char *pattern, const struct FilerPb__SubscribeMetadataResponse *ev);

#endif
