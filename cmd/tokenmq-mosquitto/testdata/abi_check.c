/* Compiled (not run) by abi_test.go where Mosquitto's headers are
 * installed: shim.h's declarations must agree with them. A function
 * declared differently is a compile error (conflicting types); a struct
 * field or constant that differs fails a static assertion. */
#include <stddef.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>
#define TMQ_WITH_MOSQUITTO_HEADERS
#include "../shim.h"

#define SAME(a, b) _Static_assert((long)(a) == (long)(b), #a " != " #b)
#define FIELD(tmq, mosq, f) SAME(offsetof(struct tmq, f), offsetof(struct mosq, f)); \
	SAME(sizeof(((struct tmq *)0)->f), sizeof(((struct mosq *)0)->f))

SAME(TMQ_EVT_ACL_CHECK, MOSQ_EVT_ACL_CHECK);
SAME(TMQ_EVT_BASIC_AUTH, MOSQ_EVT_BASIC_AUTH);
SAME(TMQ_EVT_EXT_AUTH_START, MOSQ_EVT_EXT_AUTH_START);
SAME(TMQ_EVT_EXT_AUTH_CONTINUE, MOSQ_EVT_EXT_AUTH_CONTINUE);
SAME(TMQ_EVT_CONTROL, MOSQ_EVT_CONTROL);
SAME(TMQ_EVT_MESSAGE, MOSQ_EVT_MESSAGE);
SAME(TMQ_EVT_TICK, MOSQ_EVT_TICK);
SAME(TMQ_EVT_DISCONNECT, MOSQ_EVT_DISCONNECT);

SAME(TMQ_ERR_AUTH_CONTINUE, MOSQ_ERR_AUTH_CONTINUE);
SAME(TMQ_ERR_SUCCESS, MOSQ_ERR_SUCCESS);
SAME(TMQ_ERR_NOMEM, MOSQ_ERR_NOMEM);
SAME(TMQ_ERR_INVAL, MOSQ_ERR_INVAL);
SAME(TMQ_ERR_AUTH, MOSQ_ERR_AUTH);
SAME(TMQ_ERR_ACL_DENIED, MOSQ_ERR_ACL_DENIED);
SAME(TMQ_ERR_UNKNOWN, MOSQ_ERR_UNKNOWN);
SAME(TMQ_ERR_PLUGIN_DEFER, MOSQ_ERR_PLUGIN_DEFER);
SAME(TMQ_ERR_NOT_SUPPORTED, MOSQ_ERR_NOT_SUPPORTED);

SAME(TMQ_ACL_READ, MOSQ_ACL_READ);
SAME(TMQ_ACL_WRITE, MOSQ_ACL_WRITE);
SAME(TMQ_ACL_SUBSCRIBE, MOSQ_ACL_SUBSCRIBE);
SAME(TMQ_ACL_UNSUBSCRIBE, MOSQ_ACL_UNSUBSCRIBE);

SAME(TMQ_LOG_INFO, MOSQ_LOG_INFO);
SAME(TMQ_LOG_NOTICE, MOSQ_LOG_NOTICE);
SAME(TMQ_LOG_WARNING, MOSQ_LOG_WARNING);
SAME(TMQ_LOG_ERR, MOSQ_LOG_ERR);
SAME(TMQ_LOG_DEBUG, MOSQ_LOG_DEBUG);
SAME(38, MQTT_PROP_USER_PROPERTY);

SAME(sizeof(struct tmq_evt_acl_check), sizeof(struct mosquitto_evt_acl_check));
FIELD(tmq_evt_acl_check, mosquitto_evt_acl_check, client);
FIELD(tmq_evt_acl_check, mosquitto_evt_acl_check, topic);
FIELD(tmq_evt_acl_check, mosquitto_evt_acl_check, access);

SAME(sizeof(struct tmq_evt_basic_auth), sizeof(struct mosquitto_evt_basic_auth));
FIELD(tmq_evt_basic_auth, mosquitto_evt_basic_auth, client);
FIELD(tmq_evt_basic_auth, mosquitto_evt_basic_auth, username);
FIELD(tmq_evt_basic_auth, mosquitto_evt_basic_auth, password);

SAME(sizeof(struct tmq_evt_extended_auth), sizeof(struct mosquitto_evt_extended_auth));
FIELD(tmq_evt_extended_auth, mosquitto_evt_extended_auth, client);
FIELD(tmq_evt_extended_auth, mosquitto_evt_extended_auth, data_in);
FIELD(tmq_evt_extended_auth, mosquitto_evt_extended_auth, data_in_len);
FIELD(tmq_evt_extended_auth, mosquitto_evt_extended_auth, auth_method);

SAME(sizeof(struct tmq_evt_control), sizeof(struct mosquitto_evt_control));
FIELD(tmq_evt_control, mosquitto_evt_control, client);
FIELD(tmq_evt_control, mosquitto_evt_control, topic);
FIELD(tmq_evt_control, mosquitto_evt_control, payload);
FIELD(tmq_evt_control, mosquitto_evt_control, payloadlen);

SAME(sizeof(struct tmq_evt_message), sizeof(struct mosquitto_evt_message));
SAME(sizeof(struct tmq_evt_tick), sizeof(struct mosquitto_evt_tick));

SAME(sizeof(struct tmq_evt_disconnect), sizeof(struct mosquitto_evt_disconnect));
FIELD(tmq_evt_disconnect, mosquitto_evt_disconnect, client);
FIELD(tmq_evt_disconnect, mosquitto_evt_disconnect, reason);

/* Mosquitto calls these three by name. */
int mosquitto_plugin_version(int supported_version_count, const int *supported_versions);
int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options, int option_count);
int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count);
