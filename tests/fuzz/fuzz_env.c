/*
 * Fuzz target for the .env parser (config_parse_env_text) and the value
 * checks every parsed value may meet (URL, address, DATABASE_URL). Reads
 * no files and no environment.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

static int
fuzz_set(const char *key, const char *value, void *arg)
{
	char *path = NULL, *cause = NULL;
	int *pairs = arg, memory, rc;
	size_t i;

	/* The parser promises shell-style names: [A-Za-z_][A-Za-z0-9_]*. */
	FUZZ_CHECK(key[0] != '\0' && !isdigit((unsigned char)key[0]));
	for (i = 0; key[i] != '\0'; i++)
		FUZZ_CHECK(key[i] == '_' || isalnum((unsigned char)key[i]));

	(void)config_check_url(value);
	(void)config_check_address(value);
	rc = config_parse_database_url(value, &path, &memory, &cause);
	FUZZ_CHECK(rc == 0 ? path != NULL && cause == NULL : path == NULL && cause != NULL);
	free(path);
	free(cause);
	(*pairs)++;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *cause = NULL;
	int pairs = 0, rc;

	rc = config_parse_env_text((const char *)data, size, fuzz_set, &pairs, &cause);
	FUZZ_CHECK(rc == 0 ? cause == NULL : cause != NULL && strncmp(cause, "line ", 5) == 0);
	free(cause);
	return 0;
}
