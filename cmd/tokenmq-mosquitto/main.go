// Command tokenmq-mosquitto is a Mosquitto 2 plugin (SPEC §6.3) that gives
// every Mosquitto client tokenmq's token authentication, through the same
// core as tokenmq's own broker (package mosqauth over tokenauth):
//
//	go build -buildmode=c-shared -o tokenmq_mosquitto.so ./cmd/tokenmq-mosquitto
//
// and in mosquitto.conf:
//
//	plugin /path/tokenmq_mosquitto.so
//	plugin_opt_token_service http://tokens:8080
//	plugin_opt_instance_id mqtt-local
//	plugin_opt_access_key_id TMQ…        # a key of role broker; or TOKENMQ_ACCESS_KEY_ID
//	plugin_opt_access_key_secret …       # or TOKENMQ_ACCESS_KEY_SECRET
//
// This file is the C side's Go half: Mosquitto's events, converted and
// handed to mosqauth, and the Broker operations mosqauth asks for, all on
// Mosquitto's thread. The plugin interface is declared in shim.h, so it
// builds without Mosquitto's headers (abi_test.go checks the declarations
// against them where they are installed).
package main

/*
#cgo CFLAGS: -O2 -Wall
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"log/slog"
	"os"
	"runtime/pprof"
	"unsafe"

	"github.com/tokenmq/tokenmq/mosqauth"
	"github.com/tokenmq/tokenmq/tokenauth"
)

func main() {} // a c-shared library's main is never run

var (
	plugin   *mosqauth.Plugin
	pluginID *C.mosquitto_plugin_id_t
	profile  *os.File // TOKENMQ_PLUGIN_CPU_PROFILE: a CPU profile of the Go side, written at cleanup
)

//export goPluginInit
func goPluginInit(id unsafe.Pointer, opts *C.struct_mosquitto_opt, n C.int) C.int {
	if plugin != nil {
		// per_listener_settings true loads a plugin once per listener; and
		// Mosquitto 2.0.11 then never sends the tick that carries out
		// kicks and notices. One instance, for every listener.
		logLine(slog.LevelError, "the plugin is loaded twice (per_listener_settings true?): load it once, with per_listener_settings false")
		return C.TMQ_ERR_INVAL
	}
	options := map[string]string{}
	for _, o := range unsafe.Slice(opts, int(n)) {
		options[C.GoString(o.key)] = C.GoString(o.value)
	}
	o, err := mosqauth.ParseOptions(options, os.Getenv)
	if err != nil {
		logLine(slog.LevelError, err.Error())
		return C.TMQ_ERR_INVAL
	}
	p, err := mosqauth.New(o, broker{})
	if err != nil {
		logLine(slog.LevelError, err.Error())
		return C.TMQ_ERR_INVAL
	}
	plugin, pluginID = p, (*C.mosquitto_plugin_id_t)(id)
	if path := os.Getenv("TOKENMQ_PLUGIN_CPU_PROFILE"); path != "" { // tokenmq-bench -profile-dir
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			profile = f
		}
	}
	if rc := C.tmq_register(pluginID, 1); rc != C.TMQ_ERR_SUCCESS {
		logLine(slog.LevelError, "registering the plugin's callbacks failed")
		return C.TMQ_ERR_INVAL
	}
	return C.TMQ_ERR_SUCCESS
}

//export goPluginCleanup
func goPluginCleanup() C.int {
	if plugin != nil {
		C.tmq_unregister(pluginID, 1)
		plugin.Close()
		plugin = nil
	}
	if profile != nil {
		pprof.StopCPUProfile()
		profile.Close()
	}
	return C.TMQ_ERR_SUCCESS
}

//export goBasicAuth
func goBasicAuth(data unsafe.Pointer) C.int {
	ev := (*C.struct_tmq_evt_basic_auth)(data)
	if plugin == nil {
		return C.TMQ_ERR_AUTH
	}
	in := connInfo(ev.client)
	if ev.username != nil {
		in.Username = []byte(C.GoString(ev.username))
	}
	if ev.password != nil {
		in.Password, in.HasPassword = []byte(C.GoString(ev.password)), true
	}
	return authCode(plugin.BasicAuth(ref(ev.client), in))
}

//export goExtAuth
func goExtAuth(data unsafe.Pointer, continued C.int) C.int {
	ev := (*C.struct_tmq_evt_extended_auth)(data)
	if plugin == nil || continued != 0 || ev.auth_method == nil {
		return C.TMQ_ERR_PLUGIN_DEFER // tokenmq authentication is one step; a continuation is not ours
	}
	in := connInfo(ev.client)
	if u := C.mosquitto_client_username(ev.client); u != nil {
		in.Username = []byte(C.GoString(u))
	}
	return authCode(plugin.ExtAuth(ref(ev.client), in, C.GoString(ev.auth_method), C.GoBytes(ev.data_in, C.int(ev.data_in_len))))
}

//export goACLCheck
func goACLCheck(data unsafe.Pointer) C.int {
	ev := (*C.struct_tmq_evt_acl_check)(data)
	if plugin == nil || plugin.ACLCheck(ref(ev.client), mosqauth.Access(ev.access), view(ev.topic)) != mosqauth.Allow {
		return C.TMQ_ERR_ACL_DENIED
	}
	return C.TMQ_ERR_SUCCESS
}

//export goControl
func goControl(data unsafe.Pointer) C.int {
	ev := (*C.struct_tmq_evt_control)(data)
	if plugin == nil {
		return C.TMQ_ERR_ACL_DENIED
	}
	switch plugin.Control(ref(ev.client), C.GoString(ev.topic), C.GoBytes(ev.payload, C.int(ev.payloadlen))) {
	case mosqauth.Allow:
		return C.TMQ_ERR_SUCCESS
	case mosqauth.Drop:
		return C.TMQ_ERR_UNKNOWN
	}
	return C.TMQ_ERR_ACL_DENIED
}

//export goDisconnect
func goDisconnect(data unsafe.Pointer) {
	ev := (*C.struct_tmq_evt_disconnect)(data)
	if plugin != nil {
		plugin.Disconnect(ref(ev.client))
	}
}

//export goTick
func goTick() {
	if plugin != nil {
		plugin.Tick()
	}
}

func ref(c *C.struct_mosquitto) mosqauth.Ref { return mosqauth.Ref(uintptr(unsafe.Pointer(c))) }

func connInfo(c *C.struct_mosquitto) mosqauth.ConnInfo {
	in := mosqauth.ConnInfo{ProtocolVersion: int(C.mosquitto_client_protocol_version(c))}
	if id := C.mosquitto_client_id(c); id != nil {
		in.ClientID = C.GoString(id)
	}
	if a := C.mosquitto_client_address(c); a != nil {
		in.Remote = C.GoString(a)
	}
	return in
}

// view is a C string as a Go string without copying: for the duration of
// the event only (ACL checks never keep the topic).
func view(p *C.char) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return unsafe.String((*byte)(unsafe.Pointer(p)), n)
}

func authCode(r mosqauth.Result) C.int {
	switch r {
	case mosqauth.Allow:
		return C.TMQ_ERR_SUCCESS
	case mosqauth.Drop:
		return C.TMQ_ERR_UNKNOWN
	case mosqauth.Defer:
		return C.TMQ_ERR_PLUGIN_DEFER
	}
	return C.TMQ_ERR_AUTH
}

// broker is mosqauth.Broker over Mosquitto's functions.
type broker struct{}

func (broker) Publish(clientID, topic string, payload []byte, props []tokenauth.Property) {
	cid, ctopic := C.CString(clientID), C.CString(topic)
	defer C.free(unsafe.Pointer(cid))
	defer C.free(unsafe.Pointer(ctopic))
	var pairs **C.char
	if len(props) > 0 {
		arr := (*[1 << 20]*C.char)(C.malloc(C.size_t(2*len(props)) * C.size_t(unsafe.Sizeof(uintptr(0)))))[: 2*len(props) : 2*len(props)]
		for i, p := range props {
			arr[2*i], arr[2*i+1] = C.CString(p.Key), C.CString(p.Value)
		}
		defer func() {
			for _, s := range arr {
				C.free(unsafe.Pointer(s))
			}
			C.free(unsafe.Pointer(&arr[0]))
		}()
		pairs = &arr[0]
	}
	var pl unsafe.Pointer
	if len(payload) > 0 {
		pl = C.CBytes(payload)
		defer C.free(pl)
	}
	C.tmq_publish(cid, ctopic, C.int(len(payload)), pl, C.int(len(props)), pairs)
}

func (broker) Kick(clientID string) {
	cid := C.CString(clientID)
	defer C.free(unsafe.Pointer(cid))
	C.mosquitto_kick_client_by_clientid(cid, false)
}

func (broker) ClientID(r mosqauth.Ref) string {
	// r is a C pointer kept as an integer (Mosquitto's memory, not Go's):
	// read it back as the pointer it is.
	id := C.mosquitto_client_id(*(**C.struct_mosquitto)(unsafe.Pointer(&r)))
	if id == nil {
		return ""
	}
	return C.GoString(id)
}

func (broker) Log(level slog.Level, line string) { logLine(level, line) }

// Wake makes shim.c's next tick call into Go.
func (broker) Wake() { C.tmq_wake() }

func logLine(level slog.Level, line string) {
	l := C.int(C.TMQ_LOG_INFO)
	switch {
	case level >= slog.LevelError:
		l = C.TMQ_LOG_ERR
	case level >= slog.LevelWarn:
		l = C.TMQ_LOG_WARNING
	case level < slog.LevelInfo:
		l = C.TMQ_LOG_DEBUG
	}
	cs := C.CString(line)
	defer C.free(unsafe.Pointer(cs))
	C.tmq_log(l, cs)
}

// benchACL runs n ACL checks through shim.c's path, as Mosquitto makes
// them (main_test.go's benchmark).
func benchACL(r mosqauth.Ref, access mosqauth.Access, topic string, n int) int {
	ct := C.CString(topic)
	defer C.free(unsafe.Pointer(ct))
	return int(C.tmq_bench_acl(*(**C.struct_mosquitto)(unsafe.Pointer(&r)), C.int(access), ct, C.int(n)))
}
