/*
 * main() of every unit test: runs the file's suite in Check's default
 * fork mode (CK_FORK=no in the environment runs it in one process, as
 * make check-valgrind does) and exits non-zero if any test failed.
 */
#include "autoconf.h"

#include <stdlib.h>

#include "check_main.h"

int
main(void)
{
	SRunner *sr = srunner_create(unit_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
