// Package bench is tokenmq's benchmark suite: a minimal MQTT 3.1.1 load
// generator (it must not be the bottleneck), the targets it starts as child
// processes in the same run (tokenmq in role all, tokenmq split into token
// service and broker, a plain Mochi broker with the allow-all hook as the
// no-auth ceiling, and Mosquitto with a password file and an ACL file when
// installed), the scenarios of issue 5 (each on freshly started targets),
// and the report: medians of alternating rounds, failures counted apart,
// ratios against allow-all Mochi, and the targets' CPU time per operation.
package bench
