/* The plugin's C side: Mosquitto's entry points and event callbacks, each
 * a trampoline into Go (main.go). Mosquitto calls every one of them on its
 * own thread; Go code that runs elsewhere (timers, the revocation feed)
 * never calls into Mosquitto, it queues work for the tick. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "shim.h"
#include "_cgo_export.h"

#define TMQ_CONTROL_TOPIC "$CONTROL/tokenmq/uploadToken"

static int cb_basic_auth(int event, void *data, void *userdata) { (void)event; (void)userdata; return goBasicAuth(data); }
static int cb_acl_check(int event, void *data, void *userdata) { (void)event; (void)userdata; return goACLCheck(data); }
static int cb_ext_auth_start(int event, void *data, void *userdata) { (void)event; (void)userdata; return goExtAuth(data, 0); }
static int cb_ext_auth_continue(int event, void *data, void *userdata) { (void)event; (void)userdata; return goExtAuth(data, 1); }
static int cb_control(int event, void *data, void *userdata) { (void)event; (void)userdata; return goControl(data); }
/* Mosquitto ticks once per loop: under load, thousands of times a second.
 * Go is called when it has asked for it (tmq_wake: a notice, a kick, log
 * lines) and otherwise every 100 ms (sweeps). */
static int tmq_woken = 1;
static struct timespec tmq_last_tick;

void tmq_wake(void) { __atomic_store_n(&tmq_woken, 1, __ATOMIC_RELEASE); }

static int cb_tick(int event, void *data, void *userdata) {
	(void)event; (void)data; (void)userdata;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	long ms = (now.tv_sec - tmq_last_tick.tv_sec) * 1000 + (now.tv_nsec - tmq_last_tick.tv_nsec) / 1000000;
	if (!__atomic_exchange_n(&tmq_woken, 0, __ATOMIC_ACQ_REL) && ms < 100) {
		return TMQ_ERR_SUCCESS;
	}
	tmq_last_tick = now;
	goTick();
	return TMQ_ERR_SUCCESS;
}
static int cb_disconnect(int event, void *data, void *userdata) { (void)event; (void)userdata; goDisconnect(data); return TMQ_ERR_SUCCESS; }

int tmq_register(mosquitto_plugin_id_t *id, int control) {
	int rc = 0;
	rc |= mosquitto_callback_register(id, TMQ_EVT_BASIC_AUTH, cb_basic_auth, NULL, NULL);
	rc |= mosquitto_callback_register(id, TMQ_EVT_ACL_CHECK, cb_acl_check, NULL, NULL);
	rc |= mosquitto_callback_register(id, TMQ_EVT_EXT_AUTH_START, cb_ext_auth_start, NULL, NULL);
	rc |= mosquitto_callback_register(id, TMQ_EVT_EXT_AUTH_CONTINUE, cb_ext_auth_continue, NULL, NULL);
	rc |= mosquitto_callback_register(id, TMQ_EVT_TICK, cb_tick, NULL, NULL);
	rc |= mosquitto_callback_register(id, TMQ_EVT_DISCONNECT, cb_disconnect, NULL, NULL);
	if (control) {
		rc |= mosquitto_callback_register(id, TMQ_EVT_CONTROL, cb_control, TMQ_CONTROL_TOPIC, NULL);
	}
	return rc;
}

void tmq_unregister(mosquitto_plugin_id_t *id, int control) {
	mosquitto_callback_unregister(id, TMQ_EVT_BASIC_AUTH, cb_basic_auth, NULL);
	mosquitto_callback_unregister(id, TMQ_EVT_ACL_CHECK, cb_acl_check, NULL);
	mosquitto_callback_unregister(id, TMQ_EVT_EXT_AUTH_START, cb_ext_auth_start, NULL);
	mosquitto_callback_unregister(id, TMQ_EVT_EXT_AUTH_CONTINUE, cb_ext_auth_continue, NULL);
	mosquitto_callback_unregister(id, TMQ_EVT_TICK, cb_tick, NULL);
	mosquitto_callback_unregister(id, TMQ_EVT_DISCONNECT, cb_disconnect, NULL);
	if (control) {
		mosquitto_callback_unregister(id, TMQ_EVT_CONTROL, cb_control, TMQ_CONTROL_TOPIC);
	}
}

void tmq_log(int level, const char *msg) { mosquitto_log_printf(level, "tokenmq: %s", msg); }

/* tmq_publish sends a QoS 0 message to one client, with MQTT 5 user
 * properties (npairs name/value pairs in pairs). */
int tmq_publish(const char *clientid, const char *topic, int payloadlen, const void *payload, int npairs, char **pairs) {
	mosquitto_property *props = NULL;
	for (int i = 0; i < npairs; i++) {
		if (mosquitto_property_add_string_pair(&props, 38 /* MQTT_PROP_USER_PROPERTY */, pairs[2 * i], pairs[2 * i + 1]) != TMQ_ERR_SUCCESS) {
			break;
		}
	}
	return mosquitto_broker_publish_copy(clientid, topic, payloadlen, payload, 0, false, props);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions) {
	for (int i = 0; i < supported_version_count; i++) {
		if (supported_versions[i] == 5) {
			return 5;
		}
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options, int option_count) {
	(void)userdata;
	return goPluginInit(identifier, options, option_count);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count) {
	(void)userdata; (void)options; (void)option_count;
	return goPluginCleanup();
}

/* tmq_bench_acl runs n ACL checks of one client, access and topic as
 * Mosquitto makes them (C into Go and back), for main_test.go. */
int tmq_bench_acl(struct mosquitto *client, int access, const char *topic, int n) {
	struct tmq_evt_acl_check ev;
	memset(&ev, 0, sizeof(ev));
	ev.client = client;
	ev.topic = topic;
	ev.access = access;
	int allowed = 0;
	for (int i = 0; i < n; i++) {
		allowed += cb_acl_check(TMQ_EVT_ACL_CHECK, &ev, NULL) == TMQ_ERR_SUCCESS;
	}
	return allowed;
}
