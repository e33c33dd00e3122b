/*
 * GET /management/metrics: one Prometheus text exposition for the whole
 * service, so one scrape job covers it: chat-api's request counters,
 * chatd's own exposition fetched over the control socket (left out, with
 * chatd_up 0, while chatd cannot be reached), and chat-sync's backlog per
 * target as the database shows it. chatd is asked for the cluster's
 * metrics: a cluster node answers with every node's series, labelled
 * node="<NODE_ID>"; a single node ignores the argument and answers with
 * its own, unlabelled. chat-sync's delivery attempts are
 * counted by chat-sync itself (its METRICS_TEXTFILE).
 */
#include "autoconf.h"

#include <stdlib.h>

#include "clock.h"
#include "config.h"
#include "ctl.h"
#include "handlers.h"
#include "log.h"
#include "metrics.h"
#include "reqmetrics.h"

/* The per-target families, each written in its own pass over the targets. */
enum metrics_sync_what {
	METRICS_SYNC_BACKLOG,
	METRICS_SYNC_AGE,
	METRICS_SYNC_DEAD,
	METRICS_SYNC_REPLAY,
	METRICS_SYNC_FAILING,
	METRICS_SYNC_UP,
};

struct metrics_sync_arg {
	struct metrics_buf *b;
	enum metrics_sync_what what;
	const char *name;
	int64_t now;
};

static void
metrics_sync_target(const struct misc_target *t, void *arg)
{
	struct metrics_sync_arg *a = arg;
	const char *labels[] = { "target", t->name, NULL };
	double v = 0;

	if (t->failed && a->what != METRICS_SYNC_UP)
		return;
	switch (a->what) {
	case METRICS_SYNC_BACKLOG:
		v = (double)t->backlog.count;
		break;
	case METRICS_SYNC_AGE:
		if (t->backlog.count > 0 && a->now > t->backlog.oldest_at)
			v = (double)(a->now - t->backlog.oldest_at) / 1000.0;
		break;
	case METRICS_SYNC_DEAD:
		v = (double)t->dead;
		break;
	case METRICS_SYNC_REPLAY:
		v = (double)t->replay;
		break;
	case METRICS_SYNC_FAILING:
		v = (double)t->cursor.attempts;
		break;
	case METRICS_SYNC_UP:
		v = !t->failed;
		break;
	}
	metrics_sample(a->b, a->name, labels, v);
}

static void
metrics_sync(struct api_call *call, struct metrics_buf *b)
{
	static const struct {
		enum metrics_sync_what what;
		const char *name, *help;
	} families[] = {
		{ METRICS_SYNC_UP, "chatd_sync_target_query_ok",
		    "1 if chat-api could read this callback target's state from the database." },
		{ METRICS_SYNC_BACKLOG, "chatd_sync_backlog",
		    "Rows waiting for delivery to this callback target." },
		{ METRICS_SYNC_AGE, "chatd_sync_oldest_pending_age_seconds",
		    "Age of the oldest row waiting for this callback target (0: none waits)." },
		{ METRICS_SYNC_FAILING, "chatd_sync_failed_attempts",
		    "Failed attempts of the batch in flight to this target (0: none is failing)." },
		{ METRICS_SYNC_DEAD, "chatd_sync_dead_letters",
		    "Batches set aside as dead letters for this target." },
		{ METRICS_SYNC_REPLAY, "chatd_sync_dead_letters_replay_pending",
		    "Dead letters of this target waiting for a replay." },
	};
	struct metrics_sync_arg a = { .b = b, .now = clock_wall_ms() };

	for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
		metrics_family(b, families[i].name, "gauge", families[i].help);
		a.what = families[i].what;
		a.name = families[i].name;
		handlers_misc_each_target(call, metrics_sync_target, &a);
	}
}

void
handlers_metrics(struct api_call *call)
{
	const struct config *cfg = call->ctx->cfg;
	const cJSON *text;
	cJSON *result = NULL, *args = json_object();
	char *code = NULL, *cause = NULL;
	struct metrics_buf b;
	int up;

	metrics_init(&b);
	reqmetrics_write(&b);
	json_add_bool(args, "cluster", 1);
	up = ctl_call(cfg->control_socket, (int)cfg->control_timeout_ms, CTL_METRICS, args, &result,
		 &code, &cause) == CTL_OK;
	cJSON_Delete(args);
	text = cJSON_GetObjectItemCaseSensitive(result, "text");
	if (up && !cJSON_IsString(text)) {
		log_warn("metrics: chatd answered without its exposition (an older chatd?)");
		up = 0;
	}
	metrics_gauge(&b, "chatd_up",
	    "1 if chat-api reached chatd over the control socket for this scrape.", up);
	if (up)
		metrics_raw(&b, text->valuestring);
	cJSON_Delete(result);
	free(code);
	free(cause);
	metrics_sync(call, &b);
	free(call->resp->body);
	call->resp->status = 200;
	call->resp->content_type = METRICS_CONTENT_TYPE;
	call->resp->body = metrics_take(&b);
}
