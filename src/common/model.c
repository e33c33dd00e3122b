#include "autoconf.h"

#include <string.h>

#include "model.h"

int
model_event_type_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > EVENT_TYPE_MAX_BYTES)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
	    len;
}
