/* The -pattern match (path_pattern.h), over fnmatch(3). */
#include "path_pattern.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "filer.pb-c.h"

bool fm_path_pattern_match(const char *pattern, const char *dir, const char *name)
{
  if (strchr(pattern, '/') == NULL)
    return fnmatch(pattern, name, 0) == 0;
  char path[8192];
  size_t dl = strlen(dir);
  int n = snprintf(path, sizeof path, "%s%s%s", dir, dl > 0 && dir[dl - 1] == '/' ? "" : "/", name);
  if (n < 0 || (size_t)n >= sizeof path)
    return false; /* longer than any path the filer keeps */
  return fnmatch(pattern, path, FNM_PATHNAME) == 0;
}

bool fm_path_pattern_match_event(const char *pattern, const FilerPb__SubscribeMetadataResponse *ev)
{
  const FilerPb__EventNotification *en = ev->event_notification;
  if (en == NULL)
    return false;
  if (en->old_entry != NULL && fm_path_pattern_match(pattern, ev->directory, en->old_entry->name))
    return true;
  if (en->new_entry != NULL) {
    const char *dir =
        en->new_parent_path != NULL && en->new_parent_path[0] != '\0' ? en->new_parent_path : ev->directory;
    if (fm_path_pattern_match(pattern, dir, en->new_entry->name))
      return true;
  }
  return false;
}
