/*
 * The one main() of the unit tests (check_main.c) runs the suite the
 * test's own file builds.
 */
#ifndef CHECK_MAIN_H
#define CHECK_MAIN_H

#include <check.h>

/* Every unit test file defines this: its whole suite, ready to run. */
Suite *unit_suite(void);

#endif
