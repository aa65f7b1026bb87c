/* The plugin's C side: Mosquitto's entry points and event callbacks, each
 * a trampoline into Go (main.go). Mosquitto calls every one of them on its
 * own thread; Go code that runs elsewhere (timers, the revocation feed)
 * never calls into Mosquitto, it queues work for the tick. */
#include <stdlib.h>
#include <string.h>
#include "shim.h"
#include "_cgo_export.h"

#define TMQ_CONTROL_TOPIC "$CONTROL/tokenmq/uploadToken"

static int cb_basic_auth(int event, void *data, void *userdata) { (void)event; (void)userdata; return goBasicAuth(data); }
/* ACL decisions are cached here, on Mosquitto's thread, so that a
 * delivery to a client whose rights have not changed costs no call into
 * Go: a direct-mapped table keyed by (client pointer, access, topic), valid
 * while tmq_generation is what it was when the decision was made. Go adds
 * to tmq_generation (atomically, from any goroutine) at once after any
 * connection's rights may have changed: a connect (a client pointer may be
 * a freed one's), a disconnect, a renewal, a kick. Only decisions Go marks
 * cacheable (a connected client's) are kept. */
#define TMQ_CACHE_SIZE 8192 /* a power of two */
#define TMQ_CACHE_TOPIC 112
struct tmq_acl_entry {
	const struct mosquitto *client;
	uint64_t generation;
	int access;
	int result;
	size_t len;
	char topic[TMQ_CACHE_TOPIC];
};
static struct tmq_acl_entry tmq_cache[TMQ_CACHE_SIZE];
uint64_t tmq_generation = 1; /* 0 marks an empty entry */

static uint64_t tmq_hash(const struct mosquitto *client, int access, const char *topic, size_t len) {
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)client ^ ((uint64_t)access << 56);
	for (size_t i = 0; i < len; i++) {
		h = (h ^ (unsigned char)topic[i]) * 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

static int cb_acl_check(int event, void *data, void *userdata) {
	(void)event; (void)userdata;
	struct tmq_evt_acl_check *ev = data;
	size_t len = ev->topic ? strlen(ev->topic) : TMQ_CACHE_TOPIC;
	uint64_t gen = __atomic_load_n(&tmq_generation, __ATOMIC_ACQUIRE);
	struct tmq_acl_entry *e = NULL;
	if (len < TMQ_CACHE_TOPIC) {
		e = &tmq_cache[tmq_hash(ev->client, ev->access, ev->topic, len) & (TMQ_CACHE_SIZE - 1)];
		if (e->generation == gen && e->client == ev->client && e->access == ev->access && e->len == len && memcmp(e->topic, ev->topic, len) == 0) {
			return e->result;
		}
	}
	int rc = goACLCheck(data);
	int result = rc & ~TMQ_ACL_CACHEABLE;
	if (e != NULL && (rc & TMQ_ACL_CACHEABLE)) {
		/* gen was read before the decision: a change made meanwhile makes the entry stale at once */
		e->client = ev->client;
		e->generation = gen;
		e->access = ev->access;
		e->result = result;
		e->len = len;
		memcpy(e->topic, ev->topic, len);
	}
	return result;
}

void tmq_rights_changed(void) { __atomic_add_fetch(&tmq_generation, 1, __ATOMIC_RELEASE); }
static int cb_ext_auth_start(int event, void *data, void *userdata) { (void)event; (void)userdata; return goExtAuth(data, 0); }
static int cb_ext_auth_continue(int event, void *data, void *userdata) { (void)event; (void)userdata; return goExtAuth(data, 1); }
static int cb_control(int event, void *data, void *userdata) { (void)event; (void)userdata; return goControl(data); }
static int cb_tick(int event, void *data, void *userdata) { (void)event; (void)data; (void)userdata; goTick(); return TMQ_ERR_SUCCESS; }
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
