/*
 * Fuzz target for the callback settings chat-sync runs on: the input is
 * one value per line for the keys below, in order (missing lines keep the
 * default), loaded through config_load() as from the environment (no
 * .env is read). Whatever loads must be usable: every URL accepted by
 * the settings check is taken by libcurl (deliver_create, no transfer),
 * targets_* hand back exactly the settings, and a CALLBACK_SIGNING_SECRET
 * is either refused with a message or gives a key that signs (sign.c).
 * Messages never show the secret.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "deliver.h"
#include "fuzz.h"
#include "sign.h"
#include "targets.h"
#include "xmalloc.h"

static const char *const fuzz_keys[] = {
	"DATA_CALLBACK_URL",
	"ROOM_EVENT_CALLBACK_URL",
	"CHAT_HISTORY_CALLBACK_URL",
	"SESSION_HISTORY_CALLBACK_URL",
	"PERIODIC_SYNC_CALLBACK_URL",
	"CALLBACK_SIGNING_SECRET",
	"CALLBACK_MAX_RETRIES",
	"CALLBACK_RETRY_DELAY_SECONDS",
	"CALLBACK_TIMEOUT_SECONDS",
	"CHAT_HISTORY_BATCH_SIZE",
	"SESSION_HISTORY_BATCH_SIZE",
	"CHAT_HISTORY_BATCH_INTERVAL_SECONDS",
	"SESSION_HISTORY_BATCH_INTERVAL_SECONDS",
	"SYNC_INTERVAL_SECONDS",
	"USER_MESSAGE_INTERVAL_SECS",
};
#define FUZZ_NKEYS (sizeof fuzz_keys / sizeof fuzz_keys[0])
#define FUZZ_SECRET_KEY 5 /* CALLBACK_SIGNING_SECRET */

struct fuzz_env {
	const char *values[FUZZ_NKEYS];
};

static const char *
fuzz_getenv(const char *key, void *arg)
{
	const struct fuzz_env *env = arg;

	/* An empty file, so a .env in the working directory is never read. */
	if (strcmp(key, "CHAT_ENV_FILE") == 0)
		return "/dev/null";
	for (size_t i = 0; i < FUZZ_NKEYS; i++) {
		if (strcmp(key, fuzz_keys[i]) == 0)
			return env->values[i];
	}
	return NULL;
}

/*
 * The same settings with another secret of the same length must fail with
 * the same message: one that changed would be showing the secret.
 */
static void
fuzz_secret_hidden(const struct fuzz_env *env, const char *cause)
{
	struct fuzz_env other = *env;
	struct config cfg;
	char *cause2 = NULL, *fake;
	size_t len;

	if (env->values[FUZZ_SECRET_KEY] == NULL)
		return;
	len = strlen(env->values[FUZZ_SECRET_KEY]);
	fake = xmalloc(len + 1);
	memset(fake, len > 0 && env->values[FUZZ_SECRET_KEY][0] == '#' ? '%' : '#', len);
	fake[len] = '\0';
	other.values[FUZZ_SECRET_KEY] = fake;
	FUZZ_CHECK(config_load(&cfg, fuzz_getenv, &other, &cause2) != 0);
	FUZZ_CHECK(strcmp(cause, cause2) == 0);
	free(cause2);
	free(fake);
}

static void
fuzz_secret(const char *secret)
{
	unsigned char *key = NULL;
	char *cause = NULL, *sig;
	size_t klen = 0;

	if (sign_key_load(secret, &key, &klen, &cause) != 0) {
		char *fake = xstrdup(secret), *cause2 = NULL;

		FUZZ_CHECK(key == NULL && cause != NULL);
		/* Another invalid secret of the same length: the same message. */
		FUZZ_CHECK(strncmp(secret, "whsec_", 6) == 0);
		memset(fake + 6, '#', strlen(fake) - 6);
		FUZZ_CHECK(sign_key_load(fake, &key, &klen, &cause2) != 0);
		FUZZ_CHECK(strcmp(cause, cause2) == 0);
		free(cause2);
		free(fake);
		free(cause);
		return;
	}
	FUZZ_CHECK(key != NULL && klen > 0 && cause == NULL);
	if (strncmp(secret, "whsec_", 6) == 0)
		FUZZ_CHECK(klen <= (strlen(secret) - 6) / 4 * 3);
	else
		FUZZ_CHECK(klen == strlen(secret) && memcmp(key, secret, klen) == 0);
	sig = sign_header(key, klen, "msg_1", 1700000000, "{}", 2);
	FUZZ_CHECK(sig != NULL && strncmp(sig, "v1,", 3) == 0 && strlen(sig) == 3 + 44);
	free(sig);
	free(key);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int curl_ready;
	struct fuzz_env env;
	struct config cfg;
	struct deliver *d;
	char *text, *p, *nl, *cause = NULL;
	const char *url;
	size_t i;

	if (!curl_ready) {
		FUZZ_CHECK(deliver_global_init(&cause) == 0);
		curl_ready = 1;
	}
	memset(&env, 0, sizeof env);
	text = xmalloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	for (i = 0, p = text; i < FUZZ_NKEYS && p < text + size; i++) {
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		env.values[i] = p;
		if (nl == NULL)
			break;
		p = nl + 1;
	}

	if (config_load(&cfg, fuzz_getenv, &env, &cause) != 0) {
		FUZZ_CHECK(cause != NULL && strchr(cause, '=') != NULL);
		fuzz_secret_hidden(&env, cause);
		free(cause);
		free(text);
		return 0;
	}
	FUZZ_CHECK(cfg.callback_max_retries >= 0 && cfg.callback_max_retries <= 100);
	FUZZ_CHECK(cfg.callback_timeout_seconds >= 1 && cfg.callback_timeout_seconds <= 3600);
	FUZZ_CHECK(cfg.user_message_interval_ms >= 0);
	for (i = 0; i < targets_count; i++) {
		const struct targets_def *def = &targets_table[i];

		FUZZ_CHECK(targets_batch_size(def, &cfg) >= 1);
		FUZZ_CHECK(targets_interval_s(def, &cfg) >= 0);
		url = targets_url(def, &cfg);
		FUZZ_CHECK(url != NULL && config_check_url(url) == 0);
		if (*url == '\0')
			continue;
		d = NULL;
		FUZZ_CHECK(
		    deliver_create(url, (long)cfg.callback_timeout_seconds, NULL, &d, &cause) == 0);
		deliver_destroy(d);
	}
	if (cfg.callback_signing_secret != NULL)
		fuzz_secret(cfg.callback_signing_secret);
	config_clear(&cfg);
	free(text);
	return 0;
}
