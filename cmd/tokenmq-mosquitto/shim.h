/* The part of Mosquitto 2's plugin interface (v5) the plugin uses,
 * declared here so that the plugin builds without Mosquitto's headers.
 * abi_test.go checks every struct and constant below against
 * <mosquitto_broker.h> and <mosquitto_plugin.h> wherever they are
 * installed (CI installs them).
 *
 * The struct layouts are those of Mosquitto 2.0 (stable across 2.0.x:
 * the future fields exist so that they do not change). */
#ifndef TOKENMQ_MOSQUITTO_SHIM_H
#define TOKENMQ_MOSQUITTO_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct mosquitto;
struct mqtt5__property;
typedef struct mqtt5__property mosquitto_property;
typedef struct mosquitto_plugin_id_t mosquitto_plugin_id_t;

#ifndef TMQ_WITH_MOSQUITTO_HEADERS /* abi_check.c includes both */
struct mosquitto_opt {
	char *key;
	char *value;
};
#endif

enum {
	TMQ_EVT_ACL_CHECK = 2,
	TMQ_EVT_BASIC_AUTH = 3,
	TMQ_EVT_EXT_AUTH_START = 4,
	TMQ_EVT_EXT_AUTH_CONTINUE = 5,
	TMQ_EVT_CONTROL = 6,
	TMQ_EVT_MESSAGE = 7,
	TMQ_EVT_TICK = 9,
	TMQ_EVT_DISCONNECT = 10,
};

enum {
	TMQ_ERR_AUTH_CONTINUE = -4,
	TMQ_ERR_SUCCESS = 0,
	TMQ_ERR_NOMEM = 1,
	TMQ_ERR_INVAL = 3,
	TMQ_ERR_AUTH = 11,
	TMQ_ERR_ACL_DENIED = 12,
	TMQ_ERR_UNKNOWN = 13,
	TMQ_ERR_PLUGIN_DEFER = 17,
	TMQ_ERR_NOT_SUPPORTED = 10,
};

enum {
	TMQ_ACL_READ = 0x01,
	TMQ_ACL_WRITE = 0x02,
	TMQ_ACL_SUBSCRIBE = 0x04,
	TMQ_ACL_UNSUBSCRIBE = 0x08,
};

enum {
	TMQ_LOG_INFO = 0x01,
	TMQ_LOG_NOTICE = 0x02,
	TMQ_LOG_WARNING = 0x04,
	TMQ_LOG_ERR = 0x08,
	TMQ_LOG_DEBUG = 0x10,
};

struct tmq_evt_acl_check {
	void *future;
	struct mosquitto *client;
	const char *topic;
	const void *payload;
	mosquitto_property *properties;
	int access;
	uint32_t payloadlen;
	uint8_t qos;
	bool retain;
	void *future2[4];
};

struct tmq_evt_basic_auth {
	void *future;
	struct mosquitto *client;
	char *username;
	char *password;
	void *future2[4];
};

struct tmq_evt_extended_auth {
	void *future;
	struct mosquitto *client;
	const void *data_in;
	void *data_out;
	uint16_t data_in_len;
	uint16_t data_out_len;
	const char *auth_method;
	void *future2[3];
};

struct tmq_evt_control {
	void *future;
	struct mosquitto *client;
	const char *topic;
	const void *payload;
	const mosquitto_property *properties;
	char *reason_string;
	uint32_t payloadlen;
	uint8_t qos;
	uint8_t reason_code;
	bool retain;
	void *future2[4];
};

struct tmq_evt_message {
	void *future;
	struct mosquitto *client;
	char *topic;
	void *payload;
	mosquitto_property *properties;
	char *reason_string;
	uint32_t payloadlen;
	uint8_t qos;
	uint8_t reason_code;
	bool retain;
	void *future2[4];
};

struct tmq_evt_tick {
	void *future;
	long now_ns;
	long next_ns;
	time_t now_s;
	time_t next_s;
	void *future2[4];
};

struct tmq_evt_disconnect {
	void *future;
	struct mosquitto *client;
	int reason;
	void *future2[4];
};

typedef int (*MOSQ_FUNC_generic_callback)(int, void *, void *);

/* Mosquitto's functions, resolved from the broker when it loads the
 * plugin. Weak, so that the package also links into a program that is not
 * Mosquitto (its test binary), where they are NULL and never called. */
#define TMQ_WEAK __attribute__((weak))
TMQ_WEAK int mosquitto_callback_register(mosquitto_plugin_id_t *identifier, int event, MOSQ_FUNC_generic_callback cb_func, const void *event_data, void *userdata);
TMQ_WEAK int mosquitto_callback_unregister(mosquitto_plugin_id_t *identifier, int event, MOSQ_FUNC_generic_callback cb_func, const void *event_data);
TMQ_WEAK void mosquitto_log_printf(int level, const char *fmt, ...);
TMQ_WEAK const char *mosquitto_client_address(const struct mosquitto *client);
TMQ_WEAK const char *mosquitto_client_id(const struct mosquitto *client);
TMQ_WEAK int mosquitto_client_protocol_version(const struct mosquitto *client);
TMQ_WEAK const char *mosquitto_client_username(const struct mosquitto *client);
TMQ_WEAK int mosquitto_kick_client_by_clientid(const char *clientid, bool with_will);
TMQ_WEAK int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen, const void *payload, int qos, bool retain, mosquitto_property *properties);
TMQ_WEAK int mosquitto_property_add_string_pair(mosquitto_property **proplist, int identifier, const char *name, const char *value);

/* shim.c */
void tmq_wake(void);
int tmq_bench_acl(struct mosquitto *client, int access, const char *topic, int n);
int tmq_register(mosquitto_plugin_id_t *id, int control);
void tmq_unregister(mosquitto_plugin_id_t *id, int control);
void tmq_log(int level, const char *msg);
int tmq_publish(const char *clientid, const char *topic, int payloadlen, const void *payload, int npairs, char **pairs);

#endif
