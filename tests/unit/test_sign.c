/*
 * chat-sync's Standard Webhooks signing: the published test vector, the
 * whsec_ and raw key forms, and refusal of a malformed whsec_ secret.
 */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "sign.h"

/* From the Standard Webhooks specification's test vector. */
#define VEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define VEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define VEC_TS 1614265330LL
#define VEC_BODY "{\"test\": 2432232314}"
#define VEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define RAW_SIG "v1,PFCtOQ1EoOzF8a+pKAQWQ+bpAiWPnsryX1oZVkjnznI="

START_TEST(test_published_vector)
{
	unsigned char *key = NULL;
	size_t klen = 0;
	char *cause = NULL, *sig;

	ck_assert_int_eq(sign_key_load(VEC_SECRET, &key, &klen, &cause), 0);
	ck_assert_uint_eq(klen, 24);
	sig = sign_header(key, klen, VEC_ID, VEC_TS, VEC_BODY, strlen(VEC_BODY));
	ck_assert_str_eq(sig, VEC_SIG);
	free(sig);
	/* any change to id, timestamp or body changes the signature */
	sig = sign_header(key, klen, VEC_ID "x", VEC_TS, VEC_BODY, strlen(VEC_BODY));
	ck_assert_str_ne(sig, VEC_SIG);
	free(sig);
	sig = sign_header(key, klen, VEC_ID, VEC_TS + 1, VEC_BODY, strlen(VEC_BODY));
	ck_assert_str_ne(sig, VEC_SIG);
	free(sig);
	sig = sign_header(key, klen, VEC_ID, VEC_TS, VEC_BODY, strlen(VEC_BODY) - 1);
	ck_assert_str_ne(sig, VEC_SIG);
	free(sig);
	free(key);
}
END_TEST

/* Independently computed with /usr/bin/python3:
 * base64(hmac.new(b"raw-secret", b"id1.1700000000.{}", sha256).digest()) */
START_TEST(test_raw_secret)
{
	unsigned char *key = NULL;
	size_t klen = 0;
	char *cause = NULL, *sig;

	ck_assert_int_eq(sign_key_load("raw-secret", &key, &klen, &cause), 0);
	ck_assert_uint_eq(klen, 10);
	ck_assert_int_eq(memcmp(key, "raw-secret", 10), 0);
	sig = sign_header(key, klen, "id1", 1700000000LL, "{}", 2);
	ck_assert_ptr_nonnull(sig);
	ck_assert_str_eq(sig, RAW_SIG);
	free(sig);
	free(key);
}
END_TEST

START_TEST(test_bad_whsec)
{
	static const char *const bad[] = { "whsec_", "whsec_!!!!", "whsec_abc" };
	unsigned char *key = NULL;
	size_t klen = 0;
	char *cause = NULL;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(
		    sign_key_load(bad[i], &key, &klen, &cause) == -1, "accepted %s", bad[i]);
		ck_assert_ptr_nonnull(cause);
		/* the message must not repeat the secret */
		if (strlen(bad[i]) > 6)
			ck_assert_ptr_null(strstr(cause, bad[i]));
		free(cause);
		cause = NULL;
	}
}
END_TEST

START_TEST(test_random_hex)
{
	char *a = sign_random_hex(16), *b = sign_random_hex(16);

	ck_assert_uint_eq(strlen(a), 32);
	ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 32);
	ck_assert_str_ne(a, b);
	free(a);
	free(b);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("sign");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_published_vector);
	tcase_add_test(tc, test_raw_secret);
	tcase_add_test(tc, test_bad_whsec);
	tcase_add_test(tc, test_random_hex);
	suite_add_tcase(s, tc);
	return s;
}
