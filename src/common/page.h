/*
 * Page arithmetic for history routes, kept pure so it can be tested on its
 * own: a contiguous window of sequence numbers [lo, hi] and a 1-based page
 * of `limit` rows map to the seq range that page covers.
 */
#ifndef CHAT_PAGE_H
#define CHAT_PAGE_H

#include <stdint.h>

struct page_window {
	int64_t total; /* rows in [lo, hi]; 0 if hi < lo */
	int64_t start; /* first seq on the page */
	int64_t end; /* last seq on the page (inclusive); < start if the page is empty */
	int has_more; /* rows exist after end */
	int64_t total_pages;
};

/* lo >= 1 (seq numbers start at 1), page >= 1 and limit >= 1; huge pages
 * and limits give an empty or whole page instead of overflowing. */
void page_window_compute(
    int64_t lo, int64_t hi, int64_t page, int64_t limit, struct page_window *w);

#endif
