/*
 * Page arithmetic: see page.h. Overflow matters here because page and
 * limit come straight from a query string.
 */
#include "autoconf.h"

#include "page.h"

void
page_window_compute(int64_t lo, int64_t hi, int64_t page, int64_t limit, struct page_window *w)
{
	int64_t skip;

	w->total = hi >= lo ? hi - lo + 1 : 0;
	w->total_pages = w->total == 0 ? 0 : (w->total - 1) / limit + 1;
	/* Pages past the end are empty; compare before multiplying. */
	if (w->total == 0 || page - 1 >= w->total_pages) {
		w->start = hi < INT64_MAX ? hi + 1 : hi;
		w->end = w->start - 1;
		w->has_more = 0;
		return;
	}
	/* (page - 1) * limit <= total - 1 here, so neither sum overflows. */
	skip = (page - 1) * limit;
	w->start = lo + skip;
	/* hi - start < limit rather than start + limit - 1 < hi: a limit near
	 * INT64_MAX must not overflow. */
	w->end = hi - w->start < limit ? hi : w->start + limit - 1;
	w->has_more = w->end < hi;
}
